"""MQTT hardening, each test against a Mosquitto of its own (a free loopback port) run with the password and
ACL files CityHub generates: device credentials write only their own Thing's Datastreams (the broker's ACL, and
the hub's check behind it), anonymous clients read nothing when anonymous reads are off, the MQTT process is
supervised (kill -9: /healthz says so, it is restarted, QoS 1 messages of the outage are stored exactly once),
and republication stays bounded in memory under a burst the broker cannot take."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from cityhub.app import create_app
from cityhub.auth.keys import KeyStore
from cityhub.cli import app as cli
from cityhub.config import Settings
from cityhub.mqtt.acl import ACL_FILE, PASSWD_FILE, CredentialStore, check_password, credentials_path, render
from cityhub.mqtt.mappings import Mappings
from tests.conftest import station_body
from tests.servers import free_port

NOT_AUTHORIZED = 0x87  # MQTT 5 reason code in a PUBACK the broker refuses


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Broker:
    """Mosquitto with CityHub's password and ACL files, on a free loopback port."""

    def __init__(self, tmp: Path, acl_dir: Path, *, allow_anonymous: bool) -> None:
        if not shutil.which("mosquitto"):
            if os.environ.get("CITYHUB_REQUIRE_SERVICES") == "1":
                pytest.fail("mosquitto is needed (CITYHUB_REQUIRE_SERVICES=1)")
            pytest.skip("mosquitto not installed")
        self.port = free_port()
        self.pid_file = tmp / "mosquitto.pid"
        self.log = tmp / "mosquitto.log"
        conf = tmp / "mosquitto.conf"
        conf.write_text(
            # `user`: the files are in this test's private folder, which the default "mosquitto" user cannot read.
            f"user {getpass.getuser()}\nper_listener_settings false\nlistener {self.port} 127.0.0.1\n"
            f"allow_anonymous {'true' if allow_anonymous else 'false'}\n"
            f"password_file {acl_dir / PASSWD_FILE}\nacl_file {acl_dir / ACL_FILE}\npid_file {self.pid_file}\n"
            "persistence false\nmax_queued_messages 10000\nlog_type error\nlog_type warning\n"
        )
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=log, stderr=log)
        wait_for(self._listening, 10, "Mosquitto to listen")

    def _listening(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return self.pid_file.exists()
        except OSError:
            return False

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGCONT)  # in case a test paused it
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Client:
    """A paho MQTT 5 client that records what it receives and the broker's answer to each QoS 1 PUBLISH."""

    def __init__(self, port: int, user: str | None = None, password: str | None = None, cid: str = "") -> None:
        self.port, self.user, self.password = port, user, password
        self.messages: list[tuple[str, Any]] = []
        self.acks: dict[int, int] = {}  # mid → PUBACK reason code
        self.acked = threading.Condition()
        self.subscribed = threading.Event()
        self.connected = threading.Event()
        self.refused: int | None = None
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=cid or f"t-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        if user:
            self.c.username_pw_set(user, password)
        self.c.on_message = lambda c, u, m: self.messages.append((m.topic, orjson.loads(m.payload)))
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.on_connect = self._on_connect
        self.c.on_publish = self._on_publish

    def _on_connect(self, c: mqtt.Client, u: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.refused = reason.value
        else:
            self.connected.set()

    def _on_publish(self, c: mqtt.Client, u: Any, mid: int, reason: Any, props: Any) -> None:
        with self.acked:
            self.acks[mid] = reason.value
            self.acked.notify_all()

    def connect(self) -> Client:
        self.c.connect("127.0.0.1", self.port)
        self.c.loop_start()
        wait_for(lambda: self.connected.is_set() or self.refused is not None, 10, "CONNACK")
        if self.refused is not None:
            raise ConnectionRefusedError(f"CONNACK {self.refused:#x}")
        return self

    def subscribe(self, *topics: str) -> None:
        self.subscribed.clear()
        self.c.subscribe([(t, 1) for t in topics])
        assert self.subscribed.wait(10)

    def publish(self, topic: str, payload: Any) -> int:
        """Publish at QoS 1; the reason code of the broker's PUBACK."""
        info = self.c.publish(topic, payload if isinstance(payload, bytes) else orjson.dumps(payload), qos=1)
        with self.acked:
            assert self.acked.wait_for(lambda: info.mid in self.acks, 10), "no PUBACK"
            return self.acks[info.mid]

    def publish_all(self, messages: list[tuple[str, Any]]) -> None:
        infos = [self.c.publish(t, orjson.dumps(p), qos=1) for t, p in messages]
        with self.acked:
            assert self.acked.wait_for(lambda: all(i.mid in self.acks for i in infos), 30), "no PUBACKs"
            assert {self.acks[i.mid] for i in infos} == {0}

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def connect_when_allowed(port: int, user: str, password: str) -> Client:
    """A new credential works once the broker has reloaded its files (SIGHUP is asynchronous)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return Client(port, user, password).connect()
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def noise_station(name: str) -> dict[str, Any]:
    """A Thing whose Datastream is not air quality: no derived indices join the Observations counted here."""
    body = station_body(name)
    ds = body["Datastreams"][0]
    ds["name"] = f"Noise {name}"
    ds["unitOfMeasurement"] = {"name": "decibel", "symbol": "dB", "definition": "http://qudt.org/vocab/unit/DeciB"}
    ds["ObservedProperty"] = {"name": "Noise", "definition": "http://example.org/noise", "description": "noise"}
    return body


def add_station(client: TestClient, name: str) -> tuple[int, int]:
    r = client.post("/v1.1/Things", json=noise_station(name))
    assert r.status_code == 201, r.text
    thing = r.json()["@iot.id"]
    return thing, client.get(f"/v1.1/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]


def count(client: TestClient, ds: int) -> int:
    return int(client.get(f"/v1.1/Datastreams({ds})/Observations?$count=true&$top=0").json()["@iot.count"])


def health(client: TestClient) -> dict[str, Any]:
    data: dict[str, Any] = client.get("/healthz").json()
    return data


T0 = datetime(2026, 11, 20, tzinfo=UTC)


def at(k: int) -> str:
    return (T0 + timedelta(seconds=k)).isoformat().replace("+00:00", "Z")


def obs(k: int) -> dict[str, Any]:
    return {"phenomenonTime": at(k), "result": k}


def generate_files(data_dir: Path, out: Path, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(cli, ["mqtt", "acl", "--data-dir", str(data_dir), "-o", str(out)], env=env)
    assert result.exit_code == 0, result.output
    return (out / ACL_FILE).read_text()


class Site:
    """A store with two Things (A, B), a hub credential and a device credential for A, the broker's files
    generated by `cityhub mqtt acl`, and that broker running."""

    def __init__(self, tmp: Path, *, anonymous_read: bool = True, allow_anonymous: bool = False, **env: str) -> None:
        self.data = tmp / "var"
        self.acl_dir = tmp / "broker"
        settings = Settings(data_dir=self.data)
        with TestClient(create_app(settings)) as client:
            client.headers["Authorization"] = f"Bearer {KeyStore(settings.keys_path).create('admin', 't')}"
            self.thing_a, self.ds_a = add_station(client, "A")
            self.thing_b, self.ds_b = add_station(client, "B")
        creds = CredentialStore(credentials_path(self.data))
        self.hub_user, self.hub_password = creds.create("hub")
        self.dev_user, self.dev_password = creds.create("device", self.thing_a)
        self.reader_user, self.reader_password = creds.create("reader")
        self.env = {"CITYHUB_ANONYMOUS_READ": str(anonymous_read).lower(), **env}
        self.acl = generate_files(self.data, self.acl_dir, self.env)
        self.broker = Broker(tmp, self.acl_dir, allow_anonymous=allow_anonymous)
        self.client_id = f"hub-{uuid.uuid4().hex[:8]}"

    def settings(self, **kw: Any) -> Settings:
        return Settings(
            data_dir=self.data,
            mqtt_url=self.broker.url,
            mqtt_client_id=self.client_id,
            mqtt_username=self.hub_user,
            mqtt_password=self.hub_password,
            **kw,
        )

    def device(self) -> Client:
        return Client(self.broker.port, self.dev_user, self.dev_password).connect()


@pytest.fixture
def make_site(tmp_path: Path) -> Iterator[Callable[..., Site]]:
    sites: list[Site] = []

    def make(**kw: Any) -> Site:
        sites.append(Site(tmp_path, **kw))
        return sites[-1]

    try:
        yield make
    finally:
        for s in sites:
            s.broker.stop()


@pytest.fixture
def site(make_site: Callable[..., Site]) -> Site:
    return make_site()


def hub_client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings))


def admin(client: TestClient, settings: Settings) -> None:
    client.headers["Authorization"] = f"Bearer {KeyStore(settings.keys_path).create('admin', 'test')}"


# -- the generated files ------------------------------------------------------------------------------------
def test_generated_files_scope_each_user(tmp_path: Path) -> None:
    creds = CredentialStore(credentials_path(tmp_path))
    user, password = creds.create("device", 7)
    (hashed,) = [c.hash for c in creds.active()]
    assert hashed.startswith("$7$") and check_password(password, hashed) and not check_password("x", hashed)
    assert "hash" not in creds.list()[0]
    from cityhub.mqtt.acl import DatastreamRef
    from cityhub.mqtt.mappings import mapping_from_dict

    refs = [DatastreamRef(3, 7, "PM2.5 HoanKiem"), DatastreamRef(4, 8, "PM2.5 LongBien")]
    mappings = Mappings([mapping_from_dict({"topic": "hanoi/+station/pm25", "datastream": "PM2.5 {station}"}, "m")])
    passwd, acl = render(creds.active(), refs, mappings, anonymous_read=False)
    assert passwd == f"{user}:{hashed}\n"
    own = acl.split(f"user {user}\n")[1]
    assert "topic write v1.1/Datastreams(3)/Observations" in own
    assert "topic write hanoi/HoanKiem/pm25" in own
    assert "Datastreams(4)" not in acl and "LongBien" not in acl
    assert "topic read v1.1/#" not in acl  # anonymous reads off
    _, open_acl = render(creds.active(), refs, mappings, anonymous_read=True)
    assert open_acl.split("\nuser ")[0].rstrip().endswith("topic read v1.1/#")  # before any user: anonymous


def test_mosquitto_accepts_our_password_hashes(tmp_path: Path) -> None:
    """The `$7$` hash is what mosquitto_passwd writes: a password file of ours lets the right password in."""
    creds = CredentialStore(credentials_path(tmp_path / "var"))
    user, password = creds.create("reader")
    generate_files(tmp_path / "var", tmp_path / "broker")
    broker = Broker(tmp_path, tmp_path / "broker", allow_anonymous=False)
    try:
        Client(broker.port, user, password).connect().close()
        with pytest.raises(ConnectionRefusedError):
            Client(broker.port, user, password + "x").connect()
    finally:
        broker.stop()


# -- authorization -------------------------------------------------------------------------------------------
def test_device_writes_its_own_datastream_and_no_other(site: Site) -> None:
    settings = site.settings(mqtt_authorize=True)
    with hub_client(settings) as client:
        admin(client, settings)
        wait_for(lambda: health(client)["mqtt"]["connected"], what="the hub to connect")
        dev = site.device()
        try:
            assert dev.publish(f"v1.1/Datastreams({site.ds_a})/Observations", obs(1)) == 0
            # Thing B's Datastream: the broker refuses it (MQTT 5 PUBACK "not authorized") and drops it.
            assert dev.publish(f"v1.1/Datastreams({site.ds_b})/Observations", obs(2)) == NOT_AUTHORIZED
            # Nor may a device name a Datastream inside the payload, or publish where the hub publishes.
            body = {**obs(3), "Datastream": {"@iot.id": site.ds_a}}
            assert dev.publish("v1.1/Observations", body) == NOT_AUTHORIZED
            assert dev.publish("v1.1/Things", {"name": "x"}) == NOT_AUTHORIZED
        finally:
            dev.close()
        wait_for(lambda: count(client, site.ds_a) == 1, what="the device's Observation")
        # The hub's own check, for what gets past a broker (a stale ACL; here the hub's user on another client
        # id): Thing B has no device credential, and a payload's Datastream link is not checkable by the broker.
        other = Client(site.broker.port, site.hub_user, site.hub_password).connect()
        try:
            assert other.publish(f"v1.1/Datastreams({site.ds_b})/Observations", obs(4)) == 0
            assert other.publish("v1.1/Observations", {**obs(5), "Datastream": {"@iot.id": site.ds_b}}) == 0
        finally:
            other.close()
        dead = wait_for(
            lambda: (lambda d: d if d["count"] >= 2 else None)(client.get("/api/v1/deadletters").json()),
            what="two dead letters",
        )
        reasons = " | ".join(d["reason"] for d in dead["value"])
        assert f"no MQTT device credential may write Datastream {site.ds_b}" in reasons
        assert "the broker's ACL cannot check the Datastream named inside a payload" in reasons
        assert count(client, site.ds_b) == 0
        assert count(client, site.ds_a) == 1
        assert health(client)["mqtt"]["dead_letters"] == 2


def test_hub_keeps_the_acl_current(tmp_path: Path) -> None:
    """With mqtt_acl_dir the hub rewrites the files when Datastreams or credentials change and signals the
    broker (SIGHUP), so a new device can publish to a Datastream created a moment ago."""
    data, acl_dir = tmp_path / "var", tmp_path / "broker"
    creds = CredentialStore(credentials_path(data))
    hub_user, hub_password = creds.create("hub")
    generate_files(data, acl_dir)
    broker = Broker(tmp_path, acl_dir, allow_anonymous=False)
    settings = Settings(
        data_dir=data,
        mqtt_url=broker.url,
        mqtt_client_id=f"hub-{uuid.uuid4().hex[:8]}",
        mqtt_username=hub_user,
        mqtt_password=hub_password,
        mqtt_authorize=True,
        mqtt_acl_dir=str(acl_dir),
        mqtt_broker_pid_file=str(broker.pid_file),
    )
    try:
        with hub_client(settings) as client:
            admin(client, settings)
            wait_for(lambda: health(client)["mqtt"]["connected"], what="the hub to connect")
            thing, ds = add_station(client, "C")
            user, password = creds.create("device", thing)
            topic = f"v1.1/Datastreams({ds})/Observations"
            wait_for(lambda: f"topic write {topic}" in (acl_dir / ACL_FILE).read_text(), what="the ACL rewritten")
            dev = connect_when_allowed(broker.port, user, password)
            try:
                assert wait_for(lambda: dev.publish(topic, obs(1)) == 0, what="the broker to reload its ACL")
            finally:
                dev.close()
            wait_for(lambda: count(client, ds) == 1, what="the Observation")
            assert health(client)["mqtt"]["acl_writes"] >= 1
    finally:
        broker.stop()


def test_anonymous_subscribers_read_nothing_when_anonymous_read_is_off(make_site: Callable[..., Site]) -> None:
    """Even a broker that lets anonymous clients connect: the ACL gives them nothing to read, and the hub
    republishes only under the private prefix, which reader credentials may read."""
    site = make_site(anonymous_read=False, allow_anonymous=True, CITYHUB_MQTT_PRIVATE_PREFIX="private/")
    assert "topic read v1.1/#" not in site.acl
    settings = site.settings(anonymous_read=False, mqtt_private_prefix="private/", mqtt_publish="datastreams,entities")
    with hub_client(settings) as client:
        admin(client, settings)
        wait_for(lambda: health(client)["mqtt"]["connected"], what="the hub to connect")
        anon = Client(site.broker.port).connect()
        reader = Client(site.broker.port, site.reader_user, site.reader_password).connect()
        dev = site.device()
        try:
            anon.subscribe("#")
            anon.subscribe("v1.1/#")
            anon.subscribe("private/#")
            reader.subscribe("private/#")
            assert dev.publish(f"v1.1/Datastreams({site.ds_a})/Observations", obs(1)) == 0
            r = client.post(f"/v1.1/Datastreams({site.ds_a})/Observations", json=obs(2))
            assert r.status_code == 201
            client.post("/v1.1/Things", json={"name": "new", "description": "an entity change"})
            topic = f"private/v1.1/Datastreams({site.ds_a})/Observations"
            wait_for(
                lambda: (
                    len([p for t, p in reader.messages if t == topic]) == 2
                    and any(t == "private/v1.1/Things" for t, _ in reader.messages)
                ),
                what="the reader to get both Observations and the new Thing",
            )
            # A round trip after the hub's messages reached the reader: anything the broker had queued for the
            # anonymous client would have arrived before this SUBACK.
            anon.subscribe("v1.1/+/Observations")
            assert anon.messages == []
            assert not any(t.startswith("v1.1/") for t, _ in reader.messages)
        finally:
            for c in (anon, reader, dev):
                c.close()


def test_no_republication_without_a_private_prefix_when_anonymous_read_is_off(tmp_path: Path) -> None:
    """The hub cannot see the broker's ACL, so with anonymous reads off and no private prefix it publishes
    nothing at all rather than where anonymous subscribers might read."""
    settings = Settings(
        data_dir=tmp_path / "var", mqtt_url=f"mqtt://127.0.0.1:{free_port()}", mqtt_client_id="x", anonymous_read=False
    )
    with hub_client(settings) as client:
        bridge = client.app.state.hub.mqtt  # type: ignore[attr-defined]
        assert bridge.republish is False and bridge.publish == set()
        assert [subject for subject, _ in bridge.subscriptions()] == []


# -- supervision -------------------------------------------------------------------------------------------
def test_kill_9_of_the_mqtt_process(site: Site) -> None:
    """/healthz reports MQTT down while the process is dead; it is restarted; QoS 1 messages published during
    the outage are stored after the restart, and nothing is stored twice."""
    settings = site.settings(mqtt_restart_delay_s=3.0)  # a window long enough to publish in
    with hub_client(settings) as client:
        admin(client, settings)
        first = wait_for(lambda: (lambda h: h if h["mqtt"]["connected"] else None)(health(client)), what="connect")
        assert first["status"] == "ok"
        pid = first["mqtt"]["process_pid"]
        topic = f"v1.1/Datastreams({site.ds_a})/Observations"
        dev = site.device()
        try:
            dev.publish_all([(topic, obs(k)) for k in range(300)])
            wait_for(lambda: health(client)["mqtt"]["stored"] > 0, what="the first commits")
            os.kill(pid, signal.SIGKILL)
            down = wait_for(lambda: (lambda h: h if h["status"] != "ok" else None)(health(client)), what="down")
            assert down["status"] == "degraded"
            assert "mqtt" in down["reason"] and "SIGKILL" in down["reason"], down
            assert down["mqtt"]["process_up"] is False and down["mqtt"]["connected"] is False
            dev.publish_all([(topic, obs(k)) for k in range(300, 600)])  # queued by the broker for the hub
        finally:
            dev.close()
        up = wait_for(
            lambda: (lambda h: h if h["status"] == "ok" and h["mqtt"]["connected"] else None)(health(client)),
            what="the restarted process to connect",
        )
        assert up["mqtt"]["process_pid"] != pid and up["mqtt"]["restarts"] == 1
        wait_for(lambda: count(client, site.ds_a) >= 600, timeout=30, what="600 Observations")
        got = client.get(f"/v1.1/Datastreams({site.ds_a})/Observations?$top=1000&$select=result").json()["value"]
        assert sorted(o["result"] for o in got) == list(range(600))
        assert health(client)["mqtt"]["dead_letters"] == 0


def rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the MQTT process's memory from /proc")
def test_republication_is_bounded_when_the_broker_stalls(site: Site) -> None:
    """A burst of 300,000 Observations while the broker reads nothing (SIGSTOP): the MQTT process's peak
    memory stays within a bound, and what could not be queued is counted, not silently lost."""
    limit, burst = 20_000, 300_000
    settings = site.settings(mqtt_publish="datastreams", mqtt_publish_queue=limit)
    with hub_client(settings) as client:
        admin(client, settings)
        pid = wait_for(lambda: (lambda m: m["connected"] and m["process_pid"])(health(client)["mqtt"]), what="up")
        warm = "".join(f"{site.ds_a},2026-01-01T00:00:{k:02d}Z,{k}\n" for k in range(50))
        assert client.post("/api/v1/ingest", content="datastream,phenomenonTime,result\n" + warm,
                           headers={"Content-Type": "text/csv"}).status_code == 200  # fmt: skip
        wait_for(lambda: health(client)["mqtt"]["published"] == 50, what="a first republication")
        before = rss_kb(pid, "VmRSS")
        site.broker.proc.send_signal(signal.SIGSTOP)
        try:
            for start in range(0, burst, 100_000):
                body = "datastream,phenomenonTime,result\n" + "".join(
                    f"{site.ds_a},{at(k)},{k}\n" for k in range(start, start + 100_000)
                )
                r = client.post("/api/v1/ingest", content=body, headers={"Content-Type": "text/csv"})
                assert r.status_code == 200, r.text
            stalled = wait_for(lambda: (lambda m: m if m["publish_dropped"] else None)(health(client)["mqtt"]),
                               what="drops to be counted")  # fmt: skip
            assert stalled["publish_queued"] <= limit
            peak = rss_kb(pid, "VmHWM")
        finally:
            site.broker.proc.send_signal(signal.SIGCONT)
        # Unbounded, the process held every formatted message: about 100 MB for this burst.
        assert peak - before < 48 * 1024, str((before, peak, stalled, health(client)["mqtt"]))
        done = wait_for(
            lambda: (lambda m: m if m["published"] + m["publish_dropped"] == 50 + burst else None)(
                health(client)["mqtt"]
            ),
            timeout=60,
            what=f"every message published or counted as dropped: {health(client)['mqtt']}",
        )
        assert done["publish_dropped"] > 0 and done["published"] > 50
        assert count(client, site.ds_a) == 50 + burst  # ingestion never waited for republication
