"""SensorThings v1.1 entities: create, read, update, delete, deep insert, addressing, $value and $ref."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import OM_MEASUREMENT, UGM3, station_body


def test_service_root_lists_entity_sets(client: TestClient) -> None:
    body = client.get("/v1.1").json()
    names = {v["name"] for v in body["value"]}
    assert names == {
        "Things",
        "Locations",
        "HistoricalLocations",
        "Sensors",
        "ObservedProperties",
        "Datastreams",
        "MultiDatastreams",
        "Observations",
        "FeaturesOfInterest",
    }  # and, with CITYHUB_TASKING, the Tasking Core's (tests/test_sta_tasking.py)
    assert any("create-update-delete" in c for c in body["serverSettings"]["conformance"])


def test_create_read_update_delete_thing(client: TestClient) -> None:
    # Spec example (SensorThings v1.1 §10.2, Example: create a Thing)
    r = client.post(
        "/v1.1/Things",
        json={
            "name": "Oven",
            "description": "This thing is an oven.",
            "properties": {"owner": "Noah Liang", "color": "Black"},
        },
    )
    assert r.status_code == 201, r.text
    thing = r.json()
    assert r.headers["location"] == thing["@iot.selfLink"]
    assert thing["@iot.selfLink"].endswith(f"/v1.1/Things({thing['@iot.id']})")
    assert thing["Datastreams@iot.navigationLink"].endswith("/Datastreams")
    assert thing["properties"] == {"owner": "Noah Liang", "color": "Black"}

    got = client.get(f"/v1.1/Things({thing['@iot.id']})").json()
    assert got == thing

    r = client.patch(f"/v1.1/Things({thing['@iot.id']})", json={"description": "a black oven"})
    assert r.status_code == 200, r.text
    assert r.json()["description"] == "a black oven"
    assert r.json()["name"] == "Oven"

    assert client.delete(f"/v1.1/Things({thing['@iot.id']})").status_code == 200
    r = client.get(f"/v1.1/Things({thing['@iot.id']})")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


def test_deep_insert_creates_everything_and_a_historical_location(client: TestClient) -> None:
    r = client.post("/v1.1/Things", json=station_body(n_ds=2))
    assert r.status_code == 201, r.text
    tid = r.json()["@iot.id"]
    ds = client.get(f"/v1.1/Things({tid})/Datastreams").json()["value"]
    assert len(ds) == 2
    assert ds[0]["unitOfMeasurement"] == UGM3
    assert ds[0]["observationType"] == OM_MEASUREMENT
    locs = client.get(f"/v1.1/Things({tid})/Locations").json()["value"]
    assert locs[0]["location"] == {"type": "Point", "coordinates": [105.8535, 21.0245]}
    hls = client.get(f"/v1.1/Things({tid})/HistoricalLocations").json()["value"]
    assert len(hls) == 1
    assert (
        client.get(f"/v1.1/HistoricalLocations({hls[0]['@iot.id']})/Locations").json()["value"][0]["@iot.id"]
        == locs[0]["@iot.id"]
    )
    # to-one navigation returns the entity itself
    thing = client.get(f"/v1.1/Datastreams({ds[0]['@iot.id']})/Thing").json()
    assert thing["@iot.id"] == tid
    sensor = client.get(f"/v1.1/Datastreams({ds[0]['@iot.id']})/Sensor").json()
    assert sensor["name"] == "BAM-1020"
    # deeper paths
    assert (
        client.get(f"/v1.1/Datastreams({ds[0]['@iot.id']})/Thing/Locations").json()["value"][0]["name"] == "Hoàn Kiếm"
    )


def test_create_under_a_parent_and_link_by_id(client: TestClient, station: dict) -> None:
    sensor = client.get(f"/v1.1/Datastreams({station['datastream']})/Sensor").json()["@iot.id"]
    prop = client.get(f"/v1.1/Datastreams({station['datastream']})/ObservedProperty").json()["@iot.id"]
    r = client.post(
        f"/v1.1/Things({station['thing']})/Datastreams",
        json={
            "name": "PM10",
            "description": "PM10",
            "observationType": OM_MEASUREMENT,
            "unitOfMeasurement": UGM3,
            "Sensor": {"@iot.id": sensor},
            "ObservedProperty": {"@iot.id": prop},
        },
    )
    assert r.status_code == 201, r.text
    assert client.get(f"/v1.1/Datastreams({r.json()['@iot.id']})/Thing").json()["@iot.id"] == station["thing"]
    # a link to a missing entity names the field
    r = client.post(
        "/v1.1/Datastreams",
        json={
            "name": "x",
            "description": "x",
            "observationType": OM_MEASUREMENT,
            "unitOfMeasurement": UGM3,
            "Thing": {"@iot.id": 999},
            "Sensor": {"@iot.id": sensor},
            "ObservedProperty": {"@iot.id": prop},
        },
    )
    assert r.status_code == 400
    assert r.json()["field"] == "Thing.@iot.id"


def test_value_and_ref(client: TestClient, station: dict) -> None:
    r = client.get(f"/v1.1/Things({station['thing']})/name")
    assert r.json() == {"name": "Trạm Hoàn Kiếm"}
    r = client.get(f"/v1.1/Things({station['thing']})/name/$value")
    assert r.text == "Trạm Hoàn Kiếm"
    assert r.headers["content-type"].startswith("text/plain")
    refs = client.get(f"/v1.1/Things({station['thing']})/Datastreams/$ref").json()
    assert refs["value"] == [{"@iot.selfLink": f"http://testserver/v1.1/Datastreams({station['datastream']})"}]


def test_observation_crud_and_default_feature_of_interest(client: TestClient, station: dict) -> None:
    ds = station["datastream"]
    r = client.post(
        "/v1.1/Observations",
        json={
            "phenomenonTime": "2026-01-15T08:00:00+07:00",
            "result": 187.5,
            "Datastream": {"@iot.id": ds},
        },
    )
    assert r.status_code == 201, r.text
    obs = r.json()
    assert obs["phenomenonTime"] == "2026-01-15T01:00:00Z"
    assert obs["result"] == 187.5
    foi = client.get(f"/v1.1/Observations({obs['@iot.id']})/FeatureOfInterest").json()
    assert foi["feature"] == {"type": "Point", "coordinates": [105.8535, 21.0245]}
    # posted under the Datastream, the same FeatureOfInterest is reused
    r = client.post(
        f"/v1.1/Datastreams({ds})/Observations",
        json={"phenomenonTime": "2026-01-15T02:00:00Z", "result": 150},
    )
    assert r.status_code == 201, r.text
    assert (
        client.get(f"/v1.1/Observations({r.json()['@iot.id']})/FeatureOfInterest").json()["@iot.id"] == foi["@iot.id"]
    )
    assert client.get("/v1.1/FeaturesOfInterest").json()["value"].__len__() == 1

    r = client.patch(f"/v1.1/Observations({obs['@iot.id']})", json={"result": 190.0})
    assert r.status_code == 200, r.text
    assert r.json()["result"] == 190.0
    latest = client.get(f"/api/v1/latest?datastreams={ds}").json()["value"][0]
    assert latest["result"] == 150  # the later observation stays the latest
    assert client.delete(f"/v1.1/Observations({r.json()['@iot.id']})").status_code == 200
    assert client.get(f"/v1.1/Datastreams({ds})/Observations?$count=true").json()["@iot.count"] == 1


def test_datastream_phenomenon_time_is_derived(client: TestClient, station: dict) -> None:
    ds = station["datastream"]
    for t, v in (("2026-01-01T00:00:00Z", 1), ("2026-01-03T00:00:00Z", 3)):
        assert (
            client.post(f"/v1.1/Datastreams({ds})/Observations", json={"phenomenonTime": t, "result": v}).status_code
            == 201
        )
    assert (
        client.get(f"/v1.1/Datastreams({ds})").json()["phenomenonTime"] == "2026-01-01T00:00:00Z/2026-01-03T00:00:00Z"
    )


def test_same_observation_twice_is_stored_once(client: TestClient, station: dict) -> None:
    body = {
        "phenomenonTime": "2026-01-15T01:00:00Z",
        "result": 42.0,
        "Datastream": {"@iot.id": station["datastream"]},
    }
    first = client.post("/v1.1/Observations", json=body)
    again = client.post("/v1.1/Observations", json=body)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["@iot.id"] == first.json()["@iot.id"]
    other = client.post("/v1.1/Observations", json={**body, "result": 43.0})
    assert other.status_code == 409
    assert other.json()["field"] == "phenomenonTime"
    obs = client.get(f"/v1.1/Datastreams({station['datastream']})/Observations").json()["value"]
    assert [o["result"] for o in obs] == [42.0]


def test_delete_thing_cascades(client: TestClient, station: dict) -> None:
    client.post(
        f"/v1.1/Datastreams({station['datastream']})/Observations",
        json={"phenomenonTime": "2026-01-01T00:00:00Z", "result": 1},
    )
    assert client.delete(f"/v1.1/Things({station['thing']})").status_code == 200
    assert client.get(f"/v1.1/Datastreams({station['datastream']})").status_code == 404
    assert client.get("/v1.1/Observations").json()["value"] == []
    assert client.get("/v1.1/HistoricalLocations").json()["value"] == []
    assert client.get("/api/v1/latest").json()["value"] == []


def test_patch_thing_locations_records_history(client: TestClient, station: dict) -> None:
    moved = {
        "name": "moved",
        "description": "new place",
        "encodingType": "application/geo+json",
        "location": {"type": "Point", "coordinates": [105.80, 21.03]},
    }
    # A PATCH links existing entities; one written inline is refused (ets-sta10 invalidPatchEntities)
    r = client.patch(f"/v1.1/Things({station['thing']})", json={"Locations": [moved]})
    assert (r.status_code, r.json()["field"]) == (400, "Locations[0]")
    loc = client.post("/v1.1/Locations", json=moved).json()["@iot.id"]
    r = client.patch(f"/v1.1/Things({station['thing']})", json={"Locations": [{"@iot.id": loc}]})
    assert r.status_code == 200, r.text
    locs = client.get(f"/v1.1/Things({station['thing']})/Locations").json()["value"]
    assert [loc["name"] for loc in locs] == ["moved"]
    assert len(client.get(f"/v1.1/Things({station['thing']})/HistoricalLocations").json()["value"]) == 2


# Bodies from the SensorThings API v1.1 specification's examples.
SPEC_BODIES = {
    "Locations": {
        "name": "UofC CCIT",
        "description": "University of Calgary, CCIT building",
        "encodingType": "application/geo+json",
        "location": {"type": "Point", "coordinates": [-114.133, 51.08]},
    },
    "Sensors": {
        "name": "TMP36",
        "description": "TMP36 - Analog Temperature sensor",
        "encodingType": "application/pdf",
        "metadata": "http://example.org/TMP35_36_37.pdf",
    },
    "ObservedProperties": {
        "name": "Area Temperature",
        "description": "The degree or intensity of heat present in the area",
        "definition": "http://www.qudt.org/qudt/owl/1.0.0/quantity/Instances.html#AreaTemperature",
    },
    "FeaturesOfInterest": {
        "name": "Weather Station YYC.",
        "description": "This is a weather station located at the Calgary Airport.",
        "encodingType": "application/geo+json",
        "feature": {"type": "Point", "coordinates": [-114.06, 51.05]},
    },
}
PATCHES = {
    "Locations": {"name": "CCIT"},
    "Sensors": {"description": "a temperature sensor"},
    "ObservedProperties": {"name": "Air temperature"},
    "FeaturesOfInterest": {"feature": {"type": "Point", "coordinates": [-114.0, 51.0]}},
}


@pytest.mark.parametrize("entity_set", list(SPEC_BODIES))
def test_crud_of_each_entity_set(client: TestClient, entity_set: str) -> None:
    r = client.post(f"/v1.1/{entity_set}", json=SPEC_BODIES[entity_set])
    assert r.status_code == 201, r.text
    created = r.json()
    for k, v in SPEC_BODIES[entity_set].items():
        assert created[k] == v
    link = created["@iot.selfLink"].replace("http://testserver", "")
    assert client.get(link).json() == created
    listed = client.get(f"/v1.1/{entity_set}", params={"$count": "true"}).json()
    assert listed["@iot.count"] == 1
    r = client.patch(link, json=PATCHES[entity_set])
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in PATCHES[entity_set]} == PATCHES[entity_set]
    assert client.delete(link).status_code == 200
    assert client.get(link).status_code == 404


def test_datastream_and_observation_from_spec_examples(client: TestClient) -> None:
    thing = client.post("/v1.1/Things", json={"name": "Oven", "description": "an oven"}).json()["@iot.id"]
    sensor = client.post("/v1.1/Sensors", json=SPEC_BODIES["Sensors"]).json()["@iot.id"]
    prop = client.post("/v1.1/ObservedProperties", json=SPEC_BODIES["ObservedProperties"]).json()["@iot.id"]
    foi = client.post("/v1.1/FeaturesOfInterest", json=SPEC_BODIES["FeaturesOfInterest"]).json()["@iot.id"]
    r = client.post(
        "/v1.1/Datastreams",
        json={
            "unitOfMeasurement": {
                "name": "Celsius",
                "symbol": "degC",
                "definition": "http://qudt.org/vocab/unit#DegreeCelsius",
            },
            "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
            "description": "Temperature measurement",
            "name": "Temperature",
            "Thing": {"@iot.id": thing},
            "ObservedProperty": {"@iot.id": prop},
            "Sensor": {"@iot.id": sensor},
        },
    )
    assert r.status_code == 201, r.text
    ds = r.json()["@iot.id"]
    r = client.post(
        "/v1.1/Observations",
        json={
            "phenomenonTime": "2017-02-07T18:02:00.000Z",
            "resultTime": "2017-02-07T18:02:05.000Z",
            "result": 21.6,
            "Datastream": {"@iot.id": ds},
            "FeatureOfInterest": {"@iot.id": foi},
            "parameters": {"battery": 0.93},
            "resultQuality": {"uncertainty": 0.5},
            "validTime": "2017-02-07T18:00:00Z/2017-02-07T19:00:00Z",
        },
    )
    assert r.status_code == 201, r.text
    obs = r.json()
    assert obs["resultTime"] == "2017-02-07T18:02:05Z"
    assert obs["validTime"] == "2017-02-07T18:00:00Z/2017-02-07T19:00:00Z"
    assert obs["parameters"] == {"battery": 0.93}
    assert obs["resultQuality"] == {"uncertainty": 0.5}
    assert client.get(f"/v1.1/Observations({obs['@iot.id']})/FeatureOfInterest").json()["@iot.id"] == foi
    # A Thing without a Location cannot give an Observation a FeatureOfInterest.
    r = client.post(
        f"/v1.1/Datastreams({ds})/Observations", json={"phenomenonTime": "2017-02-07T18:03:00Z", "result": 21.7}
    )
    assert r.status_code == 400
    assert r.json()["field"] == "FeatureOfInterest"
    # Observation types: a count must be an integer, truth a boolean, a category a string.
    for otype, good, bad in (
        ("OM_CountObservation", 3, 2.5),
        ("OM_TruthObservation", True, "yes"),
        ("OM_CategoryObservation", "haze", [1]),
    ):
        d = client.post(
            f"/v1.1/Things({thing})/Datastreams",
            json={
                "name": otype,
                "description": otype,
                "unitOfMeasurement": {},
                "observationType": f"http://www.opengis.net/def/observationType/OGC-OM/2.0/{otype}",
                "Sensor": {"@iot.id": sensor},
                "ObservedProperty": {"@iot.id": prop},
            },
        ).json()["@iot.id"]
        body = {"phenomenonTime": "2017-02-07T18:02:00Z", "FeatureOfInterest": {"@iot.id": foi}}
        ok = client.post(f"/v1.1/Datastreams({d})/Observations", json={**body, "result": good})
        assert ok.status_code == 201, ok.text
        assert ok.json()["result"] == good
        no = client.post(
            f"/v1.1/Datastreams({d})/Observations",
            json={**body, "result": bad, "phenomenonTime": "2017-02-07T18:03:00Z"},
        )
        assert no.status_code == 400, (otype, no.text)
        assert no.json()["field"] == "result"


def test_references_link_and_unlink(client: TestClient, station: dict) -> None:
    loc = client.post("/v1.1/Locations", json=SPEC_BODIES["Locations"]).json()
    thing = station["thing"]
    r = client.post(f"/v1.1/Things({thing})/Locations/$ref", json={"@iot.selfLink": loc["@iot.selfLink"]})
    assert r.status_code == 204, r.text
    assert len(client.get(f"/v1.1/Things({thing})/Locations").json()["value"]) == 2
    assert len(client.get(f"/v1.1/Things({thing})/HistoricalLocations").json()["value"]) == 2
    assert client.delete(f"/v1.1/Things({thing})/Locations({loc['@iot.id']})/$ref").status_code == 204
    assert len(client.get(f"/v1.1/Things({thing})/Locations").json()["value"]) == 1
    assert client.get(f"/v1.1/Locations({loc['@iot.id']})").status_code == 200  # unlinked, not deleted
    # to-one: PUT a new Sensor
    sensor = client.post("/v1.1/Sensors", json=SPEC_BODIES["Sensors"]).json()["@iot.id"]
    ds = station["datastream"]
    assert client.put(f"/v1.1/Datastreams({ds})/Sensor/$ref", json={"@iot.id": sensor}).status_code == 204
    assert client.get(f"/v1.1/Datastreams({ds})/Sensor").json()["@iot.id"] == sensor
    assert client.delete(f"/v1.1/Datastreams({ds})/Sensor/$ref").status_code == 400
    bad = client.post(f"/v1.1/Things({thing})/Locations/$ref", json={"@iot.id": 999})
    assert bad.status_code == 400
    # PUT replaces a whole entity (test_sta_requests.py): one without a required property is refused
    put = client.put(f"/v1.1/Things({thing})", json={"name": "x"})
    assert (put.status_code, put.json()["field"]) == (400, "description")


def test_deep_insert_with_observations(client: TestClient) -> None:
    body = station_body("Tây Mỗ", 105.747, 21.0058)
    body["Datastreams"][0]["Observations"] = [
        {"phenomenonTime": "2026-01-10T00:00:00Z", "result": 150.2},
        {"phenomenonTime": "2026-01-10T01:00:00Z", "result": 161.0},
    ]
    r = client.post("/v1.1/Things", json=body)
    assert r.status_code == 201, r.text
    ds = client.get(f"/v1.1/Things({r.json()['@iot.id']})/Datastreams").json()["value"][0]["@iot.id"]
    obs = client.get(
        f"/v1.1/Datastreams({ds})/Observations", params={"$orderby": "phenomenonTime", "$expand": "FeatureOfInterest"}
    ).json()
    assert [o["result"] for o in obs["value"]] == [150.2, 161.0]
    assert obs["value"][0]["FeatureOfInterest"]["feature"]["coordinates"] == [105.747, 21.0058]
    assert client.get(f"/api/v1/latest?datastreams={ds}").json()["value"][0]["result"] == 161.0
    # A bad Observation inside a deep insert stores nothing at all.
    body = station_body("Kim Liên")
    body["Datastreams"][0]["Observations"] = [{"phenomenonTime": "2026-01-10T00:00:00", "result": 1}]
    r = client.post("/v1.1/Things", json=body)
    assert r.status_code == 400
    assert r.json()["field"] == "Datastreams[0].Observations[0].phenomenonTime"
    assert client.get("/v1.1/Things", params={"$filter": "name eq 'Trạm Kim Liên'"}).json()["value"] == []


def test_default_feature_of_interest_follows_the_things_location(client: TestClient) -> None:
    """The default FeatureOfInterest of each Datastream is cached in the hub; every change that gives the Thing
    another Location (a new link, an unlinked one) or removes the feature must reach the next Observation."""
    r = client.post("/v1.1/Things", json=station_body(n_ds=2))
    assert r.status_code == 201, r.text
    thing = r.json()["@iot.id"]
    ds1, ds2 = sorted(d["@iot.id"] for d in client.get(f"/v1.1/Things({thing})/Datastreams").json()["value"])
    first_location = client.get(f"/v1.1/Things({thing})/Locations").json()["value"][0]["@iot.id"]
    minute = iter(range(60))

    def foi_of_new_observation(ds: int) -> dict:
        body = {"phenomenonTime": f"2026-01-15T01:{next(minute):02d}:00Z", "result": 1.0, "Datastream": {"@iot.id": ds}}
        r = client.post("/v1.1/Observations", json=body)
        assert r.status_code == 201, r.text
        return client.get(f"/v1.1/Observations({r.json()['@iot.id']})/FeatureOfInterest").json()

    first = foi_of_new_observation(ds1)
    assert first["feature"]["coordinates"] == [105.8535, 21.0245]
    assert foi_of_new_observation(ds2)["@iot.id"] == first["@iot.id"]  # the Thing's Datastreams share it
    # The Thing moves: PATCHed with a new Location.
    moved = {
        "name": "Tây Hồ",
        "description": "Tây Hồ, Hà Nội",
        "encodingType": "application/geo+json",
        "location": {"type": "Point", "coordinates": [105.82, 21.07]},
    }
    moved_id = client.post("/v1.1/Locations", json=moved).json()["@iot.id"]
    assert client.patch(f"/v1.1/Things({thing})", json={"Locations": [{"@iot.id": moved_id}]}).status_code == 200
    second = foi_of_new_observation(ds2)
    assert second["@iot.id"] != first["@iot.id"] and second["feature"]["coordinates"] == [105.82, 21.07]
    assert foi_of_new_observation(ds1)["@iot.id"] == second["@iot.id"]
    location = client.get(f"/v1.1/Things({thing})/Locations").json()["value"][0]["@iot.id"]
    # Unlinked ($ref): the Thing has no Location, so an Observation needs a FeatureOfInterest of its own.
    assert client.delete(f"/v1.1/Things({thing})/Locations({location})/$ref").status_code == 204
    body = {"phenomenonTime": "2026-01-15T02:00:00Z", "result": 1.0, "Datastream": {"@iot.id": ds1}}
    r = client.post("/v1.1/Observations", json=body)
    assert r.status_code == 400 and r.json()["field"] == "FeatureOfInterest"
    # Linked again to the first Location: its feature is used again.
    assert client.post(f"/v1.1/Things({thing})/Locations/$ref", json={"@iot.id": first_location}).status_code == 204
    assert foi_of_new_observation(ds2)["@iot.id"] == first["@iot.id"]
    # The feature is deleted: the next Observation gets a new one made from the same Location.
    assert client.delete(f"/v1.1/FeaturesOfInterest({first['@iot.id']})").status_code == 200
    fourth = foi_of_new_observation(ds1)
    assert fourth["@iot.id"] != first["@iot.id"] and fourth["feature"]["coordinates"] == [105.8535, 21.0245]


def test_observation_posts_answer_as_the_routes_do(client: TestClient, station: dict) -> None:
    """POST /v1.1/Observations is served without the routers (api.sensorthings.ObservationPosts); its answers,
    errors included, are those of the route, and every other method and path is left to the routers."""
    r = client.post("/v1.1/Observations", json={"result": 1})
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == "Datastream" and r.json()["instance"] == "/v1.1/Observations"
    r = client.post("/v1.1/Observations", content=b"{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["field"] == "body"
    body = {"phenomenonTime": "2026-01-15T01:00:00Z", "result": 2.5, "Datastream": {"@iot.id": station["datastream"]}}
    r = client.post("/v1.1/Observations", json=body)
    assert r.status_code == 201 and r.headers["location"] == r.json()["@iot.selfLink"]
    assert r.json()["@iot.selfLink"] == f"http://testserver/v1.1/Observations({r.json()['@iot.id']})"
    assert client.post("/v1.1/Observations", json=body).status_code == 200  # the same one again
    anonymous = client.post("/v1.1/Observations", json=body, headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert client.get("/v1.1/Observations").status_code == 200
    assert client.put("/v1.1/Observations", json=body).status_code == 405


def test_a_linked_entity_may_carry_its_other_properties(client: TestClient, station: dict) -> None:
    """Issue 13: frost_sta_client links existing entities as the whole entity it holds, ``{"@iot.id": 5, "name":
    ...}``, and FROST-Server links by the id, ignoring the rest. CityHub answered 400 "@iot.id is assigned by the
    server", so no Datastream could be created from that client. Now the id links; the rest changes nothing."""
    thing = client.get(f"/v1.1/Things({station['thing']})").json()
    sensor = client.get(f"/v1.1/Datastreams({station['datastream']})/Sensor").json()
    prop = client.get(f"/v1.1/Datastreams({station['datastream']})/ObservedProperty").json()
    body = {
        "name": "PM10", "description": "PM10", "observationType": OM_MEASUREMENT, "unitOfMeasurement": UGM3,
        "Thing": {**thing, "name": "not applied"}, "Sensor": sensor, "ObservedProperty": prop,
    }  # fmt: skip
    r = client.post("/v1.1/Datastreams", json=body)
    assert r.status_code == 201, r.text
    ds = r.json()["@iot.id"]
    assert client.get(f"/v1.1/Datastreams({ds})/Thing").json()["@iot.id"] == station["thing"]
    assert client.get(f"/v1.1/Things({station['thing']})").json()["name"] == thing["name"]  # the rest ignored
    assert client.get(f"/v1.1/Datastreams({ds})/Sensor").json()["@iot.id"] == sensor["@iot.id"]
    # An Observation naming its Datastream as the whole entity; in the Datastream's own collection, the same one.
    full = client.get(f"/v1.1/Datastreams({ds})").json()
    r = client.post("/v1.1/Observations", json={"phenomenonTime": "2026-01-01T00:00:00Z", "result": 1,
                                                "Datastream": full})  # fmt: skip
    assert r.status_code == 201, r.text
    same = {"phenomenonTime": "2026-01-01T01:00:00Z", "result": 2, "Datastream": {"@iot.id": ds}}
    r = client.post(f"/v1.1/Datastreams({ds})/Observations", json=same)
    assert r.status_code == 201, r.text
    r = client.post(f"/v1.1/Datastreams({ds})/Observations",
                    json={"result": 3, "Datastream": {"@iot.id": station["datastream"]}})  # fmt: skip
    assert r.status_code == 400 and r.json()["field"] == "Datastream"
    assert [o["result"] for o in client.get(f"/v1.1/Datastreams({ds})/Observations?$orderby=phenomenonTime")
            .json()["value"]] == [1, 2]  # fmt: skip
    # PATCH links the same way; a top-level @iot.id is still refused.
    r = client.patch(f"/v1.1/Datastreams({ds})", json={"Sensor": {**sensor, "description": "ignored"}})
    assert r.status_code == 200, r.text
    r = client.post("/v1.1/Things", json={**thing, "name": "copy"})
    assert r.status_code == 400 and r.json()["field"] == "@iot.id"
