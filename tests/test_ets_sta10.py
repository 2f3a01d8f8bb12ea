"""The OGC conformance suite for SensorThings (opengeospatial/ets-sta10), ported to pytest (issue 13, Tests).

Ported: ``sensingCore/Capability1Tests`` (conformance class "Sensing Core", level 1),
``createUpdateDelete/Capability2Tests`` (level 2) and ``filteringExtension/Capability3Tests`` (level 3), test by
test, each keeping its original name (``test_<name>``) and checking what the Java test checks, with its request
bodies and query strings, against the real application on either store.
Capability1 reads a service that already holds at least one entity of every type; ``populated`` makes one the way
the suite's own create tests do. Capability2's tests share the entities its create tests made (TestNG priorities);
here the ``cud`` fixture makes them for each test that needs them. Capability3's ``@BeforeClass`` (createEntities)
is the ``filtering`` fixture, with the suite's values; its ``@AfterClass`` cleanup is the fresh store of each test.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

import pytest
from fastapi.testclient import TestClient

from tests.conftest import OM_MEASUREMENT, UGM3
from tests.sta_cud import (
    DELETE_TAKES,
    FLUXOMATIC,
    LUMINOUS_FLUX,
    MEASUREMENT,
    OFFICE,
    SENSING_TYPES,
    UOM_C,
    UOM_LM,
    WEST_ROOF,
    delete_everything,
    existing,
    not_existing,
    post_invalid,
)

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
def _post(client: TestClient, plural: str, body: dict[str, Any]) -> dict[str, Any]:
    """postEntity: 201, and the entity it made is there."""
    r = client.post(f"/v1.1/{plural}", json=body)
    assert r.status_code == 201, f"Error during creation of entity {plural}: {r.text}"
    created = dict(r.json())
    assert client.get(f"/v1.1/{plural}({created['@iot.id']})").status_code == 200
    return created


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
    )
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
    bad_office = {**OFFICE, "Datastreams": [{**OFFICE["Datastreams"][0], "Sensor": {"description": "no name"}}]}
    post_invalid(client, "Things", bad_office)
    not_existing(client, ["Things", "Locations", "HistoricalLocations", "Datastreams", "ObservedProperties"])
    thing = _post(client, "Things", {"name": "Office Building", "description": "Office Building"})["@iot.id"]
    base = {
        "unitOfMeasurement": UOM_C,
        "name": "test datastream.",
        "description": "test datastream.",
        "observationType": MEASUREMENT,
        "Thing": {"@iot.id": thing},
    }
    post_invalid(
        client,
        "Datastreams",
        {**base, "ObservedProperty": {"definition": "x", "description": "no name"}, "Sensor": FLUXOMATIC},
    )
    post_invalid(
        client,
        "Datastreams",
        {**base, "ObservedProperty": LUMINOUS_FLUX, "Sensor": {k: v for k, v in FLUXOMATIC.items() if k != "name"}},
    )
    post_invalid(
        client,
        "Datastreams",
        {
            **base,
            "ObservedProperty": LUMINOUS_FLUX,
            "Sensor": FLUXOMATIC,
            "Observations": [{"phenomenonTime": "2015-03-01T00:10:00Z"}],
        },
    )
    not_existing(client, ["Datastreams", "Sensors", "Observations", "FeaturesOfInterest", "ObservedProperties"])
    ds = _post(client, "Datastreams", {**base, "ObservedProperty": LUMINOUS_FLUX, "Sensor": FLUXOMATIC})["@iot.id"]
    station = {
        "name": "A weather station.",
        "description": "A weather station.",
        "feature": {"type": "Point", "coordinates": [-114.05, 51.05]},
    }  # no encodingType
    post_invalid(
        client,
        "Observations",
        {
            "phenomenonTime": "2015-03-01T00:00:00Z",
            "result": 100,
            "FeatureOfInterest": {"description": "no name or feature"},
            "Datastream": {"@iot.id": ds},
        },
    )
    post_invalid(
        client,
        "Observations",
        {
            "phenomenonTime": "2015-03-01T00:00:00Z",
            "result": 100,
            "FeatureOfInterest": station,
            "Datastream": {"@iot.id": ds},
        },
    )
    not_existing(client, ["Observations", "FeaturesOfInterest"])


def test_createInvalidEntities(client: TestClient, cud: dict[str, list[int]]) -> None:
    base = {
        "unitOfMeasurement": UOM_C,
        "name": "test datastream.",
        "description": "test datastream.",
        "observationType": MEASUREMENT,
    }
    thing, prop, sensor = ({"@iot.id": cud[k][0]} for k in ("Things", "ObservedProperties", "Sensors"))
    post_invalid(client, "Datastreams", {**base, "Thing": thing, "ObservedProperty": prop})  # without Sensor
    post_invalid(client, "Datastreams", {**base, "Thing": thing, "Sensor": sensor})  # without ObservedProperty
    post_invalid(client, "Datastreams", {**base, "ObservedProperty": prop, "Sensor": sensor})  # without Thing
    lone = _post(client, "Things", {"name": "This is a Test Thing From TestNG", "description": "d"})["@iot.id"]
    ds = _post(client, "Datastreams", {**base, "Thing": {"@iot.id": lone}, "ObservedProperty": prop, "Sensor": sensor})[
        "@iot.id"
    ]
    post_invalid(client, "Observations", {"phenomenonTime": "2015-03-01T00:40:00.000Z", "result": 8})
    # without a FeatureOfInterest and without a Location of its Thing
    post_invalid(
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
        ("Things", cud["Things"][0], {"Datastreams": [{**OFFICE["Datastreams"][0]}]}),
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
    for plural, gone in DELETE_TAKES.items():
        made = _entities_for_delete(client)
        assert client.delete(f"/v1.1/{plural}({made[plural]})").status_code == 200
        not_existing(client, gone)
        existing(client, [p for p in SENSING_TYPES if p not in gone])


def _entities_for_delete(client: TestClient) -> dict[str, int]:
    """createEntitiesForDelete: after deleteEverythings, a Thing with a Location and a Datastream (its Sensor and
    ObservedProperty), an Observation with its FeatureOfInterest; one id of each type."""
    delete_everything(
        client,
        [
            "Observations",
            "FeaturesOfInterest",
            "Datastreams",
            "Sensors",
            "ObservedProperties",
            "HistoricalLocations",
            "Locations",
            "Things",
        ],
    )
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


# -- filteringExtension/Capability3Tests ---------------------------------------------------------------------------
# The Java tests run in this order over the entity types.
C3_ORDER = [
    "THING",
    "LOCATION",
    "HISTORICAL_LOCATION",
    "DATASTREAM",
    "SENSOR",
    "OBSERVED_PROPERTY",
    "OBSERVATION",
    "FEATURE_OF_INTEREST",
]
LUMEN = {"name": "Lumen", "symbol": "lm", "definition": "http://www.qudt.org/qudt/owl/1.0.0/unit/Instances.html/Lumen"}
# The suite gives Centigrade the Lumen definition; kept, the values are the suite's.
CENTIGRADE = {**LUMEN, "name": "Centigrade", "symbol": "C"}


def _c3_location(n: int, lon: float, lat: float) -> dict[str, Any]:
    return {
        "name": f"location {n}",
        "description": f"location {n}",
        "location": {"type": "Point", "coordinates": [lon, lat]},
        "encodingType": "application/vnd.geo+json",
    }


def _c3_datastream(
    name: str, uom: dict[str, str], observed_property: dict[str, Any], sensor: dict[str, str]
) -> dict[str, Any]:
    return {
        "unitOfMeasurement": uom,
        "name": name,
        "description": name,
        "observationType": MEASUREMENT,
        "ObservedProperty": observed_property,
        "Sensor": sensor,
    }


def _c3_sensor(name: str, metadata: str) -> dict[str, str]:
    return {"name": name, "description": name, "encodingType": "application/pdf", "metadata": metadata}


THING_1 = {
    "name": "thing 1",
    "description": "thing 1",
    "properties": {"reference": "first"},
    "Locations": [_c3_location(1, -117.05, 51.05)],
    "Datastreams": [
        _c3_datastream(
            "datastream 1",
            LUMEN,
            {
                "name": "Luminous Flux",
                "definition": "http://www.qudt.org/qudt/owl/1.0.0/quantity/Instances.html/LuminousFlux",
                "description": "observedProperty 1",
            },
            _c3_sensor("sensor 1", "Light flux sensor"),
        ),
        _c3_datastream(
            "datastream 2",
            CENTIGRADE,
            {
                "name": "Tempretaure",
                "definition": "http://www.qudt.org/qudt/owl/1.0.0/quantity/Instances.html/Tempreture",
                "description": "observedProperty 2",
            },
            _c3_sensor("sensor 2", "Tempreture sensor"),
        ),
    ],
}


def _c3_thing_2(observed_property_2: int) -> dict[str, Any]:
    return {
        "name": "thing 2",
        "description": "thing 2",
        "properties": {"reference": "second"},
        "Locations": [_c3_location(2, -100.05, 50.05)],
        "Datastreams": [
            _c3_datastream(
                "datastream 3",
                LUMEN,
                {
                    "name": "Second Luminous Flux",
                    "definition": "http://www.qudt.org/qudt/owl/1.0.0/quantity/Instances.html/LuminousFlux",
                    "description": "observedProperty 3",
                },
                _c3_sensor("sensor 3", "Second Light flux sensor"),
            ),
            # named "datastream 2" again, and "sensor 4 " with its trailing space: the suite's values
            _c3_datastream(
                "datastream 2",
                CENTIGRADE,
                {"@iot.id": observed_property_2},
                _c3_sensor("sensor 4 ", "Second Tempreture sensor"),
            ),
        ],
    }


def _one(client: TestClient, path: str) -> dict[str, Any]:
    r = client.get(f"/v1.1/{path}")
    assert r.status_code == 200, f"{path}: {r.text}"
    return dict(r.json())


@pytest.fixture
def filtering(client: TestClient) -> TestClient:
    """createEntities (the @BeforeClass): 2 Things, each with a Location and 2 Datastreams; each Thing then moves to
    the other's Location (4 HistoricalLocations); 3 Observations a Datastream, results 1 to 12 on 2015-03-01 to
    2015-03-12, their FeaturesOfInterest made from the Things' Locations (2)."""
    thing1 = _post(client, "Things", THING_1)["@iot.id"]
    location1 = _one(client, f"Things({thing1})/Locations")["value"][0]["@iot.id"]
    ds_by_name = {d["name"]: d["@iot.id"] for d in _one(client, f"Things({thing1})/Datastreams")["value"]}
    ds1, ds2 = ds_by_name["datastream 1"], ds_by_name["datastream 2"]
    # The suite reads "observedPropertyId2" from datastream 1 (not 2), so thing 2's second Datastream shares
    # Luminous Flux; its expected counts allow for either reading.
    observed_property_2 = _one(client, f"Datastreams({ds1})/ObservedProperty")["@iot.id"]

    thing2 = _post(client, "Things", _c3_thing_2(observed_property_2))["@iot.id"]
    location2 = _one(client, f"Things({thing2})/Locations")["value"][0]["@iot.id"]
    made = _one(client, f"Things({thing2})/Datastreams")["value"]
    ds3 = next(d["@iot.id"] for d in made if d["name"] == "datastream 3")
    ds4 = next(d["@iot.id"] for d in made if d["@iot.id"] != ds3)

    # The suite does not check these PATCHes; what they should do shows in the tests' counts.
    client.patch(f"/v1.1/Things({thing1})", json={"Locations": [{"@iot.id": location2}]})
    client.patch(f"/v1.1/Things({thing2})", json={"Locations": [{"@iot.id": location1}]})
    for thing in (thing1, thing2):  # the suite reads two HistoricalLocations of each Thing
        assert len(_one(client, f"Things({thing})/HistoricalLocations")["value"]) >= 2

    observations = []
    for n, ds in enumerate([ds1] * 3 + [ds2] * 3 + [ds3] * 3 + [ds4] * 3, start=1):
        r = client.post(
            f"/v1.1/Datastreams({ds})/Observations",
            json={"phenomenonTime": f"2015-03-{n:02d}T00:00:00Z", "result": n},
        )
        assert r.status_code == 201, r.text
        observations.append(r.json()["@iot.id"])
    for obs in (observations[0], observations[6]):  # featureOfInterestId1 and 2
        assert "@iot.id" in _one(client, f"Observations({obs})/FeatureOfInterest")
    return client


# What each collection holds after createEntities.
C3_TOTAL = {
    "THING": 2,
    "LOCATION": 2,
    "FEATURE_OF_INTEREST": 2,
    "OBSERVED_PROPERTY": 3,
    "HISTORICAL_LOCATION": 4,
    "SENSOR": 4,
    "DATASTREAM": 4,
    "OBSERVATION": 12,
}
# The sizes the suite expects of the first entity's related collections: $top=3, $skip=1, $count=true (None: the
# count must be there, its value is not checked). A pair not listed is requested but its size is not checked.
TOP3_RELATED: dict[tuple[str, str], set[int]] = {
    ("THING", "Locations"): {1},
    ("THING", "HistoricalLocations"): {2},
    ("THING", "Datastreams"): {2},
    ("LOCATION", "HistoricalLocations"): {2},
    ("LOCATION", "Things"): {1},
    ("FEATURE_OF_INTEREST", "Observations"): {3},
    ("OBSERVED_PROPERTY", "Datastreams"): {1, 2},
    ("HISTORICAL_LOCATION", "Locations"): {1},
    ("SENSOR", "Datastreams"): {1},
    ("DATASTREAM", "Observations"): {3},
}
SKIP1_RELATED: dict[tuple[str, str], set[int]] = {
    ("THING", "Locations"): {0},
    ("THING", "HistoricalLocations"): {1},
    ("THING", "Datastreams"): {1},
    ("LOCATION", "HistoricalLocations"): {1},
    ("LOCATION", "Things"): {0},
    ("FEATURE_OF_INTEREST", "Observations"): {5},
    ("OBSERVED_PROPERTY", "Datastreams"): {0, 1},
    ("HISTORICAL_LOCATION", "Locations"): {0},
    ("SENSOR", "Datastreams"): {0},
    ("DATASTREAM", "Observations"): {2},
}
COUNT_RELATED: dict[tuple[str, str], set[int] | None] = {
    ("THING", "Locations"): {1},
    ("THING", "HistoricalLocations"): {2},
    ("THING", "Datastreams"): {2},
    ("LOCATION", "HistoricalLocations"): None,
    ("LOCATION", "Things"): {1},
    ("FEATURE_OF_INTEREST", "Observations"): {6},
    ("OBSERVED_PROPERTY", "Datastreams"): {1, 2},
    ("SENSOR", "Datastreams"): {1},
}
# EntityPropertiesSampleValue: per property, an OData literal (a quoted string) or an instant; None where the
# suite does not filter on the property (geometries, unitOfMeasurement).
FILTER_SAMPLES: dict[str, list[str | datetime | None]] = {
    "THING": ["'thing 1'", "'thing 1'"],
    "LOCATION": ["'location 2'", "'location 2'", "'application/vnd.geo+json'", None],
    "HISTORICAL_LOCATION": [datetime(2015, 10, 14, 21, 30, 0, 104000, tzinfo=UTC)],
    "DATASTREAM": ["'datastream 1'", "'datastream 1'", None, f"'{MEASUREMENT}'"],
    "SENSOR": ["'sensor 1'", "'sensor 1'", "'application/pdf'", "'Light flux sensor'"],
    "OBSERVED_PROPERTY": [
        "'Luminous Flux'",
        "'http://www.qudt.org/qudt/owl/1.0.0/quantity/Instances.html/LuminousFlux'",
        "'observedProperty 1'",
    ],
    "OBSERVATION": [datetime(2015, 3, 2, tzinfo=UTC), "'2'", datetime(2015, 3, 2, tzinfo=UTC)],
    "FEATURE_OF_INTEREST": [
        "'Generated using location details: location 1'",
        "'Generated using location details: location 1'",
        "'application/vnd.geo+json'",
        None,
    ],
}
# checkPropertiesForFilter: what sign sample.compareTo(property) must have for each operator.
FILTER_OPS: dict[str, Callable[[int], bool]] = {
    "lt": lambda c: c > 0,
    "le": lambda c: c >= 0,
    "eq": lambda c: c == 0,
    "ne": lambda c: c != 0,
    "ge": lambda c: c <= 0,
    "gt": lambda c: c < 0,
}


def _fetch(client: TestClient, url: str) -> dict[str, Any]:
    """GET url (relative to the service root, its query already encoded as the suite sends it): 200, and JSON."""
    r = client.get(f"/v1.1/{url}")
    assert r.status_code == 200, f"[Request] {url}: {r.status_code} {r.text}"
    return dict(r.json())


def _first_entity_id(client: TestClient, kind: str) -> int:
    values = _fetch(client, ENTITY_TYPES[kind][0])["value"]
    assert values, f"no {kind} to test its relations with"
    return int(values[0]["@iot.id"])


def _relations_of(client: TestClient, kind: str, plural_only: bool = True) -> list[tuple[str, str]]:
    """The first entity's relations the suite follows: (relation, path) for each."""
    parent = f"{ENTITY_TYPES[kind][0]}({_first_entity_id(client, kind)})"
    relations = ENTITY_TYPES[kind][2]
    return [(rel, f"{parent}/{rel}") for rel in relations if not plural_only or rel in PLURALS]


def _related_until_singular(client: TestClient, kind: str) -> list[tuple[str, str]]:
    """The $count and $filter checks of related collections `return` at the first singular relation (Datastream's
    Thing, HistoricalLocation's Thing, Observation's Datastream), so those types' plural relations go unchecked."""
    return list(itertools.takewhile(lambda pair: pair[0] in PLURALS, _relations_of(client, kind, plural_only=False)))


def _entities_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The first two entities of a response the suite looks into (a collection, or one entity)."""
    return list(body["value"][:2]) if "value" in body else [body]


def _java_text(value: Any) -> str:
    """Object.toString() of what org.json parsed."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _sign(a: Any, b: Any) -> int:
    return (a > b) - (a < b)


def _compare_for_order(a: Any, b: Any) -> int:
    """compareForOrder: values of one comparable type compare as such, anything else by its text."""
    if type(a) is type(b) and isinstance(a, (str, int, float)):
        return _sign(a, b)
    return _sign(_java_text(a), _java_text(b))


def _instant_text(value: datetime) -> str:
    """Joda's DateTime.toString() in UTC: what the suite puts in its $filter."""
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---- $select


def _check_select(client: TestClient, kind: str, path: str) -> None:
    """checkSelectForEntityType(Relations): each property alone, then growing lists of them; selected properties
    are there, the others and every relation (navigation link or expanded) are not."""
    _, props, relations = ENTITY_TYPES[kind]
    for selected in [[p] for p in props] + [props[:n] for n in range(1, len(props) + 1)]:
        url = f"{path}?$select={','.join(selected)}"
        for entity in _entities_of(_fetch(client, url)):
            for prop in props:
                if prop in selected:
                    assert prop in entity, f'{kind} does not have selected property "{prop}". [Request] {url}'
                else:
                    assert prop not in entity, f'{kind} contains not-selected property "{prop}". [Request] {url}'
            for relation in relations:
                for key in (f"{relation}@iot.navigationLink", relation):
                    assert key not in entity, f'{kind} contains not-selected relation "{key}". [Request] {url}'


def test_readEntitiesWithSelectQO(filtering: TestClient) -> None:
    for kind in C3_ORDER:
        _check_select(filtering, kind, ENTITY_TYPES[kind][0])
    for kind in C3_ORDER:
        for relation, path in _relations_of(filtering, kind, plural_only=False):
            _check_select(filtering, RELATION_TYPE[relation], path)


# ---- $expand


def _expanded(entity: dict[str, Any], kind: str, relation: str, url: str) -> list[dict[str, Any]]:
    """An expanded relation: an object for a singular one, an array for a plural one."""
    assert relation in entity, f'{kind} does not have expanded relation "{relation}". [Request] {url}'
    value = entity[relation]
    if relation in PLURALS:
        assert isinstance(value, list), f'{kind}\'s expanded "{relation}" is not an array. [Request] {url}'
        return value
    assert isinstance(value, dict), f'{kind}\'s expanded "{relation}" is not an object. [Request] {url}'
    return [value]


def _check_all_properties(kind: str, entities: list[dict[str, Any]], url: str) -> None:
    for entity in entities[:2]:
        for prop in ENTITY_TYPES[kind][1]:
            assert prop in entity, f'expanded {kind} does not have property "{prop}". [Request] {url}'


def _check_expand(client: TestClient, kind: str, path: str, expand: list[str]) -> None:
    """checkEntitiesAllAspectsForExpandResponse: an expanded relation is there with all its properties (and, for
    relation/relation, the first of them has the second level expanded); any other relation is a navigation link."""
    url = f"{path}?$expand={','.join(expand)}"
    first_level = {item.split("/")[0] for item in expand}
    for entity in _entities_of(_fetch(client, url)):
        for relation in ENTITY_TYPES[kind][2]:
            if relation not in first_level:
                link = f"{relation}@iot.navigationLink"
                assert link in entity, f'{kind} does not have relation "{relation}". [Request] {url}'
                continue
            related_kind = RELATION_TYPE[relation]
            members = _expanded(entity, kind, relation, url)
            _check_all_properties(related_kind, members, url)
            if not any("/" in item for item in expand):
                continue
            assert members, f'{kind}\'s expanded "{relation}" is empty. [Request] {url}'
            for second in ENTITY_TYPES[related_kind][2]:
                if f"{relation}/{second}" in expand:
                    nested = _expanded(members[0], related_kind, second, url)
                    _check_all_properties(RELATION_TYPE[second], nested, url)


def _expansions(kind: str, multilevel: bool) -> list[list[str]]:
    """What the suite expands for a type: each relation (or relation/relation) alone, then growing lists of them."""
    relations = ENTITY_TYPES[kind][2]
    if multilevel:
        items = [f"{r}/{s}" for r in relations for s in ENTITY_TYPES[RELATION_TYPE[r]][2]]
        # alone, per first-level relation; then accumulated across all of them
        return [[item] for item in items] + [items[:n] for n in range(1, len(items) + 1)]
    return [[r] for r in relations] + [relations[:n] for n in range(1, len(relations) + 1)]


def test_readEntitiesWithExpandQO(filtering: TestClient) -> None:
    for multilevel in (False, True):
        for kind in C3_ORDER:  # checkExpandtForEntityType / ...Multilevel
            for expand in _expansions(kind, multilevel):
                _check_expand(filtering, kind, ENTITY_TYPES[kind][0], expand)
        for kind in C3_ORDER:  # checkExpandtForEntityTypeRelations / ...MultilevelRelations
            for relation, path in _relations_of(filtering, kind, plural_only=False):
                related_kind = RELATION_TYPE[relation]
                for expand in _expansions(related_kind, multilevel):
                    _check_expand(filtering, related_kind, path, expand)


# ---- $top, $skip


def _page(client: TestClient, url: str, sizes: set[int] | None, next_link: bool) -> None:
    body = _fetch(client, url)
    if sizes is not None:
        got = len(body["value"])
        assert got in sizes, f"the response has {got} entities, expected {sorted(sizes)}. [Request] {url}"
    if next_link:
        assert "@iot.nextLink" in body, f"The response does not have nextLink. [Request] {url}"
    else:
        assert "@iot.nextLink" not in body, f"The response should not have nextLink. [Request] {url}"


def test_readEntitiesWithTopQO(filtering: TestClient) -> None:
    for kind in C3_ORDER:
        total = C3_TOTAL[kind]
        for top in (1, 2, 3, 4, 5, 12, 13):
            # $top=12: the suite checks the nextLink only
            sizes = None if top == 12 else {min(top, total)}
            _page(filtering, f"{ENTITY_TYPES[kind][0]}?$top={top}", sizes, next_link=top < total)
    for kind in C3_ORDER:
        for relation, path in _relations_of(filtering, kind):
            _page(
                filtering,
                f"{path}?$top=3",
                TOP3_RELATED.get((kind, relation)),
                next_link=kind == "FEATURE_OF_INTEREST",  # its Observations: 6
            )


def test_readEntitiesWithSkipQO(filtering: TestClient) -> None:
    for kind in C3_ORDER:
        for skip in (1, 2, 3, 4, 12):
            sizes = {max(C3_TOTAL[kind] - skip, 0)}
            _page(filtering, f"{ENTITY_TYPES[kind][0]}?$skip={skip}", sizes, next_link=False)
    for kind in C3_ORDER:
        for relation, path in _relations_of(filtering, kind):
            _page(filtering, f"{path}?$skip=1", SKIP1_RELATED.get((kind, relation)), next_link=False)


# ---- $orderby


def _check_order(values: list[dict[str, Any]], keys: list[str], descending: bool, url: str) -> None:
    """Each entity sorts after (before, descending) the previous one on the first key that tells them apart."""
    for prev, cur in itertools.pairwise(values):
        for key in keys:
            assert key in prev and key in cur, f'an entity has no "{key}". [Request] {url}'
            compare = _compare_for_order(prev[key], cur[key])
            assert (compare >= 0) if descending else (compare <= 0), f"The ordering is not correct. [Request] {url}"
            if compare != 0:
                break


def _check_orderby(client: TestClient, kind: str, path: str) -> None:
    """checkOrderbyForEntityType(Relations): each property alone, then growing lists of them; default, asc, desc."""
    props = [p for p in ENTITY_TYPES[kind][1] if p != "unitOfMeasurement"]
    for keys in [[p] for p in props] + [props[:n] for n in range(1, len(props) + 1)]:
        for direction in ("", "%20asc", "%20desc"):
            url = f"{path}?$orderby={','.join(k + direction for k in keys)}"
            _check_order(_fetch(client, url)["value"], keys, direction == "%20desc", url)


def test_readEntitiesWithOrderbyQO(filtering: TestClient) -> None:
    for kind in C3_ORDER:
        _check_orderby(filtering, kind, ENTITY_TYPES[kind][0])
    for kind in C3_ORDER:
        for relation, path in _relations_of(filtering, kind):
            _check_orderby(filtering, RELATION_TYPE[relation], path)


# ---- $count


def _check_count(client: TestClient, path: str, expected: set[int] | None) -> None:
    url = f"{path}?$count=true"
    body = _fetch(client, url)
    assert isinstance(body.get("@iot.count"), int), f"the query asked for count but there is none. [Request] {url}"
    if expected is not None:
        assert body["@iot.count"] in expected, f"The count should be {sorted(expected)}. [Request] {url}"
    url = f"{path}?$count=false"
    assert "@iot.count" not in _fetch(client, url), f"the query asked for no count but got one. [Request] {url}"


def test_readEntitiesWithCountQO(filtering: TestClient) -> None:
    for kind in C3_ORDER:
        _check_count(filtering, ENTITY_TYPES[kind][0], {C3_TOTAL[kind]})
    for kind in C3_ORDER:
        for relation, path in _related_until_singular(filtering, kind):
            _check_count(filtering, path, COUNT_RELATED.get((kind, relation)))


# ---- $filter


def _check_filter(client: TestClient, kind: str, path: str) -> None:
    """checkFilterForEntityType(Relations): every entity a comparison returns satisfies it (Java's compareTo of the
    sample and the property: strings as text, whatever the property's JSON type; instants as instants)."""
    for prop, sample in zip(ENTITY_TYPES[kind][1], FILTER_SAMPLES[kind], strict=True):
        if sample is None:
            continue
        literal = quote_plus(sample if isinstance(sample, str) else _instant_text(sample), safe="*")  # URLEncoder
        for op, holds in FILTER_OPS.items():
            url = f"{path}?$filter={prop}%20{op}%20{literal}"
            for entity in _fetch(client, url)["value"]:
                assert prop in entity, f"The entity does not have property {prop}. [Request] {url}"
                value = entity[prop]
                assert value is not None, f"The entity has null value for property {prop}. [Request] {url}"
                if isinstance(sample, str):
                    compare = _sign(sample[1:-1], value if isinstance(value, str) else _java_text(value))
                else:
                    compare = _sign(sample, datetime.fromisoformat(value))
                assert holds(compare), f"{prop} {op} {sample} does not hold for {value!r}. [Request] {url}"


def test_readEntitiesWithFilterQO(filtering: TestClient) -> None:
    for kind in C3_ORDER:
        _check_filter(filtering, kind, ENTITY_TYPES[kind][0])
    for kind in C3_ORDER:
        for relation, path in _related_until_singular(filtering, kind):
            _check_filter(filtering, RELATION_TYPE[relation], path)


def test_checkQueriesPriorityOrdering(filtering: TestClient) -> None:
    """$filter, then $orderby, $skip and $top; the count is the filter's. result gt '3' compares text: 4 to 9."""
    url = "Observations?$count=true&$top=1&$skip=2&$orderby=phenomenonTime%20asc&$filter=result%20gt%20'3'"
    body = _fetch(filtering, url)
    assert body.get("@iot.count") == 6, f"The expected count is 6, got {body.get('@iot.count')}. [Request] {url}"
    assert len(body["value"]) == 1, f"The query asked for top 1, got {len(body['value'])}. [Request] {url}"
    # org.json (20090211) getString: the result's text, whatever its JSON type
    result = _java_text(body["value"][0]["result"])
    assert result == "6", f"The expected Observation result is 6, but it is {result}. [Request] {url}"
