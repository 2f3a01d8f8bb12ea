"""The public data files of ``shared/data`` read with DuckDB's CSV and Parquet readers, for the simulator's fit
(:mod:`cityhub.sim.fit`): DuckDB as a query engine over files, not the hub's store."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np


def _sql(query: str) -> duckdb.DuckDBPyRelation:
    rel = duckdb.sql(query)
    assert rel is not None  # a SELECT always gives a relation
    return rel


def load_stateair(data: Path) -> tuple[np.ndarray, np.ndarray]:
    """US Embassy hourly PM2.5 2016–2017: (local times as datetime64[h], µg/m³), valid rows only, sorted."""
    d = data / "air" / "stateair_hanoi"
    files = [d / "Hanoi_PM2.5_2016_YTD.csv", d / "Hanoi_PM2.5_2017_YTD.csv", d / "Hanoi_PM2.5_2016_12_MTD.csv"]
    parts = " UNION ALL ".join(
        f"""SELECT "Date (LT)" AS d, TRY_CAST("Raw Conc." AS DOUBLE) AS v, "QC Name" AS qc
            FROM read_csv('{f}', all_varchar = true)"""
        for f in files
    )
    rows = _sql(
        f"""SELECT strptime(d, '%Y-%m-%d %I:%M %p') AS t, avg(v) AS v FROM ({parts})
            WHERE qc = 'Valid' AND v >= 0 GROUP BY d HAVING year(t) BETWEEN 2016 AND 2017 ORDER BY t"""
    ).fetchnumpy()
    return rows["t"].astype("datetime64[h]"), rows["v"].astype(np.float64)


def load_openmeteo(data: Path) -> dict[str, np.ndarray]:
    """Open-Meteo (CAMS) Cầu Giấy hourly Mar 2023–Mar 2026: local time and the six pollutants + precipitation."""
    d = data / "air" / "openmeteo_hanoi"
    files = [
        d / f for f in ("TRAIN-mar-2023-dec-2024.csv", "VALID-jan-2025-jul-2025.csv", "TEST-aug-2025-mar-2026.csv")
    ]
    listing = ", ".join(f"'{f}'" for f in files)
    out = _sql(
        f"""SELECT "Local Time" AS t, any_value(PM25) AS pm25, any_value(PM10) AS pm10, any_value(O3) AS o3,
                   any_value(NO2) AS no2, any_value(SO2) AS so2, any_value(CO) AS co,
                   any_value(Precipitation) AS rain
            FROM read_csv([{listing}], union_by_name = true) GROUP BY 1 ORDER BY 1"""
    ).fetchnumpy()
    res = {k: np.asarray(v, dtype=np.float64) for k, v in out.items() if k != "t"}
    res["t"] = out["t"].astype("datetime64[h]")
    return res


def load_aqiin_pm25(data: Path) -> tuple[list[str], np.ndarray]:
    """aqiin.net Hanoi stations, May 2026: station names and an hourly PM2.5 matrix (stations × hours, NaN gaps);
    stations with at least 300 hours."""
    d = data / "air" / "aqiin_vietnam"
    rows = _sql(
        f"""SELECT m.station_name, date_trunc('hour', m.timestamp_utc) AS h, avg(m.value) AS v
            FROM '{d / "measurements_2026-05.parquet"}' m JOIN read_csv('{d / "stations.csv"}') s USING (station_name)
            WHERE s.province = 'TP.Hà Nội' AND m.parameter = 'pm25' GROUP BY ALL"""
    ).fetchall()
    names = sorted({r[0] for r in rows})
    hours = sorted({r[1] for r in rows})
    si = {s: i for i, s in enumerate(names)}
    hi = {h: i for i, h in enumerate(hours)}
    x = np.full((len(names), len(hours)), np.nan)
    for s, h, v in rows:
        x[si[s], hi[h]] = v
    keep = (~np.isnan(x)).sum(axis=1) >= 300
    return [n for n, k in zip(names, keep, strict=True) if k], x[keep]
