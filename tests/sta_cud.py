"""Request bodies and checks shared by the two ports of the create-update-delete conformance tests: the OGC suite's
(ets-sta10 ``createUpdateDelete/Capability2Tests``, in tests/test_ets_sta10.py) and FROST-Server's own
(``c02cud/Capability2Tests``, in tests/test_frost_capability2.py), which grew from it and sends the same
entities."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
UOM_C = {"name": "Celsius", "symbol": "degC", "definition": "http://qudt.org/vocab/unit#DegreeCelsius"}
UOM_LM = {"name": "Lumen", "symbol": "lm", "definition": "http://www.qudt.org/qudt/owl/1.0.0/unit/Instances.html#Lumen"}
LUMINOUS_FLUX = {
    "name": "Luminous Flux",
    "definition": "http://www.qudt.org/qudt/owl/1.0.0/quantity/Instances.html#LuminousFlux",
    "description": "Luminous Flux or Luminous Power is the measure of the perceived power of light.",
}
FLUXOMATIC = {
    "name": "Acme Fluxomatic 1000",
    "description": "Acme Fluxomatic 1000",
    "encodingType": "application/pdf",
    "metadata": "Light flux sensor",
}
WEST_ROOF = {
    "name": "West Roof",
    "description": "West Roof",
    "encodingType": "application/vnd.geo+json",
    "location": {"type": "Point", "coordinates": [-117.05, 51.05]},
}
LIGHT_EXPOSURE: dict[str, Any] = {
    "unitOfMeasurement": UOM_LM,
    "name": "Light exposure.",
    "description": "Light exposure.",
    "observationType": MEASUREMENT,
    "ObservedProperty": LUMINOUS_FLUX,
    "Sensor": FLUXOMATIC,
}
OFFICE: dict[str, Any] = {
    "name": "Office Building",
    "description": "Office Building",
    "properties": {"reference": "Third Floor"},
    "Locations": [WEST_ROOF],
    "Datastreams": [LIGHT_EXPOSURE],
}


def post_invalid(client: TestClient, plural: str, body: dict[str, Any]) -> None:
    """postInvalidEntity: refused, 400 or 409."""
    r = client.post(f"/v1.1/{plural}", json=body)
    assert r.status_code in (400, 409), (
        f"The {plural} should not be created due to integrity constraints. Expected 400|409, got: {r.status_code}"
    )


def not_existing(client: TestClient, plurals: list[str]) -> None:
    """checkNotExisting: none of these types has an entity."""
    for plural in plurals:
        assert client.get(f"/v1.1/{plural}").json()["value"] == [], f"{plural} is found although it shouldn't."


def existing(client: TestClient, plurals: list[str]) -> None:
    """checkExisting: each of these types has an entity."""
    for plural in plurals:
        assert client.get(f"/v1.1/{plural}").json()["value"], f"{plural} is deleted although it shouldn't."


# checkDeleteIntegrityConstraint: what deleting an entity of each type takes with it; the other types keep theirs.
DELETE_TAKES: dict[str, list[str]] = {
    "Things": ["Things", "Datastreams", "HistoricalLocations", "Observations"],
    "Datastreams": ["Datastreams", "Observations"],
    "Locations": ["Locations", "HistoricalLocations"],
    "HistoricalLocations": ["HistoricalLocations"],
    "Sensors": ["Sensors", "Datastreams", "Observations"],
    "ObservedProperties": ["ObservedProperties", "Datastreams", "Observations"],
    "FeaturesOfInterest": ["FeaturesOfInterest", "Observations"],
    "Observations": ["Observations"],
}
SENSING_TYPES = [
    "Things",
    "Locations",
    "HistoricalLocations",
    "Datastreams",
    "Sensors",
    "ObservedProperties",
    "FeaturesOfInterest",
    "Observations",
]


def delete_everything(client: TestClient, plurals: list[str]) -> None:
    """deleteEverything: every entity of these types, a page at a time, until none is left."""
    for plural in plurals:
        while found := client.get(f"/v1.1/{plural}").json()["value"]:
            for entity in found:
                client.delete(f"/v1.1/{plural}({entity['@iot.id']})")
