"""The MQTT bridge: the SensorThings MQTT extension and topic mappings, over an external broker.

Devices PUBLISH an Observation (JSON, as they would POST it) to ``v1.1/Datastreams(<id>)/Observations``, or to
``v1.1/Observations`` with a ``Datastream`` link. Devices that cannot speak SensorThings publish to their own
topics, mapped to Datastreams by a YAML file (:mod:`cityhub.ingest.mappings`). Either way a message goes
through the same validation and group-commit writer as an HTTP POST, and a QoS 1 message is acknowledged to
the broker only after its Observation (or its dead letter) is committed: a crash before the commit makes the
broker deliver it again, and the store's natural key turns the redelivery into a no-op.

The hub keeps a persistent session (MQTT 5, ``clean_start=False``, a fixed client id), so the broker queues
QoS 1 messages published while the hub is down (up to the broker's ``max_queued_messages``).

Every committed Observation, whatever way it came in, is published to ``v1.1/Datastreams(<id>)/Observations``
and ``v1.1/Observations`` as the entity a GET returns (with ``@iot.id`` and ``@iot.selfLink``); created or
updated entities to ``v1.1/<EntitySet>`` and ``v1.1/<EntitySet>(<id>)``. The hub subscribes with MQTT 5's
No Local option so it never hears itself, and ignores messages that carry an ``@iot.id``.
"""

from __future__ import annotations

import logging
import queue
import re
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import orjson
import paho.mqtt.client as mqtt
import pyarrow as pa
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from cityhub.errors import ProblemError
from cityhub.ingest import deadletters
from cityhub.ingest import observations as obsin
from cityhub.ingest.mappings import Mappings, load_mappings
from cityhub.ingest.mqtt_out import publish_batch
from cityhub.sensorthings import model
from cityhub.sensorthings.service import iso_time

if TYPE_CHECKING:
    from cityhub.app import Hub
    from cityhub.config import Settings

log = logging.getLogger(__name__)

OBSERVATIONS_TOPIC = "v1.1/Observations"
DATASTREAM_TOPIC = re.compile(r"^v1\.1/Datastreams\((\d+)\)/Observations$")
MAX_INBOX = 100_000  # messages received but not yet committed; beyond it the network thread waits (TCP back-pressure)
BATCH_WINDOW_S = 0.005  # let a burst gather into one commit
SESSION_EXPIRY_S = 7 * 24 * 3600  # how long the broker keeps the hub's queue while it is away


@dataclass
class Message:
    topic: str
    payload: bytes
    qos: int
    mid: int
    received_at: datetime


@dataclass
class BridgeStats:
    connected: bool = False
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    published: int = 0
    last_error: str | None = None
    connects: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """``mqtt://[user:pass@]host[:1883]`` or ``mqtts://host[:8883]`` (``tcp://`` and ``ssl://`` too)."""
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.scheme not in ("mqtt", "tcp", "mqtts", "ssl"):
            raise ValueError(f"MQTT URL scheme must be mqtt:// or mqtts://, not {parts.scheme}://")
        tls = parts.scheme in ("mqtts", "ssl")
        if not parts.hostname:
            raise ValueError(f"MQTT URL {url!r} has no host")
        return cls(
            parts.hostname,
            parts.port or (8883 if tls else 1883),
            tls,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )


_FAST_KEYS = frozenset({"phenomenonTime", "result", "resultTime"})


def _dead(m: Message, reason: str, field: str | None) -> deadletters.DeadLetter:
    return deadletters.DeadLetter("mqtt", m.topic, m.payload, reason, field, m.received_at)


def publish_set(text: str) -> set[str]:
    """Parse CITYHUB_MQTT_PUBLISH; ValueError names what is unknown."""
    chosen = {p.strip() for p in text.split(",") if p.strip()} - {"none"}
    unknown = chosen - {"datastreams", "observations", "entities"}
    if unknown:
        raise ValueError(f"MQTT publish: unknown {sorted(unknown)}; use datastreams, observations, entities or none")
    return chosen


def _tls_context(s: Settings) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(s.mqtt_ca_file) if s.mqtt_ca_file else None)
    if s.mqtt_cert_file:
        ctx.load_cert_chain(str(s.mqtt_cert_file), str(s.mqtt_key_file) if s.mqtt_key_file else None)
    if s.mqtt_tls_insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def check_settings(settings: Settings) -> None:
    """Fail early (before serving) on a bad broker URL, mappings file or publish list."""
    assert settings.mqtt_url
    BrokerAddress.parse(settings.mqtt_url)
    publish_set(settings.mqtt_publish)
    if settings.mqtt_mappings:
        load_mappings(settings.mqtt_mappings)


class MqttBridge:
    """One MQTT client inside ``cityhub serve``: ingest from the broker, publish what the hub stores."""

    def __init__(self, hub: Hub) -> None:
        s = hub.settings
        assert s.mqtt_url
        self.hub = hub
        self.address = BrokerAddress.parse(s.mqtt_url)
        self.mappings: Mappings = load_mappings(s.mqtt_mappings) if s.mqtt_mappings else Mappings([])
        self.publish_qos = s.mqtt_publish_qos
        self.publish = publish_set(s.mqtt_publish)
        self.base = s.base_url + "/v1.1"
        self.stats = BridgeStats()
        self._inbox: list[Message] = []
        self._topic_ids: dict[str, int] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._outbox: queue.Queue[Any] = queue.Queue(maxsize=10_000)
        self.tls = _tls_context(s) if self.address.tls or s.mqtt_ca_file else None
        self.client = self._make_client()
        self._worker = threading.Thread(target=self._run, name="mqtt-ingest", daemon=True)
        self._publisher = threading.Thread(target=self._publish_loop, name="mqtt-publish", daemon=True)

    # -- connection ------------------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        s = self.hub.settings
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=s.mqtt_client_id, protocol=mqtt.MQTTv5, manual_ack=True)
        user = s.mqtt_username or self.address.username
        if user:
            c.username_pw_set(user, s.mqtt_password or self.address.password)
        if self.tls is not None:
            c.tls_set_context(self.tls)
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(1, 30)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        return c

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = 65535  # QoS 1 messages in flight to us: acks wait for the group commit
        self._worker.start()
        self._publisher.start()
        if self.publish & {"datastreams", "observations"}:
            self.hub.writer.add_listener(self._on_commit)
        if "entities" in self.publish:
            self.hub.sensorthings.entity_listeners.append(self._on_entity)
        # Asynchronous: the hub serves HTTP even when the broker is down, and keeps trying.
        self.client.connect_async(
            self.address.host, self.address.port, keepalive=30, clean_start=False, properties=props
        )
        self.client.loop_start()
        log.info("MQTT bridge connecting to %s:%d", self.address.host, self.address.port)

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._worker.join(timeout=10)
        self._outbox.put(None)
        self._publisher.join(timeout=5)
        self.client.disconnect()
        self.client.loop_stop()

    def topics(self) -> list[str]:
        return [OBSERVATIONS_TOPIC, "v1.1/+/Observations", *self.mappings.filters()]

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.stats.last_error = f"connect refused: {reason}"
            log.error("MQTT broker refused the connection: %s", reason)
            return
        self.stats.connected = True
        self.stats.connects += 1
        opts = SubscribeOptions(qos=1, noLocal=True)
        client.subscribe([(t, opts) for t in self.topics()])
        log.info("MQTT bridge connected (session present: %s)", getattr(flags, "session_present", "?"))

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.stats.connected = False
        if not self._stop.is_set():
            log.warning("MQTT bridge disconnected (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        m = Message(msg.topic, msg.payload, msg.qos, msg.mid, datetime.now(UTC))
        with self._cond:
            while len(self._inbox) >= MAX_INBOX and not self._stop.is_set():
                self._cond.wait(0.1)  # stop reading the socket: the broker holds the rest
            self._inbox.append(m)
            self._cond.notify_all()

    # -- ingest ----------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while not self._inbox and not self._stop.is_set():
                    self._cond.wait(0.5)
            time.sleep(BATCH_WINDOW_S)
            with self._cond:
                batch, self._inbox = self._inbox, []
                self._cond.notify_all()
            if not batch:
                continue
            delay = 0.5
            while not self._stop.is_set():
                try:
                    self._ingest(batch)
                    break
                except Exception as exc:  # storage trouble: keep the messages unacknowledged and retry
                    self.stats.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("MQTT batch of %d messages not stored; retrying in %.1f s", len(batch), delay)
                    self._stop.wait(delay)
                    delay = min(delay * 2, 30)

    def _ingest(self, batch: list[Message]) -> None:
        dead: list[deadletters.DeadLetter] = []
        fast, slow = self._split(batch)
        pending: list[tuple[Any, Any, list[Message]]] = []  # (writer future, row ids, message of each row)
        if fast:
            table, msgs, refused = self._validate_fast(fast)
            dead += refused[0]
            slow += refused[1]
            if table is not None:
                future = self.hub.writer.submit(table, all_or_nothing=False)
                pending.append((future, table.column("id").to_pylist(), msgs))
        if slow:
            rows, origin = self._rows_slow(slow, dead)
            if rows:
                future = self.hub.writer.submit(rows, all_or_nothing=False)
                pending.append((future, [r["id"] for r in rows], origin))
        stored = dups = 0
        for future, ids, msgs in pending:
            result = future.result()
            stored += len(result.inserted)
            dups += len(result.duplicate_of) - len(result.conflicting)
            if result.conflicting:
                by_id = dict(zip(ids, msgs, strict=True))
                for row_id in sorted(result.conflicting):
                    reason = (
                        f"the Datastream already has Observation {result.duplicate_of[row_id]} at this "
                        "phenomenonTime with another result"
                    )
                    dead.append(_dead(by_id[row_id], reason, "phenomenonTime"))
        deadletters.record(self.hub.store, dead)
        for m in batch:  # in the order received, as MQTT asks
            if m.qos > 0:
                self.client.ack(m.mid, m.qos)
        self.stats.received += len(batch)
        self.stats.stored += stored
        self.stats.duplicates += dups
        self.stats.dead_letters += len(dead)

    def _split(self, batch: list[Message]) -> tuple[list[tuple[Message, int, dict[str, Any]]], list[Message]]:
        """The common case (a Datastream topic, a JSON object of phenomenonTime, a numeric result and maybe
        resultTime) is validated for the whole batch at once; everything else one by one."""
        fast: list[tuple[Message, int, dict[str, Any]]] = []
        slow: list[Message] = []
        topic_ids = self._topic_ids
        for m in batch:
            ds_id = topic_ids.get(m.topic)
            if ds_id is None:
                match = DATASTREAM_TOPIC.match(m.topic)
                if match is None or len(match.group(1)) > 18:
                    slow.append(m)
                    continue
                ds_id = topic_ids[m.topic] = int(match.group(1))
                if len(topic_ids) > 1_000_000:
                    topic_ids.clear()
            try:
                body = orjson.loads(m.payload)
            except orjson.JSONDecodeError:
                slow.append(m)
                continue
            if (
                type(body) is dict
                and body.keys() <= _FAST_KEYS
                and type(body.get("result")) in (int, float)
                and type(body.get("phenomenonTime")) is str
                and "/" not in body["phenomenonTime"]
            ):
                fast.append((m, ds_id, body))
            else:
                slow.append(m)
        return fast, slow

    def _validate_fast(
        self, fast: list[tuple[Message, int, dict[str, Any]]]
    ) -> tuple[pa.Table | None, list[Message], tuple[list[deadletters.DeadLetter], list[Message]]]:
        raw = pa.table(
            {
                "datastream": pa.array([ds for _, ds, _ in fast], pa.int64()),
                "phenomenonTime": pa.array([b["phenomenonTime"] for _, _, b in fast], pa.string()),
                "result": pa.array([float(b["result"]) for _, _, b in fast], pa.float64()),
                "resultTime": pa.array([b.get("resultTime") for _, _, b in fast], pa.string()),
            }
        )
        catalog = self.hub.catalog
        v = obsin.resolve_features(
            obsin.validate(raw, catalog.table(), max_future=self.hub.settings.max_future), catalog
        )
        dead = [_dead(fast[e["index"]][0], f"{e['field']} {e['reason']}", e["field"]) for e in v.bad]
        again: list[Message] = []
        if v.bad_count > len(v.bad):  # more refusals than validate lists: let the slow path say why
            seen = set(v.good_index.tolist()) | {e["index"] for e in v.bad}
            again = [m for k, (m, _, _) in enumerate(fast) if k not in seen]
        if not v.good.num_rows:
            return None, [], (dead, again)
        ids = self.hub.store.allocate_ids("observations", v.good.num_rows)
        msgs = [fast[k][0] for k in v.good_index.tolist()]
        return obsin.with_ids(v.good, ids), msgs, (dead, again)

    def _rows_slow(
        self, slow: list[Message], dead: list[deadletters.DeadLetter]
    ) -> tuple[list[dict[str, Any]], list[Message]]:
        st = self.hub.sensorthings
        rows: list[dict[str, Any]] = []
        origin: list[Message] = []
        for m in slow:
            try:
                bodies = self._bodies(m)
            except ProblemError as exc:
                dead.append(_dead(m, exc.detail, exc.field))
                continue
            for body, ds_id in bodies:
                try:
                    rows.append(st.observation_row(body, ds_id))
                    origin.append(m)
                except ProblemError as exc:
                    dead.append(_dead(m, exc.detail, exc.field))
        return rows, origin

    def _bodies(self, m: Message) -> list[tuple[dict[str, Any], int | None]]:
        """The Observation bodies a message carries, with the Datastream id when the topic gives it."""
        match = DATASTREAM_TOPIC.match(m.topic)
        if match or m.topic == OBSERVATIONS_TOPIC:
            try:
                body = orjson.loads(m.payload)
            except orjson.JSONDecodeError as exc:
                raise ProblemError(400, "Bad Request", f"payload is not JSON: {exc}", field="payload") from None
            if not isinstance(body, dict):
                raise ProblemError(
                    400, "Bad Request", "payload must be a JSON object (one Observation)", field="payload"
                )
            if "@iot.id" in body:
                return []  # an entity the hub (or another hub) published: already stored
            if match:
                ds_id = int(match.group(1))
                if ds_id >= 2**63:
                    raise ProblemError(400, "Bad Request", "Datastream id is out of range", field="topic")
                return [(body, ds_id)]
            return [(body, None)]
        if m.topic.startswith("v1.1/"):
            raise ProblemError(
                400,
                "Bad Request",
                "Observations are published to v1.1/Datastreams(<id>)/Observations or v1.1/Observations",
                field="topic",
            )
        return self.mappings.bodies(m.topic, m.payload, m.received_at, self._datastream_by_name)

    def _datastream_by_name(self, name: str) -> int | None:
        return self.hub.catalog.id_by_name(name)

    # -- publishing ------------------------------------------------------------------------------------
    def _on_commit(self, batch: pa.Table) -> None:
        try:
            self._outbox.put_nowait(batch)
        except queue.Full:  # subscribers are best effort; ingestion never waits for them
            self.stats.last_error = "publish queue full: some new Observations were not announced over MQTT"

    def _on_entity(self, et: model.EntityType, entity_id: int) -> None:
        try:
            self._outbox.put_nowait((et, entity_id))
        except queue.Full:
            self.stats.last_error = "publish queue full: an entity change was not announced over MQTT"

    def _publish_loop(self) -> None:
        stop = False
        while not stop:
            first = self._outbox.get()
            items = [first]
            while len(items) < 64:  # one write for whatever has queued up
                try:
                    items.append(self._outbox.get_nowait())
                except queue.Empty:
                    break
            messages: list[tuple[str, bytes]] = []
            try:
                for item in items:
                    if item is None:
                        stop = True
                    elif isinstance(item, tuple):
                        messages += self._entity_messages(*item)
                    else:
                        messages += self._observation_messages(item)
                self._send(messages)
            except Exception as exc:  # subscribers are best effort; keep going
                self.stats.last_error = f"publish: {type(exc).__name__}: {exc}"
                log.exception("MQTT publish failed")

    def _send(self, messages: list[tuple[str, bytes]]) -> None:
        if not messages:
            return
        if self.publish_qos == 0:
            if not publish_batch(self.client, messages):
                return  # not connected: subscribers of QoS 0 get what is published while we are
        else:
            for topic, payload in messages:
                self.client.publish(topic, payload, qos=self.publish_qos)
        self.stats.published += len(messages)

    def _entity_messages(self, et: model.EntityType, entity_id: int) -> list[tuple[str, bytes]]:
        entity = self.hub.sensorthings._fetch(self.base, et, entity_id)
        payload = orjson.dumps(entity)
        return [(f"v1.1/{et.plural}", payload), (f"v1.1/{et.plural}({entity_id})", payload)]

    def _observation_messages(self, batch: pa.Table) -> list[tuple[str, bytes]]:
        cols = {c: batch.column(c).to_pylist() for c in _PUBLISHED}
        base = self.base
        per_datastream, firehose = "datastreams" in self.publish, "observations" in self.publish
        out: list[tuple[str, bytes]] = []
        for i in range(batch.num_rows):
            oid, ds = cols["id"][i], cols["datastream_id"][i]
            link = f"{base}/Observations({oid})"
            num, text, js = cols["result_number"][i], cols["result_string"][i], cols["result_json"][i]
            quality, params = cols["result_quality"][i], cols["parameters"][i]
            obs = {
                "@iot.id": oid,
                "@iot.selfLink": link,
                "phenomenonTime": iso_time(cols["phenomenon_time"][i]),
                "resultTime": iso_time(cols["result_time"][i]),
                "result": num if num is not None else text if text is not None else orjson.loads(js) if js else None,
                "resultQuality": orjson.loads(quality) if quality else None,
                "validTime": _interval(cols["valid_time_start"][i], cols["valid_time_end"][i]),
                "parameters": orjson.loads(params) if params else None,
                "Datastream@iot.navigationLink": f"{link}/Datastream",
                "FeatureOfInterest@iot.navigationLink": f"{link}/FeatureOfInterest",
            }
            payload = orjson.dumps(obs)
            if per_datastream:
                out.append((f"v1.1/Datastreams({ds})/Observations", payload))
            if firehose:
                out.append((OBSERVATIONS_TOPIC, payload))
        return out


_PUBLISHED = (
    "id",
    "datastream_id",
    "phenomenon_time",
    "result_time",
    "result_number",
    "result_string",
    "result_json",
    "parameters",
    "result_quality",
    "valid_time_start",
    "valid_time_end",
)


def _interval(start: datetime | None, end: datetime | None) -> str | None:
    return None if start is None else f"{iso_time(start)}/{iso_time(end or start)}"
