"""Demo city for ``make run`` (``cityhub serve --demo``): the simulated Hanoi of ``cityhub.sim`` fed into the hub.

On start, in a daemon thread: the simulated Things (air-quality stations, traffic detectors, water gauges) with
their Locations, Sensors, ObservedProperties and Datastreams are created where missing (found by name, so a
restart reuses them); the last 48 hours are backfilled; then readings are fed as they fall due, faults included
(gaps, stuck values, spikes, negative values, late and duplicated messages, outages) at modest rates. Everything
goes through the same validation and group-commit writer as a client's bulk ingest; duplicates are stored once
and, after a restart, readings no newer than what is stored are skipped.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from cityhub.sim.entities import LocalBackend, provision
from cityhub.sim.faults import FaultConfig
from cityhub.sim.generator import Reading, Simulator

log = logging.getLogger("cityhub.demo")

SEED = 7
BACKFILL = timedelta(hours=48)
TICK_S = 5.0  # how often the live feed looks for readings that fell due (the shortest interval is 5 minutes)
BATCH_ROWS = 20_000
SUBMIT_TIMEOUT_S = 60.0


def seed(hub: Any, sim: Simulator | None = None) -> dict[str, int]:
    """Create the simulated entities that are missing; return the Datastream id of every sensor key."""
    sim = sim or Simulator(SEED)
    ids = provision(LocalBackend(hub), sim.sensors())
    hub.catalog.invalidate()
    return ids


def readings_table(readings: list[Reading], ids: dict[str, int]) -> pa.Table:
    """Readings as a raw ingest table (the columns of POST /api/v1/ingest)."""
    return pa.table(
        {
            "datastream": pa.array([ids[r.key] for r in readings], pa.int64()),
            "phenomenonTime": pa.array([r.time for r in readings], pa.timestamp("us", tz="UTC")),
            "result": pa.array([r.value for r in readings], pa.float64()),
        }
    )


def submit(hub: Any, readings: list[Reading], ids: dict[str, int]) -> int:
    """Validate and store readings as a bulk ingest would (conflicting rows are skipped); rows stored."""
    stored = 0
    for k in range(0, len(readings), BATCH_ROWS):
        raw = readings_table(readings[k : k + BATCH_ROWS], ids)
        prep = hub.pipeline.prepare(raw, partial=True)
        if not prep.batch.num_rows:
            continue
        # When clients fill the writer the simulated city waits its turn.
        result = hub.pipeline.submit(prep, wait=True).result(SUBMIT_TIMEOUT_S)
        stored += int(result.inserted.size)
    return stored


def resume_points(hub: Any, ids: dict[str, int]) -> dict[str, datetime]:
    """The latest stored phenomenon time of each simulated Datastream (after a restart)."""
    t = hub.store.latest(sorted(set(ids.values())))
    latest = dict(zip(t.column("datastream_id").to_pylist(), t.column("phenomenon_time").to_pylist(), strict=True))
    return {key: latest[ds] for key, ds in ids.items() if ds in latest}


def run(
    hub: Any,
    stop: threading.Event,
    *,
    seed_: int = SEED,
    faults: FaultConfig | None = None,
    backfill: timedelta = BACKFILL,
    tick_s: float = TICK_S,
) -> None:
    now = datetime.now(UTC)
    sim = Simulator(seed_, start=now - backfill, faults=faults if faults is not None else FaultConfig())
    ids = seed(hub, sim)
    resume = resume_points(hub, ids)
    while not stop.is_set():
        due = sim.step(datetime.now(UTC))
        if resume:
            due = [r for r in due if r.key not in resume or r.time > resume[r.key]]
        if due:
            submit(hub, due, ids)
        stop.wait(tick_s)


class _Stop(threading.Event):
    """Setting it also waits (up to 30 s) for the feed to finish its current batch, so that the hub can be
    closed under it safely."""

    thread: threading.Thread | None = None

    def set(self) -> None:
        super().set()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=30)


def _run_logged(hub: Any, stop: threading.Event) -> None:
    try:
        run(hub, stop)
    except Exception:
        if not stop.is_set():
            log.exception("the demo feed stopped")


def start(hub: Any) -> threading.Event:
    """Start the demo feed in a daemon thread; set the returned event to stop it."""
    stop = _Stop()
    stop.thread = threading.Thread(target=_run_logged, args=(hub, stop), name="demo", daemon=True)
    stop.thread.start()
    return stop


__all__ = ["BACKFILL", "SEED", "readings_table", "run", "seed", "start", "submit"]
