"""Requests of SensorThings v1.1 beyond GET/POST/PATCH/DELETE of one entity (issue 13, point 5): PUT as full
replacement (§10.3.1), JSON Patch (RFC 6902, §10.3.2), ``$value`` of a null property, ``$select`` with
``$expand`` of the same navigation property, ``$resultFormat=dataArray`` without ``$select``, and a matching
Datastream in the body of ``POST Datastreams(1)/Observations``. Both stores, through the same tests."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.testclient import TestClient

from cityhub import model

JSON_PATCH = {"Content-Type": "application/json-patch+json"}


def _thing(client: TestClient, **extra: Any) -> int:
    r = client.post("/v1.1/Things", json={"name": "Sign 7", "description": "variable message sign", **extra})
    assert r.status_code == 201, r.text
    return int(r.json()["@iot.id"])


def _observation(client: TestClient, ds: int, t: str = "2025-01-01T00:00:00Z", **extra: Any) -> int:
    r = client.post(
        "/v1.1/Observations", json={"Datastream": {"@iot.id": ds}, "phenomenonTime": t, "result": 3, **extra}
    )
    assert r.status_code == 201, r.text
    return int(r.json()["@iot.id"])


# -- PUT -------------------------------------------------------------------------------------------------------
def test_put_replaces_the_entity_and_nulls_what_it_leaves_out(client: TestClient) -> None:
    tid = _thing(client, properties={"road": "Kim Mã"})
    r = client.put(f"/v1.1/Things({tid})", json={"name": "Sign 8", "description": "VMS at Kim Mã"})
    assert r.status_code == 200, r.text
    got = client.get(f"/v1.1/Things({tid})").json()
    assert (got["name"], got["description"], got["properties"]) == ("Sign 8", "VMS at Kim Mã", None)


def test_put_needs_every_required_property_and_changes_nothing_without(client: TestClient) -> None:
    tid = _thing(client)
    r = client.put(f"/v1.1/Things({tid})", json={"name": "only a name"})
    assert r.status_code == 400
    assert r.json()["field"] == "description"
    assert client.get(f"/v1.1/Things({tid})").json()["name"] == "Sign 7"
    assert client.put("/v1.1/Things(999999)", json={"name": "n", "description": "d"}).status_code == 404


def test_put_keeps_relations_it_does_not_name(client: TestClient, station: dict[str, int]) -> None:
    ds = station["datastream"]
    before = client.get(f"/v1.1/Datastreams({ds})?$expand=Thing,Sensor,ObservedProperty").json()
    body = {
        "name": "PM2.5 renamed",
        "description": "hourly PM2.5",
        "observationType": before["observationType"],
        "unitOfMeasurement": before["unitOfMeasurement"],
    }
    r = client.put(f"/v1.1/Datastreams({ds})", json=body)
    assert r.status_code == 200, r.text
    after = client.get(f"/v1.1/Datastreams({ds})?$expand=Thing,Sensor,ObservedProperty").json()
    assert after["name"] == "PM2.5 renamed"
    for nav in ("Thing", "Sensor", "ObservedProperty"):
        assert after[nav]["@iot.id"] == before[nav]["@iot.id"]


def test_put_of_an_observation(client: TestClient, station: dict[str, int]) -> None:
    ds = station["datastream"]
    oid = _observation(client, ds, parameters={"flag": "raw"})
    body = {"phenomenonTime": "2025-01-01T00:00:00Z", "result": 4.5, "Datastream": {"@iot.id": ds}}
    r = client.put(f"/v1.1/Observations({oid})", json=body)
    assert r.status_code == 200, r.text
    got = client.get(f"/v1.1/Observations({oid})").json()
    assert (got["result"], got["parameters"]) == (4.5, None)
    # phenomenonTime may not be null, and "now" would move a stored Observation: PUT must name it
    r = client.put(f"/v1.1/Observations({oid})", json={"result": 5})
    assert (r.status_code, r.json()["field"]) == (400, "phenomenonTime")
    # its Datastream may be repeated, not changed
    other = client.post("/v1.1/Things", json={"name": "t", "description": "d"}).json()["@iot.id"]
    other_ds = client.post(
        f"/v1.1/Things({other})/Datastreams",
        json={
            "name": "n", "description": "d", "observationType": got_type(client, ds),
            "unitOfMeasurement": {"name": "n", "symbol": "s", "definition": "d"},
            "Sensor": {"@iot.id": sensor_of(client, ds)},
            "ObservedProperty": {"name": "p", "definition": "d", "description": "d"},
        },
    ).json()["@iot.id"]  # fmt: skip
    r = client.put(f"/v1.1/Observations({oid})", json={**body, "Datastream": {"@iot.id": other_ds}})
    assert (r.status_code, r.json()["field"]) == (400, "Datastream")
    assert client.get(f"/v1.1/Observations({oid})").json()["result"] == 4.5


def got_type(client: TestClient, ds: int) -> str:
    return str(client.get(f"/v1.1/Datastreams({ds})").json()["observationType"])


def sensor_of(client: TestClient, ds: int) -> int:
    return int(client.get(f"/v1.1/Datastreams({ds})/Sensor").json()["@iot.id"])


# -- JSON Patch ------------------------------------------------------------------------------------------------
def test_json_patch_applies_rfc_6902_operations(client: TestClient) -> None:
    tid = _thing(client, properties={"road": "Kim Mã", "lanes": 4})
    ops = [
        {"op": "test", "path": "/name", "value": "Sign 7"},
        {"op": "replace", "path": "/name", "value": "Sign 9"},
        {"op": "add", "path": "/properties/direction", "value": "westbound"},
        {"op": "remove", "path": "/properties/lanes"},
        {"op": "copy", "from": "/name", "path": "/description"},
    ]
    r = client.patch(f"/v1.1/Things({tid})", content=orjson.dumps(ops), headers=JSON_PATCH)
    assert r.status_code == 200, r.text
    got = client.get(f"/v1.1/Things({tid})").json()
    assert got["name"] == got["description"] == "Sign 9"
    assert got["properties"] == {"road": "Kim Mã", "direction": "westbound"}


def test_json_patch_that_fails_changes_nothing(client: TestClient) -> None:
    tid = _thing(client)
    ops = [{"op": "replace", "path": "/name", "value": "x"}, {"op": "test", "path": "/description", "value": "no"}]
    r = client.patch(f"/v1.1/Things({tid})", content=orjson.dumps(ops), headers=JSON_PATCH)
    assert (r.status_code, r.json()["field"]) == (409, "body")
    for bad in (
        [{"op": "remove", "path": "/properties/none"}],  # properties is null
        [{"op": "jump", "path": "/name"}],
        {"op": "replace", "path": "/name", "value": "x"},  # not an array
        [{"op": "remove", "path": "/name"}],  # a required property cannot become null
    ):
        r = client.patch(f"/v1.1/Things({tid})", content=orjson.dumps(bad), headers=JSON_PATCH)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["field"] in ("body", "name")
    assert client.get(f"/v1.1/Things({tid})").json()["name"] == "Sign 7"


def test_json_patch_of_an_observation_result(client: TestClient, station: dict[str, int]) -> None:
    oid = _observation(client, station["datastream"])
    ops = [{"op": "replace", "path": "/result", "value": 12.5}, {"op": "add", "path": "/parameters", "value": {"q": 1}}]
    r = client.patch(f"/v1.1/Observations({oid})", content=orjson.dumps(ops), headers=JSON_PATCH)
    assert r.status_code == 200, r.text
    got = client.get(f"/v1.1/Observations({oid})").json()
    assert (got["result"], got["parameters"]) == (12.5, {"q": 1})
    latest = client.get(f"/api/v1/latest?datastreams={station['datastream']}").json()["value"][0]
    assert latest["result"] == 12.5  # the roll-ups follow, as for any PATCH


# -- reading -------------------------------------------------------------------------------------------------
def test_a_null_property_and_its_value_are_204(client: TestClient) -> None:
    tid = _thing(client)
    for path in ("properties", "properties/$value"):
        r = client.get(f"/v1.1/Things({tid})/{path}")
        assert (r.status_code, r.content) == (204, b""), path
    assert client.get(f"/v1.1/Things({tid})/name/$value").text == "Sign 7"


def test_select_with_expand_of_the_same_navigation_property(client: TestClient, station: dict[str, int]) -> None:
    r = client.get(f"/v1.1/Things({station['thing']})?$select=id,Datastreams&$expand=Datastreams($select=name)")
    assert r.status_code == 200, r.text
    assert r.json() == {"@iot.id": station["thing"], "Datastreams": [{"name": "PM2.5 Hoàn Kiếm 0"}]}


def test_data_array_without_select_has_every_observation_property(client: TestClient, station: dict[str, int]) -> None:
    ds = station["datastream"]
    oid = _observation(client, ds, resultTime="2025-01-01T00:05:00Z", parameters={"k": 1})
    r = client.get(f"/v1.1/Datastreams({ds})/Observations?$resultFormat=dataArray")
    assert r.status_code == 200, r.text
    (group,) = r.json()["value"]
    comps = ["id", "phenomenonTime", "resultTime", "result", "resultQuality", "validTime", "parameters"]
    assert group["components"] == comps
    assert group["dataArray"] == [[oid, "2025-01-01T00:00:00Z", "2025-01-01T00:05:00Z", 3.0, None, None, {"k": 1}]]


def test_matching_datastream_in_the_body_of_a_datastream_path(client: TestClient, station: dict[str, int]) -> None:
    ds = station["datastream"]
    body = {"phenomenonTime": "2025-01-01T00:00:00Z", "result": 1, "Datastream": {"@iot.id": ds}}
    r = client.post(f"/v1.1/Datastreams({ds})/Observations", json=body)
    assert r.status_code == 201, r.text
    r = client.post(f"/v1.1/Datastreams({ds})/Observations", json={**body, "Datastream": {"@iot.id": ds + 100}})
    assert (r.status_code, r.json()["field"]) == (400, "Datastream")


# -- members of JSON properties, OData 4.01's `in`, DELETE of a collection ---------------------------------------
def test_member_of_a_json_property_by_path_and_in_select(client: TestClient) -> None:
    thing = _thing(client, properties={"list": [[1, 2], [3, 4]], "obj": {"a": "x", "b": None}})
    r = client.get(f"/v1.1/Things({thing})/properties/list%5B1%5D%5B0%5D")
    assert r.status_code == 200 and r.json() == {"list[1][0]": 3}, r.text
    assert client.get(f"/v1.1/Things({thing})/properties/obj/a/$value").text == "x"
    assert client.get(f"/v1.1/Things({thing})/properties/obj/b").status_code == 204  # null, as a null property
    for missing in ("obj/c", "list%5B2%5D", "obj/a/b"):
        assert client.get(f"/v1.1/Things({thing})/properties/{missing}").status_code == 404, missing
    assert client.get(f"/v1.1/Things({thing})/name/x").status_code == 404  # a string has no members
    r = client.get(f"/v1.1/Things({thing})", params={"$select": "properties/obj/a,properties/list"})
    assert r.json() == {"properties": {"obj": {"a": "x"}, "list": [[1, 2], [3, 4]]}}, r.text
    # Indexed at once, and members of a result (any JSON value): a MultiDatastream's result[0], as FROST-Server
    assert client.get(f"/v1.1/Things({thing})/properties%5B0%5D").status_code == 404  # an object, not an array
    body = {"name": "any", "description": "d", "observationType": model.OM_OBSERVATION,
            "unitOfMeasurement": {"name": "n", "symbol": "", "definition": "d"}, "Thing": {"@iot.id": thing},
            "Sensor": {"name": "s", "description": "d", "encodingType": "text/html", "metadata": "m"},
            "ObservedProperty": {"name": "p", "definition": "d", "description": "d"}}  # fmt: skip
    ds = client.post("/v1.1/Datastreams", json=body).json()["@iot.id"]
    cases = (([4, 7.5], "result%5B1%5D", {"result[1]": 7.5}), ({"pm": [1, 2]}, "result/pm%5B0%5D", {"pm[0]": 1}))
    for minute, (result, path, expected) in enumerate(cases):
        foi = {"name": "f", "description": "d", "encodingType": "application/geo+json",
               "feature": {"type": "Point", "coordinates": [105.85, 21.03]}}  # fmt: skip
        obs = _observation(client, ds, f"2025-01-01T00:0{minute}:00Z", result=result, FeatureOfInterest=foi)
        got = client.get(f"/v1.1/Observations({obs})/{path}")
        assert got.status_code == 200 and got.json() == expected, got.text


def test_json_members_compare_by_their_json_type_and_in(client: TestClient) -> None:
    ids = [_thing(client, properties=p) for p in ({"n": 5, "tags": ["a", 5]}, {"n": "5", "tags": ["5"]}, {})]

    def found(flt: str) -> list[int]:
        r = client.get("/v1.1/Things", params={"$filter": flt})
        assert r.status_code == 200, r.text
        return sorted(ids.index(e["@iot.id"]) for e in r.json()["value"])

    assert found("properties/n gt 4") == [0]  # the string "5" is no number
    assert found("properties/n eq '5'") == [0, 1]  # as a string, a member is its JSON text
    assert found("properties/n in (4, 5)") == [0]
    assert found("'a' in properties/tags") == [0]
    assert found("5 in properties/tags") == [0]
    assert found("'5' in properties/tags") == [1]
    assert found("properties/tags[1] eq 5") == [0]
    assert client.get("/v1.1/Things", params={"$filter": "5 in name"}).status_code == 400


def test_delete_of_a_collection_deletes_what_its_filter_keeps(client: TestClient) -> None:
    ids = [_thing(client, properties={"n": n}) for n in range(4)]
    r = client.delete("/v1.1/Things", params={"$filter": "properties/n ge 2"})
    assert r.status_code == 200, r.text
    assert [e["@iot.id"] for e in client.get("/v1.1/Things").json()["value"]] == ids[:2]
    batch = {"requests": [{"id": "1", "atomicityGroup": "g", "method": "DELETE",
                           "url": "Things?$filter=properties/n%20eq%200"}]}  # fmt: skip
    assert client.post("/v1.1/$batch", json=batch).status_code == 200
    assert [e["@iot.id"] for e in client.get("/v1.1/Things").json()["value"]] == ids[1:2]
    assert client.delete("/v1.1/Things", params={"$filter": "nosuch eq 1"}).status_code == 400
    assert [e["@iot.id"] for e in client.get("/v1.1/Things").json()["value"]] == ids[1:2]
