"""The OpenAPI document as the API behaves, and the ``Allow`` header of 405 answers.

FastAPI documents what a route's signature says; what the middlewares and exception handlers around every route
answer (401 and 429 from :mod:`cityhub.api.guard`, 413 from :mod:`cityhub.api.limits`, 400 instead of FastAPI's
422 for a request that fails validation) is added here, in one place, so that no route can forget it. Routes
document what only they answer (404, 409, 415, 503) with :func:`problems` in their decorator.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.types import Scope

from cityhub.api.guard import LIMITED_PREFIXES, READ_ONLY_POSTS, UNLIMITED_PATHS
from cityhub.config import Settings

PROBLEM_MEDIA = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details, with the `field` (or query option, header) at fault.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "field": {"type": ["string", "null"]},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
}

DESCRIPTIONS = {
    400: "Bad Request: a parameter or the body is invalid (`field` names it)",
    401: "Unauthorized: no API key where one is needed, or an unknown or revoked key",
    403: "Forbidden: the key's role may not do this",
    404: "Not Found",
    405: "Method Not Allowed (`Allow` lists the methods of the resource)",
    409: "Conflict with what is stored",
    413: "Content Too Large: the body is over the hub's limit",
    415: "Unsupported Media Type",
    422: "Unprocessable Content: well-formed, but not something the hub can act on",
    429: "Too Many Requests: past a rate limit (`Retry-After` says when to retry)",
    503: "Service Unavailable: overloaded for now (`Retry-After` says when to retry)",
}

_RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer", "minimum": 1}}
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": 'Bearer realm="cityhub"', "schema": {"type": "string"}}},
    405: {"Allow": {"description": "the methods of the resource", "schema": {"type": "string"}}},
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}

# Extension key a route sets (openapi_extra) when even reading it needs a key: operators' views, webhooks.
KEY_REQUIRED = "x-cityhub-key-required"
KEYED = {KEY_REQUIRED: True}
_SECURITY: list[dict[str, list[str]]] = [{"HTTPBearer": []}, {"APIKeyHeader": []}]


def problem_response(status: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": DESCRIPTIONS.get(status, "Error"),
        "content": {PROBLEM_MEDIA: {"schema": PROBLEM_REF}},
    }
    if status in _HEADERS:
        out["headers"] = _HEADERS[status]
    return out


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route decorator: the errors only this route gives, as problem+json."""
    return {s: problem_response(s) for s in statuses}


def json_ok(schema: dict[str, Any], description: str = "Successful Response") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _is_fastapi_validation(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def _document(path: str, method: str, op: dict[str, Any], settings: Settings) -> None:
    responses: dict[str, Any] = op.setdefault("responses", {})
    # Validation errors are answered 400 by the app's handler, never with FastAPI's 422 body.
    if "422" in responses and _is_fastapi_validation(responses["422"]):
        del responses["422"]
    for status, response in responses.items():
        content = response.get("content", {})
        if status.startswith("2") and content.get("application/json", {}).get("schema") == {"type": "string"}:
            # A handler that returns a Response: FastAPI cannot see its body; every such body is a JSON object.
            content["application/json"]["schema"] = {"type": "object"}
        if not status.startswith("2") and PROBLEM_MEDIA not in content and "application/json" in content:
            content[PROBLEM_MEDIA] = content.pop("application/json")
    guarded = path not in UNLIMITED_PATHS
    codes: set[int] = set()
    if op.get("parameters") or "requestBody" in op:
        codes.add(400)
    if any(p.get("in") == "path" for p in op.get("parameters", [])):
        codes.add(404)
    if "requestBody" in op:
        codes.add(413)
    if guarded:
        codes |= {401, 429}  # a bad key anywhere, a write without a key, the rate limits
        if path.startswith(LIMITED_PREFIXES):
            codes.add(403)
    for code in sorted(codes):
        responses.setdefault(str(code), problem_response(code))
    reads = method in ("get", "head") or path in READ_ONLY_POSTS
    if not op.pop(KEY_REQUIRED, False) and reads and (settings.anonymous_read or not path.startswith(LIMITED_PREFIXES)):
        op["security"] = [{}, *_SECURITY]  # anonymous readers welcome: a key is optional
    elif guarded:
        op["security"] = list(_SECURITY)
    else:
        op.pop("security", None)


def install(app: FastAPI, settings: Settings) -> None:
    """Replace ``app.openapi`` with one that documents the app-wide answers (see the module docstring)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = generate()
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = PROBLEM_SCHEMA
        for path, item in doc.get("paths", {}).items():
            for method, op in item.items():
                if isinstance(op, dict) and "responses" in op:
                    _document(path, method, op, settings)
        text = repr(doc["paths"])
        for unused in ("HTTPValidationError", "ValidationError"):
            if f"/{unused}'" not in text:
                schemas.pop(unused, None)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


# -- Allow ----------------------------------------------------------------------------------------------------------
_ORDER = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
# What the undocumented catch-all routes of /v1.1 take (sensorthings.py); they refuse most of it on a given path.
CATCH_ALL_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})


def _templates(app: Any) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """The documented paths as regular expressions, with their methods (built once per app: routes are read
    through the OpenAPI document, since FastAPI's nested routers hide them from ``app.routes``)."""
    cached: list[tuple[re.Pattern[str], frozenset[str]]] | None = getattr(app.state, "allow_templates", None)
    if cached is None:
        cached = []
        for path, item in app.openapi().get("paths", {}).items():
            parts = re.split(r"(\{[^}]+\})", path)
            regex = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
            methods = {m.upper() for m in item if m.upper() in CATCH_ALL_METHODS}
            if "GET" in methods:
                methods.add("HEAD")
            cached.append((re.compile(f"^{regex}$"), frozenset(methods)))
        app.state.allow_templates = cached
    return cached


def documented_methods(app: Any, path: str) -> set[str]:
    return {m for regex, methods in _templates(app) if regex.match(path) for m in methods}


def allowed_methods(app: Any, scope: Scope, starlette_allow: str | None = None) -> list[str]:
    """The methods the path answers: its documented ones; else those Starlette found; else (an undocumented
    path of the /v1.1 catch-all) the catch-all's, less the one just refused."""
    allowed = documented_methods(app, scope["path"])
    if not allowed and starlette_allow:
        allowed = {m.strip() for m in starlette_allow.split(",") if m.strip()}
    if not allowed:
        allowed = set(CATCH_ALL_METHODS) - {scope.get("method", "")}
    return sorted(allowed, key=lambda m: _ORDER.index(m) if m in _ORDER else len(_ORDER))


def documented_elsewhere(app: Any, scope: Scope) -> list[str] | None:
    """For a catch-all route: the Allow list when a documented route owns this path under other methods."""
    methods = documented_methods(app, scope["path"])
    return allowed_methods(app, scope) if methods and scope.get("method") not in methods else None
