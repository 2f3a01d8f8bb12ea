"""FROST-Server's geospatial filter tests (``statests.c03filtering.GeoTests``, v1.1 as ``GeoTests11`` runs it),
ported to pytest.

Each Java test keeps its name (``test_<name>``) and checks what it checks: ``geo.distance``, ``geo.intersects``,
``geo.length`` (of lines; a polygon's is 0) and the ``st_*`` functions (contains, crosses, disjoint, equals,
intersects, overlaps, relate, touches, within) on Locations' ``location``, FeaturesOfInterest's ``feature``,
an Observation's ``FeatureOfInterest/feature`` and a Datastream's ``observedArea`` (the hull of its Observations'
features). ``createEntities`` is the ``scene`` fixture, with FROST's entities made as its client sends them; the
Java class's shared state and its cleanup become a fresh hub for each test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.frost_data import UOM_TEMP, create, filter_results

BOX = "geography'POLYGON((7.5 51.5, 7.5 53.5, 8.5 53.5, 8.5 51.5, 7.5 51.5))'"
CROSSING_LINE = "geography'LINESTRING(7.5 51, 7.5 54)'"

# createLocation0-7: (Location name, its description, the Thing it belongs to, its geometry); FoI n has the same
# geometry.
LOCATIONS: list[tuple[str, str, int | None, dict[str, Any]]] = [
    ("Location 1.0", "First Location of Thing 1.", 0, {"type": "Point", "coordinates": [8, 51]}),
    ("Location 1.1", "Second Entity of Thing 1.", 0, {"type": "Point", "coordinates": [8, 52]}),
    ("Location 2", "Location of Thing 2.", 1, {"type": "Point", "coordinates": [8, 53]}),
    ("Location 3", "Location of Thing 3.", 2, {"type": "Point", "coordinates": [8, 54]}),
    (
        "Location 4",
        "Location of Thing 4.",
        3,
        {"type": "Polygon", "coordinates": [[[8, 53], [7, 52], [7, 53], [8, 53]]]},
    ),
    ("Location 5", "A line.", None, {"type": "LineString", "coordinates": [[5, 52], [5, 53]]}),
    ("Location 6", "A longer line.", None, {"type": "LineString", "coordinates": [[5, 52], [6, 53]]}),
    ("Location 7", "The longest line.", None, {"type": "LineString", "coordinates": [[4, 52], [8, 52]]}),
]
# The Observations of createLocation0-3: (result, the Datastream it belongs to, its day in January 2016).
OBSERVATIONS = [(1, 0, 1), (2, 0, 2), (3, 1, 3), (4, 2, 4)]


@dataclass
class Scene:
    """The Java class's LOCATIONS, FEATURESOFINTEREST, OBSERVATIONS and DATASTREAMS (ids, in creation order)."""

    client: TestClient
    locations: list[int]
    features: list[int]
    observations: list[int]
    datastreams: list[int]

    def results(self, plural: str, flt: str, *expected: int) -> None:
        registry = {
            "Locations": self.locations,
            "FeaturesOfInterest": self.features,
            "Observations": self.observations,
            "Datastreams": self.datastreams,
        }[plural]
        filter_results(self.client, plural, flt, registry, expected)


@pytest.fixture
def scene(client: TestClient) -> Scene:
    """createEntities: four Things, one Sensor and ObservedProperty, three Datastreams (of Things 1-3), Locations
    0-7 (0-4 of a Thing) each with a FeatureOfInterest of the same geometry, and Observations 0-3 of FoIs 0-3."""
    descriptions = ["The first thing.", "The second thing.", "The third thing.", "The fourt thing."]
    things = [
        create(client, "Things", {"name": f"Thing {n + 1}", "description": d}) for n, d in enumerate(descriptions)
    ]
    sensor = create(client, "Sensors", {"name": "Sensor 1", "description": "The first sensor.",
                                        "encodingType": "text", "metadata": "Some metadata."})  # fmt: skip
    o_prop = create(client, "ObservedProperties", {"name": "Temperature", "definition": "http://ucom.org/temperature",
                                                   "description": "The temperature of the thing."})  # fmt: skip
    datastreams = [
        create(client, "Datastreams", {
            "name": f"Datastream {n + 1}",
            "description": f"The temperature of thing {n + 1}, sensor 1.",
            "observationType": "someType",
            "unitOfMeasurement": dict(UOM_TEMP),
            "Thing": {"@iot.id": things[n]},
            "Sensor": {"@iot.id": sensor},
            "ObservedProperty": {"@iot.id": o_prop},
        })
        for n in range(3)
    ]  # fmt: skip
    locations, features, observations = [], [], []
    for n, (name, description, thing, geometry) in enumerate(LOCATIONS):
        location: dict[str, Any] = {"name": name, "description": description,
                                    "encodingType": "application/vnd.geo+json", "location": geometry}  # fmt: skip
        if thing is not None:
            location["Things"] = [{"@iot.id": things[thing]}]
        locations.append(create(client, "Locations", location))
        features.append(create(client, "FeaturesOfInterest", {"name": f"FoI {n}",
                                                              "description": f"This should be FoI #{n}.",
                                                              "encodingType": "application/geo+json",
                                                              "feature": geometry}))  # fmt: skip
        if n < len(OBSERVATIONS):
            result, ds, day = OBSERVATIONS[n]
            observations.append(create(client, "Observations", {
                "result": result,
                "phenomenonTime": f"2016-01-0{day}T01:01:01.000Z",
                "Datastream": {"@iot.id": datastreams[ds]},
                "FeatureOfInterest": {"@iot.id": features[n]},
                "validTime": f"2016-01-0{day}T01:01:01.000Z/2016-01-0{day}T23:59:59.999Z",
            }))  # fmt: skip
    return Scene(client, locations, features, observations, datastreams)


def test_testGeoDistance(scene: Scene) -> None:
    scene.results("Locations", "geo.distance(location, geography'POINT(8 54.1)') lt 1", 3)
    scene.results("Locations", "geo.distance(location, geography'POINT(8 54.1)') gt 1", 0, 1, 2, 4, 5, 6, 7)
    scene.results("Observations", "geo.distance(FeatureOfInterest/feature, geography'POINT(8 54.1)') lt 1", 3)
    scene.results("Observations", "geo.distance(FeatureOfInterest/feature, geography'POINT(8 54.1)') gt 1", 0, 1, 2)


def test_testGeoIntersects(scene: Scene) -> None:
    scene.results("Locations", f"geo.intersects(location, {CROSSING_LINE})", 4, 7)
    scene.results("FeaturesOfInterest", f"geo.intersects(feature, {CROSSING_LINE})", 4, 7)
    scene.results("Datastreams", f"geo.intersects(observedArea, {BOX})", 0, 1)


def test_testGeoLength(scene: Scene) -> None:
    """A polygon's geo.length is 0 (Location 4 is never 'gt 1'), as PostGIS has it; lines have their length."""
    for plural, prop in (("Locations", "location"), ("FeaturesOfInterest", "feature")):
        scene.results(plural, f"geo.length({prop}) gt 1", 6, 7)
        scene.results(plural, f"geo.length({prop}) ge 1", 5, 6, 7)
        scene.results(plural, f"geo.length({prop}) eq 1", 5)
        scene.results(plural, f"geo.length({prop}) ne 1", 0, 1, 2, 3, 4, 6, 7)
        scene.results(plural, f"geo.length({prop}) le 4", 0, 1, 2, 3, 4, 5, 6, 7)
        scene.results(plural, f"geo.length({prop}) lt 4", 0, 1, 2, 3, 4, 5, 6)


def test_testStContains(scene: Scene) -> None:
    scene.results("Locations", f"st_contains({BOX}, location)", 1, 2)
    scene.results("Observations", f"st_contains({BOX}, FeatureOfInterest/feature)", 1, 2)
    scene.results("Datastreams", f"st_contains({BOX}, observedArea)", 1)


def test_testStCrosses(scene: Scene) -> None:
    scene.results("Locations", "st_crosses(geography'LINESTRING(7.5 51.5, 7.5 53.5)', location)", 4, 7)
    scene.results("FeaturesOfInterest", "st_crosses(geography'LINESTRING(7.5 51.5, 7.5 53.5)', feature)", 4, 7)


def test_testStDisjoint(scene: Scene) -> None:
    scene.results("Locations", f"st_disjoint({BOX}, location)", 0, 3, 5, 6)
    scene.results("FeaturesOfInterest", f"st_disjoint({BOX}, feature)", 0, 3, 5, 6)


def test_testStEquals(scene: Scene) -> None:
    scene.results("Locations", "st_equals(location, geography'POINT(8 53)')", 2)
    scene.results("FeaturesOfInterest", "st_equals(feature, geography'POINT(8 53)')", 2)


def test_testStIntersects(scene: Scene) -> None:
    scene.results("Locations", f"st_intersects(location, {CROSSING_LINE})", 4, 7)
    scene.results("FeaturesOfInterest", f"st_intersects(feature, {CROSSING_LINE})", 4, 7)
    scene.results("Datastreams", f"st_intersects(observedArea, {BOX})", 0, 1)


def test_testStOverlaps(scene: Scene) -> None:
    scene.results("Locations", f"st_overlaps({BOX}, location)", 4)
    scene.results("FeaturesOfInterest", f"st_overlaps({BOX}, feature)", 4)


def test_testStRelate(scene: Scene) -> None:
    scene.results("Locations", f"st_relate({BOX}, location, 'T********')", 1, 2, 4, 7)
    scene.results("FeaturesOfInterest", f"st_relate({BOX}, feature, 'T********')", 1, 2, 4, 7)


def test_testStTouches(scene: Scene) -> None:
    scene.results("Locations", "st_touches(geography'POLYGON((8 53, 7.5 54.5, 8.5 54.5, 8 53))', location)", 2, 4)
    scene.results(
        "FeaturesOfInterest", "st_touches(geography'POLYGON((8 53, 7.5 54.5, 8.5 54.5, 8 53))', feature)", 2, 4
    )


def test_testStWithin(scene: Scene) -> None:
    scene.results("Locations", "st_within(geography'POINT(7.5 52.75)', location)", 4)
    scene.results("FeaturesOfInterest", "st_within(geography'POINT(7.5 52.75)', feature)", 4)
