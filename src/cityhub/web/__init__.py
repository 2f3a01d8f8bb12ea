"""The operations dashboard: a live map of Hanoi served at ``/``.

The page (``static/``: HTML, CSS and plain ES modules) reads only the public API, like any other client. Its
map library comes from npm: ``make web`` runs ``npm ci`` in ``web/`` and copies Leaflet into
``static/vendor/`` (git-ignored). This package adds the page, the JSON index of the API at ``/api``, the live
Observation stream (``live.py``), Things as GeoJSON (``geo.py``) and the metro fact table (``metro.py``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from cityhub import __version__
from cityhub.app import JSONResponse, hub_of

STATIC = Path(__file__).with_name("static")
VENDOR = STATIC / "vendor"

router = APIRouter()


def vendor_built() -> bool:
    return (VENDOR / "leaflet" / "leaflet.js").is_file()


@router.get("/", tags=["operations"], summary="The operations dashboard (HTML)", response_class=FileResponse)
def dashboard() -> Response:
    # Revalidated each time (ETag), so a rebuilt page is never stale.
    return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/api", tags=["operations"], summary="Where things are: entry points of the API, the dashboard's settings")
def index(request: Request) -> Response:
    base = str(request.base_url).rstrip("/")
    ext = [
        "ingest",
        "latest",
        "aggregate",
        "info",
        "aqi",
        "observations/stream",
        "geo/things",
        "transit/metro",
        "export",
    ]
    hub = hub_of(request)
    # Optional modules appear only when the running hub has them, so clients can feature-detect.
    if getattr(hub, "alerts", None) is not None:
        ext += ["alerts", "alerts/stream"]
    settings = hub.settings
    return JSONResponse(
        {
            "name": "CityHub",
            "version": __version__,
            "sensorthings": f"{base}/v1.1",
            "docs": f"{base}/docs",
            "openapi": f"{base}/openapi.json",
            "dashboard": f"{base}/",
            "extensions": {k: f"{base}/api/v1/{k}" for k in ext},
            "map": {
                "tileUrl": settings.tile_url or None,
                "tileAttribution": settings.tile_attribution or None,
            },
        }
    )


def mount(app: FastAPI) -> None:
    """Add the dashboard, the API index, the live stream and the metro endpoint to ``app``."""
    from cityhub.web.geo import router as geo_router
    from cityhub.web.live import router as live_router
    from cityhub.web.metro import router as metro_router

    app.include_router(router)
    app.include_router(live_router)
    app.include_router(geo_router)
    app.include_router(metro_router)
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")


__all__ = ["mount", "router", "vendor_built"]
