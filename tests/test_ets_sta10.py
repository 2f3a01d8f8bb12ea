"""The OGC conformance suite for SensorThings (opengeospatial/ets-sta10), ported to pytest (issue 13, Tests).

Ported so far: ``sensingCore/Capability1Tests`` (conformance class "Sensing Core", level 1) and
``createUpdateDelete/Capability2Tests`` (level 2), test by test, each keeping its original name (``test_<name>``)
and checking what the Java test checks, with its request bodies, against the real application on either store.
Capability1 reads a service that already holds at least one entity of every type; ``populated`` makes one the way
the suite's own create tests do. Capability2's tests share the entities its create tests made (TestNG priorities);
here the ``cud`` fixture makes them for each test that needs them.

Not yet ported: ``filteringExtension/Capability3Tests`` (the README lists what the other tests cover meanwhile).
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import OM_MEASUREMENT, UGM3

ROOT = "http://testserver/v1.1"
LONG_MAX = 2**63 - 1
RESOURCE_PATH_LEVEL = 4  # Capability1Tests.resourcePathLevel

# EntityType.java: each type's plural, the properties the suite requires and the relations it follows.
ENTITY_TYPES: dict[str, tuple[str, list[str], list[str]]] = {
    "THING": ("Things", ["name", "description"], ["Datastreams", "HistoricalLocations", "Locations"]),
    "LOCATION": ("Locations", ["name", "description", "encodingType", "location"], ["HistoricalLocations", "Things"]),
    "HISTORICAL_LOCATION": ("HistoricalLocations", ["time"], ["Thing", "Locations"]),
    "DATASTREAM": (
        "Datastreams",
        ["name", "description", "unitOfMeasurement", "observationType"],
        ["Thing", "Sensor", "ObservedProperty", "Observations"],
    ),
    "SENSOR": ("Sensors", ["name", "description", "encodingType", "metadata"], ["Datastreams"]),
    "OBSERVATION": ("Observations", ["phenomenonTime", "result", "resultTime"], ["Datastream", "FeatureOfInterest"]),
    "OBSERVED_PROPERTY": ("ObservedProperties", ["name", "definition", "description"], ["Datastreams"]),
    "FEATURE_OF_INTEREST": ("FeaturesOfInterest", ["name", "description", "encodingType", "feature"], ["Observations"]),
}
ORDER = [
    "THING",
    "LOCATION",
    "HISTORICAL_LOCATION",
    "DATASTREAM",
    "SENSOR",
    "OBSERVATION",
    "OBSERVED_PROPERTY",
    "FEATURE_OF_INTEREST",
]
RELATION_TYPE = {
    "Thing": "THING",
    "Things": "THING",
    "Location": "LOCATION",
    "Locations": "LOCATION",
    "HistoricalLocation": "HISTORICAL_LOCATION",
    "HistoricalLocations": "HISTORICAL_LOCATION",
    "Datastream": "DATASTREAM",
    "Datastreams": "DATASTREAM",
    "Sensor": "SENSOR",
    "Sensors": "SENSOR",
    "Observation": "OBSERVATION",
    "Observations": "OBSERVATION",
    "ObservedProperty": "OBSERVED_PROPERTY",
    "ObservedProperties": "OBSERVED_PROPERTY",
    "FeatureOfInterest": "FEATURE_OF_INTEREST",
    "FeaturesOfInterest": "FEATURE_OF_INTEREST",
}
PLURALS = {plural for plural, _, _ in ENTITY_TYPES.values()}


@pytest.fixture
def populated(client: TestClient) -> TestClient:
    body = {
        "name": "Trạm quan trắc Hoàn Kiếm",
        "description": "air-quality station",
        "Locations": [
            {
                "name": "Hoàn Kiếm",
                "description": "Hồ Gươm",
                "encodingType": "application/geo+json",
                "location": {"type": "Point", "coordinates": [105.8535, 21.0245]},
            }
        ],
        "Datastreams": [
            {
                "name": "PM2.5",
                "description": "hourly PM2.5",
                "observationType": OM_MEASUREMENT,
                "unitOfMeasurement": UGM3,
                "Sensor": {
                    "name": "BAM-1020",
                    "description": "beta attenuation",
                    "encodingType": "application/pdf",
                    "metadata": "https://metone.com/bam-1020.pdf",
                },
                "ObservedProperty": {
                    "name": "PM2.5",
                    "definition": "http://dbpedia.org/resource/Particulates",
                    "description": "fine particulates",
                },
                "Observations": [
                    {
                        "phenomenonTime": "2025-01-15T08:00:00Z",
                        "resultTime": "2025-01-15T08:05:00Z",
                        "result": 87.5,
                        "FeatureOfInterest": {
                            "name": "Hồ Gươm",
                            "description": "the lake",
                            "encodingType": "application/geo+json",
                            "feature": {"type": "Point", "coordinates": [105.8525, 21.0287]},
                        },
                    }
                ],
            }
        ],
    }
    r = client.post("/v1.1/Things", json=body)
    assert r.status_code == 201, r.text
    return client


def _get(client: TestClient, path: str) -> tuple[int, Any]:
    r = client.get(f"/v1.1/{path}" if path else "/v1.1")
    ctype = r.headers.get("content-type", "")
    return r.status_code, r.json() if "json" in ctype else r.text


def _entities(client: TestClient, kind: str | None) -> dict[str, Any]:
    """getEntities: 200, and a "value"."""
    status, body = _get(client, ENTITY_TYPES[kind][0] if kind else "")
    assert status == 200, f"Error during getting entities: {kind or 'root URI'}"
    assert "value" in body, f'The GET entities response for {kind or "service root URI"} has no "value"'
    return dict(body)


def _check_entity(kind: str, entity: dict[str, Any]) -> None:
    """checkEntityControlInformation, checkEntityProperties, checkEntityRelations."""
    assert "@iot.id" in entity and "@iot.selfLink" in entity, f"{kind}: mandatory control information"
    for prop in ENTITY_TYPES[kind][1]:
        assert prop in entity, f'Entity type "{kind}" does not have mandatory property: "{prop}".'
    for relation in ENTITY_TYPES[kind][2]:
        link = f"{relation}@iot.navigationLink"
        assert link in entity, f'Entity type "{kind}" does not have mandatory relation: "{relation}".'


def test_readEntitiesAndCheckResponse(populated: TestClient) -> None:
    for kind in ORDER:
        for entity in _entities(populated, kind)["value"][:2]:
            _check_entity(kind, entity)


def test_readNonexistentEntity(populated: TestClient) -> None:
    for kind in ORDER:
        status, _ = _get(populated, f"{ENTITY_TYPES[kind][0]}({LONG_MAX})")
        assert status == 404, f"Reading non-existing {kind} with id {LONG_MAX} failed."


def _first_id(client: TestClient, kind: str) -> int:
    return int(_entities(client, kind)["value"][0]["@iot.id"])


def test_readEntityAndCheckResponse(populated: TestClient) -> None:
    for kind in ORDER:
        entity_id = _first_id(populated, kind)
        status, entity = _get(populated, f"{ENTITY_TYPES[kind][0]}({entity_id})")
        assert status == 200, f"Reading existing {kind} with id {entity_id} failed."
        _check_entity(kind, entity)


def test_readPropertyOfEntityAndCheckResponse(populated: TestClient) -> None:
    for kind in ORDER:
        plural, props, _ = ENTITY_TYPES[kind]
        entity_id = _first_id(populated, kind)
        for prop in props:
            status, body = _get(populated, f"{plural}({entity_id})/{prop}")
            assert status == 200, f'Reading property "{prop}" of the existing {kind} with id {entity_id} failed.'
            assert prop in body and len(body) == 1, f"The response for getting property {prop} of a {kind}"
            status, text = _get(populated, f"{plural}({entity_id})/{prop}/$value")
            assert status == 200, f'Reading property value of "{prop}" of the existing {kind} failed.'
            text = text if isinstance(text, str) else str(text)
            if prop in ("location", "feature", "unitOfMeasurement"):
                assert text.index("{") == 0, f'Reading property value of "{prop}" of "{kind}" fails.'
            else:
                assert "{" not in text, f'Reading property value of "{prop}" of "{kind}" fails.'


def _path(types: list[str], ids: list[int | None], suffix: str | None = None) -> str:
    """ServiceURLBuilder.buildURLString(rootUri, entityTypes, ids, property)."""
    parts = []
    for i, t in enumerate(types):
        parts.append(t if i >= len(ids) or ids[i] is None else f"{t}({ids[i]})")
    return "/".join(parts) + (f"/{suffix}" if suffix else "")


def _read_related_entity(client: TestClient, types: list[str], ids: list[int | None]) -> None:
    """readRelatedEntity: each chain of relations up to RESOURCE_PATH_LEVEL reads 200, with its $ref."""
    if len(types) > RESOURCE_PATH_LEVEL:
        return
    head = types[-1]
    plural = head in PLURALS
    url = _path(types, ids)
    status, body = _get(client, url)
    assert status == 200, f"Reading relation of the entity from request: {url} failed"
    if plural:
        assert body["value"], f"Expecting a non-empty list for request: {url}"
        found = int(body["value"][0]["@iot.id"])
    else:
        found = int(body["@iot.id"])
    status, refs = _get(client, _path(types, ids, "$ref"))
    assert status == 200, f"Reading the association link {url}/$ref failed"
    links = refs["value"][:2] if plural else [refs]  # checkAssociationLinks
    for link in links:
        assert "@iot.selfLink" in link and len(link) == 1, f"The Association Link of {url} is not only self-links"
    if len(types) == RESOURCE_PATH_LEVEL:
        return
    ids.append(found if plural else None)
    for relation in ENTITY_TYPES[RELATION_TYPE[head]][2]:
        types.append(relation)
        _read_related_entity(client, types, ids)
        types.pop()
    ids.pop()


def test_checkResourcePaths(populated: TestClient) -> None:
    for kind in ORDER:
        _read_related_entity(populated, [ENTITY_TYPES[kind][0]], [])


def test_checkServiceRootUri(populated: TestClient) -> None:
    body = _entities(populated, None)
    seen = set()
    for entry in body["value"]:
        assert "name" in entry and "url" in entry, "Service root URI does not have proper JSON keys: name and value."
        name = entry["name"]
        assert name in PLURALS or name == "MultiDatastreams", (
            f"There is a component in Service Root URI response that is not in SensorThings API : {name}"
        )
        assert entry["url"] == f"{ROOT}/{name}", f"The URL for {name} in Service Root URI is not compliant"
        seen.add(name)
    for plural in PLURALS:
        assert plural in seen, f"The Service Root URI response does not contain {plural}"


# -- createUpdateDelete/Capability2Tests ---------------------------------------------------------------------------
UOM_C = {"name": "Celsius", "symbol": "degC", "definition": "http://qudt.org/vocab/unit#DegreeCelsius"}
UOM_LM = {"name": "Lumen", "symbol": "lm", "definition": "http://www.qudt.org/qudt/owl/1.0.0/unit/Instances.html#Lumen"}
LUMINOUS_FLUX = {
    "name": "Luminous Flux",
    "definition": "http://www.qudt.org/qudt/owl/1.0.0/quantity/Instances.html#LuminousFlux",
    "description": "Luminous Flux or Luminous Power is the measure of the perceived power of light.",
}
FLUXOMATIC = {
    "name": "Acme Fluxomatic 1000",
    "description": "Acme Fluxomatic 1000",
    "encodingType": "application/pdf",
    "metadata": "Light flux sensor",
}
WEST_ROOF = {
    "name": "West Roof",
    "description": "West Roof",
    "encodingType": "application/vnd.geo+json",
    "location": {"type": "Point", "coordinates": [-117.05, 51.05]},
}
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
OFFICE = {
    "name": "Office Building",
    "description": "Office Building",
    "properties": {"reference": "Third Floor"},
    "Locations": [WEST_ROOF],
    "Datastreams": [
        {
            "unitOfMeasurement": UOM_LM,
            "name": "Light exposure.",
            "description": "Light exposure.",
            "observationType": MEASUREMENT,
            "ObservedProperty": LUMINOUS_FLUX,
            "Sensor": FLUXOMATIC,
        }
    ],
}


def _post(client: TestClient, plural: str, body: dict[str, Any]) -> dict[str, Any]:
    """postEntity: 201, and the entity it made is there."""
    r = client.post(f"/v1.1/{plural}", json=body)
    assert r.status_code == 201, f"Error during creation of entity {plural}: {r.text}"
    created = dict(r.json())
    assert client.get(f"/v1.1/{plural}({created['@iot.id']})").status_code == 200
    return created


def _post_invalid(client: TestClient, plural: str, body: dict[str, Any]) -> None:
    r = client.post(f"/v1.1/{plural}", json=body)
    assert r.status_code in (400, 409), f"The {plural} should not be created due to integrity constraints."


def _not_existing(client: TestClient, plurals: list[str]) -> None:
    for plural in plurals:
        assert client.get(f"/v1.1/{plural}").json()["value"] == [], f"{plural} is created although it shouldn't."


def _existing(client: TestClient, plurals: list[str]) -> None:
    for plural in plurals:
        assert client.get(f"/v1.1/{plural}").json()["value"], f"{plural} is deleted although it shouldn't."


def _related(client: TestClient, parent: str, pid: int, relation: str, expected: dict[str, Any]) -> int:
    """checkRelatedEntity: the deep-inserted entity is there, with the properties sent."""
    r = client.get(f"/v1.1/{parent}({pid})/{relation}")
    assert r.status_code == 200, r.text
    body = r.json()
    entity = body["value"][0] if "value" in body else body
    for key, value in expected.items():
        got = entity[key]
        if key in ("phenomenonTime", "resultTime", "time"):
            assert _instant(got) == _instant(value), key
        else:
            assert got == value, f"Check deep inserted {relation}'s {key}"
    return int(entity["@iot.id"])


def _instant(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def cud(client: TestClient) -> dict[str, list[int]]:
    """createEntities and createEntitiesWithDeepInsert, as the suite runs them before its later tests; the ids."""
    ids: dict[str, list[int]] = {
        k: []
        for k in (
            "Things",
            "Locations",
            "HistoricalLocations",
            "Sensors",
            "ObservedProperties",
            "FeaturesOfInterest",
            "Datastreams",
            "Observations",
        )
    }
    thing = _post(client, "Things", {"name": "Test Thing", "description": "This is a Test Thing From TestNG"})
    ids["Things"].append(thing["@iot.id"])
    bow = {
        "name": "bow river",
        "description": "bow river",
        "encodingType": "application/vnd.geo+json",
        "location": {"type": "Point", "coordinates": [-114.05, 51.05]},
    }
    location = _post(client, "Locations", bow)
    ids["Locations"].append(location["@iot.id"])
    sensor = _post(
        client,
        "Sensors",
        {
            "name": "Fuguro Barometer",
            "description": "Fuguro Barometer",
            "encodingType": "application/pdf",
            "metadata": "Barometer",
        },
    )
    ids["Sensors"].append(sensor["@iot.id"])
    prop = _post(
        client,
        "ObservedProperties",
        {
            "name": "DewPoint Temperature",
            "definition": "http://dbpedia.org/page/Dew_point",
            "description": "The dewpoint temperature ...",
        },
    )
    ids["ObservedProperties"].append(prop["@iot.id"])
    foi = _post(
        client,
        "FeaturesOfInterest",
        {
            "name": "A weather station.",
            "description": "A weather station.",
            "encodingType": "application/vnd.geo+json",
            "feature": {"type": "Point", "coordinates": [10, 10]},
        },
    )
    ids["FeaturesOfInterest"].append(foi["@iot.id"])
    ds = _post(
        client,
        "Datastreams",
        {
            "unitOfMeasurement": UOM_C,
            "name": "test datastream.",
            "description": "test datastream.",
            "observationType": MEASUREMENT,
            "Thing": {"@iot.id": thing["@iot.id"]},
            "ObservedProperty": {"@iot.id": prop["@iot.id"]},
            "Sensor": {"@iot.id": sensor["@iot.id"]},
        },
    )
    ids["Datastreams"].append(ds["@iot.id"])
    obs = _post(
        client,
        "Observations",
        {
            "phenomenonTime": "2015-03-01T00:40:00.000Z",
            "result": 8,
            "Datastream": {"@iot.id": ds["@iot.id"]},
            "FeatureOfInterest": {"@iot.id": foi["@iot.id"]},
        },
    )
    ids["Observations"].append(obs["@iot.id"])
    # POST Observation without FOI (automatic creation of FOI): the Thing gets the Location first
    assert (
        client.patch(
            f"/v1.1/Things({thing['@iot.id']})", json={"Locations": [{"@iot.id": location["@iot.id"]}]}
        ).status_code
        == 200
    )
    obs2 = _post(
        client,
        "Observations",
        {
            "phenomenonTime": "2015-03-01T00:00:00.000Z",
            "resultTime": "2015-03-01T01:00:00.000Z",
            "result": 100,
            "Datastream": {"@iot.id": ds["@iot.id"]},
        },
    )
    assert _instant(obs2["resultTime"]) == _instant("2015-03-01T01:00:00.000Z")  # checkForObservationResultTime
    ids["Observations"].append(obs2["@iot.id"])
    auto = client.get(f"/v1.1/Observations({obs2['@iot.id']})/FeatureOfInterest").json()  # checkAutomaticInsertionOfFOI
    assert auto["feature"] == location["location"]
    ids["FeaturesOfInterest"].append(auto["@iot.id"])
    obs3 = _post(
        client,
        "Observations",
        {"phenomenonTime": "2015-05-01T00:00:00.000Z", "result": 105, "Datastream": {"@iot.id": ds["@iot.id"]}},
    )
    assert obs3["resultTime"] is None
    ids["Observations"].append(obs3["@iot.id"])
    again = client.get(f"/v1.1/Observations({obs3['@iot.id']})/FeatureOfInterest").json()
    assert again["@iot.id"] == auto["@iot.id"], "the Observation should have linked to the FeatureOfInterest made"
    hl = _post(
        client,
        "HistoricalLocations",
        {
            "time": "2015-03-01T00:40:00.000Z",
            "Thing": {"@iot.id": thing["@iot.id"]},
            "Locations": [{"@iot.id": location["@iot.id"]}],
        },
    )
    ids["HistoricalLocations"].append(hl["@iot.id"])

    # createEntitiesWithDeepInsert
    office = _post(client, "Things", OFFICE)
    oid = office["@iot.id"]
    dsi = _related(
        client,
        "Things",
        oid,
        "Datastreams",
        {k: v for k, v in OFFICE["Datastreams"][0].items() if k not in ("Sensor", "ObservedProperty")},
    )  # type: ignore[attr-defined]
    ids["Datastreams"].append(dsi)
    ids["Locations"].append(_related(client, "Things", oid, "Locations", WEST_ROOF))
    ids["Sensors"].append(_related(client, "Datastreams", dsi, "Sensor", FLUXOMATIC))
    ids["ObservedProperties"].append(_related(client, "Datastreams", dsi, "ObservedProperty", LUMINOUS_FLUX))
    ids["Things"].append(oid)
    body = {
        "unitOfMeasurement": UOM_C,
        "name": "test datastream.",
        "description": "test datastream.",
        "observationType": MEASUREMENT,
        "Thing": {"@iot.id": oid},
        "ObservedProperty": LUMINOUS_FLUX,
        "Sensor": FLUXOMATIC,
        "Observations": [{"phenomenonTime": "2015-03-01T00:10:00Z", "result": 10}],
    }
    ds2 = _post(client, "Datastreams", body)["@iot.id"]
    ids["Sensors"].append(_related(client, "Datastreams", ds2, "Sensor", FLUXOMATIC))
    ids["ObservedProperties"].append(_related(client, "Datastreams", ds2, "ObservedProperty", LUMINOUS_FLUX))
    ids["Observations"].append(
        _related(
            client, "Datastreams", ds2, "Observations", {"phenomenonTime": "2015-03-01T00:10:00.000Z", "result": 10}
        )
    )
    ids["Datastreams"].append(ds2)
    station = {
        "name": "A weather station.",
        "description": "A weather station.",
        "encodingType": "application/vnd.geo+json",
        "feature": {"type": "Point", "coordinates": [-114.05, 51.05]},
    }
    o1 = _post(
        client,
        "Observations",
        {
            "phenomenonTime": "2015-03-01T00:00:00Z",
            "result": 100,
            "FeatureOfInterest": station,
            "Datastream": {"@iot.id": ds2},
        },
    )["@iot.id"]
    ids["FeaturesOfInterest"].append(_related(client, "Observations", o1, "FeatureOfInterest", station))
    ids["Observations"].append(o1)
    return ids


def test_createEntities(cud: dict[str, list[int]]) -> None:
    assert all(cud[k] for k in cud)  # every step of the fixture asserted what the suite asserts


def test_createEntitiesWithDeepInsert(cud: dict[str, list[int]]) -> None:
    assert len(cud["Things"]) == 2 and len(cud["Datastreams"]) == 3


def test_createInvalidEntitiesWithDeepInsert(client: TestClient) -> None:
    bad_office = {**OFFICE, "Datastreams": [{**OFFICE["Datastreams"][0], "Sensor": {"description": "no name"}}]}  # type: ignore[index]
    _post_invalid(client, "Things", bad_office)
    _not_existing(client, ["Things", "Locations", "HistoricalLocations", "Datastreams", "ObservedProperties"])
    thing = _post(client, "Things", {"name": "Office Building", "description": "Office Building"})["@iot.id"]
    base = {
        "unitOfMeasurement": UOM_C,
        "name": "test datastream.",
        "description": "test datastream.",
        "observationType": MEASUREMENT,
        "Thing": {"@iot.id": thing},
    }
    _post_invalid(
        client,
        "Datastreams",
        {**base, "ObservedProperty": {"definition": "x", "description": "no name"}, "Sensor": FLUXOMATIC},
    )
    _post_invalid(
        client,
        "Datastreams",
        {**base, "ObservedProperty": LUMINOUS_FLUX, "Sensor": {k: v for k, v in FLUXOMATIC.items() if k != "name"}},
    )
    _post_invalid(
        client,
        "Datastreams",
        {
            **base,
            "ObservedProperty": LUMINOUS_FLUX,
            "Sensor": FLUXOMATIC,
            "Observations": [{"phenomenonTime": "2015-03-01T00:10:00Z"}],
        },
    )
    _not_existing(client, ["Datastreams", "Sensors", "Observations", "FeaturesOfInterest", "ObservedProperties"])
    ds = _post(client, "Datastreams", {**base, "ObservedProperty": LUMINOUS_FLUX, "Sensor": FLUXOMATIC})["@iot.id"]
    station = {
        "name": "A weather station.",
        "description": "A weather station.",
        "feature": {"type": "Point", "coordinates": [-114.05, 51.05]},
    }  # no encodingType
    _post_invalid(
        client,
        "Observations",
        {
            "phenomenonTime": "2015-03-01T00:00:00Z",
            "result": 100,
            "FeatureOfInterest": {"description": "no name or feature"},
            "Datastream": {"@iot.id": ds},
        },
    )
    _post_invalid(
        client,
        "Observations",
        {
            "phenomenonTime": "2015-03-01T00:00:00Z",
            "result": 100,
            "FeatureOfInterest": station,
            "Datastream": {"@iot.id": ds},
        },
    )
    _not_existing(client, ["Observations", "FeaturesOfInterest"])


def test_createInvalidEntities(client: TestClient, cud: dict[str, list[int]]) -> None:
    base = {
        "unitOfMeasurement": UOM_C,
        "name": "test datastream.",
        "description": "test datastream.",
        "observationType": MEASUREMENT,
    }
    thing, prop, sensor = ({"@iot.id": cud[k][0]} for k in ("Things", "ObservedProperties", "Sensors"))
    _post_invalid(client, "Datastreams", {**base, "Thing": thing, "ObservedProperty": prop})  # without Sensor
    _post_invalid(client, "Datastreams", {**base, "Thing": thing, "Sensor": sensor})  # without ObservedProperty
    _post_invalid(client, "Datastreams", {**base, "ObservedProperty": prop, "Sensor": sensor})  # without Thing
    lone = _post(client, "Things", {"name": "This is a Test Thing From TestNG", "description": "d"})["@iot.id"]
    ds = _post(client, "Datastreams", {**base, "Thing": {"@iot.id": lone}, "ObservedProperty": prop, "Sensor": sensor})[
        "@iot.id"
    ]
    _post_invalid(client, "Observations", {"phenomenonTime": "2015-03-01T00:40:00.000Z", "result": 8})
    # without a FeatureOfInterest and without a Location of its Thing
    _post_invalid(
        client,
        "Observations",
        {"phenomenonTime": "2015-03-01T00:00:00.000Z", "result": 100, "Datastream": {"@iot.id": ds}},
    )


def test_patchEntities(client: TestClient, cud: dict[str, list[int]]) -> None:
    def patch(plural: str, entity_id: int, diffs: dict[str, Any]) -> None:
        """patchEntity + checkPatch: what the PATCH names changed, the rest did not."""
        old = client.get(f"/v1.1/{plural}({entity_id})").json()
        r = client.patch(f"/v1.1/{plural}({entity_id})", json=diffs)
        assert r.status_code == 200, f"Error during updating(PATCH) of {plural}: {r.text}"
        new = client.get(f"/v1.1/{plural}({entity_id})").json()
        kind = RELATION_TYPE[plural]
        for prop in ENTITY_TYPES[kind][1]:
            want, got = (diffs[prop], new[prop]) if prop in diffs else (old[prop], new[prop])
            if prop in ("phenomenonTime", "time"):
                want, got = _instant(want), _instant(got)
            assert got == want, f"PATCH was not applied correctly for {kind}'s {prop}."

    patch("Things", cud["Things"][0], {"description": "This is a PATCHED Test Thing From TestNG"})
    patch("Locations", cud["Locations"][0], {"location": {"type": "Point", "coordinates": [114.05, -50]}})
    patch("HistoricalLocations", cud["HistoricalLocations"][0], {"time": "2015-07-01T00:00:00.000Z"})
    patch("Sensors", cud["Sensors"][0], {"metadata": "PATCHED"})
    patch("ObservedProperties", cud["ObservedProperties"][0], {"description": "PATCHED"})
    patch(
        "FeaturesOfInterest",
        cud["FeaturesOfInterest"][0],
        {"feature": {"type": "Point", "coordinates": [114.05, -51.05]}},
    )
    patch("Datastreams", cud["Datastreams"][0], {"description": "Patched Description"})
    patch(
        "Datastreams",
        cud["Datastreams"][0],
        {
            "unitOfMeasurement": {
                "name": "Entropy2",
                "symbol": "S2",
                "definition": "http://qudt.org/vocab/unit#Entropy2",
            }
        },
    )
    patch("Observations", cud["Observations"][0], {"phenomenonTime": "2015-07-01T00:40:00.000Z"})


def test_invalidPatchEntities(client: TestClient, cud: dict[str, list[int]]) -> None:
    """Patching related entities inline must be illegal: 400."""
    cases = [
        ("Things", cud["Things"][0], {"Locations": [WEST_ROOF]}),
        ("Things", cud["Things"][0], {"Datastreams": [{**OFFICE["Datastreams"][0]}]}),  # type: ignore[index]
        (
            "Sensors",
            cud["Sensors"][0],
            {
                "Datastreams": [
                    {"unitOfMeasurement": UOM_LM, "name": "n", "description": "d", "observationType": MEASUREMENT}
                ]
            },
        ),
        (
            "ObservedProperties",
            cud["ObservedProperties"][0],
            {
                "Datastreams": [
                    {"unitOfMeasurement": UOM_LM, "name": "n", "description": "d", "observationType": MEASUREMENT}
                ]
            },
        ),
        (
            "Datastreams",
            cud["Datastreams"][0],
            {"ObservedProperty": {"name": "Count", "definition": "d", "description": "d"}},
        ),
        (
            "Datastreams",
            cud["Datastreams"][0],
            {
                "Sensor": {
                    "name": "Acme Traffic 2000",
                    "description": "d",
                    "encodingType": "application/pdf",
                    "metadata": "m",
                }
            },
        ),
        ("Datastreams", cud["Datastreams"][0], {"Thing": {"name": "test", "description": "test"}}),
        (
            "Datastreams",
            cud["Datastreams"][0],
            {"Observations": [{"phenomenonTime": "2015-03-01T00:00:00Z", "result": 92122, "resultQuality": "High"}]},
        ),
    ]
    for plural, entity_id, body in cases:
        r = client.patch(f"/v1.1/{plural}({entity_id})", json=body)
        assert r.status_code == 400, f"Patching related entities inline must be illegal for {plural}: {r.text}"


def test_deleteEntities(client: TestClient, cud: dict[str, list[int]]) -> None:
    for plural in (
        "Observations",
        "FeaturesOfInterest",
        "Datastreams",
        "ObservedProperties",
        "Sensors",
        "HistoricalLocations",
        "Locations",
        "Things",
    ):
        for entity_id in cud[plural]:
            r = client.delete(f"/v1.1/{plural}({entity_id})")
            assert r.status_code == 200, f"DELETE does not work properly for {plural} with id {entity_id}: {r.text}"
            assert client.get(f"/v1.1/{plural}({entity_id})").status_code == 404
    # checkDeleteIntegrityConstraint: what deleting each type takes with it, and what it leaves
    every = [
        "Things",
        "Locations",
        "HistoricalLocations",
        "Datastreams",
        "Sensors",
        "ObservedProperties",
        "FeaturesOfInterest",
        "Observations",
    ]
    gone_with = {
        "Things": ["Things", "Datastreams", "HistoricalLocations", "Observations"],
        "Datastreams": ["Datastreams", "Observations"],
        "Locations": ["Locations", "HistoricalLocations"],
        "HistoricalLocations": ["HistoricalLocations"],
        "Sensors": ["Sensors", "Datastreams", "Observations"],
        "ObservedProperties": ["ObservedProperties", "Datastreams", "Observations"],
        "FeaturesOfInterest": ["FeaturesOfInterest", "Observations"],
        "Observations": ["Observations"],
    }
    for plural, gone in gone_with.items():
        made = _entities_for_delete(client)
        assert client.delete(f"/v1.1/{plural}({made[plural]})").status_code == 200
        _not_existing(client, gone)
        _existing(client, [p for p in every if p not in gone])


def _entities_for_delete(client: TestClient) -> dict[str, int]:
    """createEntitiesForDelete: after deleteEverythings, a Thing with a Location and a Datastream (its Sensor and
    ObservedProperty), an Observation with its FeatureOfInterest; one id of each type."""
    for plural in (
        "Observations",
        "FeaturesOfInterest",
        "Datastreams",
        "Sensors",
        "ObservedProperties",
        "HistoricalLocations",
        "Locations",
        "Things",
    ):
        while found := client.get(f"/v1.1/{plural}").json()["value"]:
            for entity in found:
                client.delete(f"/v1.1/{plural}({entity['@iot.id']})")
    thing = _post(client, "Things", {**OFFICE, "name": "thing 1", "description": "thing 1"})["@iot.id"]
    ds = client.get(f"/v1.1/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]
    obs = _post(
        client, "Observations", {"phenomenonTime": "2015-03-01T00:00:00Z", "result": 1, "Datastream": {"@iot.id": ds}}
    )["@iot.id"]

    def one(path: str) -> int:
        body = client.get(f"/v1.1/{path}").json()
        return int((body["value"][0] if "value" in body else body)["@iot.id"])

    return {
        "Things": thing,
        "Datastreams": ds,
        "Observations": obs,
        "Locations": one(f"Things({thing})/Locations"),
        "HistoricalLocations": one(f"Things({thing})/HistoricalLocations"),
        "Sensors": one(f"Datastreams({ds})/Sensor"),
        "ObservedProperties": one(f"Datastreams({ds})/ObservedProperty"),
        "FeaturesOfInterest": one(f"Observations({obs})/FeatureOfInterest"),
    }


def test_deleteNoneexistentEntities(client: TestClient) -> None:
    for plural in PLURALS:
        r = client.delete(f"/v1.1/{plural}({LONG_MAX})")
        assert r.status_code == 404, f"DELETE does not work properly for nonexistent {plural}"
