"""Bulk bodies of any size stream through validation and storage with bounded memory (cityhub.ingest.stream).

Issue 11: a 530 MB CSV was read whole (peak RSS 9.06 GB, 6.9 GB kept afterwards). A body over the streaming
threshold, or sent chunked, is now parsed a block at a time, validated, spooled to disk and only then stored;
the rules of small bodies hold (a bad row stores nothing unless ``partial``).
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pyarrow as pa
import pyarrow.ipc as paipc
import pytest
from fastapi.testclient import TestClient

from cityhub.auth.keys import KeyStore
from cityhub.ingest import stream
from tests.conftest import station_body
from tests.servers import free_port, start_server, stop_server

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _iso(k: int) -> str:
    return (T0 + timedelta(seconds=k)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _chunks(data: bytes, size: int = 4096) -> Iterator[bytes]:
    """A body with no Content-Length (chunked), as a client streaming a file sends it."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "BATCH_ROWS", 500)
    monkeypatch.setattr(stream, "NDJSON_LINES", 300)


def _count(client: TestClient, ds: int) -> int:
    return int(client.get(f"/v1.1/Datastreams({ds})/Observations?$count=true&$top=0").json()["@iot.count"])


@pytest.mark.usefixtures("small_batches")
@pytest.mark.parametrize("fmt", ["csv", "ndjson", "arrow"])
def test_a_chunked_body_streams_in_every_format(client: TestClient, station: dict, fmt: str) -> None:
    ds, n = station["datastream"], 2_345
    if fmt == "csv":
        body = ("datastream,phenomenonTime,result\n" + "".join(f"{ds},{_iso(k)},{k % 90}\n" for k in range(n))).encode()
        ctype = "text/csv"
    elif fmt == "ndjson":
        body = b"".join(orjson.dumps({"datastream": ds, "phenomenonTime": _iso(k), "result": k % 90}) + b"\n"
                        for k in range(n))  # fmt: skip
        ctype = "application/x-ndjson"
    else:
        table = pa.table({"datastream": [ds] * n, "phenomenonTime": [_iso(k) for k in range(n)],
                          "result": [float(k % 90) for k in range(n)]})  # fmt: skip
        sink = io.BytesIO()
        with paipc.new_stream(sink, table.schema) as w:
            for b in table.to_batches(max_chunksize=400):
                w.write_batch(b)
        body, ctype = sink.getvalue(), "application/vnd.apache.arrow.stream"
    r = client.post("/api/v1/ingest", content=_chunks(body), headers={"Content-Type": ctype})
    assert r.status_code == 200, r.text
    assert r.json() == {"received": n, "stored": n, "duplicates": 0, "rejected": 0, "errors": []}
    assert _count(client, ds) == n
    # Sent again: every row is a duplicate, stored once.
    r = client.post("/api/v1/ingest", content=_chunks(body), headers={"Content-Type": ctype})
    assert r.json()["duplicates"] == n and r.json()["stored"] == 0


@pytest.mark.usefixtures("small_batches")
def test_a_bad_row_late_in_a_streamed_body_stores_nothing_unless_partial(client: TestClient, station: dict) -> None:
    ds, n = station["datastream"], 3_000
    rows = [f"{ds},{_iso(k)},{k % 90}" for k in range(n)]
    rows[2_500] = f"{ds},2026-01-01T00:00:00,1"  # no zone, in the fifth batch
    body = ("datastream,phenomenonTime,result\n" + "\n".join(rows) + "\n").encode()
    r = client.post("/api/v1/ingest", content=_chunks(body), headers={"Content-Type": "text/csv"})
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"index": 2_500, "field": "phenomenonTime", "reason": "has no time zone"}]
    assert _count(client, ds) == 0
    r = client.post("/api/v1/ingest?partial=true", content=_chunks(body), headers={"Content-Type": "text/csv"})
    assert r.status_code == 207 and r.json()["stored"] == n - 1 and r.json()["rejected"] == 1
    assert _count(client, ds) == n - 1


@pytest.mark.usefixtures("small_batches")
def test_a_conflict_stops_a_streamed_body_and_says_what_was_stored(client: TestClient, station: dict) -> None:
    ds = station["datastream"]
    first = client.post(f"/v1.1/Datastreams({ds})/Observations", json={"phenomenonTime": _iso(1_200), "result": -1})
    assert first.status_code == 201
    body = ("datastream,phenomenonTime,result\n" + "".join(f"{ds},{_iso(k)},{k % 90}\n" for k in range(2_000))).encode()
    r = client.post("/api/v1/ingest", content=_chunks(body), headers={"Content-Type": "text/csv"})
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["errors"][0]["index"] == 1_200 and problem["stored"] == 1_000  # batches 1 and 2 of 500 rows
    assert _count(client, ds) == 1_001
    # Corrected and sent again, it completes; what was stored counts as duplicates.
    fixed = body.replace(f"{ds},{_iso(1_200)},{1_200 % 90}\n".encode(), f"{ds},{_iso(1_200)},-1\n".encode())
    r = client.post("/api/v1/ingest", content=_chunks(fixed), headers={"Content-Type": "text/csv"})
    assert r.status_code == 200 and r.json()["stored"] == 999 and r.json()["duplicates"] == 1_001


def test_a_large_csv_streams_through_a_real_server_with_bounded_memory(tmp_path: Path) -> None:
    """100 MB of CSV (2.7 M rows), chunked, through a real `cityhub serve`: the body is never held whole (its
    transient cost stays under 150 MB), and a watchdog stops the server at 3 GB rather than let it eat the
    machine."""
    data_dir = tmp_path / "var"
    key = KeyStore(data_dir / "keys.json").create("admin", "test")
    auth = {"Authorization": f"Bearer {key}"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(data_dir, port)
    peak = {"kb": 0}
    stop = threading.Event()

    def rss_kb() -> int:
        with open(f"/proc/{proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

    def watchdog() -> None:
        while not stop.wait(0.1):
            try:
                peak["kb"] = max(peak["kb"], rss_kb())
            except (OSError, StopIteration):
                return
            if peak["kb"] > 3 * 1024 * 1024:
                proc.kill()
                return

    try:
        body = station_body()
        body["Datastreams"][0]["ObservedProperty"]["name"] = "temperature"  # no air-quality work alongside
        thing = httpx.post(f"{url}/v1.1/Things", json=body, headers=auth).json()["@iot.id"]
        ds = httpx.get(f"{url}/v1.1/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]
        base = rss_kb()
        n = 2_700_000

        def csv() -> Iterator[bytes]:
            yield b"datastream,phenomenonTime,result\n"
            for start in range(0, n, 50_000):
                yield "".join(f"{ds},{_iso(k)},{k % 97}\n" for k in range(start, start + 50_000)).encode()

        threading.Thread(target=watchdog, daemon=True).start()
        t0 = time.monotonic()
        r = httpx.post(f"{url}/api/v1/ingest", content=csv(), headers={**auth, "Content-Type": "text/csv"},
                       timeout=600)  # fmt: skip
        assert r.status_code == 200, r.text[:500]
        assert r.json()["stored"] == n
        assert time.monotonic() - t0 < 600
        after = rss_kb()
        grew_mb, transient_mb = (peak["kb"] - base) / 1024, (peak["kb"] - after) / 1024
        # What stays is the store's: DuckDB's cache of the 2.7 M rows and the index of their natural key (the cache
        # is bounded by CITYHUB_DUCKDB_MEMORY_LIMIT, the index is not). What the body itself cost is the rest.
        assert transient_mb < 150, f"reading the body cost {transient_mb:.0f} MB beyond what the store keeps"
        assert grew_mb < 1024, f"the server grew by {grew_mb:.0f} MB"
        count = httpx.get(f"{url}/v1.1/Datastreams({ds})/Observations", params={"$count": "true", "$top": "0"})
        assert count.json()["@iot.count"] == n
        assert not os.listdir(data_dir / "tmp")  # the spool is gone
    finally:
        stop.set()
        stop_server(proc)
