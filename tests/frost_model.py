"""FROST-Server's test model of SensorThings (statests.util.model: EntityType, PathElement, Expand, Query; util:
Request, EntityCounts and EntityUtils.checkResponse), shared by its ported capability tests
(tests/test_frost_sensing_core.py, tests/test_frost_capability2.py, tests/test_frost_capability3.py).

A request is a path and a query whose ``$expand`` items are requests themselves; ``check_response`` checks a
response against the request that fetched it: which properties, navigation links and expanded relations each
entity has, and, where the expected number of entities is known (``EntityCounts``), ``@iot.count``, the size of
a page under ``$top``/``$skip`` and whether it has a nextLink.

Two navigation-link checks of ``checkEntity`` are left out, where FROST-Server's output and CityHub's differ and the
spec settles neither: an expanded relation is written in place of its navigation link (as in the spec's $expand
example; FROST writes the link too), and an expanded entity with no $select of its own keeps its navigation links
(FROST drops them). Every other check is FROST's: a relation neither selected nor expanded has no link, a selected
one has it, in an expanded entity with a $select of its own too.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient

CORE = "CORE"
MULTI_DATASTREAM = "MULTI_DATASTREAM"
ACTUATION = "ACTUATION"
EXTENSION_ORDER = (CORE, MULTI_DATASTREAM, ACTUATION)


@dataclass(frozen=True)
class Prop:
    """EntityType.EntityProperty: optional ones may be missing from an entity; canSort ones are ordered and filtered
    on; the JSON type tells whether its ``$value`` is an object."""

    name: str
    optional: bool
    can_sort: bool
    json_type: str = "string"


@dataclass(frozen=True)
class EntityType:
    key: str
    singular: str
    plural: str
    extension: str
    properties: tuple[Prop, ...]
    relation_map: tuple[tuple[str, tuple[str, ...]], ...]

    def relations(self, extensions: Iterable[str]) -> list[str]:
        """getRelations(extensions): the relations each enabled extension gives, in the extensions' order."""
        enabled = set(extensions)
        found: list[str] = []
        for ext in EXTENSION_ORDER:
            if ext in enabled:
                found += [r for e, rels in self.relation_map if e == ext for r in rels]
        return found

    def property_names(self) -> list[str]:
        return [p.name for p in self.properties]

    def half_properties_relations(self, extensions: Iterable[str], even: bool) -> list[str]:
        """getHalfPropertiesRelations: "id", then every other one of the properties and relations, in turn."""
        target = ["id"]
        is_even = True
        for name in self.property_names() + self.relations(extensions):
            if even == is_even:
                target.append(name)
            is_even = not is_even
        return target


def _p(name: str, optional: bool, can_sort: bool, json_type: str = "string") -> Prop:
    return Prop(name, optional, can_sort, json_type)


# EntityType's enum, in its order (getEnabledEntityTypes walks it).
ACTUATOR = EntityType(
    "ACTUATOR", "Actuator", "Actuators", ACTUATION,
    (_p("name", False, True), _p("description", False, True), _p("encodingType", False, True),
     _p("metadata", False, True)),
    ((ACTUATION, ("TaskingCapabilities",)),),
)  # fmt: skip
TASK = EntityType(
    "TASK", "Task", "Tasks", ACTUATION,
    (_p("creationTime", False, True), _p("taskingParameters", False, False, "object")),
    ((ACTUATION, ("TaskingCapability",)),),
)  # fmt: skip
TASKING_CAPABILITY = EntityType(
    "TASKING_CAPABILITY", "TaskingCapability", "TaskingCapabilities", ACTUATION,
    (_p("name", False, True), _p("description", False, True), _p("properties", True, False, "object"),
     _p("taskingParameters", False, False, "object")),
    ((ACTUATION, ("Thing", "Actuator", "Tasks")),),
)  # fmt: skip
THING = EntityType(
    "THING", "Thing", "Things", CORE,
    (_p("name", False, True), _p("description", False, True), _p("properties", True, False, "object")),
    ((CORE, ("Datastreams", "HistoricalLocations", "Locations")), (ACTUATION, ("TaskingCapabilities",))),
)  # fmt: skip
LOCATION = EntityType(
    "LOCATION", "Location", "Locations", CORE,
    (_p("name", False, True), _p("description", False, True), _p("encodingType", False, True),
     _p("location", False, False, "object")),
    ((CORE, ("HistoricalLocations", "Things")),),
)  # fmt: skip
SENSOR = EntityType(
    "SENSOR", "Sensor", "Sensors", CORE,
    (_p("name", False, True), _p("description", False, True), _p("encodingType", False, True),
     _p("metadata", False, True)),
    ((CORE, ("Datastreams",)),),
)  # fmt: skip
OBSERVED_PROPERTY = EntityType(
    "OBSERVED_PROPERTY", "ObservedProperty", "ObservedProperties", CORE,
    (_p("name", False, True), _p("definition", False, True), _p("description", False, True)),
    ((CORE, ("Datastreams",)),),
)  # fmt: skip
OBSERVATION = EntityType(
    "OBSERVATION", "Observation", "Observations", CORE,
    (_p("phenomenonTime", False, True), _p("result", False, True, "any"), _p("resultTime", False, True),
     _p("resultQuality", True, True), _p("validTime", True, True), _p("parameters", True, True, "object")),
    ((CORE, ("Datastream", "FeatureOfInterest")),),
)  # fmt: skip
DATASTREAM = EntityType(
    "DATASTREAM", "Datastream", "Datastreams", CORE,
    (_p("name", False, True), _p("description", False, True), _p("unitOfMeasurement", False, False, "object"),
     _p("observationType", False, True), _p("observedArea", True, False, "object"),
     _p("phenomenonTime", True, True), _p("resultTime", True, True)),
    ((CORE, ("Thing", "Sensor", "ObservedProperty", "Observations")),),
)  # fmt: skip
FEATURE_OF_INTEREST = EntityType(
    "FEATURE_OF_INTEREST", "FeatureOfInterest", "FeaturesOfInterest", CORE,
    (_p("name", False, True), _p("description", False, True), _p("encodingType", False, True),
     _p("feature", False, False, "object")),
    ((CORE, ("Observations",)),),
)  # fmt: skip
HISTORICAL_LOCATION = EntityType(
    "HISTORICAL_LOCATION", "HistoricalLocation", "HistoricalLocations", CORE,
    (_p("time", False, True),),
    ((CORE, ("Thing", "Locations")),),
)  # fmt: skip
ENTITY_TYPES: tuple[EntityType, ...] = (
    ACTUATOR, TASK, TASKING_CAPABILITY, THING, LOCATION, SENSOR, OBSERVED_PROPERTY, OBSERVATION, DATASTREAM,
    FEATURE_OF_INTEREST, HISTORICAL_LOCATION,
)  # fmt: skip
BY_NAME: dict[str, EntityType] = {n: t for t in ENTITY_TYPES for n in (t.singular, t.plural)}
PLURALS = frozenset(t.plural for t in ENTITY_TYPES)


def for_relation(name: str) -> EntityType:
    """EntityType.getForRelation."""
    return BY_NAME[name]


def is_plural(name: str) -> bool:
    return name in PLURALS


def enabled_types(extensions: Iterable[str]) -> list[EntityType]:
    """ServerSettings.getEnabledEntityTypes: the types of the enabled extensions, in the enum's order."""
    enabled = set(extensions)
    return [t for t in ENTITY_TYPES if t.extension in enabled]


# -- the request model -------------------------------------------------------------------------------------------
@dataclass
class PathElement:
    type: EntityType
    plural: bool
    id: int | None = None

    @classmethod
    def of(cls, part: str, entity_id: int | None = None) -> PathElement:
        return cls(for_relation(part), is_plural(part), entity_id)

    @property
    def property_name(self) -> str:
        return self.type.plural if self.plural else self.type.singular

    def is_collection(self) -> bool:
        return self.plural and self.id is None

    def __str__(self) -> str:
        return self.property_name + (f"({self.id})" if self.id is not None else "")


@dataclass
class Query:
    count: bool | None = None
    top: int | None = None
    skip: int | None = None
    select: list[str] = field(default_factory=list)
    expand: list[Expand] = field(default_factory=list)

    def is_empty(self) -> bool:
        return self.count is None and self.top is None and self.skip is None and not self.select and not self.expand

    def text(self, collection: bool, in_expand: bool) -> str:
        """Query.toString: $top, $skip, $select, $expand, $count (those of a collection only where it is one)."""
        parts = []
        if self.top is not None and collection:
            parts.append(f"$top={self.top}")
        if self.skip is not None and collection:
            parts.append(f"$skip={self.skip}")
        if self.select:
            parts.append("$select=" + ",".join(self.select))
        if self.expand:
            parts.append("$expand=" + ",".join(str(e) for e in self.expand))
        if self.count is not None and collection:
            parts.append(f"$count={'true' if self.count else 'false'}")
        return (";" if in_expand else "&").join(parts)

    def renest_expands(self) -> None:
        """Query.reNestExpands: "A/B" items become A($expand=B), and items of one type merge."""
        new: list[Expand] = []
        by_type: dict[str, Expand] = {}
        for old in self.expand:
            nested = old.renest()
            key = nested.entity_type.key
            if key in by_type:
                existing = by_type[key]
                existing.query.expand.extend(nested.query.expand)
                existing.query.renest_expands()
            else:
                new.append(nested)
                by_type[key] = nested
        self.expand = new


@dataclass
class Expand:
    """An $expand item, or (``toplevel``) a request: a path, and a query."""

    path: list[PathElement] = field(default_factory=list)
    query: Query = field(default_factory=Query)
    toplevel: bool = False
    type_override: EntityType | None = None

    @classmethod
    def of(cls, *parts: str) -> Expand:
        return cls([PathElement.of(p) for p in parts])

    def is_collection(self) -> bool:
        return not self.path or self.path[-1].is_collection()

    @property
    def entity_type(self) -> EntityType:
        return self.type_override or self.path[-1].type

    def __str__(self) -> str:
        text = "/".join(str(e) for e in self.path)
        if not self.query.is_empty():
            text += f"({self.query.text(self.is_collection(), in_expand=True)})"
        return text

    def renest(self) -> Expand:
        if len(self.path) == 1:
            return self
        self.query.renest_expands()
        current_query = self.query
        current = self
        for element in reversed(self.path):
            current = Expand([element], current_query)
            current_query = Query(expand=[current])
        return current


def request(*path: PathElement) -> Expand:
    """Request(serviceUrl) with its path."""
    return Expand(list(path), toplevel=True)


def renested(req: Expand) -> Expand:
    """request.clone().reNest()."""
    clone = copy.deepcopy(req)
    clone.query.renest_expands()
    return clone


def url_of(req: Expand) -> str:
    """Request.buildUrl, relative to the test client's base."""
    text = "/v1.1/" + "/".join(str(e) for e in req.path)
    if not req.query.is_empty():
        text += "?" + req.query.text(req.is_collection(), in_expand=False)
    return text


def execute_get(client: TestClient, req: Expand) -> dict[str, Any]:
    """Request.executeGet: 200, and the JSON."""
    url = url_of(req)
    r = client.get(url)
    assert r.status_code == 200, f"Error during request: {url}: {r.status_code} {r.text}"
    body: dict[str, Any] = r.json()
    return body


# -- EntityCounts and checkResponse --------------------------------------------------------------------------------
@dataclass
class EntityCounts:
    """What the test made: how many entities of each type, and how many each entity links to; -1 where unknown."""

    globals_: dict[str, int] = field(default_factory=dict)
    linked: dict[tuple[str, int, str], int] = field(default_factory=dict)

    def count(self, kind: EntityType) -> int:
        return self.globals_.get(kind.key, -1)

    def count_of(self, parent: EntityType, parent_id: Any, linked: EntityType) -> int:
        return self.linked.get((parent.key, parent_id, linked.key), -1)

    def set_global(self, kind: EntityType, n: int) -> None:
        self.globals_[kind.key] = n

    def set(self, parent: EntityType, parent_id: int, linked: EntityType, n: int) -> None:
        self.linked[(parent.key, parent_id, linked.key)] = n


def count_for_request(req: Expand, counts: EntityCounts) -> int:
    """EntityUtils.findCountForRequest: the size of the collection a path ends in, where it can be told."""
    parent_id: Any = -1
    parent: EntityType | None = None
    count = -1
    for element in req.path:
        if element.id is not None:
            parent_id, parent, count = element.id, element.type, -1
        elif parent is None:
            assert element.is_collection(), "Non-collection requested without parent."
            count = counts.count(element.type)
        elif element.is_collection():
            count = counts.count_of(parent, parent_id, element.type)
            parent, parent_id = None, -1
        else:
            count = -1
    return count


def check_response(
    extensions: Iterable[str], response: dict[str, Any], req: Expand, counts: EntityCounts
) -> str | None:
    """EntityUtils.checkResponse: the response to ``req`` as asked; its nextLink."""
    extensions = list(extensions)
    url = url_of(req)
    if not req.is_collection():
        check_entity(extensions, response, req, counts)
        return None
    check_collection(extensions, response["value"], req, counts)
    query = req.query
    if query.count is True:
        assert "@iot.count" in response, f"Response should have property @iot.count for request: '{url}'"
    elif query.count is False:
        assert "@iot.count" not in response, f"Response should not have property @iot.count for request: '{url}'"
    expected = count_for_request(req, counts)
    if "@iot.count" in response and expected != -1:
        assert response["@iot.count"] == expected, (
            f"Incorrect count for collection of {req.entity_type.key} for request: '{url}'"
        )
    next_link: str | None = response.get("@iot.nextLink")
    if query.top is not None and expected != -1:
        found = len(response["value"])
        skip = query.skip or 0
        want = max(0, min(expected - skip, query.top))
        assert found == want, (
            f"Requested {query.top} of {expected}, expected {want} with skip of {skip} but received {found}: {url}"
        )
        if found + skip < expected:
            assert "@iot.nextLink" in response, f"Entity should have @iot.nextLink for request: '{url}'"
        else:
            assert "@iot.nextLink" not in response, f"Entity should not have @iot.nextLink for request: '{url}'"
    return next_link


def check_collection(
    extensions: list[str], collection: list[dict[str, Any]], expand: Expand, counts: EntityCounts
) -> None:
    for entity in collection:
        check_entity(extensions, entity, expand, counts)


def check_entity(extensions: list[str], entity: dict[str, Any], expand: Expand, counts: EntityCounts) -> None:
    """EntityUtils.checkEntity: the selected properties (by default: all, and the navigation links of an entity at
    the top of the response) and no others; each expanded relation, checked in turn, with its count, size and
    nextLink where known; no relation expanded that was not asked for."""
    kind = expand.entity_type
    query = expand.query
    where = url_of(expand) if expand.toplevel else str(expand)
    select = list(query.select)
    if not select:
        select = ["id", *kind.property_names()]
        if expand.toplevel:
            select += kind.relations(extensions)
    if "id" in select:
        assert "@iot.id" in entity, f"Entity should have property @iot.id for request: '{where}'"
    else:
        assert "@iot.id" not in entity, f"Entity should not have property @iot.id for request: '{where}'"
    for prop in kind.properties:
        if prop.name in select:
            assert prop.name in entity or prop.optional, (
                f"Entity should have property {prop.name} for request: '{where}'"
            )
        else:
            assert prop.name not in entity, f"Entity should not have property {prop.name} for request: '{where}'"
    expanded = {sub.path[0].property_name for sub in query.expand}
    for relation in kind.relations(extensions):
        link = f"{relation}@iot.navigationLink"
        if relation in expanded:
            # CityHub writes an expanded relation in place of its navigation link, as the spec's $expand example
            # does; FROST writes both (README, Conformance).
            continue
        if not query.select and not expand.toplevel:
            # In an expanded entity with no $select of its own, FROST writes no navigation links and CityHub
            # writes them all; the spec asks for neither (README, Conformance).
            continue
        if relation in select:
            assert link in entity, f"Entity should have property {link} for request: '{where}'"
        else:
            assert link not in entity, f"Entity should not have property {link} for request: '{where}'"
    entity_id = entity.get("@iot.id")
    relations = kind.relations(extensions)
    for sub in query.expand:
        name = sub.path[0].property_name
        assert name in entity, f"Entity should have expanded {name} for request: '{where}'"
        if sub.is_collection():
            check_collection(extensions, entity[name], sub, counts)
        else:
            check_entity(extensions, entity[name], sub, counts)
        if name in relations:
            relations.remove(name)
        if not sub.is_collection():
            continue
        sub_query = sub.query
        count_key = f"{name}@iot.count"
        if sub_query.count is True:
            assert count_key in entity, f"Entity should have property {count_key} for request: '{where}'"
        elif sub_query.count is False:
            assert count_key not in entity, f"Entity should not have property {count_key} for request: '{where}'"
        expected = counts.count_of(kind, entity_id, for_relation(name))
        if count_key in entity and expected != -1:
            assert entity[count_key] == expected, f"Found incorrect count for {count_key}: '{where}'"
        if sub_query.top is not None and expected != -1:
            found = len(entity[name])
            skip = sub_query.skip or 0
            want = min(expected - skip, sub_query.top)
            assert found == want, (
                f"Requested {sub_query.top} of {expected}, expected {want} with skip of {skip} but received {found}"
                f": '{where}'"
            )
            link_key = f"{name}@iot.nextLink"
            if found + skip < expected:
                assert link_key in entity, f"Entity should have {link_key} for expand {sub}"
            else:
                assert link_key not in entity, f"Entity should not have {link_key} for expand {sub}"
    for name in relations:
        assert name not in entity, f"Entity should not have expanded {name} for request: '{where}'"
