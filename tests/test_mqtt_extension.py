"""The SensorThings MQTT extension beyond plain Datastream topics (issue 13, point 7): ``$select`` in topics,
property topics, FeatureOfInterest topics, the firehose by default, a Datastream in the payload of a Datastream
topic, deep insert and publish-to-create on a FeatureOfInterest topic; the conformance classes declared.

The topics only a subscriber can ask for (``$select``, features) need the hub to know who subscribed: against a
Mosquitto of this test's own that logs subscriptions to ``$SYS`` topics (:mod:`cityhub.mqtt.topics`)."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from cityhub import model
from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.mqtt.topics import Route, SubscriptionWatch, filter_matches, is_query, parse
from tests.servers import free_port
from tests.test_mqtt import admin, make_station, mqtt_connected, wait_for

# -- topics and the watch, without a broker --------------------------------------------------------------------------


def test_topics_parse_as_the_extension_names_them() -> None:
    assert parse("v1.1/Observations") == Route("observations")
    assert parse("v1.1/Datastreams(12)/Observations?$select=result,phenomenonTime") == Route(
        "observations", "Datastreams", 12, None, ("result", "phenomenonTime")
    )
    assert parse("v1.1/FeaturesOfInterest(3)/Observations") == Route("observations", "FeaturesOfInterest", 3)
    assert parse("v1.1/Things(1)/name") == Route("entity", "Things", 1, "name")
    things = Route("entity", "Things", None, None, ("name", "description"))
    assert parse("v1.1/Things?$select=name,description") == things
    assert parse("v1.1/Things(1)/name?$select=name") is None  # a property topic takes no $select
    assert parse("v1.1/Observations?$filter=result gt 3") is None  # only $select is defined for topics
    assert parse("v1.1/+/Observations") is None and parse("cityhub/alerts/1/thing/2") is None


def test_query_topics_are_those_only_the_hub_can_resolve() -> None:
    """Paths through navigation properties and queries beyond $select go to the hub (cityhub.mqtt.queries), which
    reads them in the store; what the MQTT process routes alone does not, nor do wildcards and other trees."""
    for topic in (
        "v1.1/Locations(1)/Things",
        "v1.1/Datastreams(1)/Thing",
        "v1.1/Observations(7)/Datastream/Thing/Locations",
        "v1.1/Things(1)/Datastreams?$select=name",
        "v1.1/Observations?$filter=result gt 4",
        "v1.1/Datastreams(1)/Observations?$filter=result gt 4&$select=result",
        "v1.1/Things?$select=properties/kind",
    ):
        assert is_query(topic), topic
    for topic in (
        "v1.1/Observations",
        "v1.1/Things(1)/name",
        "v1.1/Datastreams(1)/Observations?$select=result",
        "v1.1/Things?$select=name",
        "v1.1/+/Things",
        "cityhub/alerts/1/thing/2",
    ):
        assert not is_query(topic), topic


def test_filters_match_as_the_broker_matches_them() -> None:
    assert filter_matches("v1.1/+/Observations", "v1.1/Datastreams(1)/Observations")
    assert filter_matches("v1.1/#", "v1.1/Things(1)/name") and filter_matches("#", "v1.1/Things")
    assert not filter_matches("#", "$SYS/broker/log/N")  # wildcards first do not reach $ topics
    assert not filter_matches("v1.1/+", "v1.1/Things(1)/name")
    assert filter_matches("v1.1/Observations?$select=result", "v1.1/Observations?$select=result")


def test_the_watch_follows_mosquittos_log_lines() -> None:
    """Log lines as Mosquitto 2.0 writes them (captured from one)."""
    w = SubscriptionWatch("cityhub")
    assert w.wanted("v1.1/Things(1)/name")  # blind: it cannot tell
    feed = lambda topic, line: w.feed(f"$SYS/broker/log/{topic}", f"1796667831: {line}".encode())  # noqa: E731
    feed("N", "New client connected from 127.0.0.1:60747 as v2 (p5, c1, k60).")
    feed("M/subscribe", "v2 0 v1.1/Things(1)/name")
    feed("M/subscribe", "v2 1 v1.1/Observations?$select=result")
    feed("M/subscribe", "cityhub 1 v1.1/Observations")  # the hub's own subscription: not a listener
    assert sorted(w.filters()) == ["v1.1/Observations?$select=result", "v1.1/Things(1)/name"]
    assert w.wanted("v1.1/Things(1)/name") and not w.wanted("v1.1/Things(2)/name")
    feed("M/unsubscribe", "v2 v1.1/Things(1)/name")
    assert w.filters() == ["v1.1/Observations?$select=result"]
    feed("N", "Client v2 disconnected.")  # a clean session ends with its connection
    assert w.filters() == []
    feed("N", "New client connected from 127.0.0.1:46295 as v3 (p5, c0, k60).")
    feed("M/subscribe", "v3 0 v1.1/+/Observations")
    feed("N", "Client v3 closed its connection.")  # a persistent session keeps its subscriptions
    assert w.wanted("v1.1/FeaturesOfInterest(4)/Observations")


# -- against a broker that tells ---------------------------------------------------------------------------------------


@pytest.fixture
def telling_broker(tmp_path: Path) -> Iterator[int]:
    """A Mosquitto of this test's own that publishes its subscribe/unsubscribe/notice log to $SYS topics."""
    if not shutil.which("mosquitto"):
        if os.environ.get("CITYHUB_REQUIRE_SERVICES") == "1":
            pytest.fail("mosquitto is needed (CITYHUB_REQUIRE_SERVICES=1)")
        pytest.skip("mosquitto not installed")
    port = free_port()
    conf = tmp_path / "m.conf"
    conf.write_text(
        f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
        "log_dest topic\nlog_type subscribe\nlog_type unsubscribe\nlog_type notice\n"
    )
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.PIPE)
    time.sleep(0.4)
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    yield port
    proc.terminate()
    proc.wait(5)


class Listener:
    def __init__(self, port: int, *topics: str) -> None:
        self.messages: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"l-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
        self.c.on_message = lambda c, u, m: self._got(m.topic, orjson.loads(m.payload))
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.c.subscribe([(t, 1) for t in topics])
        assert subscribed.wait(5)

    def _got(self, topic: str, payload: Any) -> None:
        with self.lock:
            self.messages.append((topic, payload))

    def on(self, topic: str) -> list[Any]:
        with self.lock:
            return [p for t, p in self.messages if t == topic]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def publish(port: int, messages: list[tuple[str, Any]]) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"d-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        for topic, body in messages:
            info = c.publish(topic, orjson.dumps(body), qos=1)
            info.wait_for_publish(10)
    finally:
        c.disconnect()
        c.loop_stop()


def watching(client: TestClient, n: int) -> bool:
    return bool(client.get("/healthz").json()["mqtt"]["watched_filters"] >= n)


def test_select_feature_and_property_topics(tmp_path: Path, telling_broker: int) -> None:
    port = telling_broker
    settings = Settings(data_dir=tmp_path / "var", mqtt_url=f"mqtt://127.0.0.1:{port}", mqtt_client_id="hub-ext")
    with TestClient(create_app(settings)) as client:
        client.headers.update(admin(settings))
        wait_for(lambda: mqtt_connected(client), what="the bridge to connect")
        ds = make_station(client)
        thing = client.get(f"/v1.1/Datastreams({ds})/Thing").json()["@iot.id"]
        first = client.post(f"/v1.1/Datastreams({ds})/Observations",
                            json={"phenomenonTime": "2026-11-23T01:00:00Z", "result": 1})  # fmt: skip
        foi = client.get(f"/v1.1/Observations({first.json()['@iot.id']})/FeatureOfInterest").json()["@iot.id"]
        topics = {
            "ds_select": f"v1.1/Datastreams({ds})/Observations?$select=result,phenomenonTime",
            "all_select": "v1.1/Observations?$select=result",
            "foi": f"v1.1/FeaturesOfInterest({foi})/Observations",
            "firehose": "v1.1/Observations",
            "name": f"v1.1/Things({thing})/name",
            "thing_select": f"v1.1/Things({thing})?$select=name",
            "things_select": "v1.1/Things?$select=description",
        }
        listener = Listener(port, *topics.values())
        try:
            wait_for(lambda: watching(client, len(topics)), what="the hub to see the subscriptions")
            r = client.post(f"/v1.1/Datastreams({ds})/Observations",
                            json={"phenomenonTime": "2026-11-23T02:00:00Z", "result": 42.5})  # fmt: skip
            oid = r.json()["@iot.id"]
            # (The first Observation may be announced after the listener subscribed too: it is left out.)
            second = lambda k: [p for p in listener.on(topics[k]) if p.get("result") == 42.5]  # noqa: E731
            wait_for(lambda: all(second(k) for k in ("ds_select", "all_select", "foi", "firehose")),
                     what="the Observation on four topics")  # fmt: skip
            assert second("ds_select") == [{"result": 42.5, "phenomenonTime": "2026-11-23T02:00:00Z"}]
            assert second("all_select") == [{"result": 42.5}]
            full = second("foi")
            assert [o["@iot.id"] for o in full] == [oid] and set(full[0]) >= {"phenomenonTime", "resultTime"}
            assert second("firehose") == full  # published by default, the same entity
            # A property topic hears a change of its property, not of another one.
            assert client.patch(f"/v1.1/Things({thing})", json={"description": "trạm mới"}).status_code == 200
            assert client.patch(f"/v1.1/Things({thing})", json={"name": "Trạm Hồ Gươm"}).status_code == 200
            # Each topic is a subscription of its own: wait for both changes on each, not on one of them.
            heard = lambda: (listener.on(topics["name"]) and len(listener.on(topics["things_select"])) >= 2  # noqa: E731
                             and len(listener.on(topics["thing_select"])) >= 2)  # fmt: skip
            wait_for(heard, what="the property and entity topics")
            assert listener.on(topics["name"]) == [{"name": "Trạm Hồ Gươm"}]
            assert listener.on(topics["thing_select"])[-1] == {"name": "Trạm Hồ Gươm"}
            assert listener.on(topics["things_select"])[0] == {"description": "trạm mới"}
        finally:
            listener.close()
        # Unsubscribed (the listener left with a clean session): the hub forgets its filters.
        wait_for(lambda: client.get("/healthz").json()["mqtt"]["watched_filters"] == 0, what="the filters to go")


def test_query_topics_are_resolved_in_the_store(tmp_path: Path, telling_broker: int) -> None:
    """Topics through navigation paths, with a $filter, or with a $select of a JSON member: the hub reads each
    in the store for every change of an entity of its type and publishes what the read finds, as it shows it."""
    port = telling_broker
    settings = Settings(data_dir=tmp_path / "var", mqtt_url=f"mqtt://127.0.0.1:{port}", mqtt_client_id="hub-q")
    with TestClient(create_app(settings)) as client:
        client.headers.update(admin(settings))
        wait_for(lambda: mqtt_connected(client), what="the bridge to connect")
        ds = make_station(client)
        thing = client.get(f"/v1.1/Datastreams({ds})/Thing").json()["@iot.id"]
        location = client.get(f"/v1.1/Things({thing})/Locations").json()["value"][0]["@iot.id"]
        topics = {
            "through": f"v1.1/Locations({location})/Things",  # many-to-many
            "one": f"v1.1/Datastreams({ds})/Thing",  # a single entity
            "high": f"v1.1/Datastreams({ds})/Observations?$filter=result gt 100&$select=result",
            "member": "v1.1/Things?$select=properties/kind",
            "deep": f"v1.1/Datastreams({ds})/Thing/Locations",
        }
        listener = Listener(port, *topics.values())
        try:
            wait_for(lambda: watching(client, len(topics)), what="the hub to see the subscriptions")
            for minute, result in ((1, 50), (2, 150.5)):
                r = client.post(f"/v1.1/Datastreams({ds})/Observations",
                                json={"phenomenonTime": f"2026-11-23T0{minute}:00:00Z", "result": result})  # fmt: skip
                assert r.status_code == 201, r.text
            patch = {"name": "Trạm Hồ Gươm", "properties": {"kind": "air-quality station", "floor": 2}}
            assert client.patch(f"/v1.1/Things({thing})", json=patch).status_code == 200
            assert client.patch(f"/v1.1/Locations({location})", json={"name": "Hồ Gươm"}).status_code == 200
            wait_for(lambda: all(listener.on(t) for t in topics.values()), what="a message on every topic")
            assert listener.on(topics["high"]) == [{"result": 150.5}]  # the Observation of 50 does not match
            for key in ("through", "one"):
                assert [m["name"] for m in listener.on(topics[key])] == ["Trạm Hồ Gươm"], key
            assert listener.on(topics["member"]) == [{"properties": {"kind": "air-quality station"}}]
            assert [m["name"] for m in listener.on(topics["deep"])] == ["Hồ Gươm"]
        finally:
            listener.close()


def test_publish_to_create_in_every_shape(tmp_path: Path, telling_broker: int) -> None:
    """A Datastream in the payload of its own topic, an Observation on a FeatureOfInterest topic, and deep insert of
    a new FeatureOfInterest with the Observation; a Datastream that contradicts the topic is a dead letter."""
    port = telling_broker
    settings = Settings(data_dir=tmp_path / "var", mqtt_url=f"mqtt://127.0.0.1:{port}", mqtt_client_id="hub-ext2")
    with TestClient(create_app(settings)) as client:
        client.headers.update(admin(settings))
        wait_for(lambda: mqtt_connected(client), what="the bridge to connect")
        ds = make_station(client)
        other = make_station(client, "Cầu Giấy")
        foi = client.post("/v1.1/FeaturesOfInterest", json={
            "name": "Hồ Tây", "description": "lake", "encodingType": "application/vnd.geo+json",
            "feature": {"type": "Point", "coordinates": [105.82, 21.06]}}).json()["@iot.id"]  # fmt: skip
        new_feature = {"name": "Hồ Gươm", "description": "lake", "encodingType": "application/vnd.geo+json",
                       "feature": {"type": "Point", "coordinates": [105.852, 21.028]}}  # fmt: skip
        publish(port, [
            (f"v1.1/Datastreams({ds})/Observations",
             {"phenomenonTime": "2026-11-23T01:00:00Z", "result": 1, "Datastream": {"@iot.id": ds}}),
            (f"v1.1/FeaturesOfInterest({foi})/Observations",
             {"phenomenonTime": "2026-11-23T02:00:00Z", "result": 2, "Datastream": {"@iot.id": ds}}),
            (f"v1.1/Datastreams({ds})/Observations",
             {"phenomenonTime": "2026-11-23T03:00:00Z", "result": 3, "FeatureOfInterest": new_feature}),
            (f"v1.1/Datastreams({ds})/Observations",
             {"phenomenonTime": "2026-11-23T04:00:00Z", "result": 4, "Datastream": {"@iot.id": other}}),
            (f"v1.1/FeaturesOfInterest({foi})/Observations", {"phenomenonTime": "2026-11-23T05:00:00Z", "result": 5}),
        ])  # fmt: skip
        url = f"/v1.1/Datastreams({ds})/Observations?$orderby=phenomenonTime&$expand=FeatureOfInterest($select=name)"
        got = wait_for(lambda: len(client.get(url).json()["value"]) == 3 and client.get(url).json()["value"],
                       what="three Observations")  # fmt: skip
        assert [(o["result"], o["FeatureOfInterest"]["name"]) for o in got] == [
            (1, "Hoàn Kiếm"),
            (2, "Hồ Tây"),
            (3, "Hồ Gươm"),
        ]  # fmt: skip  (1: the Thing's Location)
        letters = lambda: client.get("/api/v1/deadletters").json()["value"]  # noqa: E731
        dead = wait_for(lambda: len(letters()) == 2 and letters(), what="two dead letters")
        reasons = sorted((d["field"], d["reason"]) for d in dead)
        assert reasons == [
            ("Datastream", 'an Observation published to a FeatureOfInterest topic needs Datastream: {"@iot.id": <id>}'),
            ("Datastream", f"the Datastream is given by the path or topic ({ds}); the body names another"),
        ]


def test_service_root_declares_the_mqtt_classes_only_with_a_broker(tmp_path: Path) -> None:
    mqtt_classes = {
        "http://www.opengis.net/spec/iot_sensing/1.1/req/create-observations-via-mqtt/observations-creation",
        "http://www.opengis.net/spec/iot_sensing/1.1/req/receive-updates-via-mqtt/receive-updates",
    }
    with TestClient(create_app(Settings(data_dir=tmp_path / "a"))) as client:
        root = client.get("/v1.1").json()["serverSettings"]
        assert not mqtt_classes & set(root["conformance"])
    settings = Settings(data_dir=tmp_path / "b", mqtt_url="mqtt://hub:secret@127.0.0.1:1", mqtt_client_id="x")
    with TestClient(create_app(settings)) as client:
        root = client.get("/v1.1").json()["serverSettings"]
        assert mqtt_classes <= set(root["conformance"])
        for cls in mqtt_classes:
            assert root[cls] == {"endpoints": ["mqtt://127.0.0.1:1"]}  # no credentials in the service root


def test_multi_datastream_observations_over_mqtt(tmp_path: Path, telling_broker: int) -> None:
    """A device publishes to v1.1/MultiDatastreams(<id>)/Observations with an array result; subscribers hear the
    stored Observation on that topic (not on a Datastream's); a result of the wrong length is a dead letter."""
    from tests.test_sta_multidatastream import _monitor

    port = telling_broker
    settings = Settings(data_dir=tmp_path / "var", mqtt_url=f"mqtt://127.0.0.1:{port}", mqtt_client_id="hub-ext3")
    with TestClient(create_app(settings)) as client:
        client.headers.update(admin(settings))
        wait_for(lambda: mqtt_connected(client), what="the bridge to connect")
        _, mds = _monitor(client)
        topic = f"v1.1/MultiDatastreams({mds})/Observations"
        listener = Listener(port, topic, f"v1.1/Datastreams({mds})/Observations")
        try:
            publish(port, [(topic, {"phenomenonTime": "2026-11-23T01:00:00Z", "result": [35.5, 60, 21]}),
                           (topic, {"phenomenonTime": "2026-11-23T02:00:00Z", "result": [35.5, 60]})])  # fmt: skip
            heard = wait_for(lambda: [p for p in listener.on(topic) if "@iot.id" in p], what="the stored one")
            assert heard[0]["result"] == [35.5, 60, 21]
            assert listener.on(f"v1.1/Datastreams({mds})/Observations") == []
            dead = wait_for(lambda: client.get("/api/v1/deadletters").json()["value"], what="a dead letter")
            assert dead[0]["field"] == "result" and "array of 3 values" in dead[0]["reason"]
        finally:
            listener.close()


def test_an_entity_deleted_before_its_announcement_is_no_failure(tmp_path: Path, telling_broker: int) -> None:
    """A change whose entity is gone when the hub comes to announce it (created and deleted at once, as a
    test's clean-up does) is nothing to announce: neither an error nor a dropped message."""
    port = telling_broker
    settings = Settings(data_dir=tmp_path / "var", mqtt_url=f"mqtt://127.0.0.1:{port}", mqtt_client_id="hub-gone")
    with TestClient(create_app(settings)) as client:
        client.headers.update(admin(settings))
        wait_for(lambda: mqtt_connected(client), what="the bridge to connect")
        bridge = client.app.state.hub.mqtt
        listener = Listener(port, "v1.1/Things")
        try:
            bridge._enqueue(("entity", model.THING, 987654, ()), 2, "an entity change")  # no such Thing
            thing = client.post("/v1.1/Things", json={"name": "after", "description": "d"}).json()["@iot.id"]
            wait_for(lambda: listener.on("v1.1/Things"), what="the Thing made after it")
            assert [m["@iot.id"] for m in listener.on("v1.1/Things")] == [thing]
            stats = client.get("/healthz").json()["mqtt"]
            assert stats["publish_dropped"] == 0 and stats["last_error"] is None, stats
        finally:
            listener.close()
