"""Vectorised indices over years of station-hours (NumPy + pyarrow; same rules and the same floating-point
operations, in the same order, as the scalar ``indices`` module, so both give identical results).

Layout: every station gets one dense block of hours on a common grid, preceded by a padding of missing hours so
that sliding windows (``sliding_window_view``) never reach into the previous station. Duplicate station-hours are
averaged; rows are floored to their hour. Times without a zone are taken as UTC here (the CLI applies ``--tz``).
The output has one row per station and hour (or local day) from the station's first to its last input row,
including hours without input (they may still have a NowCast).

The grid is processed in chunks of ``_CHUNK`` hours, each with the ``_HALO`` hours before it, so that the
temporaries stay in the CPU cache; every window (at most 24 h) of a chunk's hours lies inside that span, so the
results do not depend on the chunking.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.lib.stride_tricks import sliding_window_view

from cityhub.airquality.indices import EPS, KR_M, US_SO2_1H_MAX_PPB
from cityhub.airquality.tables import (
    CATEGORIES,
    CATEGORY_UPPER,
    POLLUTANTS,
    ROUNDED_NOWCAST,
    STANDARDS,
    TABLES,
    Segments,
    from_ugm3,
    unit_code,
)

NAN = np.nan
OUTPUT_COLUMNS = ("station", "time", "nowcast_pm25", "nowcast_pm10", "aqi", "category", "dominant",
                  *(f"aqi_{p}" for p in POLLUTANTS), "missing")  # fmt: skip
# "missing": the pollutants measured in the hour (or day) without a sub-index yet, comma-separated (see
# indices.IndexResult.missing): why a cell, or the US and Korean index, is empty.
_CHUNK = 24 * 2048  # grid hours per chunk (whole days): ~0.4 MB per float array, cache-sized
_HALO = 24  # hours before a chunk that its windows need (longest: US SO2 24-h mean), whole days for the daily path
_INT32_MAX = 2.0**31 - 1


# --- window primitives (row i = the window ending at i, oldest first) ---------------------------------------------
def _windows(a: np.ndarray, n: int, fill: float = NAN) -> np.ndarray:
    return sliding_window_view(np.concatenate([np.full(n - 1, fill), a]), n)


def _zv(a: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows of the values with missing as 0.0, and of the validity as 0.0/1.0."""
    valid = ~np.isnan(a)
    return _windows(np.where(valid, a, 0.0), n, 0.0), _windows(valid.astype(np.float64), n, 0.0)


def _sliding(op: np.ufunc, p: np.ndarray, width: int) -> np.ndarray:
    """``op`` over every ``width`` consecutive values of ``p`` (len(p) - width + 1 results) by doubling spans;
    exact for fmax / fmin, which do not depend on the order."""
    n = len(p) - width + 1
    res: np.ndarray | None = None
    done = 0  # res[k] = op over p[k : k + done]
    cur, span = p, 1  # cur[k] = op over p[k : k + span]
    while True:
        if width & span:
            part = cur[done : done + n]
            res = part if res is None else op(res, part)
            done += span
        if span * 2 > width:
            break
        cur = op(cur[:-span], cur[span:])
        span *= 2
    assert res is not None
    return res


def nowcast_array(a: np.ndarray, hours: int = 12, min_weight: float = 0.5) -> np.ndarray:
    n = len(a)
    p = np.concatenate([np.full(hours - 1, NAN), a])  # column j of the windows = p[j : j + n]
    valid = ~np.isnan(p)
    z = np.where(valid, p, 0.0)
    v = valid.astype(np.float64)
    recent = v[hours - 1 :] + v[hours - 2 : hours - 2 + n] + v[hours - 3 : hours - 3 + n] >= 2
    cmax = _sliding(np.fmax, p, hours)
    cmin = _sliding(np.fmin, p, hours)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(cmax > 0, cmin / cmax, 1.0)
    w = np.maximum(w, min_weight)
    num = np.zeros(n)
    den = np.zeros(n)
    for j in range(hours):  # Horner's scheme, as the scalar nowcast() (in place: the same operations)
        num *= w
        num += z[j : j + n]
        den *= w
        den += v[j : j + n]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(recent & (den > 0), num / den, NAN)


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


@cache
def _segment_arrays(seg: Segments) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """lo, ihi - ilo, hi - lo, ilo of each segment (the same subtractions as after a lookup, done once)."""
    lo, hi = np.asarray(seg.lo, np.float64), np.asarray(seg.hi, np.float64)
    ilo, ihi = np.asarray(seg.ilo, np.float64), np.asarray(seg.ihi, np.float64)
    return lo, ihi - ilo, hi - lo, ilo


def sub_index_array(seg: Segments, c: np.ndarray) -> np.ndarray:
    """Sub-indices as float (NaN = none), as the scalar sub_index()."""
    x = np.asarray(truncate_array(seg, c), np.float64)
    lo, di, dc, ilo = _segment_arrays(seg)
    # the last segment with lo <= x (0 below the table, where ok is False): counting breakpoints in uint8 is
    # faster than searchsorted on a handful of them
    i8 = np.zeros(np.shape(x), np.uint8)
    for b in lo[1:]:
        i8 += (x >= b).view(np.uint8)
    i = i8.astype(np.intp)
    ok = x >= lo[0]  # False for NaN
    if not seg.extrapolate:
        ok &= x <= seg.hi[-1]
    with np.errstate(invalid="ignore"):
        v = np.floor(np.take(di, i) * (x - np.take(lo, i)) / np.take(dc, i) + np.take(ilo, i) + 0.5 + EPS)
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
        elif p in ("pm25", "pm10"):  # truncated as the TAD says, or rounded as the 2016-2017 StateAir files
            half = 0.5 if standard in ROUNDED_NOWCAST else 0.0
            c = np.floor(nowcast_array(a) * t[p].scale + half + EPS) / t[p].scale
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
    """Dense per-station hourly grid. ``day``: blocks aligned on local days (hours counted in local time).
    Only the geometry is kept whole; the values are put on the grid chunk by chunk (``values``)."""

    def __init__(self, table: pa.Table, pad: int, day: bool, tz_offset_minutes: int) -> None:
        self.day = day
        missing = {"station", "time"} - set(table.column_names)
        if missing:
            raise ValueError(f"missing column(s) {sorted(missing)}")
        if table["station"].null_count or table["time"].null_count:  # filter() copies every column
            table = table.filter(pc.and_(pc.is_valid(table["station"]), pc.is_valid(table["time"])))
        station = pc.cast(table["station"], pa.string()).combine_chunks().dictionary_encode()
        self.names: pa.Array = station.dictionary
        codes = station.indices.to_numpy(zero_copy_only=False)
        ttype = table["time"].type
        if not pa.types.is_timestamp(ttype):
            raise ValueError(f"column time must be a timestamp, not {ttype}")
        secs = pc.cast(pc.cast(table["time"], pa.timestamp("s", ttype.tz)), pa.int64()).to_numpy(zero_copy_only=False)
        shift = tz_offset_minutes * 60 if day else 0
        hours = np.floor_divide(secs + shift, 3600)
        del secs
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
        offsets = np.cumsum(block) - block
        self.total = int(block.sum())
        hours += (offsets + pad - hmin)[codes]  # in place: the grid position of every row
        self.pos = hours
        self.table = table
        self.columns: dict[str, pa.ChunkedArray] = {}
        self.unique = False
        # output rows: station k has rows ostart[k] ... at grid positions first[k] + step·j
        self.step = step = 24 if day else 1
        self.n_out = n_out = length // step
        self.first = offsets + pad
        self.ostart = np.cumsum(n_out) - n_out
        self.offsets = offsets
        self.out_station = np.repeat(np.arange(n_st, dtype=np.int32), n_out)
        secs = np.arange(len(self.out_station), dtype=np.int64)
        secs *= step * 3600
        secs += np.repeat(hmin * 3600 - shift - self.ostart * (step * 3600), n_out)
        self.out_secs = secs  # (hmin + step·j)·3600 - shift

    def load(self) -> None:
        """The pollutant columns as float64, rows sorted by grid position (stably: repeated station-hours keep
        their order, so their sums are the same)."""
        cols = {p: pc.cast(self.table[p], pa.float64()) for p in POLLUTANTS if p in self.table.column_names}
        pos = self.pos
        if not np.all(pos[1:] >= pos[:-1]):
            order = np.argsort(pos, kind="stable")
            pos = pos[order]
            cols = dict(zip(cols, pa.table(cols).take(order).columns, strict=True))
        self.pos = pos
        self.columns = cols
        self.unique = bool(np.all(pos[1:] > pos[:-1]))  # no station-hour repeats: a scatter, not a mean

    def rows_before(self, g: int) -> int:
        """The number of output rows at grid positions < g."""
        if g >= self.total:
            return len(self.out_station)
        k = int(np.searchsorted(self.offsets, g, side="right")) - 1
        ahead = -((int(self.first[k]) - g) // self.step)  # ceil((g - first) / step)
        return int(self.ostart[k]) + min(max(ahead, 0), int(self.n_out[k]))

    def rows(self, r0: int, r1: int, b: int) -> np.ndarray | slice:
        """Indices into a chunk starting at grid position b (whole days) of its output rows r0 ... r1 - 1."""
        st = self.out_station[r0:r1]
        if st[0] == st[-1]:
            k = int(st[0])
            j0 = (int(self.first[k]) - b) // self.step + (r0 - int(self.ostart[k]))
            return slice(j0, j0 + r1 - r0)
        ks = slice(int(st[0]), int(st[-1]) + 1)  # the stations of these rows
        base = (self.first[ks] - b) // self.step - self.ostart[ks]  # row r of station k: base[k] + r
        return base[st - ks.start] + np.arange(r0, r1)

    def values(self, b: int, e: int) -> dict[str, np.ndarray]:
        """Every column on grid positions b ... e - 1: the mean of the valid values of each station-hour."""
        i0, i1 = (int(i) for i in np.searchsorted(self.pos, [b, e]))
        local = self.pos[i0:i1] - b
        at: np.ndarray | slice = local
        if self.unique and len(local) and local[-1] - local[0] == len(local) - 1:  # no gaps: a slice
            at = slice(int(local[0]), int(local[-1]) + 1)
        out = {}
        for p, col in self.columns.items():
            vals = col.slice(i0, i1 - i0).to_numpy(zero_copy_only=False)
            vals = np.where(np.isfinite(vals) & (vals >= 0), vals, NAN)  # negatives / NaN / null → missing
            if self.unique:  # the mean of one value: 0.0 + v (so -0.0 → 0.0, as the bincount sum), / 1
                d = np.full(e - b, NAN)
                d[at] = vals + 0.0
            else:  # bincount sums each station-hour's values in row order
                valid = ~np.isnan(vals)
                s = np.bincount(local, weights=np.where(valid, vals, 0.0), minlength=e - b)
                k = np.bincount(local, weights=valid.astype(np.float64), minlength=e - b)
                with np.errstate(invalid="ignore", divide="ignore"):
                    d = np.where(k > 0, s / k, NAN)
            out[p] = d
        return out


class _Columns:
    """The output columns as NumPy arrays (with null masks), filled chunk by chunk."""

    def __init__(self, n: int) -> None:
        self.nowcast = {p: np.full(n, NAN) for p in ("pm25", "pm10")}
        self.sub = {p: np.zeros(n, np.int32) for p in POLLUTANTS}
        self.sub_null = {p: np.ones(n, np.bool_) for p in POLLUTANTS}
        self.aqi = np.zeros(n, np.int32)
        self.none = np.ones(n, np.bool_)
        self.category = np.zeros(n, np.int8)
        self.dominant = np.zeros(n, np.int8)
        self.missing = np.zeros(n, np.int8)  # bit k: POLLUTANTS[k] measured without a sub-index

    def fill(self, standard: str, subs: dict, conc: dict, measured: dict, rows: np.ndarray | slice, out: slice) -> None:
        """Rows ``out`` from the chunk's ``rows``: the AQI is the largest sub-index, as indices.combine()."""
        cols = {p: subs[p][rows] for p in POLLUTANTS if p in subs}
        m = out.stop - out.start
        lacking = {p: measured[p][rows] & np.isnan(cols[p]) for p in cols if p in measured}
        bits = np.zeros(m, np.int8)
        for k, p in enumerate(POLLUTANTS):
            if p in lacking:
                bits |= lacking[p].astype(np.int8) << k
        self.missing[out] = bits
        aqi = np.full(m, -1.0)
        dom = np.zeros(m, np.int8)
        for k, p in enumerate(POLLUTANTS):  # strict > keeps the first pollutant on ties
            if p not in cols:
                continue  # absent column: stays null
            x = cols[p]
            better = x > aqi
            np.copyto(aqi, x, where=better)
            dom[better] = k
            self.sub_null[p][out] = np.isnan(x)
            np.copyto(self.sub[p][out], _to_int(x), casting="unsafe")
        aqi[aqi < 0] = NAN
        if standard != "vn":  # a particulate measured without its sub-index: unknown, not "good" (combine())
            for p in ("pm25", "pm10"):
                if p in lacking:
                    aqi[lacking[p]] = NAN
        if standard == "vn":
            no_pm = np.ones(m, np.bool_)
            for p in ("pm25", "pm10"):
                if p in cols:
                    no_pm &= np.isnan(cols[p])
            aqi[no_pm] = NAN
        none = np.isnan(aqi)
        cat = np.zeros(m, np.int8)
        for upper in CATEGORY_UPPER[standard]:  # the number of upper bounds below the index (NaN: 0)
            cat += aqi > upper
        self.none[out] = none
        np.copyto(self.aqi[out], _to_int(aqi), casting="unsafe")
        self.category[out] = cat
        self.dominant[out] = dom
        for p in ("pm25", "pm10"):
            if p in conc:
                self.nowcast[p][out] = conc[p][rows]


def _to_int(x: np.ndarray) -> np.ndarray:
    """Clipped to int32's range, NaN → 0 (fmax drops NaN); the values are whole numbers already."""
    return np.fmin(np.fmax(x, 0.0), _INT32_MAX)


def _array(type_: pa.DataType, values: np.ndarray, null: np.ndarray) -> pa.Array:
    """Zero-copy Arrow array of ``values`` (null where ``null``)."""
    k = int(np.count_nonzero(null))
    validity = pa.py_buffer(np.packbits(~null, bitorder="little")) if k else None
    return pa.Array.from_buffers(type_, len(values), [validity, pa.py_buffer(values)], null_count=k)


def _run(standard: str, grid: _Grid, subs_of: Callable[[str, dict[str, np.ndarray]], tuple[dict, dict]],
         tz: str) -> pa.Table:  # fmt: skip
    """``subs_of`` chunk by chunk, then the Arrow table."""
    if standard not in STANDARDS:
        raise ValueError(f"unknown standard {standard!r} (one of {', '.join(STANDARDS)})")
    grid.load()
    units = {p: unit_code(standard, p) for p in grid.columns}
    cols = _Columns(len(grid.out_station))
    r0 = 0
    for s in range(0, grid.total, _CHUNK):
        e = min(s + _CHUNK, grid.total)
        r1 = grid.rows_before(e)
        if r0 == r1:
            continue
        b = max(s - _HALO, 0)  # whole days, like s
        dense = {p: from_ugm3(p, a, units[p]) for p, a in grid.values(b, e).items()}
        subs, conc = subs_of(standard, dense)
        if grid.day:  # measured: a value in the hour, or in any hour of the day
            measured = {p: (~np.isnan(a.reshape(-1, 24))).any(axis=1) for p, a in dense.items()}
        else:
            measured = {p: ~np.isnan(a) for p, a in dense.items()}
        cols.fill(standard, subs, conc, measured, grid.rows(r0, r1, b), slice(r0, r1))
        r0 = r1
    keys = pa.array([c.key for c in CATEGORIES[standard]])
    nowcast = {p: _array(pa.float64(), x, np.isnan(x)) for p, x in cols.nowcast.items()}
    out = {
        "station": pc.take(grid.names, pa.array(grid.out_station)),
        "time": pa.array(grid.out_secs, type=pa.timestamp("s", tz)),
        "nowcast_pm25": nowcast["pm25"],
        "nowcast_pm10": nowcast["pm10"],
        "aqi": _array(pa.int32(), cols.aqi, cols.none),
        "category": pc.take(keys, pa.array(cols.category, mask=cols.none)),
        "dominant": pc.take(pa.array(list(POLLUTANTS)), pa.array(cols.dominant, mask=cols.none)),
        **{f"aqi_{p}": _array(pa.int32(), cols.sub[p], cols.sub_null[p]) for p in POLLUTANTS},
        "missing": pc.take(_MISSING_TEXT, pa.array(cols.missing.astype(np.int32))),
    }
    return pa.table(out)


# Bit mask → "pm25,o3" (null for 0), one entry per combination of the six pollutants.
_MISSING_TEXT = pa.array(
    [",".join(p for k, p in enumerate(POLLUTANTS) if mask >> k & 1) or None for mask in range(1 << len(POLLUTANTS))],
    pa.string(),
)


def _tz_name(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def hourly_batch(table: pa.Table, standard: str) -> pa.Table:
    """One row per station-hour (UTC timestamps) with OUTPUT_COLUMNS; inputs in µg/m³."""
    grid = _Grid(table, pad=23, day=False, tz_offset_minutes=0)
    return _run(standard, grid, _hourly_subs, "UTC")


def daily_batch(table: pa.Table, standard: str, tz_offset_minutes: int = 420) -> pa.Table:
    """One row per station and local day (``time`` = local midnight); nowcast_* hold the 24-h PM means."""
    grid = _Grid(table, pad=24, day=True, tz_offset_minutes=tz_offset_minutes)
    return _run(standard, grid, _daily_subs, _tz_name(tz_offset_minutes))
