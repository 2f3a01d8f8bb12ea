"""What the hub's limits cost and protect (issue 11's figures), against a real ``cityhub serve``:

- peak RSS of the hub while anonymous clients ask for a 10-level ``$expand`` cycle (refused with a 400 now;
  268 MB and 9 s per request before, 22.9 GB at 25 levels);
- peak RSS with 100 live-stream clients that never read while Observations are ingested;
- latency of a single Observation POST while 16 bulk clients saturate the writer, and how many of their
  requests were told to come back (503 + Retry-After) instead of queueing without bound;
- time to drain and exit after SIGTERM under load, and to serve again after the restart.

- a 1 GB CSV streamed (chunked) through ``/api/v1/ingest`` and through ``cityhub import``: time and peak RSS.

``python -m bench.limits`` (``--quick``: 200 MB and fewer requests).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench._util import (
    MemoryMonitor,
    Report,
    Server,
    cityhub_cmd,
    cityhub_env,
    create_admin_key,
    free_port,
    log,
    make_tmpdir,
    proc_status_kb,
    remove_tmpdir,
)

OM = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


def _thing(k: int, n_ds: int) -> dict:
    return {
        "name": f"station {k}", "description": "d",
        "Locations": [{"name": "l", "description": "d", "encodingType": "application/geo+json",
                       "location": {"type": "Point", "coordinates": [105.8 + k / 1000, 21.0]}}],
        "Datastreams": [{
            "name": f"temperature {k}.{j}", "description": "d", "observationType": OM,
            "unitOfMeasurement": {"name": "degree Celsius", "symbol": "°C", "definition": "x"},
            "Sensor": {"name": "s", "description": "d", "encodingType": "text/html", "metadata": "m"},
            "ObservedProperty": {"name": "temperature", "definition": "http://example.org/t", "description": "d"},
        } for j in range(n_ds)],
    }  # fmt: skip


def _rss_mb(pid: int) -> float:
    return (proc_status_kb(pid, "VmRSS") or 0) / 1024


def _csv(ds: int, start: datetime, n: int) -> bytes:
    rows = "".join(f"{ds},{(start + timedelta(seconds=i)).strftime('%Y-%m-%dT%H:%M:%SZ')},{i % 97}\n" for i in range(n))
    return ("datastream,phenomenonTime,result\n" + rows).encode()


def big_csv(report: Report, tmp: Path, *, mb: int) -> None:
    """A CSV of ``mb`` MB streamed (chunked) through /api/v1/ingest, and the same file through `cityhub import`."""
    data_dir = tmp / "big"
    data_dir.mkdir()
    key = create_admin_key(data_dir)
    server = Server(data_dir, free_port(), key)
    server.start()
    line_bytes = 38
    n = mb * 1024 * 1024 // line_bytes
    try:
        with httpx.Client(base_url=server.base, headers=server.headers, timeout=3600) as c:
            assert c.post("/v1.1/Things", json=_thing(0, 1)).status_code == 201
            ds = c.get("/v1.1/Datastreams").json()["value"][0]["@iot.id"]
            start = datetime(2000, 1, 1, tzinfo=UTC)

            def body() -> Iterator[bytes]:
                yield b"datastream,phenomenonTime,result\n"
                for k in range(0, n, 100_000):
                    yield _csv(ds, start + timedelta(seconds=k), min(100_000, n - k)).split(b"\n", 1)[1]

            base = _rss_mb(server.pid)
            t0 = time.perf_counter()
            r = c.post("/api/v1/ingest", content=body(), headers={"Content-Type": "text/csv"})
            wall = time.perf_counter() - t0
            assert r.status_code == 200 and r.json()["stored"] == n, r.text[:300]
            peak, after = server.monitor.hwm_mb, _rss_mb(server.pid)  # type: ignore[union-attr]
        log(f"  {mb} MB CSV ({n:,} rows) streamed over HTTP: {wall:.1f} s, {n / wall:,.0f} rows/s; hub RSS "
            f"{base:.0f} -> peak {peak:.0f} MB, {after:.0f} MB after")  # fmt: skip
        report.add(f"{mb} MB CSV through /api/v1/ingest (chunked): time / peak RSS (RSS after)",
                   f"{wall:.1f} s / {peak:.0f} MB ({after:.0f} MB)")  # fmt: skip
    finally:
        server.stop()
    path = tmp / "big.csv"
    with path.open("wb") as f:
        f.write(b"datastream,phenomenonTime,result\n")
        for k in range(0, n, 100_000):
            rows = _csv(ds, datetime(2001, 1, 1, tzinfo=UTC) + timedelta(seconds=k), min(100_000, n - k))
            f.write(rows.split(b"\n", 1)[1])
    t0 = time.perf_counter()
    proc = subprocess.Popen([*cityhub_cmd(), "import", str(path), "--data-dir", str(data_dir)], env=cityhub_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    monitor = MemoryMonitor(proc.pid)
    monitor.start()
    rc = proc.wait()
    monitor.stop()
    wall = time.perf_counter() - t0
    log(f"  {mb} MB CSV through `cityhub import`: exit {rc}, {wall:.1f} s, peak RSS {monitor.hwm_mb:.0f} MB")
    report.add(f"{mb} MB CSV through `cityhub import`: time / peak RSS", f"{wall:.1f} s / {monitor.hwm_mb:.0f} MB",
               "exit 0", rc == 0)  # fmt: skip
    path.unlink()


def run(report: Report, tmp: Path, *, quick: bool) -> None:
    data_dir = tmp / "limits"
    data_dir.mkdir()
    key = create_admin_key(data_dir)
    server = Server(data_dir, free_port(), key)
    server.start()
    auth = server.headers
    try:
        with httpx.Client(base_url=server.base, headers=auth, timeout=120) as c:
            for k in range(30):
                assert c.post("/v1.1/Things", json=_thing(k, 4)).status_code == 201
            ds = [d["@iot.id"] for d in c.get("/v1.1/Datastreams", params={"$top": "200"}).json()["value"]]
            base_rss = _rss_mb(server.pid)
            # 1. The 10-level $expand cycle, 20 times.
            cycle = "/".join(["Datastreams", "Thing"] * 5)
            statuses = []
            t0 = time.perf_counter()
            with httpx.Client(base_url=server.base, timeout=120) as anon:
                for _ in range(20):
                    statuses.append(anon.get("/v1.1/Things", params={"$expand": cycle}).status_code)
            per = (time.perf_counter() - t0) / 20 * 1e3
            server.monitor.sample()  # type: ignore[union-attr]
            log(f"  10-level $expand: {sorted(set(statuses))}, {per:.1f} ms each, RSS {base_rss:.0f} -> "
                f"{server.monitor.max_rss_kb / 1024:.0f} MB")  # type: ignore[union-attr]  # fmt: skip
            report.add("10-level $expand cycle x20: answers / ms each / peak RSS",
                       f"{sorted(set(statuses))} / {per:.1f} ms / {server.monitor.max_rss_kb / 1024:.0f} MB",  # type: ignore[union-attr]
                       "400, RSS bounded", set(statuses) == {400})  # fmt: skip

            # 2. 100 stream clients that never read, while 200,000 Observations are ingested.
            socks = []
            for _ in range(100):
                s = socket.create_connection(("127.0.0.1", server.port))
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.sendall(f"GET /api/v1/observations/stream HTTP/1.1\r\nHost: x\r\n{_hdr(key)}\r\n".encode())
                socks.append(s)
            time.sleep(1.0)
            start = datetime(2025, 1, 1, tzinfo=UTC)
            n_batches = 5 if quick else 20
            for b in range(n_batches):
                r = c.post("/api/v1/ingest", content=_csv(ds[b % len(ds)], start + timedelta(days=b), 10_000),
                           headers={"Content-Type": "text/csv"})  # fmt: skip
                assert r.status_code == 200, r.text
            streams = c.get("/healthz").json()["streams"]
            peak = server.monitor.hwm_mb  # type: ignore[union-attr]
            for s in socks:
                s.close()
            log(f"  100 stalled stream clients, {n_batches * 10_000:,} rows ingested: {streams}, peak {peak:.0f} MB")
            report.add("100 stalled stream clients: dropped / peak RSS of the hub",
                       f"{streams['dropped']} dropped / {peak:.0f} MB", "bounded", peak < 2048)  # fmt: skip

            # 3. A single POST's latency while 16 bulk clients saturate the writer.
            stop = threading.Event()
            codes: list[int] = []

            def bulk(i: int) -> None:
                t = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=30 * i)
                with httpx.Client(base_url=server.base, headers=auth, timeout=120) as bc:
                    k = 0
                    while not stop.is_set():
                        body = _csv(ds[40 + i], t + timedelta(seconds=100_000 * k), 100_000)
                        try:
                            r = bc.post("/api/v1/ingest", content=body, headers={"Content-Type": "text/csv"})
                        except httpx.HTTPError:  # the hub is shutting down (step 4)
                            return
                        codes.append(r.status_code)
                        if r.status_code == 503:
                            time.sleep(float(r.headers.get("retry-after", "1")))
                        else:
                            k += 1

            workers = [threading.Thread(target=bulk, args=(i,)) for i in range(16)]
            for w in workers:
                w.start()
            time.sleep(3.0)
            lat = []
            for i in range(100 if quick else 300):
                t1 = time.perf_counter()
                r = c.post(f"/v1.1/Datastreams({ds[0]})/Observations",
                           json={"phenomenonTime": (start - timedelta(seconds=i + 1)).isoformat(), "result": i})
                lat.append(time.perf_counter() - t1)
                if r.status_code == 503:
                    time.sleep(0.05)
            stop.set()
            for w in workers:
                w.join()
            lat.sort()
            p50, p99 = statistics.median(lat) * 1e3, lat[int(0.99 * (len(lat) - 1))] * 1e3
            busy = codes.count(503)
            log(f"  single POST under 16 bulk clients: p50 {p50:.1f} ms, p99 {p99:.1f} ms; bulk requests {len(codes)}, "
                f"503 {busy}")  # fmt: skip
            report.add("single POST while 16 bulk clients saturate the writer (p50 / p99)",
                       f"{p50:.1f} / {p99:.1f} ms")  # fmt: skip
            report.add("bulk requests answered 503 + Retry-After (of all)", f"{busy} of {len(codes)}")

            # 4. SIGTERM under load: drain, exit, restart.
            load = threading.Thread(target=bulk, args=(17,))
            stop.clear()
            load.start()
            time.sleep(2.0)
            stop.set()
    finally:
        exit_s = server.stop(grace=300)
    t0 = time.perf_counter()
    server2 = Server(data_dir, server.port, key)
    server2.start()
    restart_s = time.perf_counter() - t0
    server2.stop()
    log(f"  SIGTERM under load: exited in {exit_s:.1f} s; restarted and serving in {restart_s:.1f} s")
    report.add("SIGTERM under load: drain and exit / restart to serving", f"{exit_s:.1f} s / {restart_s:.1f} s")


def _hdr(key: str) -> str:
    return f"Authorization: Bearer {key}\r\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.limits", description=__doc__)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    report = Report()
    tmp = make_tmpdir("limits")
    try:
        big_csv(report, tmp, mb=200 if a.quick else 1024)
        run(report, tmp, quick=a.quick)
    finally:
        remove_tmpdir(tmp)
    report.print()
    return 1 if report.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
