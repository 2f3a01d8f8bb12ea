"""Alert benchmark of a real CityHub server: 1,000 rules on 20,000 Observations/s.

    .venv/bin/python -m bench.alerts            # full run: 1,000 Datastreams, 1,000 rules, 20 s at 20,000 obs/s
    .venv/bin/python -m bench.alerts --quick    # smoke test (5 s, smaller bulk)

Two fresh servers with the same model (100 Things × 10 Datastreams) and the same data: one without rules, one
with 1,000 rules (single-level and multi-level thresholds, rates of change, stuck values, physical ranges,
silence). On each: bulk ingest as fast as it goes (Arrow bodies of 20,000 rows, 2 clients; best of three runs), then
20,000 Observations/s paced in bodies of 1,000 (20 per second) for the paced phase. The data are smooth (a slow
sine per Datastream), so rules stay quiet but for probes: 4 times a second one Datastream jumps to 500 for one
reading, opening alerts (and resolving them at the next reading). An SSE client on /api/v1/alerts/stream times
every alert event against the commit time of the Observation that caused it (``trigger.committedAt``, stamped by
the engine's commit listener; client and server share the clock).

Figures: commit → SSE latency p50/p99 (target p99 < 500 ms), bulk ingest throughput with and without rules
(target: drop < 20 %; on a shared machine also read the server CPU per million rows, which other processes
disturb less than wall time), achieved paced rate and commit latency, server CPU per phase.
"""

from __future__ import annotations

import argparse
import os
import queue
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
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

ARROW = "application/vnd.apache.arrow.stream"
OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
TICK_US = 50_000  # paced data: one reading per Datastream every 50 ms (1,000 Datastreams → 20,000 obs/s)
PROBE_VALUE = 500.0
BULK_ROUNDS = 3


@dataclass
class Config:
    things: int = 100
    ds_per_thing: int = 10
    rules: int = 1000
    rate: int = 20_000
    seconds: float = 20.0
    bulk_rows: int = 1_000_000
    bulk_batch: int = 20_000
    bulk_threads: int = 2
    probes_per_s: float = 4.0
    quick: bool = False

    @property
    def n_ds(self) -> int:
        return self.things * self.ds_per_thing


# -- data ------------------------------------------------------------------------------------------------------------
def values(ds_index: np.ndarray, ticks: np.ndarray) -> np.ndarray:
    """Smooth readings: 35 ± 10 on a 60 s sine with a phase per Datastream, plus a little noise."""
    phase = (ds_index * 0.37) % (2 * np.pi)
    rng = np.random.default_rng(int(ticks[0]) if len(ticks) else 0)
    return np.round(35 + 10 * np.sin(2 * np.pi * ticks / 1200 + phase) + rng.normal(0, 0.05, len(ticks)), 3)


def arrow_body(ds: np.ndarray, t_us: np.ndarray, v: np.ndarray) -> bytes:
    table = pa.table(
        {
            "datastream": pa.array(ds, pa.int64()),
            "phenomenonTime": pa.array(t_us.astype("datetime64[us]"), pa.timestamp("us", tz="UTC")),
            "result": pa.array(v, pa.float64()),
        }
    )
    sink = pa.BufferOutputStream()
    with paipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def tick_bodies(ids: np.ndarray, first_tick: int, n_ticks: int, base_us: int, per_body: int) -> list[bytes]:
    """Readings of every Datastream at ``n_ticks`` ticks, in bodies of ``per_body`` rows (time-major)."""
    k = np.arange(n_ticks * len(ids), dtype=np.int64)
    tick = first_tick + k // len(ids)
    ds_i = k % len(ids)
    v = values(ds_i, tick)
    t = base_us + tick * TICK_US
    return [arrow_body(ids[ds_i[a : a + per_body]], t[a : a + per_body], v[a : a + per_body])
            for a in range(0, len(k), per_body)]  # fmt: skip


# -- model and rules -------------------------------------------------------------------------------------------------
def create_model(c: httpx.Client, cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """Things with their Datastreams (an ObservedProperty that is not a pollutant: no VN_AQI work); returns
    Datastream ids (sorted) and the Thing of each."""
    sensor = c.post("/v1.1/Sensors", json={"name": "bench", "description": "b", "encodingType": "text/html",
                                           "metadata": "m"}).json()["@iot.id"]  # fmt: skip
    op = c.post("/v1.1/ObservedProperties", json={"name": "Bench level", "definition": "https://example.org/level",
                                                  "description": "d"}).json()["@iot.id"]  # fmt: skip
    for i in range(cfg.things):
        body = {
            "name": f"B{i}", "description": "bench thing",
            "Locations": [{"name": f"L{i}", "description": "d", "encodingType": "application/geo+json",
                           "location": {"type": "Point", "coordinates": [105.8 + i * 1e-3, 21.0]}}],
            "Datastreams": [{"name": f"B{i}-{j}", "description": "d", "observationType": OM_MEASUREMENT,
                             "unitOfMeasurement": {"name": "level", "symbol": "u"},
                             "Sensor": {"@iot.id": sensor}, "ObservedProperty": {"@iot.id": op}}
                            for j in range(cfg.ds_per_thing)],
        }  # fmt: skip
        r = c.post("/v1.1/Things", json=body)
        if r.status_code != 201:
            raise RuntimeError(f"creating Thing {i}: {r.status_code} {short(r.text)}")
    rows = []
    url: str | None = "/v1.1/Datastreams?$select=id&$expand=Thing($select=id)&$top=10000"
    while url:
        data = c.get(url).json()
        rows += [(v["@iot.id"], v["Thing"]["@iot.id"]) for v in data["value"]]
        url = data.get("@iot.nextLink")
    rows.sort()
    return np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.int64)


def rule_file(cfg: Config, ids: np.ndarray, things: np.ndarray) -> tuple[dict[str, Any], list[int]]:
    """``cfg.rules`` rules: 60 % single thresholds (one Datastream each, the probes' targets), 15 % three-level
    thresholds on a Thing, 10 % rates, 5 % stuck, 5 % physical range, 5 % silence. Returns the file and the
    probe Datastreams."""
    n = cfg.rules
    counts = {"single": int(n * 0.60), "levels": int(n * 0.15), "rate": int(n * 0.10), "stuck": int(n * 0.05),
              "range": int(n * 0.05)}  # fmt: skip
    counts["stale"] = n - sum(counts.values())
    uniq_things = np.unique(things)
    rules: list[dict[str, Any]] = []
    probes = [int(ids[i % len(ids)]) for i in range(counts["single"])]
    for i, ds in enumerate(probes):
        rules.append({"name": f"high {i}", "kind": "threshold", "value": 150, "hysteresis": 5,
                      "scope": {"datastream": ds}})  # fmt: skip
    for i in range(counts["levels"]):
        rules.append({"name": f"levels {i}", "kind": "threshold", "hysteresis": 5, "clear_count": 2,
                      "levels": [{"value": 150, "name": "I"}, {"value": 200, "name": "II"},
                                 {"value": 250, "name": "III", "severity": "critical"}],
                      "scope": {"thing": int(uniq_things[i % len(uniq_things)])}})  # fmt: skip
    for i in range(counts["rate"]):
        rules.append({"name": f"rate {i}", "kind": "rate", "max_rate": 50, "per": "PT1S", "max_gap": "PT10S",
                      "scope": {"datastream": int(ids[(7 * i) % len(ids)])}})  # fmt: skip
    for i in range(counts["stuck"]):
        rules.append({"name": f"stuck {i}", "kind": "stuck", "min_count": 5, "duration": "PT1S",
                      "scope": {"datastream": int(ids[(11 * i) % len(ids)])}})  # fmt: skip
    for i in range(counts["range"]):
        rules.append({"name": f"range {i}", "kind": "range", "min": 0, "max": 1000,
                      "scope": {"thing": int(uniq_things[(3 * i) % len(uniq_things)])}})  # fmt: skip
    for i in range(counts["stale"]):
        rules.append({"name": f"silent {i}", "kind": "stale", "factor": 5, "interval": "PT1M",
                      "scope": {"thing": int(uniq_things[(5 * i) % len(uniq_things)])}})  # fmt: skip
    return {"name": "bench", "rules": rules}, probes


# -- sending ---------------------------------------------------------------------------------------------------------
@dataclass
class Sent:
    rows: int = 0
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    behind_s: float = 0.0
    phase: Phase | None = None


def post(c: httpx.Client, body: bytes, out: Sent, lock: threading.Lock) -> None:
    t0 = time.perf_counter()
    try:
        r = c.post("/api/v1/ingest", content=body, headers={"Content-Type": ARROW})
        ok = r.status_code == 200
        stored = r.json().get("stored", 0) if ok else 0
        msg = None if ok else f"{r.status_code}: {short(r.text, 300)}"
    except httpx.HTTPError as exc:
        stored, msg = 0, f"{type(exc).__name__}: {exc}"
    dt = time.perf_counter() - t0
    with lock:
        out.rows += stored
        out.latencies.append(dt)
        if msg and len(out.failures) < 5:
            out.failures.append(msg)


def bulk(server: Server, bodies: list[bytes], threads: int) -> Sent:
    out, lock = Sent(), threading.Lock()
    work: queue.Queue[bytes] = queue.Queue()
    for b in bodies:
        work.put(b)

    def worker() -> None:
        with httpx.Client(base_url=server.base, headers=server.headers, timeout=300) as c:
            while True:
                try:
                    b = work.get_nowait()
                except queue.Empty:
                    return
                post(c, b, out, lock)

    phase = Phase(server.pid)
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.phase = phase.stop()
    return out


def paced(server: Server, bodies: list[bytes], per_s: float) -> Sent:
    """Send body k at start + k / per_s (a pool of 4 connections; a late body goes at once)."""
    out, lock = Sent(), threading.Lock()
    clients = [httpx.Client(base_url=server.base, headers=server.headers, timeout=60) for _ in range(4)]
    local = threading.local()

    def send(b: bytes) -> None:
        if not hasattr(local, "c"):
            local.c = clients[threading.get_ident() % len(clients)]
        post(local.c, b, out, lock)

    phase = Phase(server.pid)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=4) as pool:
        for k, b in enumerate(bodies):
            due = start + k / per_s
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            else:
                out.behind_s = max(out.behind_s, -wait)
            pool.submit(send, b)
    out.phase = phase.stop()
    for c in clients:
        c.close()
    return out


class SseClient:
    """Records (receive time, event) of every alert event on /api/v1/alerts/stream."""

    def __init__(self, base: str) -> None:
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.ready = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(30, read=None))
        self._thread = threading.Thread(target=self._run, args=(f"{base}/api/v1/alerts/stream?keepalive=1",),
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def _run(self, url: str) -> None:
        try:
            with self._client.stream("GET", url) as r:
                for line in r.iter_lines():
                    if line.startswith(":"):
                        self.ready.set()
                    elif line.startswith("data: "):
                        self.events.append((time.time(), orjson.loads(line[6:])))
        except httpx.HTTPError:
            pass

    def close(self) -> None:
        self._client.close()


# -- a server's run --------------------------------------------------------------------------------------------------
@dataclass
class Result:
    bulk_rates: list[float] = field(default_factory=list)
    bulk_cpu_per_m: list[float] = field(default_factory=list)  # server CPU seconds per million rows
    paced: Sent | None = None
    latencies_ms: list[float] = field(default_factory=list)
    events: int = 0
    probes: int = 0
    status: dict[str, Any] = field(default_factory=dict)
    rules_s: float = 0.0


def run_server(cfg: Config, report: Report, tmp: Path, with_rules: bool) -> Result:
    label = "1,000 rules" if with_rules else "no rules"
    data_dir = tmp / ("rules" if with_rules else "plain")
    key = create_admin_key(data_dir)
    server = Server(data_dir, free_port(), key)
    res = Result()
    log(f"\n== server with {label}: starting")
    server.start()
    try:
        with httpx.Client(base_url=server.base, headers=server.headers, timeout=120) as c:
            ids, things = create_model(c, cfg)
            log(f"  {len(ids)} Datastreams on {len(np.unique(things))} Things")
            probes: list[int] = []
            if with_rules:
                doc, probes = rule_file(cfg, ids, things)
                t0 = time.perf_counter()
                r = c.put("/api/v1/rulesets/bench", content=orjson.dumps(doc),
                          headers={"Content-Type": "application/json"})  # fmt: skip
                res.rules_s = time.perf_counter() - t0
                if r.status_code != 200:
                    raise RuntimeError(f"rules: {r.status_code} {short(r.text)}")
                st = c.get("/api/v1/alerts/status").json()
                log(f"  {st['enabledRules']} rules in {res.rules_s:.2f} s: {st['pairs']} (rule, Datastream) pairs, "
                    f"{st['staleWatches']} silence watches")  # fmt: skip
        now_us = int(time.time() * 1e6)
        # Bulk: as fast as it goes, readings of the last minutes (three runs, distinct times).
        per_round = cfg.bulk_rows // len(ids)
        for rnd in range(BULK_ROUNDS):
            base = now_us - (BULK_ROUNDS - rnd) * (per_round + 200) * TICK_US
            bodies = tick_bodies(ids, 0, per_round, base, cfg.bulk_batch)
            sent = bulk(server, bodies, cfg.bulk_threads)
            assert sent.phase is not None
            rate = sent.rows / sent.phase.wall
            res.bulk_rates.append(rate)
            res.bulk_cpu_per_m.append(sent.phase.server_cpu / max(sent.rows, 1) * 1e6)
            log(f"  bulk {rnd + 1}: {sent.rows:,} rows in {sent.phase.wall:.2f} s = {rate:,.0f} rows/s; "
                f"{sent.phase.cpu_text()}")  # fmt: skip
            for f in sent.failures:
                report.problem(f"{label} bulk: {f}")
        # Paced: cfg.rate obs/s in bodies of one tick (all Datastreams at one time), with probes.
        n_ticks = int(cfg.seconds * cfg.rate / len(ids))
        first_tick = int((time.time() * 1e6 - now_us) // TICK_US) + 1
        base_us = now_us
        k = np.arange(n_ticks * len(ids), dtype=np.int64)
        tick = first_tick + k // len(ids)
        ds_i = k % len(ids)
        v = values(ds_i, tick)
        if probes and cfg.probes_per_s > 0:
            every = max(1, round(cfg.rate / len(ids) / cfg.probes_per_s))
            where = {int(d): i for i, d in enumerate(ids.tolist())}
            for p_i, t_i in enumerate(range(5, n_ticks - 5, every)):
                v[t_i * len(ids) + where[probes[p_i % len(probes)]]] = PROBE_VALUE
                res.probes += 1
        t = base_us + tick * TICK_US
        bodies = [arrow_body(ids[ds_i[a : a + len(ids)]], t[a : a + len(ids)], v[a : a + len(ids)])
                  for a in range(0, len(k), len(ids))]  # fmt: skip
        sse = SseClient(server.base) if with_rules else None
        if sse is not None and not sse.ready.wait(10):
            report.problem("the SSE stream did not open")
        # Start the paced clock where the data's times are (readings arrive as they are made).
        delay = (base_us + first_tick * TICK_US) / 1e6 - time.time()
        if delay > 0:
            time.sleep(delay)
        res.paced = paced(server, bodies, cfg.rate / len(ids))
        time.sleep(1.5)  # the last events
        p = res.paced
        assert p.phase is not None
        log(f"  paced {cfg.rate:,}/s for {cfg.seconds:.0f} s: {p.rows:,} rows stored in {p.phase.wall:.2f} s "
            f"({p.rows / p.phase.wall:,.0f}/s), commit latency p50 {percentile(p.latencies, 0.5) * 1000:.0f} ms "
            f"p99 {percentile(p.latencies, 0.99) * 1000:.0f} ms, sender behind at most {p.behind_s:.2f} s; "
            f"{p.phase.cpu_text()}")  # fmt: skip
        for f in p.failures:
            report.problem(f"{label} paced: {f}")
        if sse is not None:
            sse.close()
            for recv, ev in sse.events:
                trig = ev.get("trigger") or {}
                if "committedAt" in trig:
                    committed = datetime.fromisoformat(trig["committedAt"].replace("Z", "+00:00")).timestamp()
                    res.latencies_ms.append((recv - committed) * 1000)
            res.events = len(sse.events)
        with httpx.Client(base_url=server.base, headers=server.headers, timeout=30) as c:
            res.status = c.get("/api/v1/alerts/status").json()
    finally:
        server.stop()
        log(f"  server peak RSS {server.monitor.hwm_mb if server.monitor else 0:.0f} MB")
    return res


def main(argv: list[str] | None = None) -> int:
    ensure_importable()
    ap = argparse.ArgumentParser(prog="python -m bench.alerts", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="5 s paced, 200,000 bulk rows")
    ap.add_argument("--seconds", type=float, default=None, help="paced phase length (default 20)")
    ap.add_argument("--rate", type=int, default=20_000, help="paced Observations per second (default 20,000)")
    ap.add_argument("--rules", type=int, default=1000, help="rules (default 1,000)")
    ap.add_argument("--probes", type=float, default=4.0, help="alert probes per second (default 4)")
    a = ap.parse_args(argv)
    cfg = Config(rate=a.rate, rules=a.rules, quick=a.quick, probes_per_s=a.probes)
    if a.quick:
        cfg.seconds, cfg.bulk_rows = 5.0, 200_000
    if a.seconds:
        cfg.seconds = a.seconds
    report = Report()
    log(f"CityHub alert benchmark{' (quick)' if cfg.quick else ''}: {cfg.rules:,} rules, {cfg.n_ds:,} Datastreams, "
        f"{cfg.rate:,} obs/s for {cfg.seconds:.0f} s, bulk {cfg.bulk_rows:,} rows × {BULK_ROUNDS}")  # fmt: skip
    log(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (1 min) at start")
    tmp = make_tmpdir("alerts")
    t_start = time.perf_counter()
    try:
        plain = run_server(cfg, report, tmp, with_rules=False)
        ruled = run_server(cfg, report, tmp, with_rules=True)
    except Exception as exc:
        report.problem(f"benchmark failed: {exc}\n{traceback.format_exc()}")
        report.print()
        return 1
    finally:
        remove_tmpdir(tmp)
    lat = ruled.latencies_ms
    p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
    st = ruled.status
    watched = (
        f"{st.get('enabledRules', 0):,} ({st.get('pairs', 0):,} pairs, {st.get('staleWatches', 0)} silence watches)"
    )
    report.add("rules active", watched, f"{cfg.rules:,}", st.get("enabledRules") == cfg.rules)
    report.add("rule set applied (PUT 1,000 rules)", f"{ruled.rules_s:.2f} s")
    report.add("alert events on SSE", f"{ruled.events:,} for {ruled.probes} probes ({len(lat):,} timed)",
               "≥ 2 per probe", ruled.events >= 2 * ruled.probes)  # fmt: skip
    report.add("commit → SSE latency p50", f"{p50:.0f} ms")
    report.add("commit → SSE latency p99", f"{p99:.0f} ms (max {max(lat) if lat else float('nan'):.0f})",
               "< 500 ms", bool(lat) and p99 < 500)  # fmt: skip
    for res, name in ((plain, "no rules"), (ruled, "1,000 rules")):
        p = res.paced
        assert p is not None and p.phase is not None
        report.add(f"paced {cfg.rate:,}/s, {name}: stored rate", f"{p.rows / p.phase.wall:,.0f} obs/s",
                   f"{cfg.rate:,}", p.rows / p.phase.wall >= 0.97 * cfg.rate)  # fmt: skip
        report.add(
            f"paced, {name}: commit latency p50 / p99",
            f"{percentile(p.latencies, 0.5) * 1000:.0f} / {percentile(p.latencies, 0.99) * 1000:.0f} ms",
        )
        report.add(f"paced, {name}: server CPU", f"{p.phase.server_cpu / p.phase.wall:.0%} of a core")
    best_plain, best_rules = max(plain.bulk_rates), max(ruled.bulk_rates)
    drop = 1 - best_rules / best_plain
    report.add(f"bulk ingest, no rules (best of {BULK_ROUNDS})", f"{best_plain:,.0f} rows/s",
               f"runs: {', '.join(f'{r:,.0f}' for r in plain.bulk_rates)}")  # fmt: skip
    report.add(f"bulk ingest, 1,000 rules (best of {BULK_ROUNDS})", f"{best_rules:,.0f} rows/s",
               f"runs: {', '.join(f'{r:,.0f}' for r in ruled.bulk_rates)}")  # fmt: skip
    report.add("ingest throughput drop with 1,000 rules", f"{drop:.1%}", "< 20 %", drop < 0.20)
    cpu_plain, cpu_rules = min(plain.bulk_cpu_per_m), min(ruled.bulk_cpu_per_m)
    report.add("bulk: server CPU s per 1M rows, no rules / rules (min)",
               f"{cpu_plain:.2f} / {cpu_rules:.2f} s ({cpu_rules / cpu_plain - 1:+.1%})",
               "less sensitive to other processes than rows/s")  # fmt: skip
    pc = (ruled.paced.phase.server_cpu - plain.paced.phase.server_cpu) / max(plain.paced.phase.server_cpu, 1e-9)  # type: ignore[union-attr]
    report.add("server CPU at 20,000/s, with vs without rules", f"{pc:+.0%}")
    st = ruled.status
    report.add(
        "engine: rows / pairs classified / stepped",
        f"{st.get('rows', 0):,} / {st.get('evaluated', 0):,} / {st.get('stepped', 0):,}",
    )
    report.add("engine: transitions; commits; max queue lag / round / commit",
               f"{st.get('transitions', 0):,}; {st.get('commits', 0):,}; {st.get('max_lag_ms', 0):.0f} / "
               f"{st.get('max_process_ms', 0):.0f} / {st.get('max_commit_ms', 0):.0f} ms")  # fmt: skip
    report.add("total run time", f"{(time.perf_counter() - t_start) / 60:.1f} min")
    log(f"\nload average {os.getloadavg()[0]:.2f} (1 min) at the end")
    report.print()
    return 1 if report.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
