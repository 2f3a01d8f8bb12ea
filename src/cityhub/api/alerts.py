"""Alerts API: rules, rule sets, alerts and their lifecycle, the live SSE stream, webhooks.

Reading rules and alerts (and the stream) needs the ``read`` right, like the rest of the public API (flood and air
advisories are for citizens too); creating or changing rules, acknowledging or resolving alerts and everything
about webhooks (they hold secrets) needs an operator or admin key.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Body, Header, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cityhub.alerts.builtin import builtin_names, read_builtin
from cityhub.alerts.notify import sse_message, sse_message_id
from cityhub.alerts.rules import Id, RuleSpec, Severity, check, parse_ruleset
from cityhub.api.deps import JSONResponse, hub_of, principal, require
from cityhub.api.openapi import KEYED, problems
from cityhub.api.params import time_param
from cityhub.auth.keys import Principal
from cityhub.errors import bad_request, not_found
from cityhub.sse import Subscriber, event_stream, message, take_slot

router = APIRouter(tags=["Alerts"])
MAX_ID = 2**62
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
KEEPALIVE_S = 15.0
MAX_RULESET_BYTES = 1 << 20


def _who(p: Principal) -> str:
    return p.name or f"{p.role} key"


def _operator(request: Request) -> str:
    who = principal(request)
    require(who, "operate")
    return _who(who)


def _reader(request: Request) -> None:
    require(principal(request), "read")


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(None, max_length=2000, description="why (kept in the alert's history)")


class WebhookFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[Id] | None = Field(None, max_length=1000, description="only alerts of these rules")
    severities: list[Severity] | None = None
    events: list[Literal["opened", "escalated", "deescalated", "acknowledged", "resolved"]] | None = None
    subject_type: Literal["datastream", "thing"] | None = None


class WebhookSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2000, description="http(s) URL that receives a POST per alert event")
    secret: str = Field(min_length=8, max_length=500, description="HMAC-SHA256 key for X-CityHub-Signature")
    filter: WebhookFilter = Field(default_factory=WebhookFilter)
    description: str | None = Field(None, max_length=2000)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        try:
            parts = urlsplit(v)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            _ = parts.port  # raises on a bad port
        except ValueError:
            ok = False
        if not ok:
            raise ValueError("url must be an http:// or https:// URL with a host")
        return v


# -- rules ---------------------------------------------------------------------------------------------------------
@router.get(
    "/api/v1/rules",
    summary="Alert rules",
    description="Each rule with the number of subjects it watches now and its active alerts. `ruleset` filters by "
    "rule set (built-in: hanoi_air, red_river, silent_sensors, sensor_faults).",
)
async def list_rules(request: Request, ruleset: str | None = Query(None, max_length=200)) -> Response:
    _reader(request)
    hub = hub_of(request)
    return JSONResponse({"value": await asyncio.to_thread(hub.alerts.list_rules, ruleset)})


@router.post("/api/v1/rules", status_code=201, summary="Create a rule (operator)", responses=problems(409))
async def create_rule(request: Request, spec: RuleSpec) -> Response:
    who = _operator(request)
    check(spec)
    hub = hub_of(request)
    out = await asyncio.to_thread(hub.alerts.create_rule, spec, who)
    return JSONResponse(out, status_code=201)


@router.get("/api/v1/rules/{rule_id}", summary="One rule")
async def get_rule(request: Request, rule_id: IdPath) -> Response:
    _reader(request)
    return JSONResponse(await asyncio.to_thread(hub_of(request).alerts.get_rule, rule_id))


@router.patch(
    "/api/v1/rules/{rule_id}",
    summary="Change a rule (operator)",
    description="A JSON merge patch of the rule's fields (`null` removes an optional field); the result is "
    'validated as a whole. `{"enabled": false}` disables it and resolves its active alerts.',
    responses=problems(409),
)
async def patch_rule(request: Request, rule_id: IdPath, patch: dict[str, Any] = Body(...)) -> Response:
    who = _operator(request)
    return JSONResponse(await asyncio.to_thread(hub_of(request).alerts.update_rule, rule_id, patch, who))


@router.delete("/api/v1/rules/{rule_id}", summary="Delete a rule (operator); its active alerts are resolved")
async def delete_rule(request: Request, rule_id: IdPath) -> Response:
    who = _operator(request)
    await asyncio.to_thread(hub_of(request).alerts.delete_rule, rule_id, who)
    return JSONResponse({"deleted": rule_id})


@router.get("/api/v1/rulesets", summary="Rule sets in use and the built-in ones")
async def list_rulesets(request: Request) -> Response:
    _reader(request)
    rules = await asyncio.to_thread(hub_of(request).alerts.list_rules)
    counts: dict[str, int] = {}
    for r in rules:
        if r["ruleset"]:
            counts[r["ruleset"]] = counts.get(r["ruleset"], 0) + 1
    return JSONResponse({"value": [{"name": k, "rules": v} for k, v in sorted(counts.items())],
                         "builtin": builtin_names()})  # fmt: skip


@router.put(
    "/api/v1/rulesets/{name}",
    summary="Replace a rule set from a YAML or JSON rule file (operator)",
    description="The body is a rule file, `{name: ..., rules: [...]}` (or a list of rules), as YAML or JSON. "
    "Rules are matched by name within the set: missing ones are created, changed ones replaced, the others "
    "deleted. Applying the same file again changes nothing.",
    responses=problems(409),
    openapi_extra={"requestBody": {"content": {"application/yaml": {"schema": {"type": "string"}},
                                               "application/json": {"schema": {"type": "object"}}}}},
)  # fmt: skip
async def put_ruleset(request: Request, name: Annotated[str, Path(min_length=1, max_length=100)]) -> Response:
    who = _operator(request)
    body = await request.body()
    if len(body) > MAX_RULESET_BYTES:
        raise bad_request("a rule file is at most 1 MiB", field="body")
    _, specs = parse_ruleset(body)
    out = await asyncio.to_thread(hub_of(request).alerts.apply_ruleset, name, specs, who)
    return JSONResponse(out)


@router.post("/api/v1/rulesets/builtin/{name}", summary="Install a built-in rule set (operator)",
             description="Creates the set's missing rules; rules already installed are left as they are.")  # fmt: skip
async def install_builtin(request: Request, name: Annotated[str, Path(max_length=100)]) -> Response:
    who = _operator(request)
    try:
        set_name, specs = read_builtin(name)
    except KeyError as exc:
        raise not_found(str(exc.args[0]), field="name") from None
    alerts = hub_of(request).alerts
    out = await asyncio.to_thread(alerts.apply_ruleset, set_name, specs, who, prune=False, update=False)
    return JSONResponse(out)


# -- alerts --------------------------------------------------------------------------------------------------------
@router.get(
    "/api/v1/alerts",
    summary="Alerts, newest first",
    description="`state` open | acknowledged | resolved | active (open or acknowledged); `since`: changed at or "
    "after (ISO 8601 with offset). Resolved alerts are kept: the full history is here.",
)
async def list_alerts(
    request: Request,
    state: Literal["open", "acknowledged", "resolved", "active"] | None = Query(None),
    rule: int | None = Query(None, ge=1, le=MAX_ID),
    subject: int | None = Query(None, ge=1, le=MAX_ID, description="Datastream or Thing id"),
    subject_type: Literal["datastream", "thing"] | None = Query(None),
    severity: Severity | None = Query(None),
    since: str | None = Query(None, max_length=100, json_schema_extra={"format": "date-time"}),
    limit: int = Query(100, ge=1, le=10_000),
    offset: int = Query(0, ge=0, le=MAX_ID),
) -> Response:
    _reader(request)
    when = time_param(since, "since")
    out = await asyncio.to_thread(hub_of(request).alerts.query_alerts, state, rule, subject, subject_type, when,
                                  severity, limit, offset)  # fmt: skip
    return JSONResponse(out)


@router.get(
    "/api/v1/alerts/stream",
    include_in_schema=False,  # an endless text/event-stream; documented in the README
)
async def alert_stream(
    request: Request,
    last_event_id: Annotated[str | None, Header(max_length=30)] = None,
    after: int | None = Query(None, ge=0, le=MAX_ID, description="replay events after this id"),
    keepalive: float = Query(KEEPALIVE_S, ge=0.2, le=300),
) -> Response:
    """Server-sent events: ``event: alert`` with the event as JSON (``id`` is the event id), a ``: keep-alive``
    comment every ``keepalive`` seconds. A client reconnecting with ``Last-Event-ID`` gets what it missed. One that
    falls ``stream_buffer_events`` events behind gets ``event: dropped`` (JSON with the ``reason``) and its stream
    ends; past ``max_stream_clients`` live streams the answer is 503 with ``Retry-After``."""
    _reader(request)
    hub = hub_of(request)
    engine = hub.alerts
    start = after
    if start is None and last_event_id is not None:
        try:
            start = int(last_event_id)
        except ValueError:
            raise bad_request("Last-Event-ID must be an event id", field="last-event-id") from None
    slot = take_slot(hub.settings.max_stream_clients)
    sub: Subscriber[bytes] = Subscriber(slot, hub.settings.stream_buffer_events, resumable=True)
    engine.broadcaster.subscribe(sub)  # before the replay: nothing committed in between is missed

    async def events() -> AsyncIterator[bytes]:
        try:
            yield message(comment="connected", retry=3000)
            last = start if start is not None else -1
            if start is not None:
                for eid, payload in await asyncio.to_thread(engine.events_after, start):
                    yield sse_message(eid, payload)
                    last = eid
            while True:
                msg = await sub.next()  # each message is framed once by the engine, for every stream
                if msg is None:  # the engine stopped, or this client fell behind: it resumes from Last-Event-ID
                    if sub.reason is not None:
                        yield sub.farewell()
                    return
                if sse_message_id(msg) <= last:
                    continue  # already sent from the replay
                yield msg
        finally:
            engine.broadcaster.unsubscribe(sub)

    return event_stream(events(), keepalive_s=keepalive, keepalive="keep-alive", slot=slot, subscriber=sub)


@router.get("/api/v1/alerts/status", summary="The alert engine: rules, watched pairs, queue, counters")
async def engine_status(request: Request) -> Response:
    _reader(request)
    return JSONResponse(await asyncio.to_thread(hub_of(request).alerts.status))


@router.get("/api/v1/alerts/{alert_id}", summary="One alert with its event history")
async def get_alert(request: Request, alert_id: IdPath) -> Response:
    _reader(request)
    return JSONResponse(await asyncio.to_thread(hub_of(request).alerts.get_alert, alert_id))


@router.post("/api/v1/alerts/{alert_id}/acknowledge", summary="Acknowledge an open alert (operator)",
             description="Records who (the API key's name) and when; 409 if it is already acknowledged or "
             "resolved. An escalation re-opens an acknowledged alert.", responses=problems(409))  # fmt: skip
async def acknowledge(request: Request, alert_id: IdPath, body: Note | None = None) -> Response:
    who = _operator(request)
    note = body.note if body else None
    return JSONResponse(await asyncio.to_thread(hub_of(request).alerts.acknowledge, alert_id, who, note))


@router.post(
    "/api/v1/alerts/{alert_id}/resolve",
    summary="Resolve an alert by hand (operator)",
    description="The rule raises a new alert for the subject only after its condition has cleared.",
    responses=problems(409),
)
async def resolve(request: Request, alert_id: IdPath, body: Note | None = None) -> Response:
    who = _operator(request)
    note = body.note if body else None
    return JSONResponse(await asyncio.to_thread(hub_of(request).alerts.resolve, alert_id, who, note))


# -- webhooks ------------------------------------------------------------------------------------------------------
@router.post(
    "/api/v1/webhooks",
    status_code=201,
    tags=["Alerts"],
    summary="Register a webhook (operator)",
    description="Every alert event passing the filter is POSTed as JSON with `X-CityHub-Signature: "
    "sha256=<hex HMAC-SHA256 of the body with the secret>`, `X-CityHub-Event` and `X-CityHub-Delivery`; "
    "a failure is retried with exponential back-off, each attempt logged as a coarse outcome. The URL's host must "
    "resolve to public addresses only (checked now and before every attempt; the POST goes to the checked "
    "address) unless it is in the `webhook_allow_hosts` setting; redirects are not followed.",
)
async def create_webhook(request: Request, spec: WebhookSpec) -> Response:
    who = _operator(request)
    hooks = hub_of(request).alerts.webhooks
    hook = await asyncio.to_thread(
        hooks.create, spec.url, spec.secret, spec.filter.model_dump(exclude_none=True), spec.description, who
    )
    return JSONResponse(hook.to_json(), status_code=201)


@router.get("/api/v1/webhooks", summary="Registered webhooks (operator)", openapi_extra=KEYED)
async def list_webhooks(request: Request) -> Response:
    _operator(request)
    hooks = hub_of(request).alerts.webhooks
    return JSONResponse({"value": [h.to_json() for h in sorted(hooks.hooks.values(), key=lambda h: h.id)]})


@router.get("/api/v1/webhooks/{webhook_id}", summary="One webhook (operator)", openapi_extra=KEYED)
async def get_webhook(request: Request, webhook_id: IdPath) -> Response:
    _operator(request)
    hook = hub_of(request).alerts.webhooks.hooks.get(webhook_id)
    if hook is None:
        raise not_found(f"no webhook {webhook_id}", field="webhook_id")
    return JSONResponse(hook.to_json())


@router.delete("/api/v1/webhooks/{webhook_id}", summary="Delete a webhook and its delivery log (operator)")
async def delete_webhook(request: Request, webhook_id: IdPath) -> Response:
    _operator(request)
    if not await asyncio.to_thread(hub_of(request).alerts.webhooks.delete, webhook_id):
        raise not_found(f"no webhook {webhook_id}", field="webhook_id")
    return JSONResponse({"deleted": webhook_id})


@router.get(
    "/api/v1/webhooks/{webhook_id}/deliveries",
    summary="A webhook's delivery log, newest first (operator)",
    description="Each attempt's outcome is coarse on purpose: `delivered: HTTP 2xx`, `failed: HTTP 4xx` (the "
    "status class only), `failed: HTTP 3xx, redirect not followed`, `failed: no response (could not connect or "
    "timed out)`, `failed: could not resolve host`, `refused: non-public address`; no response bodies and no "
    "network error texts (the hub's log has those).",
    openapi_extra=KEYED,
)
async def deliveries(
    request: Request,
    webhook_id: IdPath,
    status: Literal["pending", "delivered", "failed"] | None = Query(None),
    limit: int = Query(100, ge=1, le=10_000),
    offset: int = Query(0, ge=0, le=MAX_ID),
) -> Response:
    _operator(request)
    hooks = hub_of(request).alerts.webhooks
    if webhook_id not in hooks.hooks:
        raise not_found(f"no webhook {webhook_id}", field="webhook_id")
    return JSONResponse({"value": await asyncio.to_thread(hooks.deliveries, webhook_id, status, limit, offset)})
