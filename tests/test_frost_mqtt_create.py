"""FROST-Server's MQTT create tests (``statests.c07mqttcreate.Capability7Tests``, as ``Capability7Tests11`` runs them
for v1.1), ported to pytest.

Each Java test keeps its name (``test_<name>``) and checks what it checks: an Observation published, as its POST
body, to ``v1.1/Observations``, ``v1.1/Datastreams(<id>)/Observations``, ``v1.1/FeaturesOfInterest(<id>)/Observations``
or with its FeatureOfInterest and Datastream (with its Thing, ObservedProperty and Sensor) inline (deep insert) is
stored: the first Observation the service lists then equals what was published. Capability7Tests10 (the same for
v1.0) is not ported: CityHub serves SensorThings v1.1 only.

The Java class's static state (the service) is the module's ``frost`` fixture (tests/frost_mqtt.py): a broker and a
hub; ``getEntityWithRetry`` reads up to 10 times, 100 ms apart, as there.
"""

from __future__ import annotations

import random
import time
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.frost_mqtt import (
    QOS,
    Ent,
    Frost,
    json_equals,
    new_datastream,
    new_feature_of_interest,
    new_observed_property,
    new_sensor,
    new_thing,
    time_equals,
)
from tests.frost_mqtt import frost as frost  # the module's service (a fixture)

WAIT_AFTER_INSERT_S = 0.1  # MqttHelper2.WAIT_AFTER_INSERT
SELECT_PLAIN = "Datastream($select=id),FeatureOfInterest($select=id)&$select=result,phenomenonTime,validTime,parameters"
# The relation names of the old test model's EntityType.getForRelation (expandQueryFromJsonObject).
RELATIONS = {
    "Thing",
    "Things",
    "Location",
    "Locations",
    "HistoricalLocation",
    "HistoricalLocations",
    "Datastream",
    "Datastreams",
    "Sensor",
    "Sensors",
    "ObservedProperty",
    "ObservedProperties",
    "Observation",
    "Observations",
    "FeatureOfInterest",
    "FeaturesOfInterest",
}


def publish(f: Frost, topic: str, message: dict[str, Any]) -> None:
    """MqttHelper2.publish: a client of its own (clean session) publishes at QoS 2 and disconnects."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="TS", protocol=mqtt.MQTTv311, clean_session=True)
    c.connect("127.0.0.1", f.port)
    c.loop_start()
    try:
        c.publish(topic, orjson.dumps(message), qos=QOS).wait_for_publish(5)
    finally:
        c.disconnect()
        c.loop_stop()


def entity_with_retry(f: Frost, query: str, retries: int = 10) -> Any:
    """EntityHelper2.getEntityWithRetry(Observations, query, retries)."""
    for _ in range(retries):
        found = f.get_entity("Observations", expand=query)
        if found is not None:
            return found
        time.sleep(WAIT_AFTER_INSERT_S)
    return None


def json_equal(expected: Any, given: Any, key: str | None = None) -> bool:
    """Utils.jsonEquals: the same members (time members as the same time), recursively."""
    if isinstance(expected, dict) and isinstance(given, dict):
        return len(expected) == len(given) and all(
            k in given and json_equal(v, given[k], k) for k, v in expected.items()
        )
    if isinstance(expected, list) and isinstance(given, list):
        return json_equals(expected, given, "v1.1/")
    if key is not None and key.lower().endswith("time"):
        return time_equals(expected, given)
    return bool(expected == given and type(expected) is type(given))


def get_observation(f: Frost) -> dict[str, Any]:
    """A Thing, ObservedProperty, Sensor, Datastream and FeatureOfInterest created with EntityHelper2, and an
    Observation of them with a random long result."""

    thing, op, sensor = f.create(new_thing(f)), f.create(new_observed_property(f)), f.create(new_sensor(f))
    datastream: Ent = f.create(new_datastream(f, op, sensor, thing))
    feature = f.create(new_feature_of_interest(f))
    return {
        "phenomenonTime": "2015-03-01T02:40:00+02:00",
        "validTime": "2016-01-01T01:01:01.000Z/2016-01-01T23:59:59.000Z",
        "result": random.randint(-(2**63), 2**63 - 1),
        "parameters": {"param1": "some value1", "param2": "some value2"},
        "Datastream": {"@iot.id": datastream.id},
        "FeatureOfInterest": {"@iot.id": feature.id},
    }


def get_observation_with_deep_insert() -> dict[str, Any]:
    value = random.randint(-(2**63), 2**63 - 1)
    return {
        "phenomenonTime": "2015-03-01T00:00:00.000Z",
        "result": value,
        "FeatureOfInterest": {
            "name": "A weather station.",
            "description": f"A weather station for {value}.",
            "encodingType": "application/vnd.geo+json",
            "feature": {"type": "Point", "coordinates": [-114.05, 51.05]},
        },
        "Datastream": {
            "unitOfMeasurement": {
                "name": "Celsius",
                "symbol": "degC",
                "definition": "http://qudt.org/vocab/unit#DegreeCelsius",
            },
            "name": "test datastream.",
            "description": f"test datastream for {value}.",
            "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
            "Thing": {"name": "Test Thing", "description": f"This is a Test Thing for {value}"},
            "ObservedProperty": {
                "name": "Luminous Flux",
                "definition": "http://www.qudt.org/qudt/owl/1.0.0/quantity/Instances.html#LuminousFlux",
                "description": f"Luminous Flux for {value}.",
            },
            "Sensor": {
                "name": "Acme Fluxomatic 1000",
                "description": f"Acme Fluxomatic for {value}",
                "encodingType": "http://schema.org/description",
                "metadata": "Light flux sensor",
            },
        },
    }


def expand_query_from_json_object(expected: dict[str, Any], separator: str = "&") -> str:
    """Capability7Tests.expandQueryFromJsonObject: $select of the plain members, $expand of the related
    entities with their own query."""
    selects = [k for k in expected if k not in RELATIONS]
    expands = [f"{k}({expand_query_from_json_object(v, ';')})" for k, v in expected.items() if k in RELATIONS]
    result = "$select=" + ",".join(selects) if selects else ""
    if expands:
        result += (separator if result else "") + "$expand=" + ",".join(expands)
    return result


def test_check01_CreateObservationDirect(frost: Frost) -> None:
    frost.delete_all("Observations")
    created = get_observation(frost)
    publish(frost, "v1.1/Observations", created)
    assert json_equal(entity_with_retry(frost, SELECT_PLAIN), created)


def test_check02_CreateObservationViaDatastream(frost: Frost) -> None:
    frost.delete_all("Observations")
    created = get_observation(frost)
    publish(frost, f"v1.1/Datastreams({created['Datastream']['@iot.id']})/Observations", created)
    assert json_equal(entity_with_retry(frost, SELECT_PLAIN), created)


def test_check03_CreateObservationViaFeatureOfInterest(frost: Frost) -> None:
    frost.delete_all("Observations")
    created = get_observation(frost)
    publish(frost, f"v1.1/FeaturesOfInterest({created['FeatureOfInterest']['@iot.id']})/Observations", created)
    assert json_equal(entity_with_retry(frost, SELECT_PLAIN), created)


def test_check04_CreateObservationWithDeepInsert(frost: Frost) -> None:
    frost.delete_all("Observations")
    created = get_observation_with_deep_insert()
    publish(frost, "v1.1/Observations", created)
    assert json_equal(entity_with_retry(frost, expand_query_from_json_object(created)), created)
