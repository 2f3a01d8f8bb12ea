"""Server-sent events of newly committed Observations: ``GET /api/v1/observations/stream``.

The event bus calls :meth:`ObservationFanout.on_commit` in the writer's thread with each committed batch. That call only
hands the batch (a shared, immutable Arrow table) to the event loop; there the batch is encoded once for every client
(in a worker thread when it is large) and each client's :class:`~cityhub.sse.Subscriber` gets a reference to it, or
to the rows of the Datastreams it asked for (selected once for all clients that asked for the same ones): O(1) a
client. A client that falls ``stream_buffer_events`` Observations behind (it reads slower than the city writes) is
dropped with a last ``event: dropped``; the page reconnects and reloads its state. Ingestion never waits for a
client. sse-starlette (:mod:`cityhub.sse`) frames the events, sends the keep-alive comments and ends the streams
when the server shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cityhub import results
from cityhub.api.deps import hub_of, principal, require
from cityhub.bus import OBSERVATIONS, on_observations
from cityhub.errors import bad_request
from cityhub.hub import Hub
from cityhub.sse import Subscriber, event_stream, frame, message, pieces, take_slot
from cityhub.timefmt import iso_array

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["CityHub extensions"])

KEEPALIVE_S = 15.0
RETRY_MS = 2000
# Batches larger than this are encoded (and selections joined) in a worker thread, so that a bulk ingest does not
# stall the loop.
INLINE_ROWS = 2000
_HEAD, _TAIL = frame("observation")  # around each Observation's JSON


def _settle(fn: Any, *args: Any, rows: int) -> asyncio.Future[Any]:
    if rows > INLINE_ROWS:
        return asyncio.ensure_future(asyncio.to_thread(fn, *args))
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    fut.set_result(fn(*args))
    return fut


class _Batch:
    """A committed batch's events, encoded once for every client: all of them in one ``bytes`` with the offset of
    each row's event (the Arrow table is not kept)."""

    __slots__ = ("_encoded",)

    def __init__(self, fan: ObservationFanout, table: pa.Table) -> None:
        self._encoded = _settle(fan.encode_offsets, table, rows=table.num_rows)

    async def encoded(self) -> tuple[bytes, np.ndarray]:
        return await asyncio.shield(self._encoded)  # a client that goes away does not cancel it for the others


class _View:
    """The events of a batch that a group of clients (those that asked for the same Datastreams) gets, joined once."""

    __slots__ = ("_data", "batch", "events", "rows")

    def __init__(self, batch: _Batch, rows: np.ndarray | None, events: int) -> None:
        self.batch = batch
        self.rows = rows  # positions in the batch; None: all of it
        self.events = events
        self._data: asyncio.Future[bytes] | None = None

    async def data(self) -> bytes:
        data, offsets = await self.batch.encoded()
        if self.rows is None:
            return data
        if self._data is None:
            self._data = _settle(_select, data, offsets, self.rows, rows=len(self.rows))
        return await asyncio.shield(self._data)


def _select(data: bytes, offsets: np.ndarray, rows: np.ndarray) -> bytes:
    view = memoryview(data)
    return b"".join([view[a:b] for a, b in zip(offsets[rows].tolist(), offsets[rows + 1].tolist(), strict=True)])


@dataclass(eq=False)
class _Client:
    datastreams: np.ndarray | None  # None: every Datastream
    key: bytes | None  # the same for clients that asked for the same Datastreams
    sub: Subscriber[_View]


class ObservationFanout:
    """Fans committed Observation batches out to connected SSE clients through bounded buffers."""

    def __init__(self, hub: Hub, loop: asyncio.AbstractEventLoop) -> None:
        self.hub = hub
        self.loop = loop
        self.clients: set[_Client] = set()
        self.encoded = 0  # batches encoded: one per batch that some client gets, whatever the number of clients
        self.subscription = hub.bus.subscribe(OBSERVATIONS, on_observations(self.on_commit))

    def on_commit(self, batch: pa.Table) -> None:
        """Bus handler (writer thread): hand the batch to the loop, nothing more."""
        if self.clients and batch.num_rows:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server is stopping
                self.loop.call_soon_threadsafe(self._dispatch, batch)

    def _dispatch(self, table: pa.Table) -> None:
        batch: _Batch | None = None
        ds: np.ndarray | None = None
        views: dict[bytes | None, _View | None] = {}
        for client in list(self.clients):
            if client.key not in views:
                rows: np.ndarray | None = None
                n = table.num_rows
                if client.datastreams is not None:
                    if ds is None:
                        ds = table.column("datastream_id").to_numpy()
                    rows = np.flatnonzero(np.isin(ds, client.datastreams))
                    n = len(rows)
                    if n == table.num_rows:
                        rows = None
                if n:
                    if batch is None:
                        batch = _Batch(self, table)
                        self.encoded += 1
                    views[client.key] = _View(batch, rows, n)
                else:
                    views[client.key] = None
            view = views[client.key]
            if view is not None and not client.sub.offer(view, view.events):
                self.clients.discard(client)  # dropped: its response says so and ends

    def subscribe(self, datastreams: list[int] | None, sub: Subscriber[_View]) -> _Client:
        ids = None if datastreams is None else np.array(sorted(set(datastreams)), np.int64)
        client = _Client(ids, None if ids is None else ids.tobytes(), sub)
        self.clients.add(client)
        return client

    def unsubscribe(self, client: _Client) -> None:
        self.clients.discard(client)

    def encode(self, batch: pa.Table) -> bytes:
        """One ``event: observation`` per row: datastream, thing, phenomenonTime, result, id."""
        return b"".join(self.encode_rows(batch))

    def encode_offsets(self, batch: pa.Table) -> tuple[bytes, np.ndarray]:
        """The events of :meth:`encode` and where each row's starts (and, last, where they end)."""
        events = self.encode_rows(batch)
        offsets = np.zeros(len(events) + 1, np.int64)
        np.cumsum([len(e) for e in events], out=offsets[1:])
        return b"".join(events), offsets

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
            result = results.value_of(nums[i], texts[i], jsons[i])
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
            view = await client.sub.next()
            if view is None:
                if client.sub.reason is not None:
                    yield client.sub.farewell()
                return
            for piece in pieces(await view.data()):
                yield piece
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
        "that falls `stream_buffer_events` Observations behind is sent `event: dropped` (`data`: JSON with the "
        "`reason`) and its stream ends (ingestion never waits); `EventSource` reconnects by itself. Past "
        "`max_stream_clients` live streams the answer is 503 with `Retry-After`."
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
    settings = hub_of(request).settings
    fan = fanout_of(request)
    slot = take_slot(settings.max_stream_clients)
    sub: Subscriber[_View] = Subscriber(slot, settings.stream_buffer_events, resumable=False)
    client = fan.subscribe(ids, sub)
    return event_stream(_events(fan, client, "all" if ids is None else sorted(set(ids))), slot=slot, subscriber=sub,
                        keepalive_s=KEEPALIVE_S, keepalive="keepalive")  # fmt: skip
