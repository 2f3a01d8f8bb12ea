"""FROST-Server's Observation result tests (``statests.c02cud.ResultTypesTests``, v1.1), ported to pytest.

Each Java test keeps its name (``test_<name>``) and checks what it checks: an Observation's result, whether a
boolean, a string, a number, an object, an array or null (also when PATCHed to null), and its resultQuality as
any JSON, reads back as it was sent. ``createEntities`` is the ``datastream`` fixture, with FROST's entities.
FROST's client compares values as Jackson parsed them (floats as BigDecimal, where 1.23 and 1.230 differ, and a
number never equals a boolean or a string); ``_java_equals`` compares the same way. BigDecimal.valueOf(1.23) goes
out as 1.23, the text Python writes for the float 1.23.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests import frost_data
from tests.frost_data import create

DQ_STATUS_OBJECT = """{"DQ_Status":{  "code": "http://id.eaufrance.fr/nsa/446#2",  "label": "Niveau 1",
  "comment": "Donnée contrôlée niveau 1 (données contrôlées)"}}"""
DQ_STATUS_ARRAY = """[
    {
        "nameOfMeasure": "DQ_Status",
        "DQ_Result": {
            "code": "http://id.eaufrance.fr/nsa/446#2",
            "label": "Niveau 1",
            "comment": "Donnée contrôlée niveau 1 (données contrôlées)"
        }
    },
    {
        "nameOfMeasure": "DQ_Qualification",
        "DQ_Result": {
            "code": "http://id.eaufrance.fr/nsa/414#1",
            "label": "Correcte",
            "comment": "Correcte"
        }
    }

]"""


def _java_equals(expected: Any, found: Any) -> bool:
    """Object.equals between what the Java test sent and what its client parsed from the response."""
    if isinstance(expected, bool) or isinstance(found, bool):
        return type(expected) is type(found) and expected == found
    if isinstance(expected, Decimal) or isinstance(found, Decimal):
        # BigDecimal.equals: same value and same scale.
        return isinstance(expected, Decimal) and isinstance(found, Decimal) and str(expected) == str(found)
    if isinstance(expected, dict):
        return (
            isinstance(found, dict)
            and expected.keys() == found.keys()
            and all(_java_equals(v, found[k]) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(found, list)
            and len(expected) == len(found)
            and all(_java_equals(a, b) for a, b in zip(expected, found, strict=True))
        )
    return type(expected) is type(found) and expected == found


def _find(client: TestClient, observation: int) -> dict[str, Any]:
    """doa.find: GET the Observation, floats parsed as BigDecimal (the client's USE_BIG_DECIMAL_FOR_FLOATS)."""
    r = client.get(f"/v1.1/Observations({observation})", headers={"Accept": "application/json"})
    assert r.status_code == 200, f"Failed to read Observation {observation}: {r.status_code} {r.text}"
    return dict(json.loads(r.text, parse_float=Decimal))


@pytest.fixture
def datastream(client: TestClient) -> int:
    """createEntities: a Thing with its Location and a Datastream with a new Sensor and ObservedProperty."""
    thing = create(client, "Things", frost_data.THING)
    return create(
        client, "Datastreams", frost_data.datastream("Datastream 1", "The temperature of thing 1, sensor 1.", thing)
    )


def _observation(result: Any, datastream: int) -> dict[str, Any]:
    """sMdl.newObservation(result, datastream): a result (null included) and the Datastream, nothing else."""
    return {"result": result, "Datastream": {"@iot.id": datastream}}


def _check_result(client: TestClient, observation: int, expected: Any, message: str) -> None:
    found = _find(client, observation).get("result")
    assert _java_equals(expected, found), f"{message} expected {expected!r}, got {found!r}"


def test_testBooleanResult(client: TestClient, datastream: int) -> None:
    b1 = create(client, "Observations", _observation(True, datastream))
    b2 = create(client, "Observations", _observation(False, datastream))
    _check_result(client, b1, True, "Expected result to be a Boolean.")
    _check_result(client, b2, False, "Expected result to be a Boolean.")


def test_testStringResult(client: TestClient, datastream: int) -> None:
    b1 = create(client, "Observations", _observation("fourty two", datastream))
    _check_result(client, b1, "fourty two", "Expected result to be a String.")


def test_testNumericResult(client: TestClient, datastream: int) -> None:
    b1 = create(client, "Observations", _observation(1, datastream))
    _check_result(client, b1, 1, "Expected result to be a Number.")
    b2 = create(client, "Observations", _observation(1.23, datastream))
    _check_result(client, b2, Decimal("1.23"), "Expected result to be a Number.")


def test_testObjectResult(client: TestClient, datastream: int) -> None:
    result = {"number": 1.23, "string": "One comma twentythree", "boolean": True}
    o1 = create(client, "Observations", _observation(result, datastream))
    _check_result(client, o1, {**result, "number": Decimal("1.23")}, "Expected result Maps are not equal.")


def test_testArrayResult(client: TestClient, datastream: int) -> None:
    result = [1.23, "One comma twentythree", True]
    o1 = create(client, "Observations", _observation(result, datastream))
    _check_result(client, o1, [Decimal("1.23"), *result[1:]], "Expected result Arrays are not equal.")


def test_testNullResult(client: TestClient, datastream: int) -> None:
    o1 = create(client, "Observations", _observation(None, datastream))
    _check_result(client, o1, None, "Expected result to be Null.")

    o2 = create(client, "Observations", _observation(1.23, datastream))
    # o2.withOnlyPk() with result set to null, sent by doa.update: FROST's client writes the key with it.
    r = client.patch(f"/v1.1/Observations({o2})", json={"@iot.id": o2, "result": None})
    assert r.status_code in (200, 204), f"Failed to update Observation {o2}: {r.status_code} {r.text}"
    _check_result(client, o2, None, "Expected result to be Null.")


def _check_result_quality(client: TestClient, datastream: int, quality_text: str) -> None:
    quality = json.loads(quality_text, parse_float=Decimal)
    body = _observation(1.0, datastream)
    body["resultQuality"] = json.loads(quality_text)
    o1 = create(client, "Observations", body)
    found = _find(client, o1).get("resultQuality")
    assert _java_equals(quality, found), f"resultQuality not stored correctly: expected {quality!r}, got {found!r}"


def test_testResultQualityObject(client: TestClient, datastream: int) -> None:
    _check_result_quality(client, datastream, DQ_STATUS_OBJECT)


def test_testResultQualityArray(client: TestClient, datastream: int) -> None:
    _check_result_quality(client, datastream, DQ_STATUS_ARRAY)
