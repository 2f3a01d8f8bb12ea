"""Server-sent events through sse-starlette: the framing of messages, the limits of live streams and their response.

The library frames each message (:func:`message`), sends the keep-alive comments, notices a client that went
away and ends the streams when uvicorn shuts down (it waits for open responses before the application's own
shutdown). Streams that frame many rows of one kind take the library's framing once (:func:`frame`) and put each
row's compact JSON between its two halves.

Limits (settings ``max_stream_clients`` and ``stream_buffer_events``): every live stream of the process takes a
:class:`Slot` before it starts, or is answered 503 with ``Retry-After`` (:func:`take_slot`); every client reads
from its own :class:`Subscriber`, a bounded buffer of references to payloads encoded once for all clients. The
publisher only appends a reference (O(1) a client, never waiting); a client whose buffer is full is dropped: its
buffer is emptied, its slot freed, it is sent ``event: dropped`` with the reason if its socket still takes it, and
its response ends (:class:`LiveResponse`). :func:`stream_counts` says how many are connected and dropped.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections import deque
from collections.abc import AsyncIterable, Iterator
from typing import Any, Generic, TypeVar

import anyio
import orjson
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from cityhub.errors import ProblemError

SEP = "\n"
# A payload goes to the transport in pieces of at most this size, so that a stalled client's transport buffer
# holds one piece (plus uvicorn's 64 KiB high-water mark), not a copy of a whole bulk batch.
CHUNK_BYTES = 64 * 1024
# A dropped client whose socket takes nothing more gets this long to take its last event before its response is
# cut off; its slot is free from the moment it is dropped.
DROP_GRACE_S = 5.0
RETRY_AFTER_S = 5

T = TypeVar("T")


def message(
    data: str | None = None,
    *,
    event: str | None = None,
    id: int | None = None,
    retry: int | None = None,
    comment: str | None = None,
) -> bytes:
    """One framed message: ``id``, ``event``, ``data`` and ``retry`` fields and a ``:`` comment, as given."""
    return ServerSentEvent(data, event=event, id=None if id is None else str(id), retry=retry, comment=comment,
                           sep=SEP).encode()  # fmt: skip


def frame(event: str) -> tuple[bytes, bytes]:
    """What goes before and after a one-line ``data`` (compact JSON has no line breaks) of an ``event``."""
    head, tail = message("\0", event=event).split(b"\0")
    return head, tail


def pieces(data: bytes) -> Iterator[bytes]:
    """``data`` in pieces of at most :data:`CHUNK_BYTES` (a small payload as it is, without a copy)."""
    if len(data) <= CHUNK_BYTES:
        yield data
        return
    for i in range(0, len(data), CHUNK_BYTES):
        yield data[i : i + CHUNK_BYTES]


# -- connections ------------------------------------------------------------------------------------------------------
class _Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()  # apps of one process (tests) may run on loops in different threads
        self.connected = 0
        self.dropped = 0
        self.refused = 0


_counts = _Counts()


def stream_counts() -> dict[str, int]:
    """Live-stream clients of this process: ``clients`` connected now, ``dropped`` (fell a full buffer behind)
    and ``refused`` (over ``max_stream_clients``) since it started."""
    c = _counts
    with c.lock:
        return {"clients": c.connected, "dropped": c.dropped, "refused": c.refused}


class Slot:
    """One connection's place under ``max_stream_clients``; :meth:`release` may be called any number of times."""

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held = True

    def release(self) -> None:
        with _counts.lock:
            if self.held:
                self.held = False
                _counts.connected -= 1


def take_slot(limit: int) -> Slot:
    """A slot, or a 503 (``Retry-After``, problem+json naming the ``stream``) when ``limit`` streams are open."""
    with _counts.lock:
        if _counts.connected >= limit:
            _counts.refused += 1
            full = True
        else:
            _counts.connected += 1
            full = False
    if full:
        raise ProblemError(
            503,
            "Service Unavailable",
            f"this hub serves at most {limit} live streams at once; retry later",
            field="stream",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return Slot()


# -- a client's buffer ------------------------------------------------------------------------------------------------
class Subscriber(Generic[T]):
    """A client's bounded buffer of shared payloads, each counted as the events it holds; used on one event loop.

    :meth:`offer` never waits: past ``limit`` events it drops the client instead. A payload larger than the whole
    buffer is still taken when the buffer is empty, so that a client keeping up is not dropped by one big batch.
    """

    def __init__(self, slot: Slot, limit: int, *, resumable: bool) -> None:
        self.slot = slot
        self.limit = limit
        self.resumable = resumable
        self.pending = 0  # events buffered, not yet taken by the response
        self.reason: str | None = None  # why it was dropped
        self.ended = False
        self.dropped = asyncio.Event()
        self._items: deque[tuple[T, int]] = deque()
        self._wake = asyncio.Event()

    def offer(self, item: T, events: int) -> bool:
        """Buffer ``item`` (a reference: it is shared with other clients); False when the client is (now) gone."""
        if self.reason is not None or self.ended:
            return False
        if self.pending and self.pending + events > self.limit:
            self.drop()
            return False
        self._items.append((item, events))
        self.pending += events
        self._wake.set()
        return True

    def drop(self) -> None:
        if self.reason is not None:
            return
        self.reason = f"this client fell {self.limit} events behind" + (
            "; reconnect with Last-Event-ID to resume" if self.resumable else ""
        )
        self._items.clear()  # the buffered payloads are of no use to it any more
        self.pending = 0
        with _counts.lock:
            _counts.dropped += 1
        self.slot.release()
        self._wake.set()
        self.dropped.set()

    def end(self) -> None:
        """The source stopped: the stream ends after what is buffered."""
        self.ended = True
        self._wake.set()

    def close(self) -> None:
        """The response ended: nothing more is taken, nothing is kept."""
        self.end()
        self._items.clear()
        self.pending = 0

    async def next(self) -> T | None:
        """The next payload; None once the client is dropped (:attr:`reason`) or the source ended."""
        while True:
            if self.reason is not None:
                return None
            if self._items:
                item, events = self._items.popleft()
                self.pending -= events
                return item
            if self.ended:
                return None
            self._wake.clear()
            await self._wake.wait()

    def farewell(self) -> bytes:
        """The last event of a dropped client."""
        return message(orjson.dumps({"reason": self.reason}).decode(), event="dropped")


# -- the response -----------------------------------------------------------------------------------------------------
# Responses cut off after DROP_GRACE_S, by the task that ran them. uvicorn logs "ASGI callable returned without
# completing response" at error level for each (it cannot know the application meant it); that record is expected
# for these tasks only and is filtered out, any other stays.
_cut_tasks: weakref.WeakSet[asyncio.Task[object]] = weakref.WeakSet()
_INCOMPLETE = "ASGI callable returned without completing response."


class _ExpectedCut(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != _INCOMPLETE:
            return True
        try:
            task = asyncio.current_task()
        except RuntimeError:
            return True
        return task is None or task not in _cut_tasks


logging.getLogger("uvicorn.error").addFilter(_ExpectedCut())


class LiveResponse(EventSourceResponse):
    """An event stream that holds its :class:`Slot` to the end and is cut off ``DROP_GRACE_S`` after its
    :class:`Subscriber` was dropped if it has not ended by itself (a socket that takes nothing more)."""

    def __init__(self, content: AsyncIterable[bytes], *, slot: Slot, subscriber: Subscriber[Any] | None,
                 keepalive_s: float, keepalive: str) -> None:  # fmt: skip
        super().__init__(
            content,
            headers={"Cache-Control": "no-cache"},
            ping=keepalive_s,
            sep=SEP,
            ping_message_factory=lambda: ServerSentEvent(comment=keepalive, sep=SEP),
        )
        self.slot = slot
        self.subscriber = subscriber

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if self.subscriber is None:
                await super().__call__(scope, receive, send)
                return
            dropped = self.subscriber.dropped
            outer = asyncio.current_task()  # the server's task for this request, which logs the cut
            async with anyio.create_task_group() as tg:

                async def respond() -> None:
                    await EventSourceResponse.__call__(self, scope, receive, send)
                    tg.cancel_scope.cancel()

                async def cut() -> None:
                    await dropped.wait()
                    await anyio.sleep(DROP_GRACE_S)
                    if outer is not None:
                        _cut_tasks.add(outer)
                    tg.cancel_scope.cancel()

                tg.start_soon(respond)
                tg.start_soon(cut)
        finally:
            self.slot.release()
            if self.subscriber is not None:  # also when the body never ran (HEAD): its publisher lets it go
                self.subscriber.close()


def event_stream(
    content: AsyncIterable[bytes],
    *,
    keepalive_s: float,
    keepalive: str,
    slot: Slot,
    subscriber: Subscriber[Any] | None = None,
) -> LiveResponse:
    """A ``text/event-stream`` of ``content`` (framed messages) with a ``: <keepalive>`` comment every
    ``keepalive_s`` seconds; it frees ``slot`` when it ends."""
    return LiveResponse(content, slot=slot, subscriber=subscriber, keepalive_s=keepalive_s, keepalive=keepalive)
