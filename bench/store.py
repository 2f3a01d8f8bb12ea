"""The two stores side by side: embedded DuckDB (``--data-dir``) and PostgreSQL/PostGIS (``--store``), same rows.

    .venv/bin/python -m bench.store                      # full scale (minutes per store)
    .venv/bin/python -m bench.store --scale 0.01         # smoke test
    .venv/bin/python -m bench.store --only 1,3 --stores postgresql

Each section runs against real ``cityhub serve`` processes, one store after the other; targets in brackets:

1. bulk ingest over HTTP: 5,000,000 Observations as Arrow IPC, 10,000 per ``POST /api/v1/ingest``, 4 connections;
   peer in the same run: ``COPY ... FROM STDIN (FORMAT BINARY)`` of the same rows into a bare PostgreSQL table
   (no key, no index), 4 connections, one commit per 10,000 rows
   [PostgreSQL store >= 200,000 obs/s and >= 0.60x that COPY];
2. single ``POST /v1.1/Observations`` from 64 concurrent connections (httpx async): PostgreSQL with one hub
   process and with two on the same database (connections split between them), DuckDB with one
   [PostgreSQL >= 2,000 obs/s];
3. latest value of 10,000 Datastreams, ``POST /api/v1/latest`` with the ids in the body, p50 [< 50 ms];
4. hourly averages of 1,000 Datastreams x 30 days of 1-minute data (43.2 M rows, loaded in-process with the
   store's own ``append_batch``), ``POST /api/v1/aggregate``, p50 [< 1 s];
5. ``GET /v1.1/Observations?$filter=geo.distance(FeatureOfInterest/feature, geography'POINT(105.85 21.03)') lt 0.05
   and phenomenonTime ge .. and phenomenonTime lt ..`` (one hour) over 10,000 Things at real Hanoi bus stops, p50
   [< 100 ms];
6. bytes on disk per million Observations (``/api/v1/info`` ``bytes_on_disk``: the DuckDB file and its WAL, the
   PostgreSQL schema's ``pg_total_relation_size``), and the peak RSS (VmHWM) of every hub process.

The hub derives a VN_AQI Observation per PM2.5 station and hour: the bench waits for the hubs to go idle before
each timed read, and counts those rows in the stores' totals. Section 2's client runs in ``--client-procs``
processes (default: CPUs / 4) so that one Python client does not cap the figure on a large machine.

``--scale`` multiplies every row and entity count; ``--only`` picks sections. PostgreSQL:
``--pg postgresql://postgres@127.0.0.1:5432/postgres``; the bench makes schemas ``chbench_<time>_*`` there and
drops them at the end. No figure is asserted: the table says PASS/FAIL against the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import queue
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as paipc
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from bench._util import (
    ROOT,
    Report,
    Server,
    create_admin_key,
    ensure_importable,
    free_port,
    log,
    make_tmpdir,
    proc_cpu_s,
    remove_tmpdir,
    short,
)
from bench.ingest import (
    ARROW,
    OM_MEASUREMENT,
    UOM,
    WRK_SCRIPT,
    RequestFailed,
    Rows,
    _post_singles,
    arrow_body,
    batches,
    check,
    get_all_ids,
    make_rows,
    pg_binary,
    report_failures,
    send_bulk,
    thing_body,
)

SECTIONS = {
    1: "bulk ingest",
    2: "single POST",
    3: "latest values",
    4: "hourly aggregates",
    5: "geo + time $filter",
    6: "disk and RSS",
}
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
STOPS = ROOT.parent / "shared" / "data" / "transit" / "hanoi_bus_stops_osm.geojson"
CENTRE = (105.85, 21.03)  # Hoàn Kiếm
RADIUS_DEG = 0.05
BASE = datetime(2025, 3, 1, tzinfo=UTC)  # the main stores' first Observation
BASE_US = int(BASE.timestamp()) * 1_000_000
AGG_START = datetime(2024, 1, 1, tzinfo=UTC)
AGG_BATCH_ROWS = 480_000  # rows per append_batch of the aggregation dataset (8 h x 1,000 Datastreams)


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Config:
    scale: float
    only: set[int]
    stores: list[str]
    pg: str
    batch: int = 10_000
    http_threads: int = 4
    conc: int = 64
    client_procs: int = 1
    load_threads: int = 4
    repeats: int = 20
    agg_days: int = 30
    single_budget_s: float = 30.0
    rows: int = 0
    things: int = 0
    singles: int = 0
    agg_ds: int = 0

    @classmethod
    def from_args(cls, a: argparse.Namespace) -> Config:
        cpus = os.cpu_count() or 2
        c = cls(
            scale=a.scale,
            only=a.only,
            stores=a.stores,
            pg=a.pg,
            client_procs=a.client_procs or max(1, min(4, cpus // 4)),
            load_threads=max(1, min(4, cpus)),
        )
        c.rows = max(c.batch, round(a.rows * a.scale))
        c.things = max(10, round(10_000 * a.scale))
        c.singles = max(2_000, round(20_000 * a.scale))
        c.agg_ds = max(1, round(1_000 * a.scale))
        return c


@dataclass
class Backend:
    key: str  # "duckdb" | "postgresql"
    label: str
    pg_base: str = ""  # PostgreSQL: the database URL without ?schema
    prefix: str = ""  # PostgreSQL: the bench's schema prefix

    def url(self, part: str) -> str:
        """The store URL of one part's schema ("" for the embedded store)."""
        if not self.pg_base:
            return ""
        return f"{self.pg_base}{'&' if '?' in self.pg_base else '?'}schema={self.prefix}_{part}"

    def args(self, part: str) -> list[str]:
        return ["--store", self.url(part)] if self.pg_base else []

    @property
    def env(self) -> dict[str, str]:
        """The embedded store's hubs must not pick up a CITYHUB_STORE of the caller's environment."""
        return {} if self.pg_base else {"CITYHUB_STORE": ""}


@dataclass
class Figures:
    """Rows for the report, printed grouped by section, then in the order they were measured."""

    rows: list[tuple[int, int, str, str, str, bool | None]] = field(default_factory=list)
    hub_bulk: dict[str, float] = field(default_factory=dict)  # store -> obs/s of section 1
    pg_rows: Rows | None = None  # the rows the PostgreSQL hub got in section 1 (for the COPY peer)
    geo_counts: dict[str, int] = field(default_factory=dict)  # store -> Observations section 5's filter matched

    def add(self, section: int, figure: str, measured: str, target: str = "", ok: bool | None = None) -> None:
        self.rows.append((section, len(self.rows), f"[{section}] {figure}", measured, target, ok))

    def into(self, report: Report) -> None:
        for _s, _i, figure, measured, target, ok in sorted(self.rows, key=lambda r: (r[0], r[1])):
            report.add(figure, measured, target, ok)


def bar() -> Progress:
    return Progress(
        TextColumn("  {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


class Counted(list):  # type: ignore[type-arg]
    """Request bodies that advance a progress bar as ``send_bulk`` takes each one."""

    def __init__(self, items: list[bytes], progress: Progress, task: Any) -> None:
        super().__init__(items)
        self.progress, self.task = progress, task

    def __getitem__(self, i: Any) -> Any:
        self.progress.advance(self.task)
        return super().__getitem__(i)


def p50_ms(times: list[float]) -> float:
    return statistics.median(times) * 1e3


def settle(servers: list[Server], timeout_s: float = 120.0) -> None:
    """Wait until the hubs are idle (under 5 % of a core for half a second): the hub derives VN_AQI Datastreams of
    the PM2.5 stations after ingest and at start-up, which would otherwise run during the timed reads."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        c0 = sum(proc_cpu_s(s.pid) for s in servers)
        time.sleep(0.5)
        if sum(proc_cpu_s(s.pid) for s in servers) - c0 < 0.025:
            break
    waited = time.perf_counter() - t0
    if waited > 1.0:
        log(f"  waited {waited:.1f}s for the hub{'s' if len(servers) > 1 else ''} to go idle")


# -- places: Things at real Hanoi bus stops ------------------------------------------------------------------
def places(n: int) -> list[tuple[str, float, float]]:
    """``n`` (name, lon, lat): OSM bus stops of Hanoi (../shared/data), shuffled, repeated with ~100 m of jitter
    past the 3,326 there are; a grid over central Hanoi where the file is absent."""
    pts: list[tuple[str, float, float]] = []
    with suppress(OSError, ValueError, KeyError):
        for f in json.loads(STOPS.read_text())["features"]:
            lon, lat = f["geometry"]["coordinates"][:2]
            if 105.3 <= lon <= 106.1 and 20.5 <= lat <= 21.4:
                pts.append((str(f["properties"].get("name") or f["properties"].get("id")), float(lon), float(lat)))
    if not pts:
        log(f"  {STOPS} not found: Things on a grid over central Hanoi instead of at bus stops")
        side = math.ceil(math.sqrt(n))
        pts = [(f"grid {i}", 105.75 + 0.2 * (i % side) / side, 20.95 + 0.13 * (i // side) / side) for i in range(n)]
    rng = np.random.default_rng(7)
    order = rng.permutation(len(pts))
    jitter = rng.uniform(-0.001, 0.001, size=(n, 2))
    out = []
    for i in range(n):
        name, lon, lat = pts[order[i % len(pts)]]
        if i >= len(pts):
            lon, lat = lon + jitter[i, 0], lat + jitter[i, 1]
        out.append((name, round(lon, 7), round(lat, 7)))
    return out


def create_things(cfg: Config, report: Report, server: Server, where: list[tuple[str, float, float]]) -> np.ndarray:
    """One Thing per place, each with a Location there and one Datastream (deep inserts from 8 connections);
    returns the Datastream ids."""
    with httpx.Client(base_url=server.base, headers=server.headers, timeout=120) as c:
        sensor = {"name": "PM2.5 sensor", "description": "d", "encodingType": "text/html", "metadata": "x"}
        r = c.post("/v1.1/Sensors", json=sensor)
        check(r, (201,), "create Sensor", report, sensor)
        sensor_id = r.json()["@iot.id"]
        prop = {"name": "PM2.5", "definition": "http://example.org/pm25", "description": "d"}
        r = c.post("/v1.1/ObservedProperties", json=prop)
        check(r, (201,), "create ObservedProperty", report, prop)
        op_id = r.json()["@iot.id"]
    work: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in range(len(where)):
        work.put(i)
    errors: list[BaseException] = []

    def worker(progress: Progress, task: Any) -> None:
        with httpx.Client(base_url=server.base, headers=server.headers, timeout=120) as c:
            while not errors:
                try:
                    i = work.get_nowait()
                except queue.Empty:
                    return
                name, lon, lat = where[i]
                body = thing_body(i, 1, sensor_id, op_id)
                body["name"] = f"air station {i}: {name}"
                body["Locations"][0]["name"] = name
                body["Locations"][0]["location"]["coordinates"] = [lon, lat]
                try:
                    check(c.post("/v1.1/Things", json=body), (201,), "deep insert Thing", report, body)
                except (RequestFailed, httpx.HTTPError) as exc:
                    errors.append(exc)
                    return
                progress.advance(task)

    t0 = time.perf_counter()
    with bar() as progress:
        task = progress.add_task(f"{len(where):,} Things", total=len(where))
        threads = [threading.Thread(target=worker, args=(progress, task)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if errors:
        raise RequestFailed(f"creating Things: {errors[0]}")
    with httpx.Client(base_url=server.base, headers=server.headers, timeout=120) as c:
        ids = get_all_ids(c, report)
    log(f"  {len(where):,} Things with a Datastream each in {time.perf_counter() - t0:.1f}s")
    return ids


# -- section 1: bulk ingest ----------------------------------------------------------------------------------
def bulk(cfg: Config, figs: Figures, report: Report, be: Backend, server: Server, ids: np.ndarray) -> Rows:
    """Section 1 (timed), or without it the hour of rows per Datastream that sections 3 and 5 read (not timed)."""
    timed = 1 in cfg.only
    n = cfg.rows if timed else len(ids) * 60
    rows = make_rows(ids, n, BASE_US, 0, seed=1)
    t0 = time.perf_counter()
    bodies = [arrow_body(b) for b in batches(rows, cfg.batch)]
    log(
        f"  {'[1] ' if timed else 'setup: '}{n:,} rows as {len(bodies)} Arrow IPC bodies "
        f"({sum(map(len, bodies)) / 1e6:,.0f} MB, built in {time.perf_counter() - t0:.1f}s, not timed), "
        f"{cfg.http_threads} connections"
    )
    with bar() as progress:
        task = progress.add_task(f"bulk ingest, {be.label}", total=len(bodies))
        res = send_bulk(server, Counted(bodies, progress, task), ARROW, cfg.http_threads)
    assert res.phase is not None
    rate = res.stored / res.phase.wall
    log(
        f"  {res.requests} requests in {res.phase.wall:.2f}s: stored {res.stored:,}, duplicates {res.duplicates}, "
        f"rejected {res.rejected} -> {rate:,.0f} obs/s; {res.phase.cpu_text()}"
    )
    report_failures(report, f"bulk ingest ({be.label})", res, len(bodies))
    if res.stored != n or res.failed:
        report.problem(f"bulk ingest ({be.label}): stored {res.stored:,} of {n:,} rows")
    if timed:
        figs.hub_bulk[be.key] = rate
        figs.add(
            1,
            f"bulk ingest HTTP, Arrow IPC, {n:,} rows, {cfg.batch:,}/request, {cfg.http_threads} conns: {be.label}",
            f"{rate:,.0f} obs/s" + ("" if res.stored == n else f" (stored {res.stored:,} of {n:,})"),
            ">= 200,000 obs/s" if be.key == "postgresql" else "",
            (rate >= 200_000 and res.stored == n) if be.key == "postgresql" else None,
        )
    return rows


def copy_peer(cfg: Config, figs: Figures, report: Report, be: Backend) -> None:
    """COPY FORMAT BINARY of the PostgreSQL hub's rows into a bare table (no key, no index) in its own schema."""
    import psycopg

    from cityhub.store.postgres.store import split_url

    rows = figs.pg_rows
    if rows is None:
        n_ds = cfg.things
        rows = make_rows(np.arange(1, n_ds + 1, dtype=np.int64), cfg.rows, BASE_US, 0, seed=1)
    conninfo, schema = split_url(be.url("copy"))
    parts = batches(rows, cfg.batch)
    streams, first = [], 1
    for b in parts:
        streams.append(pg_binary(first, b))
        first += b.n
    log(
        f"\n[1] PostgreSQL COPY peer: {rows.n:,} rows, {len(streams)} pre-encoded COPY BINARY streams "
        f"({sum(map(len, streams)) / 1e6:,.0f} MB, not timed), {cfg.http_threads} connections, commit per batch, "
        "bare table without key or index"
    )
    table = f"{schema}.obs"
    with psycopg.connect(conninfo, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
        con.execute(
            f"CREATE TABLE {table} (id bigint, datastream_id bigint, phenomenon_time timestamptz, "
            "result double precision)"
        )
    work: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in range(len(streams)):
        work.put(i)
    errors: list[str] = []
    sql = f"COPY {table} (id, datastream_id, phenomenon_time, result) FROM STDIN (FORMAT BINARY)"

    def worker(progress: Progress, task: Any) -> None:
        with psycopg.connect(conninfo) as c:
            while not errors:
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
                    return
                progress.advance(task)

    with bar() as progress:
        task = progress.add_task("COPY BINARY", total=len(streams))
        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(progress, task)) for _ in range(cfg.http_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    with psycopg.connect(conninfo, autocommit=True) as con:
        (count,) = con.execute(f"SELECT count(*) FROM {table}").fetchone()  # type: ignore[misc]  # noqa: S608
    for e in errors:
        report.problem(f"PostgreSQL COPY: {e}")
    rate = count / wall
    log(f"  {count:,} rows in {wall:.2f}s -> {rate:,.0f} rows/s")
    figs.add(
        1,
        f"PostgreSQL COPY FORMAT BINARY of the same rows, bare table, {cfg.http_threads} conns (peer)",
        f"{rate:,.0f} rows/s",
        "",
        None if count == rows.n else False,
    )
    for key, hub in figs.hub_bulk.items():
        label = "PostgreSQL" if key == "postgresql" else "DuckDB"
        ratio = hub / rate
        pg = key == "postgresql"
        figs.add(
            1,
            f"{label} store bulk ingest / PostgreSQL COPY",
            f"{hub:,.0f} / {rate:,.0f} = {ratio:.2f}x",
            ">= 0.60x" if pg else "",
            ratio >= 0.60 if pg else None,
        )


# -- section 2: single Observation POSTs ---------------------------------------------------------------------
def _client(lanes: list[tuple[str, dict[str, str], list[bytes], int]], budget_s: float) -> dict[str, Any]:
    """One client process: its lanes (a hub, bodies, connections) at once; top level so that it can be spawned."""

    async def go() -> list[Any]:
        return await asyncio.gather(
            *(_post_singles(SimpleNamespace(base=b, headers=h), bodies, conc, budget_s) for b, h, bodies, conc in lanes)  # type: ignore[arg-type]
        )

    t0 = time.time()
    results = asyncio.run(go())
    t1 = time.time()
    out: dict[str, Any] = {"ok": 0, "sent": 0, "codes": {}, "failures": [], "lat": [], "t0": t0, "t1": t1}
    for ok, sent, codes, failures, lat in results:
        out["ok"] += ok
        out["sent"] += sent
        for k, v in codes.items():
            out["codes"][k] = out["codes"].get(k, 0) + v
        out["failures"] += failures
        out["lat"] += lat
    return out


def singles(cfg: Config, servers: list[Server], ids: np.ndarray, first_minute: int) -> dict[str, Any]:
    """``cfg.singles`` POSTs of one Observation each from ``cfg.conc`` connections split evenly between the hubs
    (and between ``cfg.client_procs`` client processes); no request starts after ``cfg.single_budget_s``."""
    bodies = [
        orjson.dumps(
            {
                "phenomenonTime": iso(BASE + timedelta(minutes=first_minute + i // len(ids))),
                "result": round(20 + (i % 400) / 10, 1),
                "Datastream": {"@iot.id": int(ids[i % len(ids)])},
            }
        )
        for i in range(cfg.singles)
    ]
    n_lanes = math.ceil(max(cfg.client_procs, len(servers)) / len(servers)) * len(servers)
    lanes = [
        (servers[j % len(servers)].base, servers[j % len(servers)].headers, bodies[j::n_lanes], cfg.conc // n_lanes)
        for j in range(n_lanes)
    ]
    procs = min(cfg.client_procs, n_lanes)
    if procs == 1:
        parts = [_client(lanes, cfg.single_budget_s)]
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=procs, mp_context=ctx) as pool:
            parts = list(pool.map(_client, [lanes[k::procs] for k in range(procs)], [cfg.single_budget_s] * procs))
    out: dict[str, Any] = {"ok": 0, "sent": 0, "codes": {}, "failures": [], "lat": []}
    out["t0"], out["t1"] = min(p["t0"] for p in parts), max(p["t1"] for p in parts)
    for p in parts:
        for k in ("ok", "sent", "failures", "lat"):
            out[k] += p[k]
        for k, v in p["codes"].items():
            out["codes"][k] = out["codes"].get(k, 0) + v
    out["wall"] = out["t1"] - out["t0"]
    out["rate"] = out["ok"] / out["wall"]
    out["planned"] = len(bodies)
    return out


def singles_part(
    cfg: Config, figs: Figures, report: Report, be: Backend, servers: list[Server], ids: np.ndarray, minute: int
) -> int:
    """Section 2 on one hub, and for PostgreSQL on two (a second ``cityhub serve`` on the same schema); returns the
    first minute not used."""
    hubs = [1, 2] if be.key == "postgresql" else [1]
    per_run = math.ceil(cfg.singles / len(ids)) + 1
    for n in hubs:
        if n > len(servers):
            first = servers[0]
            extra = Server(first.data_dir, free_port(), first.key, be.args("main"), be.env)
            servers.append(extra)
            dt = extra.start()
            log(f"  second hub process pid {extra.pid} on {extra.base}, same schema, ready in {dt:.1f}s")
        log(
            f"\n[2] single POST /v1.1/Observations, {be.label}, {n} hub process{'es' if n > 1 else ''}: "
            f"{cfg.singles:,} requests, {cfg.conc} connections, {cfg.client_procs} client process(es)"
        )
        settle(servers[:n])
        c0 = sum(proc_cpu_s(s.pid) for s in servers[:n])
        r = singles(cfg, servers[:n], ids, minute)
        cpu_ms = (sum(proc_cpu_s(s.pid) for s in servers[:n]) - c0) / max(1, r["ok"]) * 1e3
        minute += per_run
        lat = r["lat"]
        capped = r["sent"] < r["planned"]
        log(
            f"  {r['ok']:,} x 201 of {r['sent']:,} sent in {r['wall']:.2f}s -> {r['rate']:,.0f} obs/s; "
            f"status counts {r['codes']}; latency p50 {p50_ms(lat):.1f} ms; hub CPU {cpu_ms:.2f} ms per Observation"
            + (f" (stopped at the {cfg.single_budget_s:.0f}s budget)" if capped else "")
        )
        for f in r["failures"][:3]:
            report.problem(f"single POST ({be.label}, {n} hubs): {f}")
        pg = be.key == "postgresql"
        minute = wrk_part(cfg, figs, be, servers[:n], ids, minute, pg)
        figs.add(
            2,
            f"single Observation POST, {cfg.conc} conns, {n} hub process{'es' if n > 1 else ''}: {be.label}",
            f"{r['rate']:,.0f} obs/s (p50 {p50_ms(lat):.0f} ms, hub CPU {cpu_ms:.1f} ms/obs)",
            ">= 2,000 obs/s" if pg else "",
            r["rate"] >= 2000 and r["ok"] == r["sent"] if pg else None,
        )
    return minute


def wrk_part(
    cfg: Config, figs: Figures, be: Backend, servers: list[Server], ids: np.ndarray, minute: int, pg: bool
) -> int:
    """Section 2 again with wrk (C, next to no client CPU), when installed: one wrk per hub process, the
    connections split between them, their rates added. The Python client above saturates two cores before the
    hubs do."""
    wrk = shutil.which("wrk")
    if wrk is None:
        log("  wrk not installed (apt-get install wrk): the C-client figure is skipped")
        return minute
    seconds = 10
    per = max(1, cfg.conc // len(servers))
    procs = []
    for k, server in enumerate(servers):
        lua = Path(tempfile.mkdtemp(prefix="cityhub-wrk-")) / "post.lua"
        auth = server.headers["Authorization"]
        header = (
            f"ids = {{{', '.join(str(int(i)) for i in ids)}}}\n"
            f"base_epoch = {int(BASE.timestamp())}\nfirst_minute = {minute + k * 100_000}\n"
            f'headers = {{["Content-Type"] = "application/json", ["Authorization"] = "{auth}"}}\n'
        )
        lua.write_text(header + WRK_SCRIPT)
        cmd = [wrk, "-t1", f"-c{per}", f"-d{seconds}s", "--latency", "-s", str(lua), server.base]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=seconds + 60)[0] for p in procs]
    rate = sum(float(re.search(r"Requests/sec:\s+([0-9.]+)", o).group(1)) for o in outs)  # type: ignore[union-attr]
    bad = sum(int(m.group(1)) for o in outs if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", o)))
    p50 = [m.group(1) for o in outs if (m := re.search(r"50%\s+(\S+)", o))]
    log(f"  wrk, {per * len(servers)} connections over {len(servers)} process(es), {seconds}s: {rate:,.0f} req/s, "
        f"non-2xx {bad}, p50 {'/'.join(p50)}")  # fmt: skip
    n = len(servers)
    figs.add(
        2,
        f"single Observation POST, wrk, {per * n} conns, {n} hub process{'es' if n > 1 else ''}: {be.label}",
        f"{rate:,.0f} obs/s (p50 {'/'.join(p50)}, non-2xx {bad})",
        ">= 2,000 obs/s" if pg else "",
        rate >= 2000 and bad == 0 if pg else None,
    )
    return minute + len(servers) * 100_000 + 10


# -- section 3: latest values --------------------------------------------------------------------------------
def latest_part(cfg: Config, figs: Figures, report: Report, be: Backend, c: httpx.Client, ids: np.ndarray) -> None:
    body = orjson.dumps({"datastreams": ids.tolist()})
    times = []
    resp = None
    for _ in range(cfg.repeats + 1):  # the first call warms up and is not counted
        t0 = time.perf_counter()
        resp = c.post("/api/v1/latest", content=body, headers={"Content-Type": "application/json"})
        times.append(time.perf_counter() - t0)
        check(resp, (200,), "latest", report, f"{{'datastreams': [{len(ids)} ids]}}")
    assert resp is not None
    d = resp.json()
    ok = d.get("count") == len(ids) and not d.get("missing")
    if not ok:
        report.problem(f"latest ({be.label}): count {d.get('count')} of {len(ids)}, missing {d.get('missing')!s:.200}")
    med = p50_ms(times[1:])
    log(
        f"\n[3] POST /api/v1/latest, {len(ids):,} ids, {be.label}: first {times[0] * 1e3:.1f} ms, p50 {med:.1f} ms "
        f"of {cfg.repeats} ({len(resp.content) / 1e6:.1f} MB)"
    )
    figs.add(
        3,
        f"latest value of {len(ids):,} Datastreams, POST /api/v1/latest, p50 of {cfg.repeats}: {be.label}",
        f"{med:.1f} ms",
        "< 50 ms",
        med < 50 and ok,
    )


# -- section 5: geo.distance and a time range ----------------------------------------------------------------
def geo_part(
    cfg: Config,
    figs: Figures,
    report: Report,
    be: Backend,
    c: httpx.Client,
    rows: Rows,
    where: list[tuple[str, float, float]],
) -> None:
    """Observations of the last hour-long window of Things within 0.05° of Hoàn Kiếm, through their
    FeatureOfInterest (made by the hub from each Thing's Location)."""
    full = rows.n // len(np.unique(rows.ds))  # minutes in which every Datastream has a row
    width = min(60, full)
    lo = max(0, full // 2 - width // 2)
    t1, t2 = BASE + timedelta(minutes=lo), BASE + timedelta(minutes=lo + width)
    point = f"POINT({CENTRE[0]} {CENTRE[1]})"
    flt = (
        f"geo.distance(FeatureOfInterest/feature, geography'{point}') lt {RADIUS_DEG} "
        f"and phenomenonTime ge {iso(t1)} and phenomenonTime lt {iso(t2)}"
    )
    near = sum(1 for _n, lon, lat in where if math.hypot(lon - CENTRE[0], lat - CENTRE[1]) < RADIUS_DEG)
    expected = near * width
    r = c.get("/v1.1/Observations", params={"$filter": flt, "$count": "true", "$top": "1"})
    check(r, (200,), "geo filter with $count", report, flt)
    counted = int(r.json().get("@iot.count", -1))
    if counted < expected:
        report.problem(f"geo filter ({be.label}): @iot.count {counted}, expected {expected} ({near} Things x {width})")
    figs.geo_counts[be.key] = counted
    times = []
    resp = None
    params = {"$filter": flt}
    for _ in range(max(5, cfg.repeats // 2) + 1):
        t0 = time.perf_counter()
        resp = c.get("/v1.1/Observations", params=params)
        times.append(time.perf_counter() - t0)
        check(resp, (200,), "geo filter", report, flt)
    assert resp is not None
    d = resp.json()
    med = p50_ms(times[1:])
    log(
        f"\n[5] GET /v1.1/Observations?$filter={flt}\n  {be.label}: {near:,} of {len(where):,} Things within "
        f"{RADIUS_DEG}°, {counted:,} matching Observations ({expected:,} sent, {counted - expected:,} the hub derived: "
        f"VN_AQI); first {times[0] * 1e3:.1f} ms, "
        f"p50 {med:.1f} ms of {len(times) - 1} (page of {len(d['value'])}, nextLink {'@iot.nextLink' in d})"
    )
    figs.add(
        5,
        f"Observations $filter geo.distance(FeatureOfInterest/feature) lt {RADIUS_DEG} and 1 h of phenomenonTime, "
        f"{len(where):,} Things, first page ({len(d['value'])}), p50: {be.label}",
        f"{med:.1f} ms",
        "< 100 ms",
        med < 100 and counted >= expected,
    )


# -- section 6: disk and memory ------------------------------------------------------------------------------
def disk_row(figs: Figures, report: Report, be: Backend, c: httpx.Client, what: str) -> None:
    r = c.get("/api/v1/info")
    check(r, (200,), "info", report)
    d = r.json()
    n, size = int(d["counts"]["observations"]), int(d["bytes_on_disk"])
    per = size / n * 1e6 if n else float("nan")
    log(f"  {be.label} {what}: {size / 1e6:,.1f} MB on disk for {n:,} Observations -> {per / 1e6:,.1f} MB per million")
    figs.add(
        6,
        f"disk per million Observations, {what}: {be.label}",
        f"{per / 1e6:,.1f} MB ({n:,} obs, {size / 1e6:,.1f} MB)",
    )


def stop_all(cfg: Config, figs: Figures, report: Report, be: Backend, servers: list[Server], what: str) -> None:
    for k, s in enumerate(servers):
        took = s.stop()
        if s.proc is None:
            continue
        hwm = s.monitor.hwm_kb / 1024 if s.monitor is not None else float("nan")
        log(f"  {be.label} {what} hub {k + 1} (pid {s.pid}) stopped in {took or 0:.1f}s; peak RSS {hwm:,.0f} MB")
        if 6 in cfg.only:
            figs.add(6, f"peak RSS (VmHWM), {what} hub process {k + 1}: {be.label}", f"{hwm:,.0f} MB")
        tail = s.log_tail()
        if any(w in tail for w in ("Traceback", "ERROR", "Exception")):
            report.problem(f"{be.label} {what} hub {k + 1} log has errors; tail:\n{short(tail[-3000:], 3000)}")
        s.cleanup_log()


# -- sections 1, 2, 3, 5, 6 on one store ---------------------------------------------------------------------
def hub_part(cfg: Config, figs: Figures, report: Report, be: Backend, tmp: Path) -> None:
    if not cfg.only & {1, 2, 3, 5, 6}:
        return
    data_dir = tmp / f"{be.key}-main"
    data_dir.mkdir()
    key = create_admin_key(data_dir)
    servers = [Server(data_dir, free_port(), key, be.args("main"), be.env)]
    log(f"\n== {be.label}: Things, bulk ingest, single POSTs, latest, geo filter ==")
    try:
        dt = servers[0].start()
        log(f"  hub pid {servers[0].pid} on {servers[0].base} ready in {dt:.1f}s")
        where = places(cfg.things)
        ids = create_things(cfg, report, servers[0], where)
        if len(ids) != cfg.things:
            report.problem(f"{be.label}: {len(ids)} Datastreams listed, {cfg.things} created")
        rows = bulk(cfg, figs, report, be, servers[0], ids)
        if be.key == "postgresql":
            figs.pg_rows = rows
        minute = math.ceil(rows.n / len(ids)) + 1
        if 2 in cfg.only:
            minute = singles_part(cfg, figs, report, be, servers, ids, minute)
        if cfg.only & {3, 5}:
            settle(servers)
        with httpx.Client(base_url=servers[0].base, headers=servers[0].headers, timeout=300) as c:
            if 3 in cfg.only:
                latest_part(cfg, figs, report, be, c, ids)
            if 5 in cfg.only:
                geo_part(cfg, figs, report, be, c, rows, where)
            if 6 in cfg.only:
                log("\n[6] disk")
                disk_row(figs, report, be, c, f"{cfg.things:,} Things + their Observations")
    finally:
        stop_all(cfg, figs, report, be, servers, "main")


# -- section 4: hourly aggregates ----------------------------------------------------------------------------
def load_agg(cfg: Config, be: Backend, data_dir: Path) -> tuple[list[int], int, float]:
    """The aggregation dataset, in-process through the store's own ``append_batch`` (the hub is not running);
    returns (Datastream ids, rows stored, seconds)."""
    ensure_importable()
    from cityhub.config import Settings
    from cityhub.ingest.observations import with_ids
    from cityhub.store import open_store
    from cityhub.store.base import OBSERVATION_BATCH_SCHEMA

    minutes = cfg.agg_days * 24 * 60
    total = cfg.agg_ds * minutes
    step = min(minutes, max(60, AGG_BATCH_ROWS // cfg.agg_ds // 60 * 60))  # whole hours per batch
    threads = cfg.load_threads if be.key == "postgresql" else 1
    store = open_store(Settings(data_dir=data_dir, store=be.url("agg")))
    try:
        with store.transaction() as tx:
            thing = tx.insert("things", {"name": "aggregation bench", "description": "d"})
            sensor = tx.insert(
                "sensors", {"name": "s", "description": "d", "encoding_type": "text/html", "metadata": "x"}
            )
            prop = tx.insert(
                "observed_properties", {"name": "PM2.5", "definition": "http://example.org/pm25", "description": "d"}
            )
            uom = orjson.dumps(UOM).decode()
            ds_ids = [
                tx.insert(
                    "datastreams",
                    {"name": f"A{i}", "description": "d", "observation_type": OM_MEASUREMENT,
                     "unit_of_measurement": uom, "thing_id": thing, "sensor_id": sensor,
                     "observed_property_id": prop},
                )
                for i in range(cfg.agg_ds)
            ]  # fmt: skip
        ids_np = np.array(ds_ids, dtype=np.int64)
        start_us = int(AGG_START.timestamp()) * 1_000_000
        ts_type = pa.timestamp("us", tz="UTC")

        def one(m0: int) -> int:
            r = make_rows(ids_np, min(step, minutes - m0) * len(ids_np), start_us, m0, seed=m0)
            cols: dict[str, Any] = {f.name: pa.nulls(r.n, f.type) for f in OBSERVATION_BATCH_SCHEMA if f.name != "id"}
            cols["datastream_id"] = pa.array(r.ds, pa.int64())
            cols["phenomenon_time"] = pa.array(r.ts.view("datetime64[us]"), ts_type)
            cols["result_number"] = pa.array(r.result, pa.float64())
            batch = with_ids(pa.table(cols), store.allocate_ids("observations", r.n))
            return int(store.append_batch(batch, lambda _res: None).inserted.size)

        log(
            f"  loading {total:,} rows ({cfg.agg_ds:,} Datastreams x {cfg.agg_days} d x 1 min) in-process with "
            f"{type(store).__name__}.append_batch, {step * cfg.agg_ds:,} rows per batch, {threads} thread(s)"
        )
        stored = 0
        t0 = time.perf_counter()
        with bar() as progress, ThreadPoolExecutor(max_workers=threads) as pool:
            task = progress.add_task(f"aggregation dataset, {be.label}", total=total)
            for n in pool.map(one, range(0, minutes, step)):
                stored += n
                progress.advance(task, n)
        store.flush_derived()
    finally:
        store.close()
    return ds_ids, stored, time.perf_counter() - t0


def agg_part(cfg: Config, figs: Figures, report: Report, be: Backend, tmp: Path) -> None:
    minutes = cfg.agg_days * 24 * 60
    total = cfg.agg_ds * minutes
    log(f"\n== {be.label}: [4] hourly averages of {cfg.agg_ds:,} Datastreams x {cfg.agg_days} days ==")
    data_dir = tmp / f"{be.key}-agg"
    data_dir.mkdir()
    ds_ids, stored, load_s = load_agg(cfg, be, data_dir)
    log(f"  {stored:,} rows in {load_s:.1f}s -> {stored / load_s:,.0f} rows/s (incl. roll-ups, close/checkpoint)")
    if stored != total:
        report.problem(f"aggregation dataset ({be.label}): stored {stored:,} of {total:,}")
    figs.add(
        4, f"in-process load of the aggregation dataset ({total:,} rows): {be.label}", f"{stored / load_s:,.0f} rows/s"
    )
    server = Server(data_dir, free_port(), create_admin_key(data_dir), be.args("agg"), be.env)
    try:
        dt = server.start()
        log(f"  hub pid {server.pid} on the aggregation store ready in {dt:.1f}s")
        settle([server])
        end = AGG_START + timedelta(days=cfg.agg_days)
        q = {"datastreams": ds_ids, "function": "avg", "interval": "hour", "start": iso(AGG_START), "end": iso(end)}
        body = orjson.dumps(q)
        want = len(ds_ids) * cfg.agg_days * 24
        with httpx.Client(base_url=server.base, headers=server.headers, timeout=300) as c:
            for fmt, accept in (("JSON", "application/json"), ("Arrow IPC", ARROW)):
                times = []
                resp = None
                for _ in range(6):  # a warm-up, then 5 timed
                    t0 = time.perf_counter()
                    resp = c.post(
                        "/api/v1/aggregate",
                        content=body,
                        headers={"Content-Type": "application/json", "Accept": accept},
                    )
                    times.append(time.perf_counter() - t0)
                    check(resp, (200,), f"aggregate {fmt}", report, {**q, "datastreams": f"[{len(ds_ids)} ids]"})
                assert resp is not None
                if fmt == "JSON":
                    v = resp.json()["value"]
                    buckets, counted = sum(len(x["time"]) for x in v), sum(sum(x["count"]) for x in v)
                else:
                    t = paipc.open_stream(resp.content).read_all()
                    buckets, counted = t.num_rows, int(pc.sum(t.column("count")).as_py() or 0)
                ok = buckets == want and counted == total
                if not ok:
                    report.problem(f"aggregate {fmt} ({be.label}): {buckets:,} buckets, {counted:,} rows counted; "
                                   f"expected {want:,} / {total:,}")  # fmt: skip
                med = p50_ms(times[1:])
                log(f"  POST /api/v1/aggregate avg/hour {fmt}: first {times[0] * 1e3:,.0f} ms, p50 {med:,.0f} ms of 5 "
                    f"({len(resp.content) / 1e6:.1f} MB, {buckets:,} buckets)")  # fmt: skip
                figs.add(
                    4,
                    f"hourly avg, {len(ds_ids):,} DS x {cfg.agg_days} d ({total:,} rows), {fmt}, p50 of 5: {be.label}",
                    f"{med:,.0f} ms",
                    "< 1,000 ms",
                    med < 1000 and ok,
                )
            if 6 in cfg.only:
                disk_row(figs, report, be, c, f"aggregation store ({cfg.agg_ds:,} DS)")
    finally:
        stop_all(cfg, figs, report, be, [server], "aggregation")


# -- orchestration -------------------------------------------------------------------------------------------
def run_part(report: Report, name: str, fn: Any, *args: Any) -> None:
    """One part; an unexpected error is reported and the benchmark goes on with the next part."""
    try:
        fn(*args)
    except RequestFailed:
        pass
    except Exception as exc:
        log(traceback.format_exc())
        report.problem(f"{name} failed: {type(exc).__name__}: {short(str(exc), 3000)}")


@contextmanager
def pg_schemas(cfg: Config, report: Report) -> Iterator[Backend | None]:
    """The PostgreSQL backend (None when the server does not answer); its schemas are dropped at the end."""
    ensure_importable()
    import psycopg

    from cityhub.store.postgres.store import split_url

    conninfo = split_url(cfg.pg)[0]
    try:
        with psycopg.connect(conninfo, connect_timeout=3, autocommit=True) as con:
            version = con.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    except Exception as exc:
        log(f"PostgreSQL at {cfg.pg} does not answer: {str(exc).strip()[:200]}; its store is skipped")
        report.add("PostgreSQL store", f"skipped: {str(exc).strip()[:80]}")
        yield None
        return
    prefix = f"chbench_{int(time.time())}_{os.getpid()}"
    log(f"PostgreSQL {version} at {cfg.pg}; schemas {prefix}_main, _agg, _copy")
    try:
        yield Backend("postgresql", "PostgreSQL", cfg.pg, prefix)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as con:
            for part in ("main", "agg", "copy"):
                con.execute(f"DROP SCHEMA IF EXISTS {prefix}_{part} CASCADE")
        log(f"dropped the schemas {prefix}_*")


def parse_only(text: str) -> set[int]:
    out = {int(x) for x in text.replace(" ", "").split(",") if x}
    if not out <= set(SECTIONS):
        raise argparse.ArgumentTypeError(f"sections are {', '.join(map(str, SECTIONS))}")
    return out


def parse_stores(text: str) -> list[str]:
    out = [x.strip() for x in text.split(",") if x.strip()]
    if not out or not set(out) <= {"duckdb", "postgresql"}:
        raise argparse.ArgumentTypeError("duckdb, postgresql or both (comma-separated)")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.store", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every row and entity count (default 1.0)")
    p.add_argument("--rows", type=int, default=5_000_000, help="bulk rows of section 1 at scale 1 (default 5,000,000)")
    p.add_argument("--only", type=parse_only, default=set(SECTIONS), help="sections, e.g. 1,3 (default: all)")
    p.add_argument("--stores", type=parse_stores, default=["duckdb", "postgresql"], help="duckdb,postgresql")
    p.add_argument("--pg", default=os.environ.get("CITYHUB_BENCH_PG", DEFAULT_PG), help=f"default {DEFAULT_PG}")
    p.add_argument("--client-procs", type=int, default=0, help="client processes of section 2 (default: CPUs / 4)")
    cfg = Config.from_args(p.parse_args(argv))
    report = Report()
    figs = Figures()
    t_start = time.perf_counter()
    log(
        f"CityHub store benchmark, scale {cfg.scale:g}: sections {sorted(cfg.only)}, stores {cfg.stores}; "
        f"{cfg.rows:,} bulk rows, {cfg.things:,} Things, {cfg.singles:,} single POSTs, "
        f"{cfg.agg_ds:,} x {cfg.agg_days} d aggregation rows; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    tmp = make_tmpdir("store")
    try:
        with pg_schemas(cfg, report) if "postgresql" in cfg.stores else _none() as pg:
            backends = [Backend("duckdb", "DuckDB")] if "duckdb" in cfg.stores else []
            if pg is not None:
                backends.append(pg)
            for be in backends:
                run_part(report, f"{be.label} hub part", hub_part, cfg, figs, report, be, tmp)
                if 4 in cfg.only:
                    run_part(report, f"{be.label} aggregation part", agg_part, cfg, figs, report, be, tmp)
            if pg is not None and 1 in cfg.only:
                run_part(report, "PostgreSQL COPY peer", copy_peer, cfg, figs, report, pg)
            if len(set(figs.geo_counts.values())) > 1:
                report.problem(f"section 5's filter matched different numbers of Observations: {figs.geo_counts}")
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        remove_tmpdir(tmp)
    figs.into(report)
    report.add("total run time", f"{(time.perf_counter() - t_start) / 60:.1f} min (scale {cfg.scale:g})")
    report.print()
    return 1 if report.problems else 0


@contextmanager
def _none() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    raise SystemExit(main())
