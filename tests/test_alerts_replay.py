"""Real series through the built-in rules, each checked against a direct vectorised computation over the same data:
the US Embassy's 2016–2017 PM2.5 hours through Hanoi's air advisories, and the Red River's 2015 levels through the
flood alarm levels of Decision 05/2020/QĐ-TTg (2015 was a low-water year: no alarm; a drill with lower levels runs
the same machinery on the same series)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as paipc
import pytest
from fastapi.testclient import TestClient

from cityhub.airquality import hourly_batch
from cityhub.airquality.live import VN_AQI_DEFINITION
from cityhub.alerts.builtin import read_builtin
from tests.conftest import OM_MEASUREMENT, station_body
from tests.test_alerts import gauge_body
from tests.test_stateair import _load, _raw

HOUR_US = 3_600_000_000
LOCAL = dt.timedelta(hours=7)


def schmitt(x: np.ndarray, on: float, off: float, k_on: int, k_off: int) -> np.ndarray:
    """Episode starts on a dense grid (NaN = no reading): an episode opens where the last ``k_on`` slots are all
    ≥ ``on`` and ends where the last ``k_off`` slots are all < ``off`` (a missing slot breaks both runs)."""
    present = ~np.isnan(x)
    hi = present & (x >= on)
    lo = present & (x < off)

    def run(m: np.ndarray, k: int) -> np.ndarray:
        c = np.concatenate([[0], np.cumsum(m)])
        out = np.zeros(len(m), bool)
        out[k - 1 :] = (c[k:] - c[:-k]) == k
        return out

    event = np.where(run(hi, k_on), 1, np.where(run(lo, k_off), 0, -1))
    last = np.maximum.accumulate(np.where(event >= 0, np.arange(len(x)), -1))
    state = np.where(last >= 0, event[np.maximum(last, 0)], 0) == 1
    return np.flatnonzero(state & ~np.concatenate([[False], state[:-1]]))


def arrow_body(ds: int, times_us: np.ndarray, values: np.ndarray) -> bytes:
    table = pa.table(
        {
            "datastream": pa.array(np.full(len(times_us), ds), pa.int64()),
            "phenomenonTime": pa.array(times_us.astype("datetime64[us]"), pa.timestamp("us", tz="UTC")),
            "result": pa.array(values, pa.float64()),
        }
    )
    sink = pa.BufferOutputStream()
    with paipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def post_arrow(client: TestClient, body: bytes) -> dict[str, Any]:
    r = client.post("/api/v1/ingest", content=body, headers={"Content-Type": "application/vnd.apache.arrow.stream"})
    assert r.status_code == 200, r.text
    return r.json()


def local_year(iso: str) -> int:
    return (dt.datetime.fromisoformat(iso.replace("Z", "+00:00")) + LOCAL).year


def rule_alerts(client: TestClient, rule: int, subject: int) -> list[dict]:
    got = client.get("/api/v1/alerts", params={"rule": rule, "subject": subject, "limit": 10_000}).json()["value"]
    return sorted(got, key=lambda a: a["triggerTime"])


def reached(client: TestClient, rule: int, subject: int, level: int) -> list[str]:
    """Phenomenon times at which alerts of the rule reached ``level`` (opened at it or escalated to it)."""
    store = client.app.state.hub.store
    p = store.dialect.placeholder
    rows = store.query(
        f"""SELECT e.phenomenon_time FROM alert_events e JOIN alerts a ON a.id = e.alert_id
           WHERE a.rule_id = {p} AND a.subject_id = {p} AND e.kind IN ('opened', 'escalated') AND e.level = {p}
           ORDER BY 1""",  # noqa: S608
        [rule, subject, level],
    )
    return [t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") for (t,) in rows]


def iso_at(grid0_us: int, idx: np.ndarray, step_us: int = HOUR_US) -> list[str]:
    return [
        dt.datetime.fromtimestamp((grid0_us + int(i) * step_us) / 1e6, dt.UTC).isoformat().replace("+00:00", "Z")
        for i in idx
    ]


# -- US Embassy PM2.5, 2016–2017 ---------------------------------------------------------------------------------------
def _embassy_hours(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Valid hourly PM2.5 (µg/m³) at UTC hour starts (µs), the ambiguous DST hours left out."""
    series, _ = _load(folder)
    pairs = sorted((t - LOCAL, v) for t, row in series.items() if (v := _raw(row)) is not None)
    epoch = dt.datetime(1970, 1, 1)
    times = np.array([(t - epoch) // dt.timedelta(microseconds=1) for t, _ in pairs], np.int64)
    return times, np.array([v for _, v in pairs])


def _vn_aqi(times: np.ndarray, pm25: np.ndarray) -> tuple[int, np.ndarray]:
    """The direct computation's VN_AQI on a dense hourly grid (NaN where there is none): start (µs) and values."""
    out = hourly_batch(
        pa.table(
            {
                "station": pa.array(["embassy"] * len(times)),
                "time": pa.array(times.astype("datetime64[us]"), pa.timestamp("us", tz="UTC")),
                "pm25": pa.array(pm25),
            }
        ),
        "vn",
    )
    t = out.column("time").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
    aqi = out.column("aqi").cast(pa.float64()).to_numpy(zero_copy_only=False)
    assert np.all(np.diff(t) == HOUR_US)
    return int(t[0]), aqi


def _index_station(client: TestClient, name: str) -> tuple[int, int]:
    """A station whose 'VN_AQI hourly' Datastream we feed ourselves (the series computed in one go)."""
    body = station_body(name)
    body["Datastreams"].append(
        {
            "name": "VN_AQI hourly",
            "description": "hourly VN_AQI",
            "observationType": OM_MEASUREMENT,
            "unitOfMeasurement": {"name": "index", "symbol": "VN_AQI"},
            "properties": {"derived": "VN_AQI", "period": "hour"},
            "Sensor": {"name": "CityHub VN_AQI", "description": "d", "encodingType": "text/html", "metadata": "m"},
            "ObservedProperty": {"name": "VN_AQI", "definition": VN_AQI_DEFINITION, "description": "index"},
        }
    )
    thing = client.post("/v1.1/Things", json=body).json()["@iot.id"]
    ds = {d["name"]: d["@iot.id"] for d in client.get(f"/v1.1/Things({thing})/Datastreams").json()["value"]}
    return thing, ds["VN_AQI hourly"]


def test_embassy_pm25_through_the_air_advisories(client: TestClient, shared_data: Path) -> None:
    times, pm25 = _embassy_hours(shared_data / "air" / "stateair_hanoi")
    grid0, aqi = _vn_aqi(times, pm25)
    set_name, specs = read_builtin("hanoi_air")
    created = client.app.state.hub.alerts.apply_ruleset(set_name, specs, "test")["created"]
    advisory, guidance, at_once = created
    # 1. Two years of hourly VN_AQI into a station's index Datastream, in monthly bodies.
    thing, ds = _index_station(client, "US Embassy")
    have = ~np.isnan(aqi)
    t_us = grid0 + np.flatnonzero(have) * HOUR_US
    months = np.array(t_us.astype("datetime64[us]").astype("datetime64[M]"))
    for m in np.unique(months):
        sel = months == m
        assert post_arrow(client, arrow_body(ds, t_us[sel], aqi[have][sel]))["stored"] == int(sel.sum())
    assert client.app.state.hub.alerts.wait_idle(60)
    got = rule_alerts(client, advisory, thing)
    direct = schmitt(aqi, 201, 191, 2, 2)
    assert [a["triggerTime"] for a in got] == iso_at(grid0, direct)
    assert [a["since"] for a in got] == iso_at(grid0, direct - 1)
    hazardous = schmitt(aqi, 301, 291, 2, 2)
    assert reached(client, advisory, thing, 2) == iso_at(grid0, hazardous)
    per_year = {y: sum(local_year(a["triggerTime"]) == y for a in got) for y in (2016, 2017)}
    direct_year = {y: sum(local_year(t) == y for t in iso_at(grid0, direct)) for y in (2016, 2017)}
    assert per_year == direct_year
    school = rule_alerts(client, guidance, thing)
    assert [a["triggerTime"] for a in school] == iso_at(grid0, schmitt(aqi, 101, 91, 2, 2))
    for level, (on, off) in enumerate(((151, 141), (201, 191)), start=2):
        assert reached(client, guidance, thing, level) == iso_at(grid0, schmitt(aqi, on, off, 2, 2))
    years = ((grid0 + np.arange(len(aqi)) * HOUR_US + 7 * HOUR_US).astype("datetime64[us]").astype("datetime64[Y]")
             .astype(int) + 1970)  # fmt: skip
    hours_very_bad = {y: int(((aqi >= 201) & (years == y)).sum()) for y in (2016, 2017)}
    print(
        f"\nUS Embassy 2016-2017: {int(have.sum())} hours with a VN_AQI; hazardous-air advisories (VN_AQI ≥ 201 for "
        f"2 consecutive hours, cleared < 191 for 2 h): engine {per_year}, direct {direct_year}; reached Hazardous "
        f"(≥ 301): {len(hazardous)}; hours ≥ 201: {hours_very_bad}; school-guidance alerts (≥ 101): {len(school)}"
    )
    assert all(a["details"]["guidance"]["level"] == "suspend_outdoor" for a in got)
    # "Hazardous air now": VN_AQI ≥ 301 raises at once (one hour), clears under 291 for 2 hours.
    now_alerts = rule_alerts(client, at_once, thing)
    assert [a["triggerTime"] for a in now_alerts] == iso_at(grid0, schmitt(aqi, 301, 291, 1, 2))
    print(f"hazardous-air-now alerts (VN_AQI ≥ 301 in one hour): {len(now_alerts)}")


def test_embassy_month_through_the_live_vn_aqi(client: TestClient, shared_data: Path) -> None:
    """January 2017 as raw PM2.5 hours: the hub derives the VN_AQI itself and the rules judge the station."""
    times, pm25 = _embassy_hours(shared_data / "air" / "stateair_hanoi")
    lo = int((np.datetime64("2017-01-01T00:00") - np.timedelta64(7, "h")).astype("datetime64[us]").astype(np.int64))
    hi = lo + 31 * 24 * HOUR_US
    sel = (times >= lo) & (times < hi)
    grid0, aqi = _vn_aqi(times[sel], pm25[sel])
    set_name, specs = read_builtin("hanoi_air")
    advisory, guidance, _ = client.app.state.hub.alerts.apply_ruleset(set_name, specs, "test")["created"]
    r = client.post("/v1.1/Things", json=station_body("US Embassy (raw)"))
    thing = r.json()["@iot.id"]
    ds = client.get(f"/v1.1/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]
    assert post_arrow(client, arrow_body(ds, times[sel], pm25[sel]))["stored"] == int(sel.sum())
    direct = iso_at(grid0, schmitt(aqi, 201, 191, 2, 2))
    school = iso_at(grid0, schmitt(aqi, 101, 91, 2, 2))
    hub = client.app.state.hub
    deadline = dt.datetime.now() + dt.timedelta(seconds=60)
    while thing not in hub.airquality.updated_at and dt.datetime.now() < deadline:
        hub.alerts.wait_idle(1)
    assert hub.alerts.wait_idle(30)
    assert [a["triggerTime"] for a in rule_alerts(client, advisory, thing)] == direct
    assert [a["triggerTime"] for a in rule_alerts(client, guidance, thing)] == school
    print(f"\nJanuary 2017 through the live VN_AQI: {len(direct)} hazardous-air advisories, {len(school)} guidance")
    assert school  # a Hanoi January is never clean


# -- Red River, 2015 ------------------------------------------------------------------------------------------------
def _red_river(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    rows = list(wb.worksheets[0].iter_rows(values_only=True))
    wb.close()
    codes = [str(int(c)) if isinstance(c, float) else str(c) for c in rows[0]]
    data = [r for r in rows[2:] if isinstance(r[0], dt.datetime)]
    # Local times with a few hundred ms of spreadsheet noise: round to the minute, then to UTC.
    epoch = dt.datetime(1970, 1, 1)
    times = np.array([(((r[0] + dt.timedelta(seconds=30)).replace(second=0, microsecond=0) - LOCAL) - epoch)
                      // dt.timedelta(microseconds=1) for r in data], np.int64)  # fmt: skip
    out = {}
    for code in ("74165", "74162"):
        j = codes.index(code)
        out[code] = np.array([r[j] if isinstance(r[j], int | float) else np.nan for r in data], np.float64)
    return times, out


def test_red_river_2015_through_the_flood_levels(client: TestClient, shared_data: Path) -> None:
    times, levels = _red_river(shared_data / "water" / "red_river_levels_2015_6h.xlsx")
    step = 6 * HOUR_US
    assert np.all(np.diff(times) == step)  # a dense 6-hourly grid: 01, 07, 13, 19 local time
    engine = client.app.state.hub.alerts
    set_name, specs = read_builtin("red_river")
    official = engine.apply_ruleset(set_name, specs, "test")["created"]
    # The drill: the same rules with levels the low-water year reached (each gauge's 2015 maximum is far below
    # alarm I: Hà Nội 5.76 m vs 9.50 m, Sơn Tây 9.17 m vs 12.40 m).
    drill_levels = {"74165": (400, 450, 500), "74162": (700, 800, 900)}
    drills = []
    for spec in specs:
        code = spec.scope.thing_properties["stationCode"]  # type: ignore[index]
        d = spec.model_copy(deep=True)
        d.name = f"drill {code}"
        for lv, value in zip(d.levels or [], drill_levels[code], strict=True):
            lv.value = value
        drills.append(d)
    drill_ids = engine.apply_ruleset("drill", drills, "test")["created"]
    summary = {}
    for code, name in (("74165", "Hà Nội"), ("74162", "Sơn Tây")):
        thing = client.post("/v1.1/Things", json=gauge_body(name, code=code, interval="PT6H")).json()["@iot.id"]
        ds = client.get(f"/v1.1/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]
        x = levels[code]
        have = ~np.isnan(x)
        assert post_arrow(client, arrow_body(ds, times[have], x[have]))["stored"] == int(have.sum())
        assert engine.wait_idle(30)
        k = 0 if code == "74165" else 1
        got_official = rule_alerts(client, official[k], ds)
        direct_official = schmitt(x, specs[k].levels[0].value, specs[k].levels[0].value - 10, 1, 2)  # type: ignore[index]
        assert [a["triggerTime"] for a in got_official] == iso_at(int(times[0]), direct_official, step) == []
        got = rule_alerts(client, drill_ids[k], ds)
        direct = [schmitt(x, on, on - 10, 1, 2) for on in drill_levels[code]]
        assert [a["triggerTime"] for a in got] == iso_at(int(times[0]), direct[0], step)
        for level in (2, 3):
            assert reached(client, drill_ids[k], ds, level) == iso_at(int(times[0]), direct[level - 1], step)
        summary[name] = {"max_cm": float(np.nanmax(x)), "official alarms": len(got_official),
                         "drill alerts": len(got), "drill levels reached": [len(d) for d in direct]}  # fmt: skip
        assert len(got) > 0
    print(f"\nRed River 2015: {summary}")
