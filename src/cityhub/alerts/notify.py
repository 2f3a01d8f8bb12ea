"""Where alert events go: the SSE stream (a broadcaster to bounded buffers), MQTT, and signed webhooks.

None of them may slow evaluation, let alone ingestion: the broadcaster hands each event to every subscriber's
event loop without waiting (a subscriber that falls ``stream_buffer_events`` events behind is dropped and
reconnects with ``Last-Event-ID``), MQTT publishing is paho's non-blocking queue, and webhooks are posted by their
own thread from a persisted outbox with exponential back-off.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import hmac
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pyarrow as pa

from cityhub.alerts import targets
from cityhub.errors import bad_request
from cityhub.sse import Subscriber, message
from cityhub.store.base import Store
from cityhub.store.ops.webhooks import DELIVERY_SCHEMA, WebhookRecord
from cityhub.timefmt import iso_time

log = logging.getLogger(__name__)


class Broadcaster:
    """Fan-out of alert events to the SSE streams, each a :class:`~cityhub.sse.Subscriber` on its server's event
    loop. Each event is framed once (:func:`sse_message`); a publication costs one hand-over a loop and one
    reference a subscriber, and never waits for one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[asyncio.AbstractEventLoop, set[Subscriber[bytes]]] = {}
        self.closed = False

    def subscribe(self, sub: Subscriber[bytes]) -> None:
        """Add ``sub`` (on the running loop, which then gets its events)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._subs.setdefault(loop, set()).add(sub)
        if self.closed:
            sub.end()

    def unsubscribe(self, sub: Subscriber[bytes]) -> None:
        with self._lock:
            for loop, subs in list(self._subs.items()):
                subs.discard(sub)
                if not subs:
                    del self._subs[loop]

    @property
    def subscribers(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._subs.values())

    def publish(self, *messages: bytes) -> None:
        """Hand framed ``messages`` to every subscriber (from any thread)."""
        if messages:
            self._each_loop(self._offer, messages)

    def _each_loop(self, fn: Callable[[tuple[Subscriber[bytes], ...], tuple[bytes, ...]], None],
                   messages: tuple[bytes, ...]) -> None:  # fmt: skip
        with self._lock:
            hand = [(loop, tuple(subs)) for loop, subs in self._subs.items()]
        for loop, subs in hand:
            try:
                loop.call_soon_threadsafe(fn, subs, messages)
            except RuntimeError:  # that loop is closed
                with self._lock:
                    self._subs.pop(loop, None)

    def _offer(self, subs: tuple[Subscriber[bytes], ...], messages: tuple[bytes, ...]) -> None:
        for sub in subs:
            for m in messages:
                if not sub.offer(m, 1):  # a stalled client is dropped: it resumes from Last-Event-ID
                    self.unsubscribe(sub)
                    break

    @staticmethod
    def _end(subs: tuple[Subscriber[bytes], ...], _: tuple[bytes, ...]) -> None:
        for sub in subs:
            sub.end()

    def close(self) -> None:
        self.closed = True
        self._each_loop(self._end, ())


def sse_message(event_id: int, payload: bytes) -> bytes:
    """An alert event (its JSON ``payload``) as an SSE message, framed once for every stream."""
    return message(payload.decode(), event="alert", id=event_id)


def sse_message_id(msg: bytes) -> int:
    """The event id of an :func:`sse_message`."""
    start = msg.index(b"id: ") + 4
    return int(msg[start : msg.index(b"\n", start)])


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# -- webhooks -------------------------------------------------------------------------------------------------------
@dataclass
class Webhook:
    id: int
    url: str
    secret: str
    filter: dict[str, Any]
    description: str | None
    created_at: datetime
    created_by: str | None

    def wants(self, event: dict[str, Any]) -> bool:
        f = self.filter or {}
        alert = event["alert"]
        if f.get("rules") and alert["rule"]["id"] not in f["rules"]:
            return False
        if f.get("severities") and alert["severity"] not in f["severities"]:
            return False
        if f.get("events") and event["event"] not in f["events"]:
            return False
        return not (f.get("subject_type") and alert["subject"]["type"] != f["subject_type"])

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "filter": self.filter or {},
            "description": self.description,
            "secret": "(set; not shown)",
            "createdAt": self.created_at,
            "createdBy": self.created_by,
        }


# The delivery log's JSON names for the stored columns (the others are the same).
_DELIVERY_KEYS = {"event_id": "eventId", "alert_id": "alertId", "created_at": "createdAt",
                  "next_attempt_at": "nextAttemptAt", "delivered_at": "deliveredAt", "last_status": "lastStatus",
                  "last_error": "lastError"}  # fmt: skip


@dataclass(order=True)
class _Due:
    at: float
    delivery_id: int = field(compare=True)
    webhook_id: int = field(compare=False, default=0)
    payload: bytes = field(compare=False, default=b"")
    attempts: int = field(compare=False, default=0)
    event: str = field(compare=False, default="")
    log: list[dict[str, Any]] = field(compare=False, default_factory=list)


class Webhooks:
    """Registered webhooks and their delivery thread.

    A delivery row is written (status ``pending``) in the same transaction as the alert event it carries, so a
    restart resumes it. Each attempt POSTs the JSON body with ``X-CityHub-Signature: sha256=<HMAC-SHA256 of the
    body with the webhook's secret>``; a non-2xx answer or a network error is retried after ``base_delay_s`` ×
    2^(attempt−1) (capped at ``max_delay_s``) until ``max_attempts``, then the delivery is ``failed``. Every
    attempt is logged on the row, as a coarse outcome (:data:`OUTCOMES`).

    Targets must be public unless ``allow_hosts()`` (``Settings.webhook_allow_hosts``, read at each use so a
    change applies to the next attempt) names them: checked at registration and before every attempt
    (:mod:`cityhub.alerts.targets`). Redirects are not followed.
    """

    def __init__(
        self,
        store: Store,
        *,
        base_delay_s: float = 2.0,
        max_delay_s: float = 600.0,
        max_attempts: int = 8,
        timeout_s: float = 10.0,
        allow_hosts: Callable[[], str] = lambda: "",
    ) -> None:
        self.store = store
        self.allow_hosts = allow_hosts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._heap: list[_Due] = []
        self._stop = False
        self.hooks: dict[int, Webhook] = {}
        self._thread = threading.Thread(target=self._run, name="alert-webhooks", daemon=True)
        self.delivered = 0
        self._client: httpx.Client | None = None
        self.failed_attempts = 0

    # -- registry --------------------------------------------------------------------------------------------------
    def load(self) -> None:
        for wid, url, secret, filt, desc, created_at, created_by in self.store.webhooks.load_webhooks():
            self.hooks[wid] = Webhook(wid, url, secret, orjson.loads(filt) if filt else {}, desc,
                                      created_at, created_by)  # fmt: skip
        now = time.monotonic()
        for d in self.store.webhooks.pending_deliveries():
            next_at = d.next_attempt_at
            wait = max(0.0, (next_at - datetime.now(UTC)).total_seconds()) if next_at else 0.0
            entries = orjson.loads(d.log) if d.log else []
            self._schedule(_Due(now + wait, d.id, d.webhook_id, d.payload.encode(), d.attempts, d.event, entries))

    def check_target(self, url: str) -> None:
        """A ``url`` field 400 unless ``url`` may be a webhook target now (it is checked again at every attempt)."""
        try:
            targets.check(url, self.allow_hosts())
        except targets.TargetRefused as exc:
            invalid = exc.outcome == targets.REFUSED_INVALID
            raise bad_request(targets.CREATE_INVALID if invalid else targets.CREATE_REFUSED, field="url") from None

    def create(self, url: str, secret: str, filt: dict[str, Any], description: str | None, who: str) -> Webhook:
        self.check_target(url)
        wid = int(self.store.allocate_ids("webhooks", 1)[0])
        now = datetime.now(UTC)
        self.store.webhooks.insert_webhook(
            WebhookRecord(wid, url, secret, orjson.dumps(filt).decode(), description, now, who)
        )
        hook = Webhook(wid, url, secret, filt, description, now, who)
        with self._lock:
            self.hooks[wid] = hook
        return hook

    def delete(self, wid: int) -> bool:
        with self._lock:
            if self.hooks.pop(wid, None) is None:
                return False
        self.store.webhooks.delete_webhook(wid)
        return True

    def deliveries(self, wid: int, status: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        out = []
        for row in self.store.webhooks.deliveries(wid, status, limit, offset):
            d = {_DELIVERY_KEYS.get(k, k): v for k, v in row.items()}
            d["log"] = [_coarse_entry(e) for e in orjson.loads(d["log"])] if d["log"] else []
            d["lastStatus"] = status_class(d["lastStatus"])
            d["lastError"] = _coarse_error(d["lastError"])
            out.append(d)
        return out

    # -- outbox ----------------------------------------------------------------------------------------------------
    def rows_for(self, events: list[dict[str, Any]]) -> tuple[pa.Table | None, list[_Due]]:
        """Delivery rows (to commit with the events) and their schedule (to hand over after the commit)."""
        with self._lock:
            hooks = list(self.hooks.values())
        pairs = [(h, e) for e in events for h in hooks if h.wants(e)]
        if not pairs:
            return None, []
        ids = self.store.allocate_ids("webhook_deliveries", len(pairs))
        now = datetime.now(UTC)
        rows, due = [], []
        mono = time.monotonic()
        for did, (h, e) in zip(ids.tolist(), pairs, strict=True):
            payload = orjson.dumps(e, option=orjson.OPT_SERIALIZE_NUMPY)
            rows.append({"id": did, "webhook_id": h.id, "event_id": e["id"], "alert_id": e["alert"]["id"],
                         "event": e["event"], "status": "pending", "attempts": 0, "created_at": now,
                         "next_attempt_at": now, "payload": payload.decode(), "log": "[]"})  # fmt: skip
            due.append(_Due(mono, did, h.id, payload, 0, e["event"]))
        return pa.Table.from_pylist(rows, schema=DELIVERY_SCHEMA), due

    def schedule(self, due: list[_Due]) -> None:
        for d in due:
            self._schedule(d)

    def _schedule(self, d: _Due) -> None:
        with self._cond:
            heapq.heappush(self._heap, d)
            self._cond.notify()

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._client is not None:
            self._client.close()  # ends a delivery in flight: it stays pending and is sent again after a restart
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def pending(self) -> int:
        with self._lock:
            return len(self._heap)

    def _run(self) -> None:
        # No keep-alive: connections are made to a checked address with the webhook's host in Host/SNI, and a
        # pooled connection (keyed by address) could carry another webhook's request under a TLS session that was
        # verified for a different name.
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(timeout=self.timeout_s, follow_redirects=False, limits=limits) as client:
            self._client = client
            while True:
                with self._cond:
                    while not self._stop and (not self._heap or self._heap[0].at > time.monotonic()):
                        self._cond.wait(None if not self._heap else max(0.0, self._heap[0].at - time.monotonic()))
                    if self._stop:
                        return
                    d = heapq.heappop(self._heap)
                    hook = self.hooks.get(d.webhook_id)
                if hook is None:
                    continue  # deleted meanwhile
                try:
                    self._attempt(client, hook, d)
                except Exception:  # never let one delivery stop the thread
                    log.exception("webhook delivery %d failed unexpectedly", d.delivery_id)

    def _post(self, client: httpx.Client, hook: Webhook, d: _Due) -> tuple[str, int | None, float | None]:
        """One attempt: (outcome, status rounded down to its class, ms until the answer) — the status and time only
        when an HTTP answer came back."""
        try:
            target = targets.check(hook.url, self.allow_hosts())  # again: DNS answers change after registration
        except targets.TargetRefused as exc:
            return exc.outcome, None, None
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "CityHub-Alerts/1",
            "X-CityHub-Event": d.event,
            "X-CityHub-Delivery": str(d.delivery_id),
            "X-CityHub-Signature": sign(hook.secret, d.payload),
        }
        failure: Exception | None = None
        for url, extra, extensions in target.requests():
            t0 = time.perf_counter()
            try:
                # Streamed and closed unread: the body is neither stored nor worth downloading.
                with client.stream("POST", url, content=d.payload, headers={**headers, **extra},
                                   timeout=self.timeout_s, extensions=extensions) as resp:  # fmt: skip
                    status = resp.status_code
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failure = exc
                continue  # the name's next checked address
            except Exception as exc:  # whatever else went wrong (TLS, protocol, shutdown): still only "no response"
                failure = exc
                break
            ms = round((time.perf_counter() - t0) * 1000, 1)
            return outcome_of(status), status // 100 * 100, ms
        # The reason stays in the server log, for whoever runs the hub; the delivery log an operator key reads says
        # only that no answer came, whether the port was closed, filtered or something else spoke on it.
        log.info("webhook %d delivery %d: no HTTP answer (%s: %s)", hook.id, d.delivery_id,
                 type(failure).__name__, failure)  # fmt: skip
        return NO_RESPONSE, None, None

    def _attempt(self, client: httpx.Client, hook: Webhook, d: _Due) -> None:
        d.attempts += 1
        started = datetime.now(UTC)
        outcome, status, ms = self._post(client, hook, d)
        if self._stop:
            return  # shutting down: not an attempt; the delivery stays pending
        ok = outcome == DELIVERED
        error = None if ok else outcome
        d.log.append({"attempt": d.attempts, "at": iso_time(started), "outcome": outcome,
                      "status": status_class(status), "ms": ms})  # fmt: skip
        now = datetime.now(UTC)
        if ok:
            state, next_at, delivered = "delivered", None, now
            self.delivered += 1
        elif d.attempts >= self.max_attempts:
            state, next_at, delivered = "failed", None, None
            self.failed_attempts += 1
        else:
            self.failed_attempts += 1
            wait = min(self.max_delay_s, self.base_delay_s * 2 ** (d.attempts - 1))
            state, next_at, delivered = "pending", now + timedelta(seconds=wait), None
        self.store.webhooks.record_attempt(
            d.delivery_id, status=state, attempts=d.attempts, next_attempt_at=next_at, delivered_at=delivered,
            last_status=status, last_error=error, log=orjson.dumps(d.log).decode(),
        )  # fmt: skip
        if state == "pending" and next_at is not None:
            d.at = time.monotonic() + (next_at - now).total_seconds()
            self._schedule(d)


# -- the delivery log: coarse outcomes -------------------------------------------------------------------------------
DELIVERED = "delivered: HTTP 2xx"
NO_RESPONSE = "failed: no response (could not connect or timed out)"
REDIRECT = "failed: HTTP 3xx, redirect not followed"
OUTCOMES = frozenset({DELIVERED, NO_RESPONSE, REDIRECT, targets.REFUSED_NON_PUBLIC, targets.REFUSED_INVALID,
                      targets.UNRESOLVED, "failed: HTTP 1xx", "failed: HTTP 4xx", "failed: HTTP 5xx"})  # fmt: skip


def outcome_of(status: int) -> str:
    if 200 <= status < 300:
        return DELIVERED
    if 300 <= status < 400:
        return REDIRECT  # never followed: the next hop would be a target nobody checked
    return f"failed: HTTP {min(max(status // 100, 1), 5)}xx"


def status_class(status: Any) -> str | None:
    """``"5xx"`` for 503: the exact code of a receiver (often 401 vs 404 vs 405) says more than an operator needs."""
    return f"{status // 100}xx" if isinstance(status, int) and not isinstance(status, bool) else None


def _coarse_error(error: Any) -> str | None:
    """A stored error as an outcome; rows from before outcomes were coarse hold exception texts, read the same way."""
    if error is None or error in OUTCOMES:
        return error
    text = str(error)
    if text.startswith("HTTP ") and text[5:8].isdigit():
        return outcome_of(int(text[5:8]))
    return NO_RESPONSE


def _coarse_entry(entry: dict[str, Any]) -> dict[str, Any]:
    if "outcome" in entry:
        return entry
    status = entry.get("status")
    outcome = _coarse_error(entry.get("error")) or (outcome_of(status) if isinstance(status, int) else NO_RESPONSE)
    return {"attempt": entry.get("attempt"), "at": entry.get("at"), "outcome": outcome,
            "status": status_class(status), "ms": entry.get("ms") if status is not None else None}  # fmt: skip
