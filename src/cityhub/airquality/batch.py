"""Vectorised indices over years of station-hours (NumPy + pyarrow; same rules and the same floating-point
operations, in the same order, as the scalar ``indices`` module, so both give identical results).

Layout: every station gets one dense block of hours on a common grid, preceded by a padding of missing hours so
that sliding windows (``sliding_window_view``) never reach into the previous station. Duplicate station-hours are
averaged; rows are floored to their hour. Times without a zone are taken as UTC here (the CLI applies ``--tz``).
The output has one row per station and hour (or local day) from the station's first to its last input row,
including hours without input (they may still have a NowCast).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.lib.stride_tricks import sliding_window_view

from cityhub.airquality.indices import EPS, KR_M, US_SO2_1H_MAX_PPB
from cityhub.airquality.tables import CATEGORIES, CATEGORY_UPPER, POLLUTANTS, STANDARDS, TABLES, Segments, from_ugm3

NAN = np.nan
OUTPUT_COLUMNS = ("station", "time", "nowcast_pm25", "nowcast_pm10", "aqi", "category", "dominant",
                  *(f"aqi_{p}" for p in POLLUTANTS))  # fmt: skip


# --- window primitives (row i = the window ending at i, oldest first) ---------------------------------------------
def _windows(a: np.ndarray, n: int, fill: float = NAN) -> np.ndarray:
    return sliding_window_view(np.concatenate([np.full(n - 1, fill), a]), n)


def _zv(a: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows of the values with missing as 0.0, and of the validity as 0.0/1.0."""
    valid = ~np.isnan(a)
    return _windows(np.where(valid, a, 0.0), n, 0.0), _windows(valid.astype(np.float64), n, 0.0)


def nowcast_array(a: np.ndarray, hours: int = 12, min_weight: float = 0.5) -> np.ndarray:
    w_all = _windows(a, hours)
    z, v = _zv(a, hours)
    recent = v[:, -1] + v[:, -2] + v[:, -3] >= 2
    cmax = np.fmax.reduce(w_all, axis=1)
    cmin = np.fmin.reduce(w_all, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(cmax > 0, cmin / cmax, 1.0)
    w = np.maximum(w, min_weight)
    num = np.zeros(len(a))
    den = np.zeros(len(a))
    for j in range(hours):  # Horner's scheme, as the scalar nowcast()
        num = num * w + z[:, j]
        den = den * w + v[:, j]
    out = np.full(len(a), NAN)
    ok = recent & (den > 0)
    out[ok] = num[ok] / den[ok]
    return out


def _seq_mean(z: np.ndarray, v: np.ndarray, need: int) -> np.ndarray:
    s = np.zeros(len(z))
    k = np.zeros(len(z))
    for j in range(z.shape[1]):  # left-to-right sum, as the scalar mean_min()
        s = s + z[:, j]
        k = k + v[:, j]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((k >= need) & (k > 0), s / k, NAN)


def mean_array(a: np.ndarray, hours: int, need: int) -> np.ndarray:
    z, v = _zv(a, hours)
    return _seq_mean(z, v, need)


def kr_predicted_array(a: np.ndarray, m: float) -> np.ndarray:
    c12 = mean_array(a, 12, 9)
    x = _windows(a, 4)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = x / c12[:, None]
        adj = np.where((x >= m) & (c12[:, None] > 0) & (r >= 0.9) & (r <= 1.7), x * 0.75, x)
    valid = ~np.isnan(adj)
    c4 = _seq_mean(np.where(valid, adj, 0.0), valid.astype(np.float64), 3)
    return (12.0 * c12 + 12.0 * c4) / 24.0


def truncate_array(seg: Segments, c: np.ndarray) -> np.ndarray:
    return c if seg.scale is None else np.floor(c * seg.scale + EPS)


def shown_array(seg: Segments, c: np.ndarray) -> np.ndarray:
    return c if seg.scale is None else truncate_array(seg, c) / seg.scale


def sub_index_array(seg: Segments, c: np.ndarray) -> np.ndarray:
    """Sub-indices as float (NaN = none), as the scalar sub_index()."""
    x = truncate_array(seg, c)
    lo, hi = np.asarray(seg.lo, np.float64), np.asarray(seg.hi, np.float64)
    ilo, ihi = np.asarray(seg.ilo, np.float64), np.asarray(seg.ihi, np.float64)
    i = np.searchsorted(lo, x, side="right") - 1
    ok = ~np.isnan(x) & (i >= 0)
    if not seg.extrapolate:
        ok &= x <= hi[-1]
    i = np.clip(i, 0, len(lo) - 1)
    with np.errstate(invalid="ignore"):
        v = np.floor((ihi[i] - ilo[i]) * (x - lo[i]) / (hi[i] - lo[i]) + ilo[i] + 0.5 + EPS)
    return np.where(ok, v, NAN)


# --- per-standard rules (see indices.py) --------------------------------------------------------------------------
def _us_so2(t: dict[str, Segments], c1: np.ndarray, c24: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t1 = truncate_array(t["so2_1h"], c1)
    s24 = sub_index_array(t["so2_24h"], c24)
    high = ~np.isnan(t1) & (t1 > US_SO2_1H_MAX_PPB)
    use24 = high & ~np.isnan(s24)
    sub = np.where(high, np.where(use24, s24, 200.0), sub_index_array(t["so2_1h"], c1))
    conc = np.where(use24, shown_array(t["so2_24h"], c24), shown_array(t["so2_1h"], c1))
    return sub, conc


def _us_o3(t: dict[str, Segments], c8: np.ndarray, c1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s8 = sub_index_array(t["o3_8h"], c8)
    s1 = sub_index_array(t["o3_1h"], c1)
    use8 = ~np.isnan(s8) & (np.isnan(s1) | (s8 >= s1))
    conc = np.where(use8, shown_array(t["o3_8h"], c8), np.where(np.isnan(s1), NAN, shown_array(t["o3_1h"], c1)))
    return np.fmax(s8, s1), conc


def _unit(standard: str, p: str) -> str:
    if p in ("pm25", "pm10") or standard == "vn":
        return "ugm3"
    return "ppm" if standard == "kr" or p in ("o3", "co") else "ppb"


def _hourly_subs(standard: str, dense: dict[str, np.ndarray]) -> tuple[dict, dict]:
    t = TABLES[standard]
    subs: dict[str, np.ndarray] = {}
    conc: dict[str, np.ndarray] = {}
    for p, a in dense.items():
        last = a
        if standard == "vn":
            c = np.floor(nowcast_array(a) * 10 + 0.5 + EPS) / 10 if p in ("pm25", "pm10") else last
            subs[p], conc[p] = sub_index_array(t["o3_1h"] if p == "o3" else t[p], c), c
        elif standard == "kr":
            c = kr_predicted_array(a, KR_M[p]) if p in KR_M else last
            subs[p], conc[p] = sub_index_array(t[p], c), shown_array(t[p], c)
        elif p in ("pm25", "pm10"):
            c = np.floor(nowcast_array(a) * t[p].scale + 0.5 + EPS) / t[p].scale
            subs[p], conc[p] = sub_index_array(t[p], c), shown_array(t[p], c)
        elif p == "o3":
            subs[p], conc[p] = _us_o3(t, nowcast_array(a, 8, 0.0), last)
        elif p == "co":
            c = mean_array(a, 8, 6)
            subs[p], conc[p] = sub_index_array(t["co_8h"], c), shown_array(t["co_8h"], c)
        elif p == "no2":
            subs[p], conc[p] = sub_index_array(t["no2_1h"], last), shown_array(t["no2_1h"], last)
        else:
            subs[p], conc[p] = _us_so2(t, last, mean_array(a, 24, 18))
    return subs, conc


def _day_mean(d: np.ndarray) -> np.ndarray:
    valid = ~np.isnan(d)
    return _seq_mean(np.where(valid, d, 0.0), valid.astype(np.float64), 18)


def _day_max(d: np.ndarray) -> np.ndarray:
    k = (~np.isnan(d)).sum(axis=1)
    return np.where(k >= 18, np.fmax.reduce(d, axis=1), NAN)


def _daily_subs(standard: str, dense: dict[str, np.ndarray]) -> tuple[dict, dict]:
    t = TABLES[standard]
    subs: dict[str, np.ndarray] = {}
    conc: dict[str, np.ndarray] = {}
    for p, a in dense.items():
        d = a.reshape(-1, 24)
        if p in ("pm25", "pm10"):
            c = _day_mean(d)
            subs[p], conc[p] = sub_index_array(t[p], c), shown_array(t[p], c)
        elif standard == "vn" and p == "o3":
            c1, c8 = _day_max(d), _day_max(mean_array(a, 8, 6).reshape(-1, 24))
            s1, s8 = sub_index_array(t["o3_1h"], c1), sub_index_array(t["o3_8h"], c8)
            subs[p] = np.fmax(s1, s8)
            conc[p] = np.where(~np.isnan(s8) & (np.isnan(s1) | (s8 >= s1)), c8, c1)
        elif standard in ("vn", "kr"):
            c = _day_max(d)
            subs[p], conc[p] = sub_index_array(t[p], c), shown_array(t[p], c)
        elif p == "o3":
            subs[p], conc[p] = _us_o3(t, _day_max(mean_array(a, 8, 6).reshape(-1, 24)), _day_max(d))
        elif p == "co":
            c = _day_max(mean_array(a, 8, 6).reshape(-1, 24))
            subs[p], conc[p] = sub_index_array(t["co_8h"], c), shown_array(t["co_8h"], c)
        elif p == "no2":
            c = _day_max(d)
            subs[p], conc[p] = sub_index_array(t["no2_1h"], c), shown_array(t["no2_1h"], c)
        else:
            subs[p], conc[p] = _us_so2(t, _day_max(d), _day_mean(d))
    return subs, conc


# --- grid ---------------------------------------------------------------------------------------------------------
class _Grid:
    """Dense per-station hourly grid. ``day``: blocks aligned on local days (hours counted in local time)."""

    def __init__(self, table: pa.Table, pad: int, day: bool, tz_offset_minutes: int) -> None:
        missing = {"station", "time"} - set(table.column_names)
        if missing:
            raise ValueError(f"missing column(s) {sorted(missing)}")
        keep = pc.and_(pc.is_valid(table["station"]), pc.is_valid(table["time"]))
        table = table.filter(keep)
        station = pc.cast(table["station"], pa.string()).combine_chunks().dictionary_encode()
        self.names: pa.Array = station.dictionary
        codes = station.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        ttype = table["time"].type
        if not pa.types.is_timestamp(ttype):
            raise ValueError(f"column time must be a timestamp, not {ttype}")
        secs = pc.cast(pc.cast(table["time"], pa.timestamp("s", ttype.tz)), pa.int64()).to_numpy(zero_copy_only=False)
        shift = tz_offset_minutes * 60 if day else 0
        hours = np.floor_divide(secs + shift, 3600)
        n_st = len(self.names)
        hmin = np.full(n_st, np.iinfo(np.int64).max)
        hmax = np.full(n_st, np.iinfo(np.int64).min)
        np.minimum.at(hmin, codes, hours)
        np.maximum.at(hmax, codes, hours)
        if day:
            hmin = np.floor_divide(hmin, 24) * 24
            hmax = np.floor_divide(hmax, 24) * 24 + 23
        length = np.maximum(hmax - hmin + 1, 0)
        block = pad + length
        offsets = np.concatenate([[0], np.cumsum(block)[:-1]]).astype(np.int64)
        self.total = int(block.sum())
        self.pos = offsets[codes] + pad + (hours - hmin[codes])
        step = 24 if day else 1
        self.out_station = np.repeat(np.arange(n_st), length // step)
        first = offsets + pad
        self.out_pos = np.concatenate([np.arange(f, f + n, step) for f, n in zip(first, length, strict=True)]
                                      or [np.zeros(0, np.int64)])  # fmt: skip
        hour = hmin[self.out_station] + (self.out_pos - first[self.out_station])
        self.out_secs = hour * 3600 - shift
        self.table = table

    def dense(self, column: str) -> np.ndarray:
        col = self.table[column]
        vals = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
        vals = np.where(np.isfinite(vals) & (vals >= 0), vals, NAN)  # negatives / NaN / null → missing
        valid = ~np.isnan(vals)
        s = np.bincount(self.pos, weights=np.where(valid, vals, 0.0), minlength=self.total)
        k = np.bincount(self.pos, weights=valid.astype(np.float64), minlength=self.total)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(k > 0, s / k, NAN)


def _int_array(x: np.ndarray) -> pa.Array:
    nan = np.isnan(x)
    return pa.array(np.where(nan, 0, np.clip(x, 0, 2**31 - 1)).astype(np.int32), mask=nan)


def _float_array(x: np.ndarray) -> pa.Array:
    return pa.array(x, mask=np.isnan(x))


def _assemble(standard: str, grid: _Grid, subs: dict, conc: dict, rows: np.ndarray, tz: str) -> pa.Table:
    n = len(rows)
    cols = {p: subs[p][rows] if p in subs else np.full(n, NAN) for p in POLLUTANTS}
    aqi = np.full(n, -1.0)
    dom = np.zeros(n, np.int64)
    for k, p in enumerate(POLLUTANTS):  # strict > keeps the first pollutant on ties, as indices.combine()
        better = cols[p] > aqi
        aqi = np.where(better, cols[p], aqi)
        dom[better] = k
    aqi = np.where(aqi < 0, NAN, aqi)
    if standard == "vn":
        aqi = np.where(np.isnan(cols["pm25"]) & np.isnan(cols["pm10"]), NAN, aqi)
    none = np.isnan(aqi)
    cat = np.searchsorted(np.asarray(CATEGORY_UPPER[standard], np.float64), np.where(none, 0, aqi), side="left")
    keys = pa.array([c.key for c in CATEGORIES[standard]])
    nc = {p: conc[p][rows] if p in conc else np.full(n, NAN) for p in ("pm25", "pm10")}
    out = {
        "station": pc.take(grid.names, pa.array(grid.out_station)),
        "time": pa.array(grid.out_secs, type=pa.timestamp("s", tz)),
        "nowcast_pm25": _float_array(nc["pm25"]),
        "nowcast_pm10": _float_array(nc["pm10"]),
        "aqi": _int_array(aqi),
        "category": pc.take(keys, pa.array(cat, mask=none)),
        "dominant": pc.take(pa.array(list(POLLUTANTS)), pa.array(dom, mask=none)),
        **{f"aqi_{p}": _int_array(cols[p]) for p in POLLUTANTS},
    }
    return pa.table(out)


def _dense_all(grid: _Grid, standard: str) -> dict[str, np.ndarray]:
    if standard not in STANDARDS:
        raise ValueError(f"unknown standard {standard!r} (one of {', '.join(STANDARDS)})")
    return {p: from_ugm3(p, grid.dense(p), _unit(standard, p)) for p in POLLUTANTS if p in grid.table.column_names}


def _tz_name(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def hourly_batch(table: pa.Table, standard: str) -> pa.Table:
    """One row per station-hour (UTC timestamps) with OUTPUT_COLUMNS; inputs in µg/m³."""
    grid = _Grid(table, pad=23, day=False, tz_offset_minutes=0)
    subs, conc = _hourly_subs(standard, _dense_all(grid, standard))
    return _assemble(standard, grid, subs, conc, grid.out_pos, "UTC")


def daily_batch(table: pa.Table, standard: str, tz_offset_minutes: int = 420) -> pa.Table:
    """One row per station and local day (``time`` = local midnight); nowcast_* hold the 24-h PM means."""
    grid = _Grid(table, pad=24, day=True, tz_offset_minutes=tz_offset_minutes)
    subs, conc = _daily_subs(standard, _dense_all(grid, standard))
    return _assemble(standard, grid, subs, conc, grid.out_pos // 24, _tz_name(tz_offset_minutes))
