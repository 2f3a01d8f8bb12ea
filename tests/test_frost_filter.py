"""FROST-Server's odd filter tests (``statests.c03filtering.FilterTests``, v1.1 as ``FilterTests11`` runs it),
ported to pytest.

Each Java test keeps its name (``test_<name>``) and checks what it checks: filters across relations, also back and
forth (``Datastreams/Thing/Datastreams/...``) and through HistoricalLocations; ``substring`` with one and two
arguments; ``eq null`` and ``ne null`` on a missing property and on a navigation path; a null property and its
``$value`` answering 204; ``resultQuality`` compared with a string and with a number; and ``any`` lambdas, nested
and seeing the entity outside them. ``createEntities`` is the ``scene`` fixture, with FROST's entities made as its
client sends them (EntityUtils' createSensor, createObservedProperty, createDatastream and createObservationSet
give each an ``idx`` property or parameter, and every other Observation a numeric resultQuality); the Java class's
shared state and its cleanup become a fresh hub for each test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.frost_data import UOM_TEMP, create, filter_results

START = datetime(2016, 1, 1, 1, tzinfo=UTC)
OBSERVATIONS_PER_SET = 6


def _moment(t: datetime) -> str:
    return t.replace(tzinfo=None).isoformat() + "Z"


def _location(name: str, description: str, geometry: dict[str, Any], field: float, thing: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "description": description,
        "encodingType": "application/vnd.geo+json",
        "location": geometry,
        "properties": {"field": field},
    }
    if thing is not None:
        body["Things"] = [{"@iot.id": thing}]
    return body


def _point(x: float, y: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [x, y]}


def _line(*points: tuple[float, float]) -> dict[str, Any]:
    return {"type": "LineString", "coordinates": [list(p) for p in points]}


@dataclass
class Scene:
    """The Java class's THINGS, LOCATIONS, SENSORS, O_PROPS, DATASTREAMS and OBSERVATIONS (ids, in creation order)."""

    client: TestClient
    things: list[int]
    locations: list[int]
    sensors: list[int]
    o_props: list[int]
    datastreams: list[int]
    observations: list[int]

    def results(self, plural: str, flt: str, *expected: int) -> None:
        registry = {
            "Things": self.things,
            "ObservedProperties": self.o_props,
            "Observations": self.observations,
        }[plural]
        filter_results(self.client, plural, flt, registry, expected)


@pytest.fixture
def scene(client: TestClient) -> Scene:
    """createEntities: four Things (2 and 3 with properties), Locations 0-4 linked to them (Thing 1 has two),
    three lines without a Thing, four Sensors and ObservedProperties, seven Datastreams and six sets of six
    Observations."""
    things = [
        create(client, "Things", {"name": "Thing 1", "description": "The first thing."}),
        create(client, "Things", {"name": "Thing 2", "description": "The second thing.",
                                  "properties": {"field": 2, "string": "one"}}),
        create(client, "Things", {"name": "Thing 3", "description": "The third thing.",
                                  "properties": {"field": 3, "string": "two"}}),
        create(client, "Things", {"name": "Thing 4", "description": "The fourth thing."}),
    ]  # fmt: skip
    polygon = {"type": "Polygon", "coordinates": [[[8, 53], [7, 52], [7, 53], [8, 53]]]}
    location_bodies = [
        _location("Location 1.0", "First Location of Thing 1.", _point(8, 51), 1, things[0]),
        _location("Location 1.1", "Second Location of Thing 1.", _point(8, 52), 1.1, things[0]),
        _location("Location 2", "Location of Thing 2.", _point(8, 53), 2, things[1]),
        _location("Location 3", "Location of Thing 3.", _point(8, 54), 3, things[2]),
        _location("Location 4", "Location of Thing 4.", polygon, 4, things[3]),
        _location("Location 5", "A line.", _line((5, 52), (5, 53)), 5, None),
        _location("Location 6", "A longer line.", _line((5, 52), (6, 53)), 6, None),
        _location("Location 7", "The longest line.", _line((4, 52), (8, 52)), 7, None),
    ]
    locations = [create(client, "Locations", body) for body in location_bodies]
    sensors = [
        create(client, "Sensors", {"name": f"Sensor {i}", "description": f"The sensor with idx {i}.",
                                   "encodingType": "text", "metadata": "Some metadata.", "properties": {"idx": i}})
        for i in range(4)
    ]  # fmt: skip
    definitions = ["temperature", "humidity", "pressure", "turbidity"]
    o_props = [
        create(client, "ObservedProperties", {"name": f"ObservedProperty {i}",
                                              "definition": f"http://ucom.org/{definition}",
                                              "description": f"ObservedProperty with index {i}.",
                                              "properties": {"idx": i}})
        for i, definition in enumerate(definitions)
    ]  # fmt: skip
    # (description, thing, sensor, observed property) of Datastream n, as the Java test writes them.
    ds_links = [
        ("Datastream 1 of thing 0, sensor 0.", 0, 0, 0),
        ("Datastream 2 of thing 0, sensor 1.", 0, 1, 1),
        ("Datastream 3 of thing 0, sensor 2.", 0, 2, 2),
        ("Datastream 1 of thing 1, sensor 0.", 1, 0, 0),
        ("Datastream 2 of thing 1, sensor 1.", 1, 1, 1),
        ("Datastream 3 of thing 1, sensor 3.", 1, 3, 3),
        ("Datastream 1 of thing 2, sensor 3.", 2, 1, 0),
    ]
    datastreams = []
    for n, (description, thing, sensor, o_prop) in enumerate(ds_links):
        body = {
            "name": f"Datastream {n}",
            "description": description,
            "observationType": "someType",
            "unitOfMeasurement": dict(UOM_TEMP),
            "properties": {"idx": n},
            "Thing": {"@iot.id": things[thing]},
            "Sensor": {"@iot.id": sensors[sensor]},
            "ObservedProperty": {"@iot.id": o_props[o_prop]},
        }
        datastreams.append(create(client, "Datastreams", body))
    observations: list[int] = []
    # createObservationSet moves every validTime by the set's count, not by the Observation's index: all are
    # 07:00-08:00.
    valid = f"{_moment(START + timedelta(hours=6))}/{_moment(START + timedelta(hours=7))}"
    for set_no in range(6):
        for i in range(OBSERVATIONS_PER_SET):
            idx = len(observations)
            obs = {
                "result": set_no * 3 + i,
                "phenomenonTime": _moment(START + timedelta(hours=i)),
                "Datastream": {"@iot.id": datastreams[set_no]},
                "validTime": valid,
                "parameters": {"idx": idx},
                "resultQuality": idx if idx % 2 == 0 else f"number-{idx}",
            }
            observations.append(create(client, "Observations", obs))
    return Scene(client, things, locations, sensors, o_props, datastreams, observations)


def test_testIndirectFilter(scene: Scene) -> None:
    scene.results("Things", "Locations/name eq 'Location 2'", 1)
    scene.results("Things", "startswith(HistoricalLocations/Locations/name, 'Location 1')", 0)
    scene.results("Things", "HistoricalLocations/Locations/properties/field eq properties/field", 1, 2)


def test_testDeepIndirection(scene: Scene) -> None:
    scene.results(
        "ObservedProperties", "Datastreams/Thing/Datastreams/ObservedProperty/name eq 'ObservedProperty 0'", 0, 1, 2, 3
    )
    scene.results(
        "ObservedProperties", "Datastreams/Thing/Datastreams/ObservedProperty/name eq 'ObservedProperty 3'", 0, 1, 3
    )


def test_testSubString(scene: Scene) -> None:
    scene.results("Things", "substring(properties/string, 1) eq 'wo'", 2)
    scene.results("Things", "substring(properties/string, 1, 1) eq 'w'", 2)
    scene.results("Things", "substring(name, 4) eq 'g 4'", 3)
    scene.results("Things", "substring(name, 4, 3) eq 'g 4'", 3)


def test_testEqualsNull(scene: Scene) -> None:
    scene.results("Things", "properties/field eq null", 0, 3)
    scene.results("Things", "Datastreams/id eq null", 3)


def test_testNotEqualsNull(scene: Scene) -> None:
    scene.results("Things", "properties/field ne null", 1, 2)
    scene.results("Things", "Datastreams/id ne null", 0, 1, 2)


def test_testNullEntityProperty(scene: Scene) -> None:
    url = f"/v1.1/Things({scene.things[0]})/properties"
    r = scene.client.get(url)
    assert r.status_code == 204, f"Expected response code 204 on request {url}, got {r.status_code} {r.text}"


def test_testNullEntityPropertyValue(scene: Scene) -> None:
    url = f"/v1.1/Things({scene.things[0]})/properties/$value"
    r = scene.client.get(url)
    assert r.status_code == 204, f"Expected response code 204 on request {url}, got {r.status_code} {r.text}"


def test_testStringResultQualityValue(scene: Scene) -> None:
    scene.results("Observations", "resultQuality eq 'number-1'", 1)


def test_testNumericResultQualityValue(scene: Scene) -> None:
    scene.results("Observations", "resultQuality eq 2", 2)


def test_testAnyFilter(scene: Scene) -> None:
    scene.results("Things", "Locations/any(l:l/name eq 'Location 2')", 1)
    scene.results("Things", "HistoricalLocations/any(hl : hl/Locations/any(l : startswith(l/name, 'Location 1')))", 0)
    scene.results(
        "Things", "HistoricalLocations/any(hl : hl/Locations/any(l : l/properties/field eq properties/field))", 1, 2
    )
    scene.results(
        "Things",
        "Datastreams/any(d:d/ObservedProperty/name eq 'ObservedProperty 0') and "
        "Datastreams/any(d:d/ObservedProperty/name eq 'ObservedProperty 1')",
        0,
        1,
    )
    scene.results(
        "Things",
        "Datastreams/any(d:d/ObservedProperty/name eq 'ObservedProperty 3') and "
        "Datastreams/any(d:d/ObservedProperty/name eq 'ObservedProperty 1')",
        1,
    )
    scene.results(
        "Things",
        "Datastreams/any(d:d/ObservedProperty/name eq 'ObservedProperty 0' and d/Sensor/name eq 'Sensor 1')",
        2,
    )
