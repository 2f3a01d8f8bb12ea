"""Benchmark: hourly VN_AQI with NowCast for 100 stations × 5 years (4.38 M station-hours, six pollutants), and
the US index against the ``python-aqi`` package on the same PM2.5 values.

Synthetic but realistic: each station replays the real US Embassy Hanoi PM2.5 series (StateAir 2016-2017) and
the Open-Meteo Cầu Giấy gases from a random offset, scaled by a per-station factor and hourly lognormal noise,
with 3 % of hours missing; lognormal series with a diurnal cycle stand in when ../shared/data is absent.

    .venv/bin/python -m bench.aqi
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench._util import ensure_importable, log

ensure_importable()

from cityhub.airquality import hourly_batch  # noqa: E402
from cityhub.airquality.batch import sub_index_array  # noqa: E402
from cityhub.airquality.tables import POLLUTANTS, US2012  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "air"
STATIONS, HOURS = 100, 5 * 8760
SAMPLE = 100_000
GAS_COLUMNS = {"o3": "O3", "no2": "NO2", "so2": "SO2", "co": "CO", "pm10": "PM10"}


def _sources(rng: np.random.Generator) -> dict[str, np.ndarray]:
    src: dict[str, np.ndarray] = {}
    stateair = DATA / "stateair_hanoi"
    if stateair.is_dir():
        vals = []
        for name in ("Hanoi_PM2.5_2016_YTD.csv", "Hanoi_PM2.5_2017_YTD.csv"):
            with (stateair / name).open(newline="") as f:
                vals += [float(r["Raw Conc."]) for r in csv.DictReader(f)]
        a = np.array(vals)
        src["pm25"] = np.where(a < 0, np.nan, a)
    om = DATA / "openmeteo_hanoi" / "TRAIN-mar-2023-dec-2024.csv"
    if om.exists():
        with om.open(newline="") as f:
            rows = list(csv.DictReader(f))
        for p, col in GAS_COLUMNS.items():
            src[p] = np.array([float(r[col]) if r[col] else np.nan for r in rows])
    hours = np.arange(17_520)
    diurnal = 1 + 0.4 * np.sin(2 * np.pi * (hours % 24 - 8) / 24)
    medians = {"pm25": 40, "pm10": 60, "o3": 50, "no2": 40, "so2": 20, "co": 900}
    for p in POLLUTANTS:
        if p not in src:  # no real data here: lognormal with a diurnal cycle
            src[p] = medians[p] * diurnal * rng.lognormal(0, 0.6, len(hours))
    return src


def make_table(rng: np.random.Generator) -> pa.Table:
    src = _sources(rng)
    n = STATIONS * HOURS
    base = 1_577_836_800  # 2020-01-01T00:00Z
    cols: dict[str, object] = {
        "station": pa.array(np.repeat([f"st{i:03d}" for i in range(STATIONS)], HOURS)),
        "time": pa.array(np.tile(base + np.arange(HOURS, dtype=np.int64) * 3600, STATIONS), pa.timestamp("s", "UTC")),
    }
    for p in POLLUTANTS:
        s = src[p]
        out = np.empty(n)
        for i in range(STATIONS):
            idx = (rng.integers(len(s)) + np.arange(HOURS)) % len(s)
            out[i * HOURS : (i + 1) * HOURS] = s[idx] * rng.uniform(0.7, 1.3) * rng.lognormal(0, 0.1, HOURS)
        out[rng.random(n) < 0.03] = np.nan
        cols[p] = pa.array(out, mask=np.isnan(out))
    return pa.table(cols)


def main() -> None:
    rng = np.random.default_rng(2026)
    t0 = time.perf_counter()
    table = make_table(rng)
    log(f"synthetic data: {table.num_rows:,} station-hours × {len(POLLUTANTS)} pollutants "
        f"({time.perf_counter() - t0:.1f} s to build)")  # fmt: skip

    t0 = time.perf_counter()
    out = hourly_batch(table, "vn")
    dt_vn = time.perf_counter() - t0
    log(f"hourly VN_AQI with NowCast: {dt_vn:.2f} s for {out.num_rows:,} station-hours "
        f"= {out.num_rows / dt_vn:,.0f} rows/s (target < 5 s); {out['aqi'].null_count:,} without an index")  # fmt: skip

    pm = table["pm25"].to_numpy()
    pm = pm[~np.isnan(pm)]
    t0 = time.perf_counter()
    ours_all = sub_index_array(US2012["pm25"], pm)
    dt_ours = time.perf_counter() - t0
    log(f"our US AQI (2012 table) on {len(pm):,} PM2.5 values: {dt_ours:.3f} s = {len(pm) / dt_ours:,.0f} values/s")

    try:
        import aqi as python_aqi
    except ImportError:
        log("python-aqi is not installed (pip install python-aqi): comparison skipped")
        return
    sample = pm[rng.choice(len(pm), SAMPLE, replace=False)]
    sample = sample[sample <= 500.4]  # python-aqi's table ends at 500.4 µg/m³
    texts = [f"{np.floor(x * 10 + 1e-9) / 10:.1f}" for x in sample]
    t0 = time.perf_counter()
    theirs = [int(python_aqi.to_iaqi(python_aqi.POLLUTANT_PM25, s, algo=python_aqi.ALGO_EPA)) for s in texts]
    dt_theirs = time.perf_counter() - t0
    extrapolated = dt_theirs / len(texts) * len(pm)
    ours = sub_index_array(US2012["pm25"], sample)
    agree = int(np.sum(ours.astype(np.int64) == np.array(theirs)))
    log(f"python-aqi on a sample of {len(texts):,} values: {dt_theirs:.2f} s = {len(texts) / dt_theirs:,.0f} values/s;"
        f" extrapolated to {len(pm):,} values: {extrapolated:.0f} s, {extrapolated / dt_ours:,.0f}× our vectorised "
        f"US index ({extrapolated / dt_vn:,.0f}× our whole VN_AQI run)")  # fmt: skip
    log(f"agreement with python-aqi (EPA 2012 table) on the sample: {agree:,}/{len(texts):,} "
        f"({agree / len(texts):.2%})")  # fmt: skip
    log("  (the differences are exact halves: python-aqi rounds them half to even, EPA and we round half up)")
    del ours_all


if __name__ == "__main__":
    main()
