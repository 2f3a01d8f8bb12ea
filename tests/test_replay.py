"""`cityhub replay` and `cityhub export`: real recorded feeds played into a hub, over HTTP and MQTT."""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from cityhub import replay as rp
from cityhub.app import create_app
from cityhub.auth.keys import KeyStore
from cityhub.config import Settings
from tests.test_mqtt import BROKER, wait_for


@pytest.fixture
def hub(tmp_path: Path) -> TestClient:
    settings = Settings(data_dir=tmp_path / "var")
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {KeyStore(settings.keys_path).create('admin', 't')}"
        yield client


def count(client: TestClient, ds: int) -> int:
    return client.get(f"/v1.1/Datastreams({ds})/Observations?$count=true&$top=0").json()["@iot.count"]


def test_stateair_feed_is_read_in_utc_without_missing_hours(shared_data: Path) -> None:
    path = shared_data / "air" / "stateair_hanoi" / "Hanoi_PM2.5_2017_YTD.csv"
    feed = rp.read_feed(path)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    valid = [r for r in rows if r["QC Name"] == "Valid" and float(r["Raw Conc."]) >= 0]
    assert feed.table.num_rows == len(valid)
    assert feed.skipped == 0  # invalid hours are not rows of the feed at all
    first = feed.table.slice(0, 1).to_pylist()[0]
    assert first["property"] == "PM2.5" and first["unit"] == "µg/m³"
    # 2017-01-01 01:00 Hanoi time is 2016-12-31 18:00 UTC
    assert first["time"].isoformat() == "2016-12-31T18:00:00+00:00"
    assert first["value"] == float(valid[0]["Raw Conc."])
    times = feed.table.column("time")
    assert pc.all(pc.greater_equal(times.slice(1), times.slice(0, len(times) - 1))).as_py()


def test_aqiin_feed_fixes_units_and_finds_coordinates(shared_data: Path) -> None:
    feed = rp.read_feed(shared_data / "air" / "aqiin_vietnam" / "measurements_2026-05.parquet")
    units = dict(
        zip(
            *[
                feed.table.group_by(["property", "unit"]).aggregate([]).column(c).to_pylist()
                for c in ("property", "unit")
            ],
            strict=True,
        )
    )
    assert units["Relative humidity"] == "%" and units["Air temperature"] == "°C" and units["PM2.5"] == "µg/m³"
    assert feed.table.num_rows > 500_000
    hanoi = feed.table.filter(pc.match_substring(feed.table.column("station"), "Hanoi"))
    # Coordinates come from stations.csv; a few of its geocoded rows are far off (messy names), most are in Hà Nội.
    lat = hanoi.column("latitude").to_numpy()
    assert hanoi.num_rows and (abs(lat - 21.0) < 0.5).mean() > 0.9


def test_replay_stateair_over_http_stores_every_valid_hour(hub: TestClient, shared_data: Path) -> None:
    feed = rp.read_feed(shared_data / "air" / "stateair_hanoi" / "Hanoi_PM2.5_2016_YTD.csv")
    ids = rp.ensure_datastreams(hub, feed)
    assert list(ids) == [("US Embassy Hanoi", "PM2.5 US Embassy Hanoi")]  # (station, Datastream name)
    stats = rp.play(feed, ids, rp.HttpSink(hub), None)
    # The US daylight-saving start (2016-03-13) repeats 03:00 with another value: one conflict, reported.
    assert (stats.sent, stats.stored, stats.rejected) == (feed.table.num_rows, feed.table.num_rows - 1, 1)
    assert list(stats.reasons) == [next(iter(stats.reasons))] and "conflicts" in next(iter(stats.reasons))
    ds = ids[("US Embassy Hanoi", "PM2.5 US Embassy Hanoi")]
    assert count(hub, ds) == feed.table.num_rows - 1
    # The station is recognised as an air-quality station and gets its VN_AQI.
    stations = hub.get("/api/v1/aqi/stations").json()["value"]
    assert [s["name"] for s in stations] == ["US Embassy Hanoi"]
    # A second replay finds the same entities and stores nothing new.
    again = rp.play(feed, rp.ensure_datastreams(hub, feed), rp.HttpSink(hub), None)
    assert again.stored == 0 and again.duplicates == feed.table.num_rows - 1


def test_replay_keeps_the_original_timing_compressed(hub: TestClient, tmp_path: Path) -> None:
    csv_text = "thing,latitude,longitude,datastream,observed_property,unit,time,result\n" + "".join(
        f"Trạm A,21.02,105.85,PM2.5 Trạm A,PM2.5,µg/m³,2026-01-01 0{h}:00:00Z,{10 + h}\n" for h in range(5)
    )
    path = tmp_path / "feed.csv"
    path.write_text(csv_text)
    feed = rp.read_feed(path)
    ids = rp.ensure_datastreams(hub, feed)
    sink = rp.HttpSink(hub)
    sent: list[tuple[float, int]] = []  # when each body went out, and its rows

    class Timed:
        def send(self, ds: np.ndarray, times: pa.Array, values: pa.Array, stats: rp.ReplayStats) -> None:
            sent.append((time.monotonic(), len(ds)))
            sink.send(ds, times, values, stats)

        def close(self) -> None:
            sink.close()

    stats = rp.play(feed, ids, Timed(), rp.parse_speed("36000x"))  # type: ignore[arg-type]  # an hour in 0.1 s
    assert stats.stored == 5
    # Each hourly row went out on its own, not before its compressed time (k hours after the first: k × 0.1 s).
    assert [n for _, n in sent] == [1] * 5
    assert all(at - sent[0][0] >= k * 0.1 - 0.01 for k, (at, _) in enumerate(sent)), sent
    assert rp.parse_speed("max") is None and rp.parse_speed("600") == 600.0
    with pytest.raises(ValueError, match="speed"):
        rp.parse_speed("fast")


def test_export_then_replay_into_another_hub_gives_the_same_observations(
    hub: TestClient, tmp_path: Path, shared_data: Path, another_store: Callable[[], dict[str, str]]
) -> None:
    feed = rp.read_feed(shared_data / "air" / "openmeteo_hanoi" / "VALID-jan-2025-jul-2025.csv")
    feed.table = feed.table.slice(0, 5000)
    rp.play(feed, rp.ensure_datastreams(hub, feed), rp.HttpSink(hub), None)
    r = hub.get("/api/v1/export?format=parquet")
    assert r.status_code == 200
    exported = pq.read_table(io.BytesIO(r.content))
    assert exported.num_rows == 5000
    assert set(exported.column("observed_property").to_pylist()) >= {"PM2.5", "O3", "Air temperature"}
    path = tmp_path / "export.parquet"
    path.write_bytes(r.content)
    csv_export = hub.get("/api/v1/export?format=csv&start=2025-01-01T00:00:00Z&end=2025-01-02T00:00:00Z").text
    assert csv_export.splitlines()[0].replace('"', "").startswith("thing,latitude,longitude,datastream")
    # Replayed into the hub it came from: every Datastream is found again, and every row is a duplicate.
    datastreams = hub.get("/v1.1/Datastreams?$count=true&$top=0").json()["@iot.count"]
    same = rp.read_feed(path)
    home = rp.play(same, rp.ensure_datastreams(hub, same), rp.HttpSink(hub), None)
    assert (home.stored, home.duplicates, home.rejected) == (0, 5000, 0)
    assert hub.get("/v1.1/Datastreams?$count=true&$top=0").json()["@iot.count"] == datastreams
    settings = Settings(data_dir=tmp_path / "other", **another_store())
    with TestClient(create_app(settings)) as other:
        other.headers["Authorization"] = f"Bearer {KeyStore(settings.keys_path).create('admin', 't')}"
        back = rp.read_feed(path)
        stats = rp.play(back, rp.ensure_datastreams(other, back), rp.HttpSink(other), None)
        assert stats.stored == 5000
        again = pq.read_table(io.BytesIO(other.get("/api/v1/export?format=parquet").content))
    cols = ["thing", "latitude", "longitude", "datastream", "observed_property", "unit", "time", "result"]
    assert again.select(cols).equals(exported.select(cols))


def test_an_export_keeps_each_datastream_and_leaves_derived_indices_to_the_hub(hub: TestClient, tmp_path: Path) -> None:
    """Two Datastreams of one ObservedProperty at one Thing stay two; VN_AQI rows are not replayed (the receiving
    hub derives its own) and are counted, so the command can say so."""
    rows = [
        ("Trạm B", "PM2.5", "PM2.5", "µg/m³", 35.0),
        ("Trạm B", "PM2.5 (cảm biến rẻ)", "PM2.5", "µg/m³", 41.0),
        ("Trạm B", "VN_AQI hourly", "VN_AQI", "VN_AQI", 99.0),
        ("Trạm B", "VN_AQI daily", "VN_AQI", "VN_AQI", 88.0),
    ]
    path = tmp_path / "export.csv"
    path.write_text("thing,latitude,longitude,datastream,observed_property,unit,time,result\n" + "".join(
        f"{t},21.02,105.85,{d},{p},{u},2026-01-01 01:00:00Z,{v}\n" for t, d, p, u, v in rows))  # fmt: skip
    feed = rp.read_feed(path)
    assert feed.derived == 2 and feed.table.num_rows == 2
    ids = rp.ensure_datastreams(hub, feed)
    assert set(ids) == {("Trạm B", "PM2.5"), ("Trạm B", "PM2.5 (cảm biến rẻ)")} and len(set(ids.values())) == 2
    stats = rp.play(feed, ids, rp.HttpSink(hub), None)
    assert stats.stored == 2


def test_export_refuses_bad_parameters(hub: TestClient) -> None:
    for query, field in (("datastreams=a,b", "datastreams"), ("start=2026-01-01", "start"), ("format=xml", "format")):
        r = hub.get(f"/api/v1/export?{query}")
        assert r.status_code == 400 and r.json()["field"] == field, (query, r.json())


def test_unrecognised_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a recognised feed"):
        rp.read_feed(path)


def test_replay_over_mqtt(tmp_path: Path, shared_data: Path) -> None:
    from tests.conftest import require_service

    require_service(*BROKER, "Mosquitto")
    cid = f"cityhub-test-{uuid.uuid4().hex[:10]}"
    settings = Settings(data_dir=tmp_path / "var", mqtt_url=f"mqtt://{BROKER[0]}:{BROKER[1]}", mqtt_client_id=cid)
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {KeyStore(settings.keys_path).create('admin', 't')}"
        wait_for(lambda: client.get("/healthz").json()["mqtt"]["connected"], what="the bridge to connect")
        feed = rp.read_feed(shared_data / "air" / "aqiin_vietnam" / "measurements_2026-05.parquet")
        hanoi = pc.match_substring(feed.table.column("station"), "Hanoi")
        feed.table = feed.table.filter(hanoi).slice(0, 2000)
        ids = rp.ensure_datastreams(client, feed)
        stats = rp.play(feed, ids, rp.MqttSink(f"mqtt://{BROKER[0]}:{BROKER[1]}", f"replay-{cid}"), None)
        assert stats.sent == 2000
        # aqi.in repeats some readings: each (Datastream, time) is stored once.
        keys = pa.table(
            {
                "ds": [
                    ids[(s, d)]
                    for s, d in zip(
                        feed.table.column("station").to_pylist(),
                        feed.table.column("datastream").to_pylist(),
                        strict=True,
                    )
                ],
                "t": feed.table.column("time"),
            }
        )
        distinct = keys.group_by(["ds", "t"]).aggregate([]).num_rows
        wait_for(lambda: sum(count(client, d) for d in set(ids.values())) >= distinct, timeout=20, what="stored")
        health = client.get("/healthz").json()["mqtt"]
        assert health["stored"] == distinct
        assert health["dead_letters"] == 0
