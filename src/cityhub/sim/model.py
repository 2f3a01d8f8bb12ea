"""The simulated city's series, one group of jointly generated series at a time, a day's block at a time.

Every group advances in blocks of one day: block ``k`` holds the values at ``t0 + k·day + i·step`` for
``i = 1 … day/step``. Randomness comes from a generator seeded with (seed, group, block), so a run is the same
however its caller slices time. Stochastic parts are unit-variance AR(1) processes (their state carries from
block to block) scaled by fitted standard deviations; log-normal parts are bias-corrected so that their means
are the fitted means. Units: µg/m³ (air), km/h and vehicles (PCU) per hour (traffic), cm (water levels).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from cityhub.sim import facts
from cityhub.sim import params as P

DAY = np.timedelta64(1, "D")
LOCAL = np.timedelta64(7, "h")  # Hanoi is UTC+7 all year
US = np.timedelta64(1, "us")


# -- time helpers ------------------------------------------------------------------------------------------------
def month_position(local: np.ndarray) -> np.ndarray:
    """Months since 1 January (0 ≤ p < 12) of local times: the month index plus the elapsed share of the month."""
    m = local.astype("datetime64[M]")
    frac = (local - m) / ((m + 1).astype(local.dtype) - m)
    return (m.astype(np.int64) % 12) + frac


def hour_of_day(local: np.ndarray) -> np.ndarray:
    return (local - local.astype("datetime64[D]")) / np.timedelta64(1, "h")


def weekday(local: np.ndarray) -> np.ndarray:
    """0 = Monday … 6 = Sunday (1970-01-01 was a Thursday)."""
    return (local.astype("datetime64[D]").astype(np.int64) + 3) % 7


class Seasonal:
    """A smooth annual cycle through 12 monthly values: periodic piecewise-linear between mid-month nodes. With
    ``exact`` the nodes are solved so that each month's mean of the curve equals its monthly value (a month's mean
    of the curve is (n[m−1] + 6·n[m] + n[m+1]) / 8)."""

    def __init__(self, monthly: list[float] | np.ndarray, exact: bool = True) -> None:
        v: np.ndarray = np.asarray(monthly, dtype=np.float64)
        if exact:
            a = np.zeros((12, 12))
            for m in range(12):
                a[m, m], a[m, (m - 1) % 12], a[m, (m + 1) % 12] = 6 / 8, 1 / 8, 1 / 8
            v = np.linalg.solve(a, v)
        self.xp = np.arange(-0.5, 12.5 + 1e-9, 1.0)
        self.fp = np.concatenate([v[-1:], v, v[:1]])

    def __call__(self, local: np.ndarray) -> np.ndarray:
        return self.at(month_position(local))

    def at(self, pos: np.ndarray) -> np.ndarray:
        """Values at month positions (see ``month_position``)."""
        return np.interp(pos, self.xp, self.fp)


def monthly_lookup(table: list[float], local: np.ndarray) -> np.ndarray:
    """The calendar month's value (no smoothing; for probabilities and intensities)."""
    return np.asarray(table)[local.astype("datetime64[M]").astype(np.int64) % 12]


def hourly_profile(profile: list[float], h: np.ndarray) -> np.ndarray:
    """A 24-value hour-of-day profile at hours of day ``h``, linear (periodic) between full hours."""
    return np.interp(h, np.arange(25), np.concatenate([profile, profile[:1]]))


def gauss(h: np.ndarray, mu: float, s: float) -> np.ndarray:
    return np.exp(-0.5 * ((h - mu) / s) ** 2)


# -- AR(1) -------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=64)
def _ar_matrices(phi: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    i = np.arange(n)
    lag = i[:, None] - i[None, :]
    mat = np.where(lag >= 0, phi ** np.clip(lag, 0, None), 0.0)
    return mat, phi ** (i + 1)


class AR1:
    """``size`` independent unit-variance AR(1) processes with coefficient ``phi`` per step."""

    def __init__(self, phi: float, size: int, rng: np.random.Generator) -> None:
        self.phi = float(phi)
        self.state = rng.standard_normal(size)  # stationary start

    def block(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """The next ``n`` steps, shape (n, size)."""
        mat, powers = _ar_matrices(self.phi, n)
        eps = rng.standard_normal((n, self.state.size)) * np.sqrt(1 - self.phi**2)
        x = mat @ eps + powers[:, None] * self.state[None, :]
        self.state = x[-1].copy()
        return x


# -- groups ------------------------------------------------------------------------------------------------------
@dataclass
class Channel:
    """Series of one group that share a reporting interval: values[i] belongs to keys[i]; times are
    block start + step·(1 … n)."""

    step: np.timedelta64
    keys: list[str]
    values: np.ndarray  # (len(keys), n)


class Group:
    """Jointly generated series; ``things`` maps each key to its Thing's index within the group (for outages)."""

    name: str = ""
    keys: list[str]
    things: list[int]

    def block(self, start: np.datetime64, rng: np.random.Generator) -> list[Channel]:
        raise NotImplementedError


def times_of(start: np.datetime64, step: np.timedelta64) -> np.ndarray:
    n = int(DAY // step)
    return start + step * np.arange(1, n + 1)


class AirQuality(Group):
    """PM2.5 = L(t)·D(h)·f·exp(σ(t)·z − σ(t)²/2) per station, with z = √w·A + √(1−w−ε)·B + √ε·E: a city-wide slow
    (A) and fast (B) AR(1) shared by all stations, and a station's own fast AR(1) (E); w = PM25_SLOW_SHARE,
    ε = PM25_LOCAL_SHARE. L: the fitted monthly means (smooth annual cycle), D: the diurnal profile, f: the
    station factor, σ: the monthly log standard deviation. Other pollutants: see ``_gases``."""

    name = "air"

    def __init__(self, rng: np.random.Generator) -> None:
        self.sites = [(k, cls) for k, _, _, _, cls in facts.AIR_STATIONS]
        self.hourly = [i for i, (_, cls) in enumerate(self.sites) if cls != "low-cost"]
        self.official = [i for i, (_, cls) in enumerate(self.sites) if cls == "official"]
        self.lowcost = [i for i, (_, cls) in enumerate(self.sites) if cls == "low-cost"]
        self.hourly_keys: list[str] = []
        self.hourly_things: list[int] = []
        for i in self.hourly:
            key, cls = self.sites[i]
            for p in facts.OFFICIAL_POLLUTANTS if cls == "official" else ("pm25",):
                self.hourly_keys.append(f"air/{key}/{p}")
                self.hourly_things.append(i)
        self.lowcost_keys = [f"air/{self.sites[i][0]}/{p}" for i in self.lowcost for p in facts.LOWCOST_POLLUTANTS]
        self.lowcost_things = [i for i in self.lowcost for _ in facts.LOWCOST_POLLUTANTS]
        self.keys = self.hourly_keys + self.lowcost_keys
        self.things = self.hourly_things + self.lowcost_things
        self.factor = np.array([P.STATION_FACTORS.get(k, 1.0) for k, _ in self.sites])
        self.level = Seasonal(P.PM25_MONTHLY_MEAN)
        self.sigma = Seasonal(P.PM25_LOG_SD, exact=False)
        self.ratio = {p: Seasonal(v) for p, v in P.GAS_LEVEL.items()}
        n = len(self.sites)
        self.city_slow = AR1(P.PM25_PHI_SLOW, 1, rng)
        self.city_fast = AR1(P.PM25_PHI_FAST, 1, rng)
        self.local = AR1(P.PM25_PHI_FAST, n, rng)
        self.gas_noise = {p: AR1(P.GAS_PHI[p], len(self.official), rng) for p in P.GAS_PHI}
        self.lowcost_noise = AR1(P.LOWCOST_NOISE_PHI, 2 * len(self.lowcost), rng)
        self.w = P.PM25_SLOW_SHARE
        self.eps = P.PM25_LOCAL_SHARE
        self.prev_log: np.ndarray | None = None  # log PM2.5 of the low-cost sites at the block start

    def _z(self, a: np.ndarray, b: np.ndarray, e: np.ndarray) -> np.ndarray:
        return np.sqrt(self.w) * a + np.sqrt(1 - self.w - self.eps) * b + np.sqrt(self.eps) * e

    def _log_pm25(self, pos: np.ndarray, h: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(log PM2.5, anomaly x = σ·z) at month positions and hours of day (n,), for standardised anomalies z
        (n, sites)."""
        sigma = self.sigma.at(pos)[:, None]
        mean = np.log(self.level.at(pos) * hourly_profile(P.PM25_DIURNAL, h))[:, None] + np.log(self.factor)
        x = sigma * z
        return mean + x - sigma**2 / 2, x

    def block(self, start: np.datetime64, rng: np.random.Generator) -> list[Channel]:
        if self.prev_log is None:  # the state at t0, for interpolating the low-cost sensors' first hour
            z0 = self._z(self.city_slow.state[None, :], self.city_fast.state[None, :], self.local.state[None, :])
            t = np.array([start + LOCAL])
            self.prev_log = self._log_pm25(month_position(t), hour_of_day(t), z0)[0][0, self.lowcost]
        local = times_of(start, np.timedelta64(1, "h")) + LOCAL
        pos, h = month_position(local), hour_of_day(local)
        z = self._z(self.city_slow.block(24, rng), self.city_fast.block(24, rng), self.local.block(24, rng))
        log_pm, x = self._log_pm25(pos, h, z)
        pm25 = np.exp(log_pm)  # (24, sites)
        rows: dict[str, np.ndarray] = {}
        gases = self._gases(pos, h, pm25, x, rng)
        for i in self.hourly:
            key, cls = self.sites[i]
            rows[f"air/{key}/pm25"] = pm25[:, i]
            if cls == "official":
                for p, v in gases.items():
                    rows[f"air/{key}/{p}"] = v[:, self.official.index(i)]
        hourly = Channel(np.timedelta64(1, "h"), self.hourly_keys, np.round([rows[k] for k in self.hourly_keys], 1))
        return [hourly, self._lowcost(start, pos, log_pm[:, self.lowcost], rng)]

    def _gases(
        self, pos: np.ndarray, h: np.ndarray, pm25: np.ndarray, x: np.ndarray, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """PM10 = PM2.5·(1 + (r(t) − 1)·exp(s·R − s²/2)): the coarse part as a fitted ratio with a slow AR(1).
        O3, NO2, SO2, CO = level(t)·D(h)·exp(β·x + s·R − (β²·σ² + s²)/2): a monthly level (ratio to the station's
        PM2.5 level for the co-emitted NO2, SO2, CO; absolute for O3), a diurnal profile, the share β of the PM2.5
        anomaly x they follow, and their own AR(1) R with standard deviation s."""
        off = self.official
        sigma2 = self.sigma.at(pos)[:, None] ** 2
        pm_level = self.level.at(pos)[:, None] * self.factor[off]
        out: dict[str, np.ndarray] = {}
        for p in ("pm10", "o3", "no2", "so2", "co"):
            s, r = P.GAS_SD[p], self.gas_noise[p].block(24, rng)
            if p == "pm10":
                coarse = (self.ratio[p].at(pos)[:, None] - 1.0) * np.exp(s * r - s**2 / 2)
                out[p] = pm25[:, off] * (1.0 + np.clip(coarse, 0.0, None))
                continue
            level = self.ratio[p].at(pos)[:, None] * (1.0 if p == "o3" else pm_level)
            beta = P.GAS_BETA[p]
            out[p] = (
                level
                * hourly_profile(P.GAS_DIURNAL[p], h)[:, None]
                * np.exp(beta * x[:, off] + s * r - (beta**2 * sigma2 + s**2) / 2)
            )
            if p == "co":
                out[p] = np.round(out[p])
        return out

    def _lowcost(
        self, start: np.datetime64, month_pos: np.ndarray, log_pm: np.ndarray, rng: np.random.Generator
    ) -> Channel:
        """Low-cost sensors every 5 minutes: the station's log PM2.5 interpolated between hours, times a noisy
        sensor response; PM10 from the same optical count times the coarse ratio."""
        step = np.timedelta64(5, "m")
        t = times_of(start, step)
        assert self.prev_log is not None  # block() sets it before calling this
        nodes = np.vstack([self.prev_log, log_pm])  # hours 0 … 24 of the block
        self.prev_log = log_pm[-1].copy()
        k = np.arange(1, t.size + 1)
        lo, frac = (k - 1) // 12, ((k - 1) % 12 + 1)[:, None] / 12.0  # 5-minute step k lies in hour lo … lo + 1
        interp = nodes[lo] + frac * (nodes[lo + 1] - nodes[lo])
        s = P.LOWCOST_NOISE_SD
        noise = self.lowcost_noise.block(t.size, rng) * s - s**2 / 2
        ratio = np.repeat(self.ratio["pm10"].at(month_pos), 12)[:, None]  # the hour's ratio (it changes by the month)
        pm25 = np.exp(interp + noise[:, 0::2])
        pm10 = np.exp(interp + noise[:, 1::2]) * ratio
        cols = []
        for j in range(len(self.lowcost)):
            cols += [pm25[:, j], pm10[:, j]]
        return Channel(step, self.lowcost_keys, np.round(np.array(cols), 1))


class Traffic(Group):
    """Speed and flow every 5 minutes (loop detectors and counting cameras aggregate to 5 minutes, as METR-LA
    and PeMS do). Speed = v_free·(profile(t)/base + noise): the METR-LA rush-hour dips moved to Hanoi's rush
    hours, scaled by the detector's depth; weekends have METR-LA's shallow afternoon dip. Flow = lanes ·
    capacity · demand share(t) (night floor, daytime plateau, rush extra), capped on the congested branch of
    Greenshields' fundamental diagram (4·u·(1 − u)·capacity below half the free-flow speed), counted per
    5 minutes (Poisson) and reported per hour."""

    name = "traffic"

    def __init__(self, rng: np.random.Generator) -> None:
        det = facts.TRAFFIC_DETECTORS
        self.keys = [f"traffic/{d[0]}/{q}" for d in det for q in ("speed", "flow")]
        self.things = [i for i in range(len(det)) for _ in range(2)]
        self.vf = np.array([d[6] for d in det], dtype=np.float64)
        self.lanes = np.array([d[5] for d in det], dtype=np.float64)
        u = rng.uniform(0.1, 0.9, len(det))  # a detector's place among METR-LA's detectors, deciles interpolated
        depth = np.interp(u, np.linspace(0.1, 0.9, 9), P.DETECTOR_DEPTH_DECILES)
        self.depth = np.clip(depth, *P.DETECTOR_DEPTH_RANGE)
        self.speed_noise = AR1(P.SPEED_NOISE_PHI, len(det), rng)
        self.flow_noise = AR1(P.SPEED_NOISE_PHI, len(det), rng)

    @staticmethod
    def dips(local: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(base, dip, rush shape 0–1) per time: weekday rush dips at Hanoi's hours or the weekend's dip."""
        h, dow = hour_of_day(local), weekday(local)
        (a1, _, s1), (a2, _, s2) = P.SPEED_DIPS_WEEKDAY
        c1, c2 = P.HANOI_RUSH_CENTRES
        wk_dip = a1 * gauss(h, c1, s1) + a2 * gauss(h, c2, s2)
        sat_base, (sa, sm, ss) = P.SPEED_DIP_SATURDAY
        sun_base, (ua, um, us) = P.SPEED_DIP_SUNDAY
        base = np.select([dow == 5, dow == 6], [sat_base, sun_base], P.SPEED_BASE)
        dip = np.select([dow == 5, dow == 6], [sa * gauss(h, sm, ss), ua * gauss(h, um, us)], wk_dip)
        return base, dip, dip / max(a1, a2)

    def block(self, start: np.datetime64, rng: np.random.Generator) -> list[Channel]:
        step = np.timedelta64(5, "m")
        t = times_of(start, step)
        local = t + LOCAL
        base, dip, rush = self.dips(local)
        ratio = (base[:, None] - dip[:, None] * self.depth[None, :]) / P.SPEED_BASE
        u = np.clip(ratio + P.SPEED_NOISE_SD * self.speed_noise.block(t.size, rng), 0.05, 1.3)
        speed = self.vf * u
        h, dow = hour_of_day(local), weekday(local)
        day = 1 / (1 + np.exp(-(h - 6.0) / 0.5)) * (1 - 1 / (1 + np.exp(-(h - 22.0) / 1.0)))
        plateau = np.where(dow >= 5, P.FLOW_WEEKEND_DAY, P.FLOW_DAY)
        share = P.FLOW_NIGHT + (plateau - P.FLOW_NIGHT) * day + P.FLOW_RUSH * rush
        cap = P.CAPACITY_PER_LANE * self.lanes
        s = P.FLOW_NOISE_SD
        demand = share[:, None] * cap * np.exp(s * self.flow_noise.block(t.size, rng) - s**2 / 2)
        uu = np.minimum(u, 1.0)
        flow = np.where(uu < 0.5, np.minimum(demand, 4 * uu * (1 - uu) * cap), demand)
        counts = rng.poisson(flow / 12.0)  # vehicles in each 5 minutes
        cols = []
        for j in range(self.vf.size):
            cols += [np.round(speed[:, j], 1), counts[:, j] * 12.0]
        return [Channel(step, self.keys, np.array(cols))]


class Water(Group):
    """Red River levels, hourly (automatic gauges report hourly; the 2015 series is the manual 6-hourly record):
    the fitted annual cycle plus the month's standard deviation times a mix of a shared and a gauge's own AR(1)
    (correlation RIVER_CORR), plus Hà Nội's daily cycle. Tô Lịch every 15 minutes: a dry-weather level with a
    daily wastewater cycle plus rain (a Markov chain fitted on Open-Meteo) through a linear reservoir."""

    name = "water"

    def __init__(self, rng: np.random.Generator) -> None:
        self.red = [(k, code) for k, _, _, _, _, code, _ in facts.WATER_GAUGES if code]
        self.tolich = [k for k, _, _, _, _, code, _ in facts.WATER_GAUGES if not code]
        self.keys = [f"water/{k}/level" for k, _ in self.red] + [f"water/{k}/level" for k in self.tolich]
        self.things = list(range(len(self.keys)))
        self.mean = [Seasonal(P.RIVER_MONTHLY_MEAN[c]) for _, c in self.red]
        self.sd = [Seasonal(P.RIVER_SD[c], exact=False) for _, c in self.red]
        self.shared = AR1(P.RIVER_PHI_HOURLY, 1, rng)
        self.own = AR1(P.RIVER_PHI_HOURLY, len(self.red), rng)
        self.wet = False
        self.store = 0.0  # cm of rain-driven rise in the Tô Lịch

    def block(self, start: np.datetime64, rng: np.random.Generator) -> list[Channel]:
        hours = times_of(start, np.timedelta64(1, "h"))
        local = hours + LOCAL
        rho = P.RIVER_CORR
        mix = np.sqrt(rho) * self.shared.block(24, rng) + np.sqrt(1 - rho) * self.own.block(24, rng)
        rows = []
        for j, (_, code) in enumerate(self.red):
            level = self.mean[j](local) + self.sd[j](local) * mix[:, j]
            if code == "74165":
                peak = P.HANOI_DAILY_PEAK_HOUR
                level = level + P.HANOI_DAILY_AMPLITUDE_CM * np.cos(2 * np.pi * (hour_of_day(local) - peak) / 24)
            rows.append(np.round(level))
        out = [Channel(np.timedelta64(1, "h"), self.keys[: len(self.red)], np.array(rows))]
        if self.tolich:
            out.append(self._tolich(start, local, rng))
        return out

    def _tolich(self, start: np.datetime64, local_hours: np.ndarray, rng: np.random.Generator) -> Channel:
        p01 = monthly_lookup(P.RAIN_P_WET_AFTER_DRY, local_hours)
        p11 = monthly_lookup(P.RAIN_P_WET_AFTER_WET, local_hours)
        intensity = monthly_lookup(P.RAIN_WET_MEAN_MM, local_hours)
        u, draw = rng.random(24), rng.exponential(1.0, 24)
        rain = np.zeros(24)
        for i in range(24):
            self.wet = bool(u[i] < (p11[i] if self.wet else p01[i]))
            rain[i] = draw[i] * intensity[i] if self.wet else 0.0
        step = np.timedelta64(15, "m")
        t = times_of(start, step)
        a = float(np.exp(-0.25 / P.TO_LICH_TAU_H))
        mat, powers = _ar_matrices(a, t.size)
        inflow = np.repeat(rain / 4.0, 4) * P.TO_LICH_CM_PER_MM
        store = mat @ inflow + powers * self.store
        self.store = float(store[-1])
        h = hour_of_day(t + LOCAL)
        daily = P.TO_LICH_DAILY_AMPLITUDE_CM * np.cos(2 * np.pi * (h - P.TO_LICH_DAILY_PEAK_HOUR) / 24)
        level = P.TO_LICH_BASE_CM + daily + store + rng.normal(0, P.TO_LICH_NOISE_CM, t.size)
        return Channel(step, self.keys[len(self.red) :], np.round(level)[None, :])


GROUPS: dict[str, Callable[[np.random.Generator], Group]] = {"air": AirQuality, "traffic": Traffic, "water": Water}
