"""The ASGI application: the HTTP face of one hub (:mod:`cityhub.hub`), its routers and error handlers."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from cityhub import __version__
from cityhub.api.deps import JSONResponse, declare_security, hub_of, problem
from cityhub.api.export import router as export_router
from cityhub.api.ext import router as ext_router
from cityhub.api.guard import Guard
from cityhub.api.limits import BodyLimit
from cityhub.api.openapi import allowed_methods
from cityhub.api.openapi import install as install_openapi
from cityhub.api.sensorthings import ObservationPosts
from cityhub.api.sensorthings import router as st_router
from cityhub.config import Settings
from cityhub.errors import ProblemError
from cityhub.hub import open_hub
from cityhub.logs import AccessLog
from cityhub.logs import configure as configure_logs
from cityhub.plugins import PLUGINS
from cityhub.sse import stream_counts
from cityhub.store.base import Store
from cityhub.web import mount as mount_web

log = logging.getLogger("cityhub")


def app_from_environment() -> FastAPI:
    """The app of one process of `cityhub serve --workers N`: settings from the CITYHUB_* variables it set."""
    configure_logs(os.environ.get("CITYHUB_SERVE_LOG_LEVEL", "info"), os.environ.get("CITYHUB_LOG_FORMAT", "text"))
    return create_app(Settings(), demo=os.environ.get("CITYHUB_SERVE_DEMO") == "1")


def create_app(settings: Settings | None = None, store: Store | None = None, *, demo: bool = False) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub = open_hub(settings, store)
        app.state.hub = hub
        demos: list[threading.Event] = []
        app.state.demo_since = None
        if demo:
            from cityhub import demo as demo_city
            from cityhub.alerts.builtin import load_builtin

            # What the demo feeds (its backfill, then live): told to clients at /api so that `cityhub simulate`
            # against this hub leaves those hours to it instead of sending conflicting readings.
            # (Floored to the hour, as the simulator floors its start.)
            since = datetime.now(UTC) - demo_city.BACKFILL
            app.state.demo_since = since.replace(minute=0, second=0, microsecond=0)

            def run_demo() -> None:
                load_builtin(hub)  # the demo ships Hanoi's air advisories, Red River flood levels, silent sensors
                demos.append(demo_city.start(hub))

            # The simulated city runs once for the hub: in the leading process where several share the store.
            hub.cluster.when_leading(run_demo)
        try:
            yield
        finally:
            for stop_demo in demos:
                stop_demo.set()
            hub.close()

    app = FastAPI(
        title="CityHub",
        version=__version__,
        description=(
            "Hanoi's open smart-city data hub. OGC SensorThings API v1.1 under `/v1.1`, plus the bulk "
            "ingest, latest-value and aggregation endpoints under `/api/v1` that SensorThings lacks. "
            "Errors are `application/problem+json` with the `field` at fault."
        ),
        lifespan=lifespan,
        default_response_class=JSONResponse,
        # /docs is served from the page's npm libraries (web.docs), not FastAPI's CDN links; ReDoc has no
        # offline copy and is left out.
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(declare_security)],
    )

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> Response:
        response = problem(exc.status, exc.to_problem(str(request.url.path)))
        response.headers.update(exc.headers or {})
        if exc.status == 405 and "allow" not in response.headers:
            response.headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope))
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {
                "field": ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "body", "path")),
                "reason": e["msg"],
            }
            for e in exc.errors()
        ]
        first = errors[0]["field"] if errors else None
        return problem(
            400,
            ProblemError(
                400,
                "Bad Request",
                errors[0]["reason"] if errors else "invalid request",
                field=first,
                errors=errors,
            ).to_problem(str(request.url.path)),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        title = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, "Error")
        response = problem(
            exc.status_code,
            ProblemError(exc.status_code, title, str(exc.detail), field="path").to_problem(str(request.url.path)),
        )
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette's Allow names the first route matching the path only; a path can have several.
            headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope, headers.pop("Allow", None)))
        response.headers.update(headers)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return problem(
            500,
            {
                "type": "about:blank",
                "title": "Internal Server Error",
                "status": 500,
                "detail": "an unexpected error; it was logged",
            },
        )

    app.add_middleware(ObservationPosts)  # innermost: after the key check and inside the body limit
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        json_max_bytes=min(settings.max_json_body_bytes, settings.max_body_bytes),
    )
    app.add_middleware(Guard, settings=settings)  # runs before the body limit reads anything
    app.add_middleware(AccessLog)  # added last: runs first, so that refusals are logged with their time too
    for r in (ext_router, *(r for p in PLUGINS for r in p.routers), export_router, st_router):
        app.include_router(r)
    mount_web(app)  # the dashboard at /, the JSON index at /api, the live Observation stream, metro lines

    @app.get("/healthz", tags=["operations"], summary="Liveness", response_model=None)
    def healthz(request: Request) -> Any:
        hub = hub_of(request)
        out: dict[str, Any] = {
            "status": "ok",
            "version": __version__,
            "airquality": hub.airquality.status(),
            "writer": {
                "queuedRows": hub.writer.queued_rows,
                "maxQueuedRows": hub.writer.max_queued_rows,
                "checkpoints": hub.writer.checkpoints,
                "checkpointsPostponed": hub.writer.checkpoints_postponed,
                "logBytes": hub.store.log_bytes(),
            },
            "streams": stream_counts(),
            "cluster": hub.cluster.status(),
        }
        if hub.mqtt is not None:
            out["mqtt"] = {"broker": f"{hub.mqtt.address.host}:{hub.mqtt.address.port}", **hub.mqtt.health()}
            if hub.mqtt.problem is not None:  # the MQTT process is down (restarting): nothing is ingested
                out["status"] = "degraded"
                out["reason"] = f"mqtt: {hub.mqtt.problem}"
        return out

    install_openapi(app, settings)
    return app
