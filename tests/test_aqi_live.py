"""Air quality on live data: station recognition, derived VN_AQI Datastreams kept current, the API."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from cityhub import airquality as aq
from cityhub.airquality.live import pollutant_of
from tests.conftest import OM_MEASUREMENT, UGM3

PPB = {"name": "parts per billion", "symbol": "ppb", "definition": "http://qudt.org/vocab/unit/PPB"}


@pytest.mark.parametrize(
    ("name", "definition", "expected"),
    [
        ("PM2.5", "http://dbpedia.org/resource/Particulates", "pm25"),
        ("pm25", "", "pm25"),
        ("PM 10", "", "pm10"),
        ("Ozone", "", "o3"),
        ("Nồng độ", "http://vocab.example.org/pollutant/NO2", "no2"),
        ("Sulphur dioxide", None, "so2"),
        ("Carbon monoxide", None, "co"),
        ("Temperature", "http://dbpedia.org/resource/Temperature", None),
    ],
)
def test_pollutant_recognition(name: str, definition: str | None, expected: str | None) -> None:
    assert pollutant_of(name, definition) == expected


def make_station(client: TestClient) -> tuple[int, int, int]:
    def stream(name: str, unit: dict) -> dict:
        return {
            "name": f"{name} Hàng Đậu",
            "description": name,
            "observationType": OM_MEASUREMENT,
            "unitOfMeasurement": unit,
            "Sensor": {"name": "s", "description": "s", "encodingType": "text/html", "metadata": "m"},
            "ObservedProperty": {"name": name, "definition": f"http://example.org/{name}", "description": name},
        }

    body = {
        "name": "Trạm Hàng Đậu",
        "description": "air-quality station",
        "Locations": [
            {
                "name": "Hàng Đậu",
                "description": "Hà Nội",
                "encodingType": "application/geo+json",
                "location": {"type": "Point", "coordinates": [105.8466, 21.0422]},
            }
        ],
        "Datastreams": [stream("PM2.5", UGM3), stream("NO2", PPB)],
    }
    thing = client.post("/v1.1/Things", json=body).json()["@iot.id"]
    ds = {d["name"].split()[0]: d["@iot.id"] for d in client.get(f"/v1.1/Things({thing})/Datastreams").json()["value"]}
    return thing, ds["PM2.5"], ds["NO2"]


def wait_for(fn, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        out = fn()
        if out or time.monotonic() > deadline:
            return out
        time.sleep(0.02)


def test_derived_vn_aqi_follows_the_data(client: TestClient) -> None:
    thing, pm, no2 = make_station(client)
    start = datetime(2026, 1, 15, 0, tzinfo=UTC)
    pm_values = [26.9, 24.7, 20.5, 23.5, 19.5, 16.5, 19.0, 16.5, 20.3, 22.4, 19.6, 20.6]  # the decision's example
    rows = [f"{pm},{(start + timedelta(hours=h)).isoformat()},{v}" for h, v in enumerate(pm_values)]
    rows += [f"{no2},{(start + timedelta(hours=11)).isoformat()},63.1"]  # ppb → 118.7 µg/m³
    r = client.post(
        "/api/v1/ingest",
        content="datastream,phenomenonTime,result\n" + "\n".join(rows),
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text

    def hourly() -> list[dict]:
        ds = client.get(f"/v1.1/Things({thing})/Datastreams", params={"$filter": "name eq 'VN_AQI hourly'"}).json()
        if not ds["value"]:
            return []
        obs = client.get(
            f"/v1.1/Datastreams({ds['value'][0]['@iot.id']})/Observations",
            params={"$orderby": "phenomenonTime desc", "$top": "1"},
        ).json()["value"]
        return obs if obs and obs[0]["phenomenonTime"].startswith("2026-01-15T11:00:00Z") else []

    obs = wait_for(hourly)
    assert obs, "the derived VN_AQI hourly Datastream was not updated"
    expected = aq.hourly_index("vn", {"pm25": pm_values, "no2": [None] * 11 + [aq.to_ugm3("no2", 63.1, "ppb")]})
    assert obs[0]["result"] == expected.value
    assert obs[0]["phenomenonTime"] == "2026-01-15T11:00:00Z/2026-01-15T12:00:00Z"
    assert obs[0]["parameters"]["dominant"] == expected.dominant

    current = client.get(f"/api/v1/aqi/stations/{thing}").json()
    assert current["aqi"]["value"] == expected.value
    assert current["pollutants"] == ["no2", "pm25"]
    us = client.get(f"/api/v1/aqi/stations/{thing}", params={"index": "us"}).json()
    assert us["aqi"]["index_name"].startswith("US EPA")
    listing = client.get("/api/v1/aqi/stations").json()["value"]
    assert [s["thing"] for s in listing] == [thing]

    # A hazardous hour arrives: the index and the school guidance follow.
    client.post(
        "/api/v1/ingest",
        content=f"datastream,phenomenonTime,result\n{pm},2026-01-15T12:00:00Z,400\n{pm},2026-01-15T13:00:00Z,420\n",
        headers={"Content-Type": "text/csv"},
    )
    school = client.get(f"/api/v1/aqi/stations/{thing}/school").json()
    assert school["level"] == "suspend_outdoor"
    assert school["index"] > 300
    summary = client.get("/api/v1/aqi/summary").json()
    assert summary["worst"]["thing"] == thing
    assert summary["reporting"] == 1
    hist = client.get(
        f"/api/v1/aqi/stations/{thing}/history", params={"start": "2026-01-15T00:00:00Z", "end": "2026-01-15T14:00:00Z"}
    ).json()
    assert [h["time"] for h in hist["value"]][-1] == "2026-01-15T13:00:00Z"
    # Daily VN_AQI needs 18 of the local day's 24 hours: 15 January has only 14, 16 January gets all 24.
    day = datetime(2026, 1, 15, 17, tzinfo=UTC)  # 16 January 00:00 in Hanoi
    rows = [f"{pm},{(day + timedelta(hours=h)).isoformat()},{50 + h}" for h in range(24)]
    client.post(
        "/api/v1/ingest",
        content="datastream,phenomenonTime,result\n" + "\n".join(rows),
        headers={"Content-Type": "text/csv"},
    )
    daily = client.get(
        f"/api/v1/aqi/stations/{thing}/history",
        params={"period": "day", "start": "2026-01-15T00:00:00+07:00", "end": "2026-01-17T00:00:00+07:00"},
    ).json()
    assert [d["time"] for d in daily["value"]] == ["2026-01-15T17:00:00Z"]
    assert daily["value"][0]["value"] == aq.daily_index("vn", {"pm25": [50 + h for h in range(24)]}).value


def test_not_a_station_is_404(client: TestClient, station: dict) -> None:
    # The conftest station measures PM2.5, so it is one; a Thing without pollutants is not.
    thing = client.post("/v1.1/Things", json={"name": "lamp", "description": "a street lamp"}).json()["@iot.id"]
    assert client.get(f"/api/v1/aqi/stations/{thing}").status_code == 404
    assert client.get(f"/api/v1/aqi/stations/{station['thing']}").status_code == 200
    assert client.get("/api/v1/aqi/stations", params={"index": "xx"}).status_code == 400


def _vn_hourly(client: TestClient, thing: int) -> int | None:
    ds = client.get(f"/v1.1/Things({thing})/Datastreams", params={"$filter": "name eq 'VN_AQI hourly'"}).json()
    return ds["value"][0]["@iot.id"] if ds["value"] else None


def test_derived_observations_keep_their_ids_when_recomputed(client: TestClient) -> None:
    """Issue 10: every recompute deleted and re-inserted the derived Observation (Observations(5) became
    Observations(9) and the old link answered 404). Now it is updated in place."""
    thing, pm, _ = make_station(client)
    hour = datetime(2026, 1, 15, 3, tzinfo=UTC)

    def post(minutes: int, value: float) -> None:
        r = client.post(
            f"/v1.1/Datastreams({pm})/Observations",
            json={"phenomenonTime": (hour + timedelta(minutes=minutes)).isoformat(), "result": value},
        )
        assert r.status_code == 201, r.text

    hub = client.app.state.hub  # type: ignore[attr-defined]
    for h in range(3):  # NowCast needs two of the last three hours
        post(60 * h, 40.0)
    assert hub.airquality.wait_idle()
    ds = _vn_hourly(client, thing)
    assert ds is not None
    first = client.get(f"/v1.1/Datastreams({ds})/Observations", params={"$orderby": "id"}).json()["value"]
    assert len(first) >= 2
    ids = [o["@iot.id"] for o in first]
    last = (
        first[-1]
        if first[-1]["phenomenonTime"].startswith("2026-01-15T05")
        else max(first, key=lambda o: o["phenomenonTime"])
    )
    oid, value = last["@iot.id"], last["result"]
    post(150, 400.0)  # the last hour's mean rises: its index is recomputed
    assert hub.airquality.wait_idle()
    again = client.get(f"/v1.1/Observations({oid})")
    assert again.status_code == 200, "the derived Observation's link must survive a recompute"
    assert again.json()["result"] > value
    after = client.get(f"/v1.1/Datastreams({ds})/Observations", params={"$orderby": "id"}).json()["value"]
    assert [o["@iot.id"] for o in after] == ids
    # The roll-ups follow the replaced value: latest and the hourly aggregate show the new index.
    latest = client.get("/api/v1/latest", params={"datastreams": str(ds)}).json()["value"][0]
    assert latest["result"] == again.json()["result"]
    assert latest["count"] == len(ids)
    agg = client.get("/api/v1/aggregate", params={"datastreams": str(ds), "function": "max"}).json()["value"][0]
    assert agg["value"][-1] == again.json()["result"] and agg["count"][-1] == 1


def test_derived_observations_and_entities_go_out_on_the_bus(client: TestClient) -> None:
    """Issue 10: derived VN_AQI was written on a second write path with its own listeners, so it never reached
    MQTT, and the Datastreams made for it were never announced. Both now go through the one bus."""
    from cityhub.bus import ENTITIES, OBSERVATIONS, EntityChanged, ObservationsCommitted

    hub = client.app.state.hub  # type: ignore[attr-defined]
    seen: list[object] = []
    subs = [hub.bus.subscribe(OBSERVATIONS, seen.append), hub.bus.subscribe(ENTITIES, seen.append)]
    try:
        thing, pm, _ = make_station(client)
        for h in range(3):
            r = client.post(
                f"/v1.1/Datastreams({pm})/Observations",
                json={"phenomenonTime": f"2026-01-15T0{h}:00:00Z", "result": 40},
            )
            assert r.status_code == 201
        assert hub.airquality.wait_idle()
        ds = _vn_hourly(client, thing)
        created = {(e.entity_set, e.entity_id) for e in seen if isinstance(e, EntityChanged)}
        assert ("Things", thing) in created
        assert ("Datastreams", ds) in created
        batches = [e.batch for e in seen if isinstance(e, ObservationsCommitted)]
        stored = client.get(f"/v1.1/Datastreams({ds})/Observations").json()["value"]
        published = [row for b in batches for row in b.to_pylist() if row["datastream_id"] == ds]
        # Recomputes publish an Observation again under the same id: the set of ids is the stored one.
        assert {row["id"] for row in published} == {o["@iot.id"] for o in stored}
    finally:
        for s in subs:
            s.close()


def test_many_stations_in_one_update_match_the_one_station_path(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An update of many stations reads and writes them all at once: each station's derived hourly and daily
    VN_AQI must equal its own history (computed one station at a time) and a direct computation."""
    from cityhub.airquality import live as live_module
    from cityhub.store.ops.airquality import HourRange

    hub = client.app.state.hub  # type: ignore[attr-defined]
    start = datetime(2026, 1, 14, 10, tzinfo=UTC)  # 44 hours: all of 15 January in Hanoi, parts of two others
    n_hours = 44
    stations: dict[int, tuple[int, int]] = {}
    rows: list[str] = []
    for k in range(6):
        thing, pm, no2 = make_station(client)
        stations[thing] = (pm, no2)
        for h in range(n_hours):
            if (h + k) % 9 == 4:  # a missing hour, somewhere else at each station
                continue
            t = (start + timedelta(hours=h)).isoformat()
            rows.append(f"{pm},{t},{10 + 7 * k + (h * (k + 3)) % 23 + 0.25 * k}")
            if k % 2 and h % 3:  # some stations also measure NO2 (in ppb: converted before indexing)
                rows.append(f"{no2},{t},{20 + 11 * k + h % 7}")
    r = client.post(
        "/api/v1/ingest",
        content="datastream,phenomenonTime,result\n" + "\n".join(rows),
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    assert hub.airquality.wait_idle()
    live = hub.airquality
    # Every station-hour again, in one call, as a catch-up after a restart would (in chunks of a station or two
    # here): the values stay the same.
    monkeypatch.setattr(live_module, "_CHUNK_HOURS", 200)
    live.update([(thing, start + timedelta(hours=h)) for thing in stations for h in range(n_hours)])
    assert live.wait_idle()

    def derived(ds: int) -> dict[str, tuple[float, str | None]]:
        obs = client.get(
            f"/v1.1/Datastreams({ds})/Observations", params={"$top": "1000", "$orderby": "phenomenonTime"}
        ).json()["value"]
        return {o["phenomenonTime"].split("/")[0]: (o["result"], o["parameters"]["dominant"]) for o in obs}

    def iso(t: datetime) -> str:
        return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    end = start + timedelta(hours=n_hours)

    def check() -> None:
        days_seen = 0
        for thing in stations:
            st = live.stations()[thing]
            hourly = {
                iso(h): (res.value, res.dominant)
                for h, res in live.history(st, "vn", "hour", start, end)
                if res.value is not None
            }
            assert hourly, "every station has hours with an index"
            assert derived(st.derived["hour"]) == hourly
            daily = {
                iso(d): (res.value, res.dominant)
                for d, res in live.history(st, "vn", "day", start - timedelta(days=1), end + timedelta(days=1))
                if res.value is not None
            }
            days_seen += len(daily)
            assert derived(st.derived["day"]) == daily
            # The last hour, straight from the index functions.
            means = live.hourly_means(st, end - timedelta(hours=24), end)
            want = aq.hourly_index("vn", means)
            assert derived(st.derived["hour"])[iso(end - timedelta(hours=1))] == (want.value, want.dominant)
        assert days_seen >= len(stations)  # 15 January has its daily index everywhere

    check()
    # Late data for an earlier hour of every station: that hour and the ones after it whose NowCast uses it move.
    late = end - timedelta(hours=8) + timedelta(minutes=30)
    r = client.post(
        "/api/v1/ingest",
        content="datastream,phenomenonTime,result\n"
        + "\n".join(f"{pm},{late.isoformat()},{300 + 20 * k}" for k, (pm, _) in enumerate(stations.values())),
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    assert live.wait_idle()
    check()

    # The store's read behind it: ranges of a Datastream may overlap, each hour still comes once.
    pm = next(iter(stations.values()))[0]
    t = hub.store.airquality.hourly_means(
        [
            HourRange(pm, start, start + timedelta(hours=10)),
            HourRange(pm, start + timedelta(hours=5), start + timedelta(hours=20)),
            HourRange(pm, start + timedelta(hours=30), start + timedelta(hours=30)),  # empty
        ]
    )
    ref = hub.store.aggregate([pm], "avg", "hour", start, start + timedelta(hours=20), 0)
    assert t.column("datastream_id").to_pylist() == [pm] * ref.num_rows
    assert t.column("time").to_pylist() == ref.column("time").to_pylist()
    assert t.column("value").to_pylist() == pytest.approx(ref.column("value").to_pylist())
    assert hub.store.airquality.hourly_means([]).num_rows == 0
