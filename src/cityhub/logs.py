"""Log output: one line per record on stderr, as text or as JSON objects (``--log-format json``, for a log
collector), and the access log: one record per HTTP request with its method, path, status and duration.

uvicorn's own records (start-up, errors) go through the same handler, so a JSON log holds nothing else."""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

import orjson

ACCESS = logging.getLogger("cityhub.access")
# Attributes every LogRecord has: whatever else a record carries came from ``extra=`` and goes into the JSON.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def configure(level: str = "info", fmt: str = "text") -> None:
    """Send every logger's records at ``level`` and above to stderr, as ``fmt`` (text | json)."""
    if fmt not in ("text", "json"):
        raise ValueError(f"--log-format must be text or json, not {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class AccessLog:
    """ASGI middleware: ``GET /v1.1/Things?$top=2 200 3.1 ms`` (INFO, logger ``cityhub.access``) once a response has
    been sent, with ``method``, ``path``, ``status`` and ``ms`` as fields of a JSON record. A stream (server-sent
    events) is logged when it ends. Costs nothing when INFO is off for the logger."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not ACCESS.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 0

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            status = status or 500  # failed before its response began: the server answers 500
            ms = round((time.perf_counter() - t0) * 1000, 1)
            query = scope.get("query_string", b"").decode("latin-1")
            path = scope["path"] + (f"?{query}" if query else "")
            ACCESS.info("%s %s %d %.1f ms", scope["method"], path, status, ms,
                        extra={"method": scope["method"], "path": path, "status": status, "ms": ms})  # fmt: skip
