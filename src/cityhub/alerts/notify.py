"""Where alert events go: the SSE stream (a broadcaster of asyncio queues), MQTT, and signed webhooks.

None of them may slow evaluation, let alone ingestion: the broadcaster hands each event to every subscriber's
event loop without waiting (a subscriber that falls 1,000 events behind is dropped and reconnects with
``Last-Event-ID``), MQTT publishing is paho's non-blocking queue, and webhooks are posted by their own thread
from a persisted outbox with exponential back-off.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import hmac
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pyarrow as pa

from cityhub.sse import message
from cityhub.store.base import Store
from cityhub.store.ops.webhooks import DELIVERY_SCHEMA, WebhookRecord
from cityhub.timefmt import iso_time

log = logging.getLogger(__name__)

SUBSCRIBER_QUEUE = 1000


class Broadcaster:
    """Fan-out of alert events to the SSE streams, each an asyncio.Queue on its server's event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[asyncio.Queue[bytes | None], asyncio.AbstractEventLoop] = {}
        self.closed = False

    def subscribe(self) -> asyncio.Queue[bytes | None]:
        q: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=SUBSCRIBER_QUEUE)
        with self._lock:
            self._subs[q] = asyncio.get_running_loop()
        return q

    def unsubscribe(self, q: asyncio.Queue[bytes | None]) -> None:
        with self._lock:
            self._subs.pop(q, None)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def publish(self, message: bytes | None) -> None:
        with self._lock:
            subs = list(self._subs.items())
        for q, loop in subs:
            try:
                loop.call_soon_threadsafe(self._put, q, message)
            except RuntimeError:  # that loop is closed
                self.unsubscribe(q)

    def _put(self, q: asyncio.Queue[bytes | None], message: bytes | None) -> None:
        try:
            q.put_nowait(message)
        except asyncio.QueueFull:  # a stalled client: end its stream, it resumes from Last-Event-ID
            self.unsubscribe(q)
            while not q.empty():
                q.get_nowait()
            q.put_nowait(None)

    def close(self) -> None:
        self.closed = True
        self.publish(None)


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
    attempt is logged on the row.
    """

    def __init__(
        self,
        store: Store,
        *,
        base_delay_s: float = 2.0,
        max_delay_s: float = 600.0,
        max_attempts: int = 8,
        timeout_s: float = 10.0,
    ) -> None:
        self.store = store
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

    def create(self, url: str, secret: str, filt: dict[str, Any], description: str | None, who: str) -> Webhook:
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
            d["log"] = orjson.loads(d["log"]) if d["log"] else []
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
        with httpx.Client(timeout=self.timeout_s, follow_redirects=False) as client:
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

    def _attempt(self, client: httpx.Client, hook: Webhook, d: _Due) -> None:
        d.attempts += 1
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            resp = client.post(
                hook.url,
                content=d.payload,
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": "CityHub-Alerts/1",
                    "X-CityHub-Event": d.event,
                    "X-CityHub-Delivery": str(d.delivery_id),
                    "X-CityHub-Signature": sign(hook.secret, d.payload),
                },
            )
            status = resp.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        if self._stop:
            return  # shutting down: not an attempt; the delivery stays pending
        ms = round((time.perf_counter() - t0) * 1000, 1)
        d.log.append({"attempt": d.attempts, "at": iso_time(started), "status": status, "error": error, "ms": ms})
        now = datetime.now(UTC)
        if error is None:
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
