"""The ASGI application: one process owning the store, its writer, and the HTTP API."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from cityhub import __version__
from cityhub.airquality.live import AirQuality
from cityhub.alerts.engine import AlertEngine
from cityhub.auth.keys import ANONYMOUS, KeyStore, Principal
from cityhub.config import Settings
from cityhub.errors import ProblemError
from cityhub.ingest.mqtt import MqttBridge
from cityhub.ingest.observations import DatastreamCatalog
from cityhub.ingest.writer import ObservationWriter
from cityhub.sensorthings.service import SensorThings
from cityhub.store.base import Store
from cityhub.store.duckdb import DuckDBStore

log = logging.getLogger("cityhub")


@dataclass
class Hub:
    """Everything one serving process shares between requests."""

    settings: Settings
    store: Store
    writer: ObservationWriter
    catalog: DatastreamCatalog
    sensorthings: SensorThings
    keys: KeyStore
    airquality: AirQuality
    alerts: AlertEngine
    mqtt: MqttBridge | None = None

    def close(self) -> None:
        if self.mqtt is not None:
            self.mqtt.close()  # stops taking messages before the writer drains
        self.writer.close()
        self.airquality.close()
        self.alerts.close()  # after the writer and the indices, so that their last batches are evaluated
        self.store.close()


def open_hub(settings: Settings, store: Store | None = None) -> Hub:
    store = store or DuckDBStore(settings.db_path)
    writer = ObservationWriter(store)
    catalog = DatastreamCatalog(store)
    st = SensorThings(
        store,
        writer,
        catalog,
        max_top=settings.max_top,
        default_top=settings.default_top,
        max_future=settings.max_future,
    )
    airquality = AirQuality(store, catalog, day_offset_minutes=settings.day_offset_minutes)
    writer.add_listener(airquality.on_commit)
    airquality.start()
    alerts = AlertEngine(store, catalog)
    writer.add_listener(alerts.on_commit)
    airquality.listeners.append(alerts.on_commit)
    hub = Hub(settings, store, writer, catalog, st, KeyStore(settings.keys_path), airquality, alerts)
    alerts.start(mqtt=lambda: hub.mqtt)
    if settings.mqtt_url:
        hub.mqtt = MqttBridge(hub)
        hub.mqtt.start()
    return hub


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def problem(status: int, body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/problem+json")


def hub_of(request: Request) -> Hub:
    return request.app.state.hub


def principal(request: Request) -> Principal:
    """Authenticate from ``Authorization: Bearer <key>`` or ``X-API-Key``."""
    hub = hub_of(request)
    auth = request.headers.get("authorization", "")
    key = auth[7:].strip() if auth.lower().startswith("bearer ") else request.headers.get("x-api-key")
    if key:
        who = hub.keys.authenticate(key)
        if who is None:
            raise ProblemError(401, "Unauthorized", "unknown or revoked API key", field="authorization")
        return who
    if not hub.settings.anonymous_read:
        raise ProblemError(401, "Unauthorized", "an API key is required", field="authorization")
    return ANONYMOUS


def require(who: Principal, what: str) -> None:
    ok = {
        "read": who.can_read,
        "model": who.can_manage_model,
        "observations": who.can_write_observations,
        "operate": who.can_operate,
    }[what]
    if not ok:
        status = 401 if who.role == "anonymous" else 403
        raise ProblemError(
            status,
            "Unauthorized" if status == 401 else "Forbidden",
            f"the {who.role} role may not do this" if status == 403 else "this needs an API key",
            field="authorization",
        )


def create_app(settings: Settings | None = None, store: Store | None = None, *, demo: bool = False) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub = open_hub(settings, store)
        app.state.hub = hub
        stop_demo = None
        if demo:
            from cityhub import demo as demo_city
            from cityhub.alerts.builtin import load_builtin

            load_builtin(hub)  # the demo ships Hanoi's air advisories, Red River flood levels, silent sensors
            stop_demo = demo_city.start(hub)
        try:
            yield
        finally:
            if stop_demo is not None:
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
    )

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> Response:
        return problem(exc.status, exc.to_problem(str(request.url.path)))

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
        return problem(
            exc.status_code,
            ProblemError(exc.status_code, title, str(exc.detail), field="path").to_problem(str(request.url.path)),
        )

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

    from cityhub.api.alerts import router as alerts_router
    from cityhub.api.aqi import router as aqi_router
    from cityhub.api.deadletters import router as deadletters_router
    from cityhub.api.export import router as export_router
    from cityhub.api.ext import router as ext_router
    from cityhub.sensorthings.api import router as st_router

    app.include_router(ext_router)
    app.include_router(aqi_router)
    app.include_router(deadletters_router)
    app.include_router(alerts_router)
    app.include_router(export_router)
    app.include_router(st_router)

    from cityhub.web import mount as mount_web

    mount_web(app)  # the dashboard at /, the JSON index at /api, the live Observation stream, metro lines

    @app.get("/healthz", tags=["operations"], summary="Liveness")
    def healthz(request: Request) -> Any:
        hub = hub_of(request)
        out: dict[str, Any] = {"status": "ok", "version": __version__}
        if hub.mqtt is not None:
            out["mqtt"] = {"broker": f"{hub.mqtt.address.host}:{hub.mqtt.address.port}", **hub.mqtt.stats.as_dict()}
        return out

    return app
