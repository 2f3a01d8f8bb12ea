"""FROST-Server's test data and client habits, shared by its ported integration tests (tests/test_frost_*.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from fastapi.testclient import TestClient

# FROST's test Thing, with its Location.
THING: dict[str, Any] = {
    "name": "Thing 1",
    "description": "The first thing.",
    "Locations": [
        {
            "name": "Location 1.0",
            "description": "Location of Thing 1.",
            "encodingType": "application/vnd.geo+json",
            "location": {"type": "Point", "coordinates": [8, 51]},
        }
    ],
}


def create(client: TestClient, plural: str, body: dict[str, Any]) -> int:
    """A POST as FROST's client makes it (sSrvc.create): 201, and the new id read from the Location header."""
    r = client.post(f"/v1.1/{plural}", json=body)
    assert r.status_code == 201, f"Failed to create {plural}: {r.status_code} {r.text}"
    location = r.headers["location"]
    return int(location[location.index("(") + 1 : location.index(")")])


def datastream(name: str, description: str, thing: int) -> dict[str, Any]:
    """FROST's test Datastream of a Thing, with its Sensor and ObservedProperty written whole: its client has no
    id for them after the first Datastream's deep insert, so each Datastream makes copies of them."""
    return {
        "name": name,
        "description": description,
        "observationType": "someType",
        "unitOfMeasurement": {"name": "degree celcius", "symbol": "°C", "definition": "ucum:T"},
        "Thing": {"@iot.id": thing},
        "Sensor": {
            "name": "Sensor 1",
            "description": "The first sensor.",
            "encodingType": "text",
            "metadata": "Some metadata.",
        },
        "ObservedProperty": {
            "name": "Temperature",
            "definition": "http://ucom.org/temperature",
            "description": "The temperature of the thing.",
        },
    }


def filter_results(client: TestClient, plural: str, flt: str, registry: Sequence[int], expected: Sequence[int]) -> None:
    """EntityUtils.testFilterResults: a $filter on a collection gives each expected entity (indices into the
    registry, the Java test's list of what it created) exactly once and nothing else, following the nextLinks as
    FROST's client iterates them; @iot.count, when sent, is the number expected."""
    r = client.get(f"/v1.1/{plural}", params={"$filter": flt})
    assert r.status_code == 200, f"Failed to call service on filter: {flt}: {r.status_code} {r.text}"
    body = r.json()
    count = body.get("@iot.count")
    found = [int(e["@iot.id"]) for e in body["value"]]
    while "@iot.nextLink" in body:
        r = client.get(body["@iot.nextLink"])
        assert r.status_code == 200, f"nextLink of filter {flt}: {r.status_code} {r.text}"
        body = r.json()
        found += [int(e["@iot.id"]) for e in body["value"]]
    want = [registry[i] for i in expected]
    if count is not None:
        assert count == len(want), f"Failed on filter: {flt} Cause: Result count {count} != {len(want)}"
    named = {v: k for k, v in enumerate(registry)}
    assert Counter(found) == Counter(want), (
        f"Failed on filter: {flt}\nexpected {sorted(expected)},\n"
        f"     got {sorted(named.get(i, -i) for i in found)} (indices; negative: not in the list)"
    )
