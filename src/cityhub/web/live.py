"""Server-sent events of newly committed Observations: ``GET /api/v1/observations/stream``.

The event bus calls :meth:`ObservationFanout.on_commit` in the writer's thread with each committed batch. That call only
hands the batch (a shared, immutable Arrow table) to the event loop; there each client's bounded queue gets a
reference, and each client filters and serialises on its own. A client whose queue overflows (it reads slower
than the city writes) is dropped with a last ``event: overflow``; ``EventSource`` reconnects by itself and the
page reloads its state. Ingestion never waits for a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from cityhub.api.deps import hub_of, principal, require
from cityhub.bus import OBSERVATIONS, on_observations
from cityhub.errors import bad_request
from cityhub.hub import Hub
from cityhub.timefmt import iso_array

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["CityHub extensions"])

MAX_QUEUED_BATCHES = 256
MAX_QUEUED_ROWS = 500_000
KEEPALIVE_S = 15.0
POLL_S = 0.5  # how often an idle stream checks whether the server is shutting down
RETRY_MS = 2000
# Batches larger than this are serialised in a worker thread, so that a bulk ingest does not stall the loop.
INLINE_ROWS = 2000


@dataclass(eq=False)
class _Client:
    datastreams: np.ndarray | None  # None: every Datastream
    queue: asyncio.Queue[pa.Table | None] = field(default_factory=asyncio.Queue)
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

    def _dispatch(self, batch: pa.Table) -> None:
        ds = None
        for client in list(self.clients):
            if client.datastreams is not None:
                if ds is None:
                    ds = batch.column("datastream_id").to_numpy()
                mask = np.isin(ds, client.datastreams)
                if not mask.any():
                    continue
                part = batch if mask.all() else batch.filter(pa.array(mask))
            else:
                part = batch
            if client.queue.qsize() >= MAX_QUEUED_BATCHES or client.rows + part.num_rows > MAX_QUEUED_ROWS:
                client.dropped = True
                self.dropped += 1
                self.clients.discard(client)
                client.queue.put_nowait(None)  # wakes the client to say why it ends
                continue
            client.rows += part.num_rows
            client.queue.put_nowait(part)

    def subscribe(self, datastreams: list[int] | None) -> _Client:
        client = _Client(None if datastreams is None else np.array(sorted(set(datastreams)), np.int64))
        self.clients.add(client)
        return client

    def unsubscribe(self, client: _Client) -> None:
        self.clients.discard(client)

    def encode(self, batch: pa.Table) -> bytes:
        """One ``event: observation`` per row: datastream, thing, phenomenonTime, result, id."""
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
            out.append(b"event: observation\ndata: " + orjson.dumps(body) + b"\n\n")
        return b"".join(out)

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


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


def _ids(text: str) -> list[int]:
    try:
        ids = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise bad_request("datastreams must be comma-separated integer ids, or all", field="datastreams") from None
    if any(not 0 <= i < 2**63 for i in ids):
        raise bad_request("Datastream ids are 64-bit integers ≥ 0", field="datastreams")
    return ids


def _server_exiting() -> Callable[[], bool]:
    """Whether uvicorn is shutting down: it waits for open responses before the application's shutdown, so an
    endless stream must notice and end. Found through uvicorn's SIGTERM handler (read, not patched)."""
    server = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    if server is not None and hasattr(server, "should_exit"):
        return lambda: bool(server.should_exit)
    return lambda: False


async def _events(fan: ObservationFanout, client: _Client, selection: Any) -> AsyncIterator[bytes]:
    exiting = _server_exiting()
    loop = asyncio.get_running_loop()
    try:
        yield f"retry: {RETRY_MS}\n".encode() + _event("ready", {"datastreams": selection})
        ping = loop.time() + KEEPALIVE_S
        while True:
            try:
                batch = await asyncio.wait_for(client.queue.get(), POLL_S)
            except TimeoutError:
                if exiting():
                    return
                if loop.time() >= ping:
                    ping = loop.time() + KEEPALIVE_S
                    yield b": keepalive\n\n"
                continue
            if batch is None:
                yield _event("overflow", {"reason": "this client read slower than Observations arrived; reconnect"})
                return
            client.rows -= batch.num_rows
            if batch.num_rows > INLINE_ROWS:
                yield await asyncio.to_thread(fan.encode, batch)
            else:
                yield fan.encode(batch)
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
    response_class=StreamingResponse,
    include_in_schema=False,  # an endless text/event-stream (a generated client would wait forever); see README
)
async def observation_stream(
    request: Request,
    datastreams: str | None = Query(None, description="comma-separated Datastream ids, or `all` (the default)"),
) -> StreamingResponse:
    require(principal(request), "read")
    ids = None if datastreams is None or datastreams == "all" else _ids(datastreams)
    fan = fanout_of(request)
    client = fan.subscribe(ids)
    return StreamingResponse(
        _events(fan, client, "all" if ids is None else sorted(set(ids))),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
