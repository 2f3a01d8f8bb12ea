"""SensorThings entities for the simulated sensors, created once and found again by name.

``provision(backend, specs)`` makes sure every simulated Datastream exists and returns their ids: Sensors and
ObservedProperties are shared (found by name, and definition for ObservedProperties), Things are found by name
and created by deep insert with their Location and Datastreams; a Thing found without one of its Datastreams gets
it added. Two backends: ``LocalBackend`` (inside the serving process, for the demo) and ``HttpBackend`` (through
the public API, for ``cityhub simulate``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Protocol

from cityhub.sim.generator import SensorSpec

OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


class Backend(Protocol):
    def things(self) -> dict[str, int]: ...  # Thing name → id
    def datastreams(self, thing: int) -> dict[str, int]: ...  # Datastream name → id
    def find(self, entity_set: str, name: str, definition: str | None = None) -> int | None: ...
    def create(self, entity_set: str, body: dict[str, Any]) -> int: ...


def datastream_body(spec: SensorSpec, sensor: int, prop: int) -> dict[str, Any]:
    return {
        "name": spec.datastream,
        "description": spec.description,
        "observationType": OM_MEASUREMENT,
        "unitOfMeasurement": spec.vocab.unit,
        "properties": {"key": spec.key, "interval": f"PT{int(spec.interval.total_seconds() // 60)}M"},
        "Sensor": {"@iot.id": sensor},
        "ObservedProperty": {"@iot.id": prop},
    }


def thing_body(specs: list[SensorSpec], ds: list[dict[str, Any]]) -> dict[str, Any]:
    site = specs[0].site
    return {
        "name": specs[0].thing,
        "description": f"{site.kind.capitalize()} {site.name}, Hà Nội (simulated by CityHub)",
        "properties": specs[0].thing_properties,
        "Locations": [
            {
                "name": site.name,
                "description": f"{site.name}, Hà Nội",
                "encodingType": "application/geo+json",
                "location": {"type": "Point", "coordinates": [site.lon, site.lat]},
            }
        ],
        "Datastreams": ds,
    }


def provision(backend: Backend, specs: Iterable[SensorSpec]) -> dict[str, int]:
    """Datastream id of every spec's key, creating what is missing."""
    specs = list(specs)
    sensors: dict[str, int] = {}
    props: dict[tuple[str, str], int] = {}
    for s in specs:
        if s.sensor["name"] not in sensors:
            found = backend.find("Sensors", s.sensor["name"])
            sensors[s.sensor["name"]] = found if found is not None else backend.create("Sensors", dict(s.sensor))
        v = s.vocab
        if (v.name, v.definition) not in props:
            found = backend.find("ObservedProperties", v.name, v.definition)
            prop = {"name": v.name, "definition": v.definition, "description": v.description}
            props[(v.name, v.definition)] = found if found is not None else backend.create("ObservedProperties", prop)
    by_thing: dict[str, list[SensorSpec]] = {}
    for s in specs:
        by_thing.setdefault(s.thing, []).append(s)
    existing = backend.things()
    ids: dict[str, int] = {}
    for name, group in by_thing.items():

        def body(s: SensorSpec) -> dict[str, Any]:
            return datastream_body(s, sensors[s.sensor["name"]], props[(s.vocab.name, s.vocab.definition)])

        thing = existing.get(name)
        if thing is None:
            thing = backend.create("Things", thing_body(group, [body(s) for s in group]))
        streams = backend.datastreams(thing)
        for s in group:
            if s.datastream not in streams:
                streams[s.datastream] = backend.create("Datastreams", {**body(s), "Thing": {"@iot.id": thing}})
            ids[s.key] = streams[s.datastream]
    return ids


class LocalBackend:
    """Entities through the serving process's SensorThings service and store (the demo's path)."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub

    def things(self) -> dict[str, int]:
        return self.hub.store.catalog.thing_ids_by_name()

    def datastreams(self, thing: int) -> dict[str, int]:
        return self.hub.store.catalog.datastream_ids_by_name(thing)

    def find(self, entity_set: str, name: str, definition: str | None = None) -> int | None:
        if entity_set == "Sensors":
            return self.hub.store.catalog.sensor_id(name)
        if entity_set == "ObservedProperties":
            return self.hub.store.catalog.observed_property_id(name, definition)
        raise KeyError(entity_set)

    def create(self, entity_set: str, body: dict[str, Any]) -> int:
        from cityhub import model
        from cityhub.sensorthings.service import Resource, Step

        res = Resource([Step(model.BY_PLURAL[entity_set], None, None)])
        return int(asyncio.run(self.hub.sensorthings.create(res, body, ""))["@iot.id"])


class HttpBackend:
    """Entities through the public SensorThings API of a running hub (an admin key is needed to create them)."""

    def __init__(self, client: Any) -> None:  # an httpx.Client with base_url and headers set
        self.client = client

    def _all(self, path: str, **params: str) -> list[dict[str, Any]]:
        """Every member of a collection, following @iot.nextLink."""
        out: list[dict[str, Any]] = []
        url: str | None = path
        while url:
            r = self.client.get(url, params={"$" + k: v for k, v in params.items()} if url == path else None)
            r.raise_for_status()
            page = r.json()
            out += page["value"]
            url = page.get("@iot.nextLink")
        return out

    def things(self) -> dict[str, int]:
        rows = self._all("/v1.1/Things", select="id,name", orderby="id desc", top="1000")
        return {r["name"]: r["@iot.id"] for r in rows}

    def datastreams(self, thing: int) -> dict[str, int]:
        rows = self._all(f"/v1.1/Things({thing})/Datastreams", select="id,name", orderby="id desc", top="1000")
        return {r["name"]: r["@iot.id"] for r in rows}

    def find(self, entity_set: str, name: str, definition: str | None = None) -> int | None:
        def literal(text: str) -> str:
            return "'" + text.replace("'", "''") + "'"

        flt = f"name eq {literal(name)}" + (f" and definition eq {literal(definition)}" if definition else "")
        r = self.client.get(
            f"/v1.1/{entity_set}", params={"$filter": flt, "$select": "id", "$orderby": "id", "$top": "1"}
        )
        r.raise_for_status()
        rows = r.json()["value"]
        return rows[0]["@iot.id"] if rows else None

    def create(self, entity_set: str, body: dict[str, Any]) -> int:
        r = self.client.post(f"/v1.1/{entity_set}", json=body)
        if r.status_code != 201:
            raise RuntimeError(f"creating {entity_set} failed: {r.status_code} {r.text[:500]}")
        return int(r.json()["@iot.id"])
