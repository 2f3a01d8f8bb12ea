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

With ``anonymous_read`` false the hub republishes only under ``mqtt_private_prefix`` (which the ACL that
:mod:`cityhub.mqtt.acl` generates keeps from anonymous clients), or nothing. With ``mqtt_authorize`` a message
for a Datastream that no device credential may write is a dead letter (see :mod:`cityhub.mqtt.acl` for why
the hub can check no more than that).

The connection itself lives in a child process (:mod:`cityhub.mqtt.child`), so that the MQTT protocol work
runs on another core than validation and commits. It is supervised: restarted with back-off when it dies,
reported by ``/healthz`` meanwhile. Republication goes through a queue bounded in messages
(``mqtt_publish_queue``); what does not fit is dropped and counted (``publish_dropped``), never waited for.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing as mp
import queue
import re
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from cityhub import model
from cityhub.bus import ALERTS, ENTITIES, OBSERVATIONS, AlertEvent, EntityChanged, Event, Handler, on_observations
from cityhub.errors import ProblemError
from cityhub.ingest import deadletters
from cityhub.ingest import observations as obsin
from cityhub.ipc import table_to_ipc
from cityhub.mqtt.acl import AclKeeper, CredentialStore, credentials_path
from cityhub.mqtt.child import (
    MAX_PUBLISH_ROWS,
    OBSERVATIONS_TOPIC,
    PUBLISH_WINDOW,
    BrokerAddress,
    IoConfig,
    RawMessage,
    io_main,
)
from cityhub.mqtt.mappings import Mappings, load_mappings
from cityhub.mqtt.queries import QueryTopics
from cityhub.sensorthings.service.paths import parse_path
from cityhub.sensorthings.service.write import new_stream

if TYPE_CHECKING:
    from cityhub.config import Settings
    from cityhub.core import Core

__all__ = ["BrokerAddress", "MqttBridge", "check_settings"]

log = logging.getLogger(__name__)

# Tasking Core over MQTT: an operator's client publishes a Task as it would POST it (served with CITYHUB_TASKING).
TASK_TOPIC = re.compile(r"^v1\.1/(?:TaskingCapabilities\((\d{1,18})\)/)?Tasks$")
DATASTREAM_TOPIC = re.compile(r"^v1\.1/(?:Multi)?Datastreams\((\d+)\)/Observations$")  # one id space
FEATURE_TOPIC = re.compile(r"^v1\.1/FeaturesOfInterest\((\d+)\)/Observations$")
_FAST_KEYS = frozenset({"phenomenonTime", "result", "resultTime"})
RESTART_STABLE_S = 60.0  # a process that lived this long is restarted after the first delay again
DROP_LOG_INTERVAL_S = 5.0


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
    process_up: bool = False
    process_pid: int | None = None
    restarts: int = 0
    down_reason: str | None = None
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    published: int = 0
    publish_dropped: int = 0
    last_error: str | None = None
    connects: int = 0
    # Filters clients hold on the broker, as its subscription log tells (0 while it does not: cityhub.mqtt.topics).
    watched_filters: int = 0

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
    prefix = settings.mqtt_private_prefix
    if prefix and (not prefix.endswith("/") or "+" in prefix or "#" in prefix or prefix.startswith("v1.1/")):
        raise ValueError(f"MQTT private prefix {prefix!r}: topic levels ending in '/', no wildcards, not under v1.1/")
    if settings.mqtt_publish_queue < 1:
        raise ValueError("MQTT publish queue must hold at least one message")


class _Publisher:
    """``hub.mqtt.client.publish(topic, payload, qos)`` for other modules: queued like every republication and
    sent by the I/O process."""

    def __init__(self, bridge: MqttBridge) -> None:
        self.bridge = bridge

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        self.bridge._enqueue(("pub", [(self.bridge.prefix + topic, data)], qos), 1, "a message")


def _exit_text(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class _Link:
    """One life of the I/O process: its end of the pipe, and the publish commands it has not answered yet."""

    def __init__(self, gen: int, proc: BaseProcess, conn: Connection) -> None:
        self.gen, self.proc, self.conn = gen, proc, conn
        self.lock = threading.Lock()
        self.credits = threading.Semaphore(PUBLISH_WINDOW)
        self.outstanding: collections.deque[int] = collections.deque()  # messages per unanswered command
        self.dead = threading.Event()

    def send(self, item: Any) -> bool:
        if self.dead.is_set():
            return False
        try:
            with self.lock:
                self.conn.send(item)
            return True
        except (OSError, ValueError):  # the process is gone; the supervisor says so
            return False


class MqttBridge:
    """The MQTT side of ``cityhub serve``: ingest from the broker, publish what the hub stores.

    Three threads of the hub talk to the I/O process: the supervisor (reads everything the process says,
    restarts it with back-off when it dies), ingest (asks for a batch, commits it, acknowledges it) and the
    publisher (hands republications over, at most ``PUBLISH_WINDOW`` unanswered). While the process is down
    nothing is acknowledged to the broker, so QoS 1 messages wait in the hub's persistent session and come
    again after the restart; a batch committed just before the death is not acknowledged either (its
    acknowledgement would name packet ids of a connection that no longer exists), so it comes again and the
    store's natural key makes it a duplicate, not a second Observation.
    """

    name = "mqtt"

    def __init__(self, hub: Core) -> None:
        s = hub.settings
        assert s.mqtt_url
        self.hub = hub
        self.address = BrokerAddress.parse(s.mqtt_url)
        self.mappings: Mappings = load_mappings(s.mqtt_mappings) if s.mqtt_mappings else Mappings([])
        self.publish_qos = s.mqtt_publish_qos
        # With anonymous reads off the hub publishes only under a prefix the generated ACL keeps from anonymous
        # clients, or nothing: the hub cannot see how the broker is configured, so it fails closed.
        self.republish = s.anonymous_read or bool(s.mqtt_private_prefix)
        self.prefix = "" if s.anonymous_read else s.mqtt_private_prefix
        self.publish = publish_set(s.mqtt_publish) if self.republish else set()
        if not self.republish:
            log.warning("anonymous reads are off and no MQTT private prefix is set: the hub republishes nothing")
        self.base = s.base_url + "/v1.1"
        self.queries = QueryTopics(hub.sensorthings, self.base, s.max_top, s.max_expand_depth)
        self.stats = BridgeStats()
        self.client = _Publisher(self)
        self.authorize = s.mqtt_authorize
        self.credentials = CredentialStore(credentials_path(s.data_dir))
        self.acl: AclKeeper | None = None
        if s.mqtt_acl_dir:
            self.acl = AclKeeper(
                Path(s.mqtt_acl_dir),
                self.credentials,
                hub.store.catalog,
                self.mappings,
                anonymous_read=s.anonymous_read,
                private_prefix=s.mqtt_private_prefix,
                pid_file=Path(s.mqtt_broker_pid_file) if s.mqtt_broker_pid_file else None,
            )
        self.config = IoConfig(
            host=self.address.host,
            port=self.address.port,
            client_id=s.mqtt_client_id,
            topics=(
                OBSERVATIONS_TOPIC,
                "v1.1/+/Observations",
                *(("v1.1/Tasks", "v1.1/+/Tasks") if s.tasking else ()),
                *self.mappings.filters(),
            ),  # and the broker's log
            username=s.mqtt_username or self.address.username,
            password=s.mqtt_password or self.address.password,
            tls=self.address.tls,
            ca_file=str(s.mqtt_ca_file) if s.mqtt_ca_file else None,
            cert_file=str(s.mqtt_cert_file) if s.mqtt_cert_file else None,
            key_file=str(s.mqtt_key_file) if s.mqtt_key_file else None,
            tls_insecure=s.mqtt_tls_insecure,
        )
        self.restart_delay = s.mqtt_restart_delay_s
        self.restart_max = max(s.mqtt_restart_max_s, s.mqtt_restart_delay_s)
        self.publish_limit = s.mqtt_publish_queue
        self._topic_ids: dict[str, int] = {}
        self._writers: frozenset[int] | None = None  # Things with a device credential, for the batch at hand
        self._stop = threading.Event()  # ingest stops
        self._draining = threading.Event()  # the publisher drops rather than waits for a restart
        self._closing = threading.Event()  # no more restarts
        self._up = threading.Event()
        self._life_lock = threading.Lock()
        self._link: _Link | None = None
        self._gen = 0
        self._handoff: queue.Queue[tuple[int, list[RawMessage] | None]] = queue.Queue()
        self._outbox: collections.deque[Any] = collections.deque()
        self._outbox_cond = threading.Condition()
        self._queued = 0  # messages in the outbox or waiting for a publish credit
        self._drops_unlogged = 0
        self._drop_lock = threading.Lock()
        self._drop_logged_at = 0.0
        # Where several hub processes share the store only the leader bridges the broker (one client id, one
        # session) and republishes what every process commits (cityhub.hub sets this).
        self.republish_remote = False
        self._ctx = mp.get_context("spawn")  # a clean interpreter: no copy of the hub's threads or DuckDB handles
        self._supervisor = threading.Thread(target=self._supervise, name="mqtt-supervisor", daemon=True)
        self._worker = threading.Thread(target=self._run, name="mqtt-ingest", daemon=True)
        self._publisher = threading.Thread(target=self._publish_loop, name="mqtt-publish", daemon=True)

    def subscriptions(self) -> list[tuple[str, Handler]]:
        subs: list[tuple[str, Handler]] = []
        if self.republish:
            subs.append((ALERTS, self._on_alert))
        if self.publish & {"datastreams", "observations"}:
            # One bridge republishes each commit once, whichever process took it (cityhub.cluster relays them).
            subs.append((OBSERVATIONS, on_observations(self._on_commit, remote=self.republish_remote)))
        if "entities" in self.publish or self.acl is not None:
            subs.append((ENTITIES, self._on_entity))
        return subs

    def start(self) -> None:
        if self.acl is not None:
            self.acl.start()  # before the first connection: the broker's files name the hub's own user
        self._supervisor.start()
        self._worker.start()
        self._publisher.start()
        log.info("MQTT bridge connecting to %s:%d", self.address.host, self.address.port)

    def stop_ingest(self) -> None:
        """Stop taking messages from the broker; what was taken is committed and acknowledged first."""
        if self._stop.is_set():
            return
        self._stop.set()
        link = self._link
        if link is not None:
            link.send(("pause",))
        if self._worker.is_alive():
            self._worker.join()

    def stop(self) -> None:
        """After the other domains stopped: announce what is still queued, then end the I/O process."""
        self.stop_ingest()
        self._draining.set()
        with self._outbox_cond:
            self._outbox.append(None)
            self._outbox_cond.notify()
        self._publisher.join()
        with self._life_lock:
            self._closing.set()
            link = self._link
        if link is not None:
            link.send(("stop",))
            link.proc.join(timeout=10)  # the child only flushes its sockets now; a wedged one is killed
            if link.proc.is_alive():
                link.proc.kill()
        self._supervisor.join(timeout=15)
        if link is not None:
            link.conn.close()
        if self.acl is not None:
            self.acl.stop()

    def close(self) -> None:
        self.stop()

    @property
    def problem(self) -> str | None:
        """Why MQTT is down, for /healthz; None while the I/O process runs (connected to the broker or not:
        an unreachable broker is the broker's trouble, reported as ``connected: false``)."""
        return None if self.stats.process_up else self.stats.down_reason or "the MQTT process is not running"

    def health(self) -> dict[str, Any]:
        out = self.stats.as_dict()
        out["publish_queued"] = self._queued
        if self.acl is not None:
            out["acl_writes"] = self.acl.writes
            out["acl_error"] = self.acl.last_error
        return out

    # -- the I/O process and its supervision --------------------------------------------------------------
    def _spawn(self) -> _Link | None:
        with self._life_lock:
            if self._closing.is_set():
                return None
            parent, child = self._ctx.Pipe(duplex=True)
            proc = self._ctx.Process(target=io_main, args=(child, self.config), name="cityhub-mqtt", daemon=True)
            proc.start()
            child.close()  # the child's end lives in the child: EOF here when it dies, and there when we do
            self._gen += 1
            link = self._link = _Link(self._gen, proc, parent)
            self.stats.process_up, self.stats.process_pid, self.stats.down_reason = True, proc.pid, None
            self._up.set()
            return link

    def _supervise(self) -> None:
        delay = self.restart_delay
        while not self._closing.is_set():
            try:
                link = self._spawn()
            except Exception as exc:  # fork/spawn trouble (memory, file descriptors): try again later
                link, reason = None, f"the MQTT process could not start: {type(exc).__name__}: {exc}"
            else:
                if link is None:
                    return
                started = time.monotonic()
                self._receive(link)
                self._up.clear()
                link.dead.set()
                link.proc.join(timeout=5)  # EOF: it is exiting; its exit status names why
                reason = f"the MQTT process exited ({_exit_text(link.proc.exitcode)})"
                if time.monotonic() - started > RESTART_STABLE_S:
                    delay = self.restart_delay
                # The reason first: /healthz must never see the process down without one.
                self.stats.down_reason = f"{reason}; restarting in {delay:.1f} s"
                self.stats.process_up = self.stats.connected = False
                self._handoff.put((link.gen, None))  # wakes an ingest thread waiting on this process
                lost = sum(link.outstanding)
                if lost:  # republications handed to the process that it had not answered for
                    self._count_drop(lost, "the MQTT process died with them")
                link.conn.close()
                if self._closing.is_set():
                    return
            self.stats.down_reason = f"{reason}; restarting in {delay:.1f} s"
            self.stats.process_up = self.stats.connected = False
            self.stats.last_error = reason
            log.error("%s; MQTT ingestion and publishing wait for the restart in %.1f s", reason, delay)
            if self._closing.wait(delay):
                return
            delay = min(delay * 2, self.restart_max)
            self.stats.restarts += 1

    def _receive(self, link: _Link) -> None:
        """Everything the process says, until it is gone."""
        while True:
            try:
                kind, *rest = link.conn.recv()
            except (EOFError, OSError):
                return
            if kind == "msgs":
                self._handoff.put((link.gen, rest[0]))
            elif kind == "status":
                info = rest[0]
                if info.get("connected") and not self.stats.connected:
                    self.stats.connects += 1
                    log.info("MQTT bridge connected (session present: %s)", info.get("session_present"))
                elif not info.get("connected") and self.stats.connected and not self._stop.is_set():
                    log.warning("MQTT bridge disconnected (%s); reconnecting", info.get("last_error"))
                self.stats.connected = bool(info.get("connected"))
                if info.get("last_error"):
                    self.stats.last_error = info["last_error"]
            elif kind == "watch":
                self.stats.watched_filters = int(rest[0])
                self.queries.update(rest[1])
            elif kind == "published":
                sent, dropped = rest
                self.stats.published += sent
                if dropped:
                    self._count_drop(dropped, "the broker was not connected")
                if link.outstanding:
                    link.outstanding.popleft()
                link.credits.release()
            elif kind == "lost":  # queued on the connection, which broke before writing them
                self.stats.published -= rest[0]
                self._count_drop(rest[0], "the broker connection broke")

    # -- ingest ----------------------------------------------------------------------------------------
    def _current(self) -> _Link | None:
        """The running process, waiting for a restart if need be; None once ingest stops."""
        while not self._stop.is_set():
            link = self._link
            if link is not None and not link.dead.is_set():
                return link
            self._up.wait(0.2)
        return None

    def _next_batch(self, link: _Link) -> list[Message] | None:
        """Ask the process for the next batch; None when it died meanwhile."""
        if not link.send(("next",)):
            return None
        while True:
            gen, raw = self._handoff.get()
            if gen != link.gen:
                continue  # an answer (or a death notice) of an earlier process
            return None if raw is None else [Message(*r) for r in raw]

    def _run(self) -> None:
        while not self._stop.is_set():
            link = self._current()
            if link is None:
                return
            batch = self._next_batch(link)
            if batch is None:
                continue  # the process died: the broker keeps the unacknowledged messages for its successor
            if self._stop.is_set() and not batch:
                return
            delay = 0.5
            while not self._stop.is_set() or batch:
                try:
                    self._ingest(batch, link)
                    break
                except Exception as exc:  # storage trouble: keep the messages unacknowledged and retry
                    self.stats.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("MQTT batch of %d messages not stored; retrying in %.1f s", len(batch), delay)
                    if self._stop.wait(delay):
                        break
                    delay = min(delay * 2, 30)

    def _ingest(self, batch: list[Message], link: _Link) -> None:
        self._writers = self.credentials.device_things() if self.authorize else None
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
                        f"the Datastream already has Observation {result.duplicate_of[row_id]} with this "
                        "phenomenonTime, resultTime, FeatureOfInterest and parameters and another result"
                    )
                    dead.append(_dead(by_id[row_id], reason, "phenomenonTime"))
        deadletters.record(self.hub.store, dead)
        # In the order received, as MQTT asks, and only now that everything is committed; never to a successor
        # process, whose connection numbers its packets anew (the broker redelivers these to it).
        if link is self._link:
            link.send(("ack", [(m.mid, m.qos) for m in batch if m.qos > 0]))
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
            if not self._may_write(ds_id):
                slow.append(m)  # the slow path says why, as a dead letter
                continue
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
            task = TASK_TOPIC.match(m.topic)
            if task is not None:
                self._create_task(m, task.group(1), dead)
                continue
            try:
                bodies = self._bodies(m)
            except ProblemError as exc:
                dead.append(_dead(m, exc.detail, exc.field))
                continue
            for body, ds_id in bodies:
                try:
                    self._check_writer(ds_id)
                    if ds_id is None and new_stream(body) is not None:
                        # Deep insert of a new Datastream: its own transaction, not the writer's rows.
                        st.create_observation_with_stream(body, self.base)
                        self.stats.stored += 1
                        continue
                    rows.append(st.observation_row(body, ds_id))
                    origin.append(m)
                except ProblemError as exc:
                    dead.append(_dead(m, exc.detail, exc.field))
        return rows, origin

    def _may_write(self, ds_id: int) -> bool:
        """Whether some device credential may write the Datastream (``mqtt_authorize``). Who published is
        unknown here: MQTT delivers no publisher identity (client id or user name) with a message, in 3.1.1 or
        5, so the per-device part is the broker's ACL; this refuses what no credential could have sent, which
        catches an ACL file that is stale (a revoked credential, a Datastream moved) or missing."""
        if self._writers is None:
            return True
        info = self.hub.catalog.lookup(ds_id)
        return info is None or info.thing_id in self._writers  # an unknown id: validation names it

    def _check_writer(self, ds_id: int | None) -> None:
        if self._writers is None:
            return
        if ds_id is None:
            raise ProblemError(
                403,
                "Forbidden",
                "with mqtt_authorize, Observations are published to v1.1/Datastreams(<id>)/Observations: the "
                "broker's ACL cannot check the Datastream named inside a payload",
                field="topic",
            )
        if not self._may_write(ds_id):
            raise ProblemError(
                403,
                "Forbidden",
                f"no MQTT device credential may write Datastream {ds_id} (see `cityhub mqtt credentials`)",
                field="topic",
            )

    def _bodies(self, m: Message) -> list[tuple[dict[str, Any], int | None]]:
        """The Observation bodies a message carries, with the Datastream id when the topic gives it."""
        match = DATASTREAM_TOPIC.match(m.topic)
        feature = FEATURE_TOPIC.match(m.topic)
        if match or feature or m.topic == OBSERVATIONS_TOPIC:
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
            if feature:
                # An Observation of this FeatureOfInterest: its Datastream comes with it (SensorThings §14.1).
                foi_id = int(feature.group(1))
                given = body.get("FeatureOfInterest")
                if given is not None and not (isinstance(given, dict) and given.get("@iot.id") == foi_id):
                    raise ProblemError(400, "Bad Request", f"FeatureOfInterest is given by the topic ({foi_id})",
                                       field="FeatureOfInterest")  # fmt: skip
                if not isinstance(body.get("Datastream"), dict):
                    raise ProblemError(
                        400, "Bad Request",
                        'an Observation published to a FeatureOfInterest topic needs Datastream: {"@iot.id": <id>}',
                        field="Datastream",
                    )  # fmt: skip
                return [({**body, "FeatureOfInterest": {"@iot.id": foi_id}}, None)]
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
                "Observations are published to v1.1/Datastreams(<id>)/Observations, "
                "v1.1/FeaturesOfInterest(<id>)/Observations or v1.1/Observations",
                field="topic",
            )
        return self.mappings.bodies(m.topic, m.payload, m.received_at, self._datastream_by_name)

    def _create_task(self, m: Message, capability: str | None, dead: list[deadletters.DeadLetter]) -> None:
        """A Task published to ``v1.1/Tasks`` (naming its TaskingCapability) or to a TaskingCapability's
        ``Tasks``, created as a POST there creates it (its own transaction); refused, a dead letter."""
        try:
            if not self.hub.settings.tasking:  # subscribed only with tasking on; a stray message all the same
                raise ProblemError(404, "Not Found", "Tasking is not served (CITYHUB_TASKING)", field="topic")
            try:
                body = orjson.loads(m.payload)
            except orjson.JSONDecodeError as exc:
                raise ProblemError(400, "Bad Request", f"the payload is not JSON: {exc}", field="payload") from None
            path = f"TaskingCapabilities({capability})/Tasks" if capability else "Tasks"
            self.hub.sensorthings.create_in_change_set(parse_path(path), body, self.base)
            self.stats.stored += 1
        except ProblemError as exc:
            dead.append(_dead(m, exc.detail, exc.field))

    def _datastream_by_name(self, name: str) -> int | None:
        return self.hub.catalog.id_by_name(name)

    # -- publishing ------------------------------------------------------------------------------------
    def _enqueue(self, item: Any, n: int, what: str) -> None:
        """Queue a republication of ``n`` messages, or drop and count it when the queue is full: republication
        is best effort and must never slow ingestion, but a drop is never silent."""
        with self._outbox_cond:
            if self._queued + n > self.publish_limit:
                full = True
            else:
                full = False
                self._queued += n
                self._outbox.append(item)
                self._outbox_cond.notify()
        if full:
            self._count_drop(n, f"the publish queue is full ({self.publish_limit:,} messages): {what}")

    def _count_drop(self, n: int, reason: str) -> None:
        with self._drop_lock:  # several threads drop (bus handlers, publisher, supervisor): no lost updates
            self.stats.publish_dropped += n
            self._drops_unlogged += n
            now = time.monotonic()
            if now - self._drop_logged_at < DROP_LOG_INTERVAL_S:  # a burst logs a line every few seconds
                return
            self._drop_logged_at = now
            dropped, self._drops_unlogged = self._drops_unlogged, 0
            self.stats.last_error = f"MQTT republication dropped {dropped:,} messages: {reason}"
            log.warning("MQTT republication dropped %d messages since the last report: %s", dropped, reason)

    def _on_commit(self, batch: pa.Table) -> None:
        per_row = ("datastreams" in self.publish) + ("observations" in self.publish)
        with self._outbox_cond:
            # A commit bigger than the room left is announced in part (its first rows), not dropped whole.
            rows = min(batch.num_rows, max(0, self.publish_limit - self._queued) // per_row)
            if rows:
                self._queued += rows * per_row
                # A part is copied: a slice would keep the whole commit's buffers alive while it waits.
                part = batch if rows == batch.num_rows else batch.take(pa.array(range(rows), pa.int64()))
                self._outbox.append(("obs", part))
                self._outbox_cond.notify()
        if rows < batch.num_rows:
            self._count_drop(
                (batch.num_rows - rows) * per_row,
                f"the publish queue is full ({self.publish_limit:,} messages): new Observations",
            )

    def _on_alert(self, event: Event) -> None:
        if isinstance(event, AlertEvent) and (self.republish_remote or not event.remote):
            topic = f"cityhub/alerts/{event.rule_id}/{event.subject_type}/{event.subject_id}"
            self.client.publish(topic, event.payload, qos=1)

    def _on_entity(self, event: Event) -> None:
        if not isinstance(event, EntityChanged):
            return
        if self.acl is not None and event.entity_set in ("Things", "Datastreams"):
            self.acl.nudge()  # the ACL lists each Thing's Datastreams
        if event.op == "deleted" or "entities" not in self.publish or (event.remote and not self.republish_remote):
            return
        # Property topics hear the properties an update changed; a creation is announced on the entity topics only.
        fields = () if event.op == "created" else event.fields
        self._enqueue(("entity", model.BY_PLURAL[event.entity_set], event.entity_id, fields), 2, "an entity change")

    def _take(self) -> tuple[Any, int] | None:
        """The next command for the process and its message count, Observations of several commits in one."""
        with self._outbox_cond:
            while not self._outbox:
                self._outbox_cond.wait()
            item = self._outbox.popleft()
            if item is None:
                return None
            if item[0] != "obs":
                return item, 2 if item[0] == "entity" else len(item[1])
            per_row = ("datastreams" in self.publish) + ("observations" in self.publish)
            tables = [item[1]]
            rows = item[1].num_rows
            while self._outbox and self._outbox[0] is not None and self._outbox[0][0] == "obs":
                nxt = self._outbox[0][1]
                if rows + nxt.num_rows > MAX_PUBLISH_ROWS:
                    break
                self._outbox.popleft()
                tables.append(nxt)
                rows += nxt.num_rows
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        return ("obs", table), rows * per_row

    def _publish_loop(self) -> None:
        per_ds, firehose = "datastreams" in self.publish, "observations" in self.publish
        while True:
            taken = self._take()
            if taken is None:
                return
            item, n = taken
            try:
                if item[0] == "entity":
                    _, et, entity_id, fields = item
                    try:
                        payload = orjson.dumps(self.hub.sensorthings._fetch(self.base, et, entity_id))
                    except ProblemError as exc:
                        if exc.status != 404:
                            raise
                        # Deleted before its announcement was made: nothing to announce, and nothing lost.
                        self._release(n)
                        n = 0
                        continue
                    # The process makes the topics: the entity's, its set's, property and $select ones, and the
                    # collections it is in (v1.1/TaskingCapabilities(<id>)/Tasks: where a device hears its Tasks).
                    parents = self._parent_topics(et, entity_id)
                    queried = self.queries.entity_messages(et, entity_id, parents) if self.queries.topics else []
                    cmd: tuple[Any, ...] = (
                        "ent", et.plural, payload, fields, self.publish_qos, self.prefix, parents, queried
                    )  # fmt: skip
                    self._hand_over(cmd, n)
                    n = 0
                elif item[0] == "pub":
                    self._hand_over(item, n)
                    n = 0
                else:
                    table = item[1]
                    for start in range(0, table.num_rows, MAX_PUBLISH_ROWS):  # one big commit: several commands
                        part = table.slice(start, MAX_PUBLISH_ROWS)
                        data = table_to_ipc(part)
                        m = part.num_rows * (per_ds + firehose)
                        multi = self._multi_ids(part)
                        cmd = ("obs", data, self.base, per_ds, firehose, self.publish_qos, self.prefix, multi)
                        self._hand_over(cmd, m)
                        n -= m
                    if self.queries.topics:
                        found = self.queries.observation_messages(table.column("id"))
                        if found:
                            queried = [(self.prefix + t, body) for t, body in found]
                            self._hand_over(("pub", queried, self.publish_qos), 0)
            except Exception as exc:  # subscribers are best effort; keep going
                self.stats.last_error = f"publish: {type(exc).__name__}: {exc}"
                log.exception("MQTT publish failed")
            finally:
                if n > 0:  # not handed over (an error): counted, not silently gone
                    self._release(n)
                    self._count_drop(n, "the republication failed")

    def _multi_ids(self, rows: pa.Table) -> frozenset[int]:
        """The MultiDatastreams among the rows' streams: their Observations go to v1.1/MultiDatastreams(<id>)/..."""
        catalog = self.hub.catalog
        out = set()
        for ds in pc.unique(rows.column("datastream_id")).to_pylist():
            info = catalog.lookup(int(ds))
            if info is not None and info.components is not None:
                out.add(int(ds))
        return frozenset(out)

    def _parent_topics(self, et: model.EntityType, entity_id: int) -> tuple[str, ...]:
        """``v1.1/<Parent>(<id>)/<Nav>`` for each to-one link of the entity whose target lists it back (a Task in
        its TaskingCapability's Tasks, a Datastream in its Thing's Datastreams): SensorThings §14.2's topics of a
        navigation collection."""
        links = []
        for nav in et.navs:
            if nav.fk is None:
                continue
            target = model.entity(nav.target)
            back = next((n for n in target.navs if n.remote_fk == nav.fk and n.target == et.name), None)
            if back is not None:
                links.append((nav.fk, target.plural, back.name))
        if not links:
            return ()
        values = self.hub.store.entities.columns_of(et.table, entity_id, [fk for fk, _, _ in links])
        if values is None:
            return ()
        return tuple(f"v1.1/{plural}({v})/{name}" for (_, plural, name), v in zip(links, values, strict=True) if v)

    def _release(self, n: int) -> None:
        with self._outbox_cond:
            self._queued -= n

    def _hand_over(self, cmd: tuple[Any, ...], n: int) -> None:
        """Send a publish command once the process has a free credit; while it is down, wait for the restart
        (the outbox meanwhile fills and drops), except when the hub is stopping."""
        while True:
            link = self._link
            if link is None or link.dead.is_set():
                if self._draining.is_set():
                    self._release(n)
                    self._count_drop(n, "the MQTT process is down while the hub stops")
                    return
                self._up.wait(0.2)
                continue
            if not link.credits.acquire(timeout=0.2):
                continue
            link.outstanding.append(n)
            if link.send(cmd):
                self._release(n)
                return
            link.outstanding.pop()
