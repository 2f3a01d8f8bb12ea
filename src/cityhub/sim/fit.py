"""Recompute the simulator's fitted parameters from the real series and print them.

Run ``python -m cityhub.sim.fit`` (or ``--data PATH``); it reads ``../shared/data`` relative to the project root
and prints every parameter that ``cityhub.sim.params`` holds, so a reviewer can check them. Only NumPy, DuckDB
and the standard library are used (the Red River workbook is read with ``zipfile``), so fitting needs nothing
beyond the hub's own dependencies. The loaders are also used by the calibration tests.

Methods, in short:

* PM2.5 (US Embassy, StateAir 2016–2017, hourly, local time): ``Raw Conc.`` with ``QC Name`` Valid and ≥ 0,
  deduplicated on ``Date (LT)`` (the YTD and MTD exports overlap; the exports also repeat 03:00 on the US
  daylight-saving day, averaged here). Monthly means of the hourly values; the diurnal profile is each hour's
  mean over its month's mean, averaged over the 12 months. The log anomaly (log value minus its month's and
  hour's log means) has a standard deviation per month, and its autocorrelation at lags 1 h to 14 days is fitted
  by a two-timescale model ``w·φ_slow^lag + (1-w)·φ_fast^lag`` (least squares on a grid).
* Between stations (aqiin.net, 48 Hanoi stations, two weeks of May 2026, hourly): the median pairwise
  correlation of the hourly log PM2.5 anomalies (hour-of-day mean removed per station) gives the share of the
  variance that is local to a station (``local_share``: corrected for what a two-week estimate misses of the
  slow shared part); each simulated station's factor is its two-week mean over the network mean.
* Other pollutants (Open-Meteo/CAMS, Cầu Giấy, hourly, Mar 2023–Mar 2026, local time): monthly ratios to PM2.5
  (PM10, NO2, SO2, CO; O3 as an absolute monthly mean since it is photochemical, not co-emitted), diurnal
  profiles as for PM2.5, and a regression of each log anomaly on the PM2.5 log anomaly (slope β, residual
  standard deviation and hourly AR(1) coefficient).
* Rain (same Open-Meteo file): per month, the probability that an hour is wet (≥ 0.1 mm) after a dry and after a
  wet hour, and the mean intensity of wet hours (mm/h); it drives the To Lịch level.
* Red River (2015, 6-hourly at 01, 07, 13, 19 local time; Sơn Tây 74162 and Hà Nội 74165, cm): monthly means,
  monthly standard deviations of the anomaly, an hourly AR(1) coefficient fitted to the anomaly's
  autocorrelation at lags 6 h to 5 days, the correlation between the two gauges' anomalies, and Hà Nội's mean
  daily cycle (a 24-hour harmonic through the four daily hours; Hòa Bình's hydropower releases).
* Traffic (METR-LA, 207 detectors, 1–7 March 2012, 5-minute speeds): speed over each detector's 95th percentile,
  averaged over detectors per 5 minutes; weekdays are fitted with ``base − A_am·g(μ_am, s_am) − A_pm·g(μ_pm,
  s_pm)`` (Gaussian dips, hours), Saturday and Sunday with one dip each. The spread of the detectors' own rush
  depth and the AR(1) of a detector's deviation from the network mean give the per-detector variation.
"""

from __future__ import annotations

import argparse
import os
import re
import zipfile
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np

from cityhub.store.duckdb import datafiles

# ../shared/data next to the project root (a source checkout), or CITYHUB_SHARED_DATA.
DEFAULT_DATA = Path(
    os.environ.get("CITYHUB_SHARED_DATA") or Path(__file__).resolve().parents[3].parent / "shared" / "data"
)
MONTHS = np.arange(1, 13)


# -- loaders -------------------------------------------------------------------------------------------------
def load_stateair(data: Path = DEFAULT_DATA) -> tuple[np.ndarray, np.ndarray]:
    """US Embassy hourly PM2.5 2016–2017: (local times as datetime64[h], µg/m³), valid rows only, sorted."""
    return datafiles.load_stateair(data)


def load_openmeteo(data: Path = DEFAULT_DATA) -> dict[str, np.ndarray]:
    """Open-Meteo (CAMS) Cầu Giấy hourly Mar 2023–Mar 2026: local time and the six pollutants + precipitation."""
    return datafiles.load_openmeteo(data)


def load_aqiin_pm25(data: Path = DEFAULT_DATA) -> tuple[list[str], np.ndarray]:
    """aqiin.net Hanoi stations, May 2026: station names and an hourly PM2.5 matrix (stations × hours, NaN gaps)."""
    return datafiles.load_aqiin_pm25(data)


def read_xlsx(path: Path) -> list[dict[str, Any]]:
    """The first sheet of an .xlsx workbook as rows of {column letter: value} (numbers as float, shared
    strings as str). Enough for plain data sheets; no openpyxl needed."""
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        strings = []
        if "xl/sharedStrings.xml" in names:
            for si in ET.fromstring(z.read("xl/sharedStrings.xml")).findall("m:si", ns):
                strings.append("".join(t.text or "" for t in si.iter(f"{{{ns['m']}}}t")))
        sheet = ET.fromstring(z.read("xl/worksheets/sheet1.xml"))
    rows: list[dict[str, Any]] = []
    for row in sheet.iterfind("m:sheetData/m:row", ns):
        out: dict[str, Any] = {}
        for c in row.iterfind("m:c", ns):
            v = c.find("m:v", ns)
            col = re.match(r"[A-Z]+", c.get("r", "")).group(0)  # type: ignore[union-attr]
            if v is None or v.text is None:
                continue
            kind = c.get("t")
            if kind == "s":
                out[col] = strings[int(v.text)]
            elif kind in (None, "n"):
                out[col] = float(v.text)
            else:
                out[col] = v.text
        rows.append(out)
    return rows


def load_red_river(data: Path = DEFAULT_DATA) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Red River 2015 six-hourly levels (cm): local times (datetime64[m]) and {gauge code: levels}, for Sơn Tây
    (74162) and Hà Nội (74165); NaN where the sheet has none."""
    rows = read_xlsx(data / "water" / "red_river_levels_2015_6h.xlsx")
    cols = {str(int(v)): k for k, v in rows[0].items() if isinstance(v, float)}  # row 0: station codes
    body = [r for r in rows[2:] if isinstance(r.get("A"), float)]
    serial = np.array([r["A"] for r in body])  # Excel serial days since 1899-12-30
    t = np.datetime64("1899-12-30T00:00") + np.round(serial * 1440).astype(np.int64).astype("timedelta64[m]")
    out = {}
    for code in ("74162", "74165"):
        out[code] = np.array([r.get(cols[code]) if isinstance(r.get(cols[code]), float) else np.nan for r in body])
    return t, out


def load_metr_la(data: Path = DEFAULT_DATA) -> np.ndarray:
    """METR-LA speeds (mph), 2,016 five-minute rows from Thursday 1 March 2012 00:00 × 207 detectors."""
    return np.loadtxt(data / "traffic" / "metr_la" / "metr_la_1week_speed.csv", delimiter=",", skiprows=1)


# -- helpers -------------------------------------------------------------------------------------------------
def month_of(t: np.ndarray) -> np.ndarray:
    return t.astype("datetime64[M]").astype(np.int64) % 12 + 1


def hour_of(t: np.ndarray) -> np.ndarray:
    return (t.astype("datetime64[h]") - t.astype("datetime64[D]")).astype(np.int64)


def monthly_means(t: np.ndarray, v: np.ndarray) -> np.ndarray:
    m = month_of(t)
    return np.array([np.nanmean(v[m == k]) for k in MONTHS])


def diurnal_ratio(t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Each hour's mean over its month's mean, averaged over months (so seasons weigh alike); mean 1."""
    m, h = month_of(t), hour_of(t)
    r = np.array([[np.nanmean(v[(m == k) & (h == j)]) / np.nanmean(v[m == k]) for j in range(24)] for k in MONTHS])
    prof = r.mean(axis=0)
    return prof / prof.mean()


def log_anomaly(t: np.ndarray, v: np.ndarray, floor: float = 1.0) -> np.ndarray:
    """log value minus its month's and its hour's mean log."""
    m, h = month_of(t), hour_of(t)
    lv = np.log(np.maximum(v, floor))
    x = lv - np.array([np.nanmean(lv[m == k]) for k in MONTHS])[m - 1]
    return x - np.array([np.nanmean(x[h == j]) for j in range(24)])[h]


def dense(t: np.ndarray, x: np.ndarray, step: np.timedelta64) -> np.ndarray:
    """Values on a regular grid from t[0], NaN where missing."""
    idx = ((t - t[0]) // step).astype(np.int64)
    g = np.full(idx[-1] + 1, np.nan)
    g[idx] = x
    return g


def acf(g: np.ndarray, lag: int) -> float:
    a, b = g[:-lag], g[lag:]
    ok = ~np.isnan(a) & ~np.isnan(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


# -- fits ----------------------------------------------------------------------------------------------------
PM25_LAGS_H = (1, 2, 3, 6, 12, 24, 48, 72, 96, 120, 168, 240, 336)


def fit_two_timescales(lags: np.ndarray, ac: np.ndarray) -> tuple[float, float, float]:
    """(w, φ_slow, φ_fast) minimising the squared error of w·φ_slow^lag + (1-w)·φ_fast^lag on a grid."""
    w = np.linspace(0.30, 0.99, 70)[:, None, None, None]
    ps = np.linspace(0.950, 0.999, 50)[None, :, None, None]
    pf = np.linspace(0.30, 0.95, 66)[None, None, :, None]
    lag = lags[None, None, None, :]
    err = ((w * ps**lag + (1 - w) * pf**lag - ac) ** 2).sum(axis=-1)
    i, j, k = np.unravel_index(np.argmin(err), err.shape)
    return float(w[i, 0, 0, 0]), float(ps[0, j, 0, 0]), float(pf[0, 0, k, 0])


def fit_pm25(t: np.ndarray, v: np.ndarray) -> dict[str, Any]:
    x = log_anomaly(t, v)
    m = month_of(t)
    g = dense(t, x, np.timedelta64(1, "h"))
    lags = np.array(PM25_LAGS_H, dtype=np.float64)
    ac = np.array([acf(g, int(k)) for k in PM25_LAGS_H])
    w, ps, pf = fit_two_timescales(lags, ac)
    return {
        "PM25_MONTHLY_MEAN": monthly_means(t, v).round(1),
        "PM25_DIURNAL": diurnal_ratio(t, v).round(3),
        "PM25_LOG_SD": np.array([np.nanstd(x[m == k]) for k in MONTHS]).round(3),
        "PM25_SLOW_SHARE": round(w, 3),
        "PM25_PHI_SLOW": round(ps, 4),
        "PM25_PHI_FAST": round(pf, 4),
        "_acf": dict(zip(PM25_LAGS_H, ac.round(3), strict=True)),
    }


def station_log_anomalies(x: np.ndarray) -> np.ndarray:
    """Hourly log anomalies per station: log value minus the station's mean log at that hour of day."""
    lx = np.log(np.maximum(x, 1.0))
    hod = np.arange(x.shape[1]) % 24
    out = lx.copy()
    for j in range(24):
        out[:, hod == j] -= np.nanmean(lx[:, hod == j], axis=1, keepdims=True)
    return out


def pairwise_median_corr(x: np.ndarray) -> float:
    ok = ~np.isnan(x).any(axis=0)
    c = np.corrcoef(x[:, ok])
    return float(np.median(c[np.triu_indices(len(x), 1)]))


def fit_stations(names: list[str], x: np.ndarray, wanted: dict[str, str]) -> dict[str, Any]:
    """Median pairwise correlation of hourly log anomalies, and each wanted station's mean over the network mean.
    ``wanted`` maps simulator station keys to aqiin station names."""
    rho = pairwise_median_corr(station_log_anomalies(x))
    mean = np.nanmean(x, axis=1)
    factors = {k: round(float(mean[names.index(n)] / mean.mean()), 3) for k, n in wanted.items() if n in names}
    return {"PM25_STATION_CORR": round(rho, 3), "STATION_FACTORS": factors}


def local_share(rho: float, w: float, phi_slow: float, phi_fast: float, days: int = 14) -> float:
    """The share ε of a station's log-anomaly variance that is its own, such that the estimator above (removing
    each station's hour-of-day means over ``days`` days) gives ``rho`` for the two-timescale model: removing those
    means also removes a part of the shared slow variance, so ε < 1 − rho. For an AR(1) with coefficient φ per
    hour, the variance of a mean over the same hour of ``days`` days is (1 + 2 Σₖ (1 − k/D)·φ^(24k)) / D."""

    def kept(phi: float) -> float:
        k = np.arange(1, days)
        return 1 - (1 + 2 * np.sum((1 - k / days) * phi ** (24 * k))) / days

    a_slow, a_fast = kept(phi_slow), kept(phi_fast)
    return float((1 - rho) * (w * a_slow + (1 - w) * a_fast) / a_fast)


def fit_gases(om: dict[str, np.ndarray]) -> dict[str, Any]:
    t = om["t"]
    pm = om["pm25"]
    xp = log_anomaly(t, pm)
    out: dict[str, Any] = {"level": {}, "diurnal": {}, "beta": {}, "sd": {}, "phi": {}}
    for p in ("pm10", "o3", "no2", "so2", "co"):
        v = om[p]
        mm = monthly_means(t, v)
        out["level"][p] = (mm if p == "o3" else mm / monthly_means(t, pm)).round(3 if p != "co" else 2)
        out["diurnal"][p] = diurnal_ratio(t, v).round(3)
        xg = log_anomaly(t, v)
        ok = ~np.isnan(xg) & ~np.isnan(xp)
        beta = float(np.dot(xp[ok], xg[ok]) / np.dot(xp[ok], xp[ok]))
        r = xg - beta * xp
        out["beta"][p] = round(beta, 3)
        out["sd"][p] = round(float(np.nanstd(r)), 3)
        out["phi"][p] = round(acf(dense(t, r, np.timedelta64(1, "h")), 1), 3)
    return out


def fit_rain(om: dict[str, np.ndarray], wet_mm: float = 0.1) -> dict[str, Any]:
    t, r = om["t"], om["rain"]
    wet = r >= wet_mm
    m = month_of(t)[1:]
    prev, cur = wet[:-1], wet[1:]
    p01 = [float(cur[(m == k) & ~prev].mean()) for k in MONTHS]
    p11 = [float(cur[(m == k) & prev].mean()) for k in MONTHS]
    mean_wet = [float(r[1:][(m == k) & cur].mean()) for k in MONTHS]
    return {
        "RAIN_P_WET_AFTER_DRY": np.round(p01, 3),
        "RAIN_P_WET_AFTER_WET": np.round(p11, 3),
        "RAIN_WET_MEAN_MM": np.round(mean_wet, 2),
    }


def fit_river(t: np.ndarray, levels: dict[str, np.ndarray]) -> dict[str, Any]:
    m = month_of(t)
    out: dict[str, Any] = {"mean": {}, "sd": {}}
    resid = {}
    for code, v in levels.items():
        mm = monthly_means(t, v)
        r = v - mm[m - 1]
        resid[code] = r
        out["mean"][code] = mm.round(1)
        out["sd"][code] = np.array([np.nanstd(r[m == k]) for k in MONTHS]).round(1)
    # One hourly φ for both gauges: least squares of φ^lag on the mean autocorrelation at 6 h … 5 days.
    lags = np.array([1, 2, 4, 8, 12, 16, 20])
    ac = np.mean([[acf(r, int(k)) for k in lags] for r in resid.values()], axis=0)
    phis = np.linspace(0.95, 0.9999, 2000)
    phi = float(phis[np.argmin(((phis[:, None] ** (6 * lags[None, :]) - ac) ** 2).sum(axis=1))])
    a, b = resid["74162"], resid["74165"]
    ok = ~np.isnan(a) & ~np.isnan(b)
    # Hà Nội's daily cycle: fit c·cos(2π(h − h0)/24) through the mean anomaly at the four observing hours.
    h = hour_of(t)
    hours = np.array([1, 7, 13, 19])
    mean_at = np.array([np.nanmean(b[h == k]) for k in hours])
    ang = 2 * np.pi * hours / 24
    design = np.column_stack([np.cos(ang), np.sin(ang)])
    (ca, sa), *_ = np.linalg.lstsq(design, mean_at - mean_at.mean(), rcond=None)
    out.update(
        {
            "RIVER_PHI_HOURLY": round(phi, 5),
            "RIVER_CORR": round(float(np.corrcoef(a[ok], b[ok])[0, 1]), 3),
            "HANOI_DAILY_AMPLITUDE_CM": round(float(np.hypot(ca, sa)), 1),
            "HANOI_DAILY_PEAK_HOUR": round(float(np.arctan2(sa, ca) * 24 / (2 * np.pi)) % 24, 1),
            "_acf": dict(zip((6 * lags).tolist(), ac.round(3), strict=True)),
        }
    )
    return out


def _gauss(h: np.ndarray, mu: float, s: float) -> np.ndarray:
    return np.exp(-0.5 * ((h - mu) / s) ** 2)


def _fit_dips(h: np.ndarray, y: np.ndarray, n: int) -> tuple[float, list[tuple[float, float, float]]]:
    """base − Σ A·g(μ, s) (Gaussian dips, hours): coordinate descent over each dip's (μ, s) on a grid, with base and
    the depths A by linear least squares (batched normal equations)."""
    centres, widths = ([8.0, 17.5] if n == 2 else [14.0]), [1.0] * n
    mu, s = np.meshgrid(np.arange(5.0, 21.0, 1 / 12), np.arange(0.4, 5.0, 0.05), indexing="ij")
    mu, s = mu.ravel(), s.ravel()
    for _ in range(4):
        for i in range(n):
            cols = [np.ones((mu.size, h.size))]
            for k in range(n):
                cols.append(
                    -(
                        _gauss(h[None, :], mu[:, None], s[:, None])
                        if k == i
                        else _gauss(h, centres[k], widths[k])[None, :].repeat(mu.size, 0)
                    )
                )
            x = np.stack(cols, axis=2)  # candidates × slots × (1 + n)
            xtx = x.transpose(0, 2, 1) @ x + 1e-9 * np.eye(n + 1)  # a candidate equal to another dip is collinear
            coef = np.linalg.solve(xtx, (x.transpose(0, 2, 1) @ y)[..., None])[..., 0]
            err = ((np.einsum("cij,cj->ci", x, coef) - y) ** 2).sum(axis=1)
            best = int(np.argmin(err))
            centres[i], widths[i] = float(mu[best]), float(s[best])
    design = np.column_stack([np.ones_like(h)] + [-_gauss(h, centres[k], widths[k]) for k in range(n)])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(coef[0]), [(round(float(coef[k + 1]), 3), round(centres[k], 2), round(widths[k], 2)) for k in range(n)]


def fit_traffic(speeds: np.ndarray) -> dict[str, Any]:
    free = np.percentile(speeds, 95, axis=0)
    ratio = speeds / free  # 2016 × 207
    days = ratio.reshape(7, 288, -1)  # Thu, Fri, Sat, Sun, Mon, Tue, Wed
    h = np.arange(288) / 12 + 2.5 / 60  # centre of each 5-minute slot, hours
    weekday = days[[0, 1, 4, 5, 6]].mean(axis=(0, 2))
    base, dips = _fit_dips(h, weekday, 2)
    sat_base, sat = _fit_dips(h, days[2].mean(axis=1), 1)
    sun_base, sun = _fit_dips(h, days[3].mean(axis=1), 1)
    # Per detector: its rush depth (weekday 7–9 h and 16–19 h mean below its 0–5 h mean) relative to the network's,
    # and its day-to-day deviation from its own mean weekday (standard deviation, lag-one autocorrelation).
    rush = ((h >= 7) & (h < 9)) | ((h >= 16) & (h < 19))
    weekdays = days[[0, 1, 4, 5, 6]]  # 5 × 288 × 207
    own = weekdays.mean(axis=0)
    depth = own[h < 5].mean(axis=0) - own[rush].mean(axis=0)
    dev = weekdays - own
    phi = np.mean(
        [np.corrcoef(d[:-1, j], d[1:, j])[0, 1] for d in dev for j in range(dev.shape[2]) if d[:, j].std() > 0]
    )
    return {
        "SPEED_BASE": round(base, 3),
        "SPEED_DIPS_WEEKDAY": dips,
        "SPEED_DIP_SATURDAY": (round(sat_base, 3), sat[0]),
        "SPEED_DIP_SUNDAY": (round(sun_base, 3), sun[0]),
        "DETECTOR_DEPTH_DECILES": np.percentile(depth / depth.mean(), np.arange(10, 100, 10)).round(2),
        "SPEED_NOISE_SD": round(float(dev.std()), 3),
        "SPEED_NOISE_PHI": round(float(phi), 3),
    }


def fitted(data: Path = DEFAULT_DATA) -> dict[str, Any]:
    """Every fitted parameter, by its name in ``cityhub.sim.params`` (plus ``_``-prefixed diagnostics)."""
    from cityhub.sim.facts import AQIIN_NAMES

    out: dict[str, Any] = {}
    t, v = load_stateair(data)
    pm = fit_pm25(t, v)
    out.update({k: v for k, v in pm.items() if k != "_acf"})
    out["_PM25_ACF"] = pm["_acf"]
    out.update(fit_stations(*load_aqiin_pm25(data), AQIIN_NAMES))
    out["PM25_LOCAL_SHARE"] = round(
        local_share(out["PM25_STATION_CORR"], pm["PM25_SLOW_SHARE"], pm["PM25_PHI_SLOW"], pm["PM25_PHI_FAST"]), 3
    )
    om = load_openmeteo(data)
    gases = fit_gases(om)
    out["GAS_LEVEL"] = gases["level"]
    out["GAS_DIURNAL"] = {p: d for p, d in gases["diurnal"].items() if p != "pm10"}
    out["GAS_BETA"], out["GAS_SD"], out["GAS_PHI"] = gases["beta"], gases["sd"], gases["phi"]
    out.update(fit_rain(om))
    river = fit_river(*load_red_river(data))
    out["RIVER_MONTHLY_MEAN"], out["RIVER_SD"] = river.pop("mean"), river.pop("sd")
    out["_RIVER_ACF"] = river.pop("_acf")
    out.update(river)
    out.update(fit_traffic(load_metr_la(data)))
    return out


def plain(v: Any) -> Any:
    """NumPy values as plain Python (for printing as literals)."""
    if isinstance(v, np.ndarray):
        return [plain(x) for x in v.tolist()]
    if isinstance(v, dict):
        return {plain(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return type(v)(plain(x) for x in v)
    if isinstance(v, np.generic):
        return v.item()
    return v


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    args = ap.parse_args(argv)
    for name, value in fitted(args.data).items():
        print(f"{name} = {plain(value)!r}")


if __name__ == "__main__":
    main()
