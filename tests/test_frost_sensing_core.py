"""FROST-Server's own sensing-core tests (``statests.c01sensingcore``: ``Capability1CoreOnlyTests`` and
``Capability1Tests``, v1.1 as their ``*11`` classes run them), ported to pytest.

The two Java classes hold the same six tests; each becomes a class here, each test keeping its name
(``test_<name>``). They read a service that holds FROST's test data (TestEntityCreator: ``entitiesDefault.json``,
a Thing with its Location and two Datastreams of two Observations each, posted as one deep insert), and check
every enabled entity type: its collection and one entity (control information, mandatory properties, navigation
links), a missing id (404), each property and its ``$value``, the resource paths four levels deep with their
``$ref``, and the service root.

``Capability1CoreOnlyTests`` runs FROST with its actuation and MultiDatastream plugins off: here the hub runs with
tasking off (its default); CityHub cannot turn MultiDatastreams off, and the test allows them in the service root.
``Capability1Tests`` runs FROST with actuation on and checks the Tasking types too: here the hub runs with
``tasking`` on, and TestEntityCreator also posts ``entitiesDefaultActuation.json`` to the Thing's
TaskingCapabilities. The Java classes' shared state (the data made once, deleted after the class) is the
``sensing_core`` fixture on a fresh hub for each test.

One difference, forced by CityHub's Tasking Core (README): FROST's TaskingCapability has taskingParameters that
are no SWE Common DataRecord and Tasks that set their creationTime; CityHub refuses both (400), so the port sends
a DataRecord and leaves creationTime to the hub (ENTITIES_DEFAULT_ACTUATION says how).
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from cityhub.config import Settings
from tests.frost_data import TASKING_RECORD, create
from tests.frost_model import ACTUATION, CORE, EntityType, enabled_types, for_relation, is_plural

LONG_MAX = 2**63 - 1
RESOURCE_PATH_LEVEL = 4
ROOT = "http://testserver/v1.1"

# FROST-Server.Tests/src/test/resources/entitiesDefault.json
ENTITIES_DEFAULT: dict[str, Any] = {
    "description": "thing 1",
    "name": "thing name 1",
    "properties": {"reference": "firstThing"},
    "Locations": [
        {
            "description": "location 1",
            "name": "location name 1",
            "properties": {"reference": "firstLocation"},
            "location": {"type": "Point", "coordinates": [-117.05, 51.05]},
            "encodingType": "application/vnd.geo+json",
        }
    ],
    "Datastreams": [
        {
            "unitOfMeasurement": {
                "name": "Lumen",
                "symbol": "lm",
                "definition": "http://www.qudt.org/qudt/owl/1.0.0/unit/Instances.html/Lumen",
            },
            "description": "datastream 1",
            "name": "datastream name 1",
            "properties": {"reference": "firstDatastream"},
            "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
            "ObservedProperty": {
                "name": "Luminous Flux",
                "definition": "http://www.qudt.org/qudt/owl/1.0.0/quantity/Instances.html/LuminousFlux",
                "description": "observedProperty 1",
            },
            "Sensor": {
                "description": "sensor 1",
                "name": "sensor name 1",
                "properties": {"reference": "firstSensor"},
                "encodingType": "application/pdf",
                "metadata": "Light flux sensor",
            },
            "Observations": [
                {"phenomenonTime": "2015-03-03T00:00:00Z", "result": 3},
                {"phenomenonTime": "2015-03-04T00:00:00Z", "result": 4},
            ],
        },
        {
            "unitOfMeasurement": {
                "name": "Centigrade",
                "symbol": "C",
                "definition": "http://www.qudt.org/qudt/owl/1.0.0/unit/Instances.html/Lumen",
            },
            "description": "datastream 2",
            "name": "datastream name 2",
            "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
            "ObservedProperty": {
                "name": "Tempretaure",
                "properties": {"reference": "firstObservedProperty"},
                "definition": "http://www.qudt.org/qudt/owl/1.0.0/quantity/Instances.html/Tempreture",
                "description": "observedProperty 2",
            },
            "Sensor": {
                "description": "sensor 2",
                "name": "sensor name 2",
                "properties": {"reference": "secondSensor"},
                "encodingType": "application/pdf",
                "metadata": "Tempreture sensor",
            },
            "Observations": [
                {"phenomenonTime": "2015-03-05T00:00:00Z", "result": 5},
                {"phenomenonTime": "2015-03-06T00:00:00Z", "result": 6},
            ],
        },
    ],
}
# FROST-Server.Tests/src/test/resources/entitiesDefaultActuation.json, with two changes CityHub's Tasking Core
# forces (README, Tasking Core): a TaskingCapability's taskingParameters are a SWE Common DataRecord, as the Tasking
# Core requires (FROST's file has {"todo": "yes"}, which CityHub refuses with a 400), here one Text field "todo"
# that the Tasks' parameters name; and a Task's creationTime is the hub's (read-only), so the Tasks do not send
# FROST's "2015-03-05T00:00:00Z".
ENTITIES_DEFAULT_ACTUATION: dict[str, Any] = {
    "name": "TaskingCapability 1",
    "description": "This is a tasking capability",
    "properties": {"cool": True},
    "taskingParameters": TASKING_RECORD,
    "Actuator": {
        "description": "actuator 1",
        "name": "actuator name 1",
        "properties": {"reference": "firstActuator "},
        "encodingType": "application/pdf",
        "metadata": "Window opener",
    },
    "Tasks": [
        {"taskingParameters": {"todo": "yes"}},
        {"taskingParameters": {"todo": "no"}},
    ],
}


def create_test_entities(client: TestClient, actuation: bool) -> None:
    """TestEntityCreator.maybeCreateTestEntities on an empty service: the Thing, and with actuation its
    TaskingCapability (whose response the Java code does not check)."""
    thing = create(client, "Things", ENTITIES_DEFAULT)
    if actuation:
        client.post(f"/v1.1/Things({thing})/TaskingCapabilities", json=ENTITIES_DEFAULT_ACTUATION)


def _get(client: TestClient, url: str) -> tuple[int, Any, str]:
    r = client.get(url)
    body = r.json() if "json" in r.headers.get("content-type", "") and r.content else None
    return r.status_code, body, r.text


def _entities(client: TestClient, kind: EntityType | None) -> dict[str, Any]:
    """getEntities: 200, with a "value"."""
    url = f"/v1.1/{kind.plural}" if kind else "/v1.1"
    status, body, text = _get(client, url)
    assert status == 200, f"Error during getting entities: {kind.key if kind else 'root URI'}"
    what = f'entity type "{kind.key}"' if kind else "service root URI"
    assert '"value"' in text, f'The GET entities response for {what} does not match SensorThings API: no "value".'
    assert isinstance(body, dict)
    return body


def _first_id(client: TestClient, kind: EntityType) -> int:
    values = _entities(client, kind)["value"]
    assert values, f"No {kind.plural} to read: the test data was not made"
    return int(values[0]["@iot.id"])


class SensingCore:
    """Capability1(CoreOnly)Tests; ``extensions`` are the server's."""

    extensions: tuple[str, ...] = (CORE,)

    def check_entity(self, kind: EntityType, entity: dict[str, Any]) -> None:
        """checkEntityControlInformation, checkEntityProperties (the optional ones may be missing) and
        checkEntityRelations. Jackson's get() finds a member whose value is null, so these check that the member
        is there."""
        for info in ("@iot.id", "@iot.selfLink"):
            assert info in entity, f"The entity does not have mandatory control information : {info}"
        for prop in kind.properties:
            if not prop.optional:
                assert prop.name in entity, f'Entity type "{kind.key}" does not have mandatory property: "{prop.name}".'
        for relation in kind.relations(self.extensions):
            assert f"{relation}@iot.navigationLink" in entity, (
                f'Entity type "{kind.key}" does not have mandatory relation: "{relation}".'
            )

    def types(self) -> list[EntityType]:
        return enabled_types(self.extensions)

    def test_readEntitiesAndCheckResponse(self, sensing_core: TestClient) -> None:
        if ACTUATION in self.extensions:
            # TASKING_REQ: FROST reads its requirements from the service root's conformance list; CityHub names
            # the Tasking Core class, whose requirements (tasking-capability/properties among them) it implies.
            root = sensing_core.get("/v1.1").json()
            assert any("/iot_tasking/1.0/" in c for c in root["serverSettings"]["conformance"]), (
                "Actuation entities not registered."
            )
        for kind in self.types():
            for entity in _entities(sensing_core, kind)["value"][:2]:
                self.check_entity(kind, entity)

    def test_readNonexistentEntity(self, sensing_core: TestClient) -> None:
        for kind in self.types():
            status = sensing_core.get(f"/v1.1/{kind.plural}({LONG_MAX})").status_code
            assert status == 404, f"Reading non-existing {kind.key} with id {LONG_MAX} failed."

    def test_readEntityAndCheckResponse(self, sensing_core: TestClient) -> None:
        for kind in self.types():
            entity_id = _first_id(sensing_core, kind)
            status, entity, _ = _get(sensing_core, f"/v1.1/{kind.plural}({entity_id})")
            assert status == 200, f"Reading existing {kind.key} with id {entity_id} failed."
            self.check_entity(kind, entity)

    def test_readPropertyOfEntityAndCheckResponse(self, sensing_core: TestClient) -> None:
        for kind in self.types():
            entity_id = _first_id(sensing_core, kind)
            for prop in kind.properties:
                base = f"/v1.1/{kind.plural}({entity_id})/{prop.name}"
                # checkGetPropertyOfEntity: 204 is the answer for a null property
                status, body, _ = _get(sensing_core, base)
                if status != 204:
                    assert status == 200, f'Reading property "{prop.name}" of the existing {kind.key} failed.'
                    assert prop.name in body, f'Reading property "{prop.name}" of "{kind.key}" fails.'
                    assert len(body) == 1, f"The response for property {prop.name} of a {kind.key} has more."
                # checkGetPropertyValueOfEntity
                status, _, text = _get(sensing_core, f"{base}/$value")
                if (status != 200 and prop.optional) or status == 204:
                    continue
                assert status == 200, f'Reading property value of "{prop.name}" of the existing {kind.key} failed.'
                if prop.json_type == "object":
                    assert text.find("{") == 0, f'Reading property value of "{prop.name}" of "{kind.key}" fails.'
                else:
                    assert "{" not in text, f'Reading property value of "{prop.name}" of "{kind.key}" fails.'

    def _read_related(self, client: TestClient, types: list[str], ids: list[int | None]) -> None:
        """readRelatedEntity: each chain of relations up to RESOURCE_PATH_LEVEL reads 200, and so does its $ref,
        which holds self-links only."""
        if len(types) > RESOURCE_PATH_LEVEL:
            return
        head = types[-1]
        parts = [t if i >= len(ids) or ids[i] is None else f"{t}({ids[i]})" for i, t in enumerate(types)]
        url = "/v1.1/" + "/".join(parts)
        status, body, _ = _get(client, url)
        assert status == 200, f"Reading relation of the entity failed: {types}"
        found = int(body["value"][0]["@iot.id"] if is_plural(head) else body["@iot.id"])
        status, refs, text = _get(client, f"{url}/$ref")
        assert status == 200, f"Reading relation of the entity failed: {types}"
        if is_plural(head):  # checkAssociationLinks
            assert "value" in text, f'The Association Link response has no "value": {types}{ids}'
            links = refs["value"][:2]
        else:
            links = [refs]
        for link in links:
            assert "@iot.selfLink" in link, f"The Association Link does not contain self-links: {types}"
            assert len(link) == 1, f"The Association Link contains properties other than self-link: {types}{ids}"
        if len(types) == RESOURCE_PATH_LEVEL:
            return
        ids.append(found if is_plural(head) else None)
        for relation in for_relation(head).relations(self.extensions):
            types.append(relation)
            self._read_related(client, types, ids)
            types.pop()
        ids.pop()

    def test_checkResourcePaths(self, sensing_core: TestClient) -> None:
        for kind in self.types():
            self._read_related(sensing_core, [kind.plural], [])

    def test_checkServiceRootUri(self, sensing_core: TestClient) -> None:
        body = _entities(sensing_core, None)
        added = {t.plural: False for t in enabled_types([CORE])}
        if ACTUATION in self.extensions:
            added.update({"Actuators": False, "TaskingCapabilities": False, "Tasks": False})
        for entry in body["value"]:
            assert "name" in entry and "url" in entry, (
                "Service root URI component does not have proper JSON keys: name and value."
            )
            name = entry["name"]
            added[name] = True
            if name != "MultiDatastreams":
                assert name in {t.plural for t in enabled_types([CORE, ACTUATION])} or name in {
                    t.singular for t in enabled_types([CORE, ACTUATION])
                }, f"There is a component in Service Root URI response that is not in SensorThings API : {name}"
                name = for_relation(name).plural
            assert entry["url"] == f"{ROOT}/{name}", (
                f"The URL for {name} in Service Root URI is not compliant to SensorThings API."
            )
        for key, seen in added.items():
            assert seen, f"The Service Root URI response does not contain {key}"


class TestCapability1CoreOnly(SensingCore):
    """Capability1CoreOnlyTests: actuation and MultiDatastreams off in FROST; the core types."""

    extensions = (CORE,)

    @pytest.fixture
    def sensing_core(self, client: TestClient) -> TestClient:
        create_test_entities(client, actuation=False)
        return client


class TestCapability1(SensingCore):
    """Capability1Tests: the server FROST's suite runs, with actuation on; the core and the Tasking types."""

    extensions = (CORE, ACTUATION)

    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"tasking": True})

    @pytest.fixture
    def sensing_core(self, client: TestClient) -> TestClient:
        create_test_entities(client, actuation=True)
        return client
