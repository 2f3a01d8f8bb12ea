"""The simulator: the city's sensors and a stream of their readings, faults included.

>>> sim = Simulator(seed=1, start=datetime(2017, 1, 10, tzinfo=UTC), faults=FaultConfig())
>>> readings = sim.step(datetime(2017, 1, 12, tzinfo=UTC))  # two days of a hazardous January, in emission order

Readings are stamped on each sensor's grid (``start`` floored to the hour, plus multiples of its interval) and
are due when emitted: on time, or later for late ones. ``step`` returns what fell due since the previous call,
so calling it in a loop with the (scaled) clock gives a live feed. The same seed and start give the same stream
whatever the calls' spacing: values and faults are drawn per day-block from generators seeded by (seed, group,
block), and the clean values do not depend on the fault settings.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np

from cityhub.sim import facts, faults, model
from cityhub.sim.faults import FaultConfig

KINDS = ("air", "traffic", "water")
EPOCH = np.datetime64("1970-01-01T00:00:00", "us")


class Reading(NamedTuple):
    key: str  # SensorSpec.key
    time: datetime  # phenomenon time, UTC
    value: float
    emitted: datetime  # when it is sent (≥ time; later for late messages)
    fault: str = ""  # "" or fault names joined by "+" (see faults.FAULT_KINDS)


@dataclass(frozen=True)
class Vocabulary:
    """An ObservedProperty with its unit and the Sensor (instrument model) that measures it."""

    label: str  # start of the Datastream name
    name: str  # ObservedProperty name
    definition: str
    description: str
    unit: dict[str, str]
    sensor: dict[str, str]


UGM3 = {
    "name": "microgram per cubic metre",
    "symbol": "µg/m³",
    "definition": "http://qudt.org/vocab/unit/MicroGM-PER-M3",
}
EEA = "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/"
STATION = {
    "name": "Automatic air-quality station (simulated)",
    "description": "beta-attenuation PM monitor and gas analysers; hourly means (CityHub simulator)",
    "encodingType": "text/html",
    "metadata": "https://cityhub.hanoi/docs/simulator#air-quality",
}
BAM = {
    "name": "BAM-1020 (simulated)",
    "description": "Met One beta-attenuation PM2.5 monitor, hourly (CityHub simulator)",
    "encodingType": "text/html",
    "metadata": "https://metone.com/products/bam-1020/",
}
OPTICAL = {
    "name": "Low-cost optical PM sensor (simulated)",
    "description": "laser-scattering particle counter, 5-minute means (CityHub simulator)",
    "encodingType": "text/html",
    "metadata": "https://cityhub.hanoi/docs/simulator#low-cost",
}
DETECTOR = {
    "name": "Traffic detector (simulated)",
    "description": "vehicle detector aggregating speed and counts over 5 minutes (CityHub simulator)",
    "encodingType": "text/html",
    "metadata": "https://cityhub.hanoi/docs/simulator#traffic",
}
GAUGE = {
    "name": "Water-level gauge (simulated)",
    "description": "automatic water-level gauge (CityHub simulator)",
    "encodingType": "text/html",
    "metadata": "https://cityhub.hanoi/docs/simulator#water",
}


def _air(label: str, code: str, description: str, sensor: dict[str, str]) -> Vocabulary:
    return Vocabulary(label, label, EEA + code, description, UGM3, sensor)


AIR_VOCAB = {
    "pm25": _air("PM2.5", "6001", "particulate matter < 2.5 µm (PM2.5)", STATION),
    "pm10": _air("PM10", "5", "particulate matter < 10 µm (PM10)", STATION),
    "o3": _air("O3", "7", "ozone", STATION),
    "no2": _air("NO2", "8", "nitrogen dioxide", STATION),
    "so2": _air("SO2", "1", "sulphur dioxide", STATION),
    "co": _air("CO", "10", "carbon monoxide", STATION),
}
SPEED = Vocabulary(
    "Speed",
    "Traffic speed",
    "http://qudt.org/vocab/quantitykind/Speed",
    "space-mean speed of the vehicles passing the detector",
    {"name": "kilometre per hour", "symbol": "km/h", "definition": "http://qudt.org/vocab/unit/KiloM-PER-HR"},
    DETECTOR,
)
FLOW = Vocabulary(
    "Flow",
    "Traffic flow",
    "https://cityhub.hanoi/def/TrafficFlow",
    "vehicles passing the detector, all lanes, as passenger-car units per hour",
    {"name": "vehicles per hour", "symbol": "veh/h", "definition": "http://qudt.org/vocab/unit/PER-HR"},
    DETECTOR,
)
LEVEL = Vocabulary(
    "Water level",
    "Water level",
    "https://cityhub.hanoi/def/WaterLevel",
    "water level above the gauge datum",
    {"name": "centimetre", "symbol": "cm", "definition": "http://qudt.org/vocab/unit/CentiM"},
    GAUGE,
)


@dataclass(frozen=True)
class SensorSpec:
    """One simulated Datastream and the Thing it belongs to."""

    key: str  # "air/hoan-kiem/pm25", "traffic/giai-phong/speed", "water/ha-noi/level"
    site: facts.Site
    thing: str  # Thing name
    datastream: str  # Datastream name
    description: str
    vocab: Vocabulary
    sensor: dict[str, str]
    interval: timedelta

    @property
    def thing_properties(self) -> dict[str, Any]:
        return {"kind": self.site.kind, "network": "simulated", "simulator": "cityhub.sim", **self.site.properties}


def thing_name(site: facts.Site) -> str:
    if site.kind == "air-quality station":
        return (
            f"Cảm biến bụi {site.name}" if site.properties.get("class") == "low-cost" else f"Trạm quan trắc {site.name}"
        )
    if site.kind == "traffic detector":
        return f"Trạm đếm xe {site.name}"
    return f"Trạm thủy văn {site.name}" if site.properties.get("stationCode") else f"Trạm đo mực nước {site.name}"


def sensors(kinds: Iterable[str] = KINDS) -> list[SensorSpec]:
    """Every simulated Datastream, grouped by Thing, in a stable order."""
    kinds = set(kinds)
    out = []
    by_kind = {"air-quality station": "air", "traffic detector": "traffic", "water gauge": "water"}
    for site in facts.sites():
        kind = by_kind[site.kind]
        if kind not in kinds:
            continue
        name = thing_name(site)
        if kind == "air":
            cls = site.properties["class"]
            pollutants = {
                "official": facts.OFFICIAL_POLLUTANTS,
                "embassy": ("pm25",),
                "low-cost": facts.LOWCOST_POLLUTANTS,
            }[cls]
            interval = facts.FIVE_MINUTES if cls == "low-cost" else facts.HOUR
            sensor = {"official": STATION, "embassy": BAM, "low-cost": OPTICAL}[cls]
            for p in pollutants:
                v = AIR_VOCAB[p]
                every = "5-minute" if cls == "low-cost" else "hourly"
                out.append(
                    SensorSpec(f"air/{site.key}/{p}", site, name, f"{v.label} {site.name}",
                               f"{every} mean {v.description} at {site.name}, µg/m³", v, sensor, interval)
                )  # fmt: skip
        elif kind == "traffic":
            for q, v in (("speed", SPEED), ("flow", FLOW)):
                out.append(
                    SensorSpec(f"traffic/{site.key}/{q}", site, name, f"{v.label} {site.name}",
                               f"5-minute {v.description} on {site.name}, {v.unit['symbol']}", v, DETECTOR,
                               facts.FIVE_MINUTES)
                )  # fmt: skip
        else:
            interval = facts.HOUR if site.properties["interval"] == "PT1H" else facts.QUARTER
            river = site.properties["river"]
            out.append(
                SensorSpec(f"water/{site.key}/level", site, name, f"{LEVEL.label} {site.name}",
                           f"{LEVEL.description} of the {river} at {site.name}, cm", LEVEL, GAUGE, interval)
            )  # fmt: skip
    return out


def _utc(t: datetime) -> datetime:
    return t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)


def _floor_hour(t: datetime) -> datetime:
    return _utc(t).replace(minute=0, second=0, microsecond=0)


def to_np(t: datetime) -> np.datetime64:
    """A datetime (naive ones taken as UTC) as datetime64[us] UTC."""
    t = _utc(t)
    return EPOCH + np.timedelta64((t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1), "us")


def to_datetimes(a: np.ndarray) -> list[datetime]:
    base = datetime(1970, 1, 1, tzinfo=UTC)
    return [base + timedelta(microseconds=us) for us in ((a - EPOCH) // model.US).tolist()]


class _Run:
    """One group's generator state (fresh per Simulator, or per ``clean`` call)."""

    def __init__(self, kind: str, seed: int, gid: int, t0: np.datetime64) -> None:
        self.seed, self.gid, self.t0 = seed, gid, t0
        self.group = model.GROUPS[kind](np.random.default_rng([seed, gid, 2**31 - 1]))
        self.block = 0
        self.carry: dict[int, np.datetime64 | None] = {}

    @property
    def next_start(self) -> np.datetime64:
        return self.t0 + self.block * model.DAY

    def next(self) -> tuple[np.datetime64, list[model.Channel]]:
        start = self.next_start
        chans = self.group.block(start, np.random.default_rng([self.seed, self.gid, self.block]))
        self.block += 1
        return start, chans


class Simulator:
    """A reproducible Hanoi: air-quality stations, traffic detectors and water gauges (see ``sensors()``).

    ``seed``: any integer ≥ 0; ``start``: the first block's start (floored to the hour, UTC; default now), whose
    season the levels follow (e.g. 2017-01-10 replays a hazardous January); ``faults``: rates of injected
    faults (default none); ``kinds``: a subset of "air", "traffic", "water".
    """

    def __init__(
        self,
        seed: int = 0,
        start: datetime | None = None,
        faults: FaultConfig | None = None,
        *,
        kinds: Iterable[str] = KINDS,
    ) -> None:
        self.seed = int(seed)
        self.kinds = tuple(k for k in KINDS if k in set(kinds))
        self.start = _floor_hour(start or datetime.now(UTC))
        self.faults = faults or FaultConfig.none()
        self._t0 = to_np(self.start)
        self._specs = sensors(self.kinds)
        self._order = {s.key: i for i, s in enumerate(self._specs)}
        self._runs = [_Run(k, self.seed, KINDS.index(k), self._t0) for k in self.kinds]
        self._heap: list[tuple[int, int, int, Reading]] = []
        self._seq = 0
        self.now = self.start  # the time up to which readings were returned

    def sensors(self) -> list[SensorSpec]:
        return list(self._specs)

    def step(self, until: datetime) -> list[Reading]:
        """The readings emitted in (previous ``until``, ``until``], in emission order."""
        until_np = to_np(until)
        for run in self._runs:
            while run.next_start < until_np:
                self._emit(run, *run.next())
        out = []
        limit = int((until_np - EPOCH) // model.US)
        while self._heap and self._heap[0][0] <= limit:
            out.append(heapq.heappop(self._heap)[3])
        self.now = max(self.now, _utc(until))
        return out

    def _emit(self, run: _Run, start: np.datetime64, chans: list[model.Channel]) -> None:
        cfg = self.faults
        rng = np.random.default_rng([self.seed, 1000 + run.gid, run.block - 1])
        end = start + model.DAY
        offline: dict[int, list[tuple[np.datetime64, np.datetime64]]] = {}
        if cfg.offline_per_day > 0:
            for thing in sorted(set(run.group.things)):
                offline[thing], run.carry[thing] = faults.outages(start, end, run.carry.get(thing), cfg, rng)
        things = dict(zip(run.group.keys, run.group.things, strict=True))
        for ch in chans:
            times = model.times_of(start, ch.step)
            stamps = to_datetimes(times)
            t_us = ((times - EPOCH) // model.US).astype(np.int64)
            step_us = int(ch.step // model.US)
            for key, values in zip(ch.keys, ch.values, strict=True):
                order = self._order[key]
                if not cfg.active:
                    for i, v in enumerate(values.tolist()):
                        self._push(int(t_us[i]), order, Reading(key, stamps[i], v, stamps[i]))
                    continue
                down = np.zeros(times.size, dtype=bool)
                for a, b in offline.get(things[key], []):
                    down |= (times >= a) & (times < b)
                f = faults.apply(values, down, cfg, rng)
                for i, v, d, twice, label in zip(
                    f.index.tolist(), f.values.tolist(), f.delay.tolist(), f.twice.tolist(), f.labels, strict=True
                ):
                    sent = int(t_us[i]) + int(d * step_us)
                    emitted = stamps[i] if not d else stamps[i] + timedelta(microseconds=int(d * step_us))
                    self._push(sent, order, Reading(key, stamps[i], v, emitted, label))
                    if twice:
                        again = int(rng.uniform(0, 1) * step_us)
                        copy = f"{label}+duplicate" if label else "duplicate"
                        later = emitted + timedelta(microseconds=again)
                        self._push(sent + again, order, Reading(key, stamps[i], v, later, copy))

    def _push(self, sent_us: int, order: int, r: Reading) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (sent_us, order, self._seq, r))

    def clean(self, until: datetime, keys: Iterable[str] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Fault-free series from ``start`` to ``until`` as arrays (UTC datetime64[us] times, values), computed
        afresh (the stream's state is untouched); the values are those ``step`` emits before faults. Fast: for
        calibration checks and benchmarks (a simulated year of the whole city takes about a second)."""
        wanted = set(keys) if keys is not None else None
        until_np = to_np(until)
        parts: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
        for kind in self.kinds:
            group_keys = [s.key for s in self._specs if s.key.startswith(kind + "/")]
            if wanted is not None and not wanted.intersection(group_keys):
                continue
            run = _Run(kind, self.seed, KINDS.index(kind), self._t0)
            while run.next_start < until_np:
                start, chans = run.next()
                for ch in chans:
                    times = model.times_of(start, ch.step)
                    for key, values in zip(ch.keys, ch.values, strict=True):
                        if wanted is None or key in wanted:
                            ts, vs = parts.setdefault(key, ([], []))
                            ts.append(times)
                            vs.append(values)
        out = {}
        for key, (ts, vs) in parts.items():
            t, v = np.concatenate(ts), np.concatenate(vs)
            keep = t <= until_np
            out[key] = (t[keep], v[keep])
        return out
