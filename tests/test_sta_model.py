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


def test_observations_at_one_time_that_differ_in_result_time_feature_or_parameters(client: TestClient) -> None:
    """FROST's test data has them: one phenomenonTime, several resultTimes (a forecast issued twice), features or
    parameters. Each is its own Observation; the identical re-send stores once (answered with the stored one), one
    that differs only in its result is a conflict, and a PATCH may not make one the twin of another."""
    thing = client.post("/v1.1/Things", json=station_body("Trạm Cầu Giấy")).json()["@iot.id"]
    ds = _datastream(client, thing)["@iot.id"]
    url = f"/v1.1/Datastreams({ds})/Observations"
    t = "2025-03-01T07:00:00Z"
    foi = {"name": "Hồ Tây", "description": "lake", "encodingType": "application/vnd.geo+json",
           "feature": {"type": "Point", "coordinates": [105.82, 21.06]}}  # fmt: skip
    bodies = [
        {"phenomenonTime": t, "result": 1},
        {"phenomenonTime": t, "resultTime": "2025-03-01T06:00:00Z", "result": 2},
        {"phenomenonTime": t, "resultTime": "2025-03-01T06:30:00Z", "result": 3},
        {"phenomenonTime": t, "parameters": {"run": "a"}, "result": 4},
        {"phenomenonTime": t, "FeatureOfInterest": foi, "result": 5},
    ]
    made = []
    for body in bodies:
        r = client.post(url, json=body)
        assert r.status_code == 201, r.text
        made.append(r.json()["@iot.id"])
    assert len(set(made)) == 5
    again = client.post(url, json=bodies[1])
    assert again.status_code in (200, 201) and again.json()["@iot.id"] == made[1]
    clash = client.post(url, json={**bodies[1], "result": 99})
    assert clash.status_code == 409 and clash.json()["field"] == "phenomenonTime"
    got = client.get(f"{url}?$orderby=id&$select=id,result").json()["value"]
    assert [(o["@iot.id"], o["result"]) for o in got] == list(zip(made, [1, 2, 3, 4, 5], strict=True))
    # A filter finds the one it matches, not every Observation sharing its Datastream and time (the page of rows
    # is chosen by the whole key on PostgreSQL).
    one = client.get(url, params={"$filter": "resultTime eq 2025-03-01T06:30:00Z"}).json()["value"]
    assert [o["@iot.id"] for o in one] == [made[2]]
    # Intervals that start together are different Observations (hourly and daily means of one station).
    hourly = client.post(url, json={"phenomenonTime": "2025-03-02T00:00:00Z/2025-03-02T01:00:00Z", "result": 6})
    daily = client.post(url, json={"phenomenonTime": "2025-03-02T00:00:00Z/2025-03-03T00:00:00Z", "result": 7})
    assert (hourly.status_code, daily.status_code) == (201, 201)
    assert hourly.json()["@iot.id"] != daily.json()["@iot.id"]
    assert client.delete(f"/v1.1/Observations({hourly.json()['@iot.id']})").status_code == 200
    assert client.delete(f"/v1.1/Observations({daily.json()['@iot.id']})").status_code == 200
    # A PATCH that would make Observation 3 the twin of Observation 2 is refused; one to a free resultTime is not.
    twin = client.patch(f"/v1.1/Observations({made[2]})", json={"resultTime": "2025-03-01T06:00:00Z"})
    assert twin.status_code == 409 and twin.json()["field"] == "resultTime", twin.text
    free = client.patch(f"/v1.1/Observations({made[2]})", json={"resultTime": "2025-03-01T06:45:00Z"})
    assert free.status_code == 200, free.text
    moved = client.patch(f"/v1.1/Observations({made[0]})", json={"phenomenonTime": "2025-03-01T08:00:00Z"})
    assert moved.status_code == 200, moved.text
    back = client.patch(f"/v1.1/Observations({made[0]})", json={"phenomenonTime": t})  # a free variant again
    assert back.status_code == 200, back.text
    assert client.get(f"{url}?$count=true&$top=0").json()["@iot.count"] == 5
