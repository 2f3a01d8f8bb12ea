"""Ingest / query benchmark of a real CityHub server, with a PostgreSQL COPY peer.

    .venv/bin/python -m bench.ingest          # full run: 5M bulk rows, 10,000 Datastreams, 43.2M aggregated
    .venv/bin/python -m bench.ingest --quick    # smoke test

Figures: bulk Arrow IPC / CSV / NDJSON / SensorThings dataArray (``/v1.1/CreateObservations``) ingest rate over
HTTP (zero loss checked), server peak RSS, single
Observation POST rate, latest values of 1,000 and 10,000 Datastreams, hourly/daily aggregates of 1,000
Datastreams over 30 days of 1-minute data, and COPY into PostgreSQL of the same rows.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import queue
import re
import shutil
import statistics
import struct
import subprocess
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.ipc as paipc

from bench._util import (
    Phase,
    Report,
    Server,
    create_admin_key,
    ensure_importable,
    free_port,
    log,
    make_tmpdir,
    percentile,
    remove_tmpdir,
    short,
)
from bench.serial import serial_part

OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
UOM = {
    "name": "microgram per cubic metre",
    "symbol": "µg/m³",
    "definition": "http://qudt.org/vocab/unit/MicroGM-PER-M3",
}
ARROW = "application/vnd.apache.arrow.stream"
MINUTE_US = 60_000_000
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in Unix microseconds
RSS_TARGET_MB = 2048


@dataclass
class Config:
    rows: int
    batch: int
    port: int | None
    quick: bool
    skip_pg: bool
    things: int = 100
    ds_per_thing: int = 10
    text_rows: int = 500_000
    http_threads: int = 4
    single_posts: int = 5_000
    single_conc: int = 48
    single_budget_s: float = 60.0
    latest_extra_things: int = 90  # x 100 Datastreams each
    latest_calls: int = 20
    agg_ds: int = 1000
    agg_days: int = 30
    agg_batch_minutes: int = 480  # 8 h x 1,000 Datastreams = 480k rows per append
    pg_threads: int = 4

    @classmethod
    def from_args(cls, a: argparse.Namespace) -> Config:
        c = cls(rows=a.rows, batch=a.batch, port=a.port, quick=a.quick, skip_pg=a.skip_pg)
        if a.quick:
            c.rows = a.rows if a.rows != 5_000_000 else 200_000
            c.things, c.ds_per_thing = 10, 10
            c.text_rows = 50_000
            c.single_posts = 2_000
            c.single_budget_s = 30.0
            c.latest_extra_things = 9
            c.agg_ds, c.agg_days = 100, 7
        return c


@dataclass
class Rows:
    """Observation rows as numpy columns: Datastream id, phenomenonTime (Unix µs), result."""

    ds: np.ndarray
    ts: np.ndarray
    result: np.ndarray

    @property
    def n(self) -> int:
        return len(self.ds)

    def slice(self, lo: int, hi: int) -> Rows:
        return Rows(self.ds[lo:hi], self.ts[lo:hi], self.result[lo:hi])


def make_rows(ids: np.ndarray, n: int, base_us: int, first_minute: int, seed: int) -> Rows:
    """Row k: Datastream ids[k % len(ids)] at minute first_minute + k // len(ids) after base."""
    k = np.arange(n, dtype=np.int64)
    nd = len(ids)
    rng = np.random.default_rng(seed)
    return Rows(
        ds=ids[k % nd].astype(np.int64),
        ts=base_us + (first_minute + k // nd) * MINUTE_US,
        result=np.round(rng.normal(35.0, 12.0, n), 2),
    )


def arrow_body(r: Rows) -> bytes:
    table = pa.table(
        {
            "datastream": pa.array(r.ds, pa.int64()),
            "phenomenonTime": pa.array(r.ts.view("datetime64[us]"), pa.timestamp("us", tz="UTC")),
            "result": pa.array(r.result, pa.float64()),
        }
    )
    sink = pa.BufferOutputStream()
    with paipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def data_array_body(r: Rows) -> bytes:
    """The rows as a SensorThings CreateObservations body: one dataArray per Datastream, as a client sends them."""
    times = iso_times(r.ts)
    groups: dict[int, list[list[object]]] = {}
    for d, t, v in zip(r.ds.tolist(), times, r.result.tolist(), strict=True):
        groups.setdefault(d, []).append([t, v])
    return orjson.dumps([
        {"Datastream": {"@iot.id": d}, "components": ["phenomenonTime", "result"], "dataArray": rows}
        for d, rows in groups.items()
    ])  # fmt: skip


def iso_times(ts: np.ndarray) -> list[str]:
    return [s + "Z" for s in np.datetime_as_string(ts.view("datetime64[us]"), unit="s").tolist()]


def csv_body(r: Rows) -> bytes:
    lines = ["datastream,phenomenonTime,result"]
    lines += [f"{d},{t},{v!r}" for d, t, v in zip(r.ds.tolist(), iso_times(r.ts), r.result.tolist(), strict=True)]
    return ("\n".join(lines) + "\n").encode()


def ndjson_body(r: Rows) -> bytes:
    return "".join(
        f'{{"datastream":{d},"phenomenonTime":"{t}","result":{v!r}}}\n'
        for d, t, v in zip(r.ds.tolist(), iso_times(r.ts), r.result.tolist(), strict=True)
    ).encode()


def batches(r: Rows, size: int) -> list[Rows]:
    return [r.slice(lo, min(lo + size, r.n)) for lo in range(0, r.n, size)]


# -- HTTP helpers ----------------------------------------------------------------------------------
class RequestFailed(RuntimeError):
    pass


def check(resp: httpx.Response, expect: tuple[int, ...], what: str, report: Report, body: Any = None) -> None:
    if resp.status_code in expect:
        return
    req = f"{resp.request.method} {resp.request.url}"
    sent = ""
    if body is not None:
        text = body if isinstance(body, str | bytes) else orjson.dumps(body)
        sent = f"\n    request body: {short(text, 600)}"
    msg = f"{what}: {req} -> {resp.status_code} (expected {expect}){sent}\n    response: {short(resp.text)}"
    report.problem(msg)
    raise RequestFailed(msg)


def get_all_ids(client: httpx.Client, report: Report) -> np.ndarray:
    ids: list[int] = []
    url: str | None = "/v1.1/Datastreams?$select=id&$top=10000"
    while url:
        r = client.get(url)
        check(r, (200,), "list Datastreams", report)
        data = r.json()
        ids += [int(v["@iot.id"]) for v in data["value"]]
        url = data.get("@iot.nextLink")
    return np.array(sorted(set(ids)), dtype=np.int64)


def thing_body(i: int, n_ds: int, sensor_id: int, op_id: int) -> dict[str, Any]:
    return {
        "name": f"S{i}",
        "description": "bench station",
        "Locations": [
            {
                "name": f"L{i}",
                "description": "d",
                "encodingType": "application/geo+json",
                "location": {
                    "type": "Point",
                    "coordinates": [105.8 + (i % 100) * 0.001, 21.0 + (i // 100) * 0.001],
                },
            }
        ],
        "Datastreams": [
            {
                "name": f"DS{i}-{j}",
                "description": "d",
                "observationType": OM_MEASUREMENT,
                "unitOfMeasurement": UOM,
                "Sensor": {"@iot.id": sensor_id},
                "ObservedProperty": {"@iot.id": op_id},
            }
            for j in range(n_ds)
        ],
    }


def create_things(
    client: httpx.Client, report: Report, first: int, n_things: int, n_ds: int, sensor_id: int, op_id: int
) -> None:
    for i in range(first, first + n_things):
        body = thing_body(i, n_ds, sensor_id, op_id)
        r = client.post("/v1.1/Things", json=body)
        check(r, (201,), "deep insert Thing", report, body)


@dataclass
class SendResult:
    requests: int = 0
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    failures: list[str] = field(default_factory=list)  # the first few, in full
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    phase: Phase | None = None


def report_failures(report: Report, label: str, res: SendResult, planned: int) -> None:
    for f in res.failures:
        report.problem(f"{label}: {f}")
    if res.failed > len(res.failures):
        early = "; stopped sending after 5 failures" if res.failed >= 5 else ""
        report.problem(f"{label}: {res.failed} failed requests in all ({planned} bodies planned{early})")


def send_bulk(
    server: Server, bodies: list[bytes], ctype: str, threads: int, path: str = "/api/v1/ingest"
) -> SendResult:
    """POST every body to ``path`` (/api/v1/ingest, or /v1.1/CreateObservations, whose answer is a link or an
    error per row) from ``threads`` connections; returns the summed answers."""
    out = SendResult()
    lock = threading.Lock()
    work: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in range(len(bodies)):
        work.put(i)
    stop = threading.Event()

    def worker() -> None:
        headers = {**server.headers, "Content-Type": ctype}
        with httpx.Client(base_url=server.base, headers=headers, timeout=300.0) as c:
            while not stop.is_set():
                try:
                    i = work.get_nowait()
                except queue.Empty:
                    return
                t0 = time.perf_counter()
                try:
                    r = c.post(path, content=bodies[i])
                except httpx.HTTPError as exc:
                    with lock:
                        out.failed += 1
                        if len(out.failures) < 2:
                            out.failures.append(f"request {i}: {type(exc).__name__}: {exc!r}")
                        if out.failed >= 5:
                            stop.set()
                    continue
                dt = time.perf_counter() - t0
                with lock:
                    out.requests += 1
                    out.latencies.append(dt)
                    if r.status_code == 200:
                        d = r.json()
                        out.received += d.get("received", 0)
                        out.stored += d.get("stored", 0)
                        out.duplicates += d.get("duplicates", 0)
                        out.rejected += d.get("rejected", 0)
                    elif r.status_code == 201 and path.endswith("CreateObservations"):
                        links = r.json()
                        out.received += len(links)
                        bad = sum(1 for x in links if x.startswith("error"))
                        out.stored += len(links) - bad
                        out.rejected += bad
                    else:
                        out.failed += 1
                        if len(out.failures) < 2:
                            out.failures.append(
                                f"POST {path} ({ctype}, body {i}, {len(bodies[i])} bytes) -> "
                                f"{r.status_code}: {short(r.text, 700)}"
                            )
                        if out.failed >= 5:  # the rest would fail the same way
                            stop.set()

    phase = Phase(server.pid)
    ts = [threading.Thread(target=worker, name=f"bulk-{k}") for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.phase = phase.stop()
    return out


async def _post_singles(
    server: Server, bodies: list[bytes], conc: int, budget_s: float
) -> tuple[int, int, dict[int, int], list[str], list[float]]:
    """POST the bodies from ``conc`` connections; no new request starts after ``budget_s`` seconds.

    Returns (201s, requests sent, status counts, failures, latencies)."""
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    headers = {**server.headers, "Content-Type": "application/json"}
    codes: dict[int, int] = {}
    failures: list[str] = []
    lat: list[float] = []
    it = iter(range(len(bodies)))
    ok = sent = 0
    deadline = time.perf_counter() + budget_s

    async with httpx.AsyncClient(base_url=server.base, headers=headers, limits=limits, timeout=120.0) as client:

        async def worker() -> None:
            nonlocal ok, sent
            for i in it:
                t0 = time.perf_counter()
                if t0 > deadline:
                    return
                sent += 1
                try:
                    r = await client.post("/v1.1/Observations", content=bodies[i])
                except httpx.HTTPError as exc:
                    failures.append(
                        f"POST /v1.1/Observations {bodies[i].decode()} -> {type(exc).__name__}: {exc!r} "
                        f"after {time.perf_counter() - t0:.2f}s (no response)"
                    )
                    continue
                lat.append(time.perf_counter() - t0)
                codes[r.status_code] = codes.get(r.status_code, 0) + 1
                if r.status_code == 201:
                    ok += 1
                elif len(failures) < 3:
                    failures.append(
                        f"POST /v1.1/Observations {bodies[i].decode()} -> {r.status_code}: {short(r.text, 700)}"
                    )

        await asyncio.gather(*(worker() for _ in range(conc)))
    return ok, sent, codes, failures, lat


WRK_SCRIPT = """
local counter = 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
request = function()
  counter = counter + 1
  local k = tid * 10000000 + counter
  local ds = ids[(k % #ids) + 1]
  local t = os.date("!%Y-%m-%dT%H:%M:%SZ", base_epoch + (first_minute + math.floor(k / #ids)) * 60)
  local body = string.format('{"phenomenonTime":"%s","result":1.5,"Datastream":{"@iot.id":%d}}', t, ds)
  return wrk.format("POST", "/v1.1/Observations", headers, body)
end
"""


def wrk_singles(cfg: Config, report: Report, server: Server, ids: np.ndarray, base: datetime, minute: int) -> int:
    """Single POSTs from wrk (C, negligible client CPU): the server's own capacity, which the Python
    client above cannot saturate on two cores. Skipped when wrk is not installed (apt-get install wrk)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        log("  wrk not installed (apt-get install wrk): single-POST capacity with a C client skipped")
        return minute
    seconds = 5 if cfg.quick else 15
    for conc in (64, 128):
        lua = Path(tempfile.mkdtemp(prefix="cityhub-wrk-")) / "post.lua"
        auth = server.headers["Authorization"]
        header = (
            f"ids = {{{', '.join(str(int(i)) for i in ids)}}}\n"
            f"base_epoch = {int(base.timestamp())}\nfirst_minute = {minute}\n"
            f'headers = {{["Content-Type"] = "application/json", ["Authorization"] = "{auth}"}}\n'
        )
        lua.write_text(header + WRK_SCRIPT)
        before = server_count(server)
        out = subprocess.run(
            [wrk, "-t2", f"-c{conc}", f"-d{seconds}s", "--latency", "-s", str(lua), server.base],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        ).stdout
        stored = server_count(server) - before
        rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: (.*)", out)
        p50 = re.search(r"50%\s+(\S+)", out)
        p99 = re.search(r"99%\s+(\S+)", out)
        total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        log(
            f"  wrk {conc} connections, {seconds}s: {total:,} requests, {rate:,.0f} req/s, stored {stored:,}, "
            f"latency p50 {p50.group(1) if p50 else '?'} p99 {p99.group(1) if p99 else '?'}"
            + (f", non-2xx {non2xx.group(1)}" if non2xx else "")
            + (f", socket errors {errors.group(1)}" if errors else "")
        )
        report.add(
            f"single Observation POST, wrk client ({conc} conns, {seconds}s)",
            fmt_rate(rate),
            "≥ 2,000 obs/s",
            rate >= 2000 and not non2xx and stored >= total,
        )
        minute += (2 * 10_000_000) // len(ids) + 10
    return minute


def server_count(server: Server) -> int:
    r = httpx.get(server.base + "/api/v1/info", headers=server.headers, timeout=60)
    return int(r.json()["counts"]["observations"])


def fmt_rate(x: float) -> str:
    return f"{x:,.0f} obs/s"


# -- part 1: HTTP against a server on a fresh store ------------------------------------------------
def http_part(cfg: Config, report: Report, tmp: Path) -> Rows | None:
    data_dir = tmp / "data"
    data_dir.mkdir()
    key = create_admin_key(data_dir)
    log(f"admin key created ({key[:6]}...)")
    server = Server(data_dir, cfg.port or free_port(), key)
    try:
        dt = server.start()
        log(f"server pid {server.pid} on {server.base} ready in {dt:.1f}s (RSS {server.monitor.hwm_mb:.0f} MB)")
        return _http_steps(cfg, report, server)
    except RequestFailed:
        return None
    finally:
        took = server.stop()
        if server.monitor is not None:
            log(f"server stopped in {took or 0:.1f}s; lifetime peak RSS (VmHWM) {server.monitor.hwm_kb / 1024:,.0f} MB")
        tail = server.log_tail()
        if any(w in tail for w in ("Traceback", "ERROR", "Exception")):
            report.problem(f"server log of the ingest server has errors; tail:\n{short(tail[-3000:], 3000)}")
        server.cleanup_log()


def _http_steps(cfg: Config, report: Report, server: Server) -> Rows | None:
    client = httpx.Client(base_url=server.base, headers=server.headers, timeout=300.0)
    try:
        return _http_steps_with(cfg, report, server, client)
    finally:
        client.close()


def _http_steps_with(cfg: Config, report: Report, server: Server, client: httpx.Client) -> Rows | None:
    # -- model -------------------------------------------------------------------------------------
    n_ds = cfg.things * cfg.ds_per_thing
    log(f"\n[1] creating {cfg.things} Things x {cfg.ds_per_thing} Datastreams (deep insert)")
    sensor = {"name": "bench sensor", "description": "d", "encodingType": "text/html", "metadata": "x"}
    r = client.post("/v1.1/Sensors", json=sensor)
    check(r, (201,), "create Sensor", report, sensor)
    sensor_id = r.json()["@iot.id"]
    prop = {"name": "PM2.5", "definition": "http://example.org/pm25", "description": "d"}
    r = client.post("/v1.1/ObservedProperties", json=prop)
    check(r, (201,), "create ObservedProperty", report, prop)
    op_id = r.json()["@iot.id"]
    ph = Phase(server.pid)
    create_things(client, report, 0, cfg.things, cfg.ds_per_thing, sensor_id, op_id)
    ph.stop()
    ids = get_all_ids(client, report)
    log(f"  {len(ids)} Datastreams in {ph.wall:.1f}s ({cfg.things / ph.wall:.1f} Things/s); {ph.cpu_text()}")
    if len(ids) != n_ds:
        report.problem(f"expected {n_ds} Datastreams, GET /v1.1/Datastreams listed {len(ids)}")
    report.add(f"create {n_ds:,} Datastreams ({cfg.things} deep inserts)", f"{ph.wall:.1f} s", "", None)

    # -- bulk Arrow --------------------------------------------------------------------------------
    now = datetime.now(UTC)
    base = (now - timedelta(days=3650)).replace(second=0, microsecond=0)
    base_us = int(base.timestamp()) * 1_000_000
    minute = 0
    log(
        f"\n[2] bulk ingest: {cfg.rows:,} rows as Arrow IPC, {cfg.batch:,} rows/request, {cfg.http_threads} connections"
    )
    t0 = time.perf_counter()
    bulk = make_rows(ids, cfg.rows, base_us, minute, seed=1)
    minute += math.ceil(cfg.rows / len(ids))
    bodies = [arrow_body(b) for b in batches(bulk, cfg.batch)]
    size = sum(map(len, bodies))
    log(f"  built {len(bodies)} bodies ({size / 1e6:,.0f} MB) in {time.perf_counter() - t0:.1f}s (not timed)")
    rss_before = server.monitor.hwm_mb
    res = send_bulk(server, bodies, ARROW, cfg.http_threads)
    ph = res.phase
    assert ph is not None
    rate = res.stored / ph.wall
    hwm = server.monitor.hwm_mb
    lat = res.latencies
    log(
        f"  {res.requests} requests in {ph.wall:.2f}s: received {res.received:,}, stored {res.stored:,}, "
        f"duplicates {res.duplicates}, rejected {res.rejected} -> {fmt_rate(rate)}"
    )
    if lat:
        log(
            f"  request latency median {statistics.median(lat) * 1e3:.0f} ms, "
            f"p95 {percentile(lat, 0.95) * 1e3:.0f} ms, "
            f"max {max(lat) * 1e3:.0f} ms; {ph.cpu_text()}"
        )
    log(
        f"  server peak RSS (VmHWM) {hwm:,.0f} MB (before bulk {rss_before:,.0f} MB, max sampled VmRSS "
        f"{server.monitor.max_rss_kb / 1024:,.0f} MB)"
    )
    report_failures(report, "bulk Arrow", res, len(bodies))
    lossless = res.stored == cfg.rows and not res.failed
    report.add(
        f"bulk ingest Arrow IPC ({cfg.rows:,} rows, {cfg.batch:,}/req, {cfg.http_threads} conns)",
        fmt_rate(rate),
        "≥ 300,000 obs/s",
        rate >= 300_000 and lossless,
    )
    report.add("bulk ingest zero loss (stored == sent)", f"{res.stored:,} / {cfg.rows:,}", "equal", lossless)
    report.add("server peak RSS (VmHWM) during bulk run", f"{hwm:,.0f} MB", "< 2,048 MB", hwm < RSS_TARGET_MB)
    del bodies

    # -- CSV and NDJSON ----------------------------------------------------------------------------
    # The SensorThings client's bulk path (CreateObservations, dataArray) right after NDJSON, the same rows' shape
    # and size: issue 13 wants it at least as fast.
    text_rates: dict[str, float] = {}
    for label, ctype, encode, path in (
        ("CSV", "text/csv", csv_body, "/api/v1/ingest"),
        ("NDJSON", "application/x-ndjson", ndjson_body, "/api/v1/ingest"),
        ("dataArray", "application/json", data_array_body, "/v1.1/CreateObservations"),
    ):
        log(
            f"\n[3] bulk ingest: {cfg.text_rows:,} rows as {label}, {cfg.batch:,} rows/request, "
            f"{cfg.http_threads} connections"
        )
        t0 = time.perf_counter()
        rows = make_rows(ids, cfg.text_rows, base_us, minute, seed=2)
        minute += math.ceil(cfg.text_rows / len(ids))
        bodies = [encode(b) for b in batches(rows, cfg.batch)]
        log(
            f"  built {len(bodies)} bodies ({sum(map(len, bodies)) / 1e6:,.0f} MB) in "
            f"{time.perf_counter() - t0:.1f}s (not timed)"
        )
        res = send_bulk(server, bodies, ctype, cfg.http_threads, path)
        ph = res.phase
        assert ph is not None
        rate = res.stored / ph.wall
        text_rates[label] = rate
        log(
            f"  {res.requests} requests in {ph.wall:.2f}s: stored {res.stored:,}, "
            f"duplicates {res.duplicates}, "
            f"rejected {res.rejected} -> {fmt_rate(rate)}; {ph.cpu_text()}"
        )
        report_failures(report, f"bulk {label}", res, len(bodies))
        ok = res.stored == cfg.text_rows and not res.failed
        report.add(
            f"bulk ingest {label} ({cfg.text_rows:,} rows)",
            fmt_rate(rate) + ("" if ok else " (LOSS)"),
            "stored == sent",
            ok,
        )
        del bodies
    if text_rates.get("NDJSON"):
        ratio = text_rates["dataArray"] / text_rates["NDJSON"]
        report.add(
            "CreateObservations (dataArray) / NDJSON ingest, same rows",
            f"{fmt_rate(text_rates['dataArray'])} / {fmt_rate(text_rates['NDJSON'])} = {ratio:.2f}x",
            ">= 1.0x",
            ratio >= 1.0,
        )

    # -- single Observation POSTs ------------------------------------------------------------------
    log(f"\n[4] single Observation POSTs: {cfg.single_posts:,} requests, {cfg.single_conc} connections")
    first_min = minute
    minute += math.ceil(cfg.single_posts / len(ids))
    bodies = [
        orjson.dumps(
            {
                "phenomenonTime": (base + timedelta(minutes=first_min + i // len(ids))).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "result": 1.0,
                "Datastream": {"@iot.id": int(ids[i % len(ids)])},
            }
        )
        for i in range(cfg.single_posts)
    ]
    ph = Phase(server.pid)
    ok, sent, codes, failures, lat = asyncio.run(_post_singles(server, bodies, cfg.single_conc, cfg.single_budget_s))
    ph.stop()
    rate = ok / ph.wall
    capped = sent < len(bodies)
    log(
        f"  {ok:,} x 201 of {sent:,} sent in {ph.wall:.2f}s -> {rate:,.0f} obs/s; status counts {codes}"
        + (f" (stopped after the {cfg.single_budget_s:.0f}s budget; {len(bodies):,} planned)" if capped else "")
    )
    if capped:
        report.problem(
            f"single Observation POST is slow: only {sent:,} of {len(bodies):,} requests fit in the "
            f"{cfg.single_budget_s:.0f}s budget"
        )
    if lat:
        log(
            f"  latency median {statistics.median(lat) * 1e3:.1f} ms, "
            f"p95 {percentile(lat, 0.95) * 1e3:.1f} ms; "
            f"{ph.cpu_text()}"
        )
    for f in failures:
        report.problem(f"single POST: {f}")
    # Bound by the Python client on this 2-core machine (it shares the cores with the server): the
    # server's capacity is the wrk figure below.
    report.add(
        f"single Observation POST, Python httpx client ({sent:,} req, {cfg.single_conc} conns)",
        fmt_rate(rate),
        "(client-bound)",
        None,
    )
    del bodies
    minute = wrk_singles(cfg, report, server, ids, base, minute)
    # Diagnostic: reading one Observation back by id (the POST answers with the stored entity).
    probe = []
    for _ in range(10):
        t0 = time.perf_counter()
        r = client.get("/v1.1/Observations(1)")
        probe.append(time.perf_counter() - t0)
    log(
        f"  diagnostic: GET /v1.1/Observations(1) -> {r.status_code}, median "
        f"{statistics.median(probe) * 1e3:.1f} ms over 10 calls "
        f"(store holds ~{cfg.rows + 2 * cfg.text_rows:,} Observations)"
    )

    # -- latest values -----------------------------------------------------------------------------
    extra = cfg.latest_extra_things * 100
    log(f"\n[5] latest values: creating {extra:,} more Datastreams ({cfg.latest_extra_things} Things x 100)")
    ph = Phase(server.pid)
    create_things(client, report, cfg.things, cfg.latest_extra_things, 100, sensor_id, op_id)
    ph.stop()
    all_ids = get_all_ids(client, report)
    new_ids = np.setdiff1d(all_ids, ids)
    log(f"  now {len(all_ids):,} Datastreams; created {len(new_ids):,} in {ph.wall:.1f}s; {ph.cpu_text()}")
    one = make_rows(new_ids, len(new_ids), base_us, minute, seed=3)
    res = send_bulk(server, [arrow_body(b) for b in batches(one, cfg.batch)], ARROW, 1)
    report_failures(report, "bulk Arrow (one per new Datastream)", res, 1)
    if res.stored != len(new_ids):
        report.problem(f"one observation per new Datastream: stored {res.stored} of {len(new_ids)}")
    for label, sel in ((f"{len(ids):,}", ids), (f"{len(all_ids):,}", all_ids)):
        body = orjson.dumps({"datastreams": sel.tolist()})
        times: list[float] = []
        resp = None
        for _ in range(cfg.latest_calls + 1):  # the first call warms up and is not counted
            t0 = time.perf_counter()
            resp = client.post("/api/v1/latest", content=body, headers={"Content-Type": "application/json"})
            times.append(time.perf_counter() - t0)
            check(resp, (200,), "latest", report, f"{{'datastreams': [{len(sel)} ids]}}")
        assert resp is not None
        d = resp.json()
        if d.get("count") != len(sel) or d.get("missing"):
            report.problem(f"latest for {label} ids: count {d.get('count')}, missing {str(d.get('missing'))[:200]}")
        med, p95 = statistics.median(times[1:]) * 1e3, percentile(times[1:], 0.95) * 1e3
        log(
            f"  latest of {label} Datastreams: first {times[0] * 1e3:.1f} ms, then median {med:.1f} ms, "
            f"p95 {p95:.1f} ms over {cfg.latest_calls} calls ({len(resp.content) / 1e6:.1f} MB response)"
        )
        report.add(f"latest of {label} Datastreams (median / p95)", f"{med:.1f} / {p95:.1f} ms", "< 50 ms", p95 < 50)
    return bulk


# -- part 2: aggregation over 30 days of 1-minute data ---------------------------------------------
def build_agg_store(cfg: Config, report: Report, data_dir: Path) -> tuple[list[int], datetime, datetime]:
    ensure_importable()
    from cityhub.ingest.observations import with_ids
    from cityhub.store.duckdb import DuckDBStore

    path = data_dir / "cityhub.duckdb"  # Settings.db_path
    minutes = cfg.agg_days * 24 * 60
    total = cfg.agg_ds * minutes
    # Days start at local midnight (UTC+7 by default): start there so the data covers whole days.
    start = datetime(2024, 1, 1, tzinfo=UTC) - timedelta(hours=7)
    end = start + timedelta(days=cfg.agg_days)
    log(
        f"\n[6] aggregation dataset: {cfg.agg_ds:,} Datastreams x {cfg.agg_days} days of 1-minute data = "
        f"{total:,} rows, built in-process with DuckDBStore (no HTTP)"
    )
    t0 = time.perf_counter()
    store = DuckDBStore(path)
    try:
        with store.transaction() as tx:
            thing = tx.insert("things", {"name": "agg", "description": "bench"})
            sensor = tx.insert(
                "sensors", {"name": "s", "description": "d", "encoding_type": "text/html", "metadata": "x"}
            )
            prop = tx.insert(
                "observed_properties",
                {"name": "PM2.5", "definition": "http://example.org/pm25", "description": "d"},
            )
            uom = orjson.dumps(UOM).decode()
            ds_ids = [
                tx.insert(
                    "datastreams",
                    {
                        "name": f"A{i}",
                        "description": "d",
                        "observation_type": OM_MEASUREMENT,
                        "unit_of_measurement": uom,
                        "thing_id": thing,
                        "sensor_id": sensor,
                        "observed_property_id": prop,
                    },
                )
                for i in range(cfg.agg_ds)
            ]
        log(f"  {len(ds_ids)} Datastream rows in {time.perf_counter() - t0:.1f}s")
        ids_np = np.array(ds_ids, dtype=np.int64)
        start_us = int(start.timestamp()) * 1_000_000
        ts_type = pa.timestamp("us", tz="UTC")
        step = cfg.agg_batch_minutes
        append_s = build_s = 0.0
        stored = 0
        t_load = time.perf_counter()
        for m0 in range(0, minutes, step):
            tb = time.perf_counter()
            r = make_rows(ids_np, min(step, minutes - m0) * len(ids_np), start_us, m0, seed=m0)
            n = r.n
            null_ts = pa.nulls(n, ts_type)
            batch = pa.table(
                {
                    "datastream_id": pa.array(r.ds, pa.int64()),
                    "phenomenon_time": pa.array(r.ts.view("datetime64[us]"), ts_type),
                    "phenomenon_time_end": null_ts,
                    "result_time": null_ts,
                    "result_number": pa.array(r.result, pa.float64()),
                    "result_string": pa.nulls(n, pa.string()),
                    "result_json": pa.nulls(n, pa.string()),
                    "result_quality": pa.nulls(n, pa.string()),
                    "valid_time_start": null_ts,
                    "valid_time_end": null_ts,
                    "parameters": pa.nulls(n, pa.string()),
                    "feature_of_interest_id": pa.nulls(n, pa.int64()),
                }
            )
            batch = with_ids(batch, store.allocate_ids("observations", n))
            ta = time.perf_counter()
            build_s += ta - tb
            with store.transaction() as tx:
                res = store.append_observations(tx, batch)
            append_s += time.perf_counter() - ta
            stored += int(res.inserted.size)
            done = m0 + step
            if (done // step) % 10 == 0 or done >= minutes:
                el = time.perf_counter() - t_load
                log(f"  {stored:,} rows in {el:.1f}s ({stored / el:,.0f} rows/s)")
        tc = time.perf_counter()
        store.close()
        store = None
        close_s = time.perf_counter() - tc
    finally:
        if store is not None:
            store.close()
    load_s = time.perf_counter() - t_load
    if stored != total:
        report.problem(f"aggregation dataset: append_observations stored {stored:,} of {total:,} rows")
    log(
        f"  loaded {stored:,} rows in {load_s:.1f}s: append {append_s:.1f}s, batch building {build_s:.1f}s, "
        f"close/checkpoint {close_s:.1f}s -> {stored / load_s:,.0f} rows/s overall, "
        f"{stored / append_s:,.0f} rows/s in append_observations"
    )
    size = sum(p.stat().st_size for p in data_dir.iterdir() if p.is_file())
    log(f"  store on disk: {size / 1e6:,.0f} MB")
    report.add(
        f"in-process load ({total:,} rows, {step * cfg.agg_ds:,}/batch)",
        f"{stored / load_s:,.0f} rows/s",
        "",
        None,
    )
    return ds_ids, start, end


def agg_part(cfg: Config, report: Report) -> None:
    data_dir = make_tmpdir("agg")
    server: Server | None = None
    try:
        ds_ids, start, end = build_agg_store(cfg, report, data_dir)
        key = create_admin_key(data_dir)
        server = Server(data_dir, free_port() if cfg.port is None else cfg.port + 1, key)
        dt = server.start()
        log(f"  server pid {server.pid} on the aggregation store ready in {dt:.1f}s")
        hours = cfg.agg_days * 24
        client = httpx.Client(base_url=server.base, headers=server.headers, timeout=300.0)
        try:
            for interval, expected in (("hour", hours), ("day", cfg.agg_days)):
                q = {
                    "datastreams": ds_ids,
                    "function": "avg",
                    "interval": interval,
                    "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
                body = orjson.dumps(q)
                for fmt, accept in (("JSON", "application/json"), ("Arrow", ARROW)):
                    times = []
                    resp = None
                    for _ in range(6):  # first call is a warm-up, then 5 timed
                        t0 = time.perf_counter()
                        resp = client.post(
                            "/api/v1/aggregate",
                            content=body,
                            headers={"Content-Type": "application/json", "Accept": accept},
                        )
                        times.append(time.perf_counter() - t0)
                        check(
                            resp,
                            (200,),
                            f"aggregate {interval} {fmt}",
                            report,
                            {**q, "datastreams": f"[{len(ds_ids)} ids]"},
                        )
                    assert resp is not None
                    if fmt == "JSON":
                        d = resp.json()
                        buckets = sum(len(v["time"]) for v in d["value"])
                        rows = sum(sum(v["count"]) for v in d["value"])
                    else:
                        t = paipc.open_stream(resp.content).read_all()
                        buckets = t.num_rows
                        rows = int(pa.compute.sum(t.column("count")).as_py() or 0)
                    want = len(ds_ids) * expected
                    med = statistics.median(times[1:])
                    log(
                        f"  aggregate avg/{interval} {fmt}: first {times[0]:.3f}s, median {med:.3f}s of 5 "
                        f"({len(resp.content) / 1e6:.1f} MB); {buckets:,} buckets (expected {want:,}), "
                        f"{rows:,} rows counted"
                    )
                    ok_count = buckets == want and rows == len(ds_ids) * hours * 60
                    if not ok_count:
                        report.problem(
                            f"aggregate {interval} {fmt}: {buckets:,} buckets / {rows:,} rows, "
                            f"expected {want:,} / {len(ds_ids) * hours * 60:,}"
                        )
                    report.add(
                        f"aggregate avg per {interval}, {len(ds_ids):,} DS x {cfg.agg_days} d, {fmt} "
                        f"({buckets:,} buckets)",
                        f"{med * 1e3:,.0f} ms",
                        "< 1,000 ms; count ok",
                        med < 1.0 and ok_count,
                    )
        finally:
            client.close()
    except RequestFailed:
        pass
    finally:
        if server is not None:
            took = server.stop()
            if server.monitor is not None:
                log(
                    f"  aggregation server stopped in {took or 0:.1f}s; peak RSS {server.monitor.hwm_kb / 1024:,.0f} MB"
                )
            tail = server.log_tail()
            if any(w in tail for w in ("Traceback", "ERROR", "Exception")):
                report.problem(f"server log of the aggregation server has errors; tail:\n{short(tail[-3000:], 3000)}")
            server.cleanup_log()
        remove_tmpdir(data_dir)


# -- part 3: PostgreSQL peer -----------------------------------------------------------------------
_PG_ROW = np.dtype(
    [
        ("nf", ">i2"),
        ("l1", ">i4"),
        ("id", ">i8"),
        ("l2", ">i4"),
        ("ds", ">i8"),
        ("l3", ">i4"),
        ("ts", ">i8"),
        ("l4", ">i4"),
        ("r", ">f8"),
    ]
)
_PG_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_PG_TRAILER = struct.pack(">h", -1)


def pg_binary(first_id: int, r: Rows) -> bytes:
    """One COPY ... (FORMAT BINARY) stream for a batch, encoded with numpy."""
    a = np.empty(r.n, dtype=_PG_ROW)
    a["nf"] = 4
    a["l1"] = a["l2"] = a["l3"] = a["l4"] = 8
    a["id"] = np.arange(first_id, first_id + r.n, dtype=np.int64)
    a["ds"] = r.ds
    a["ts"] = r.ts - PG_EPOCH_US
    a["r"] = r.result
    return _PG_HEADER + a.tobytes() + _PG_TRAILER


def pg_connect() -> tuple[Any, str]:
    import psycopg

    errors = []
    for dsn in (
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        "host=127.0.0.1 port=5432 user=root dbname=test",
        "host=127.0.0.1 port=5432 dbname=postgres",
    ):
        try:
            return psycopg.connect(dsn, connect_timeout=3), dsn
        except Exception as exc:
            errors.append(f"{dsn}: {str(exc).strip()[:200]}")
    raise ConnectionError("; ".join(errors))


def pg_part(cfg: Config, report: Report, bulk: Rows | None) -> None:
    log("\n[7] PostgreSQL peer")
    if cfg.skip_pg:
        log("  skipped: --skip-pg")
        report.add("PostgreSQL COPY", "skipped: --skip-pg", "", None)
        return
    if bulk is None:
        log("  skipped: no bulk rows (the HTTP part failed)")
        report.add("PostgreSQL COPY", "skipped: no bulk rows", "", None)
        return
    try:
        conn, dsn = pg_connect()
    except Exception as exc:
        log(f"  skipped: {exc}")
        report.add("PostgreSQL COPY", f"skipped: {str(exc)[:80]}", "", None)
        return
    schema = f"cityhub_bench_{int(time.time())}"
    table = f"{schema}.bench_obs"
    try:
        version = conn.execute("SHOW server_version").fetchone()[0]
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(
            f"CREATE TABLE {table} (id bigint, datastream_id bigint, phenomenon_time timestamptz, "
            "result double precision, PRIMARY KEY (datastream_id, phenomenon_time))"
        )
        conn.commit()
        t0 = time.perf_counter()
        parts = batches(bulk, cfg.batch)
        streams, first = [], 1
        for b in parts:
            streams.append(pg_binary(first, b))
            first += b.n
        log(
            f"  PostgreSQL {version} ({dsn}); encoded {len(streams)} COPY BINARY batches "
            f"({sum(map(len, streams)) / 1e6:,.0f} MB) in {time.perf_counter() - t0:.1f}s (not timed)"
        )
        work: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(len(streams)):
            work.put(i)
        errors: list[str] = []
        sql = f"COPY {table} (id, datastream_id, phenomenon_time, result) FROM STDIN (FORMAT BINARY)"

        def worker() -> None:
            import psycopg

            with psycopg.connect(dsn) as c:
                while True:
                    try:
                        i = work.get_nowait()
                    except queue.Empty:
                        return
                    try:
                        with c.cursor() as cur, cur.copy(sql) as cp:
                            cp.write(streams[i])
                        c.commit()
                    except Exception as exc:
                        errors.append(f"batch {i}: {exc}")
                        c.rollback()
                        return

        ph = Phase(None)
        ts = [threading.Thread(target=worker) for _ in range(cfg.pg_threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        ph.stop()
        (count,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608 (the bench's own table)
        rate = count / ph.wall
        log(
            f"  COPY FORMAT BINARY (pre-encoded, copy.write per {cfg.batch:,}-row batch, commit per batch, "
            f"{cfg.pg_threads} connections): {count:,} rows in {ph.wall:.2f}s -> {rate:,.0f} rows/s; "
            f"client CPU {ph.client_cpu:.1f}s"
        )
        for e in errors:
            report.problem(f"PostgreSQL COPY: {e}")
        report.add(
            f"PostgreSQL {version.split()[0]} COPY BINARY ({count:,} rows, {cfg.batch:,}/commit, "
            f"{cfg.pg_threads} conns)",
            f"{rate:,.0f} rows/s",
            "(peer)",
            None if count == bulk.n else False,
        )
    finally:
        try:
            conn.rollback()
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.commit()
        finally:
            conn.close()


def run_part(report: Report, name: str, fn: Any, *args: Any) -> Any:
    """Run one part; an unexpected error is reported and the benchmark goes on with the next part."""
    try:
        return fn(*args)
    except Exception as exc:
        tb = traceback.format_exc()
        log(tb)
        report.problem(f"{name} failed: {type(exc).__name__}: {short(str(exc), 3000)}")
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rows", type=int, default=5_000_000, help="rows of the Arrow bulk run (default 5,000,000)")
    p.add_argument("--batch", type=int, default=10_000, help="rows per bulk request / COPY batch (default 10,000)")
    p.add_argument("--port", type=int, default=None, help="port of the ingest server (default: a free one)")
    p.add_argument("--quick", action="store_true", help="small smoke-test run (200k rows, 100 Datastreams)")
    p.add_argument("--skip-pg", action="store_true", help="skip the PostgreSQL peer")
    cfg = Config.from_args(p.parse_args(argv))
    report = Report()
    t_start = time.perf_counter()
    log(f"CityHub ingest benchmark{' (quick)' if cfg.quick else ''}: {cfg.rows:,} bulk rows, batch {cfg.batch:,}")
    log(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (1 min) at start")
    tmp = make_tmpdir("ingest")
    bulk: Rows | None = None
    try:
        try:
            bulk = run_part(report, "HTTP ingest/latest part", http_part, cfg, report, tmp)
        finally:
            remove_tmpdir(tmp)
        run_part(report, "aggregation part", agg_part, cfg, report)
        if bulk is None:  # the HTTP part failed: COPY rows of the same shape anyway
            n_ds = cfg.things * cfg.ds_per_thing
            base_us = int((datetime.now(UTC) - timedelta(days=3650)).timestamp()) // 60 * MINUTE_US
            bulk = make_rows(np.arange(1, n_ds + 1, dtype=np.int64), cfg.rows, base_us, 0, seed=1)
        run_part(report, "PostgreSQL part", pg_part, cfg, report, bulk)
        serial_tmp = make_tmpdir("serial")
        try:
            run_part(report, "serial one-client part", serial_part, report, serial_tmp)
        finally:
            remove_tmpdir(serial_tmp)
    except KeyboardInterrupt:
        log("interrupted")
    total = time.perf_counter() - t_start
    log(f"\nload average {os.getloadavg()[0]:.2f} (1 min) at the end")
    report.add("total benchmark run time", f"{total / 60:.1f} min", "< 12 min", total < 12 * 60)
    report.print()
    return 1 if report.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
