"""Bulk ingest, latest values, aggregates, bad input and access control."""

from __future__ import annotations

import io

import orjson
import pyarrow as pa
import pyarrow.ipc as paipc
import pytest
from fastapi.testclient import TestClient

from cityhub.auth.keys import KeyStore
from cityhub.config import Settings
from cityhub.errors import ProblemError
from tests.conftest import station_body


def csv(rows: list[str], header: str = "datastream,phenomenonTime,result") -> str:
    return "\n".join([header, *rows]) + "\n"


def test_bulk_csv_ndjson_and_arrow(client: TestClient, station: dict) -> None:
    ds = station["datastream"]
    r = client.post(
        "/api/v1/ingest",
        content=csv([f"{ds},2026-01-01T00:00:00Z,1.5", f"{ds},2026-01-01T01:00:00+07:00,2"]),
        headers={"Content-Type": "text/csv"},
    )
    assert r.json() == {"received": 2, "stored": 2, "duplicates": 0, "rejected": 0, "errors": []}
    lines = b"\n".join(
        orjson.dumps({"datastream": ds, "phenomenonTime": f"2026-01-02T0{h}:00:00Z", "result": h}) for h in range(3)
    )
    r = client.post("/api/v1/ingest", content=lines, headers={"Content-Type": "application/x-ndjson"})
    assert r.json()["stored"] == 3
    table = pa.table(
        {
            "datastream": pa.array([ds] * 4, pa.int64()),
            "phenomenonTime": pa.array(
                [1_770_000_000_000_000 + k * 60_000_000 for k in range(4)], pa.timestamp("us", tz="UTC")
            ),
            "result": pa.array([1.0, 2.0, 3.0, 4.0]),
        }
    )
    sink = io.BytesIO()
    with paipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    r = client.post(
        "/api/v1/ingest",
        content=sink.getvalue(),
        headers={"Content-Type": "application/vnd.apache.arrow.stream"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 4
    assert client.get(f"/v1.1/Datastreams({ds})/Observations?$count=true&$top=0").json()["@iot.count"] == 9


def test_bulk_with_bad_rows_rejects_all_and_lists_each(client: TestClient, station: dict) -> None:
    ds = station["datastream"]
    body = csv(
        [
            f"{ds},2026-01-01T00:00:00Z,1.5",
            f"{ds},2026-01-01T01:00:00,2",  # no zone
            f"{ds},2099-01-01T00:00:00Z,2",  # far future
            f"{ds},2026-01-01T02:00:00Z,NaN",  # NaN
            f"{ds},2026-01-01T03:00:00Z,abc",  # not a number
            "999,2026-01-01T04:00:00Z,1",  # unknown datastream
            f"{ds},yesterday,1",  # not a time
        ]
    )
    r = client.post("/api/v1/ingest", content=body, headers={"Content-Type": "text/csv"})
    assert r.status_code == 422
    problem = r.json()
    assert problem["rejected"] == 6
    assert [(e["index"], e["field"]) for e in problem["errors"]] == [
        (1, "phenomenonTime"),
        (2, "phenomenonTime"),
        (3, "result"),
        (4, "result"),
        (5, "datastream"),
        (6, "phenomenonTime"),
    ]
    assert "NaN" in problem["errors"][2]["reason"]
    assert client.get(f"/v1.1/Datastreams({ds})/Observations").json()["value"] == []

    r = client.post("/api/v1/ingest?partial=true", content=body, headers={"Content-Type": "text/csv"})
    assert r.status_code == 207
    assert r.json()["stored"] == 1
    assert r.json()["rejected"] == 6


def test_bulk_units_are_checked(client: TestClient, station: dict) -> None:
    ds = station["datastream"]
    body = csv(
        [f"{ds},2026-01-01T00:00:00Z,1.5,µg/m³", f"{ds},2026-01-01T01:00:00Z,0.002,mg/m³"],
        header="datastream,phenomenonTime,result,unit",
    )
    r = client.post("/api/v1/ingest", content=body.encode(), headers={"Content-Type": "text/csv"})
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"index": 1, "field": "unit", "reason": "mg/m³ does not match the Datastream's unit µg/m³"}
    ]


def test_bulk_duplicates_and_conflicts(client: TestClient, station: dict) -> None:
    ds = station["datastream"]
    rows = [f"{ds},2026-01-01T00:00:00Z,1.5", f"{ds},2026-01-01T01:00:00Z,2"]
    assert client.post("/api/v1/ingest", content=csv(rows), headers={"Content-Type": "text/csv"}).json()["stored"] == 2
    again = client.post("/api/v1/ingest", content=csv([*rows, rows[0]]), headers={"Content-Type": "text/csv"}).json()
    assert (again["stored"], again["duplicates"]) == (0, 3)
    changed = client.post(
        "/api/v1/ingest",
        content=csv([f"{ds},2026-01-01T00:00:00Z,9", f"{ds},2026-01-01T05:00:00Z,3"]),
        headers={"Content-Type": "text/csv"},
    )
    assert changed.status_code == 409
    assert changed.json()["errors"][0]["index"] == 0
    assert client.get(f"/v1.1/Datastreams({ds})/Observations?$count=true").json()["@iot.count"] == 2


@pytest.mark.parametrize(
    ("headers", "content", "status", "field"),
    [
        ({"Content-Type": "text/csv"}, b"", 400, "body"),
        ({"Content-Type": "text/csv"}, b"datastream,result\n1,2\n", 400, "phenomenonTime"),
        (
            {"Content-Type": "text/csv"},
            b"datastream,phenomenonTime,result,color\n1,2026-01-01T00:00:00Z,2,red\n",
            400,
            "color",
        ),
        ({"Content-Type": "application/x-ndjson"}, b'{"datastream":1,\n', 400, "body"),
        ({"Content-Type": "application/vnd.apache.arrow.stream"}, b"not arrow", 400, "body"),
        ({"Content-Type": "application/xml"}, b"<x/>", 415, "content-type"),
    ],
)
def test_bulk_malformed_bodies(
    client: TestClient, station: dict, headers: dict, content: bytes, status: int, field: str
) -> None:
    r = client.post("/api/v1/ingest", content=content, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phenomenonTime": "2026-01-01T00:00:00Z", "result": "high"}, "result"),
        ({"phenomenonTime": "2026-01-01T00:00:00", "result": 1}, "phenomenonTime"),
        ({"phenomenonTime": "2126-01-01T00:00:00Z", "result": 1}, "phenomenonTime"),
        ({"phenomenonTime": 12, "result": 1}, "phenomenonTime"),
        ({"phenomenonTime": "2026-01-01T00:00:00Z"}, "result"),
        ({"phenomenonTime": "2026-01-01T00:00:00Z", "result": 1, "colour": "red"}, "colour"),
        # Another Datastream than the path's (the same one is accepted: test_a_linked_entity_may_carry_...).
        ({"phenomenonTime": "2026-01-01T00:00:00Z", "result": 1, "Datastream": {"@iot.id": 999_999}}, "Datastream"),
        ({"phenomenonTime": "2026-01-01T00:00:00Z", "result": 1, "parameters": [1]}, "parameters"),
    ],
)
def test_bad_observations_are_4xx_naming_the_field(client: TestClient, station: dict, body: dict, field: str) -> None:
    r = client.post(f"/v1.1/Datastreams({station['datastream']})/Observations", json=body)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["field"] == field


def test_nan_and_broken_json_bodies(client: TestClient, station: dict) -> None:
    r = client.post(
        f"/v1.1/Datastreams({station['datastream']})/Observations",
        content=b'{"phenomenonTime":"2026-01-01T00:00:00Z","result":NaN}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["field"] == "body"
    r = client.post("/v1.1/Things", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = client.post("/v1.1/Things", json=[1, 2])
    assert r.status_code == 400


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1.1/Things", {"description": "no name"}, "name"),
        ("/v1.1/Things", {"name": 5, "description": "x"}, "name"),
        ("/v1.1/Things", {"name": "a", "description": "x", "properties": "notanobject"}, "properties"),
        ("/v1.1/Things", {"name": "a", "description": "x", "@iot.id": 7}, "@iot.id"),
        (
            "/v1.1/Locations",
            {
                "name": "a",
                "description": "x",
                "encodingType": "application/geo+json",
                "location": {"type": "Point", "coordinates": ["x", 1]},
            },
            "location",
        ),
        (
            "/v1.1/Things",
            {"name": "a", "description": "x", "Locations": [{"name": "l"}]},
            "Locations[0].description",
        ),
        (
            "/v1.1/Datastreams",
            # any observationType URI is taken (test_sta_model.py), but not an empty one
            {"name": "a", "description": "x", "observationType": " ", "unitOfMeasurement": {}},
            "observationType",
        ),
        (
            "/v1.1/Datastreams",
            {
                "name": "a",
                "description": "x",
                "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
                "unitOfMeasurement": {"symbol": 3},
            },
            "unitOfMeasurement.symbol",
        ),
    ],
)
def test_bad_entities_are_400_naming_the_field(client: TestClient, path: str, body: dict, field: str) -> None:
    r = client.post(path, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field


def test_unknown_entity_paths_are_404(client: TestClient) -> None:
    assert client.get("/v1.1/Nothings").status_code == 404
    assert client.get("/v1.1/Things(99)").status_code == 404
    assert client.get("/v1.1/Things(99)/Datastreams").status_code == 404
    assert client.get("/v1.1/Things(abc)").status_code == 400
    assert client.get("/v1.1/Things(1)/nosuch").status_code == 404


def test_latest_and_aggregates(client: TestClient) -> None:
    tid = client.post("/v1.1/Things", json=station_body(n_ds=2)).json()["@iot.id"]
    ds = [d["@iot.id"] for d in client.get(f"/v1.1/Things({tid})/Datastreams").json()["value"]]
    rows = []
    for k, d in enumerate(ds):
        for m in range(0, 180, 10):  # three hours of 10-minute data, from 23:00 to 01:50 Hanoi time
            rows.append(f"{d},2026-01-15T{16 + m // 60:02d}:{m % 60:02d}:00Z,{k * 100 + m}")
    assert client.post("/api/v1/ingest", content=csv(rows), headers={"Content-Type": "text/csv"}).json()["stored"] == 36
    latest = client.post("/api/v1/latest", json={"datastreams": [*ds, 12345]}).json()
    assert [(v["datastream"], v["result"], v["phenomenonTime"], v["count"]) for v in latest["value"]] == [
        (ds[0], 170, "2026-01-15T18:50:00Z", 18),
        (ds[1], 270, "2026-01-15T18:50:00Z", 18),
    ]
    assert latest["missing"] == [12345]
    # The station measures PM2.5, so air quality adds its VN_AQI Datastreams to the Thing in its own thread:
    # once it is idle (not a race with it, as before) the Thing's latest values are its 2 Datastreams and the
    # derived hourly index (3 hours of data give 2 NowCasts; a daily index needs 18 hours).
    assert client.app.state.hub.airquality.wait_idle()  # type: ignore[attr-defined]
    by_thing = client.get(f"/api/v1/latest?thing={tid}").json()["value"]
    names = {d["@iot.id"]: d["name"] for d in client.get(f"/v1.1/Things({tid})/Datastreams").json()["value"]}
    assert sorted(names[v["datastream"]] for v in by_thing) == sorted([names[ds[0]], names[ds[1]], "VN_AQI hourly"])

    hourly = client.get(
        "/api/v1/aggregate", params={"datastreams": f"{ds[0]}", "function": "avg", "interval": "hour"}
    ).json()
    first = hourly["value"][0]
    assert first["time"] == ["2026-01-15T16:00:00Z", "2026-01-15T17:00:00Z", "2026-01-15T18:00:00Z"]
    assert first["value"] == [25.0, 85.0, 145.0]
    assert first["count"] == [6, 6, 6]
    for fn, expected in (
        ("min", [0.0, 60.0, 120.0]),
        ("max", [50.0, 110.0, 170.0]),
        ("sum", [150.0, 510.0, 870.0]),
        ("count", [6.0, 6.0, 6.0]),
    ):
        got = client.post("/api/v1/aggregate", json={"datastreams": [ds[0]], "function": fn}).json()["value"][0][
            "value"
        ]
        assert got == expected, fn
    # Days start at Hanoi midnight = 17:00 UTC: the 16:00 UTC hour belongs to the previous local day.
    daily = client.get("/api/v1/aggregate", params={"datastreams": f"{ds[0]}", "interval": "day"}).json()["value"][0]
    assert daily["time"] == ["2026-01-14T17:00:00Z", "2026-01-15T17:00:00Z"]
    assert daily["value"] == [25.0, 115.0]
    windowed = client.get(
        "/api/v1/aggregate",
        params={
            "datastreams": f"{ds[0]}",
            "start": "2026-01-16T00:00:00+07:00",
            "end": "2026-01-16T01:00:00+07:00",
        },
    ).json()
    assert windowed["value"][0]["value"] == [85.0]
    arrow = client.get(
        "/api/v1/aggregate",
        params={"datastreams": f"{ds[0]},{ds[1]}"},
        headers={"Accept": "application/vnd.apache.arrow.stream"},
    )
    table = paipc.open_stream(arrow.content).read_all()
    assert table.num_rows == 6
    assert table.column_names == ["datastream", "time", "value", "count"]  # the JSON's names
    bad = client.get("/api/v1/aggregate", params={"datastreams": "1", "start": "2026-01-16T00:00:00"})
    assert bad.status_code == 400
    assert bad.json()["field"] == "start"
    assert client.get("/api/v1/aggregate", params={"function": "median"}).status_code == 400


def test_aggregates_show_the_decimals_of_the_readings_and_exports_iso_times(client: TestClient) -> None:
    """31.9 + 32.075 + 31.9875 + 31.9875 over 4 is 31.9875, not the 31.987499999999994 the additions leave; a sum
    of 0.1 and 0.2 is 0.3. The CSV export writes times as the rest of the API does."""
    tid = client.post("/v1.1/Things", json=station_body(n_ds=1)).json()["@iot.id"]
    ds = client.get(f"/v1.1/Things({tid})/Datastreams").json()["value"][0]["@iot.id"]
    first = [f"{ds},2026-02-01T00:{10 * k:02d}:00Z,{v}" for k, v in enumerate([31.9, 32.075, 31.9875, 31.9875])]
    second = [f"{ds},2026-02-01T01:{10 * k:02d}:00Z,{v}" for k, v in enumerate([0.1, 0.2])]
    body = csv(first + second)
    assert client.post("/api/v1/ingest", content=body, headers={"Content-Type": "text/csv"}).json()["stored"] == 6
    avg = client.get("/api/v1/aggregate", params={"datastreams": ds, "function": "avg"}).json()["value"][0]
    assert avg["time"] == ["2026-02-01T00:00:00Z", "2026-02-01T01:00:00Z"]
    assert avg["value"] == [31.9875, 0.15]
    total = client.get("/api/v1/aggregate", params={"datastreams": ds, "function": "sum"}).json()["value"][0]
    assert total["value"] == [127.95, 0.3]
    exported = client.get("/api/v1/export", params={"datastreams": ds, "format": "csv"}).text.splitlines()
    assert exported[1].split(",")[6].strip('"') == "2026-02-01T00:00:00Z", exported[:2]


def test_roles(app_client: TestClient, settings: Settings, station_thing_ids: dict) -> None:
    keys = KeyStore(settings.keys_path)
    operator = {"Authorization": "Bearer " + keys.create("operator", "ops centre")}
    device = {"X-API-Key": keys.create("device", "station 1", thing_id=station_thing_ids["thing"])}
    other_device = {"X-API-Key": keys.create("device", "station 2", thing_id=station_thing_ids["other_thing"])}
    ds = station_thing_ids["datastream"]
    obs = {"phenomenonTime": "2026-01-01T00:00:00Z", "result": 3}
    assert app_client.get("/v1.1/Things").status_code == 200  # anonymous read
    assert app_client.post("/v1.1/Things", json={"name": "x", "description": "y"}).status_code == 401
    assert app_client.post("/v1.1/Things", json={"name": "x", "description": "y"}, headers=operator).status_code == 403
    assert app_client.post(f"/v1.1/Datastreams({ds})/Observations", json=obs, headers=operator).status_code == 403
    assert app_client.post(f"/v1.1/Datastreams({ds})/Observations", json=obs, headers=other_device).status_code == 403
    assert app_client.post(f"/v1.1/Datastreams({ds})/Observations", json=obs, headers=device).status_code == 201
    assert app_client.post("/v1.1/Things", json={"name": "x", "description": "y"}, headers=device).status_code == 403
    assert app_client.delete(f"/v1.1/Datastreams({ds})", headers=device).status_code == 403
    body = csv([f"{ds},2026-01-02T00:00:00Z,1"])
    assert (
        app_client.post(
            "/api/v1/ingest", content=body, headers={**other_device, "Content-Type": "text/csv"}
        ).status_code
        == 403
    )
    assert (
        app_client.post("/api/v1/ingest", content=body, headers={**device, "Content-Type": "text/csv"}).status_code
        == 200
    )
    assert app_client.get("/v1.1/Things", headers={"Authorization": "Bearer ch_wrong"}).status_code == 401


@pytest.fixture
def station_thing_ids(client: TestClient, station: dict) -> dict:
    other = client.post("/v1.1/Things", json=station_body("Minh Khai")).json()["@iot.id"]
    client.headers.pop("Authorization")
    return {**station, "other_thing": other}


def test_anonymous_read_can_be_turned_off(tmp_path) -> None:
    from cityhub.app import create_app

    with TestClient(create_app(Settings(data_dir=tmp_path, anonymous_read=False))) as c:
        r = c.get("/v1.1/Things")
        assert r.status_code == 401
        assert r.json()["field"] == "authorization"


def test_keys_are_stored_hashed(settings: Settings) -> None:
    key = KeyStore(settings.keys_path).create("admin", "a")
    assert key not in settings.keys_path.read_text()


@pytest.mark.parametrize(
    ("body", "content_type", "detail"),
    [
        # pyarrow 26's JSON reader crashes the process on a bare `null` line: the hub must answer 400 instead.
        (b"null", "application/x-ndjson", "line 1 is not a JSON object"),
        (b'{"datastream": 1, "phenomenonTime": "2026-01-01T00:00:00Z", "result": 1}\n  null\n', "application/x-ndjson",
         "line 2 is not a JSON object"),
        (b"datastream,phenomenonTime,res\xffult\n1,2026-01-01T00:00:00Z,1\n", "text/csv", "UTF-8"),
    ],
)  # fmt: skip
def test_bodies_that_crash_or_trip_arrow_get_a_400(
    client: TestClient, body: bytes, content_type: str, detail: str
) -> None:
    r = client.post("/api/v1/ingest", content=body, headers={"Content-Type": content_type})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "body" and detail in r.json()["detail"]
    assert client.get("/healthz").status_code == 200


def test_inconsistent_arrow_ipc_is_refused(client: TestClient) -> None:
    import io

    import pyarrow.ipc as paipc

    t = pa.table({"datastream": [1, 2], "phenomenonTime": ["2026-01-01T00:00:00Z"] * 2, "result": [1.0, 2.0]})
    sink = io.BytesIO()
    with paipc.new_stream(sink, t.schema) as w:
        w.write_table(t)
    good = sink.getvalue()
    codes = set()
    for pos in range(0, len(good), 7):  # corrupt one byte at a time: never a crash or a 500
        bad = bytearray(good)
        bad[pos] ^= 0xFF
        r = client.post("/api/v1/ingest?partial=true", content=bytes(bad),
                        headers={"Content-Type": "application/vnd.apache.arrow.stream"})  # fmt: skip
        codes.add(r.status_code)
    assert codes <= {200, 207, 400, 422}, codes


def test_text_holding_nul_is_refused_with_the_field_on_every_store(client: TestClient) -> None:
    """U+0000 is valid Unicode but PostgreSQL's text cannot hold it: every store refuses it alike, naming the field,
    and stores nothing of the body; inside a JSON member it is an escape and is kept."""
    body = station_body()
    body["Datastreams"][0]["observationType"] = (
        "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CategoryObservation"
    )
    thing = client.post("/v1.1/Things", json=body).json()["@iot.id"]
    ds = client.get(f"/v1.1/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]
    r = client.post(f"/v1.1/Datastreams({ds})/Observations", json={"phenomenonTime": "2026-01-01T00:00:00Z",
                                                                   "result": "a\x00b"})  # fmt: skip
    assert r.status_code == 400 and r.json()["field"] == "result", r.text
    rows = [{"datastream": ds, "phenomenonTime": "2026-01-01T01:00:00Z", "result": "ok"},
            {"datastream": ds, "phenomenonTime": "2026-01-01T02:00:00Z", "result": "x\x00"}]  # fmt: skip
    r = client.post("/api/v1/ingest", content=b"\n".join(orjson.dumps(x) for x in rows),
                    headers={"Content-Type": "application/x-ndjson"})  # fmt: skip
    assert r.status_code == 400 and r.json()["field"] == "result" and "[1]" in r.json()["detail"], r.text
    r = client.post("/v1.1/Sensors", json={"name": "s\x00", "description": "d", "encodingType": "text/html",
                                           "metadata": "m"})  # fmt: skip
    assert r.status_code == 400 and r.json()["field"] == "name", r.text
    assert client.get(f"/v1.1/Datastreams({ds})/Observations").json()["value"] == []
    r = client.patch(f"/v1.1/Things({thing})", json={"properties": {"note": "a\x00b"}})
    assert r.status_code == 200, r.text
    assert client.get(f"/v1.1/Things({thing})").json()["properties"] == {"note": "a\x00b"}


def test_data_array_columns_equal_the_row_wise_table() -> None:
    """CreateObservations builds plain groups a column at a time (data_array_table); the table must be the one the
    row-wise path makes of the same rows, for plain groups and for those that fall back to it."""
    from cityhub.ingest.observations import data_array_table, rows_to_table

    groups: list[tuple[int, list[str], list[list[object]]]] = [
        (7, ["phenomenonTime", "result"], [["2026-01-01T00:00:00Z", 1], ["2026-01-01T01:00:00Z", 2.5]]),
        (8, ["result", "phenomenonTime", "FeatureOfInterest/id"],
         [[3, "2026-01-01T00:00:00Z", 4], [-1e300, None, None]]),
        (9, ["phenomenonTime", "result", "resultTime"],
         [["2026-01-01T00:00:00Z", "text", "2026-01-01T00:00:01Z"], ["2026-01-01T01:00:00Z", True, None],
          ["2026-01-01T02:00:00Z", {"a": [1]}, None]]),
        (10, ["phenomenonTime", "result", "parameters"], [["2026-01-01T00:00:00Z", 1, {"k": "v"}]]),
        (11, ["phenomenonTime", "result"], []),
    ]  # fmt: skip
    names = {"FeatureOfInterest/id": "featureOfInterest"}
    records = [
        {"datastream": ds, **{names.get(c, c): v for c, v in zip(comps, row, strict=True)}}
        for ds, comps, rows in groups
        for row in rows
    ]
    fast, slow = data_array_table(groups), rows_to_table(records)
    assert fast.num_rows == slow.num_rows == 8
    for col in slow.column_names:
        if col in fast.column_names:
            assert fast.column(col).to_pylist() == slow.column(col).to_pylist(), col
        else:
            assert slow.column(col).null_count == slow.num_rows, col
    # A body of plain groups only is typed as an Arrow body (integer ids, numbers, integers' exact text) for the
    # Arrow-kernel validation; it holds the same values.
    from cityhub.ingest.observations import _row_wise

    plain = [g for g in groups if g[0] in (7, 8, 11)]
    typed = data_array_table(plain)
    assert typed.column("datastream").type == pa.int64() and "result_text" not in typed.column_names
    assert typed.column("result_int").to_pylist() == ["1", None, "3", None]
    same = _row_wise(typed)
    slow = rows_to_table([r for r in records if int(r["datastream"]) in (7, 8, 11)])  # type: ignore[call-overload]
    for col in slow.column_names:
        if col in same.column_names:
            assert same.column(col).to_pylist() == slow.column(col).to_pylist(), col
    # A row the row-wise path refuses is named by its index in the whole body.
    huge: list[tuple[int, list[str], list[list[object]]]] = [
        (7, ["phenomenonTime", "result"], [["2026-01-01T00:00:00Z", 1]]),
        (8, ["phenomenonTime", "result"], [["2026-01-01T00:00:00Z", 10**400]]),
    ]
    with pytest.raises(ProblemError) as err:
        data_array_table(huge)
    assert err.value.status == 400 and err.value.extra["index"] == 1
