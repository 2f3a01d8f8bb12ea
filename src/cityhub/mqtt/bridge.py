"""The MQTT bridge: the SensorThings MQTT extension and topic mappings, over an external broker.

Devices PUBLISH an Observation (JSON, as they would POST it) to ``v1.1/Datastreams(<id>)/Observations``, or to
``v1.1/Observations`` with a ``Datastream`` link. Devices that cannot speak SensorThings publish to their own
topics, mapped to Datastreams by a YAML file (:mod:`cityhub.mqtt.mappings`). Either way a message goes
through the same validation and group-commit writer as an HTTP POST, and a QoS 1 message is acknowledged to
the broker only after its Observation (or its dead letter) is committed: a crash before the commit makes the
broker deliver it again, and the store's natural key turns the redelivery into a no-op.

The hub keeps a persistent session (MQTT 5, ``clean_start=False``, a fixed client id), so the broker queues
QoS 1 messages published while the hub is down (up to the broker's ``max_queued_messages``).

Every committed Observation, whatever way it came in, is published to ``v1.1/Datastreams(<id>)/Observations``
(and ``v1.1/Observations`` if asked) as the entity a GET returns (with ``@iot.id`` and ``@iot.selfLink``);
created or updated entities to ``v1.1/<EntitySet>`` and ``v1.1/<EntitySet>(<id>)``. The hub subscribes with
MQTT 5's No Local option so it never hears itself, and ignores messages that carry an ``@iot.id``.

The connection itself lives in a child process (:mod:`cityhub.mqtt.child`), so that the MQTT protocol work
runs on another core than validation and commits.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from cityhub import model
from cityhub.bus import ALERTS, ENTITIES, OBSERVATIONS, AlertEvent, EntityChanged, Event, Handler, on_observations
from cityhub.errors import ProblemError
from cityhub.ingest import deadletters
from cityhub.ingest import observations as obsin
from cityhub.ipc import table_to_ipc
from cityhub.mqtt.child import OBSERVATIONS_TOPIC, BrokerAddress, IoConfig, io_main
from cityhub.mqtt.mappings import Mappings, load_mappings

if TYPE_CHECKING:
    from cityhub.config import Settings
    from cityhub.core import Core

__all__ = ["BrokerAddress", "MqttBridge", "check_settings"]

log = logging.getLogger(__name__)

DATASTREAM_TOPIC = re.compile(r"^v1\.1/Datastreams\((\d+)\)/Observations$")
_FAST_KEYS = frozenset({"phenomenonTime", "result", "resultTime"})


@dataclass
class Message:
    topic: str
    payload: bytes
    qos: int
    mid: int
    ts: float  # received by the I/O process, Unix seconds

    @property
    def received_at(self) -> datetime:
        return datetime.fromtimestamp(self.ts, UTC)


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


def _dead(m: Message, reason: str, field: str | None) -> deadletters.DeadLetter:
    return deadletters.DeadLetter("mqtt", m.topic, m.payload, reason, field, m.received_at)


def publish_set(text: str) -> set[str]:
    """Parse CITYHUB_MQTT_PUBLISH; ValueError names what is unknown."""
    chosen = {p.strip() for p in text.split(",") if p.strip()} - {"none"}
    unknown = chosen - {"datastreams", "observations", "entities"}
    if unknown:
        raise ValueError(f"MQTT publish: unknown {sorted(unknown)}; use datastreams, observations, entities or none")
    return chosen


def check_settings(settings: Settings) -> None:
    """Fail early (before serving) on a bad broker URL, mappings file or publish list."""
    assert settings.mqtt_url
    BrokerAddress.parse(settings.mqtt_url)
    publish_set(settings.mqtt_publish)
    if settings.mqtt_mappings:
        load_mappings(settings.mqtt_mappings)


class _Publisher:
    """``hub.mqtt.client.publish(topic, payload, qos)`` for other modules (alerts): sent by the I/O process."""

    def __init__(self, bridge: MqttBridge) -> None:
        self.bridge = bridge

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        self.bridge._send(("pub", [(topic, data)], qos))


class MqttBridge:
    """The MQTT side of ``cityhub serve``: ingest from the broker, publish what the hub stores."""

    name = "mqtt"

    def __init__(self, hub: Core) -> None:
        s = hub.settings
        assert s.mqtt_url
        self.hub = hub
        self.address = BrokerAddress.parse(s.mqtt_url)
        self.mappings: Mappings = load_mappings(s.mqtt_mappings) if s.mqtt_mappings else Mappings([])
        self.publish_qos = s.mqtt_publish_qos
        self.publish = publish_set(s.mqtt_publish)
        self.base = s.base_url + "/v1.1"
        self.stats = BridgeStats()
        self.client = _Publisher(self)
        self.config = IoConfig(
            host=self.address.host,
            port=self.address.port,
            client_id=s.mqtt_client_id,
            topics=(OBSERVATIONS_TOPIC, "v1.1/+/Observations", *self.mappings.filters()),
            username=s.mqtt_username or self.address.username,
            password=s.mqtt_password or self.address.password,
            tls=self.address.tls,
            ca_file=str(s.mqtt_ca_file) if s.mqtt_ca_file else None,
            cert_file=str(s.mqtt_cert_file) if s.mqtt_cert_file else None,
            key_file=str(s.mqtt_key_file) if s.mqtt_key_file else None,
            tls_insecure=s.mqtt_tls_insecure,
        )
        self._topic_ids: dict[str, int] = {}
        self._stop = threading.Event()
        self._send_lock = threading.Lock()
        self._outbox: queue.Queue[Any] = queue.Queue(maxsize=10_000)
        ctx = mp.get_context("spawn")  # a clean interpreter: no copy of the hub's threads or DuckDB handles
        self._conn, child_conn = ctx.Pipe(duplex=True)
        self._proc = ctx.Process(target=io_main, args=(child_conn, self.config), name="cityhub-mqtt", daemon=True)
        self._child_conn = child_conn
        self._worker = threading.Thread(target=self._run, name="mqtt-ingest", daemon=True)
        self._publisher = threading.Thread(target=self._publish_loop, name="mqtt-publish", daemon=True)

    def subscriptions(self) -> list[tuple[str, Handler]]:
        subs: list[tuple[str, Handler]] = [(ALERTS, self._on_alert)]
        if self.publish & {"datastreams", "observations"}:
            subs.append((OBSERVATIONS, on_observations(self._on_commit)))
        if "entities" in self.publish:
            subs.append((ENTITIES, self._on_entity))
        return subs

    def start(self) -> None:
        self._proc.start()
        self._child_conn.close()  # the child's end lives in the child: EOF here when it dies, and there when we do
        self._worker.start()
        self._publisher.start()
        log.info("MQTT bridge connecting to %s:%d", self.address.host, self.address.port)

    def stop_ingest(self) -> None:
        """Stop taking messages from the broker; what was taken is committed and acknowledged first."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._send(("pause",))
        if self._worker.is_alive():
            self._worker.join()

    def stop(self) -> None:
        """After the other domains stopped: announce what is still queued, then end the I/O process."""
        self.stop_ingest()
        self._outbox.put(None)
        self._publisher.join()
        self._send(("stop",))
        self._proc.join(timeout=10)  # the child only flushes its sockets now; a wedged one is killed
        if self._proc.is_alive():
            self._proc.kill()
        self._conn.close()

    def close(self) -> None:
        self.stop()

    def _send(self, item: Any) -> None:
        try:
            with self._send_lock:
                self._conn.send(item)
        except (OSError, ValueError) as exc:  # the I/O process is gone; _run says so
            self.stats.last_error = f"MQTT process unreachable: {exc}"

    # -- ingest ----------------------------------------------------------------------------------------
    def _next_batch(self) -> list[Message] | None:
        """Ask the I/O process for the next batch; None when it has gone (stop, or it died)."""
        self._send(("next",))
        while True:
            try:
                kind, *rest = self._conn.recv()
            except (EOFError, OSError):
                return None
            if kind == "msgs":
                return [Message(*raw) for raw in rest[0]]
            if kind == "status":
                info = rest[0]
                if info.get("connected") and not self.stats.connected:
                    self.stats.connects += 1
                    log.info("MQTT bridge connected (session present: %s)", info.get("session_present"))
                elif not info.get("connected") and self.stats.connected and not self._stop.is_set():
                    log.warning("MQTT bridge disconnected (%s); reconnecting", info.get("last_error"))
                self.stats.connected = bool(info.get("connected"))
                if info.get("last_error"):
                    self.stats.last_error = info["last_error"]
            elif kind == "published":
                self.stats.published += rest[0]

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._next_batch()
            if self._stop.is_set() and not batch:
                return
            if batch is None:
                self.stats.connected = False
                if not self._stop.is_set():
                    self.stats.last_error = "the MQTT process exited"
                    log.error("the MQTT process exited; MQTT ingestion stopped")
                return
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
                future = self.hub.pipeline.writer.submit(table, all_or_nothing=False)
                pending.append((future, table.column("id").to_pylist(), msgs))
        if slow:
            rows, origin = self._rows_slow(slow, dead)
            if rows:
                future = self.hub.pipeline.submit_rows(rows, all_or_nothing=False)
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
        # In the order received, as MQTT asks, and only now that everything is committed.
        self._send(("ack", [(m.mid, m.qos) for m in batch if m.qos > 0]))
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
        max_future = self.hub.settings.max_future
        v = obsin.resolve_features(
            obsin.validate(raw, catalog.table(), max_future=max_future, lookup=catalog.lookup), catalog
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

    def _on_alert(self, event: Event) -> None:
        if isinstance(event, AlertEvent):
            topic = f"cityhub/alerts/{event.rule_id}/{event.subject_type}/{event.subject_id}"
            self.client.publish(topic, event.payload, qos=1)

    def _on_entity(self, event: Event) -> None:
        if not isinstance(event, EntityChanged) or event.op == "deleted":
            return
        try:
            self._outbox.put_nowait((model.BY_PLURAL[event.entity_set], event.entity_id))
        except queue.Full:
            self.stats.last_error = "publish queue full: an entity change was not announced over MQTT"

    def _publish_loop(self) -> None:
        per_ds, firehose = "datastreams" in self.publish, "observations" in self.publish
        while True:
            item = self._outbox.get()
            if item is None:
                return
            try:
                if isinstance(item, tuple):
                    et, entity_id = item
                    payload = orjson.dumps(self.hub.sensorthings._fetch(self.base, et, entity_id))
                    topics = (f"v1.1/{et.plural}", f"v1.1/{et.plural}({entity_id})")
                    self._send(("pub", [(t, payload) for t in topics], self.publish_qos))
                else:
                    tables = [item]
                    while len(tables) < 64:  # one message to the I/O process for whatever has queued up
                        try:
                            nxt = self._outbox.get_nowait()
                        except queue.Empty:
                            break
                        if nxt is None or isinstance(nxt, tuple):
                            self._outbox.put(nxt)
                            break
                        tables.append(nxt)
                    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
                    self._send(("obs", table_to_ipc(table), self.base, per_ds, firehose, self.publish_qos))
            except Exception as exc:  # subscribers are best effort; keep going
                self.stats.last_error = f"publish: {type(exc).__name__}: {exc}"
                log.exception("MQTT publish failed")
