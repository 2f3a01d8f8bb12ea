"""Server-sent events of newly committed Observations: ``GET /api/v1/observations/stream``.

The event bus calls :meth:`ObservationFanout.on_commit` in the writer's thread with each committed batch. That call only
hands the batch (a shared, immutable Arrow table) to the event loop; there each client's bounded queue gets a
reference to it with the rows that client asked for. The batch is serialised once, by the first client to read it
(in a worker thread when it is large), and every client sends those bytes. A client whose queue overflows (it reads
slower than the city writes) is dropped with a last ``event: overflow``; ``EventSource`` reconnects by itself and
the page reloads its state. Ingestion never waits for a client. sse-starlette (:mod:`cityhub.sse`) frames the
events, sends the keep-alive comments and ends the streams when the server shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cityhub.api.deps import hub_of, principal, require
from cityhub.bus import OBSERVATIONS, on_observations
from cityhub.errors import bad_request
from cityhub.hub import Hub
from cityhub.sse import event_stream, frame, message
from cityhub.timefmt import iso_array

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["CityHub extensions"])

MAX_QUEUED_BATCHES = 256
MAX_QUEUED_ROWS = 500_000
KEEPALIVE_S = 15.0
RETRY_MS = 2000
# Batches larger than this are serialised in a worker thread, so that a bulk ingest does not stall the loop.
INLINE_ROWS = 2000
_HEAD, _TAIL = frame("observation")  # around each Observation's JSON


class _Batch:
    """A committed batch, serialised once (by the first client that reads it) for every client that gets rows."""

    __slots__ = ("_all", "_events", "table")

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self._events: asyncio.Future[list[bytes]] | None = None
        self._all: bytes | None = None

    async def events(self, fan: ObservationFanout) -> list[bytes]:
        """One framed ``event: observation`` a row."""
        if self._events is None:
            if self.table.num_rows > INLINE_ROWS:
                self._events = asyncio.ensure_future(asyncio.to_thread(fan.encode_rows, self.table))
            else:
                self._events = asyncio.get_running_loop().create_future()
                self._events.set_result(fan.encode_rows(self.table))
        return await asyncio.shield(self._events)  # a client that goes away does not cancel it for the others

    async def data(self, fan: ObservationFanout, rows: np.ndarray | None) -> bytes:
        """The events of ``rows`` (None: all of them)."""
        events = await self.events(fan)
        if rows is not None:
            return b"".join([events[i] for i in rows.tolist()])
        if self._all is None:
            self._all = b"".join(events)
        return self._all


@dataclass(eq=False)
class _Client:
    datastreams: np.ndarray | None  # None: every Datastream
    # A batch with the positions of this client's rows in it (None: all); None ends the stream (overflow).
    queue: asyncio.Queue[tuple[_Batch, np.ndarray | None] | None] = field(default_factory=asyncio.Queue)
    rows: int = 0
    dropped: bool = False


class ObservationFanout:
    """Fans committed Observation batches out to connected SSE clients through bounded queues."""

    def __init__(self, hub: Hub, loop: asyncio.AbstractEventLoop) -> None:
        self.hub = hub
        self.loop = loop
        self.clients: set[_Client] = set()
        self.dropped = 0
        self.subscription = hub.bus.subscribe(OBSERVATIONS, on_observations(self.on_commit))

    def on_commit(self, batch: pa.Table) -> None:
        """Bus handler (writer thread): hand the batch to the loop, nothing more."""
        if self.clients and batch.num_rows:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server is stopping
                self.loop.call_soon_threadsafe(self._dispatch, batch)

    def _dispatch(self, table: pa.Table) -> None:
        batch = _Batch(table)
        ds = None
        for client in list(self.clients):
            rows: np.ndarray | None = None
            if client.datastreams is not None:
                if ds is None:
                    ds = table.column("datastream_id").to_numpy()
                mask = np.isin(ds, client.datastreams)
                if not mask.any():
                    continue
                if not mask.all():
                    rows = np.flatnonzero(mask)
            n = table.num_rows if rows is None else len(rows)
            if client.queue.qsize() >= MAX_QUEUED_BATCHES or client.rows + n > MAX_QUEUED_ROWS:
                client.dropped = True
                self.dropped += 1
                self.clients.discard(client)
                client.queue.put_nowait(None)  # wakes the client to say why it ends
                continue
            client.rows += n
            client.queue.put_nowait((batch, rows))

    def subscribe(self, datastreams: list[int] | None) -> _Client:
        client = _Client(None if datastreams is None else np.array(sorted(set(datastreams)), np.int64))
        self.clients.add(client)
        return client

    def unsubscribe(self, client: _Client) -> None:
        self.clients.discard(client)

    def encode(self, batch: pa.Table) -> bytes:
        """One ``event: observation`` per row: datastream, thing, phenomenonTime, result, id."""
        return b"".join(self.encode_rows(batch))

    def encode_rows(self, batch: pa.Table) -> list[bytes]:
        """The framed ``event: observation`` of each row."""
        ds = batch.column("datastream_id").to_pylist()
        things = self._things(batch.column("datastream_id").to_numpy())
        start = iso_array(batch.column("phenomenon_time"))
        end = iso_array(batch.column("phenomenon_time_end"))
        nums = batch.column("result_number").to_pylist()
        texts = batch.column("result_string").to_pylist()
        jsons = batch.column("result_json").to_pylist()
        ids = batch.column("id").to_pylist()
        out = []
        for i in range(batch.num_rows):
            n = nums[i]
            result = n if n is not None else texts[i] if texts[i] is not None else _json(jsons[i])
            body = {
                "datastream": ds[i],
                "thing": things[i],
                "phenomenonTime": start[i] if end[i] is None else f"{start[i]}/{end[i]}",
                "result": result,
                "id": ids[i],
            }
            out.append(_HEAD + orjson.dumps(body) + _TAIL)
        return out

    def _things(self, ds: np.ndarray) -> list[int | None]:
        cat = self.hub.catalog.table()  # sorted by id
        ids = cat.column("id").to_numpy()
        thing = cat.column("thing_id").to_numpy()
        pos = np.clip(np.searchsorted(ids, ds), 0, max(len(ids) - 1, 0))
        if not len(ids):
            return [None] * len(ds)
        found = ids[pos] == ds
        return [int(t) if f else None for t, f in zip(thing[pos].tolist(), found.tolist(), strict=True)]


def _json(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def fanout_of(request: Request) -> ObservationFanout:
    """The app's fan-out, made on the first subscription (it needs the running loop)."""
    state = request.app.state
    fan = getattr(state, "observation_fanout", None)
    if fan is None or fan.hub is not hub_of(request):
        fan = state.observation_fanout = ObservationFanout(hub_of(request), asyncio.get_running_loop())
    return fan


def _ids(text: str) -> list[int]:
    try:
        ids = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise bad_request("datastreams must be comma-separated integer ids, or all", field="datastreams") from None
    if any(not 0 <= i < 2**63 for i in ids):
        raise bad_request("Datastream ids are 64-bit integers ≥ 0", field="datastreams")
    return ids


async def _events(fan: ObservationFanout, client: _Client, selection: Any) -> AsyncIterator[bytes]:
    try:
        yield message(orjson.dumps({"datastreams": selection}).decode(), event="ready", retry=RETRY_MS)
        while True:
            item = await client.queue.get()
            if item is None:
                reason = {"reason": "this client read slower than Observations arrived; reconnect"}
                yield message(orjson.dumps(reason).decode(), event="overflow")
                return
            batch, rows = item
            client.rows -= batch.table.num_rows if rows is None else len(rows)
            yield await batch.data(fan, rows)
    finally:
        fan.unsubscribe(client)


@router.get(
    "/observations/stream",
    summary="Live stream of new Observations (server-sent events)",
    description=(
        "`text/event-stream`: first `event: ready`, then one `event: observation` per newly committed Observation "
        "(`data`: JSON with `datastream`, `thing`, `phenomenonTime`, `result`, `id`), whatever path stored it "
        "(POST, bulk ingest, MQTT, the demo). `datastreams=1,2,3` limits the stream to those Datastreams; "
        "without it every Observation is sent. A comment line every 15 s keeps the connection open. A client "
        "that reads slower than Observations arrive is sent `event: overflow` and dropped (ingestion never waits); "
        "`EventSource` reconnects by itself."
    ),
    response_class=Response,
    include_in_schema=False,  # an endless text/event-stream (a generated client would wait forever); see README
)
async def observation_stream(
    request: Request,
    datastreams: str | None = Query(None, description="comma-separated Datastream ids, or `all` (the default)"),
) -> Response:
    require(principal(request), "read")
    ids = None if datastreams is None or datastreams == "all" else _ids(datastreams)
    fan = fanout_of(request)
    client = fan.subscribe(ids)
    return event_stream(_events(fan, client, "all" if ids is None else sorted(set(ids))),
                        keepalive_s=KEEPALIVE_S, keepalive="keepalive")  # fmt: skip
