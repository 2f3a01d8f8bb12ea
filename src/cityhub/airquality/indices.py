"""Scalar, exact computation of VN_AQI, US EPA AQI (2024 / 2012 tables) and Korea CAI.

Conventions (the batch path in ``batch.py`` applies the same ones, operation for operation, so both agree):

- Inputs are hourly means in µg/m³, oldest first. ``None``, NaN, ±inf and negative values are *missing*
  (never zero); the -999 sentinel of AirNow exports is therefore missing too.
- Rounding is half up (``floor(x + 0.5)``, with a 1e-9 guard so that a true half computed as 109.4999999 in
  binary floating point still rounds up). US and Korean concentrations are truncated to the table's precision
  before the lookup; VN_AQI concentrations are not, except the PM NowCast, rounded half up to 0.1 µg/m³ (the
  value the decision displays and uses in its worked example).
- NowCast (PM, all standards that use it): the last 12 hours, weight min/max floored at 1/2, valid when at least
  2 of the 3 most recent hours are present. US O3 NowCast (AirNow since 2016): the last 8 hours, weight min/max
  with no floor, same 2-of-3 rule.
- Completeness: an 8-h mean needs 6 of its 8 hours; a 24-h mean, a day's maximum 1-h value and a day's maximum
  8-h mean need 18 of the 24 hours (resp. 8-h means) of the day (the 75 % rule EPA uses).

Hourly, per standard:

- ``vn``: PM NowCast; O3 (1-h column), NO2, SO2, CO: the current hour. At least one PM sub-index is required.
- ``us``/``us2012`` (AirNow real-time reporting): PM NowCast truncated to 0.1 µg/m³ (PM2.5) / 1 µg/m³ (PM10), as
  the EPA's Technical Assistance Document says and AirNow's files show from mid-2018, then looked up;
  ``us2012-stateair`` rounds it half up instead, which is what the StateAir files of 2016-2017 reproduce (see
  test_stateair); otherwise as ``us2012``;
  O3: the O3 NowCast in the 8-h table, and the current 1-h value in the 1-h table when it is ≥ 0.125 ppm, the
  larger of the two (8-h NowCast above 0.200 ppm: 1-h table only); CO: the mean of the last 8 hours (8-h table);
  NO2: the current hour; SO2: the current hour in the 1-h table up to 304 ppb; above, the mean of the last 24
  hours in the 24-h table when it is ≥ 305 ppb, else 200 (the 1-h table defines nothing above 200).
- ``kr``: PM: AirKorea's predicted 24-h moving average from the last 12 hours (C12 needs 9 of 12, C4 3 of the 4
  most recent); gases: the current hour (ppm).

Daily (``hours[p]`` = the 24 hourly means of the local day; O3 and US CO may get up to 31 values: the 7 hours
before the day, then the 24 of the day; the 8-h means are those *ending* at each hour of the day, and hours before
the day that were not passed count as missing):

- ``vn``: PM 24-h mean; SO2, NO2, CO max 1-h; O3 the larger of the 1-h sub-index of the max 1-h value and the 8-h
  sub-index of the max 8-h mean (not used above 400 µg/m³).
- ``us``/``us2012``: PM 24-h mean; O3 max 8-h mean (8-h table) and max 1-h (1-h table, when ≥ 0.125 ppm), the
  larger; CO max 8-h mean; NO2 max 1-h; SO2 max 1-h (≤ 304 ppb), else the 24-h mean rule above.
- ``kr``: PM 24-h mean; gases max 1-h.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from cityhub.airquality.tables import (
    INDEX_NAMES,
    POLLUTANTS,
    ROUNDED_NOWCAST,
    STANDARDS,
    TABLES,
    UNIT_SYMBOLS,
    Category,
    Segments,
    advice_of,
    category_of,
    from_ugm3,
    unit_code,
)

EPS = 1e-9
KR_M = {"pm10": 70.0, "pm25": 30.0}  # AirKorea's threshold M for the 0.75 adjustment
US_SO2_1H_MAX_PPB = 304


@dataclass(frozen=True)
class IndexResult:
    standard: str
    index_name: str
    period: str
    value: int | None
    category: Category | None
    dominant: str | None
    sub_indices: dict[str, int | None] = field(default_factory=dict)
    concentrations: dict[str, float | None] = field(default_factory=dict)
    advice: dict[str, dict[str, str]] = field(default_factory=dict)
    # Pollutants measured in the period whose sub-index cannot be computed yet (too few hours for a NowCast, a
    # 24-hour mean or Korea's predicted average): why the index or a cell is empty.
    missing: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "standard": self.standard,
            "index_name": self.index_name,
            "period": self.period,
            "value": self.value,
            "category": None if self.category is None else self.category.to_dict(),
            "dominant": self.dominant,
            "sub_indices": dict(self.sub_indices),
            "concentrations": dict(self.concentrations),
            # the unit of each concentration, the standard's own: the US index has O3 and CO in ppm, NO2 in ppb
            "units": {p: UNIT_SYMBOLS[unit_code(self.standard, p)] for p in self.concentrations},
            "advice": {k: dict(v) for k, v in self.advice.items()},
            "missing": list(self.missing),
        }


# --- primitives ---------------------------------------------------------------------------------------------------
def round_half_up(x: float) -> int:
    return math.floor(x + 0.5 + EPS)


def round1(x: float) -> float:
    """Half up to 0.1 (VN NowCast)."""
    return math.floor(x * 10 + 0.5 + EPS) / 10


def clean(v: float | None) -> float | None:
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) and f >= 0 else None


def truncate(seg: Segments, c: float) -> float:
    """The concentration the table looks up, in the table's integer units (no-op for VN)."""
    return c if seg.scale is None else float(math.floor(c * seg.scale + EPS))


def sub_index(seg: Segments, c: float | None) -> int | None:
    """Linear interpolation in ``seg``; None when missing or outside what the column defines."""
    if c is None:
        return None
    x = truncate(seg, c)
    i = bisect_right(seg.lo, x) - 1
    if i < 0 or (not seg.extrapolate and x > seg.hi[-1]):
        return None
    i = min(i, len(seg.lo) - 1)
    lo, hi, ilo, ihi = seg.lo[i], seg.hi[i], seg.ilo[i], seg.ihi[i]
    return round_half_up((ihi - ilo) * (x - lo) / (hi - lo) + ilo)


def nowcast(values: Sequence[float | None], hours: int = 12, min_weight: float = 0.5) -> float | None:
    """EPA / VN_AQI NowCast of hourly means, OLDEST FIRST (the current hour last); None = missing. Not rounded.
    ``hours=8, min_weight=0`` gives AirNow's O3 NowCast."""
    vals = [clean(v) for v in list(values)[-hours:]]
    vals[:0] = [None] * (hours - len(vals))
    if sum(v is not None for v in vals[-3:]) < 2:
        return None
    avail = [v for v in vals if v is not None]
    cmax, cmin = max(avail), min(avail)
    w = cmin / cmax if cmax > 0 else 1.0
    w = max(w, min_weight)
    num = den = 0.0
    for v in vals:  # Horner's scheme, oldest first: Σ w^(age)·c / Σ w^(age)
        num = num * w + (v if v is not None else 0.0)
        den = den * w + (1.0 if v is not None else 0.0)
    return num / den if den > 0 else None


def mean_min(values: Sequence[float | None], n: int, need: int) -> float | None:
    """Mean of the last ``n`` values when at least ``need`` are present (missing ones before the series count)."""
    vals = list(values)[-n:] if n else []
    s = 0.0
    k = 0
    for v in vals:
        if v is not None:
            s = s + v
            k += 1
    return s / k if k >= need and k > 0 else None


def kr_predicted_24h(values: Sequence[float | None], m: float) -> float | None:
    """AirKorea's C24E = (12·C12 + 12·C4)/24 from the last 12 hourly values, oldest first."""
    vals = [clean(v) for v in list(values)[-12:]]
    vals[:0] = [None] * (12 - len(vals))
    c12 = mean_min(vals, 12, 9)
    if c12 is None:
        return None
    adj: list[float | None] = []
    for v in vals[-4:]:
        if v is not None and v >= m and c12 > 0 and 0.9 <= v / c12 <= 1.7:
            v = v * 0.75
        adj.append(v)
    c4 = mean_min(adj, 4, 3)
    return None if c4 is None else (12.0 * c12 + 12.0 * c4) / 24.0


def rolling8_max(values: Sequence[float | None]) -> float | None:
    """Max of the 8-h means ending at each of the last 24 hours (each needs 6 of 8); needs 18 valid means."""
    vals = list(values)[-31:]
    vals[:0] = [None] * (31 - len(vals))
    means = [mean_min(vals[i - 7 : i + 1], 8, 6) for i in range(7, 31)]
    ok = [x for x in means if x is not None]
    return max(ok) if len(ok) >= 18 else None


def day_max(values: Sequence[float | None]) -> float | None:
    vals = [v for v in list(values)[-24:] if v is not None]
    return max(vals) if len(vals) >= 18 else None


def _conv(standard: str, p: str, vals: Sequence[float | None]) -> list[float | None]:
    u = unit_code(standard, p)
    return [None if v is None else (v if u == "ugm3" else from_ugm3(p, v, u)) for v in vals]


def _shown(seg: Segments, c: float | None) -> float | None:
    """The concentration as looked up, back in the table's unit (truncated for US / KR)."""
    if c is None:
        return None
    return c if seg.scale is None else truncate(seg, c) / seg.scale


def _fmax(*xs: int | None) -> int | None:
    ok = [x for x in xs if x is not None]
    return max(ok) if ok else None


# --- per-standard concentrations → sub-indices --------------------------------------------------------------------
def _us_so2(t: dict[str, Segments], c1: float | None, c24: float | None) -> tuple[int | None, float | None]:
    if c1 is None:
        return None, None
    if truncate(t["so2_1h"], c1) <= US_SO2_1H_MAX_PPB:
        return sub_index(t["so2_1h"], c1), _shown(t["so2_1h"], c1)
    if c24 is not None and truncate(t["so2_24h"], c24) >= 305:
        return sub_index(t["so2_24h"], c24), _shown(t["so2_24h"], c24)
    return 200, _shown(t["so2_1h"], c1)


def _us_o3(t: dict[str, Segments], c8: float | None, c1: float | None) -> tuple[int | None, float | None]:
    s8 = sub_index(t["o3_8h"], c8)
    s1 = sub_index(t["o3_1h"], c1)
    if s8 is None and s1 is None:
        return None, None
    if s8 is not None and (s1 is None or s8 >= s1):
        return s8, _shown(t["o3_8h"], c8)
    return s1, _shown(t["o3_1h"], c1)


def _hourly_subs(standard: str, series: dict[str, list[float | None]]) -> tuple[dict, dict]:
    t = TABLES[standard]
    subs: dict[str, int | None] = {}
    conc: dict[str, float | None] = {}
    for p in POLLUTANTS:
        vals = series[p]
        last = vals[-1] if vals else None
        if standard == "vn":
            if p in ("pm25", "pm10"):
                nc = nowcast(vals)
                c = None if nc is None else round1(nc)
            else:
                c = last
            seg = t["o3_1h"] if p == "o3" else t[p]
            subs[p], conc[p] = sub_index(seg, c), c
        elif standard == "kr":
            c = kr_predicted_24h(vals, KR_M[p]) if p in KR_M else last
            subs[p], conc[p] = sub_index(t[p], c), _shown(t[p], c)
        else:
            if p in ("pm25", "pm10"):  # the NowCast at the table's precision: truncated (TAD), or rounded
                nc = nowcast(vals)
                scale = t[p].scale
                assert scale is not None  # the US PM tables truncate to a precision
                half = 0.5 if standard in ROUNDED_NOWCAST else 0.0
                c = None if nc is None else math.floor(nc * scale + half + EPS) / scale
                subs[p], conc[p] = sub_index(t[p], c), _shown(t[p], c)
            elif p == "o3":
                subs[p], conc[p] = _us_o3(t, nowcast(vals, 8, 0.0), last)
            elif p == "co":
                c = mean_min(vals, 8, 6)
                subs[p], conc[p] = sub_index(t["co_8h"], c), _shown(t["co_8h"], c)
            elif p == "no2":
                subs[p], conc[p] = sub_index(t["no2_1h"], last), _shown(t["no2_1h"], last)
            else:
                subs[p], conc[p] = _us_so2(t, last, mean_min(vals, 24, 18))
    return subs, conc


def _daily_subs(standard: str, series: dict[str, list[float | None]]) -> tuple[dict, dict]:
    t = TABLES[standard]
    subs: dict[str, int | None] = {}
    conc: dict[str, float | None] = {}
    for p in POLLUTANTS:
        vals = series[p]
        if p in ("pm25", "pm10"):
            c = mean_min(vals, 24, 18)
            subs[p], conc[p] = sub_index(t[p], c), _shown(t[p], c)
        elif standard == "vn" and p == "o3":
            c1, c8 = day_max(vals), rolling8_max(vals)
            s1, s8 = sub_index(t["o3_1h"], c1), sub_index(t["o3_8h"], c8)
            subs[p] = _fmax(s1, s8)
            conc[p] = c8 if s8 is not None and (s1 is None or s8 >= s1) else c1
        elif standard in ("vn", "kr"):
            c = day_max(vals)
            subs[p], conc[p] = sub_index(t[p], c), _shown(t[p], c)
        elif p == "o3":
            subs[p], conc[p] = _us_o3(t, rolling8_max(vals), day_max(vals))
        elif p == "co":
            c = rolling8_max(vals)
            subs[p], conc[p] = sub_index(t["co_8h"], c), _shown(t["co_8h"], c)
        elif p == "no2":
            c = day_max(vals)
            subs[p], conc[p] = sub_index(t["no2_1h"], c), _shown(t["no2_1h"], c)
        else:
            subs[p], conc[p] = _us_so2(t, day_max(vals), mean_min(vals, 24, 18))
    return subs, conc


def combine(
    standard: str, subs: Mapping[str, int | None], measured: Collection[str] = ()
) -> tuple[int | None, str | None]:
    """AQI = the largest sub-index (VN_AQI: only when a PM sub-index exists); dominant: the first pollutant in
    POLLUTANTS order with that value.

    The US and Korean indices are left empty while a particulate measured in the period (``measured``) has no
    sub-index yet: the largest of the others would claim "good" beside 300 µg/m³ of PM2.5 in a station's first
    hour (its NowCast needs 2 of the last 3 hours). VN_AQI keeps Decision 1459's rule (either PM suffices)."""
    if standard == "vn" and subs.get("pm25") is None and subs.get("pm10") is None:
        return None, None
    if standard != "vn" and any(p in measured and subs.get(p) is None for p in ("pm25", "pm10")):
        return None, None
    best: int | None = None
    dom: str | None = None
    for p in POLLUTANTS:
        s = subs.get(p)
        if s is not None and (best is None or s > best):
            best, dom = s, p
    return best, dom


def _prepare(standard: str, hours: Mapping[str, Sequence[float | None]]) -> dict[str, list[float | None]]:
    if standard not in STANDARDS:
        raise ValueError(f"unknown standard {standard!r} (one of {', '.join(STANDARDS)})")
    unknown = set(hours) - set(POLLUTANTS)
    if unknown:
        raise ValueError(f"unknown pollutant(s) {sorted(unknown)} (known: {', '.join(POLLUTANTS)})")
    return {p: _conv(standard, p, [clean(v) for v in (hours.get(p) or ())]) for p in POLLUTANTS}


def _result(standard: str, period: str, subs: dict, conc: dict, measured: set[str]) -> IndexResult:
    value, dom = combine(standard, subs, measured)
    missing = tuple(p for p in POLLUTANTS if p in measured and subs.get(p) is None)
    return IndexResult(standard=standard, index_name=INDEX_NAMES[standard], period=period, value=value,
                       category=category_of(standard, value), dominant=dom, sub_indices=subs, concentrations=conc,
                       advice=advice_of(standard, value), missing=missing)  # fmt: skip


def _measured(hours: Mapping[str, Sequence[float | None]], last: int) -> set[str]:
    """The pollutants with a value among the last ``last`` hours (the hour itself, or the day's 24)."""
    return {p for p, vs in hours.items() if any(clean(v) is not None for v in list(vs or ())[-last:])}


def hourly_index(standard: str, hours: Mapping[str, Sequence[float | None]]) -> IndexResult:
    """The index for the current hour. ``hours[pollutant]``: hourly means in µg/m³, oldest first, the current
    hour last (pass ≥ 12 for PM NowCast, 24 for US SO2 above 304 ppb). See the module docstring for the rules."""
    subs, conc = _hourly_subs(standard, _prepare(standard, hours))
    return _result(standard, "hour", subs, conc, _measured(hours, 1))


def daily_index(standard: str, hours: Mapping[str, Sequence[float | None]]) -> IndexResult:
    """The index of a local day. ``hours[pollutant]``: the day's 24 hourly means in µg/m³, oldest first; up to
    31 values (7 hours of the previous day first) for the 8-h means of O3 and US CO."""
    subs, conc = _daily_subs(standard, _prepare(standard, hours))
    return _result(standard, "day", subs, conc, _measured(hours, 24))
