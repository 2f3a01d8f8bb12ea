"""Who may spend the hub's work, decided from the request line and headers before a byte of the body is read.

A pure ASGI middleware, outermost but for the body limit, so that neither an anonymous 100 MB JSON body nor a
flood of guessed keys costs more than a header check:

- a key that is unknown or revoked is a 401 at once (the key file is looked at again at most every
  ``keys_check_interval_s``, so a revocation takes effect within that time, and at once for a key not known
  yet); failed key checks are counted per client address and past
  ``rate_limit_auth_failures`` answered 429 without checking the key at all;
- a write (POST, PUT, PATCH, DELETE) without a key is a 401 at once, except the read-only POSTs that carry a
  long selection in their body;
- API requests (``/v1.1``, ``/api/``) without a key are limited per client address (``rate_limit_anonymous``),
  requests with one per key (``rate_limit_keyed``), with 429 and ``Retry-After``.

Rate limits use the ``limits`` library (the engine behind slowapi and Flask-Limiter): a sliding-window counter
in memory, which is per process; several hub processes would share a Redis storage instead.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

import orjson
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from cityhub.auth.keys import ANONYMOUS, KeyStore, Principal, key_of
from cityhub.config import Settings
from cityhub.errors import ProblemError

# POSTs that only read (a long id list in the body): open to anonymous readers like their GET forms.
READ_ONLY_POSTS = frozenset({"/api/v1/latest", "/api/v1/aggregate"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Liveness probes from a load balancer or orchestrator must never be rate limited.
UNLIMITED_PATHS = frozenset({"/healthz"})
# The APIs are what costs: the dashboard's page, scripts and styles are static files and are not counted.
LIMITED_PREFIXES = ("/v1.1", "/api/")


def _items(spec: str) -> list[RateLimitItem]:
    return parse_many(spec) if spec.strip() else []


def request_key(headers: dict[bytes, bytes]) -> str | None:
    """The API key the request presents (see :func:`cityhub.auth.keys.key_of`), as deps.principal reads it."""
    auth, api_key = headers.get(b"authorization"), headers.get(b"x-api-key")
    return key_of(
        auth.decode("latin-1") if auth is not None else None, api_key.decode("latin-1") if api_key is not None else None
    )


class RateLimits:
    """The three limits of the settings over one in-memory store."""

    def __init__(self, settings: Settings) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())
        self.anonymous = _items(settings.rate_limit_anonymous)
        self.keyed = _items(settings.rate_limit_keyed)
        self.auth_failures = _items(settings.rate_limit_auth_failures)
        # Addresses with a failed key check that may still weigh in their limit (a sliding window counter counts
        # the previous window too): every other address skips the limiter's check, ~4 % of a single POST's time.
        self._failed: dict[str, float] = {}
        self._failure_memory_s = 2 * max((item.get_expiry() for item in self.auth_failures), default=0)

    def hit(self, items: list[RateLimitItem], *ids: str) -> float | None:
        """Count one request; None if it is within every limit, else seconds until it would be."""
        refused = [item for item in items if not self._limiter.hit(item, *ids)]
        return self._retry_after(refused, ids) if refused else None

    def blocked(self, items: list[RateLimitItem], *ids: str) -> float | None:
        """Like ``hit`` without counting (is this client already past a limit?)."""
        refused = [item for item in items if not self._limiter.test(item, *ids)]
        return self._retry_after(refused, ids) if refused else None

    def auth_blocked(self, address: str) -> float | None:
        """``blocked`` for the failed key checks of ``address``."""
        last = self._failed.get(address)
        if last is None:
            return None
        if time.monotonic() - last > self._failure_memory_s:
            del self._failed[address]
            return None
        return self.blocked(self.auth_failures, "auth", address)

    def auth_failed(self, address: str) -> None:
        """Count a failed key check of ``address``."""
        now = time.monotonic()
        if len(self._failed) >= 10_000:  # many guessing addresses: forget those whose failures have expired
            self._failed = {a: t for a, t in self._failed.items() if now - t <= self._failure_memory_s}
        self._failed[address] = now
        self.hit(self.auth_failures, "auth", address)

    def _retry_after(self, refused: list[RateLimitItem], ids: tuple[str, ...]) -> float:
        now = time.time()
        resets = [self._limiter.get_window_stats(item, *ids).reset_time for item in refused]
        return max(1.0, max(resets) - now)


class Guard:
    """Authentication and rate limits before the body (see the module docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings, keys: KeyStore | None = None) -> None:
        self.app = app
        self.settings = settings
        self.limits = RateLimits(settings)
        self._keys = keys

    def _keystore(self, scope: Scope) -> KeyStore:
        if self._keys is None:
            hub = scope["app"].state.hub
            self._keys = hub.keys
        return self._keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        address = (scope.get("client") or ("unknown", 0))[0]
        key = request_key(dict(scope["headers"]))
        who: Principal = ANONYMOUS
        if key is not None:
            wait = self.limits.auth_blocked(address)
            if wait is not None:
                await self._refuse(send, 429, "Too Many Requests",
                                   "too many failed key checks from this address", path, "authorization", wait)
                return
            found = self._keystore(scope).authenticate(key)
            if found is None:
                self.limits.auth_failed(address)
                await self._refuse(send, 401, "Unauthorized", "unknown or revoked API key", path, "authorization")
                return
            who = found
            wait = None
            if self.limits.keyed:
                wait = self.limits.hit(self.limits.keyed, "key", hashlib.sha256(key.encode()).hexdigest())
        else:
            if scope["method"] in WRITE_METHODS and path not in READ_ONLY_POSTS:
                await self._refuse(send, 401, "Unauthorized", "this needs an API key", path, "authorization")
                return
            wait = None
            if path.startswith(LIMITED_PREFIXES):
                wait = self.limits.hit(self.limits.anonymous, "anonymous", address)
        if wait is not None:
            await self._refuse(send, 429, "Too Many Requests", "too many requests from this client", path, "client",
                               wait)
            return
        scope.setdefault("state", {})["principal"] = who
        await self.app(scope, receive, send)

    async def _refuse(
        self, send: Send, status: int, title: str, detail: str, path: str, field: str, wait: float | None = None
    ) -> None:
        body = orjson.dumps(ProblemError(status, title, detail, field=field).to_problem(path))
        headers: list[Any] = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="cityhub"'))
        if wait is not None:
            headers.append((b"retry-after", str(math.ceil(wait)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
