"""FROST-Server's MQTT subscription tests (``statests.c08mqttsubscribe.MqttCoreTests`` and ``MqttExtraTests``, v1.1),
ported to pytest.

Each Java test keeps its name (``test_<name>``) and checks what it checks: a client subscribed to an entity set, an
entity, a property, a ``$select`` of an entity set or a navigation path (``v1.1/Datastreams(1)/Thing/Locations``)
receives, for each created or updated entity, the entity as a GET then returns it; deep inserts announce every entity
they make; a Thing's new Location announces its HistoricalLocation; an Observation is published on
``v1.1/Observations`` with the FeatureOfInterest made for it on ``v1.1/FeaturesOfInterest``. Topics with a
navigation path (check07/check11) or a ``$filter`` (MqttExtraTests test02/test03, an extension of FROST-Server's that
CityHub has too) are resolved by the hub in the store (cityhub.mqtt.queries). Expected failure (strict), with its
reason: the Datastream message of check08b (CityHub sends the entity as committed, nulls included).

One change to FROST's data: MqttExtraTests' Observations all have the phenomenonTime 2016-01-01T01:00:00Z, several in
one Datastream with different results. CityHub stores one Observation per Datastream, phenomenonTime, resultTime,
FeatureOfInterest and parameters (README, "duplicate key") and answers 409 to a second with another result, so here
each Observation is a minute after the one before.

The Java classes' static state (the service, EntityHelper2's caches) is the module's ``frost`` fixture (one broker and
hub, tests/frost_mqtt.py); each test empties the service first where the Java test does (``deleteCreatedEntities``),
and the tests run in the Java order (by name); MqttExtraTests' entities are the ``extra`` fixture. MqttHelper2 counts a
subscription done when it has its messages, but then checks only those that came, so a test whose messages never come
passes there; here each expected message must come, within FROST's MQTT timeout.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from tests.frost_data import UOM_TEMP
from tests.frost_mqtt import (
    Ent,
    Frost,
    Nav,
    Pending,
    Subscription,
    create_select,
    navs,
    new_datastream,
    new_feature_of_interest,
    new_historical_location,
    new_location,
    new_observation,
    new_observed_property,
    new_sensor,
    new_thing,
    selected_properties,
)
from tests.frost_mqtt import frost as frost  # the module's service (a fixture)

# MqttCoreTests.entityTypesForCreate, in its order
ENTITY_TYPES = [
    "Things",
    "Locations",
    "Sensors",
    "ObservedProperties",
    "FeaturesOfInterest",
    "Datastreams",
    "Observations",
    "HistoricalLocations",
]
GEOJSON = "application/geo+json"  # the client's CONTENT_TYPE_APPLICATION_GEOJSON


def change_entity(e: Ent) -> list[str]:
    """EntityHelper2.changeEntity: FROST's new values, as they are (a Location's location "Updated Location" with
    the encodingType "Updated Encoding")."""
    changes: dict[str, dict[str, object]] = {
        "Things": {"name": "UpdatedName", "description": "Updated Description"},
        "Sensors": {
            "name": "UpdatedName",
            "description": "Updated Description",
            "encodingType": "Updated Encoding",
            "metadata": "Updated Metadata",
        },
        "Locations": {
            "name": "UpdatedName",
            "description": "Updated Description",
            "encodingType": "Updated Encoding",
            "location": "Updated Location",
        },
        "ObservedProperties": {
            "name": "UpdatedName",
            "description": "Updated Description",
            "definition": "Updated Definition",
        },
        "FeaturesOfInterest": {
            "name": "UpdatedName",
            "description": "Updated Description",
            "encodingType": "Updated Encoding",
            "feature": "Updated Feature",
        },
        "Datastreams": {
            "name": "UpdatedName",
            "description": "Updated Description",
            "observationType": "Updated Description",
            "unitOfMeasurement": {
                "name": "Updated Name",
                "symbol": "Updated Symbol",
                "definition": "Updated Definition",
            },
        },
        "Observations": {
            "result": 43,
            "phenomenonTime": "2016-03-01T00:40:00.000Z",
            "resultTime": "2016-03-01T00:40:00.000Z",
            "validTime": "2017-01-01T01:01:01Z/2017-01-01T23:59:59Z",
        },
        "HistoricalLocations": {"time": "2016-03-01T00:40:00.000Z"},
    }
    e.props.update(changes[e.plural])
    return list(changes[e.plural])


def with_only_pk(e: Ent) -> Ent:
    return Ent(e.plural, {}, {}, e.id)


def find_paths_to(
    f: Frost, plural: str, many: bool, max_depth: int, target: list[Nav] | None = None
) -> list[list[Nav]]:
    """EntityHelper2.findPathsTo: the navigation paths, from a cached entity, that end in ``plural`` (in a set of them
    when ``many``, at one otherwise)."""
    target = target or []
    result = []
    for nav in navs(plural):
        if nav.inverse.many == many and f.get_cache(nav.target):
            path = [*target, nav]
            result.append(path)
            if max_depth > 0:
                result += find_paths_to(f, nav.target, False, max_depth - 1, path)
    return result


def path_topic(f: Frost, path: list[Nav]) -> str:
    topic = f.cached(path[-1].target).url()
    for nav in reversed(path):
        topic += "/" + nav.inverse.name
    return topic


# -- MqttCoreTests' own helpers ---------------------------------------------------------------------------------------


class QueryJsonFuture(Pending):
    def __init__(self, select: list[str] | None = None) -> None:
        super().__init__()
        self.select = select


def new_entity(f: Frost, plural: str) -> Ent:
    if plural == "Things":
        return new_thing(f)
    if plural == "Sensors":
        return new_sensor(f)
    if plural == "Locations":
        return new_location(f, f.cached("Things"))
    if plural == "ObservedProperties":
        return new_observed_property(f)
    if plural == "FeaturesOfInterest":
        return new_feature_of_interest(f)
    if plural == "Datastreams":
        return new_datastream(f, f.cached("ObservedProperties"), f.cached("Sensors"), f.cached("Things"))
    if plural == "Observations":
        if not f.get_cache("Observations"):
            return new_observation(f, f.cached("Datastreams"), f.cached("FeaturesOfInterest"))
        return new_observation(f, f.cached("Datastreams"))
    if plural == "HistoricalLocations":
        return new_historical_location(f, f.cached("Things"), f.cached("Locations"))
    raise ValueError(f"Don't know how to create a {plural}")


def create_entity(f: Frost, plural: str) -> Ent:
    return f.create(new_entity(f, plural))


def create_entities(f: Frost) -> None:
    for plural in ENTITY_TYPES:
        create_entity(f, plural)


def delete_created_entities(f: Frost) -> None:
    f.delete_all()
    f.clear_caches()


def patch_entity(f: Frost, plural: str) -> Ent:
    copy = with_only_pk(f.cached(plural))
    change_entity(copy)
    f.update(copy)
    return copy


def put_entity(f: Frost, plural: str) -> Ent:
    original = f.cached(plural)
    change_entity(original)
    f.put(original)
    return original


def completing(f: Frost, make: Callable[[], Ent], *futures: QueryJsonFuture) -> Callable[[], None]:
    """getInsertAction / getPatchUpdateAction / getPutUpdateAction: do it, then complete each future with the
    entity as a GET with the future's $select returns it."""

    def action() -> None:
        ent = make()
        for future in futures:
            future.complete(f.entity_json(ent, future.select))

    return action


def _maker(frost: Frost, plural: str, verb: str | None) -> Callable[[], Ent]:
    """The insert (``verb`` None) or the update of an entity of the set."""
    if verb is None:
        return lambda: create_entity(frost, plural)
    return lambda: _updater(verb)(frost, plural)


def set_topic(plural: str) -> str:
    return f"v1.1/{plural}"


# -- MqttCoreTests ---------------------------------------------------------------------------------------------------


def test_check01a_SubscribeToEntitySetInsert(frost: Frost) -> None:
    delete_created_entities(frost)
    for plural in ENTITY_TYPES:
        future = QueryJsonFuture()
        insert = completing(frost, _maker(frost, plural, None), future)
        frost.execute(insert, [Subscription(set_topic(plural)).expect(future)])


def test_check01b_SubscribeAutoFeatureCreation(frost: Frost) -> None:
    """An Observation without a FeatureOfInterest makes one (from its Thing's Location), announced with it."""
    if not frost.get_cache("Datastreams"):  # run on its own: the state check01a leaves
        delete_created_entities(frost)
        create_entities(frost)
    frost.delete_all("FeaturesOfInterest")
    frost.delete_all("Observations")
    frost.get_cache("Observations").clear()
    future_obs, future_foi = Pending(), Pending()

    def insert() -> None:
        obs = frost.create(new_observation(frost, frost.cached("Datastreams")))
        future_obs.complete(frost.entity_json(obs))
        future_foi.complete(frost.get_entity("Observations", obs.id, nav="FeatureOfInterest"))

    frost.execute(
        insert,
        [
            Subscription("v1.1/Observations").expect(future_obs),
            Subscription("v1.1/FeaturesOfInterest").expect(future_foi),
        ],
    )


def _updater(verb: str) -> Callable[[Frost, str], Ent]:
    return patch_entity if verb == "PATCH" else put_entity


def _subscribe_to_entity_set_update(frost: Frost, verb: str) -> None:
    delete_created_entities(frost)
    create_entities(frost)
    for plural in ENTITY_TYPES:
        future = QueryJsonFuture()
        update = completing(frost, _maker(frost, plural, verb), future)
        frost.execute(update, [Subscription(set_topic(plural)).expect(future)])


def test_check02_SubscribeToEntitySetUpdatePATCH(frost: Frost) -> None:
    _subscribe_to_entity_set_update(frost, "PATCH")


def test_check03_SubscribeToEntitySetUpdatePUT(frost: Frost) -> None:
    _subscribe_to_entity_set_update(frost, "PUT")


def _subscribe_with_multiple_select(frost: Frost, verb: str | None) -> None:
    """Two subscriptions to a set, one with $select of the even half of the type's properties, one of the odd."""
    delete_created_entities(frost)
    if verb is not None:
        create_entities(frost)
    for plural in ENTITY_TYPES:
        even = QueryJsonFuture(selected_properties(plural, True))
        odd = QueryJsonFuture(selected_properties(plural, False))
        make = _maker(frost, plural, verb)
        subs = [
            Subscription(f"{set_topic(plural)}?{create_select(fut.select or [])}").expect(fut) for fut in (even, odd)
        ]
        frost.execute(completing(frost, make, even, odd), subs)


def test_check04_SubscribeToEntitySetWithMultipleSelectInsert(frost: Frost) -> None:
    _subscribe_with_multiple_select(frost, None)


def test_check05_SubscribeToEntitySetWithMultipleSelectUpdatePATCH(frost: Frost) -> None:
    _subscribe_with_multiple_select(frost, "PATCH")


def test_check06_SubscribeToEntitySetWithMultipleSelectUpdatePUT(frost: Frost) -> None:
    _subscribe_with_multiple_select(frost, "PUT")


def _subscribe_with_relative_topic(frost: Frost, many: bool) -> None:
    """Subscriptions to every navigation path (up to 5 steps) from a cached entity to the updated one: to the
    collection it is in (``many``) or to it alone."""
    delete_created_entities(frost)
    create_entities(frost)
    total_paths = 0
    for plural in ENTITY_TYPES:
        future = QueryJsonFuture()
        update = completing(frost, _maker(frost, plural, "PUT"), future)
        paths = find_paths_to(frost, plural, many, 4)
        total_paths += len(paths)
        subs = [Subscription(path_topic(frost, path)).expect(future) for path in paths]
        if subs:
            frost.execute(update, subs)
    assert total_paths >= 6, "Did not find enough paths, something is amiss."


def test_check07_SubscribeToEntitySetWithRelativeTopicUpdatePUT(frost: Frost) -> None:
    _subscribe_with_relative_topic(frost, True)


def test_check08a_SubscribeToEntitySetsWithDeepInsertThing(frost: Frost) -> None:
    delete_created_entities(frost)
    futures = {
        p: Pending()
        for p in ["Things", "Locations", "Datastreams", "Sensors", "ObservedProperties", "HistoricalLocations"]
    }

    def insert() -> None:
        thing, location = new_thing(frost), new_location(frost)
        datastream = new_datastream(frost, new_observed_property(frost), new_sensor(frost))
        thing.links.update({"Locations": [location], "Datastreams": [datastream]})
        frost.create(thing)
        futures["Things"].complete(frost.entity_json(thing))
        futures["Locations"].complete(frost.get_entity("Things", thing.id, nav="Locations"))
        futures["HistoricalLocations"].complete(frost.get_entity("Things", thing.id, nav="HistoricalLocations"))
        ds = frost.get_entity("Things", thing.id, nav="Datastreams")
        futures["Datastreams"].complete(ds)
        futures["Sensors"].complete(frost.get_entity("Datastreams", ds["@iot.id"], nav="Sensor"))
        futures["ObservedProperties"].complete(frost.get_entity("Datastreams", ds["@iot.id"], nav="ObservedProperty"))

    order = ["Things", "Datastreams", "Sensors", "ObservedProperties", "HistoricalLocations", "Locations"]
    frost.execute(insert, [Subscription(set_topic(p)).expect(futures[p]) for p in order])


@pytest.mark.xfail(
    reason="the Datastream's message: CityHub publishes an entity as a GET returns it once the deep insert "
    "committed (with the phenomenonTime and resultTime its Observation gave it, and observedArea and properties as "
    "null), FROST the Datastream as inserted, before its Observation, leaving nulls out; the other seven "
    "subscriptions of the test get what they expect",
    strict=True,
)
def test_check08b_SubscribeToEntitySetsWithDeepInsertObservation(frost: Frost) -> None:
    delete_created_entities(frost)
    order = [
        "Things",
        "FeaturesOfInterest",
        "Datastreams",
        "Sensors",
        "ObservedProperties",
        "HistoricalLocations",
        "Observations",
        "Locations",
    ]
    futures = {p: Pending() for p in order}

    def insert() -> None:
        sensor, obs_prop, thing = new_sensor(frost), new_observed_property(frost), new_thing(frost)
        thing.links["Locations"] = [new_location(frost)]
        datastream = new_datastream(frost, obs_prop, sensor, thing)
        observation = frost.create(new_observation(frost, datastream, new_feature_of_interest(frost)))
        oid = observation.id
        futures["Observations"].complete(frost.entity_json(observation))
        futures["FeaturesOfInterest"].complete(frost.get_entity("Observations", oid, nav="FeatureOfInterest"))
        ds = frost.get_entity("Observations", oid, nav="Datastream")
        th = frost.get_entity("Datastreams", ds["@iot.id"], nav="Thing")
        futures["Things"].complete(th)
        futures["Locations"].complete(frost.get_entity("Things", th["@iot.id"], nav="Locations"))
        futures["HistoricalLocations"].complete(frost.get_entity("Things", th["@iot.id"], nav="HistoricalLocations"))
        # "The generated fields are not coming though in the MQTT message."
        futures["Datastreams"].complete(
            frost.get_entity(
                "Datastreams",
                ds["@iot.id"],
                select=[
                    "@iot.selfLink",
                    "@iot.id",
                    "name",
                    "description",
                    "observationType",
                    "unitOfMeasurement",
                    "Thing",
                    "Sensor",
                    "ObservedProperty",
                    "Observations",
                ],
            )
        )
        futures["Sensors"].complete(frost.get_entity("Datastreams", ds["@iot.id"], nav="Sensor"))
        futures["ObservedProperties"].complete(frost.get_entity("Datastreams", ds["@iot.id"], nav="ObservedProperty"))

    frost.execute(insert, [Subscription(set_topic(p)).expect(futures[p]) for p in order])


def _subscribe_to_entity_update(frost: Frost, verb: str) -> None:
    delete_created_entities(frost)
    create_entities(frost)
    for plural in ENTITY_TYPES:
        entity = frost.cached(plural)
        future = QueryJsonFuture()
        update = completing(frost, _maker(frost, plural, verb), future)
        frost.execute(update, [Subscription(entity.url()).expect(future)])


def test_check09_SubscribeToEntityUpdatePATCH(frost: Frost) -> None:
    _subscribe_to_entity_update(frost, "PATCH")


def test_check10_SubscribeToEntityUpdatePUT(frost: Frost) -> None:
    _subscribe_to_entity_update(frost, "PUT")


def test_check11_SubscribeToEntityWithRelativeTopicUpdatePUT(frost: Frost) -> None:
    _subscribe_with_relative_topic(frost, False)


def _subscribe_to_property_update(frost: Frost, patch: bool) -> None:
    delete_created_entities(frost)
    create_entities(frost)
    for plural in ENTITY_TYPES:
        entity = frost.cached(plural)
        copy = with_only_pk(entity)
        changed = change_entity(copy)
        futures = [QueryJsonFuture() for _ in changed]
        subs = [Subscription(f"{entity.url()}/{prop}").expect(fut) for prop, fut in zip(changed, futures, strict=True)]

        def update(copy: Ent = copy, changed: list[str] = changed, futures: list[QueryJsonFuture] = futures) -> None:
            if patch:
                frost.update(copy)
            else:
                frost.put(copy)
            for prop, fut in zip(changed, futures, strict=True):
                fut.complete(frost.entity_json(copy, [prop]))

        frost.execute(update, subs)


def test_check12_SubscribeToPropertyUpdatePATCH(frost: Frost) -> None:
    _subscribe_to_property_update(frost, True)


def test_check13_SubscribeToPropertyUpdatePUT(frost: Frost) -> None:
    _subscribe_to_property_update(frost, False)


def test_check14SubscribeToHistoricalLocationSetUpdateThingLocations(frost: Frost) -> None:
    delete_created_entities(frost)
    create_entities(frost)
    frost.create(new_location(frost))  # a second Location (eh2.createLocation())
    create_entity(frost, "Locations")
    future = Pending()

    def update() -> None:
        thing, loc2 = frost.cached("Things"), frost.cached("Locations", 1)
        thing.links["Locations"] = [loc2]
        frost.update(thing)
        future.complete(frost.get_entity("Things", thing.id, nav="HistoricalLocations", orderby="id%20desc"))

    frost.execute(update, [Subscription("v1.1/HistoricalLocations").expect(future)])


# -- MqttExtraTests --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def extra(frost: Frost) -> Frost:
    """MqttExtraTests.createEntities: its Things, Locations, Sensors, ObservedProperties and Datastreams."""
    delete_created_entities(frost)
    things = [
        ("Thing 1", "The first thing.", None),
        ("Thing 2", "The second thing.", {"field": 2}),
        ("Thing 3", "The third thing.", {"field": 3}),
        ("Thing 4", "The fourth thing.", None),
    ]
    for name, desc, props in things:
        body = {"name": name, "description": desc} | ({"properties": props} if props else {})
        frost.get_cache("Things").append(frost.create(Ent("Things", body)))
    thing = frost.get_cache("Things")
    point = lambda x, y: {"type": "Point", "coordinates": [x, y]}  # noqa: E731
    line = lambda *c: {"type": "LineString", "coordinates": [list(p) for p in c]}  # noqa: E731
    locations = [
        ("Location 1.0", "First Location of Thing 1.", point(8, 51), 1, thing[0]),
        ("Location 1.1", "Second Location of Thing 1.", point(8, 52), 1.1, thing[0]),
        ("Location 2", "Location of Thing 2.", point(8, 53), 2, thing[1]),
        ("Location 3", "Location of Thing 3.", point(8, 54), 3, thing[2]),
        (
            "Location 4",
            "Location of Thing 4.",
            {"type": "Polygon", "coordinates": [[[8, 53], [7, 52], [7, 53], [8, 53]]]},
            4,
            thing[3],
        ),
        ("Location 5", "A line.", line((5, 52), (5, 53)), 5, None),
        ("Location 6", "A longer line.", line((5, 52), (6, 53)), 6, None),
        ("Location 7", "The longest line.", line((4, 52), (8, 52)), 7, None),
    ]
    for name, desc, geometry, fld, owner in locations:
        loc = Ent(
            "Locations",
            {
                "name": name,
                "description": desc,
                "encodingType": "application/vnd.geo+json",
                "location": geometry,
                "properties": {"field": fld},
            },
        )
        if owner is not None:
            loc.links["Things"] = [owner]
        frost.get_cache("Locations").append(frost.create(loc))
    for idx in range(4):  # EntityUtils.createSensor
        sensor = Ent(
            "Sensors",
            {
                "name": f"Sensor {idx}",
                "description": f"The sensor with idx {idx}.",
                "encodingType": "text",
                "metadata": "Some metadata.",
                "properties": {"idx": idx},
            },
        )
        frost.get_cache("Sensors").append(frost.create(sensor))
    for idx, what in enumerate(["temperature", "humidity", "pressure", "turbidity"]):  # createObservedProperty
        op = Ent(
            "ObservedProperties",
            {
                "name": f"ObservedProperty {idx}",
                "definition": f"http://ucom.org/{what}",
                "description": f"ObservedProperty with index {idx}.",
                "properties": {"idx": idx},
            },
        )
        frost.get_cache("ObservedProperties").append(frost.create(op))
    sensors, ops = frost.get_cache("Sensors"), frost.get_cache("ObservedProperties")
    streams = [
        ("Datastream 1 of thing 0, sensor 0.", 0, 0, 0),
        ("Datastream 2 of thing 0, sensor 1.", 0, 1, 1),
        ("Datastream 3 of thing 0, sensor 2.", 0, 2, 2),
        ("Datastream 1 of thing 1, sensor 0.", 1, 0, 0),
        ("Datastream 2 of thing 1, sensor 1.", 1, 1, 1),
        ("Datastream 3 of thing 1, sensor 3.", 1, 3, 3),
        ("Datastream 1 of thing 2, sensor 3.", 2, 1, 0),
    ]
    for idx, (desc, t, s, o) in enumerate(streams):  # EntityUtils.createDatastream
        ds = Ent(
            "Datastreams",
            {
                "name": f"Datastream {idx}",
                "description": desc,
                "observationType": "someType",
                "unitOfMeasurement": UOM_TEMP,
                "properties": {"idx": idx},
            },
            {"Thing": thing[t], "Sensor": sensors[s], "ObservedProperty": ops[o]},
        )
        frost.get_cache("Datastreams").append(frost.create(ds))
    return frost


_minutes = itertools.count()


def create_observation(f: Frost, datastream: Ent, result: int) -> Ent:
    """EntityUtils.createObservation(service, datastream, result, phenomenonTime, registry), each at its own minute
    from 2016-01-01T01:00:00Z (see the module's docstring)."""
    time = datetime(2016, 1, 1, 1, tzinfo=UTC) + timedelta(minutes=next(_minutes))
    obs = f.create(
        Ent(
            "Observations",
            {"result": result, "phenomenonTime": time.strftime("%Y-%m-%dT%H:%M:%SZ")},
            {"Datastream": datastream},
        )
    )
    f.get_cache("Observations").append(obs)
    return obs


class EntityFuture(Pending):
    """A CompletableFuture<Entity>: a received entity matches it when it is of its type and has its id."""


def _execute_entities(f: Frost, action: Callable[[], None], subs: list[tuple[str, list[EntityFuture]]]) -> None:
    subscriptions = []
    for topic, futures in subs:
        s = Subscription(topic)
        for fut in futures:
            s.expect(fut)
        subscriptions.append(s)
    f.execute(action, subscriptions, by_id=True)


def test_test01SubscribeObservationBase(extra: Frost) -> None:
    future = EntityFuture()

    def insert() -> None:
        future.complete(create_observation(extra, extra.cached("Datastreams", 0), 0).id)

    _execute_entities(extra, insert, [("v1.1/Observations", [future])])


def test_test02SubscribeObservationResultFilter(extra: Frost) -> None:
    futures = [EntityFuture() for _ in range(3)]

    def insert() -> None:
        for fut, result in zip(futures, (10, 5, 0), strict=True):
            fut.complete(create_observation(extra, extra.cached("Datastreams", 0), result).id)

    o1, o2, _ = futures
    _execute_entities(
        extra,
        insert,
        [
            ("v1.1/Observations?$filter=result gt 4", [o1, o2]),
            ("v1.1/Observations?$filter=result gt 5", [o1]),
            ("v1.1/Observations?$filter=result ge 5", [o1, o2]),
        ],
    )


def test_test03SubscribeObservationFoIFilter(extra: Frost) -> None:
    futures = [EntityFuture() for _ in range(3)]

    def insert() -> None:
        for fut, ds, result in zip(futures, (0, 3, 6), (1, 2, 3), strict=True):
            fut.complete(create_observation(extra, extra.cached("Datastreams", ds), result).id)

    topic = "v1.1/Observations?$filter=startswith(FeatureOfInterest/name,'Location {}')"
    _execute_entities(extra, insert, [(topic.format(n), [fut]) for n, fut in zip((1, 2, 3), futures, strict=True)])
