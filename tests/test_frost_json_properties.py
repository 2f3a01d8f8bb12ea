"""FROST-Server's JSON property tests (``statests.c03filtering.JsonPropertiesTests``, v1.1 as
``JsonPropertiesTests11`` runs it), ported to pytest.

Each Java test keeps its name (``test_<name>``) and checks what it checks: reading a member deep inside a Thing's
``properties`` and an Observation's ``parameters`` by path (``properties/intIntArray[0][1]``,
``parameters/objArray[0]/string``), ``$filter`` on such members compared with strings, numbers and booleans (and
with members of the same name on another entity), the ``in`` operator, ``resultQuality`` as an object and as an
array, and ``unitOfMeasurement`` members by path, in ``$filter`` and in ``$select``. ``createEntities`` is the
``scene`` fixture, with FROST's values made by its generators (``_string``, ``_int_array``, ...); the Java class's
shared state and its cleanup become a fresh hub for each test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.frost_data import create, filter_results


def _string(start: int, length: int) -> str:
    """generateString: ``length`` letters from the ``start``-th (a=0), wrapping after z."""
    return "".join(chr(ord("a") + (start + i) % 26) for i in range(length))


def _int_array(start: int, length: int) -> list[int]:
    return list(range(start, start + length))


def _string_array(start: int, length: int) -> list[str]:
    return [f"s{v}" for v in range(start, start + length)]


def _int_int_array(start: int, length: int) -> list[list[int]]:
    return [_int_array(start + i, length) for i in range(length)]


def _object_list(start: int, length: int) -> list[dict[str, Any]]:
    return [
        {"string": _string(v, 10), "boolean": v % 2 == 0, "int": v, "intArray": _int_array(v, 3)}
        for v in range(start, start + length)
    ]


RQ_OBJECT: dict[str, Any] = {
    "DQ_Status": {"code": 2, "label": "Niveau 1", "comment": "Donnée contrôlée niveau 1 (données contrôlées)"}
}
RQ_ARRAY: list[dict[str, Any]] = [
    {
        "nameOfMeasure": "DQ_Status",
        "DQ_Result": {"code": 2, "label": "Niveau 1", "comment": "Donnée contrôlée niveau 1 (données contrôlées)"},
    },
    {"nameOfMeasure": "DQ_Qualification", "DQ_Result": {"code": 1, "label": "Correcte", "comment": "Correcte"}},
]
UNITS = [
    {"name": "degree celcius", "symbol": "°C", "definition": "Cel"},
    {"name": "degree Fahrenheit", "symbol": "°F", "definition": "[degF]"},
]


@dataclass
class Scene:
    """The Java class's THINGS, DATASTREAMS and OBSERVATIONS (ids, in creation order), with what was sent."""

    client: TestClient
    things: list[int]
    thing_properties: list[dict[str, Any]]
    datastreams: list[int]
    observations: list[int]
    observation_parameters: list[dict[str, Any]]

    def results(self, plural: str, flt: str, *expected: int) -> None:
        registry = {"Things": self.things, "Datastreams": self.datastreams, "Observations": self.observations}[plural]
        filter_results(self.client, plural, flt, registry, expected)


@pytest.fixture
def scene(client: TestClient) -> Scene:
    """createEntities: four Things with properties of every JSON kind, a Location of Thing 0, a Sensor and an
    ObservedProperty, Datastream 0 (°C) with Observations 0-12 (parameters of every kind, resultQuality an object
    for the even ones and an array for the odd ones) and 13-15 (parameters of the wrong kinds: a string ``int``,
    a number ``boolean``, ...), and Datastream 1 (°F) without Observations."""
    things: list[int] = []
    thing_properties: list[dict[str, Any]] = []
    for i in range(4):
        properties = {
            "string": _string(i, 10),
            "boolean": i % 2 == 0,
            "int": i + 8,
            "intArray": _int_array(i + 8, 5),
            "strArray": _string_array(i + 8, 5),
            "intIntArray": _int_int_array(i + 8, 3),
            "objArray": _object_list(i + 8, 3),
        }
        thing_properties.append(properties)
        things.append(create(client, "Things", {"name": f"Thing {i}", "description": "It's a thing.",
                                                "properties": properties}))  # fmt: skip
    create(client, "Locations", {"name": "Location 1", "description": "Location of Thing 1.",
                                 "encodingType": "application/vnd.geo+json",
                                 "location": {"type": "Point", "coordinates": [8, 52]},
                                 "Things": [{"@iot.id": things[0]}]})  # fmt: skip
    sensor = create(client, "Sensors", {"name": "Sensor 1", "description": "The first sensor.",
                                        "encodingType": "text", "metadata": "Some metadata."})  # fmt: skip
    obs_prop = create(client, "ObservedProperties", {"name": "Temperature",
                                                     "definition": "http://ucom.org/temperature",
                                                     "description": "The temperature of the thing."})  # fmt: skip

    def datastream(name: str, unit: dict[str, str]) -> int:
        return create(client, "Datastreams", {
            "name": name, "description": "The temperature of thing 1, sensor 1.", "observationType": "someType",
            "unitOfMeasurement": unit, "Thing": {"@iot.id": things[0]}, "Sensor": {"@iot.id": sensor},
            "ObservedProperty": {"@iot.id": obs_prop},
        })  # fmt: skip

    datastreams = [datastream("Datastream 1", UNITS[0])]
    observations: list[int] = []
    observation_parameters: list[dict[str, Any]] = []

    def observation(result: Any, parameters: dict[str, Any], quality: Any = None) -> None:
        # newObservation(result, datastream): no phenomenonTime, the server's to fill in.
        body: dict[str, Any] = {"result": result, "Datastream": {"@iot.id": datastreams[0]}, "parameters": parameters}
        if quality is not None:
            body["resultQuality"] = quality
        observation_parameters.append(parameters)
        observations.append(create(client, "Observations", body))

    for i in range(13):
        observation(i, {
            "string": _string(i, 10), "boolean": i % 2 == 0, "int": i, "intArray": _int_array(i, 5),
            "intIntArray": _int_int_array(i, 3), "objArray": _object_list(i, 3),
        }, RQ_OBJECT if i % 2 == 0 else RQ_ARRAY)  # fmt: skip
    observation("badVales1", {
        "int": _string(13, 10), "string": False, "boolean": 13, "objArray": _int_array(13, 5),
        "intArray": _int_int_array(13, 3), "intIntArray": _object_list(13, 3),
    })  # fmt: skip
    observation("badVales2", {
        "boolean": _string(14, 10), "int": True, "string": 14, "intIntArray": _int_array(14, 5),
        "objArray": _int_int_array(14, 3), "intArray": _object_list(14, 3),
    })  # fmt: skip
    observation("badVales3", {"boolean": "true", "int": "5"})
    datastreams.append(datastream("Datastream 2", UNITS[1]))
    return Scene(client, things, thing_properties, datastreams, observations, observation_parameters)


def _get(client: TestClient, url: str) -> dict[str, Any]:
    """getJsonObjectForResponse: 200 and a JSON object; ``[`` and ``]`` are sent percent-encoded."""
    url = url.replace("[", "%5B").replace("]", "%5D")
    r = client.get(url)
    assert r.status_code == 200, f"Incorrect response code ({r.status_code}) for url: {url}: {r.text}"
    body = r.json()
    assert isinstance(body, dict), f"Server did not return a JSON object for request: {url}"
    return body


def _check(body: dict[str, Any], name: str, expected: Any, url: str) -> None:
    """testResponseProperty: the member is there, of the expected JSON kind (a bool is no int), with the value."""
    value = body.get(name)
    assert type(value) is type(expected), f"field '{name}' is not a {type(expected).__name__} for request: {url}"
    assert value == expected, f"field '{name}' does not have the correct value for request: {url}"


def _fetch_low_level(client: TestClient, base: str, sent: dict[str, Any]) -> None:
    """The deep requests of test01 and test02, on a Thing's properties or an Observation's parameters."""
    for name in ("string", "boolean", "int", "intArray"):
        _check(_get(client, f"{base}/{name}"), name, sent[name], f"{base}/{name}")
    cases: list[tuple[str, str, Any]] = [
        ("intArray[1]", "intArray[1]", sent["intArray"][1]),
        ("intIntArray[1]", "intIntArray[1]", sent["intIntArray"][1]),
        ("intIntArray[0][1]", "intIntArray[0][1]", sent["intIntArray"][0][1]),
        ("objArray[0]/string", "string", sent["objArray"][0]["string"]),
    ]
    for path, name, expected in cases:
        _check(_get(client, f"{base}/{path}"), name, expected, f"{base}/{path}")


def test_test01FetchLowLevelThingProperties(scene: Scene) -> None:
    _fetch_low_level(scene.client, f"/v1.1/Things({scene.things[0]})/properties", scene.thing_properties[0])


def test_test02FetchLowLevelObservationParameters(scene: Scene) -> None:
    base = f"/v1.1/Observations({scene.observations[0]})/parameters"
    _fetch_low_level(scene.client, base, scene.observation_parameters[0])


def test_test03StringFilter(scene: Scene) -> None:
    scene.results("Things", f"properties/string eq '{scene.thing_properties[2]['string']}'", 2)
    scene.results("Observations", f"parameters/string eq '{scene.observation_parameters[2]['string']}'", 2)

    scene.results("Things", "substringof('cdefgh', properties/string)", 0, 1, 2)
    scene.results("Observations", "substringof('cdefgh', parameters/string)", 0, 1, 2)

    scene.results("Things", "properties/objArray[0]/string eq 'jklmnopqrs'", 1)
    scene.results("Observations", "parameters/objArray[0]/string eq 'jklmnopqrs'", 9)

    scene.results("Observations", "parameters/int eq '5'", 5, 15)


def test_test04NumberFilter(scene: Scene) -> None:
    scene.results("Things", f"properties/int eq {scene.thing_properties[2]['int']}", 2)
    scene.results("Observations", f"parameters/int eq {scene.observation_parameters[2]['int']}", 2)

    scene.results("Things", "properties/int gt 9", 2, 3)
    scene.results("Observations", "parameters/int gt 8", 9, 10, 11, 12)

    scene.results("Things", "properties/int lt 9", 0)
    scene.results("Observations", "parameters/int lt 8", 0, 1, 2, 3, 4, 5, 6, 7)

    scene.results("Things", "properties/intArray[1] gt 10", 2, 3)
    scene.results("Observations", "parameters/intArray[1] gt 9", 9, 10, 11, 12)

    scene.results("Things", "properties/intArray[1] lt 10", 0)
    scene.results("Observations", "parameters/intArray[1] lt 9", 0, 1, 2, 3, 4, 5, 6, 7)

    scene.results("Things", "properties/intIntArray[1][0] gt 10", 2, 3)
    scene.results("Observations", "parameters/intIntArray[1][0] gt 9", 9, 10, 11, 12)

    scene.results("Things", "properties/objArray[1]/intArray[0] gt 10", 2, 3)
    scene.results("Observations", "parameters/objArray[1]/intArray[0] gt 9", 9, 10, 11, 12)


def test_test05BooleanFilter(scene: Scene) -> None:
    # Java's Boolean.toString: "false".
    thing_bool = str(scene.thing_properties[1]["boolean"]).lower()
    obs_bool = str(scene.observation_parameters[1]["boolean"]).lower()
    scene.results("Things", f"properties/boolean eq {thing_bool}", 1, 3)
    scene.results("Observations", f"parameters/boolean eq {obs_bool}", 1, 3, 5, 7, 9, 11)

    scene.results("Things", "properties/boolean", 0, 2)
    scene.results("Observations", "parameters/boolean", 0, 2, 4, 6, 8, 10, 12)

    scene.results("Things", "not properties/boolean", 1, 3)
    scene.results("Observations", "not parameters/boolean", 1, 3, 5, 7, 9, 11)

    scene.results("Things", "properties/objArray[1]/boolean", 1, 3)
    scene.results("Observations", "parameters/objArray[1]/boolean", 1, 3, 5, 7, 9, 11)


def test_test06UnitOfMeasurementFilter(scene: Scene) -> None:
    for member in ("symbol", "name", "definition"):
        for n in (0, 1):
            scene.results("Datastreams", f"unitOfMeasurement/{member} eq '{UNITS[n][member]}'", n)


def test_test07PropertyCompare(scene: Scene) -> None:
    scene.results("Observations", "parameters/int eq Datastream/Thing/properties/int", 8)
    scene.results("Observations", "parameters/string eq Datastream/Thing/properties/string", 0)
    scene.results(
        "Observations", "parameters/boolean eq Datastream/Thing/properties/boolean", 0, 2, 4, 6, 8, 10, 12, 15
    )


def test_test08InNumberFilter(scene: Scene) -> None:
    scene.results("Things", "properties/int in (8,9)", 0, 1)
    scene.results("Things", "9 in properties/intArray", 0, 1)
    scene.results("Things", "'s10' in properties/strArray", 0, 1, 2)


def test_test20ResultQualityFilter(scene: Scene) -> None:
    scene.results("Observations", "resultQuality/DQ_Status/code eq 2", 0, 2, 4, 6, 8, 10, 12)
    scene.results("Observations", "resultQuality[0]/DQ_Result/code eq 2", 1, 3, 5, 7, 9, 11)


def test_test21SelectUnit(scene: Scene) -> None:
    base = f"/v1.1/Datastreams({scene.datastreams[0]})"
    for member in ("symbol", "name", "definition"):
        url = f"{base}/unitOfMeasurement/{member}"
        _check(_get(scene.client, url), member, UNITS[0][member], url)
    for member in ("symbol", "name", "definition"):
        url = f"{base}?$select=unitOfMeasurement/{member}"
        body = _get(scene.client, url)
        unit = body.get("unitOfMeasurement")
        assert isinstance(unit, dict), f"field 'unitOfMeasurement' is not a container node for request: {url}"
        _check(unit, member, UNITS[0][member], url)
