"""FROST-Server's own create-update-delete tests (``statests.c02cud.Capability2Tests``, v1.1 as
``Capability2Tests11`` runs it), ported to pytest.

Each Java test keeps its name (``test_<name>``) and sends FROST's bodies (those it shares with the OGC suite's
Capability2, tests/test_ets_sta10.py, come from tests/sta_cud.py): invalid deep inserts and entities refused and
nothing left of them (test01), entities created one by one with the FeaturesOfInterest the server makes from a
Thing's Location, a new one when the Thing moves and the same one for another Thing at that Location (test02), deep
inserts read back (test03), invalid entities (test04), PATCH and PUT of each type, checked property by property
(test05, test06), related entities in a PATCH refused (test07), deletes and what they take with them (test08), and
deletes of missing ids (test09).

Shared state. The Java class runs its tests in name order on one server, keeping the ids it made in lists that
later tests use (THING_IDS.get(0) ...); here each test gets a fresh hub on which the tests before it that it builds
on are replayed (``Scene.replay``). FROST's test server runs with actuation on, so test02 also makes an Actuator,
a TaskingCapability and a Task: the hub here runs with ``tasking`` on.

One difference, forced by CityHub's Tasking Core (README): a TaskingCapability's ``taskingParameters`` must be a
SWE Common DataRecord with at least one field, as the Tasking Core has them; FROST's test sends ``{}``, the port
tests/frost_data.py's TASKING_RECORD (one optional Text field), which the Task's ``{}`` fits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cityhub.config import Settings
from tests.frost_data import TASKING_RECORD
from tests.frost_model import (
    ACTUATION,
    CORE,
    DATASTREAM,
    FEATURE_OF_INTEREST,
    HISTORICAL_LOCATION,
    LOCATION,
    OBSERVATION,
    OBSERVED_PROPERTY,
    SENSOR,
    THING,
    EntityType,
    enabled_types,
)
from tests.sta_cud import (
    DELETE_TAKES,
    FLUXOMATIC,
    LIGHT_EXPOSURE,
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

EXTENSIONS = (CORE, ACTUATION)
UNLIKELY_ID = 2**63 - 1 - 1000  # IdType.LONG.generateUnlikely()
ALL_TYPES = [
    "Things",
    "Sensors",
    "ObservedProperties",
    "FeaturesOfInterest",
    "Observations",
    "Datastreams",
    "HistoricalLocations",
    "Locations",
    "Actuators",
    "Tasks",
    "TaskingCapabilities",
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """FROST's test server: actuation on."""
    return settings.model_copy(update={"tasking": True})


# -- the Java helpers -----------------------------------------------------------------------------------------------
def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _time_equals(expected: Any, given: Any) -> bool:
    """Utils.checkTimeEquals: an instant, or an interval, equal as such."""
    assert isinstance(expected, str) and isinstance(given, str), f"time properties: {expected!r} and {given!r}"
    ends = expected.split("/"), given.split("/")
    assert len(ends[0]) == len(ends[1]), f"time properties: {expected!r} and {given!r}"
    return all(_time(a) == _time(b) for a, b in zip(*ends, strict=True))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def json_equals(expected: Any, given: Any, ignore_extra: bool = False, key: str | None = None) -> bool:
    """Utils.jsonEquals: objects member by member (members ``given`` has beyond ``expected`` allowed with
    ``ignore_extra``), arrays item by item, a member whose name ends in "time" as a time. Jackson tells 8 from 8.0;
    JSON does not, and neither does this port (CityHub writes coordinates as decimals: -50.0 for FROST's -50)."""
    if isinstance(expected, dict) and isinstance(given, dict):
        if not ignore_extra and len(expected) != len(given):
            return False
        return all(k in given and json_equals(v, given[k], ignore_extra, k) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(given, list):
        return len(expected) == len(given) and all(
            json_equals(a, b, ignore_extra) for a, b in zip(expected, given, strict=True)
        )
    if expected is None or given is None:
        return expected is given
    if key and key.lower().endswith("time") and isinstance(expected, str):
        return _time_equals(expected, given)
    if _number(expected) and _number(given):
        return bool(expected == given)
    return type(expected) is type(given) and bool(expected == given)


MISSING = object()


def _json_equals_present(expected: Any, given: Any, key: str) -> bool:
    """jsonEquals of two members that may be missing (Java's null): equal only when both are."""
    if expected is MISSING or given is MISSING:
        return expected is given
    return json_equals(expected, given, False, key)


@dataclass
class Scene:
    """The Java class's id lists and the service."""

    client: TestClient
    ids: dict[str, list[int]] = field(default_factory=lambda: {p: [] for p in ALL_TYPES})
    id_types: set[str] = field(default_factory=set)

    def get_entity(self, plural: str, entity_id: int) -> dict[str, Any]:
        body: dict[str, Any] = self.client.get(f"/v1.1/{plural}({entity_id})").json()
        return body

    def post_entity(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        """postEntity: 201, and the entity read back (200)."""
        r = self.client.post(f"/v1.1/{plural}", json=body)
        assert r.status_code == 201, f"Error during creation of entity {plural}: {r.status_code} {r.text}"
        created = int(r.json()["@iot.id"])
        r = self.client.get(f"/v1.1/{plural}({created})")
        assert r.status_code == 200, "The POSTed entity is not created."
        entity: dict[str, Any] = r.json()
        return entity

    def patch_entity(self, plural: str, body: dict[str, Any], entity_id: int) -> dict[str, Any]:
        r = self.client.patch(f"/v1.1/{plural}({entity_id})", json=body)
        assert r.status_code == 200, f"Error during updating(PATCH) of entity {plural}: {r.status_code} {r.text}"
        return self.get_entity(plural, entity_id)

    def update_entity(self, plural: str, body: dict[str, Any], entity_id: int) -> dict[str, Any]:
        r = self.client.put(f"/v1.1/{plural}({entity_id})", json=body)
        assert r.status_code == 200, f"Error during updating(PUT) of entity {plural}: {r.status_code} {r.text}"
        return self.get_entity(plural, entity_id)

    def invalid_patch(self, plural: str, body: dict[str, Any], entity_id: int) -> None:
        r = self.client.patch(f"/v1.1/{plural}({entity_id})", json=body)
        assert r.status_code == 400, f"Error: Patching related entities inline must be illegal for entity {plural}"

    def delete_entity(self, plural: str, entity_id: int) -> None:
        r = self.client.delete(f"/v1.1/{plural}({entity_id})")
        assert r.status_code == 200, (
            f"DELETE does not work properly for {plural} with id {entity_id}. Returned with response code "
            f"{r.status_code}."
        )
        r = self.client.get(f"/v1.1/{plural}({entity_id})")
        assert r.status_code == 404, f"Deleted entity was not actually deleted : {plural}({entity_id})."

    def check_related(self, parent: EntityType, parent_id: int, relation: str, expected: dict[str, Any]) -> int:
        """checkRelatedEntity: the deep-inserted entity is there, with what was sent (more members allowed)."""
        r = self.client.get(f"/v1.1/{parent.plural}({parent_id})/{relation}")
        assert r.status_code == 200, f"ERROR: Deep inserted {relation} was not created or linked to {parent.key}"
        body = r.json()
        found = body["value"][0] if "value" in body else body
        assert json_equals(expected, found, True), f"ERROR: Deep inserted {relation} is not created correctly."
        return int(found["@iot.id"])

    def check_automatic_foi(self, observation: int, location: dict[str, Any], expected: int | None) -> int:
        """checkAutomaticInsertionOfFOI: the Observation's FeatureOfInterest, made from the Thing's Location."""
        r = self.client.get(f"/v1.1/Observations({observation})/FeatureOfInterest")
        assert r.status_code == 200, "ERROR: FeatureOfInterest was not automatically created."
        foi = r.json()
        if expected is not None:
            assert foi["@iot.id"] == expected, (
                f"ERROR: the Observation should have linked to FeatureOfInterest with ID: {expected}, but it is "
                f"linked for FeatureOfInterest with Id: {foi['@iot.id']}."
            )
        assert json_equals(location["location"], foi["feature"]), (
            "ERROR: Automatic created FeatureOfInterest does not match last Location of that Thing."
        )
        return int(foi["@iot.id"])

    def replay(self, *steps: str) -> None:
        """Runs the Java tests the current one builds on, in order."""
        for step in steps:
            {"test02": _test02, "test03": _test03, "test04": _test04, "test05": _test05, "test06": _test06}[step](self)


def check_patch(kind: EntityType, old: dict[str, Any], new: dict[str, Any], diffs: dict[str, Any]) -> None:
    """checkPatch: what the PATCH named has its new value; the rest is as it was."""
    for prop in kind.properties:
        name = prop.name
        if name in diffs:
            assert _json_equals_present(diffs[name], new.get(name, MISSING), name), (
                f"PATCH was not applied correctly for {kind.key}'s {name}. Should have changed."
            )
        elif name in new and name in old:
            assert json_equals(old[name], new[name], False, name), (
                f"PATCH was not applied correctly for {kind.key}'s {name}. Value {old[name]} should not have "
                f"changed to {new[name]}"
            )
        else:
            assert (name in old) == (name in new), f"PATCH was not applied correctly for {kind.key}'s {name}."


def check_put(kind: EntityType, old: dict[str, Any], new: dict[str, Any], diffs: dict[str, Any]) -> None:
    """checkPut: what the PUT named has its new value; what it did not name is as it was, or still missing."""
    for prop in kind.properties:
        name = prop.name
        if name in diffs:
            assert _json_equals_present(diffs[name], new.get(name, MISSING), name), (
                f"PUT was not applied correctly for {kind.key}: {name}."
            )
        elif name in old:
            assert _json_equals_present(old[name], new.get(name, MISSING), ""), (
                f"PUT was not applied correctly for {kind.key}: {name}."
            )
        else:
            assert name not in new, f"PUT was not applied correctly for {kind.key}: {name}."


def check_result_time(observation: dict[str, Any], result_time: str | None) -> None:
    """checkForObservationResultTime."""
    if result_time is None:
        assert observation["resultTime"] is None, (
            f"The resultTime of the Observation {observation['@iot.id']} should have been null but it is now "
            f'"{observation["resultTime"]}".'
        )
    else:
        assert _time(observation["resultTime"]) == _time(result_time), (
            f"The resultTime of the Observation {observation['@iot.id']} should have been {result_time}."
        )


def _datastream(name: str, thing: int | None, obs_prop: Any, sensor: Any, **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "unitOfMeasurement": UOM_C,
        "name": name,
        "description": name,
        "observationType": MEASUREMENT,
    }
    if thing is not None:
        body["Thing"] = {"@iot.id": thing}
    if obs_prop is not None:
        body["ObservedProperty"] = obs_prop
    if sensor is not None:
        body["Sensor"] = sensor
    return body | more


OBSERVATION_10 = [{"phenomenonTime": "2015-03-01T00:10:00Z", "result": 10}]
WEATHER_STATION = {
    "name": "A weather station.",
    "description": "A weather station.",
    "encodingType": "application/vnd.geo+json",
    "feature": {"type": "Point", "coordinates": [-114.05, 51.05]},
}


# -- the tests, as steps a later test replays ------------------------------------------------------------------------
def _test02(s: Scene) -> None:
    ids = s.ids
    thing = s.post_entity("Things", {"name": "Test Thing", "description": "This is a Test Thing From TestNG"})
    ids["Things"].append(thing["@iot.id"])
    location = s.post_entity("Locations", {
        "name": "bow river", "description": "bow river", "encodingType": "application/vnd.geo+json",
        "location": {"type": "Point", "coordinates": [-114.05, 51.05]},
    })  # fmt: skip
    ids["Locations"].append(location["@iot.id"])
    ids["Sensors"].append(s.post_entity("Sensors", {
        "name": "Fuguro Barometer", "description": "Fuguro Barometer", "encodingType": "application/pdf",
        "metadata": "Barometer",
    })["@iot.id"])  # fmt: skip
    ids["ObservedProperties"].append(s.post_entity("ObservedProperties", {
        "name": "DewPoint Temperature", "definition": "http://dbpedia.org/page/Dew_point",
        "description": "The dewpoint temperature is the temperature to which the air must be cooled, at constant "
        "pressure, for dew to form. As the grass and other objects near the ground cool to the dewpoint, some of "
        "the water vapor in the atmosphere condenses into liquid water on the objects.",
    })["@iot.id"])  # fmt: skip
    ids["FeaturesOfInterest"].append(s.post_entity("FeaturesOfInterest", {
        "name": "A weather station.", "description": "A weather station.",
        "encodingType": "application/vnd.geo+json", "feature": {"type": "Point", "coordinates": [10, 10]},
    })["@iot.id"])  # fmt: skip
    ds_body = _datastream(
        "test datastream.", ids["Things"][0], {"@iot.id": ids["ObservedProperties"][0]}, {"@iot.id": ids["Sensors"][0]}
    )
    ids["Datastreams"].append(s.post_entity("Datastreams", ds_body)["@iot.id"])
    ids["Observations"].append(s.post_entity("Observations", {
        "phenomenonTime": "2015-03-01T00:40:00.000Z", "result": 8,
        "Datastream": {"@iot.id": ids["Datastreams"][0]},
        "FeatureOfInterest": {"@iot.id": ids["FeaturesOfInterest"][0]},
    })["@iot.id"])  # fmt: skip
    s.id_types |= {"Things", "Locations", "Sensors", "ObservedProperties", "FeaturesOfInterest", "Datastreams",
                   "Observations"}  # fmt: skip

    # POST an Observation without FoI (automatic creation of FoI): the Thing gets the Location first
    s.patch_entity("Things", {"Locations": [{"@iot.id": ids["Locations"][0]}]}, ids["Things"][0])
    obs2 = s.post_entity("Observations", {
        "phenomenonTime": "2015-03-01T00:00:00.000Z", "resultTime": "2015-03-01T01:00:00.000Z", "result": 100,
        "Datastream": {"@iot.id": ids["Datastreams"][0]},
    })  # fmt: skip
    check_result_time(obs2, "2015-03-01T01:00:00.000Z")
    ids["Observations"].append(obs2["@iot.id"])
    ids["FeaturesOfInterest"].append(s.check_automatic_foi(obs2["@iot.id"], location, None))

    # another Observation, linked to the FoI made before
    obs3 = s.post_entity("Observations", {
        "phenomenonTime": "2015-05-01T00:00:00.000Z", "result": 105, "Datastream": {"@iot.id": ids["Datastreams"][0]},
    })  # fmt: skip
    check_result_time(obs3, None)
    ids["Observations"].append(obs3["@iot.id"])
    s.check_automatic_foi(ids["Observations"][1], location, ids["FeaturesOfInterest"][1])

    # the Thing moves: a new FoI from its new Location
    location2 = s.post_entity("Locations", {
        "name": "spear river", "description": "spear river", "encodingType": "application/vnd.geo+json",
        "location": {"type": "Point", "coordinates": [114.05, -51.05]},
    })  # fmt: skip
    ids["Locations"].append(location2["@iot.id"])
    s.patch_entity("Things", {"Locations": [{"@iot.id": ids["Locations"][1]}]}, ids["Things"][0])
    obs4 = s.post_entity("Observations", {
        "phenomenonTime": "2015-03-01T01:00:00.000Z", "resultTime": "2015-03-01T02:00:00.000Z", "result": 200,
        "Datastream": {"@iot.id": ids["Datastreams"][0]},
    })["@iot.id"]  # fmt: skip
    ids["Observations"].append(obs4)
    foi2 = s.check_automatic_foi(obs4, location2, None)
    ids["FeaturesOfInterest"].append(foi2)
    assert foi2 != ids["FeaturesOfInterest"][1], "A new FoI should have been created, since the Thing moved."

    # a second Thing at the first Location: its Observation gets the first generated FoI
    thing2 = s.post_entity("Things", {
        "name": "Test Thing 2", "description": "This is a second Test Thing From TestNG",
        "Locations": [{"@iot.id": ids["Locations"][0]}],
    })["@iot.id"]  # fmt: skip
    ids["Things"].append(thing2)
    ds2 = s.post_entity("Datastreams", _datastream(
        "test datastream 2.", thing2, {"@iot.id": ids["ObservedProperties"][0]}, {"@iot.id": ids["Sensors"][0]}
    ))["@iot.id"]  # fmt: skip
    ids["Datastreams"].append(ds2)
    obs5 = s.post_entity("Observations", {
        "phenomenonTime": "2015-03-01T03:00:00.000Z", "resultTime": "2015-03-01T04:00:00.000Z", "result": 300,
        "Datastream": {"@iot.id": ds2},
    })["@iot.id"]  # fmt: skip
    ids["Observations"].append(obs5)
    foi3 = s.check_automatic_foi(obs5, location, None)
    assert foi3 == ids["FeaturesOfInterest"][1], (
        "The generated FoI should be the same as the first generated FoI, since Thing2 has the same Location."
    )

    ids["HistoricalLocations"].append(s.post_entity("HistoricalLocations", {
        "time": "2015-03-01T00:40:00.000Z", "Thing": {"@iot.id": ids["Things"][0]},
        "Locations": [{"@iot.id": ids["Locations"][0]}],
    })["@iot.id"])  # fmt: skip
    s.id_types.add("HistoricalLocations")

    # TASKING_REQ
    ids["Actuators"].append(s.post_entity("Actuators", {
        "name": "Test Thing", "description": "This is a Test Thing From TestNG", "encodingType": "none",
        "metadata": "none",
    })["@iot.id"])  # fmt: skip
    ids["TaskingCapabilities"].append(s.post_entity("TaskingCapabilities", {
        "name": "Test Thing", "description": "This is a Test Thing From TestNG", "taskingParameters": TASKING_RECORD,
        "Actuator": {"@iot.id": ids["Actuators"][0]}, "Thing": {"@iot.id": ids["Things"][0]},
    })["@iot.id"])  # fmt: skip
    ids["Tasks"].append(s.post_entity("Tasks", {
        "taskingParameters": {}, "TaskingCapability": {"@iot.id": ids["TaskingCapabilities"][0]},
    })["@iot.id"])  # fmt: skip
    s.id_types |= {"Actuators", "TaskingCapabilities", "Tasks"}


def _test03(s: Scene) -> None:
    ids = s.ids
    thing = s.post_entity("Things", OFFICE)["@iot.id"]
    ds_expected = {k: v for k, v in LIGHT_EXPOSURE.items() if k not in ("ObservedProperty", "Sensor")}
    datastream = s.check_related(THING, thing, "Datastreams", ds_expected)
    ids["Datastreams"].append(datastream)
    ids["Locations"].append(s.check_related(THING, thing, "Locations", WEST_ROOF))
    ids["Sensors"].append(s.check_related(DATASTREAM, datastream, "Sensor", FLUXOMATIC))
    ids["ObservedProperties"].append(s.check_related(DATASTREAM, datastream, "ObservedProperty", LUMINOUS_FLUX))
    ids["Things"].append(thing)

    body = _datastream("test datastream.", thing, LUMINOUS_FLUX, FLUXOMATIC, Observations=OBSERVATION_10)
    datastream = s.post_entity("Datastreams", body)["@iot.id"]
    ids["Sensors"].append(s.check_related(DATASTREAM, datastream, "Sensor", FLUXOMATIC))
    ids["ObservedProperties"].append(s.check_related(DATASTREAM, datastream, "ObservedProperty", LUMINOUS_FLUX))
    ids["Observations"].append(
        s.check_related(
            DATASTREAM, datastream, "Observations", {"phenomenonTime": "2015-03-01T00:10:00.000Z", "result": 10}
        )
    )
    ids["Datastreams"].append(datastream)

    observation = s.post_entity("Observations", {
        "phenomenonTime": "2015-03-01T00:00:00Z", "result": 100, "FeatureOfInterest": WEATHER_STATION,
        "Datastream": {"@iot.id": datastream},
    })["@iot.id"]  # fmt: skip
    ids["FeaturesOfInterest"].append(s.check_related(OBSERVATION, observation, "FeatureOfInterest", WEATHER_STATION))
    ids["Observations"].append(observation)


def _test04(s: Scene) -> None:
    ids, client = s.ids, s.client
    thing, obs_prop, sensor = (
        ids["Things"][0],
        {"@iot.id": ids["ObservedProperties"][0]},
        {"@iot.id": ids["Sensors"][0]},
    )
    post_invalid(client, "Datastreams", _datastream("test datastream.", thing, obs_prop, None))  # without Sensor
    post_invalid(
        client, "Datastreams", _datastream("test datastream.", thing, None, sensor)
    )  # without ObservedProperty
    post_invalid(client, "Datastreams", _datastream("test datastream.", None, obs_prop, sensor))  # without Thing
    thing_id = s.post_entity(
        "Things", {"name": "This is a Test Thing From TestNG", "description": "This is a Test Thing From TestNG"}
    )["@iot.id"]
    ids["Things"].append(thing_id)
    datastream = s.post_entity("Datastreams", _datastream("test datastream.", thing_id, obs_prop, sensor))["@iot.id"]
    ids["Datastreams"].append(datastream)
    post_invalid(client, "Observations", {  # without Datastream
        "phenomenonTime": "2015-03-01T00:40:00.000Z", "result": 8,
        "FeatureOfInterest": {"@iot.id": ids["FeaturesOfInterest"][0]},
    })  # fmt: skip
    post_invalid(client, "Observations", {  # without FoI, and its Thing has no Location
        "phenomenonTime": "2015-03-01T00:00:00.000Z", "result": 100, "Datastream": {"@iot.id": datastream},
    })  # fmt: skip


def _patch(s: Scene, kind: EntityType, entity_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """patchEntity + checkPatch, the diffs being what the PATCH sends."""
    old = s.get_entity(kind.plural, entity_id)
    new = s.patch_entity(kind.plural, body, entity_id)
    check_patch(kind, old, new, body)
    return new


def _test05(s: Scene) -> None:
    ids = s.ids
    _patch(s, THING, ids["Things"][0], {"description": "This is a PATCHED Test Thing From TestNG"})
    _patch(s, LOCATION, ids["Locations"][0], {"location": {"type": "Point", "coordinates": [114.05, -50]}})
    _patch(s, HISTORICAL_LOCATION, ids["HistoricalLocations"][0], {"time": "2015-07-01T00:00:00.000Z"})
    _patch(s, SENSOR, ids["Sensors"][0], {"metadata": "PATCHED"})
    _patch(s, OBSERVED_PROPERTY, ids["ObservedProperties"][0], {"description": "PATCHED"})
    _patch(s, FEATURE_OF_INTEREST, ids["FeaturesOfInterest"][0],
           {"feature": {"type": "Point", "coordinates": [114.05, -51.05]}})  # fmt: skip
    _patch(s, DATASTREAM, ids["Datastreams"][0], {"description": "Patched Description"})
    _patch(s, DATASTREAM, ids["Datastreams"][0], {"unitOfMeasurement": {
        "name": "Entropy2", "symbol": "S2", "definition": "http://qudt.org/vocab/unit#Entropy2"}})  # fmt: skip
    _patch(s, OBSERVATION, ids["Observations"][0], {"phenomenonTime": "2015-07-01T00:40:00.000Z"})


def _put(s: Scene, kind: EntityType, entity_id: int, body: dict[str, Any], old: dict[str, Any] | None = None) -> None:
    """updateEntity + checkPut, the diffs being what the PUT sends."""
    before = s.get_entity(kind.plural, entity_id) if old is None else old
    check_put(kind, before, s.update_entity(kind.plural, body, entity_id), body)


def _test06(s: Scene) -> None:
    ids = s.ids
    _put(s, THING, ids["Things"][0], {
        "name": "This is a Updated Test Thing From TestNG", "description": "This is a Updated Test Thing From TestNG",
    })  # fmt: skip
    _put(s, LOCATION, ids["Locations"][0], {
        "encodingType": "application/vnd.geo+json", "name": "UPDATED NAME", "description": "UPDATED DESCRIPTION",
        "location": {"type": "Point", "coordinates": [-114.05, 50]},
    })  # fmt: skip
    _put(s, HISTORICAL_LOCATION, ids["HistoricalLocations"][0], {"time": "2015-08-01T00:00:00.000Z"})
    sensor_before = s.get_entity("Sensors", ids["Sensors"][0])
    _put(s, SENSOR, ids["Sensors"][0], {
        "name": "UPDATED", "description": "UPDATED", "encodingType": "application/pdf", "metadata": "UPDATED",
    }, sensor_before)  # fmt: skip
    # The Java test sends "name" twice (QWERTY, then POIUYTREW): the JSON parser keeps the last; it compares with
    # the Sensor read before (its ``entity`` is not re-read), which does not matter as the PUT names every property.
    _put(s, OBSERVED_PROPERTY, ids["ObservedProperties"][0], {
        "definition": "ZXCVB", "name": "POIUYTREW", "description": "POIUYTREW",
    }, sensor_before)  # fmt: skip
    _put(s, FEATURE_OF_INTEREST, ids["FeaturesOfInterest"][0], {
        "encodingType": "application/vnd.geo+json", "feature": {"type": "Point", "coordinates": [-114.05, 51.05]},
        "description": "POIUYTREW", "name": "POIUYTREW",
    })  # fmt: skip
    _put(s, DATASTREAM, ids["Datastreams"][0], {
        "name": "Data coming from sensor on ISS.", "description": "Data coming from sensor on ISS.",
        "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Observation",
        "unitOfMeasurement": {"name": "Entropy", "symbol": "S", "definition": "http://qudt.org/vocab/unit#Entropy"},
    })  # fmt: skip
    _put(s, OBSERVATION, ids["Observations"][0], {"result": "99", "phenomenonTime": "2015-08-01T00:40:00.000Z"})


@pytest.fixture
def scene(client: TestClient) -> Scene:
    return Scene(client)


# -- the tests -------------------------------------------------------------------------------------------------------
def test_test01CreateInvalidEntitiesWithDeepInsert(scene: Scene) -> None:
    client = scene.client
    no_sensor = {k: v for k, v in LIGHT_EXPOSURE.items() if k != "Sensor"}
    post_invalid(client, "Things", OFFICE | {"Datastreams": [no_sensor]})
    not_existing(client, ["Things", "Locations", "HistoricalLocations", "Datastreams", "ObservedProperties"])

    thing = scene.post_entity("Things", {"name": "Office Building", "description": "Office Building"})["@iot.id"]
    name = "test datastream."
    post_invalid(client, "Datastreams", _datastream(name, thing, LUMINOUS_FLUX, None, Observations=OBSERVATION_10))
    post_invalid(client, "Datastreams", _datastream(name, thing, None, FLUXOMATIC, Observations=OBSERVATION_10))
    post_invalid(client, "Datastreams", _datastream(name, None, LUMINOUS_FLUX, FLUXOMATIC, Observations=OBSERVATION_10))
    not_existing(client, ["Datastreams", "Sensors", "Observations", "FeaturesOfInterest", "ObservedProperties"])

    datastream = scene.post_entity("Datastreams", _datastream("test datastream.", thing, LUMINOUS_FLUX, FLUXOMATIC))
    ds = {"@iot.id": datastream["@iot.id"]}
    post_invalid(client, "Observations", {"phenomenonTime": "2015-03-01T00:00:00Z", "result": 100, "Datastream": ds})
    station = {k: v for k, v in WEATHER_STATION.items() if k != "encodingType"}
    post_invalid(client, "Observations",
                 {"phenomenonTime": "2015-03-01T00:00:00Z", "result": 100, "FeatureOfInterest": station,
                  "Datastream": ds})  # fmt: skip
    not_existing(client, ["Observations", "FeaturesOfInterest"])
    delete_everything(client, ALL_TYPES)


def test_test02CreateEntities(scene: Scene) -> None:
    _test02(scene)


def test_test03CreateEntitiesWithDeepInsert(scene: Scene) -> None:
    scene.replay("test02")
    _test03(scene)


def test_test04CreateInvalidEntities(scene: Scene) -> None:
    scene.replay("test02", "test03")
    _test04(scene)


def test_test05PatchEntities(scene: Scene) -> None:
    scene.replay("test02", "test03", "test04")
    _test05(scene)


def test_test06PutEntities(scene: Scene) -> None:
    scene.replay("test02", "test03", "test04", "test05")
    _test06(scene)


def test_test07InvalidPatchEntities(scene: Scene) -> None:
    scene.replay("test02", "test03", "test04", "test05", "test06")
    ids = scene.ids
    thing = ids["Things"][0]
    scene.invalid_patch("Things", {"Locations": [WEST_ROOF]}, thing)
    scene.invalid_patch("Things", {"Datastreams": [{"unitOfMeasurement": UOM_LM}]}, thing)
    linked = {"Datastreams": [{"unitOfMeasurement": UOM_LM, "Thing": {"@iot.id": thing}}]}
    scene.invalid_patch("Sensors", linked, ids["Sensors"][0])
    scene.invalid_patch("ObservedProperties", linked, ids["ObservedProperties"][0])
    datastream = ids["Datastreams"][0]
    # "name" twice in the Java body: the last one is kept
    scene.invalid_patch("Datastreams", {"ObservedProperty": {
        "definition": "http://qudt.org/vocab/unit#Dimensionless", "name": "Count is a dimensionless property.",
        "description": "Count is a dimensionless property."}}, datastream)  # fmt: skip
    scene.invalid_patch("Datastreams", {"Sensor": {
        "name": "Acme Traffic 2000", "description": "Acme Traffic 2000", "encodingType": "application/pdf",
        "metadata": "Traffic counting device"}}, datastream)  # fmt: skip
    scene.invalid_patch("Datastreams", {"Thing": {"name": "test", "description": "test"}}, datastream)
    scene.invalid_patch("Datastreams", {"Observations": [
        {"phenomenonTime": "2015-03-01T00:00:00Z", "result": 92122, "resultQuality": "High"}]}, datastream)  # fmt: skip


def _entities_for_delete(s: Scene) -> dict[str, int]:
    """createEntitiesForDelete: after deleteEverything, FROST's "thing 1" with its Location and Datastream (and its
    Sensor and ObservedProperty), an Observation posted to the Datastream; one id of each type."""
    client = s.client
    delete_everything(client, ALL_TYPES)
    thing = s.post_entity("Things", {
        "name": "thing 1", "description": "thing 1", "properties": {"reference": "first"},
        "Locations": [{"name": "location 1", "description": "location 1",
                       "location": {"type": "Point", "coordinates": [-117.05, 51.05]},
                       "encodingType": "application/vnd.geo+json"}],
        "Datastreams": [{
            "unitOfMeasurement": UOM_LM, "name": "datastream 1", "description": "datastream 1",
            "observationType": MEASUREMENT,
            "ObservedProperty": {"name": "Luminous Flux",
                                 "definition": "http://www.qudt.org/qudt/owl/1.0.0/quantity/Instances.html#LuminousFlux",
                                 "description": "observedProperty 1"},
            "Sensor": {"name": "sensor 1", "description": "sensor 1", "encodingType": "application/pdf",
                       "metadata": "Light flux sensor"},
        }],
    })["@iot.id"]  # fmt: skip

    def one(path: str) -> int:
        body = client.get(f"/v1.1/{path}").json()
        return int((body["value"][0] if "value" in body else body)["@iot.id"])

    ds = one(f"Things({thing})/Datastreams")
    r = client.post(
        f"/v1.1/Datastreams({ds})/Observations", json={"phenomenonTime": "2015-03-01T00:00:00Z", "result": 1}
    )
    obs = int(r.json()["@iot.id"])
    return {
        "Things": thing,
        "Locations": one(f"Things({thing})/Locations"),
        "Datastreams": ds,
        "Sensors": one(f"Datastreams({ds})/Sensor"),
        "ObservedProperties": one(f"Datastreams({ds})/ObservedProperty"),
        "HistoricalLocations": one(f"Things({thing})/HistoricalLocations"),
        "Observations": obs,
        "FeaturesOfInterest": one(f"Observations({obs})/FeatureOfInterest"),
    }


def test_test08DeleteEntities(scene: Scene) -> None:
    scene.replay("test02", "test03", "test04", "test05", "test06")
    for plural in ("Observations", "FeaturesOfInterest", "Datastreams", "ObservedProperties", "Sensors",
                   "HistoricalLocations", "Locations", "Things"):  # fmt: skip
        for entity_id in scene.ids[plural]:
            scene.delete_entity(plural, entity_id)
    # checkDeleteIntegrityConstraint
    for plural, gone in DELETE_TAKES.items():
        made = _entities_for_delete(scene)
        scene.delete_entity(plural, made[plural])
        not_existing(scene.client, gone)
        existing(scene.client, [p for p in SENSING_TYPES if p not in gone])


def test_test09DeleteNoneexistentEntities(scene: Scene) -> None:
    scene.replay("test02")  # the id types the tests before it met
    for kind in enabled_types(EXTENSIONS):
        if kind.plural not in scene.id_types:
            continue
        r = scene.client.delete(f"/v1.1/{kind.plural}({UNLIKELY_ID})")
        assert r.status_code == 404, (
            f"DELETE does not work properly for nonexistent {kind.key} with id {UNLIKELY_ID}. Returned with "
            f"response code {r.status_code}."
        )
