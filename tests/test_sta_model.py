"""The data model where SensorThings is lenient (issue 13, point 2), as FROST-Server's test data needs it: a
Datastream with another observationType ("someType") or none, a Location or FeatureOfInterest that is not GeoJSON
(text/plain: an address), kept as sent and invisible to the geo functions. Both stores, through the same tests."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import UGM3, station_body

OM_OBSERVATION = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Observation"


def _datastream(client: TestClient, thing: int, **extra: Any) -> dict[str, Any]:
    body = {
        "name": "Temperature", "description": "d", "unitOfMeasurement": UGM3,
        "Sensor": {"name": "Sensor 1", "description": "The first sensor.", "encodingType": "text", "metadata": "m"},
        "ObservedProperty": {"name": "Temperature", "definition": "http://ucom.org/temperature", "description": "d"},
        **extra,
    }  # fmt: skip
    r = client.post(f"/v1.1/Things({thing})/Datastreams", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_any_observation_type_or_none(client: TestClient) -> None:
    loc = {"name": "L", "description": "d", "encodingType": "application/vnd.geo+json",
           "location": {"type": "Point", "coordinates": [8, 51]}}  # fmt: skip
    body = {"name": "Thing 1", "description": "The first thing.", "Locations": [loc]}
    thing = client.post("/v1.1/Things", json=body).json()["@iot.id"]
    some = _datastream(client, thing, observationType="someType")
    none = _datastream(client, thing)
    assert some["observationType"] == "someType"
    assert none["observationType"] == OM_OBSERVATION  # the type whose result is "Any"
    for ds, results in ((some, [1, "high", True, {"a": 1}]), (none, [2.5, None, [1, 2]])):
        for k, value in enumerate(results):
            body = {"phenomenonTime": f"2025-01-01T0{k}:00:00Z", "result": value}
            r = client.post(f"/v1.1/Datastreams({ds['@iot.id']})/Observations", json=body)
            assert r.status_code == 201, r.text
            assert client.get(r.headers["location"]).json()["result"] == value
    r = client.post(f"/v1.1/Things({thing})/Datastreams", json={**_body(), "observationType": ""})
    assert (r.status_code, r.json()["field"]) == (400, "observationType")
    # PATCH and PUT keep or default it the same way
    assert (
        client.patch(f"/v1.1/Datastreams({some['@iot.id']})", json={"observationType": "otherType"}).status_code == 200
    )
    r = client.put(
        f"/v1.1/Datastreams({some['@iot.id']})",
        json={k: v for k, v in _body().items() if k not in ("Sensor", "ObservedProperty")},
    )
    assert r.status_code == 200, r.text
    assert r.json()["observationType"] == OM_OBSERVATION


def _body() -> dict[str, Any]:
    return {"name": "n", "description": "d", "unitOfMeasurement": UGM3,
            "Sensor": {"name": "s", "description": "d", "encodingType": "text", "metadata": "m"},
            "ObservedProperty": {"name": "p", "definition": "d", "description": "d"}}  # fmt: skip


def test_locations_that_are_not_geojson(client: TestClient) -> None:
    body = station_body("Tràng Tiền")
    body["Locations"].append(
        {"name": "address", "description": "postal address", "encodingType": "text/plain",
         "location": "12 Tràng Tiền, Hoàn Kiếm, Hà Nội"}
    )  # fmt: skip
    r = client.post("/v1.1/Things", json=body)
    assert r.status_code == 201, r.text
    locations = client.get(f"/v1.1/Things({r.json()['@iot.id']})/Locations?$orderby=id").json()["value"]
    assert [loc["location"] for loc in locations][1] == "12 Tràng Tiền, Hoàn Kiếm, Hà Nội"
    # geo functions see no geometry in it: no error, no match
    near = "geo.distance(location, geography'POINT(105.8535 21.0245)') lt 0.01"
    assert [loc["name"] for loc in client.get("/v1.1/Locations", params={"$filter": near}).json()["value"]] == [
        "Tràng Tiền"
    ]
    for flt in ("st_within(location, geography'POLYGON((105 21, 106 21, 106 22, 105 22, 105 21))')",
                "geo.length(location) eq 0", "st_relate(location, geography'POINT(1 2)', 'T********')"):  # fmt: skip
        r = client.get("/v1.1/Locations", params={"$filter": flt})
        assert r.status_code == 200, (flt, r.text)
    # a FeatureOfInterest may be described in words too; GeoJSON ones are still checked
    foi = {"name": "Hồ Gươm", "description": "d", "encodingType": "text/plain", "feature": "the lake's north shore"}
    assert client.post("/v1.1/FeaturesOfInterest", json=foi).status_code == 201
    bad = {**foi, "encodingType": "application/geo+json", "feature": {"type": "Point", "coordinates": ["x"]}}
    r = client.post("/v1.1/FeaturesOfInterest", json=bad)
    assert (r.status_code, r.json()["field"]) == (400, "feature")
