"""The OGC conformance suite for SensorThings (opengeospatial/ets-sta10), ported to pytest (issue 13, Tests).

Ported so far: ``sensingCore/Capability1Tests`` (conformance class "Sensing Core", level 1), test by test, each
keeping its original name (``test_<name>``) and checking what the Java test checks, against the real application
on either store. The suite reads a service that already holds at least one entity of every type; ``populated``
makes such a service the way the suite's own create tests do (a Thing with a Location, a Datastream with its
Sensor and ObservedProperty, an Observation with a FeatureOfInterest; the HistoricalLocation follows).

Not yet ported: ``createUpdateDelete/Capability2Tests`` and ``filteringExtension/Capability3Tests`` (the README
lists what the other tests cover meanwhile).
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
    "DATASTREAM": ("Datastreams", ["name", "description", "unitOfMeasurement", "observationType"],
                   ["Thing", "Sensor", "ObservedProperty", "Observations"]),
    "SENSOR": ("Sensors", ["name", "description", "encodingType", "metadata"], ["Datastreams"]),
    "OBSERVATION": ("Observations", ["phenomenonTime", "result", "resultTime"], ["Datastream", "FeatureOfInterest"]),
    "OBSERVED_PROPERTY": ("ObservedProperties", ["name", "definition", "description"], ["Datastreams"]),
    "FEATURE_OF_INTEREST": ("FeaturesOfInterest", ["name", "description", "encodingType", "feature"], ["Observations"]),
}  # fmt: skip
ORDER = ["THING", "LOCATION", "HISTORICAL_LOCATION", "DATASTREAM", "SENSOR", "OBSERVATION", "OBSERVED_PROPERTY",
         "FEATURE_OF_INTEREST"]  # fmt: skip
RELATION_TYPE = {
    "Thing": "THING", "Things": "THING", "Location": "LOCATION", "Locations": "LOCATION",
    "HistoricalLocation": "HISTORICAL_LOCATION", "HistoricalLocations": "HISTORICAL_LOCATION",
    "Datastream": "DATASTREAM", "Datastreams": "DATASTREAM", "Sensor": "SENSOR", "Sensors": "SENSOR",
    "Observation": "OBSERVATION", "Observations": "OBSERVATION", "ObservedProperty": "OBSERVED_PROPERTY",
    "ObservedProperties": "OBSERVED_PROPERTY", "FeatureOfInterest": "FEATURE_OF_INTEREST",
    "FeaturesOfInterest": "FEATURE_OF_INTEREST",
}  # fmt: skip
PLURALS = {plural for plural, _, _ in ENTITY_TYPES.values()}


@pytest.fixture
def populated(client: TestClient) -> TestClient:
    body = {
        "name": "Trạm quan trắc Hoàn Kiếm", "description": "air-quality station",
        "Locations": [{"name": "Hoàn Kiếm", "description": "Hồ Gươm", "encodingType": "application/geo+json",
                       "location": {"type": "Point", "coordinates": [105.8535, 21.0245]}}],
        "Datastreams": [{
            "name": "PM2.5", "description": "hourly PM2.5", "observationType": OM_MEASUREMENT,
            "unitOfMeasurement": UGM3,
            "Sensor": {"name": "BAM-1020", "description": "beta attenuation", "encodingType": "application/pdf",
                       "metadata": "https://metone.com/bam-1020.pdf"},
            "ObservedProperty": {"name": "PM2.5", "definition": "http://dbpedia.org/resource/Particulates",
                                 "description": "fine particulates"},
            "Observations": [{"phenomenonTime": "2025-01-15T08:00:00Z", "resultTime": "2025-01-15T08:05:00Z",
                              "result": 87.5,
                              "FeatureOfInterest": {"name": "Hồ Gươm", "description": "the lake",
                                                    "encodingType": "application/geo+json",
                                                    "feature": {"type": "Point", "coordinates": [105.8525, 21.0287]}}}],
        }],
    }  # fmt: skip
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
