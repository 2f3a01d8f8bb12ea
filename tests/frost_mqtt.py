"""FROST-Server's MQTT test helpers (``statests.util.mqtt.MqttHelper2`` and ``MqttListener``, with what they use of
``EntityHelper2``), for its ported MQTT tests (tests/test_frost_mqtt*.py).

The hub runs in process (a TestClient) against a Mosquitto of the module's own that logs subscriptions to ``$SYS``
topics (README, MQTT), so that the hub publishes the topics only a subscriber asks for. Where FROST's listener waits
for its server's side channel to confirm a subscription, this one waits for the hub to count it
(``/healthz`` ``mqtt.watched_filters``), and after each action for the count to fall back to 0.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import orjson
import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from cityhub.app import create_app
from cityhub.auth.keys import KeyStore
from cityhub.config import Settings
from tests.conftest import drop_pg_schema, new_pg_schema_url, store_kind
from tests.servers import free_port

MQTT_TIMEOUT_S = 5.0  # FROST's serverSettings.getMqttTimeOutMs(): for every listener of an action together
QOS = 2  # MqttHelper2.QOS
BASE = "http://testserver"  # the hub's public URL: the selfLinks of GETs and of MQTT messages agree

# FROST's client model (SensorThingsV11Sensing): each entity type's properties in their order (getSelectedProperties
# takes every other one) and its navigation properties (name, target set, to-many, the inverse's name).
PROPS: dict[str, list[str]] = {
    "Things": ["id", "name", "description", "properties"],
    "Locations": ["id", "name", "description", "encodingType", "location", "properties"],
    "Sensors": ["id", "name", "description", "encodingType", "metadata", "properties"],
    "ObservedProperties": ["id", "name", "definition", "description", "properties"],
    "FeaturesOfInterest": ["id", "name", "description", "encodingType", "feature", "properties"],
    "Datastreams": [
        "id",
        "name",
        "description",
        "observationType",
        "unitOfMeasurement",
        "observedArea",
        "phenomenonTime",
        "properties",
        "resultTime",
    ],
    "Observations": ["id", "phenomenonTime", "resultTime", "result", "resultQuality", "validTime", "parameters"],
    "HistoricalLocations": ["id", "time"],
}
NAVS: dict[str, list[tuple[str, str, bool, str]]] = {
    "Things": [
        ("Locations", "Locations", True, "Things"),
        ("HistoricalLocations", "HistoricalLocations", True, "Thing"),
        ("Datastreams", "Datastreams", True, "Thing"),
    ],
    "Sensors": [("Datastreams", "Datastreams", True, "Sensor")],
    "Locations": [
        ("HistoricalLocations", "HistoricalLocations", True, "Locations"),
        ("Things", "Things", True, "Locations"),
    ],
    "Datastreams": [
        ("ObservedProperty", "ObservedProperties", False, "Datastreams"),
        ("Sensor", "Sensors", False, "Datastreams"),
        ("Thing", "Things", False, "Datastreams"),
        ("Observations", "Observations", True, "Datastream"),
    ],
    "Observations": [
        ("Datastream", "Datastreams", False, "Observations"),
        ("FeatureOfInterest", "FeaturesOfInterest", False, "Observations"),
    ],
    "ObservedProperties": [("Datastreams", "Datastreams", True, "ObservedProperty")],
    "FeaturesOfInterest": [("Observations", "Observations", True, "FeatureOfInterest")],
    "HistoricalLocations": [
        ("Thing", "Things", False, "HistoricalLocations"),
        ("Locations", "Locations", True, "HistoricalLocations"),
    ],
}
# Every set EntityUtils.deleteAll empties, Things first "for efficiency" as there.
ALL_SETS = [
    "Things",
    "Locations",
    "HistoricalLocations",
    "Sensors",
    "ObservedProperties",
    "Datastreams",
    "MultiDatastreams",
    "FeaturesOfInterest",
    "Observations",
]


@dataclass(frozen=True)
class Nav:
    source: str  # the set it belongs to
    name: str
    target: str
    many: bool
    inverse_name: str

    @property
    def inverse(self) -> Nav:
        back = next(n for n in NAVS[self.target] if n[0] == self.inverse_name)
        return Nav(self.target, *back)


def navs(plural: str) -> list[Nav]:
    return [Nav(plural, *n) for n in NAVS[plural]]


@dataclass(eq=False)
class Ent:
    """An entity as FROST's client holds it: the properties it set, its links (to entities or lists of them), and
    its id once the server made it."""

    plural: str
    props: dict[str, Any]
    links: dict[str, Ent | list[Ent]] = field(default_factory=dict)
    id: int | None = None

    def json(self) -> dict[str, Any]:
        """The body JsonWriter writes: the properties, then each link in the model's order, a created entity as
        its reference and a new one whole (deep insert)."""
        out = dict(self.props)
        for nav in navs(self.plural):
            linked = self.links.get(nav.name)
            if isinstance(linked, list):
                if linked:
                    out[nav.name] = [e.ref() for e in linked]
            elif linked is not None:
                out[nav.name] = linked.ref()
        return out

    def ref(self) -> dict[str, Any]:
        return {"@iot.id": self.id} if self.id is not None else self.json()

    def url(self) -> str:
        """EntityHelper2.createUrl(entity): the topic of this entity."""
        return f"v1.1/{self.plural}({self.id})"


class Pending:
    """A CompletableFuture<JsonNode>: what a subscription expects, known once the action ran."""

    def __init__(self) -> None:
        self.value: Any = None
        self.done = False

    def complete(self, value: Any) -> None:
        self.value, self.done = value, True


@dataclass
class Subscription:
    """MqttHelper2.TestSubscription: a topic and the messages it expects (as JSON, compared with link
    resolving)."""

    topic: str
    expected: list[Pending] = field(default_factory=list)

    def expect(self, pending: Pending) -> Subscription:
        self.expected.append(pending)
        return self


class Listener:
    """MqttListener: a client of its own (MQTT 3.1.1, a clean session) subscribed at QoS 2 to one topic."""

    def __init__(self, port: int, topic: str) -> None:
        self.topic = topic
        self.messages: list[Any] = []
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.granted: list[int] = []
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"TS-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        self.subscribed = subscribed
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.c.subscribe(topic, QOS)
        assert subscribed.wait(MQTT_TIMEOUT_S), f"no SUBACK for {topic}"
        assert self.granted and self.granted[0] < 128, f"Failed to subscribe to {topic}"

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(orjson.loads(msg.payload))

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, codes: list[Any], props: Any) -> None:
        self.granted.extend(int(c.value) for c in codes)
        self.subscribed.set()

    def received(self) -> list[Any]:
        with self.lock:
            return list(self.messages)

    def close(self) -> None:
        self.c.unsubscribe(self.topic)
        self.c.disconnect()
        self.c.loop_stop()


# -- comparing what came with what a GET says (MqttHelper2.jsonEqualsWithLinkResolving) --------------------------


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def time_equals(a: Any, b: Any) -> bool:
    """Two time values name the same instant or interval, whatever their offsets and precision."""
    if a == b:
        return True
    if not isinstance(a, str) or not isinstance(b, str):
        return False
    try:
        return [_instant(p) for p in a.split("/")] == [_instant(p) for p in b.split("/")]
    except ValueError:
        return False


def json_equals(expected: Any, received: Any, topic: str) -> bool:
    if isinstance(expected, dict) and isinstance(received, dict):
        return _objects_equal(expected, received, topic)
    if isinstance(expected, list) and isinstance(received, list):
        return len(expected) == len(received) and all(
            json_equals(a, b, topic) if isinstance(a, dict | list) else a == b
            for a, b in zip(expected, received, strict=True)
        )
    return False


def _resolve(obj: dict[str, Any], link: str, version: str, topic: str) -> str:
    self_link: str = obj["@iot.selfLink"]
    return urljoin(urljoin(self_link[: self_link.index(version)], topic), link)


def _objects_equal(a: dict[str, Any], b: dict[str, Any], topic: str) -> bool:
    if len(a) != len(b):
        return False
    version = topic.split("/", 1)[0]
    for key, val in a.items():
        if key not in b:
            return False
        other = b[key]
        if isinstance(val, dict | list):
            if not json_equals(val, other, topic):
                return False
        elif key.lower().endswith("time"):
            if not time_equals(val, other):
                return False
        elif key.endswith("@iot.navigationLink"):
            # Resolved against the topic, as a relative link in a message would be.
            if _resolve(a, val, version, topic) != _resolve(b, other, version, topic):
                return False
        elif val != other or type(val) is not type(other):
            return False
    return True


# -- the service: EntityHelper2 and MqttHelper2 --------------------------------------------------------------------


class Frost:
    """The Java test class's static state: the service (a hub with its broker) and EntityHelper2's caches."""

    def __init__(self, client: TestClient, port: int) -> None:
        self.client = client
        self.port = port
        self.cache: dict[str, list[Ent]] = {}

    # EntityHelper2's caches
    def clear_caches(self) -> None:
        self.cache.clear()

    def get_cache(self, plural: str) -> list[Ent]:
        return self.cache.setdefault(plural, [])

    def cached(self, plural: str, idx: int = 0) -> Ent:
        return self.get_cache(plural)[idx]

    # the HTTP side
    def create(self, ent: Ent) -> Ent:
        """sSrvc.create(entity): POST, and the id from the Location header."""
        r = self.client.post(f"/v1.1/{ent.plural}", json=ent.json())
        assert r.status_code == 201, f"Failed to create {ent.plural}: {r.status_code} {r.text}"
        location = r.headers["location"]
        ent.id = int(location[location.index("(") + 1 : location.index(")")])
        return ent

    def update(self, ent: Ent) -> None:
        """sSrvc.update(entity): a PATCH with what the entity holds."""
        r = self.client.patch(f"/v1.1/{ent.plural}({ent.id})", json=ent.json())
        assert r.status_code == 200, f"Failed to update {ent.plural}({ent.id}): {r.status_code} {r.text}"

    def put(self, ent: Ent) -> Any:
        """EntityHelper2.sendHttpPutEntity."""
        r = self.client.put(f"/v1.1/{ent.plural}({ent.id})", json=ent.json())
        assert r.status_code == 200, f"Error during updating(PUT) of entity {ent.plural}: {r.text}"
        return self.client.get(f"/v1.1/{ent.plural}({ent.id})").json()

    def get_entity(
        self,
        plural: str,
        eid: int | None = None,
        nav: str | None = None,
        select: list[str] | None = None,
        expand: str | None = None,
        orderby: str | None = None,
    ) -> Any:
        """EntityHelper2.getEntity: the entity (or the first of a collection) as the server has it now."""
        query = []
        if expand:
            query.append(expand if expand.startswith("$") else f"$expand={expand}")
        if select:
            query.append(create_select(select))
        if orderby:
            query.append(f"$orderby={orderby}")
        url = f"/v1.1/{plural}" + (f"({eid})" if eid is not None else "") + (f"/{nav}" if nav else "")
        r = self.client.get(url + ("?" + "&".join(query) if query else ""))
        assert r.status_code == 200, f"GET {url}: {r.status_code} {r.text}"
        tree = r.json()
        if "value" in tree:
            return tree["value"][0] if tree["value"] else None
        return tree

    def entity_json(self, ent: Ent, select: list[str] | None = None) -> Any:
        return self.get_entity(ent.plural, ent.id, select=select)

    def delete_all(self, *plurals: str) -> None:
        """EntityUtils.deleteAll: every entity of the sets, one DELETE each."""
        for plural in plurals or ALL_SETS:
            while True:
                ids = [e["@iot.id"] for e in self.client.get(f"/v1.1/{plural}?$select=id").json()["value"]]
                if not ids:
                    break
                for eid in ids:
                    r = self.client.delete(f"/v1.1/{plural}({eid})")
                    assert r.status_code in (200, 404), r.text

    # MqttHelper2.executeRequest
    def watched(self) -> int:
        return int(self.client.get("/healthz").json()["mqtt"]["watched_filters"])

    def settle(self) -> None:
        """waitMillis(WAIT_AFTER_CLEANUP), "give the server a second to send out the messages created by the
        setup": until the hub has handed every queued publication to its MQTT process, and a moment for the
        broker to pass them on (what a listener subscribed after its action must not hear)."""
        wait_until(lambda: self.client.get("/healthz").json()["mqtt"]["publish_queued"] == 0, "the publications")
        time.sleep(0.05)

    def execute(self, action: Callable[[], None], subs: list[Subscription], *, by_id: bool = False) -> None:
        """``by_id``: the subscriptions expect entities (their ids), which FROST's client compares by type and id;
        otherwise JSON, compared with link resolving."""
        assert subs, "No topics to test?"
        self.settle()
        listeners = [Listener(self.port, s.topic) for s in subs]
        try:
            wait_until(lambda: self.watched() == len({s.topic for s in subs}), "the hub to see the subscriptions")
            action()
            deadline = time.monotonic() + MQTT_TIMEOUT_S
            while time.monotonic() < deadline:
                if all(len(li.received()) >= len(s.expected) for li, s in zip(listeners, subs, strict=True)):
                    break
                time.sleep(0.02)
        finally:
            for li in listeners:
                li.close()
        wait_until(lambda: self.watched() == 0, "the hub to forget the subscriptions")
        for li, s in zip(listeners, subs, strict=True):
            got = li.received()[: len(s.expected)]  # the listener's latch counts the first ones only
            assert len(got) == len(s.expected), f"Did not receive {len(s.expected)} messages on {s.topic}: {got}"
            left = list(s.expected)
            for message in got:
                match = next((p for p in left if p.done and _same(p.value, message, s.topic, by_id)), None)
                assert match is not None, (
                    f"failure checking received entities on {s.topic}: {message} matches none of "
                    f"{[p.value for p in left]}"
                )
                left.remove(match)


def _same(expected: Any, message: Any, topic: str, by_id: bool) -> bool:
    if by_id:
        return bool(message.get("@iot.id") == expected)
    return json_equals(expected, message, topic)


# EntityHelper2's entities
GEOJSON = "application/geo+json"  # the client's CONTENT_TYPE_APPLICATION_GEOJSON


# -- EntityHelper2's entities ------------------------------------------------------------------------------------------


def new_thing(f: Frost) -> Ent:
    e = Ent("Things", {"name": "Test Thing", "description": "This is a Test Thing"})
    f.get_cache("Things").append(e)
    return e


def new_sensor(f: Frost) -> Ent:
    e = Ent(
        "Sensors",
        {
            "name": "Fuguro Barometer 1",
            "description": "Our first Fuguro Barometer",
            "encodingType": "http://schema.org/description",
            "metadata": "Barometer",
        },
    )
    f.get_cache("Sensors").append(e)
    return e


def new_location(f: Frost, thing: Ent | None = None) -> Ent:
    e = Ent(
        "Locations",
        {
            "name": "Rhine",
            "description": "The river Thine",
            "encodingType": GEOJSON,
            "location": {"type": "Point", "coordinates": [-32.01, 50.05]},
        },
    )
    if thing is not None:
        e.links["Things"] = [thing]
    f.get_cache("Locations").append(e)
    return e


def new_observed_property(f: Frost) -> Ent:
    e = Ent(
        "ObservedProperties",
        {
            "name": "Dewpoint temperature",
            "definition": "http://dbpedia.org/page/Dew_point",
            "description": "The dewpoint temperature is the temperature to which the air must be cooled, at constant "
            "pressure, for dew to form.",
        },
    )
    f.get_cache("ObservedProperties").append(e)
    return e


def new_feature_of_interest(f: Frost) -> Ent:
    e = Ent(
        "FeaturesOfInterest",
        {
            "name": "Weather Station 1",
            "description": "The weather station in my garden.",
            "encodingType": GEOJSON,
            "feature": {"type": "Point", "coordinates": [10.0, 10.0]},
        },
    )
    f.get_cache("FeaturesOfInterest").append(e)
    return e


def new_datastream(f: Frost, observed_property: Ent, sensor: Ent, thing: Ent | None = None) -> Ent:
    """(Its phenomenonTime and resultTime are read-only to the client: not sent.)"""
    e = Ent(
        "Datastreams",
        {
            "name": "test datastream",
            "description": "A datatream for testing",
            "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
            "unitOfMeasurement": {
                "name": "Celcius",
                "symbol": "degC",
                "definition": "http://qudt.org/vocab/unit#DegreeCelsius",
            },
        },
    )
    e.links.update({"Sensor": sensor, "ObservedProperty": observed_property})
    if thing is not None:
        e.links["Thing"] = thing
    f.get_cache("Datastreams").append(e)
    return e


def new_observation(f: Frost, datastream: Ent, feature: Ent | None = None) -> Ent:
    cache = f.get_cache("Observations")
    e = Ent(
        "Observations",
        {
            "phenomenonTime": "2015-03-01T00:40:00.000Z",
            "resultTime": "2015-03-01T00:40:00.000Z",
            "result": len(cache),
            "validTime": "2016-01-01T01:01:01Z/2016-01-01T23:59:59Z",
            "parameters": {"param1": "some value1", "param2": "some value2"},
        },
    )
    e.links["Datastream"] = datastream
    if feature is not None:
        e.links["FeatureOfInterest"] = feature
    cache.append(e)
    return e


def new_historical_location(f: Frost, thing: Ent, location: Ent) -> Ent:
    e = Ent("HistoricalLocations", {"time": "2015-03-01T00:40:00.000Z"}, {"Thing": thing, "Locations": [location]})
    f.get_cache("HistoricalLocations").append(e)
    return e


def create_select(select: list[str]) -> str:
    return "$select=" + ",".join(select)


def selected_properties(plural: str, even: bool) -> list[str]:
    """EntityHelper2.getSelectedProperties: every other entity property of the type, the even or the odd ones."""
    return PROPS[plural][0 if even else 1 :: 2]


def wait_until(check: Callable[[], bool], what: str, timeout: float = MQTT_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


# -- the broker and the hub, one per module ------------------------------------------------------------------------


def telling_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A Mosquitto that publishes its subscribe/unsubscribe/notice log to $SYS topics (README, MQTT)."""
    if not shutil.which("mosquitto"):
        if os.environ.get("CITYHUB_REQUIRE_SERVICES") == "1":
            pytest.fail("mosquitto is needed (CITYHUB_REQUIRE_SERVICES=1)")
        pytest.skip("mosquitto not installed")
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
        "log_dest topic\nlog_type subscribe\nlog_type unsubscribe\nlog_type notice\n"
    )
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 5
    while True:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            import socket

            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    return proc, port


@pytest.fixture(scope="module")
def frost(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Frost]:
    """The service of the module: a broker and a hub on the store of the run (on PostgreSQL a schema of the
    module's own, as the tests share the hub as the Java tests share their server)."""
    workdir = tmp_path_factory.mktemp("frost-mqtt")
    store = ""
    if store_kind(request.config) == "postgresql":
        store = new_pg_schema_url(request.getfixturevalue("pg_test_database"))
    broker, port = telling_broker(workdir)
    settings = Settings(
        data_dir=workdir / "var",
        mqtt_url=f"mqtt://127.0.0.1:{port}",
        public_url=BASE,
        mqtt_client_id=f"hub-{uuid.uuid4().hex[:8]}",
        store=store,
    )
    key = KeyStore(settings.keys_path).create("admin", "FROST's MQTT tests")
    try:
        with TestClient(create_app(settings), base_url=BASE) as client:
            client.headers["Authorization"] = f"Bearer {key}"
            wait_until(lambda: bool(client.get("/healthz").json()["mqtt"].get("connected")), "the bridge to connect")
            yield Frost(client, port)
    finally:
        broker.terminate()
        broker.wait(5)
        if store:
            drop_pg_schema(store)
