"""The MQTT bridge against the real Mosquitto on 127.0.0.1:1883: SensorThings topics, topic mappings,
subscriptions, persistent sessions, acknowledgement after commit, dead letters."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cityhub.app import create_app
from cityhub.auth.keys import KeyStore
from cityhub.config import Settings
from cityhub.mqtt.bridge import BrokerAddress
from cityhub.mqtt.mappings import load_mappings
from tests.conftest import require_service, station_body
from tests.servers import free_port, start_server, stop_server

BROKER = ("127.0.0.1", 1883)
T0 = datetime(2026, 11, 21, tzinfo=UTC)


@pytest.fixture
def broker() -> str:
    require_service(*BROKER, "Mosquitto")
    return f"mqtt://{BROKER[0]}:{BROKER[1]}"


@pytest.fixture
def client_id() -> Iterator[str]:
    """A hub client id of this test's own; its persistent session is removed from the broker afterwards."""
    cid = f"cityhub-test-{uuid.uuid4().hex[:10]}"
    yield cid
    drop_session(cid)


def drop_session(cid: str) -> None:
    """Remove a client's persistent session (and its queue) from the broker."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    try:
        c.connect(*BROKER, clean_start=True, properties=props)
        c.loop_start()
        time.sleep(0.2)
        c.disconnect()
        c.loop_stop()
    except OSError:
        pass


def wait_for(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def publisher(cid: str | None = None) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid or f"dev-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
    c.connect(*BROKER)
    c.loop_start()
    return c


def publish_all(c: mqtt.Client, messages: list[tuple[str, bytes | str]], qos: int = 1) -> None:
    infos = [c.publish(t, p, qos=qos) for t, p in messages]
    for info in infos:
        info.wait_for_publish(10)
        assert info.is_published()


class Subscriber:
    def __init__(self, *topics: str) -> None:
        self.messages: list[tuple[str, Any]] = []
        self.ready = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
        self.c.on_message = lambda c, u, m: self.messages.append((m.topic, orjson.loads(m.payload)))
        self.c.on_subscribe = lambda *a: self.ready.set()
        self.c.connect(*BROKER)
        self.c.subscribe([(t, 1) for t in topics])
        self.c.loop_start()
        assert self.ready.wait(5)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def hub_settings(tmp_path: Path, broker: str, client_id: str, **kw: Any) -> Settings:
    return Settings(data_dir=tmp_path / "var", mqtt_url=broker, mqtt_client_id=client_id, **kw)


def mqtt_connected(client: TestClient) -> bool:
    return bool(client.get("/healthz").json()["mqtt"]["connected"])


def make_station(client: TestClient, name: str = "Hoàn Kiếm") -> int:
    thing = client.post("/v1.1/Things", json=station_body(name)).json()["@iot.id"]
    return client.get(f"/v1.1/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]


def observations(client: TestClient, ds: int) -> list[dict]:
    return client.get(f"/v1.1/Datastreams({ds})/Observations?$orderby=phenomenonTime&$top=10000").json()["value"]


def admin(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {KeyStore(settings.keys_path).create('admin', 'test')}"}


def test_publish_observation_and_read_it_back(tmp_path: Path, broker: str, client_id: str) -> None:
    settings = hub_settings(tmp_path, broker, client_id)
    with TestClient(create_app(settings)) as client:
        client.headers.update(admin(settings))
        ds = make_station(client)
        wait_for(lambda: mqtt_connected(client), what="the bridge to connect")
        dev = publisher()
        try:
            publish_all(
                dev,
                [
                    (
                        f"v1.1/Datastreams({ds})/Observations",
                        '{"phenomenonTime": "2026-11-23T01:00:00Z", "result": 42.5}',
                    ),
                    (
                        "v1.1/Observations",
                        orjson.dumps(
                            {"phenomenonTime": "2026-11-23T02:00:00+07:00", "result": 17, "Datastream": {"@iot.id": ds}}
                        ),
                    ),
                ],
            )
        finally:
            dev.disconnect()
        got = wait_for(lambda: len(observations(client, ds)) == 2 and observations(client, ds), what="2 Observations")
        assert [(o["phenomenonTime"], o["result"]) for o in got] == [
            ("2026-11-22T19:00:00Z", 17),
            ("2026-11-23T01:00:00Z", 42.5),
        ]
        # The FeatureOfInterest is the Thing's Location, as for HTTP.
        foi = client.get(f"/v1.1/Observations({got[0]['@iot.id']})/FeatureOfInterest").json()
        assert foi["feature"]["coordinates"] == [105.8535, 21.0245]


def test_subscribers_receive_observations_posted_over_http(tmp_path: Path, broker: str, client_id: str) -> None:
    settings = hub_settings(tmp_path, broker, client_id, mqtt_publish="datastreams,observations,entities")
    with TestClient(create_app(settings)) as client:
        client.headers.update(admin(settings))
        wait_for(lambda: mqtt_connected(client), what="the bridge to connect")
        sub = Subscriber("v1.1/+/Observations", "v1.1/Observations", "v1.1/Things")
        try:
            ds = make_station(client)
            r = client.post(
                f"/v1.1/Datastreams({ds})/Observations", json={"phenomenonTime": "2026-11-23T03:00:00Z", "result": 7}
            )
            assert r.status_code == 201
            oid = r.json()["@iot.id"]
            # Only the hub's own messages (with @iot.id): the broker is shared with other tests' devices.
            ours = lambda: [(t, p) for t, p in sub.messages if isinstance(p, dict) and "@iot.id" in p]  # noqa: E731
            topics = wait_for(
                lambda: (
                    {t for t, _ in ours()}
                    >= {f"v1.1/Datastreams({ds})/Observations", "v1.1/Observations", "v1.1/Things"}
                    and ours()
                ),
                what="three messages",
            )
            by_topic = {t: p for t, p in topics}
            obs = by_topic[f"v1.1/Datastreams({ds})/Observations"]
            assert obs["@iot.id"] == oid
            assert obs["result"] == 7
            assert obs["phenomenonTime"] == "2026-11-23T03:00:00Z"
            assert obs["@iot.selfLink"].endswith(f"/v1.1/Observations({oid})")
            assert by_topic["v1.1/Observations"] == obs
            assert by_topic["v1.1/Things"]["name"] == "Trạm Hoàn Kiếm"
            # Bulk ingest is announced too, one message per Observation.
            body = "".join(
                f'{{"datastream": {ds}, "phenomenonTime": "2026-11-23T04:{m:02d}:00Z", "result": {m}}}\n'
                for m in range(50)
            )
            assert (
                client.post(
                    "/api/v1/ingest", content=body, headers={"Content-Type": "application/x-ndjson"}
                ).status_code
                == 200
            )
            per_ds = lambda: [p for t, p in sub.messages if t == f"v1.1/Datastreams({ds})/Observations"]  # noqa: E731
            wait_for(lambda: len(per_ds()) == 51, what="51 Observations on the Datastream's topic")
            assert sorted(p["result"] for p in per_ds()[1:]) == list(range(50))
        finally:
            sub.close()


def test_messages_published_while_the_hub_is_down_are_stored_once(tmp_path: Path, broker: str, client_id: str) -> None:
    settings = hub_settings(tmp_path, broker, client_id)
    with TestClient(create_app(settings)) as client:
        client.headers.update(admin(settings))
        ds = make_station(client)
        wait_for(lambda: mqtt_connected(client), what="the bridge to connect")  # the broker now knows our session
    dev = publisher()
    try:
        msgs = [
            (
                f"v1.1/Datastreams({ds})/Observations",
                f'{{"phenomenonTime": "2026-11-20T{k // 60:02d}:{k % 60:02d}:00Z", "result": {k}}}',
            )
            for k in range(1000)
        ]
        publish_all(dev, msgs, qos=1)  # the broker has acknowledged all 1,000 while no hub is connected
    finally:
        dev.disconnect()
    with TestClient(create_app(settings)) as client:
        wait_for(
            lambda: client.get(f"/v1.1/Datastreams({ds})/Observations?$count=true&$top=0").json()["@iot.count"] >= 1000,
            timeout=30,
            what="1,000 Observations",
        )
        time.sleep(0.5)  # anything delivered twice would show up now
        got = observations(client, ds)
        assert len(got) == 1000
        assert sorted(o["result"] for o in got) == list(range(1000))
        assert client.get("/healthz").json()["mqtt"]["dead_letters"] == 0


def test_kill_9_mid_stream_loses_nothing_and_stores_nothing_twice(tmp_path: Path, broker: str, client_id: str) -> None:
    """QoS 1 messages are acknowledged only after their commit: kill -9 the hub while 1,000 arrive, restart,
    and the broker's redelivery fills exactly the gap. (Unacknowledged and new messages together stay within
    Mosquitto's default max_queued_messages of 1,000 for an offline session; see the README.)"""
    data_dir = tmp_path / "var"
    headers = {"Authorization": f"Bearer {KeyStore(data_dir / 'keys.json').create('admin', 'test')}"}
    port = free_port()
    args = ("--mqtt", broker, "--mqtt-client-id", client_id)
    proc = start_server(data_dir, port, *args)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
            thing = c.post("/v1.1/Things", json=station_body()).json()["@iot.id"]
            ds = c.get(f"/v1.1/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]
            wait_for(lambda: c.get("/healthz").json()["mqtt"]["connected"], what="the bridge to connect")
            dev = publisher()
            try:
                msgs = [
                    (
                        f"v1.1/Datastreams({ds})/Observations",
                        orjson.dumps({"phenomenonTime": (T0 + timedelta(seconds=k)).isoformat(), "result": k}),
                    )
                    for k in range(1000)
                ]
                publish_all(dev, msgs[:600], qos=1)
                wait_for(lambda: c.get("/healthz").json()["mqtt"]["stored"] > 0, what="the first commits")
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
                publish_all(dev, msgs[600:], qos=1)
            finally:
                dev.disconnect()
    finally:
        if proc.poll() is None:
            proc.kill()
    proc = start_server(data_dir, port, *args)
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            count = lambda: c.get(f"/v1.1/Datastreams({ds})/Observations?$count=true&$top=0").json()["@iot.count"]  # noqa: E731
            wait_for(lambda: count() >= 1000, timeout=30, what="1,000 Observations")
            time.sleep(0.5)
            assert count() == 1000
            latest = c.get(f"/api/v1/latest?datastreams={ds}").json()["value"][0]
            assert latest["count"] == 1000
    finally:
        stop_server(proc)


MAPPINGS = """
mappings:
  - topic: hanoi/aq/+station/pm25
    format: number
    datastream: "PM2.5 {station} 0"
  - topic: hanoi/aq/+station/state
    format: json
    time: $.ts
    values:
      - {value: data.pm25, datastream: "PM2.5 {station} 0"}
  - topic: hanoi/water/+gauge/level
    format: csv
    columns: [time, level]
    time: time
    value: level
    datastream: "PM2.5 {gauge} 0"
"""


def test_topic_mappings_and_dead_letters(tmp_path: Path, broker: str, client_id: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:6]}/"  # topics of this test only: nothing left on the broker can interfere
    mapping_file = tmp_path / "mappings.yaml"
    mapping_file.write_text(MAPPINGS.replace("hanoi/", prefix + "hanoi/"))
    settings = hub_settings(tmp_path, broker, client_id, mqtt_mappings=mapping_file)
    with TestClient(create_app(settings)) as client:
        client.headers.update(admin(settings))
        ds_a = make_station(client, "HoanKiem")
        ds_b = make_station(client, "LongBien")
        wait_for(lambda: mqtt_connected(client), what="the bridge to connect")
        dev = publisher()
        before = time.time()
        try:
            publish_all(
                dev,
                [
                    (prefix + "hanoi/aq/HoanKiem/pm25", "35.5"),
                    (prefix + "hanoi/aq/HoanKiem/state", '{"ts": "2026-11-23T08:00:00+07:00", "data": {"pm25": 61}}'),
                    (prefix + "hanoi/aq/HoanKiem/state", '{"ts": 1763866800, "data": {"pm25": 62.5}}'),
                    (prefix + "hanoi/water/LongBien/level", "2026-11-23T10:00:00+07:00,812"),
                    # malformed, each for its own reason; none may block the good ones
                    (prefix + "hanoi/aq/HoanKiem/pm25", "thirty"),
                    (prefix + "hanoi/aq/Nowhere/pm25", "12"),
                    (prefix + "hanoi/aq/HoanKiem/state", '{"ts": "2026-11-23T10:00:00", "data": {"pm25": 1}}'),
                    (prefix + "hanoi/aq/HoanKiem/state", '{"ts": "2026-11-23T10:00:00Z", "data": {}}'),
                    (prefix + "hanoi/water/LongBien/level", "2026-11-23T09:00:00+07:00"),
                    (f"v1.1/Datastreams({ds_a})/Observations", b"\xff\xfe binary"),
                    (
                        f"v1.1/Datastreams({ds_a})/Observations",
                        '{"phenomenonTime": "2026-11-23T01:00:00Z", "result": "x"}',
                    ),
                    (
                        "v1.1/Datastreams(999999)/Observations",
                        '{"phenomenonTime": "2026-11-23T01:00:00Z", "result": 1}',
                    ),
                    ("v1.1/Things(1)/Observations", '{"result": 1}'),
                    (
                        f"v1.1/Datastreams({ds_b})/Observations",
                        '{"phenomenonTime": "2026-11-23T02:00:00Z", "result": 1}',
                    ),
                    (
                        f"v1.1/Datastreams({ds_b})/Observations",
                        '{"phenomenonTime": "2026-11-23T02:00:00Z", "result": 2}',
                    ),
                ],
            )
        finally:
            dev.disconnect()
        h = wait_for(
            lambda: (lambda x: x if x["received"] >= 15 else None)(client.get("/healthz").json()["mqtt"]),
            what="15 messages",
        )
        assert (h["stored"], h["dead_letters"]) == (5, 10)
        a = observations(client, ds_a)
        assert [o["result"] for o in a] == [62.5, 61, 35.5]  # 2025-11-23T03:00Z, 2026-11-23T01:00Z, now
        assert a[0]["phenomenonTime"] == "2025-11-23T03:00:00Z"
        assert a[1]["phenomenonTime"] == "2026-11-23T01:00:00Z"
        assert abs(time.time() - before) < 60  # the plain number took the time the hub received it
        b = observations(client, ds_b)
        assert [(o["phenomenonTime"], o["result"]) for o in b] == [
            ("2026-11-23T02:00:00Z", 1),
            ("2026-11-23T03:00:00Z", 812),
        ]
        dead = client.get("/api/v1/deadletters?limit=100").json()
        assert dead["count"] == 10
        reasons = {d["reason"] for d in dead["value"]}
        for fragment in (
            "is not a number: 'thirty'",
            "no Datastream is named 'PM2.5 Nowhere 0'",
            "has no time zone",
            "payload has no value at 'data.pm25'",
            "CSV line has 1 fields; the mapping names 2",
            "payload is not JSON",
            "result is not a number",
            "no Datastream has this id",
            "Observations are published to v1.1/Datastreams(<id>)/Observations",
            "FeatureOfInterest and parameters and another result",
        ):
            assert any(fragment in r for r in reasons), (fragment, reasons)
        binary = next(d for d in dead["value"] if d["payloadEncoding"] == "base64")
        assert binary["topic"] == f"v1.1/Datastreams({ds_a})/Observations"
        # Operators see dead letters; citizens do not.
        assert client.get("/api/v1/deadletters", headers={"Authorization": ""}).status_code == 401
        one = dead["value"][0]["id"]
        assert client.delete(f"/api/v1/deadletters/{one}").json() == {"deleted": 1}
        assert client.get("/api/v1/deadletters").json()["count"] == 9
        assert client.delete(f"/api/v1/deadletters/{one}").status_code == 404


def test_hub_serves_while_the_broker_is_unreachable(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    settings = Settings(data_dir=tmp_path / "var", mqtt_url=f"mqtt://127.0.0.1:{port}", mqtt_client_id="x")
    with TestClient(create_app(settings)) as client:
        health = client.get("/healthz").json()
        assert health["status"] == "ok"
        assert health["mqtt"]["connected"] is False
        assert client.get("/v1.1/Things").status_code == 200


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("mappings: {}", "top-level 'mappings:' list"),
        ("mappings:\n  - {format: number, datastream: x}", "topic is required"),
        ("mappings:\n  - {topic: a/+b, format: xml, datastream: x}", "format must be one of"),
        ("mappings:\n  - {topic: a/+b, format: number}", "exactly one of datastream"),
        ("mappings:\n  - {topic: a/+b, format: number, datastream: '{c}'}", "{c} is not captured"),
        ("mappings:\n  - {topic: a/#b/c, format: number, datastream: x}", "# must be the last level"),
        ("mappings:\n  - {topic: a/b+, format: number, datastream: x}", "wildcards must fill a whole level"),
        ("mappings:\n  - {topic: a, format: csv, value: v, datastream: x}", "needs columns"),
        ("mappings:\n  - {topic: a, format: csv, columns: [t], value: v, datastream: x}", "not one of the columns"),
        ("mappings:\n  - {topic: a, format: json, datastream: x}", "value (a path or column) is required"),
        ("mappings:\n  - {topic: a, format: number, datastream: x, colour: red}", "unknown key(s) ['colour']"),
        ("mappings: [", "not YAML"),
    ],
)
def test_mapping_file_errors_name_the_place(tmp_path: Path, text: str, error: str) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(text)
    with pytest.raises(ValueError) as info:
        load_mappings(f)
    assert error in str(info.value)


def test_topic_patterns_capture_levels(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text("mappings:\n  - {topic: 'city/+district/#rest', format: number, datastream: '{district}:{rest}'}")
    m = load_mappings(f)
    assert m.filters() == ["city/+/#"]
    names: list[str] = []
    bodies = m.bodies(
        "city/BaDinh/aq/pm25", b" 12.5 ", datetime(2026, 1, 1, tzinfo=UTC), lambda n: names.append(n) or 7
    )
    assert names == ["BaDinh:aq/pm25"]
    assert bodies == [({"phenomenonTime": "2026-01-01T00:00:00Z", "result": 12.5}, 7)]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1", BrokerAddress("127.0.0.1", 1883, False)),
        ("mqtts://broker.hanoi.gov.vn", BrokerAddress("broker.hanoi.gov.vn", 8883, True)),
        ("mqtt://hub:s%40cret@10.0.0.5:11883", BrokerAddress("10.0.0.5", 11883, False, "hub", "s@cret")),
        ("localhost:1884", BrokerAddress("localhost", 1884, False)),
    ],
)
def test_broker_urls(url: str, expected: BrokerAddress) -> None:
    assert BrokerAddress.parse(url) == expected


def test_bad_broker_url_is_refused() -> None:
    with pytest.raises(ValueError, match="scheme"):
        BrokerAddress.parse("http://x")


def test_tls_and_credentials_with_a_broker_of_our_own(tmp_path: Path) -> None:
    """mqtts:// with a CA file and a user name and password, against a Mosquitto started for this test."""
    import getpass
    import shutil
    import subprocess

    tools = [shutil.which(t) for t in ("mosquitto", "mosquitto_passwd", "openssl")]
    if not all(tools):
        if os.environ.get("CITYHUB_REQUIRE_SERVICES") == "1":
            pytest.fail("mosquitto, mosquitto_passwd and openssl are needed (CITYHUB_REQUIRE_SERVICES=1)")
        pytest.skip("mosquitto, mosquitto_passwd or openssl not installed")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, cwd=tmp_path)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=CityHub test CA",
        "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
        "-out", "server.csr")  # fmt: skip
    (tmp_path / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "1", "-extfile", "san.ext", "-out", "server.crt")  # fmt: skip
    run("mosquitto_passwd", "-c", "-b", "passwd", "hub", "s3cret:ok")
    port = free_port()
    (tmp_path / "m.conf").write_text(
        # `user`: the files are in this test's private folder, which the default "mosquitto" user cannot read.
        f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {tmp_path}/passwd\n"
        f"cafile {tmp_path}/ca.crt\ncertfile {tmp_path}/server.crt\nkeyfile {tmp_path}/server.key\n"
    )
    broker = subprocess.Popen(["mosquitto", "-c", str(tmp_path / "m.conf")], stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        assert broker.poll() is None, broker.stderr.read() if broker.stderr else ""
        good = Settings(
            data_dir=tmp_path / "var",
            mqtt_url=f"mqtts://hub:s3cret%3Aok@localhost:{port}",
            mqtt_client_id="tls-hub",
            mqtt_ca_file=tmp_path / "ca.crt",
        )
        with TestClient(create_app(good)) as client:
            wait_for(lambda: mqtt_connected(client), what="a TLS connection with a password")
        bad = Settings(
            data_dir=tmp_path / "var2",
            mqtt_url=f"mqtts://hub:wrong@localhost:{port}",
            mqtt_client_id="tls-hub-2",
            mqtt_ca_file=tmp_path / "ca.crt",
        )
        with TestClient(create_app(bad)) as client:
            health = wait_for(
                lambda: (lambda m: m if m["last_error"] else None)(client.get("/healthz").json()["mqtt"]),
                what="the refusal",
            )
            assert health["connected"] is False
            # Mosquitto 2.0 closes the connection on a bad password; paho reports it as a disconnect.
            assert health["stored"] == 0 and health["connects"] == 0, health
    finally:
        broker.terminate()
        broker.wait(10)


def test_deadletters_command_reads_the_store_when_no_hub_runs(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cityhub.cli import app as cli
    from cityhub.ingest import deadletters as dl
    from cityhub.store import open_store

    store = open_store(Settings(data_dir=tmp_path / "var"))
    dl.record(store, [dl.DeadLetter("mqtt", "hanoi/aq/x/pm25", b"thirty", "result is not a number", "result")])
    store.close()
    dead_port = free_port()
    out = CliRunner().invoke(
        cli, ["deadletters", "--url", f"http://127.0.0.1:{dead_port}", "--data-dir", str(tmp_path / "var"), "--json"]
    )
    assert out.exit_code == 0, out.output
    data = orjson.loads(out.output)
    assert data["count"] == 1
    assert data["value"][0]["payload"] == "thirty" and data["value"][0]["field"] == "result"


def test_derived_vn_aqi_is_published_like_any_observation(tmp_path: Path, broker: str, client_id: str) -> None:
    """Issue 10: derived VN_AQI was stored on a write path of its own and never published (6 PM2.5 stored and
    published, 5 VN_AQI stored, 0 published). It now goes through the writer and the bus like the rest."""
    settings = hub_settings(tmp_path, broker, client_id)
    with TestClient(create_app(settings)) as client:
        client.headers.update(admin(settings))
        wait_for(lambda: mqtt_connected(client), what="the bridge to connect")
        sub = Subscriber("v1.1/+/Observations")
        try:
            ds = make_station(client)  # PM2.5 in µg/m³: an air-quality station
            for h in range(6):
                r = client.post(
                    f"/v1.1/Datastreams({ds})/Observations",
                    json={"phenomenonTime": f"2026-11-23T0{h}:00:00Z", "result": 30 + h},
                )
                assert r.status_code == 201
            hub = client.app.state.hub  # type: ignore[attr-defined]
            assert hub.airquality.wait_idle()
            thing = client.get(f"/v1.1/Datastreams({ds})/Thing").json()["@iot.id"]
            vn = client.get(f"/v1.1/Things({thing})/Datastreams", params={"$filter": "name eq 'VN_AQI hourly'"}).json()[
                "value"
            ][0]["@iot.id"]
            stored = client.get(f"/v1.1/Datastreams({vn})/Observations", params={"$top": "100"}).json()["value"]
            assert len(stored) == 5  # hours 01..05 have a NowCast
            topic = f"v1.1/Datastreams({vn})/Observations"
            wait_for(
                lambda: {p["@iot.id"] for t, p in sub.messages if t == topic} >= {o["@iot.id"] for o in stored},
                what="every stored VN_AQI Observation on its Datastream's topic",
            )
            assert len([p for t, p in sub.messages if t == f"v1.1/Datastreams({ds})/Observations"]) == 6
        finally:
            sub.close()
