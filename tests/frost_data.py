"""FROST-Server's test data and client habits, shared by its ported integration tests (tests/test_frost_*.py)."""

from __future__ import annotations

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
