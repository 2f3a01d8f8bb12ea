"""NowCast and US AQI (2012 table) against the US Embassy Hanoi StateAir files (2016-2017).

Two modes, and what each reproduces of these files (17,028 hours with a published NowCast and AQI):

- ``us2012`` (the default rule, as the EPA's Technical Assistance Document says and AirNow's files do from
  mid-2018): the PM NowCast truncated to 0.1 µg/m³ before the lookup: 15,450 exact (90.7 %). These files were
  computed otherwise: the same 91 % that rounding gave on the newer, truncating files (issue 13).
- ``us2012-stateair`` (a historical mode, never a default): the NowCast rounded half up, fitted on these files:
  16,414 exact (96.4 %), the figures below.

Measured agreement (hours where the file has both a NowCast and an AQI, 17,028): NowCast within ±0.1 µg/m³ for
16,893 (99.2 %); our AQI computed end to end from the published raw hours is exact for 16,414 (96.4 %); our
2012-table AQI of the file's own NowCast is exact for 17,028 / 17,028 (100 %). So the index code is right and
every AQI disagreement is a NowCast that differs by 0.1 at a rounding boundary, where a 0.1 step moves the AQI
by 1 in the steep bands. The NowCast itself matches to the 0.1 on 84.6 % of complete 12-hour windows; ours
minus the file's is spread symmetrically over ±0.1 (mean +0.005, s.d. 0.034), which is what rounding the
NowCast of more precise raw values than the one-decimal ``Raw Conc.`` gives.

The 614 AQI disagreements by cause: 489 NowCasts 0.1 apart at a rounding boundary (e.g. 2016-01-10 01:00, ours
40.148 → 40.1 → AQI 112, the file's 40.2 → 113; 38 of them with gaps in the window), 85 NowCasts more than 0.1
apart (gaps or QC-invalid hours in the window), 38 hours where fewer than 2 of the last 3 hours are valid (no
NowCast by the rule; EPA kept its last value), 2 in the first hours of 2016 (EPA had December 2015 history).

Causes of the disagreements found:

- the file's NowCast is rounded from more precise raw data than the one-decimal ``Raw Conc.`` it publishes: ours,
  rounded half up, is 0.1 below or above at many boundaries (ceiling or truncation instead of rounding fit worse:
  15,148 / 15,450 exact AQIs), and a 0.1 step moves the AQI by 1 in the steep bands;
- EPA had history from December 2015 for the first hours of 2016, which the files do not contain;
- EPA persists the last NowCast through gaps where fewer than 2 of the 3 latest hours are valid (2016-01-01
  11:00-13:00 show 70.5 with no recent data); we return no NowCast there, as the standard says;
- QC ``Invalid`` hours are excluded (counting them fits worse: 15,113);
- the DST-start days 2016-03-13 and 2017-03-12 repeat 03:00 with two values (02:00 absent): both rows are
  ambiguous, treated as missing and left out of the comparison;
- the December MTD file has no NowCast (it carries 24-h midpoint averages): the YTD rows win the dedupe on
  ``Date (LT)``.

The issue asked for ≥ 99 % exact AQI; the published one-decimal raw data cannot give more than what is
asserted below: ≥ 99 % for the NowCast (±0.1), 100 % for the index of the file's NowCast, ≥ 96 % end to end.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections import defaultdict
from pathlib import Path

from cityhub.airquality.indices import hourly_index, nowcast, sub_index
from cityhub.airquality.tables import US2012

FILES = ("Hanoi_PM2.5_2016_YTD.csv", "Hanoi_PM2.5_2016_12_MTD.csv", "Hanoi_PM2.5_2017_YTD.csv")


def _load(folder: Path) -> tuple[dict[dt.datetime, dict], set[dt.datetime]]:
    by_time: dict[str, list[dict]] = defaultdict(list)
    for name in FILES:
        with (folder / name).open(newline="") as f:
            for row in csv.DictReader(f):
                row["_ytd"] = "YTD" in name
                by_time[row["Date (LT)"]].append(row)
    series: dict[dt.datetime, dict] = {}
    ambiguous: set[dt.datetime] = set()
    for key, rows in by_time.items():
        t = dt.datetime.strptime(key, "%Y-%m-%d %I:%M %p")
        ytd = [r for r in rows if r["_ytd"]]
        if len(ytd) > 1:  # the repeated 03:00 of a US DST-start day
            ambiguous.add(t)
            continue
        series[t] = ytd[0] if ytd else rows[0]
    return series, ambiguous


def _raw(row: dict | None) -> float | None:
    if row is None or row["QC Name"] != "Valid":
        return None
    x = float(row["Raw Conc."])
    return None if x == -999 else x


def test_stateair_nowcast_and_aqi(shared_data: Path) -> None:
    series, ambiguous = _load(shared_data / "air" / "stateair_hanoi")
    assert ambiguous == {dt.datetime(2016, 3, 13, 3), dt.datetime(2017, 3, 12, 3)}
    print(f"ambiguous DST hours (left out): {sorted(str(t) for t in ambiguous)}")
    t, end = min(series), max(series)
    history: list[float | None] = []
    total = nc_ok = aqi_ok = table_ok = tad_ok = 0
    while t <= end:
        row = series.get(t)
        history.append(_raw(row))
        if row is not None and "NowCast Conc." in row:
            file_nc, file_aqi = float(row["NowCast Conc."]), int(row["AQI"])
            if file_nc != -999 and file_aqi != -999:
                total += 1
                nc = nowcast(history[-12:])
                nc_ok += nc is not None and abs(math.floor(nc * 10 + 0.5) / 10 - file_nc) <= 0.1 + 1e-9
                aqi_ok += hourly_index("us2012-stateair", {"pm25": history[-12:]}).value == file_aqi
                tad_ok += hourly_index("us2012", {"pm25": history[-12:]}).value == file_aqi
                table_ok += sub_index(US2012["pm25"], file_nc) == file_aqi
        t += dt.timedelta(hours=1)
    print(f"NowCast ±0.1: {nc_ok}/{total} ({nc_ok / total:.2%}), disagreements {total - nc_ok}")
    print(f"AQI exact:    {aqi_ok}/{total} ({aqi_ok / total:.2%}), disagreements {total - aqi_ok}")
    print(f"AQI of the file's own NowCast (2012 table): {table_ok}/{total}")
    print(f"AQI exact with the NowCast truncated (us2012, the TAD's rule): {tad_ok}/{total} ({tad_ok / total:.2%})")
    assert total > 17_000
    assert table_ok == total  # the 2012 table, truncation and rounding reproduce every published AQI
    assert nc_ok / total >= 0.99
    assert aqi_ok / total >= 0.96
    assert 0.90 <= tad_ok / total < 0.92  # what the TAD's truncation reproduces of files computed by rounding
