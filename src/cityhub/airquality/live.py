"""Air quality on live data: which Things are stations, their hourly means, and the derived VN_AQI
Datastreams kept up to date as pollutant Observations arrive.

A Thing is an air-quality station when it has Datastreams whose ObservedProperty is a known pollutant:
its ``name`` (or the last segment of its ``definition`` URI) is one of PM2.5, PM10, O3, NO2, SO2, CO
(spellings such as "pm25", "PM 2.5", "Ozone", "Nitrogen dioxide" are recognised), with a unit symbol of
µg/m³ (PM and gases), mg/m³, ppm or ppb (gases). Nothing else needs declaring.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from cityhub import airquality as aq
from cityhub import model
from cityhub.airquality.tables import pollutant_of
from cityhub.bus import OBSERVATIONS, Handler, on_observations
from cityhub.core import Core
from cityhub.store.base import AppendResult, Store
from cityhub.store.ops.airquality import HourRange

log = logging.getLogger(__name__)

UNITS = {"µg/m³": "ugm3", "μg/m³": "ugm3", "ug/m3": "ugm3", "µg/m3": "ugm3", "mg/m³": "mg/m3", "mg/m3": "mg/m3",
         "ppm": "ppm", "ppb": "ppb"}  # fmt: skip
HOUR = timedelta(hours=1)
# How far back start-up looks for hours a killed process left without an index (see _note_unfinished).
CATCH_UP = timedelta(days=31)
# The longest pause between two rounds of recomputation under load (see AirQuality._run): 1 s kept a hub busy with
# bulk bodies deriving 10,000 stations' indices 70 % of the time (bench.store, 1.5 M rows on PostgreSQL: 73,349 ->
# 82,035 obs/s with 5 s).
MAX_PAUSE_S = 5.0
VN_AQI_DEFINITION = "https://cityhub.hanoi/def/VN_AQI"
# Stations per update chunk, counted as hourly means read plus indices computed (see _Plan.size): a new hour at
# each of 10,000 one-pollutant stations is ~330,000 (2 chunks); a month of catch-up at one station ~800.
_CHUNK_HOURS = 200_000


@dataclass
class Station:
    thing_id: int
    name: str
    location: Any  # GeoJSON
    streams: dict[str, tuple[int, str]] = field(default_factory=dict)  # pollutant → (Datastream id, unit)
    derived: dict[str, int] = field(default_factory=dict)  # "hour" | "day" → VN_AQI Datastream id


def floor_hour(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _grid(t: pa.Table, station: Station, start: datetime, n: int) -> dict[str, list[float | None]]:
    """A station's dense hourly means in µg/m³ for the n hours from ``start``, from an hourly aggregate table."""
    out: dict[str, list[float | None]] = {}
    ds_col = t.column("datastream_id").to_numpy()
    hours = (t.column("time").cast(pa.int64()).to_numpy() - int(start.timestamp() * 1e6)) // 3_600_000_000
    values = t.column("value").to_numpy(zero_copy_only=False)
    for pollutant, (ds_id, unit) in station.streams.items():
        grid = np.full(n, np.nan)
        sel = (ds_col == ds_id) & (hours >= 0) & (hours < n)
        grid[hours[sel]] = values[sel]
        if unit != "ugm3":
            grid = np.array([aq.to_ugm3(pollutant, v, unit) if v == v else np.nan for v in grid])
        out[pollutant] = [None if v != v else float(v) for v in grid]
    return out


class AirQuality:
    """Stations, hourly means and indices over a Store; keeps the VN_AQI Datastreams current."""

    name = "airquality"

    def __init__(self, core: Core, *, day_offset_minutes: int = 420) -> None:
        self.store: Store = core.store
        self.catalog = core.catalog
        self.pipeline = core.pipeline
        self.bus = core.bus
        self.offset = timedelta(minutes=day_offset_minutes)
        self._lock = threading.Lock()
        self._stations: dict[int, Station] | None = None
        self._by_datastream: dict[int, int] = {}
        self._version = -1
        self._pending: set[tuple[int, datetime]] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.updated_at: dict[int, float] = {}  # thing → monotonic time of the last derived update (for tests)
        self._idle = threading.Event()
        self._idle.set()

    # -- stations ----------------------------------------------------------------------------------------
    def stations(self) -> dict[int, Station]:
        with self._lock:
            if self._stations is None or self._version != self.catalog.version:
                self._version = self.catalog.version
                self._stations, self._by_datastream = self._load()
            return self._stations

    def _load(self) -> tuple[dict[int, Station], dict[int, int]]:
        stations: dict[int, Station] = {}
        derived: list[tuple[int, int, str]] = []
        for row in self.store.airquality.station_streams():
            if row.property_definition == VN_AQI_DEFINITION:
                period = (orjson.loads(row.properties) if row.properties else {}).get("period", "hour")
                derived.append((row.thing_id, row.datastream_id, period))
                continue
            pollutant = pollutant_of(row.property_name, row.property_definition)
            uom = orjson.loads(row.unit_of_measurement) if row.unit_of_measurement else {}
            unit = UNITS.get((uom or {}).get("symbol") or "")
            if pollutant is None or unit is None or (pollutant in ("pm25", "pm10") and unit != "ugm3"):
                continue
            st = stations.setdefault(row.thing_id, Station(row.thing_id, row.thing_name, None))
            st.streams.setdefault(pollutant, (row.datastream_id, unit))
        for thing_id, ds_id, period in derived:
            if thing_id in stations:
                stations[thing_id].derived[period] = ds_id
        if stations:
            for thing_id, location in self.store.catalog.first_locations(list(stations)).items():
                stations[thing_id].location = orjson.loads(location) if location else None
        by_ds = {ds: st.thing_id for st in stations.values() for ds, _ in st.streams.values()}
        return stations, by_ds

    # -- hourly means ------------------------------------------------------------------------------------
    def hourly_means(self, station: Station, start: datetime, end: datetime) -> dict[str, list[float | None]]:
        """Dense hourly means in µg/m³ per pollutant for the UTC hours [start, end), oldest first."""
        start, end = floor_hour(start), floor_hour(end)
        n = int((end - start) / HOUR)
        out: dict[str, list[float | None]] = {}
        if n <= 0 or not station.streams:
            return out
        ids = [ds for ds, _ in station.streams.values()]
        return _grid(self.store.aggregate(ids, "avg", "hour", start, end, 0), station, start, n)

    def latest_hour(self, station: Station) -> datetime | None:
        t = self.store.latest([ds for ds, _ in station.streams.values()])
        if not t.num_rows:
            return None
        return floor_hour(max(t.column("phenomenon_time").to_pylist()))

    def current(self, station: Station, standard: str) -> tuple[datetime | None, aq.IndexResult | None]:
        """The hourly index of the station's latest hour with data."""
        hour = self.latest_hour(station)
        if hour is None:
            return None, None
        means = self.hourly_means(station, hour - 23 * HOUR, hour + HOUR)
        return hour, aq.hourly_index(standard, means)

    def current_many(
        self, stations: Iterable[Station], standard: str, at: datetime | None = None
    ) -> list[tuple[datetime | None, aq.IndexResult | None]]:
        """``current`` of many stations (or, with ``at``, their index in the hour holding ``at``) with one
        latest-value query and one aggregate per distinct hour, instead of two queries per station."""
        sts = list(stations)
        if at is not None:
            hours: list[datetime | None] = [floor_hour(at)] * len(sts)
        else:
            t = self.store.latest([ds for st in sts for ds, _ in st.streams.values()])
            ds_ids, times_ = t.column("datastream_id").to_pylist(), t.column("phenomenon_time").to_pylist()
            latest = dict(zip(ds_ids, times_, strict=True))
            hours = []
            for st in sts:
                times = [latest[ds] for ds, _ in st.streams.values() if ds in latest]
                hours.append(floor_hour(max(times)) if times else None)
        groups: dict[datetime, list[int]] = {}
        for i, hour in enumerate(hours):
            if hour is not None and sts[i].streams:
                groups.setdefault(hour, []).append(i)
        out: list[tuple[datetime | None, aq.IndexResult | None]] = [(None, None)] * len(sts)
        for hour, members in groups.items():
            start = hour - 23 * HOUR
            ids = [ds for i in members for ds, _ in sts[i].streams.values()]
            t = self.store.aggregate(ids, "avg", "hour", start, hour + HOUR, 0)
            for i in members:
                out[i] = (hour, aq.hourly_index(standard, _grid(t, sts[i], start, 24)))
        return out

    def history(
        self, station: Station, standard: str, period: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, aq.IndexResult]]:
        if period == "hour":
            start, end = floor_hour(start), floor_hour(end)
            means = self.hourly_means(station, start - 23 * HOUR, end)
            out = []
            n = int((end - start) / HOUR)
            for i in range(n):
                window = {p: v[i : i + 24] for p, v in means.items()}
                out.append((start + i * HOUR, aq.hourly_index(standard, window)))
            return out
        day0 = self._day_start(start)
        days = max(0, int((self._day_start(end) - day0) / timedelta(days=1)))
        means = self.hourly_means(station, day0 - 7 * HOUR, day0 + days * timedelta(days=1))
        out = []
        for d in range(days):
            window = {p: v[d * 24 : d * 24 + 31] for p, v in means.items()}
            out.append((day0 + d * timedelta(days=1), aq.daily_index(standard, window)))
        return out

    def _day_start(self, ts: datetime) -> datetime:
        local = ts.astimezone(UTC) + self.offset
        return local.replace(hour=0, minute=0, second=0, microsecond=0) - self.offset

    # -- live derived Datastreams -----------------------------------------------------------------------
    def subscriptions(self) -> list[tuple[str, Handler]]:
        return [(OBSERVATIONS, on_observations(self.on_commit))]

    def start(self) -> None:
        self._note_unfinished()
        self._thread = threading.Thread(target=self._run, name="airquality", daemon=True)
        self._thread.start()

    def _note_unfinished(self) -> None:
        """Note the station-hours a previous run left without an index: the noted work lives in memory, so a
        process killed (kill -9, an OOM, a supervisor's timeout) before computing it would otherwise leave those
        hours without VN_AQI for good. Every hour from a station's latest hourly index up to its latest
        pollutant Observation, is recomputed (at most ``CATCH_UP`` back); late data for older hours that was
        still waiting is not seen here."""
        stations = list(self.stations().values())
        # Every station's pollutant and hourly-index Datastreams in one look-up (start-up time grows with stations).
        ids = [ds for st in stations for ds, _ in st.streams.values()] + [
            st.derived["hour"] for st in stations if "hour" in st.derived
        ]
        t = self.store.latest(ids) if ids else None
        latest_of = (
            dict(zip(t.column("datastream_id").to_pylist(), t.column("phenomenon_time").to_pylist(), strict=True))
            if t is not None
            else {}
        )
        noted: set[tuple[int, datetime]] = set()
        for st in stations:
            times = [latest_of[ds] for ds, _ in st.streams.values() if ds in latest_of]
            if not times:
                continue
            latest = floor_hour(max(times))
            indexed = latest_of.get(st.derived.get("hour", -1))
            # The last indexed hour too: more of its data may have arrived after it was computed.
            start = max(latest - CATCH_UP, floor_hour(indexed)) if indexed is not None else latest - CATCH_UP
            hour = start
            while hour <= latest:
                noted.add((st.thing_id, hour))
                hour += HOUR
        if noted:
            log.info("air quality: %d station-hours left without an index by the last run are recomputed", len(noted))
            with self._lock:
                self._pending.update(noted)
                self._idle.clear()
            self._wake.set()

    def stop(self) -> None:
        """Compute the indices of every station-hour already noted, then stop (the writer is still running)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    close = stop

    def status(self) -> dict[str, Any]:
        """For ``/healthz``: station-hours waiting for their indices, and whether the thread is at rest."""
        with self._lock:
            return {"pendingStationHours": len(self._pending), "idle": self._idle.is_set()}

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every noted station-hour has its index stored (for tests and the replay)."""
        return self._idle.wait(timeout)

    def on_commit(self, batch: pa.Table) -> None:
        """Bus handler: note the station-hours whose pollutant Observations just changed (cheap)."""
        self.stations()
        by_ds = self._by_datastream
        if not by_ds:
            return
        ds = batch.column("datastream_id").to_numpy()
        mask = np.isin(ds, np.fromiter(by_ds, np.int64, len(by_ds)))
        if not mask.any():
            return
        us = batch.column("phenomenon_time").cast(pa.int64()).to_numpy()[mask]
        keys = {(by_ds[int(d)], int(h)) for d, h in zip(ds[mask], us // 3_600_000_000, strict=True)}
        with self._lock:
            self._pending.update((t, datetime.fromtimestamp(h * 3600, UTC)) for t, h in keys)
            self._idle.clear()
        self._wake.set()

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            if not stopping:
                self._wake.wait(timeout=1.0)
                self._wake.clear()
            with self._lock:
                pending, self._pending = self._pending, set()
                if not pending:
                    self._idle.set()
            if pending:
                started = time.monotonic()
                try:
                    self.update(pending)
                except Exception:
                    log.exception("updating VN_AQI failed")
                # Under a stream of bulk bodies each round recomputed the same station-hours again (a body of one
                # minute of 10,000 stations: ~2.5 s of Python a round, back to back, taking the writer's CPU). A
                # pause of a few times the round's length lets the next round gather more: a lone Observation
                # (a round of milliseconds) is hardly delayed, a busy hub spends a quarter of its time here (up to
                # rounds of 1.7 s; longer ones pause MAX_PAUSE_S). An hourly index a few seconds late changes nothing.
                self._stop.wait(min(MAX_PAUSE_S, 3 * (time.monotonic() - started)))
            elif stopping:
                return

    def update(self, station_hours: Iterable[tuple[int, datetime]]) -> None:
        """Recompute VN_AQI for these (Thing, hour) pairs: the hours themselves and the next 11 (their NowCast
        uses them), and the local days they fall in; store them in the station's derived Datastreams.

        However many stations: one read of their latest hours, then one read of hourly means and one derived batch
        per chunk of stations (one chunk for a new hour at up to ~6,000 stations). Per-station reads made the leader
        of a hub on PostgreSQL spend most of its time here under a stream of single Observations, each on another
        station."""
        by_thing: dict[int, set[datetime]] = {}
        for thing, hour in station_hours:
            by_thing.setdefault(thing, set()).add(hour)
        known = self.stations()
        self._ensure_derived([known[t] for t in by_thing if t in known])
        stations = self.stations()
        todo = [(stations[t], sorted(hours)) for t, hours in by_thing.items() if t in stations]
        if not todo:
            return
        # Their FeaturesOfInterest found or made in one transaction.
        fois = self.catalog.default_fois([ds for st, _ in todo for ds in st.derived.values()])
        latest_of = self._latest_hours([st for st, _ in todo])
        plans: list[_Plan] = []
        for st, hours in todo:
            latest = latest_of.get(st.thing_id) or hours[-1]
            affected = sorted({h + k * HOUR for h in hours for k in range(12) if h + k * HOUR <= latest})
            plans.append(_Plan(st, affected, days=sorted({self._day_start(h) for h in hours})))
        # Stations in chunks of bounded size: a catch-up after a restart may owe a month of hours at every station,
        # which as one read and one batch would be held in memory whole. Each chunk is submitted without waiting, so
        # the writer commits one while the next is computed.
        futures: list[Future[AppendResult]] = []
        chunk: list[_Plan] = []
        size = 0
        for plan in plans:
            chunk.append(plan)
            size += plan.size
            if size >= _CHUNK_HOURS:
                futures += self._update_chunk(chunk, fois)
                chunk, size = [], 0
        if chunk:
            futures += self._update_chunk(chunk, fois)
        for future in futures:
            future.result()
        now = time.monotonic()
        for st, _ in todo:
            self.updated_at[st.thing_id] = now

    def _update_chunk(self, plans: list[_Plan], fois: dict[int, int | None]) -> list[Future[AppendResult]]:
        """The indices of these stations from one read of their hourly means, submitted as one derived batch (the
        writer commits it in one transaction)."""
        ranges = [HourRange(ds, plan.start, plan.end) for plan in plans for ds, _ in plan.station.streams.values()]
        means = _Means(self.store.airquality.hourly_means(ranges))
        rows: list[tuple[int, datetime, datetime, aq.IndexResult]] = []
        for plan in plans:
            st = plan.station
            grid = means.grid(st, plan.start, int((plan.end - plan.start) / HOUR))
            for h in plan.hours:
                i = int((floor_hour(h - 23 * HOUR) - plan.start) / HOUR)
                res = aq.hourly_index("vn", {p: v[i : i + 24] for p, v in grid.items()})
                rows.append((st.derived["hour"], h, h + HOUR, res))
            for d in plan.days:
                i = int((floor_hour(d - 7 * HOUR) - plan.start) / HOUR)
                res = aq.daily_index("vn", {p: v[i : i + 31] for p, v in grid.items()})
                rows.append((st.derived["day"], d, d + timedelta(days=1), res))
        future = self._write(rows, fois)
        return [future] if future is not None else []

    def _latest_hours(self, stations: list[Station]) -> dict[int, datetime]:
        """Each station's latest hour with a pollutant Observation (absent where it has none), in one read."""
        t = self.store.latest([ds for st in stations for ds, _ in st.streams.values()])
        latest = dict(zip(t.column("datastream_id").to_pylist(), t.column("phenomenon_time").to_pylist(), strict=True))
        out: dict[int, datetime] = {}
        for st in stations:
            times = [latest[ds] for ds, _ in st.streams.values() if ds in latest]
            if times:
                out[st.thing_id] = floor_hour(max(times))
        return out

    def _ensure_derived(self, stations: list[Station]) -> None:
        """Create the missing VN_AQI Datastreams of these stations in one transaction (and one reload of the
        stations after it, not one per station)."""
        labels = {"hour": "hourly", "day": "daily"}
        wanted = [
            {
                "name": f"VN_AQI {labels[period]}",
                "description": f"{labels[period].capitalize()} VN_AQI of {st.name} (1459/QĐ-TCMT), derived by CityHub",
                "observation_type": model.OM_MEASUREMENT,
                "unit_of_measurement": orjson.dumps({"name": "index", "symbol": "VN_AQI"}).decode(),
                "properties": orjson.dumps({"derived": "VN_AQI", "period": period}).decode(),
                "thing_id": st.thing_id,
            }
            for st in stations
            for period in ("hour", "day")
            if period not in st.derived
        ]
        if not wanted:
            return
        made = self.store.airquality.ensure_derived(
            {"name": "VN_AQI", "definition": VN_AQI_DEFINITION,
             "description": "Vietnam Air Quality Index, Decision 1459/QĐ-TCMT (2019)"},
            {"name": "CityHub VN_AQI", "description": "VN_AQI computed by CityHub from the station's pollutants",
             "encoding_type": "text/html", "metadata": "https://cityhub.hanoi/docs/airquality"},
            wanted,
        )  # fmt: skip
        self.catalog.entity_changed("Datastreams", "created")
        for entity_set, entity_id in made.created:
            self.bus.entity(entity_set, entity_id)

    def _write(
        self, rows: list[tuple[int, datetime, datetime, aq.IndexResult]], fois: dict[int, int | None]
    ) -> Future[AppendResult] | None:
        rows = [r for r in rows if r[3].value is not None]
        if not rows:
            return None
        now = datetime.now(UTC)
        return self.pipeline.write_derived(
            [
                {
                    "datastream_id": ds_id, "phenomenon_time": start, "phenomenon_time_end": end,
                    "result_time": now, "result_number": float(res.value),  # type: ignore[arg-type]
                    "result_string": None, "result_json": None, "result_quality": None, "valid_time_start": None,
                    "valid_time_end": None, "feature_of_interest_id": fois.get(ds_id),
                    "parameters": orjson.dumps({
                        "category": res.category.key if res.category else None,
                        "dominant": res.dominant, "subIndices": res.sub_indices,
                        "concentrations": res.concentrations,
                    }).decode(),
                }
                for ds_id, start, end, res in rows
            ]
        )  # fmt: skip


@dataclass
class _Plan:
    """What one station's update computes: the hourly indices of ``hours`` and the daily ones of ``days``, from
    the hourly means of [start, end), which holds every window they need (24 hours up to each hour, the 31 hours
    of each day from 7 before its start)."""

    station: Station
    hours: list[datetime]
    days: list[datetime]
    start: datetime = field(init=False)
    end: datetime = field(init=False)

    def __post_init__(self) -> None:
        starts = [floor_hour(h - 23 * HOUR) for h in self.hours[:1]] + [floor_hour(d - 7 * HOUR) for d in self.days]
        ends = [floor_hour(h) + HOUR for h in self.hours[-1:]] + [
            floor_hour(d - 7 * HOUR) + 31 * HOUR for d in self.days
        ]
        self.start, self.end = min(starts), max(ends)

    @property
    def size(self) -> int:
        """Hourly means read plus indices computed: what this station adds to a chunk."""
        return int((self.end - self.start) / HOUR) * len(self.station.streams) + len(self.hours) + len(self.days)


class _Means:
    """Hourly means of many Datastreams (``AirQualityOps.hourly_means``), cut into each station's dense grid."""

    def __init__(self, t: pa.Table) -> None:
        self.ds = t.column("datastream_id").to_numpy()
        self.hours = t.column("time").cast(pa.int64()).to_numpy() // 3_600_000_000
        self.values = t.column("value").to_numpy(zero_copy_only=False)

    def grid(self, station: Station, start: datetime, n: int) -> dict[str, list[float | None]]:
        """The station's means in µg/m³ per pollutant for the n hours from ``start``, oldest first."""
        first = int(start.timestamp()) // 3600
        out: dict[str, list[float | None]] = {}
        for pollutant, (ds_id, unit) in station.streams.items():
            # Rows are ordered by Datastream: its rows are one slice, found without a pass over all of them.
            lo, hi = np.searchsorted(self.ds, [ds_id, ds_id + 1])
            hours = self.hours[lo:hi] - first
            sel = (hours >= 0) & (hours < n)
            grid = np.full(n, np.nan)
            grid[hours[sel]] = self.values[lo:hi][sel]
            if unit != "ugm3":
                grid = np.array([aq.to_ugm3(pollutant, v, unit) if v == v else np.nan for v in grid])
            out[pollutant] = [None if v != v else float(v) for v in grid]
        return out
