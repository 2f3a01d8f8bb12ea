"""Limits of the live streams (server-sent events): ``max_stream_clients`` connections in all, 503 with
``Retry-After`` past it; a bounded buffer of ``stream_buffer_events`` per client, a client that falls that far
behind dropped with ``event: dropped`` and its slot freed, readers that keep up unaffected; each batch encoded once
whatever the number of clients.

The server tests run a real ``cityhub serve`` and real sockets; a stalled reader is a raw socket with a small
``SO_RCVBUF`` that never reads. An RSS watchdog kills the server (and fails the test) if it passes 2 GB.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pyarrow as pa
import pytest

from cityhub import sse
from cityhub.alerts.notify import Broadcaster
from cityhub.auth.keys import KeyStore
from cityhub.bus import EventBus
from cityhub.store.base import OBSERVATION_BATCH_SCHEMA
from cityhub.web import live
from tests.conftest import station_body
from tests.servers import free_port, start_server, stop_server

MAX_CLIENTS = 3
BUFFER_EVENTS = 500
ROWS_PER_POST = 250
MAX_POSTS = 400  # 100,000 Observations: far more than a stalled socket, its kernel buffers and its buffer hold
# The server's RSS may grow by this much over its size after a warm-up ingest while a client stalls (the stalled
# client's share is its buffer, 500 events of ~150 bytes, and one 64 KiB piece in its transport).
RSS_GROWTH_BOUND = 256 * 2**20
RSS_KILL = 2 * 2**30  # the watchdog's limit: past it the server is killed at once
WAIT_S = 30.0


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class Watchdog:
    """Samples the server's RSS; past RSS_KILL it kills the server so that the test fails instead of the machine."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss(pid)
        self.killed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                now = rss(self.pid)
            except (OSError, AssertionError):
                return
            self.peak = max(self.peak, now)
            if now > RSS_KILL:
                self.killed = True
                os.kill(self.pid, signal.SIGKILL)
                return

    def check(self) -> None:
        assert not self.killed, f"server RSS passed {RSS_KILL:,} bytes: killed"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


# -- a server and its clients -----------------------------------------------------------------------------------------
class Server:
    def __init__(self, port: int, key: str, pid: int) -> None:
        self.port = port
        self.key = key
        self.pid = pid
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"},
                                 timeout=30)  # fmt: skip
        self.ds = 0
        self.t = 0  # seconds after 2026-01-01 of the next Observation: each one new

    def ingest(self, rows: int) -> int:
        lines = "".join(f"{self.ds},{_time(self.t + i)},{(self.t + i) % 1000}\n" for i in range(rows))
        self.t += rows
        r = self.http.post("/api/v1/ingest", content="datastream,phenomenonTime,result\n" + lines,
                           headers={"Content-Type": "text/csv"})  # fmt: skip
        assert r.status_code == 200, r.text
        stored: int = r.json()["stored"]
        assert stored == rows
        return stored


def _time(s: int) -> str:
    return datetime.fromtimestamp(1767225600 + s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("streams") / "var"
    key = KeyStore(data_dir / "keys.json").create("admin", "stream limits")
    port = free_port()
    env = {"CITYHUB_MAX_STREAM_CLIENTS": str(MAX_CLIENTS), "CITYHUB_STREAM_BUFFER_EVENTS": str(BUFFER_EVENTS)}
    proc = start_server(data_dir, port, env=env)
    s = Server(port, key, proc.pid)
    try:
        thing = s.http.post("/v1.1/Things", json=station_body()).json()["@iot.id"]
        s.ds = s.http.get(f"/v1.1/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]
        yield s
    finally:
        s.http.close()
        if proc.poll() is None:
            stop_server(proc)


class Raw:
    """A stream on a raw socket: the response head is read, the body only when asked."""

    def __init__(self, server: Server, path: str, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket()
        if rcvbuf is not None:  # before connect, so that the window offered to the server is small from the start
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(WAIT_S)
        self.sock.connect(("127.0.0.1", server.port))
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.key}\r\n"
                          "Accept: text/event-stream\r\n\r\n".encode())  # fmt: skip
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(1024)
            assert chunk, "the server closed the connection before its answer"
            buf += chunk
        head, self.rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}

    def body(self) -> bytes:
        """The rest of a response with a Content-Length."""
        n = int(self.headers["content-length"])
        while len(self.rest) < n:
            chunk = self.sock.recv(65536)
            assert chunk
            self.rest += chunk
        return self.rest[:n]

    def drain(self) -> tuple[bytes, bool]:
        """Everything until the server closes the connection or ends the chunked body (bounded by WAIT_S)."""
        data = self.rest
        while not data.endswith(b"\r\n0\r\n\r\n"):
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                return data, False
            if not chunk:
                break
            data += chunk
        return data, True

    def close(self) -> None:
        self.sock.close()


def open_stream(server: Server, path: str = "/api/v1/observations/stream", **kw: Any) -> Raw:
    """A stream that got 200; 503s (slots of streams closed by the previous test not yet freed) are retried."""
    deadline = _deadline()
    while True:
        raw = Raw(server, path, **kw)
        if raw.status == 200 or _now() > deadline:
            assert raw.status == 200, raw.status
            return raw
        raw.close()
        _sleep(0.1)


def slot_free(server: Server) -> bool:
    """Whether a stream is accepted now (it is closed at once)."""
    raw = Raw(server, "/api/v1/alerts/stream")
    raw.close()
    assert raw.status in (200, 503), raw.status
    return raw.status == 200


class Reader:
    """An ordinary client (httpx, in a thread) reading the Observation stream: the ids it got, and any other event."""

    def __init__(self, server: Server) -> None:
        self.ids: list[int] = []
        self.other: list[str] = []
        self.ready = threading.Event()
        self.ended = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(WAIT_S, read=None),
                                    headers={"Authorization": f"Bearer {server.key}"})  # fmt: skip
        # Only the test's Datastream: the hub derives Observations of others (hourly aggregates) as it ingests.
        url = f"http://127.0.0.1:{server.port}/api/v1/observations/stream?datastreams={server.ds}"
        self._thread = threading.Thread(target=self._read, args=(url,), daemon=True)
        self._thread.start()

    def _read(self, url: str) -> None:
        try:
            with self._client.stream("GET", url) as r:
                assert r.status_code == 200
                event = None
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                        if event == "ready":
                            self.ready.set()
                    elif line.startswith("data: ") and event == "observation":
                        self.ids.append(orjson.loads(line[6:])["id"])
                    elif line.startswith("data: ") and event != "ready":
                        self.other.append(f"{event}: {line[6:]}")
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()

    def close(self) -> None:
        self._client.close()


def _now() -> float:
    import time

    return time.monotonic()


def _deadline() -> float:
    return _now() + WAIT_S


def _sleep(s: float) -> None:
    import time

    time.sleep(s)


def wait_for(cond: Callable[[], bool], what: str) -> None:
    deadline = _deadline()
    while not cond():
        assert _now() < deadline, f"waited {WAIT_S} s for {what}"
        _sleep(0.02)


def events(body: bytes) -> list[tuple[str, str]]:
    """The (event, data) of a chunked SSE body (the tail of a cut-off one is ignored)."""
    text = b""
    rest = body
    while rest:
        size, _, rest = rest.partition(b"\r\n")
        n = int(size, 16) if size else 0
        if n == 0 or len(rest) < n:
            text += rest[:n] if n else b""
            break
        text += rest[:n]
        rest = rest[n + 2 :]
    out = []
    for block in text.decode("utf-8", "replace").split("\n\n"):
        fields = dict(x.split(": ", 1) for x in block.split("\n") if ": " in x and not x.startswith(":"))
        if "event" in fields:
            out.append((fields["event"], fields.get("data", "")))
    return out


# -- (1) connections ------------------------------------------------------------------------------------------------
def test_streams_past_the_limit_get_503_until_one_closes(server: Server) -> None:
    open_ = [open_stream(server), open_stream(server, "/api/v1/alerts/stream"), open_stream(server)]
    try:
        for path in ("/api/v1/observations/stream", "/api/v1/alerts/stream"):  # one limit for all streams
            extra = Raw(server, path)
            assert extra.status == 503, extra.status
            assert int(extra.headers["retry-after"]) > 0
            assert extra.headers["content-type"] == "application/problem+json"
            problem = orjson.loads(extra.body())
            assert problem["field"] == "stream" and problem["status"] == 503, problem
            assert str(MAX_CLIENTS) in problem["detail"]
            extra.close()
        open_.pop().close()
        wait_for(lambda: slot_free(server), "the closed stream's slot")
        open_.append(open_stream(server))  # accepted again
    finally:
        for r in open_:
            r.close()


# -- (2) a client that never reads ----------------------------------------------------------------------------------
def _stall_until_dropped(server: Server, each: Callable[[int], None]) -> int:
    """Ingest until the stalled client is dropped (its slot is then free): the number of Observations posted.
    ``each`` is called with the number posted so far after each post."""
    posted = 0
    for _ in range(MAX_POSTS):
        posted += server.ingest(ROWS_PER_POST)
        each(posted)
        if slot_free(server):
            return posted
    raise AssertionError(f"a client that never read was not dropped after {posted:,} Observations")


def test_a_client_that_never_reads_is_dropped_and_memory_stays_bounded(server: Server) -> None:
    # Others hold the remaining slots without getting anything (another Datastream), so a free slot means the
    # stalled client was let go.
    fillers = [open_stream(server, "/api/v1/observations/stream?datastreams=999999") for _ in range(MAX_CLIENTS - 1)]
    stalled = open_stream(server, rcvbuf=4096)
    for _ in range(10):  # warm-up: the writer, DuckDB and the encoder at their working size
        server.ingest(ROWS_PER_POST)
    assert not slot_free(server)
    dog = Watchdog(server.pid)
    base = rss(server.pid)
    try:
        posted = _stall_until_dropped(server, lambda _: dog.check())
        assert posted > BUFFER_EVENTS
        for _ in range(20):  # and after: nothing more is kept for it
            server.ingest(ROWS_PER_POST)
        dog.check()
        assert dog.peak - base < RSS_GROWTH_BOUND, f"RSS grew {dog.peak - base:,} bytes (from {base:,})"
        # Now read what reached it: a prefix of its events, and the farewell if its socket took it in time; then
        # the stream ends.
        data, ended = stalled.drain()
        assert ended, "the dropped client's stream did not end"
        got = events(data)
        assert got[0][0] == "ready" and all(e in ("ready", "observation", "dropped") for e, _ in got)
        dropped = [d for e, d in got if e == "dropped"]
        if dropped:  # its socket took the farewell (it was read within the grace period)
            assert got[-1][0] == "dropped"
            assert orjson.loads(dropped[0]) == {"reason": f"this client fell {BUFFER_EVENTS} events behind"}
    finally:
        dog.stop()
        stalled.close()
        for f in fillers:
            f.close()


# -- (3) readers that keep up are unaffected ------------------------------------------------------------------------
def test_a_reading_client_gets_every_event_while_a_stalled_one_is_dropped(server: Server) -> None:
    filler = open_stream(server, "/api/v1/observations/stream?datastreams=999999")
    reader = Reader(server)
    stalled = None
    try:
        assert reader.ready.wait(WAIT_S)
        stalled = open_stream(server, rcvbuf=4096)

        def caught_up(n: int) -> None:  # the reader reads as it should: each batch before the next is posted
            wait_for(lambda: len(reader.ids) >= n, f"the reader to get {n:,} Observations")

        posted = _stall_until_dropped(server, caught_up)
        for _ in range(5):  # and after the drop
            posted += server.ingest(ROWS_PER_POST)
            caught_up(posted)
        expected = posted
        assert len(reader.ids) == expected and len(set(reader.ids)) == expected  # each once, none missing
        assert reader.other == [] and not reader.ended.is_set()
    finally:
        reader.close()
        filler.close()
        if stalled is not None:
            stalled.close()


# -- (4) encoded once ------------------------------------------------------------------------------------------------
class _Catalog:
    def table(self) -> pa.Table:
        return pa.table({"id": pa.array([7, 8], pa.int64()), "thing_id": pa.array([1, 2], pa.int64())})


class _Hub:
    def __init__(self) -> None:
        self.bus = EventBus()
        self.catalog = _Catalog()


def _batch(first_id: int, rows: int) -> pa.Table:
    return pa.Table.from_pylist(
        [{"id": first_id + i, "datastream_id": 7 + i % 2, "phenomenon_time": datetime(2026, 1, 1, tzinfo=UTC),
          "result_number": float(i)} for i in range(rows)],
        schema=OBSERVATION_BATCH_SCHEMA,
    )  # fmt: skip


@pytest.mark.parametrize("clients", [1, 8, 50])
@pytest.mark.parametrize("rows", [10, live.INLINE_ROWS + 1])  # encoded on the loop, and in a worker thread
def test_each_batch_is_encoded_once_whatever_the_number_of_clients(
    monkeypatch: pytest.MonkeyPatch, clients: int, rows: int
) -> None:
    encoded: list[int] = []
    selected: list[int] = []
    encode, select = live.ObservationFanout.encode_rows, live._select

    def spy_encode(self: live.ObservationFanout, batch: pa.Table) -> list[bytes]:
        encoded.append(batch.num_rows)
        return encode(self, batch)

    def spy_select(data: bytes, offsets: np.ndarray, positions: np.ndarray) -> bytes:
        selected.append(len(positions))
        return select(data, offsets, positions)

    monkeypatch.setattr(live.ObservationFanout, "encode_rows", spy_encode)
    monkeypatch.setattr(live, "_select", spy_select)
    batches = 3
    hub = _Hub()

    async def run() -> list[bytes]:
        fan = live.ObservationFanout(hub, asyncio.get_running_loop())  # type: ignore[arg-type]
        # Half the clients take every Datastream, half only Datastream 7 (one selection for all of them).
        subs = []
        for i in range(clients):
            sub: sse.Subscriber[live._View] = sse.Subscriber(sse.take_slot(10_000), 10 * rows, resumable=False)
            subs.append((fan.subscribe(None if i % 2 == 0 else [7], sub), sub))
        for b in range(batches):
            hub.bus.observations(_batch(b * rows, rows))  # as the writer thread does
        out = []
        for i, (client, sub) in enumerate(subs):
            n = batches * (rows if i % 2 == 0 else (rows + 1) // 2)
            stream = live._events(fan, client, "x")
            got = b""
            while got.count(b"event: observation") < n:
                got += await asyncio.wait_for(anext(stream), WAIT_S)
            await stream.aclose()
            sub.slot.release()
            out.append(got)
        assert fan.encoded == batches
        return out

    out = asyncio.run(run())
    assert encoded == [rows] * batches  # once a batch, not once a client
    assert len(selected) == (batches if clients > 1 else 0)  # once a batch for the group of filtered clients
    every = [e for e in events(_chunked(out[0])) if e[0] == "observation"]
    assert len(every) == batches * rows
    if clients > 1:
        only7 = [orjson.loads(d) for e, d in events(_chunked(out[1])) if e == "observation"]
        assert len(only7) == batches * ((rows + 1) // 2) and {o["datastream"] for o in only7} == {7}
        assert all(o["thing"] == 1 for o in only7)
    assert len(set(out[0::2])) == 1  # every unfiltered client got the same bytes


def _chunked(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked body, for :func:`events`."""
    return b"%x\r\n" % len(data) + data + b"\r\n0\r\n\r\n"


# -- the drop itself, in-process ------------------------------------------------------------------------------------
def test_a_dropped_client_is_told_why_and_its_buffer_and_slot_are_freed() -> None:
    hub = _Hub()
    before = sse.stream_counts()

    async def run() -> list[bytes]:
        fan = live.ObservationFanout(hub, asyncio.get_running_loop())  # type: ignore[arg-type]
        sub: sse.Subscriber[live._View] = sse.Subscriber(sse.take_slot(10_000), 100, resumable=False)
        client = fan.subscribe(None, sub)
        assert sse.stream_counts()["clients"] == before["clients"] + 1
        for b in range(5):  # 60 events each: the first is taken into an empty buffer, the second overflows it
            fan._dispatch(_batch(b * 60, 60))
        assert sub.reason is not None and sub.pending == 0 and client not in fan.clients
        assert sse.stream_counts() == {**before, "dropped": before["dropped"] + 1}  # slot freed at once
        return [x async for x in live._events(fan, client, "all")]

    out = asyncio.run(run())
    got = events(_chunked(b"".join(out)))
    assert [e for e, _ in got] == ["ready", "dropped"]
    assert orjson.loads(got[-1][1]) == {"reason": "this client fell 100 events behind"}


def test_the_alert_stream_drops_a_stalled_client_who_may_resume() -> None:
    async def run() -> tuple[sse.Subscriber[bytes], sse.Subscriber[bytes], int]:
        b = Broadcaster()
        slow: sse.Subscriber[bytes] = sse.Subscriber(sse.take_slot(10_000), 3, resumable=True)
        fast: sse.Subscriber[bytes] = sse.Subscriber(sse.take_slot(10_000), 3, resumable=True)
        b.subscribe(slow)
        b.subscribe(fast)
        got = []
        for i in range(5):  # from another thread, like the engine
            await asyncio.to_thread(b.publish, sse.message("{}", event="alert", id=i))
            await asyncio.sleep(0)  # the loop hands it over
            m = await fast.next()
            assert m is not None
            got.append(m)
        assert len(got) == 5
        for s in (slow, fast):
            s.slot.release()
        return slow, fast, b.subscribers

    slow, fast, left = asyncio.run(run())
    assert slow.reason == "this client fell 3 events behind; reconnect with Last-Event-ID to resume"
    assert fast.reason is None and left == 1
    assert orjson.loads(slow.farewell().split(b"data: ")[1].split(b"\n")[0]) == {"reason": slow.reason}
