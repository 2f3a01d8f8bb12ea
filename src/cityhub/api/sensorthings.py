"""HTTP routes of the SensorThings API v1.1 under ``/v1.1``.

Each entity set gets documented routes (so ``/docs`` and schemathesis see them); deeper paths such as
``/Datastreams(1)/Thing/Locations`` or ``/Things(1)/name/$value`` go through the same handler.
"""

from __future__ import annotations

import inspect
from enum import Enum
from functools import partial
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, HTTPExceptionHandler, Receive, Scope, Send

from cityhub import model
from cityhub.api import batch
from cityhub.api.deps import JSONResponse, hub_of, principal, require
from cityhub.api.openapi import documented_elsewhere, json_ok, problems
from cityhub.errors import ProblemError, bad_request
from cityhub.sensorthings.options import parse_options
from cityhub.sensorthings.schemas import entity_schema
from cityhub.sensorthings.service import Resource, parse_path
from cityhub.sensorthings.service.paths import delete_target, refuse_tasking

router = APIRouter(prefix="/v1.1")
MAX_ID = 2**63 - 1
EntityId = Path(ge=0, le=MAX_ID, description="the entity's @iot.id")
ENTITY = {"type": "object", "properties": {"@iot.id": {"type": "integer"}, "@iot.selfLink": {"type": "string"}}}
COLLECTION = {
    "type": "object",
    "properties": {
        "@iot.count": {"type": "integer"},
        "@iot.nextLink": {"type": "string"},
        "value": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["value"],
}
DELETED = {
    "type": "object",
    "properties": {"deleted": {"type": "string", "description": "the URL of what was deleted"}},
    "required": ["deleted"],
}

CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/create-update-delete",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/data-array/data-array",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/batch-request/batch-request",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/multi-datastream",
]
# Declared with the tasking setting (CITYHUB_TASKING), as the entity sets of Part 2 are served only then.
TASKING_CONFORMANCE = "http://www.opengis.net/spec/iot_tasking/1.0/req/tasking-core"
# Declared only when the hub has a broker (CITYHUB_MQTT_URL), each with the broker's address as §9.2.1 shows it.
MQTT_CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/create-observations-via-mqtt/observations-creation",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/receive-updates-via-mqtt/receive-updates",
]


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/v1.1"


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise bad_request("the body is empty; send a JSON object", field="body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"the body is not valid JSON: {exc}", field="body") from None


def _resource(request: Request, path: str) -> Resource:
    """The resource a path addresses; a 404 for the Tasking entity sets while tasking is off (CITYHUB_TASKING)."""
    res = parse_path(path)
    refuse_tasking(res, hub_of(request).settings.tasking)
    return res


async def handle_get(request: Request, path: str) -> Response:
    require(principal(request), "read")
    hub = hub_of(request)
    res = _resource(request, path)
    raw = {k: v for k, v in request.query_params.items()}
    opts = parse_options(
        res.et,
        raw,
        max_top=hub.settings.max_top,
        default_top=hub.settings.default_top,
        max_expand_depth=hub.settings.max_expand_depth,
    )
    out = await run_in_threadpool(hub.sensorthings.read, res, opts, base_url(request), request.url.query)
    if isinstance(out, tuple) and out[0] == "raw":
        value = out[1]
        if value is None:  # SensorThings v1.1 §9.2.5 (OData): a null property, or its $value, is 204, no body
            return Response(status_code=204)
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        return Response(text, media_type="text/plain; charset=utf-8")
    return JSONResponse(out)


async def handle_post(request: Request, path: str) -> Response:
    who = principal(request)
    res = _resource(request, path)
    if res.et is model.OBSERVATION:
        require(who, "observations")
    else:
        require(who, "model")
    body = await _body(request)
    hub = hub_of(request)
    if res.ref:
        require(who, "model")
        await run_in_threadpool(hub.sensorthings.add_reference, res, body)
        return Response(status_code=204)
    device_thing = who.thing_id if who.role == "device" else None
    out = await hub.sensorthings.create(res, body, base_url(request), device_thing)
    created = out.pop("_created", True)
    return JSONResponse(out, status_code=201 if created else 200, headers={"Location": out["@iot.selfLink"]})


def _route_path(scope: Scope) -> str:
    """The request path below the application's mount point (``root_path``), as the routers match it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class ObservationPosts:
    """``POST /v1.1/Observations``, what every device sends, straight to its handler: routing through the
    app's routers, dependency solving and the exception middleware cost the event loop more than the handler
    itself (a third of a single POST's time). The answer is the one the route gives: the same handler, and a
    ProblemError rendered by the app's own exception handler. Sits inside the Guard and the body limit."""

    PATH = "/v1.1/Observations"

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or _route_path(scope) != self.PATH:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        try:
            response = await handle_post(request, model.OBSERVATION.plural)
        except ProblemError as exc:
            # The handler the app registers for ProblemError (app.py), which renders the problem body.
            handler = cast("HTTPExceptionHandler | None", scope["app"].exception_handlers.get(ProblemError))
            if handler is None:
                raise
            out = handler(request, exc)
            response = await out if inspect.isawaitable(out) else out
        await response(scope, receive, send)


async def handle_patch(request: Request, path: str) -> Response:
    require(principal(request), "model")
    res = _resource(request, path)
    body = await _body(request)
    hub = hub_of(request)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() == batch.JSON_PATCH:
        out = await run_in_threadpool(hub.sensorthings.patch_json, res, body, base_url(request))
    else:
        out = await run_in_threadpool(hub.sensorthings.update, res, body, base_url(request))
    return JSONResponse(out)


async def handle_put(request: Request, path: str) -> Response:
    require(principal(request), "model")
    res = _resource(request, path)
    body = await _body(request)
    hub = hub_of(request)
    out = await run_in_threadpool(partial(hub.sensorthings.update, replace=True), res, body, base_url(request))
    return JSONResponse(out)


async def handle_delete(request: Request, path: str) -> Response:
    require(principal(request), "model")
    res = _resource(request, path)
    res, flt = delete_target(res, request.query_params, str(request.url), base_url(request))
    await run_in_threadpool(hub_of(request).sensorthings.delete, res, flt)
    if res.ref:
        # OData 4.01 Part 1 §11.4.6.2: a reference removed is answered 204 No Content, as one added is.
        return Response(status_code=204)
    # SensorThings answers a delete with 200; the body says what went, so it is JSON like every other 200.
    return JSONResponse({"deleted": f"{base_url(request)}/{path.strip('/')}"})


def _not_here(request: Request) -> None:
    """The catch-all routes serve the paths no documented route owns; a documented path asked with another
    method is a 405 that lists its methods, as Starlette answers for the other routes."""
    allow = documented_elsewhere(request.app, request.scope)
    if allow is not None:
        raise ProblemError(
            405,
            "Method Not Allowed",
            f"{request.method} is not allowed here; use {', '.join(allow)}",
            field="method",
            headers={"Allow": ", ".join(allow)},
        )


@router.get(
    "",
    tags=["SensorThings"],
    summary="Service root: entity sets and conformance",
    response_model=None,
    responses={200: json_ok({"type": "object", "required": ["value", "serverSettings"]})},
)
def service_root(request: Request) -> Any:
    base = base_url(request)
    hub_settings = hub_of(request).settings
    settings: dict[str, Any] = {"conformance": list(CONFORMANCE)}
    if hub_settings.tasking:
        settings["conformance"].append(TASKING_CONFORMANCE)
    mqtt_url = hub_settings.mqtt_url
    if mqtt_url:
        # The broker as clients reach it, without the hub's own credentials.
        url = urlsplit(mqtt_url)
        endpoint = f"{url.scheme}://{url.hostname}" + (f":{url.port}" if url.port else "")
        settings["conformance"] += MQTT_CONFORMANCE
        settings.update({cls: {"endpoints": [endpoint]} for cls in MQTT_CONFORMANCE})
    return {
        "value": [
            {"name": et.plural, "url": f"{base}/{et.plural}"}
            for et in model.ENTITY_TYPES
            if hub_settings.tasking or et.name not in model.TASKING_TYPES
        ],
        "serverSettings": settings,
    }


def _query_params() -> dict[str, Any]:
    return {
        "filter_": Query(None, alias="$filter", description="OData/SensorThings filter expression"),
        "select": Query(None, alias="$select", description="comma-separated properties"),
        "expand": Query(
            None,
            alias="$expand",
            description="navigation properties, with nested options; at most `max_expand_depth` levels (default 5), "
            "and at most `max_response_entities` entities (default 100,000) in the whole response",
        ),
        "orderby": Query(None, alias="$orderby", description="e.g. `phenomenonTime desc`"),
        "top": Query(None, alias="$top", ge=0, le=10_000, description="page size (≤ 10,000)"),
        "skip": Query(None, alias="$skip", ge=0, le=2**62),
        "count": Query(None, alias="$count", description="true to include @iot.count"),
    }


def _register(et: model.EntityType) -> None:
    name, plural = et.name, et.plural
    q = _query_params()

    async def list_(
        request: Request,
        filter_: str | None = q["filter_"],
        select: str | None = q["select"],
        expand: str | None = q["expand"],
        orderby: str | None = q["orderby"],
        top: int | None = q["top"],
        skip: int | None = q["skip"],
        count: Literal["true", "false"] | None = q["count"],
    ) -> Response:
        return await handle_get(request, plural)

    async def get_(
        request: Request,
        entity_id: int = EntityId,
        select: str | None = q["select"],
        expand: str | None = q["expand"],
    ) -> Response:
        return await handle_get(request, f"{plural}({entity_id})")

    async def create_(request: Request) -> Response:
        return await handle_post(request, plural)

    async def patch_(request: Request, entity_id: int = EntityId) -> Response:
        return await handle_patch(request, f"{plural}({entity_id})")

    async def put_(request: Request, entity_id: int = EntityId) -> Response:
        return await handle_put(request, f"{plural}({entity_id})")

    async def delete_(request: Request, entity_id: int = EntityId) -> Response:
        return await handle_delete(request, f"{plural}({entity_id})")

    async def delete_members(request: Request, filter_: str | None = q["filter_"]) -> Response:
        return await handle_delete(request, plural)

    schema = entity_schema(et)
    body_doc = {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
    # A PATCH sends only what changes: no member is required.
    patch_schema = {k: v for k, v in schema.items() if k != "required"}
    patch_doc = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": patch_schema},
                batch.JSON_PATCH: {
                    "schema": {"type": "array", "items": {"type": "object", "required": ["op", "path"]}}
                },
            },
        }
    }
    tags: list[str | Enum] = ["SensorThings"]
    # The Tasking Core's sets answer 404 while tasking is off (CITYHUB_TASKING; see _resource).
    off = problems(404) if name in model.TASKING_TYPES else {}
    router.add_api_route(
        f"/{plural}",
        list_,
        methods=["GET"],
        tags=tags,
        summary=f"List {plural}",
        operation_id=f"list{plural}",
        response_model=None,
        responses={200: json_ok(COLLECTION), **off},
    )
    router.add_api_route(
        f"/{plural}({{entity_id}})",
        get_,
        methods=["GET"],
        tags=tags,
        summary=f"Get a {name}",
        operation_id=f"get{name}",
        response_model=None,
        responses={200: json_ok(ENTITY), **off},
    )
    router.add_api_route(
        f"/{plural}",
        create_,
        methods=["POST"],
        tags=tags,
        status_code=201,
        summary=f"Create a {name} (deep insert allowed)",
        openapi_extra=body_doc,
        operation_id=f"create{name}",
        response_model=None,
        responses={
            201: {**json_ok(ENTITY, "Created"), "headers": {"Location": {"schema": {"type": "string"}}}},
            200: json_ok(ENTITY, "An identical Observation was stored already: that one"),
            **problems(404, 409, 503),
        },
    )
    router.add_api_route(
        f"/{plural}({{entity_id}})",
        patch_,
        methods=["PATCH"],
        tags=tags,
        summary=f"Update a {name}",
        openapi_extra=patch_doc,
        operation_id=f"update{name}",
        response_model=None,
        responses={200: json_ok(ENTITY), **problems(409), **off},
    )
    router.add_api_route(
        f"/{plural}({{entity_id}})",
        put_,
        methods=["PUT"],
        tags=tags,
        summary=f"Replace a {name}: what the body leaves out becomes null",
        openapi_extra=body_doc,
        operation_id=f"replace{name}",
        response_model=None,
        responses={200: json_ok(ENTITY), **problems(409), **off},
    )
    router.add_api_route(
        f"/{plural}({{entity_id}})",
        delete_,
        methods=["DELETE"],
        tags=tags,
        summary=f"Delete a {name} (and what depends on it)",
        operation_id=f"delete{name}",
        response_model=None,
        responses={200: json_ok(DELETED, "Deleted"), **problems(409), **off},
    )
    router.add_api_route(
        f"/{plural}",
        delete_members,
        methods=["DELETE"],
        tags=tags,
        summary=f"Delete the {plural} that $filter keeps (all of them without one), each as its own DELETE would",
        operation_id=f"delete{plural}",
        response_model=None,
        responses={200: json_ok(DELETED, "Deleted"), **problems(409), **off},
    )


# Routes are matched in order: the hot ones (Observations) first.
for _et in sorted(model.ENTITY_TYPES, key=lambda et: et is not model.OBSERVATION):
    _register(_et)


DATA_ARRAY = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "Datastream": {
                "type": "object",
                "properties": {"@iot.id": {"type": "integer"}},
                "required": ["@iot.id"],
            },
            "MultiDatastream": {
                "type": "object",
                "properties": {"@iot.id": {"type": "integer"}},
                "required": ["@iot.id"],
                "description": "in place of Datastream: a MultiDatastream's Observations, each result an array",
            },
            "components": {
                "type": "array",
                "items": {
                    "type": "string",
                    "enum": ["phenomenonTime", "result", "resultTime", "FeatureOfInterest/id", "parameters"],
                },
                "contains": {"const": "result"},
            },
            "dataArray": {
                "type": "array",
                "items": {"type": "array"},
                "description": "one row per Observation, one value per component",
            },
        },
        "required": ["components", "dataArray"],
        "oneOf": [{"required": ["Datastream"]}, {"required": ["MultiDatastream"]}],
    },
}


@router.post(
    "/CreateObservations",
    tags=["SensorThings"],
    summary="Data Array extension: create many Observations",
    status_code=201,
    response_model=None,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": DATA_ARRAY}}}},
    responses={
        201: json_ok(
            {"type": "array", "items": {"type": "string"}},
            "Per row, in order: the stored Observation's selfLink, or `error: <field> <reason>`",
        ),
        **problems(404, 409, 503),
    },
)
async def create_observations(request: Request) -> Response:
    from cityhub.api.ext import create_observations_data_array

    return await create_observations_data_array(request)


BATCH = {
    "type": "object",
    "required": ["requests"],
    "properties": {
        "requests": {
            "type": "array",
            "minItems": 1,
            "maxItems": batch.MAX_REQUESTS,
            "items": {
                "type": "object",
                "required": ["id", "method", "url"],
                "properties": {
                    "id": {"type": "string", "minLength": 1},
                    "method": {
                        "type": "string",
                        "enum": sorted(batch.METHODS) + sorted(m.lower() for m in batch.METHODS),
                    },
                    "url": {"type": "string", "minLength": 1},
                    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                    "body": {},
                    "atomicityGroup": {"type": ["string", "null"], "minLength": 1},
                    "dependsOn": {"type": "array", "items": {"type": "string"}},
                },
            },
        }
    },
}


@router.post(
    "/$batch",
    tags=["SensorThings"],
    summary="Batch: several requests in one; change sets commit together",
    description='OData JSON batch (`{"requests": [...]}`, answered `{"responses": [...]}`) or '
    "`multipart/mixed` with `application/http` parts (answered in kind). Requests of one `atomicityGroup` "
    "(a change set) commit together or not at all.",
    response_model=None,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": BATCH},
                "multipart/mixed": {"schema": {"type": "string"}},
            },
        }
    },
    responses={200: json_ok({"type": "object", "required": ["responses"]}), **problems(403)},
)
async def batch_requests(request: Request) -> Response:
    require(principal(request), "read")
    ctype = request.headers.get("content-type", "")
    raw = await request.body()
    if ctype.split(";")[0].strip().lower() == "multipart/mixed":
        return batch.multipart_answer(await batch.run_batch(request, batch.parse_multipart_batch(ctype, raw)))
    return batch.json_answer(await batch.run_batch(request, batch.parse_json_batch(raw)))


@router.api_route("/{path:path}", methods=["GET"], include_in_schema=False)
async def any_get(request: Request, path: str) -> Response:
    _not_here(request)
    return await handle_get(request, path)


@router.api_route("/{path:path}", methods=["POST"], include_in_schema=False)
async def any_post(request: Request, path: str) -> Response:
    _not_here(request)
    return await handle_post(request, path)


@router.api_route("/{path:path}", methods=["PATCH"], include_in_schema=False)
async def any_patch(request: Request, path: str) -> Response:
    _not_here(request)
    return await handle_patch(request, path)


@router.api_route("/{path:path}", methods=["PUT"], include_in_schema=False)
async def any_put(request: Request, path: str) -> Response:
    """PUT of an entity by a longer path (``Datastreams(1)/Sensor``), or of a to-one reference
    (``PUT /Datastreams(1)/Sensor/$ref``)."""
    _not_here(request)
    res = _resource(request, path)
    if not res.ref:
        return await handle_put(request, path)
    require(principal(request), "model")
    body = await _body(request)
    await run_in_threadpool(hub_of(request).sensorthings.add_reference, res, body)
    return Response(status_code=204)


@router.api_route("/{path:path}", methods=["DELETE"], include_in_schema=False)
async def any_delete(request: Request, path: str) -> Response:
    _not_here(request)
    return await handle_delete(request, path)
