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


def test_observed_properties_read_back_in_the_order_linked(client: TestClient) -> None:
    """Each value of the result is one ObservedProperty, in order, and one may be there twice (two sensors of one
    property); paths, $count, $ref and $expand list them so. From the ObservedProperty, each MultiDatastream once."""
    thing, _ = _monitor(client)
    sensor = client.get("/v1.1/Sensors").json()["value"][0]["@iot.id"]
    ops = {p["name"]: p["@iot.id"] for p in client.get("/v1.1/ObservedProperties").json()["value"]}
    body = {
        "name": "Twice", "description": "NO2 twice, then PM2.5", "Thing": {"@iot.id": thing},
        "Sensor": {"@iot.id": sensor}, "unitOfMeasurements": [UGM3] * 3,
        "multiObservationDataTypes": [OM_MEASUREMENT] * 3,
        "ObservedProperties": [{"@iot.id": ops["NO2"]}, {"@iot.id": ops["NO2"]}, {"@iot.id": ops["PM2.5"]}],
    }  # fmt: skip
    r = client.post("/v1.1/MultiDatastreams", json=body)
    assert r.status_code == 201, r.text
    mds = r.json()["@iot.id"]
    url = f"/v1.1/MultiDatastreams({mds})/ObservedProperties"
    got = client.get(url, params={"$count": "true"}).json()
    assert [p["name"] for p in got["value"]] == ["NO2", "NO2", "PM2.5"] and got["@iot.count"] == 3
    paged = client.get(url, params={"$top": "2", "$skip": "1"}).json()["value"]
    assert [p["name"] for p in paged] == ["NO2", "PM2.5"]
    refs = client.get(f"{url}/$ref").json()["value"]
    assert [r["@iot.selfLink"].rsplit("(", 1)[1] for r in refs] == [
        f"{ops['NO2']})",
        f"{ops['NO2']})",
        f"{ops['PM2.5']})",
    ]
    by_name = client.get(url, params={"$orderby": "name desc"}).json()["value"]
    assert [p["name"] for p in by_name] == ["PM2.5", "NO2", "NO2"]
    expanded = client.get(f"/v1.1/MultiDatastreams({mds})", params={"$expand": "ObservedProperties"}).json()
    assert [p["name"] for p in expanded["ObservedProperties"]] == ["NO2", "NO2", "PM2.5"]
    no2 = f"/v1.1/ObservedProperties({ops['NO2']})"
    listed = client.get(f"{no2}/MultiDatastreams", params={"$count": "true"}).json()
    assert sorted(m["@iot.id"] for m in listed["value"]) == sorted({mds, _}) and listed["@iot.count"] == 2
    inverse = client.get(no2, params={"$expand": "MultiDatastreams"}).json()["MultiDatastreams"]
    assert sorted(m["@iot.id"] for m in inverse) == sorted([mds, _])
    found = client.get("/v1.1/MultiDatastreams", params={"$filter": "ObservedProperties/any(p: p/name eq 'NO2')"})
    assert sorted(m["@iot.id"] for m in found.json()["value"]) == sorted([mds, _])


def test_a_patch_keeps_the_arrays_fitting_the_observed_properties(client: TestClient) -> None:
    """A PATCH that leaves unitOfMeasurements, multiObservationDataTypes and ObservedProperties of different lengths is
    a 400 naming the member that no longer fits, and changes nothing; the three changed together are taken, in the
    order given. The links of a MultiDatastream change on it: not from the ObservedProperty, nor by adding a $ref."""
    _, mds = _monitor(client)
    url = f"/v1.1/MultiDatastreams({mds})"
    ops = [p["@iot.id"] for p in client.get(f"{url}/ObservedProperties").json()["value"]]
    for change, field in (
        ({"unitOfMeasurements": [UGM3, UGM3]}, "unitOfMeasurements"),
        ({"multiObservationDataTypes": [OM_MEASUREMENT] * 4}, "multiObservationDataTypes"),
        ({"ObservedProperties": [{"@iot.id": ops[0]}]}, "ObservedProperties"),
        ({"unitOfMeasurements": [UGM3], "multiObservationDataTypes": [OM_MEASUREMENT]}, "multiObservationDataTypes"),
        ({"unitOfMeasurements": "µg/m³"}, "unitOfMeasurements"),
        ({"observationType": OM_MEASUREMENT}, "observationType"),
    ):
        r = client.patch(url, json=change)
        assert r.status_code == 400 and r.json()["field"] == field, (change, r.text)
    unchanged = client.get(url).json()
    assert (
        unchanged["unitOfMeasurements"] == [UGM3] * 3
        and len(client.get(f"{url}/ObservedProperties").json()["value"]) == 3
    )
    ppm = {"name": "parts per million", "symbol": "ppm", "definition": "http://qudt.org/vocab/unit/PPM"}
    r = client.patch(url, json={"unitOfMeasurements": [ppm, UGM3], "multiObservationDataTypes": [OM_MEASUREMENT] * 2,
                                "ObservedProperties": [{"@iot.id": ops[2]}, {"@iot.id": ops[0]}]})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["unitOfMeasurements"] == [ppm, UGM3]
    assert [p["@iot.id"] for p in client.get(f"{url}/ObservedProperties").json()["value"]] == [ops[2], ops[0]]
    r = client.post(f"{url}/Observations", json={"phenomenonTime": "2026-01-15T01:00:00Z", "result": [0.02, 35]})
    assert r.status_code == 201, r.text
    r = client.patch(f"/v1.1/ObservedProperties({ops[1]})", json={"MultiDatastreams": [{"@iot.id": mds}]})
    assert r.status_code == 400 and r.json()["field"] == "MultiDatastreams", r.text
    r = client.post(f"{url}/ObservedProperties/$ref", json={"@iot.id": ops[1]})
    assert r.status_code == 400 and r.json()["field"] == "ObservedProperties", r.text
    assert [p["@iot.id"] for p in client.get(f"{url}/ObservedProperties").json()["value"]] == [ops[2], ops[0]]
    # A MultiDatastream made with a new ObservedProperty has it first; an existing one cannot be linked so.
    new_md = {**{k: v for k, v in client.get(url).json().items() if k in ("name", "description")},
              "Thing": {"@iot.id": _thing_of(client, mds)},
              "Sensor": {"@iot.id": client.get(f"{url}/Sensor").json()["@iot.id"]},
              "unitOfMeasurements": [UGM3, UGM3], "multiObservationDataTypes": [OM_MEASUREMENT] * 2,
              "ObservedProperties": [{"@iot.id": ops[1]}]}  # fmt: skip
    r = client.post("/v1.1/ObservedProperties", json={**_op("O3"), "MultiDatastreams": [new_md]})
    assert r.status_code == 201, r.text
    made = client.get(f"/v1.1/ObservedProperties({r.json()['@iot.id']})/MultiDatastreams").json()["value"][0]["@iot.id"]
    names = [p["name"] for p in client.get(f"/v1.1/MultiDatastreams({made})/ObservedProperties").json()["value"]]
    assert names == ["O3", "PM10"]
    r = client.post("/v1.1/ObservedProperties", json={**_op("O3"), "MultiDatastreams": [{"@iot.id": mds}]})
    assert r.status_code == 400 and r.json()["field"] == "MultiDatastreams[0]", r.text


def _thing_of(client: TestClient, mds: int) -> int:
    return int(client.get(f"/v1.1/MultiDatastreams({mds})/Thing").json()["@iot.id"])


def test_unlinking_an_observed_property_drops_its_unit_and_type(client: TestClient) -> None:
    """DELETE of an ObservedProperty's $ref (from either side, or by $id) removes its values' unit and data type
    with it, so the arrays still fit; the last one cannot go (delete the MultiDatastream instead)."""
    _, mds = _monitor(client)
    url = f"/v1.1/MultiDatastreams({mds})"
    pm25, pm10, no2 = (p["@iot.id"] for p in client.get(f"{url}/ObservedProperties").json()["value"])
    ppm = {"name": "parts per million", "symbol": "ppm", "definition": "http://qudt.org/vocab/unit/PPM"}
    r = client.patch(url, json={"unitOfMeasurements": [UGM3, {**UGM3, "name": "PM10"}, ppm]})
    assert r.status_code == 200, r.text
    assert client.delete(f"/v1.1/ObservedProperties({pm10})/MultiDatastreams({mds})/$ref").status_code == 204
    got = client.get(url).json()
    assert got["unitOfMeasurements"] == [UGM3, ppm] and got["multiObservationDataTypes"] == [OM_MEASUREMENT] * 2
    assert [p["@iot.id"] for p in client.get(f"{url}/ObservedProperties").json()["value"]] == [pm25, no2]
    r = client.post(f"{url}/Observations", json={"phenomenonTime": "2026-01-15T01:00:00Z", "result": [35, 0.02]})
    assert r.status_code == 201, r.text
    r = client.delete(f"{url}/ObservedProperties/$ref", params={"$id": f"{url}/../ObservedProperties({pm25})"})
    assert r.status_code == 204, r.text
    assert client.get(url).json()["unitOfMeasurements"] == [ppm]
    r = client.delete(f"{url}/ObservedProperties({no2})/$ref")
    assert r.status_code == 409, r.text
    r = client.delete(f"{url}/ObservedProperties/$ref", params={"$id": f"Things({no2})"})
    assert r.status_code == 400 and r.json()["field"] == "$id", r.text
