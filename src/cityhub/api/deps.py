"""What routers need from the process, as FastAPI dependencies: the hub, the caller's principal, roles.

Routers depend on this module, never on :mod:`cityhub.app`, so the import graph runs one way
(app → routers → deps → hub). The key is read by FastAPI security schemes, so the OpenAPI document declares
how to authenticate (``Authorization: Bearer <key>``, HTTP Basic with the key as the password, or ``X-API-Key``).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Depends, Request
from fastapi.responses import Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer

from cityhub.auth.keys import ANONYMOUS, Principal, key_of
from cityhub.errors import ProblemError
from cityhub.hub import Hub

_bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer <key>`")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")
_basic = HTTPBasic(
    auto_error=False, description="an API key as the password, any user name (what clients made for FROST-Server send)"
)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def problem(status: int, body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/problem+json")


def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def principal(request: Request) -> Principal:
    """Authenticate from ``Authorization: Bearer <key>`` or ``X-API-Key`` (done once, before the body, by
    :class:`cityhub.api.guard.Guard`, whose answer is reused here)."""
    hub = hub_of(request)
    who: Principal | None = request.scope.get("state", {}).get("principal")
    if who is not None and who is not ANONYMOUS:
        return who
    key = key_of(request.headers.get("authorization"), request.headers.get("x-api-key"))
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


async def declare_security(
    _b: HTTPAuthorizationCredentials | None = Depends(_bearer),
    _k: str | None = Depends(_api_key),
    _p: HTTPBasicCredentials | None = Depends(_basic),
) -> None:
    """An app-wide dependency that only declares the key schemes in the OpenAPI document; routes check roles
    themselves (``require``), since most of them are open to anonymous readers. Async although it does nothing:
    FastAPI runs a plain function in a worker thread, a hop on every request."""
