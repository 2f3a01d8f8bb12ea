"""The request-body limits, enforced before the body is read: ``Settings.max_body_bytes`` for the bulk routes
(``BULK_PATHS``: CSV, NDJSON, Arrow, data arrays), ``Settings.max_json_body_bytes`` for every other route, whose
bodies are entities, rules and queries that no client needs megabytes for.

A declared ``Content-Length`` over the limit is answered 413 at once, without reading a byte; a body sent
chunked (no length) is counted as it streams and cut off with a 413 the moment it passes the limit, so no
route ever holds more than the limit in memory.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Routes whose bodies are bulk data; more will join (GTFS feeds, tap files).
BULK_PATHS = frozenset({"/api/v1/ingest", "/v1.1/CreateObservations"})


class BodyTooLarge(Exception):
    pass


def _problem(limit: int, path: str) -> bytes:
    return orjson.dumps(
        {
            "type": "about:blank",
            "title": "Content Too Large",
            "status": 413,
            "detail": f"the request body is larger than this hub's limit of {limit:,} bytes",
            "field": "body",
            "instance": path,
        }
    )


class BodyLimit:
    """Pure ASGI middleware (no buffering, unlike BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp, max_bytes: int, json_max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.json_max_bytes = max_bytes if json_max_bytes is None else json_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes if scope["path"] in BULK_PATHS else self.json_max_bytes
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await self._refuse(scope, send, limit)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(scope, send, limit)

    async def _refuse(self, scope: Scope, send: Send, limit: int) -> None:
        body = _problem(limit, scope.get("path", ""))
        headers: list[Any] = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
