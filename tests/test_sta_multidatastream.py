"""The MultiDatastream extension (SensorThings v1.1 §12; issue 13, point 6): one stream of Observations whose result
is an array, one value per ObservedProperty, as a Hanoi air monitor reports PM2.5, PM10 and NO2 together. Both
stores, through the HTTP API."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.testclient import TestClient

OM_COMPLEX = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_ComplexObservation"
OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
UGM3 = {
    "name": "microgram per cubic metre",
    "symbol": "µg/m³",
    "definition": "http://qudt.org/vocab/unit/MicroGM-PER-M3",
}


def _op(name: str) -> dict[str, str]:
    return {"name": name, "definition": f"http://example.org/{name}", "description": f"{name} mass concentration"}


def _monitor(client: TestClient) -> tuple[int, int]:
    """A Thing with a MultiDatastream of PM2.5, PM10 and NO2 (deep insert); (Thing id, MultiDatastream id)."""
    body = {
        "name": "Trạm Nguyễn Văn Cừ", "description": "air monitor",
        "Locations": [{"name": "Long Biên", "description": "d", "encodingType": "application/geo+json",
                       "location": {"type": "Point", "coordinates": [105.8817, 21.0486]}}],
        "MultiDatastreams": [{
            "name": "Air quality", "description": "PM2.5, PM10, NO2",
            "unitOfMeasurements": [UGM3, UGM3, UGM3],
            "multiObservationDataTypes": [OM_MEASUREMENT] * 3,
            "Sensor": {"name": "AQ monitor", "description": "d", "encodingType": "text/html", "metadata": "m"},
            "ObservedProperties": [_op("PM2.5"), _op("PM10"), _op("NO2")],
        }],
    }  # fmt: skip
    r = client.post("/v1.1/Things", json=body)
    assert r.status_code == 201, r.text
    thing = r.json()["@iot.id"]
    multi = client.get(f"/v1.1/Things({thing})/MultiDatastreams").json()["value"]
    assert len(multi) == 1
    return thing, multi[0]["@iot.id"]


def test_create_read_and_navigate(client: TestClient) -> None:
    thing, mds = _monitor(client)
    got = client.get(f"/v1.1/MultiDatastreams({mds})").json()
    assert got["observationType"] == OM_COMPLEX  # given by the server when left out
    assert got["unitOfMeasurements"] == [UGM3] * 3 and got["multiObservationDataTypes"] == [OM_MEASUREMENT] * 3
    assert got["ObservedProperties@iot.navigationLink"].endswith(f"/MultiDatastreams({mds})/ObservedProperties")
    names = [p["name"] for p in client.get(f"/v1.1/MultiDatastreams({mds})/ObservedProperties").json()["value"]]
    assert names == ["PM2.5", "PM10", "NO2"]  # in the order of the result's values
    assert client.get(f"/v1.1/MultiDatastreams({mds})/Thing").json()["@iot.id"] == thing
    no2 = client.get("/v1.1/ObservedProperties", params={"$filter": "name eq 'NO2'"}).json()["value"][0]["@iot.id"]
    assert [m["@iot.id"] for m in client.get(f"/v1.1/ObservedProperties({no2})/MultiDatastreams").json()["value"]] == [
        mds
    ]
    assert "MultiDatastreams" in {e["name"] for e in client.get("/v1.1").json()["value"]}
    conformance = client.get("/v1.1").json()["serverSettings"]["conformance"]
    assert "http://www.opengis.net/spec/iot_sensing/1.1/req/multi-datastream" in conformance
    found = client.get("/v1.1/MultiDatastreams", params={"$filter": "ObservedProperties/any(p: p/name eq 'PM10')"})
    assert [m["@iot.id"] for m in found.json()["value"]] == [mds]
    expanded = client.get(f"/v1.1/Things({thing})", params={"$expand": "MultiDatastreams($expand=ObservedProperties)"})
    assert [p["name"] for p in expanded.json()["MultiDatastreams"][0]["ObservedProperties"]] == ["PM2.5", "PM10", "NO2"]


def test_arrays_must_agree_and_the_type_is_complex(client: TestClient) -> None:
    thing, _ = _monitor(client)
    sensor = client.get("/v1.1/Sensors").json()["value"][0]["@iot.id"]
    ops = [p["@iot.id"] for p in client.get("/v1.1/ObservedProperties").json()["value"]]
    base: dict[str, Any] = {
        "name": "Wind", "description": "speed and direction", "Thing": {"@iot.id": thing},
        "Sensor": {"@iot.id": sensor}, "unitOfMeasurements": [UGM3, UGM3],
        "multiObservationDataTypes": [OM_MEASUREMENT, OM_MEASUREMENT],
        "ObservedProperties": [{"@iot.id": ops[0]}, {"@iot.id": ops[1]}],
    }  # fmt: skip
    assert client.post("/v1.1/MultiDatastreams", json=base).status_code == 201
    for change, field in (
        ({"multiObservationDataTypes": [OM_MEASUREMENT]}, "multiObservationDataTypes"),
        ({"ObservedProperties": [{"@iot.id": ops[0]}]}, "ObservedProperties"),
        ({"unitOfMeasurements": []}, "unitOfMeasurements"),
        ({"observationType": OM_MEASUREMENT}, "observationType"),
    ):
        r = client.post("/v1.1/MultiDatastreams", json={**base, **change})
        assert r.status_code == 400 and r.json()["field"] == field, (change, r.text)


def test_observations_hold_one_value_per_observed_property(client: TestClient, admin_key: str) -> None:
    _, mds = _monitor(client)
    url = f"/v1.1/MultiDatastreams({mds})/Observations"
    r = client.post(url, json={"phenomenonTime": "2026-01-15T01:00:00Z", "result": [35.5, 60, 21.2]})
    assert r.status_code == 201, r.text
    first = r.json()["@iot.id"]
    r = client.post("/v1.1/Observations", json={"phenomenonTime": "2026-01-15T02:00:00Z", "result": [40, 70, 25],
                                                "MultiDatastream": {"@iot.id": mds}})  # fmt: skip
    assert r.status_code == 201, r.text
    for body, field in (
        ({"phenomenonTime": "2026-01-15T03:00:00Z", "result": [1, 2]}, "result"),
        ({"phenomenonTime": "2026-01-15T03:00:00Z", "result": 35.5}, "result"),
    ):
        r = client.post(url, json=body)
        assert r.status_code == 400 and r.json()["field"] == field, r.text
    r = client.post("/v1.1/Observations", json={"phenomenonTime": "2026-01-15T03:00:00Z", "result": [1, 2, 3],
                                                "Datastream": {"@iot.id": mds}})  # fmt: skip
    assert r.status_code == 400 and r.json()["field"] == "Datastream"
    got = client.get(url, params={"$orderby": "phenomenonTime"}).json()["value"]
    assert [o["result"] for o in got] == [[35.5, 60, 21.2], [40, 70, 25]]
    assert client.get(f"/v1.1/Observations({first})/MultiDatastream").json()["@iot.id"] == mds
    assert client.get(f"/v1.1/Observations({first})/Datastream").status_code == 404
    by_stream = client.get("/v1.1/Observations", params={"$filter": f"MultiDatastream/id eq {mds}"}).json()["value"]
    assert len(by_stream) == 2
    stream = client.get(f"/v1.1/MultiDatastreams({mds})").json()
    assert stream["phenomenonTime"] == "2026-01-15T01:00:00Z/2026-01-15T02:00:00Z"
    assert stream["observedArea"] == {"type": "Point", "coordinates": [105.8817, 21.0486]}
    # Bulk ingest holds MultiDatastream rows to the same rule, naming the row.
    rows = [{"datastream": mds, "phenomenonTime": "2026-01-15T04:00:00Z", "result": [1, 2, 3]},
            {"datastream": mds, "phenomenonTime": "2026-01-15T05:00:00Z", "result": [1, 2]}]  # fmt: skip
    ndjson = b"\n".join(orjson.dumps(r) for r in rows)
    r = client.post("/api/v1/ingest", content=ndjson, headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 422, r.text
    assert [(e["index"], e["field"]) for e in r.json()["errors"]] == [(1, "result")]
    dense = client.get(url, params={"$resultFormat": "dataArray", "$select": "phenomenonTime,result"}).json()
    assert dense["value"][0]["dataArray"][0][1] == [35.5, 60, 21.2]


def test_deleting_an_observed_property_deletes_its_multi_datastreams(client: TestClient) -> None:
    thing, mds = _monitor(client)
    obs = {"phenomenonTime": "2026-01-15T01:00:00Z", "result": [1, 2, 3]}
    assert client.post(f"/v1.1/MultiDatastreams({mds})/Observations", json=obs).status_code == 201
    no2 = client.get("/v1.1/ObservedProperties", params={"$filter": "name eq 'NO2'"}).json()["value"][0]["@iot.id"]
    assert client.delete(f"/v1.1/ObservedProperties({no2})").status_code == 200
    assert client.get(f"/v1.1/MultiDatastreams({mds})").status_code == 404
    assert client.get("/v1.1/Observations").json()["value"] == []
    _, again = _monitor(client)
    assert client.delete(f"/v1.1/Things({client.get(f'/v1.1/MultiDatastreams({again})/Thing').json()['@iot.id']})")
    assert client.get(f"/v1.1/MultiDatastreams({again})").status_code == 404
    assert thing


def test_create_observations_of_a_multi_datastream(client: TestClient, station: dict[str, int]) -> None:
    """CreateObservations takes a MultiDatastream's group as it takes a Datastream's; a group naming the other kind
    of stream (the two share one id space) is an error line per row, as a Datastream id that names nothing is."""
    _, mds = _monitor(client)
    ds = station["datastream"]
    rows = [["2026-01-15T01:00:00Z", [35.5, 60, 21.2]], ["2026-01-15T02:00:00Z", 30]]
    body: list[dict[str, Any]] = [
        {"MultiDatastream": {"@iot.id": mds}, "components": ["phenomenonTime", "result"], "dataArray": rows},
        {"Datastream": {"@iot.id": mds}, "components": ["phenomenonTime", "result"], "dataArray": rows[:1]},
        {"MultiDatastream": {"@iot.id": ds}, "components": ["result"], "dataArray": [[1]]},
        {"Datastream": {"@iot.id": ds}, "components": ["phenomenonTime", "result"], "dataArray": [rows[1]]},
    ]
    r = client.post("/v1.1/CreateObservations", json=body)
    assert r.status_code == 201, r.text
    lines = r.json()
    assert lines[0].startswith("http://testserver/v1.1/Observations(")
    assert lines[1].startswith("error: result must be an array")
    assert lines[2:4] == [
        f"error: Datastream no Datastream has id {mds}",
        f"error: MultiDatastream no MultiDatastream has id {ds}",
    ]
    assert lines[4].startswith("http://testserver/v1.1/Observations(")
    got = client.get(f"/v1.1/MultiDatastreams({mds})/Observations").json()["value"]
    assert [o["result"] for o in got] == [[35.5, 60, 21.2]]
    r = client.post("/v1.1/CreateObservations", json=[{**body[0], "Datastream": {"@iot.id": ds}}])
    assert r.status_code == 400 and r.json()["field"] == "[0].MultiDatastream", r.text
