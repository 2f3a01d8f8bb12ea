"""The operations dashboard: a live map of Hanoi served at ``/``.

The page (``static/``: HTML, CSS and plain ES modules) reads only the public API, like any other client. Its
libraries come from npm: ``make web`` runs ``npm ci`` in ``web/``, and the runtime dependencies of
``web/package.json`` are served from ``web/node_modules`` at ``/static/vendor/<package>/``, where the page's
import map finds them. This package adds the page, the JSON index of the API at ``/api``, the live
Observation stream (``live.py``), Things as GeoJSON (``geo.py``) and the metro fact table (``metro.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from cityhub import __version__
from cityhub.api.deps import JSONResponse, hub_of
from cityhub.timefmt import iso_time
from cityhub.web.basemap import available as basemap_available

STATIC = Path(__file__).with_name("static")
WEB = Path(__file__).resolve().parents[3] / "web"  # the checkout's web/, where `make web` runs npm ci
NODE_MODULES = WEB / "node_modules"

router = APIRouter()


def vendor_packages() -> list[str]:
    """The page's libraries: the runtime ``dependencies`` of web/package.json (dev tools such as eslint are not
    served)."""
    try:
        deps = orjson.loads((WEB / "package.json").read_bytes()).get("dependencies") or {}
    except (OSError, orjson.JSONDecodeError):
        return []
    return list(deps)


def vendor_built() -> bool:
    packages = vendor_packages()
    return bool(packages) and all((NODE_MODULES / p / "package.json").is_file() for p in packages)


class _Vendor(StaticFiles):
    """web/node_modules, limited to the page's packages. Looked up on each request, so that a ``make web`` run
    after the hub started is served without a restart, and a missing folder is a 404, not a 500."""

    async def check_config(self) -> None:
        return None

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        parts = Path(path).parts
        if not any(parts[: len(Path(p).parts)] == Path(p).parts for p in vendor_packages()):  # "@scope/name" too
            return "", None
        return super().lookup_path(path)


@router.get("/", tags=["operations"], summary="The operations dashboard (HTML)", response_class=FileResponse)
def dashboard() -> Response:
    # Revalidated each time (ETag), so a rebuilt page is never stale.
    return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


SWAGGER = "/static/vendor/swagger-ui-dist"


@router.get("/docs", include_in_schema=False)
def docs() -> Response:
    """Swagger UI from web/node_modules (npm's swagger-ui-dist), not from a CDN: the page works on a control-room
    network without the internet. (The Python packages that bundle it carry Swagger UI 4, which cannot read
    the OpenAPI 3.1 document FastAPI writes.)"""
    if not (NODE_MODULES / "swagger-ui-dist" / "swagger-ui-bundle.js").is_file():
        return HTMLResponse(
            "<!doctype html><title>CityHub API</title><p>The API documentation page is installed by "
            "<code>make web</code> (<code>npm ci</code> in <code>web/</code>). Meanwhile the OpenAPI document is at "
            '<a href="/openapi.json">/openapi.json</a>.</p>',
            status_code=503,
            headers={"Retry-After": "3600"},
        )
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="CityHub API",
        swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png",
    )


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
            # `serve --demo`: the simulated city feeds its Datastreams from this time on (null: no demo).
            "demo": {"since": iso_time(since)} if (since := getattr(request.app.state, "demo_since", None)) else None,
            "map": {
                "tileUrl": settings.tile_url or None,
                "tileAttribution": settings.tile_attribution or None,
                # Wards and main roads drawn by the page itself when there are no tiles (null: no reference data).
                "basemap": f"{base}/api/v1/basemap" if basemap_available(settings.geo_dir) else None,
            },
        }
    )


def mount(app: FastAPI) -> None:
    """Add the dashboard, the API index, the live stream and the metro endpoint to ``app``."""
    from cityhub.web.basemap import router as basemap_router
    from cityhub.web.geo import router as geo_router
    from cityhub.web.live import router as live_router
    from cityhub.web.metro import router as metro_router

    app.include_router(router)
    app.include_router(live_router)
    app.include_router(geo_router)
    app.include_router(metro_router)
    app.include_router(basemap_router)
    # Before /static, which would otherwise take /static/vendor/... too.
    app.mount("/static/vendor", _Vendor(directory=NODE_MODULES, check_dir=False), name="vendor")
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")


__all__ = ["mount", "router", "vendor_built"]
