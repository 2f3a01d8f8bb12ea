"""FROST-Server's Data Array tests (``statests.c06dataarrays.DataArrayTests``, v1.1), ported to pytest.

Each Java test keeps its name (``test_<name>``) and checks what it checks: ``$resultFormat=dataArray`` on
Observations, with and without ``$select`` (``validateGetDataArrayResponse``: a count and a nextLink, each group
naming its (Multi)Datastream, its components exactly the requested properties, each row as long as the
components, ``dataArray@iot.count`` the number of rows), and ``CreateObservations`` for Datastreams and a
MultiDatastream, whose answer is one line per row: the new Observation's URL, or an error for the row that names
no FeatureOfInterest (``"probablyNotAValidId"``) or whose result is not the MultiDatastream's array.
``createEntities`` is the ``scene`` fixture, with FROST's entities made as FROST's client sends them, the
MultiDatastream part included (FROST's tests run with its MultiDatastream plugin on). The Java class's shared state
becomes the scene's lists; the tests that read what earlier ones made (test03 reads ``OBSERVATIONS`` 5 and 6) see
the same lists, filled as in Java, and the class's cleanup is the fresh hub of each test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.frost_data import UOM_TEMP, create

ROOT = "http://testserver/v1.1"
OBSERVATION_PROPERTIES = {"id", "phenomenonTime", "result", "resultTime", "resultQuality", "validTime", "parameters"}
# FROST's client constants (Constants.OM_MEASUREMENT, OM_COMPLEXOBSERVATION): what newMultiDatastream sends.
OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
OM_COMPLEX = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_ComplexObservation"


@dataclass
class Scene:
    """The Java class's static lists, as ids."""

    things: list[int] = field(default_factory=list)
    locations: list[int] = field(default_factory=list)
    sensors: list[int] = field(default_factory=list)
    o_props: list[int] = field(default_factory=list)
    datastreams: list[int] = field(default_factory=list)
    multidatastreams: list[int] = field(default_factory=list)
    observations: list[int] = field(default_factory=list)
    features: list[int] = field(default_factory=list)


def _feature(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "encodingType": "application/vnd.geo+json",
        "feature": {"type": "Point", "coordinates": [8, 51]},
    }


def _datastream(name: str, description: str, thing: int, sensor: int, obs_prop: int) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "observationType": "someType",
        "unitOfMeasurement": dict(UOM_TEMP),
        "Thing": {"@iot.id": thing},
        "Sensor": {"@iot.id": sensor},
        "ObservedProperty": {"@iot.id": obs_prop},
    }


def _observation(result: Any, time: str, stream: str, stream_id: int, foi: int) -> dict[str, Any]:
    """sMdl/mMdl.newObservation(result, phenomenonTime, (Multi)Datastream) with its FeatureOfInterest set."""
    return {
        "result": result,
        "phenomenonTime": time,
        stream: {"@iot.id": stream_id},
        "FeatureOfInterest": {"@iot.id": foi},
    }


@pytest.fixture
def scene(client: TestClient) -> Scene:
    """createEntities, in FROST's order, with its names, times and results."""
    s = Scene()
    s.things.append(create(client, "Things", {"name": "Thing 1", "description": "The first thing."}))
    s.locations.append(
        create(
            client,
            "Locations",
            {
                "name": "Location 1.0",
                "description": "Location of Thing 1.",
                "encodingType": "application/vnd.geo+json",
                "location": {"type": "Point", "coordinates": [8, 51]},
                "Things": [{"@iot.id": s.things[0]}],
            },
        )
    )
    for name, description in (("Sensor 1", "The first sensor."), ("Sensor 2", "The second sensor.")):
        sensor = {"name": name, "description": description, "encodingType": "text", "metadata": "Some metadata."}
        s.sensors.append(create(client, "Sensors", sensor))
    temperature = {
        "name": "Temperature",
        "definition": "http://dbpedia.org/page/Temperature",
        "description": "The temperature of the thing.",
    }
    s.o_props.append(create(client, "ObservedProperties", temperature))
    for k in (0, 1):
        body = _datastream(
            f"Datastream {k + 1}",
            f"The temperature of thing 1, sensor {k + 1}.",
            s.things[0],
            s.sensors[k],
            s.o_props[0],
        )
        s.datastreams.append(create(client, "Datastreams", body))
    s.features.append(create(client, "FeaturesOfInterest", _feature("Feature 1", "Feature 1 for thing 1, sensor 1")))
    s.features.append(create(client, "FeaturesOfInterest", _feature("Feature 2", "Feature 2 for thing 1, sensor 2")))
    for result, day, ds, foi in ((1, 1, 0, 0), (2, 2, 1, 0), (3, 3, 0, 1), (4, 4, 1, 1)):
        time = f"2016-01-0{day}T01:01:01.000Z"
        body = _observation(result, time, "Datastream", s.datastreams[ds], s.features[foi])
        s.observations.append(create(client, "Observations", body))

    # serverSettings.implementsRequirement(version, MULTIDATA_REQ): FROST's tests run with the plugin on.
    for name, page, description in (
        ("Wind speed", "Wind_speed", "The wind speed."),
        ("Wind direction", "Wind_direction", "The wind direction."),
    ):
        body = {"name": name, "definition": f"http://dbpedia.org/page/{page}", "description": description}
        s.o_props.append(create(client, "ObservedProperties", body))
    multi = {
        "name": "MultiDatastream 1",
        "description": "The wind at thing 1.",
        "observationType": OM_COMPLEX,
        "multiObservationDataTypes": [OM_MEASUREMENT, OM_MEASUREMENT],
        "unitOfMeasurements": [
            {"name": "m/s", "symbol": "m/s", "definition": "m/s"},
            {"name": "degrees", "symbol": "deg", "definition": "deg"},
        ],
        "Thing": {"@iot.id": s.things[0]},
        "Sensor": {"@iot.id": s.sensors[0]},
        "ObservedProperties": [{"@iot.id": s.o_props[1]}, {"@iot.id": s.o_props[2]}],
    }
    s.multidatastreams.append(create(client, "MultiDatastreams", multi))
    for values, day in (([5.0, 45.0], 1), ([5.0, 45.0], 2), ([5.0, 45.0], 3), ([6.0, 50.0], 4)):
        time = f"2016-01-0{day}T01:01:01.000Z"
        body = _observation(values, time, "MultiDatastream", s.multidatastreams[0], s.features[0])
        s.observations.append(create(client, "Observations", body))
    return s


def _validate_get_data_array_response(response: str, url: str, requested: set[str]) -> None:
    """validateGetDataArrayResponse."""
    doc = json.loads(response)
    assert isinstance(doc, dict), f"Server did not return a JSON object for request: {url}"
    assert "@iot.count" in doc, f"Object did not contain a @iot.count field for request: {url}"
    assert "@iot.nextLink" in doc, f"Object did not contain a @iot.nextLink field for request: {url}"
    value = doc.get("value")
    assert isinstance(value, list), f"value field is not an array for request: {url}"
    for item in value:
        assert isinstance(item, dict), f"item in value array is not an object for request: {url}"
        assert "Datastream@iot.navigationLink" in item or "MultiDatastream@iot.navigationLink" in item, (
            f"item in value array does not contain (Multi)Datastream@navigationLink for request: {url}"
        )
        components = item.get("components")
        assert isinstance(components, list), f"components field is not an array for request: {url}"
        found: set[str] = set()
        for component in components:
            assert isinstance(component, str), f"components field contains a non-string for request: {url}"
            found.add(component)
            # "@iot.id" is the id under another name.
            assert component in requested or (component == "@iot.id" and "id" in requested), (
                f"Found non-requested component '{component}' for request: {url}"
            )
        assert len(components) == len(found), f"components field contains duplicates for request: {url}"
        for component in requested:
            assert component in found or (component == "id" and "@iot.id" in found), (
                f"components field does not contain entry '{component}' for request: {url}"
            )
        claimed = item["dataArray@iot.count"]
        data_array = item["dataArray"]
        assert isinstance(data_array, list), f"dataArray field is not an array for request: {url}"
        assert claimed == len(data_array), (
            f"dataArray contains {len(data_array)} entities. dataArray@iot.count claims '{claimed}'. Request: {url}"
        )
        for row in data_array:
            assert isinstance(row, list), f"dataArray contains a non-array entry for request: {url}"
            assert len(row) == len(components), (
                f"dataArray contains an array entry with invalid length {len(row)} for request: {url}"
            )


def _get(client: TestClient, query: str) -> tuple[str, str]:
    """ServiceUrlHelper.buildURLString(serviceUrl, OBSERVATION, null, null, query) and HTTPMethods.doGet."""
    url = f"{ROOT}/Observations{query}"
    r = client.get(url)
    assert r.status_code == 200, f"Error getting Observations using Data Array: Code {r.text}"
    return url, r.text


def test_test01GetDataArray(client: TestClient, scene: Scene) -> None:
    url, response = _get(client, "?$count=true&$top=3&$resultFormat=dataArray")
    _validate_get_data_array_response(response, url, OBSERVATION_PROPERTIES)


def test_test02GetDataArraySelect(client: TestClient, scene: Scene) -> None:
    query = "?$count=true&$top=4&$resultFormat=dataArray&$select=result,phenomenonTime&$orderby=phenomenonTime%20desc"
    url, response = _get(client, query)
    _validate_get_data_array_response(response, url, {"result", "phenomenonTime"})


def _pk_from_post_result(line: str) -> int:
    """Utils.pkFromPostResult: the id between the last parentheses."""
    return int(line[line.rindex("(") + 1 : line.rindex(")")])


def _post_data_array(client: TestClient, scene: Scene, json_string: str) -> None:
    """The common part of test03 and test04: 201, one text line per row, only the second an error; the Observation
    of each other line is read back (``doa.find``) and appended to ``OBSERVATIONS``."""
    url = f"{ROOT}/CreateObservations"
    # HTTPMethods.doPost: the body as the Java text, sent as application/json.
    r = client.post(url, content=json_string.encode(), headers={"Content-Type": "application/json"})
    assert r.status_code == 201, f"Error posting Observations using Data Array: Code {r.status_code} {r.text}"
    lines = json.loads(r.text)
    assert isinstance(lines, list), f"Server did not return a JSON array for request: {url}"
    for i, line in enumerate(lines, start=1):
        assert isinstance(line, str), f"Server returned a non-text result line for request: {url}"
        is_error = line.lower().startswith("error")
        assert not (is_error and i != 2), f"Server returned an error for request: {url}: {line}"
        assert not (not is_error and i == 2), (
            f"Server should have returned an error for non-valid id for request: {url}"
        )
        if i == 2:
            continue
        pk = _pk_from_post_result(line)
        found = client.get(f"/v1.1/Observations({pk})")
        assert found.status_code == 200, f"Failed to retrieve created observation for request: {url}"
        scene.observations.append(found.json()["@iot.id"])


def test_test03PostDataArray(client: TestClient, scene: Scene) -> None:
    ds1, ds2 = scene.datastreams[0], scene.datastreams[1]
    foi1 = scene.features[0]
    # Try to create four observations
    # The second one should return "error".
    json_string = (
        "[\n"
        "  {\n"
        '    "Datastream": {\n'
        f'      "@iot.id": {ds1}\n'
        "    },\n"
        '    "components": [\n'
        '      "phenomenonTime",\n'
        '      "result",\n'
        '      "FeatureOfInterest/id"\n'
        "    ],\n"
        '    "dataArray@iot.count":2,\n'
        '    "dataArray": [\n'
        "      [\n"
        '        "2010-12-23T10:20:00-07:00",\n'
        "        20,\n"
        f"        {foi1}\n"
        "      ],\n"
        "      [\n"
        '        "2010-12-23T10:21:00-07:00",\n'
        "        30,\n"
        '        "probablyNotAValidId"\n'
        "      ]\n"
        "    ]\n"
        "  },\n"
        "  {\n"
        '    "Datastream": {\n'
        f'      "@iot.id": {ds2}\n'
        "    },\n"
        '    "components": [\n'
        '      "phenomenonTime",\n'
        '      "result"\n'
        "    ],\n"
        '    "dataArray@iot.count":2,\n'
        '    "dataArray": [\n'
        "      [\n"
        '        "2010-12-23T10:20:00-07:00",\n'
        "        65\n"
        "      ],\n"
        "      [\n"
        '        "2010-12-23T10:21:00-07:00",\n'
        "        60\n"
        "      ]\n"
        "    ]\n"
        "  }\n"
        "]"
    )
    _post_data_array(client, scene, json_string)
    # OBSERVATIONS.get(5) and get(6), as in Java: with the MultiDatastream part of createEntities, the setup's
    # second and third MultiDatastream Observations (both of Feature 1).
    foi7 = client.get(f"/v1.1/Observations({scene.observations[5]})/FeatureOfInterest")
    foi8 = client.get(f"/v1.1/Observations({scene.observations[6]})/FeatureOfInterest")
    assert foi7.status_code == 200 and foi8.status_code == 200, (
        "Failed to retrieve feature of interest for created observation"
    )
    assert foi8.json()["@iot.id"] == foi7.json()["@iot.id"], "Autogenerated Features of interest should be equal."


def test_test04PostDataArrayMultiDatastream(client: TestClient, scene: Scene) -> None:
    mds1 = scene.multidatastreams[0]
    # Try to create four observations
    # The second one should return "error".
    json_string = (
        "[\n"
        "  {\n"
        '    "MultiDatastream": {\n'
        f'      "@iot.id": {mds1}\n'
        "    },\n"
        '    "components": [\n'
        '      "phenomenonTime",\n'
        '      "result"\n'
        "    ],\n"
        '    "dataArray@iot.count":2,\n'
        '    "dataArray": [\n'
        "      [\n"
        '        "2010-12-23T10:20:00-07:00",\n'
        "        [5,20]\n"
        "      ],\n"
        "      [\n"
        '        "2010-12-23T10:21:00-07:00",\n'
        "        30\n"
        "      ]\n"
        "    ]\n"
        "  }"
        "]"
    )
    _post_data_array(client, scene, json_string)
