"""The MQTT connection of the hub, in a process of its own.

paho-mqtt spends about 25 µs of Python per received message (packet decoding, MQTT 5 properties, callback
dispatch) and more per sent one. In the hub's process that work competes for the GIL with validation,
commits and HTTP; in a child process it runs on another core. The child owns the connection and the
persistent session; the hub's ingest thread asks it for the next batch of messages (so at most one batch
is in the pipe, and a busy hub slows the child, which then stops reading the socket: TCP back-pressure to
the broker), and tells it which messages to acknowledge once their Observations are committed. New
Observations to announce arrive as Arrow IPC and are formatted and published here. The child exits when
the hub's end of the pipe closes, so a killed hub leaves no orphan holding its session.

Memory is bounded whatever the rate: the hub sends at most ``PUBLISH_WINDOW`` publish commands before the
child answers each with what it published and dropped, and the child answers only once paho has room
(``MAX_BACKLOG_BYTES`` not yet written to the socket, ``MAX_BACKLOG_MESSAGES`` QoS 1 publications in flight).
A slow broker therefore stalls republication, not memory; the hub counts what its own bounded queue then
drops. paho's outgoing queue has no limit of its own: before this, a burst of 4 M rows grew the child by GBs.

This module imports only what the child needs (no FastAPI, DuckDB or the store).
"""

from __future__ import annotations

import collections
import contextlib
import signal
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
import paho.mqtt.client as mqtt
import pyarrow as pa
import pyarrow.ipc as paipc
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from cityhub import model, results
from cityhub.mqtt.packets import publish_batch
from cityhub.mqtt.topics import SYS_LOG_TOPICS, SubscriptionWatch, filter_matches, is_query, parse
from cityhub.timefmt import iso_time

OBSERVATIONS_TOPIC = "v1.1/Observations"
BATCH_WINDOW_S = 0.02  # gather a burst into one commit: each commit costs milliseconds whatever its size
MAX_BATCH = 20_000
MAX_INBOX = 100_000  # received but not handed over; beyond it paho's thread waits (TCP back-pressure)
PUBLISH_WINDOW = 2  # publish commands the hub may send before the child answers one: one formatting, one queued
MAX_PUBLISH_ROWS = 10_000  # Observations in one publish command (Arrow: about 1 MB)
MAX_BACKLOG_BYTES = 4 * 1024 * 1024
MAX_BACKLOG_MESSAGES = 5_000
CHUNK = 500  # QoS 0 messages written as one buffer
SESSION_EXPIRY_S = 7 * 24 * 3600  # how long the broker keeps the hub's queue while it is away

# (topic, payload, qos, mid, received at as Unix seconds)
RawMessage = tuple[str, bytes, int, int, float]


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


@dataclass(frozen=True)
class IoConfig:
    """What the child needs to connect (picklable)."""

    host: str
    port: int
    client_id: str
    topics: tuple[str, ...]
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False


def tls_context(cfg: IoConfig) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cfg.ca_file)
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    if cfg.tls_insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


Selected = tuple[str, ...] | None  # a topic's $select (None: the whole entity)


@dataclass(frozen=True)
class Extras:
    """Topics beyond the configured ones that clients hold now (from the :class:`SubscriptionWatch`): Observations
    with a ``$select``, of a FeatureOfInterest, the firehose when not configured; entities with a ``$select``."""

    all_obs: tuple[tuple[str, Selected], ...] = ()
    by_datastream: dict[int, tuple[tuple[str, Selected], ...]] | None = None
    by_feature: dict[int, tuple[tuple[str, Selected], ...]] | None = None
    feature_wildcards: tuple[str, ...] = ()  # filters with wildcards that may match a FeatureOfInterest topic
    entities: dict[tuple[str, int | None], tuple[tuple[str, Selected], ...]] | None = None

    @classmethod
    def of(cls, filters: list[str], firehose_configured: bool) -> Extras:
        all_obs: list[tuple[str, Selected]] = []
        by_ds: dict[int, list[tuple[str, Selected]]] = {}
        by_foi: dict[int, list[tuple[str, Selected]]] = {}
        entities: dict[tuple[str, int | None], list[tuple[str, Selected]]] = {}
        wild = []
        for f in filters:
            if is_query(f):
                continue  # the hub resolves it (cityhub.mqtt.queries)
            if "+" in f or "#" in f:
                if filter_matches(f, "v1.1/FeaturesOfInterest(1)/Observations"):
                    wild.append(f)
                continue
            r = parse(f)
            if r is None:
                continue
            if r.kind == "observations":
                if r.parent == "FeaturesOfInterest" and r.parent_id is not None:
                    by_foi.setdefault(r.parent_id, []).append((f, r.select))
                elif r.select is None:
                    if r.parent is None and not firehose_configured:
                        all_obs.append((f, None))
                elif r.parent in ("Datastreams", "MultiDatastreams") and r.parent_id is not None:
                    by_ds.setdefault(r.parent_id, []).append((f, r.select))
                elif r.parent is None:
                    all_obs.append((f, r.select))
            elif r.select is not None and r.parent is not None:
                entities.setdefault((r.parent, r.parent_id), []).append((f, r.select))
        return cls(
            tuple(all_obs),
            {k: tuple(v) for k, v in by_ds.items()},
            {k: tuple(v) for k, v in by_foi.items()},
            tuple(wild),
            {k: tuple(v) for k, v in entities.items()},
        )

    def feature_topics(self, foi: int | None) -> tuple[tuple[str, Selected], ...]:
        if foi is None:
            return ()
        found = self.by_feature.get(foi, ()) if self.by_feature else ()
        if self.feature_wildcards:
            plain = f"v1.1/FeaturesOfInterest({foi})/Observations"
            if not any(t == plain for t, _ in found) and any(filter_matches(w, plain) for w in self.feature_wildcards):
                found = (*found, (plain, None))
        return found


def select(entity: dict[str, Any], names: Selected) -> dict[str, Any]:
    """``entity`` as ``$select=names`` shows it: the named properties only (``id`` and ``selfLink`` by their
    annotations, a navigation property by its link)."""
    if names is None:
        return entity
    out = {}
    for n in names:
        key = {"id": "@iot.id", "selfLink": "@iot.selfLink"}.get(n, n)
        if key in entity:
            out[key] = entity[key]
        elif f"{n}@iot.navigationLink" in entity:
            out[f"{n}@iot.navigationLink"] = entity[f"{n}@iot.navigationLink"]
    return out


def observation_messages(
    batch: pa.Table,
    base: str,
    per_datastream: bool,
    firehose: bool,
    prefix: str = "",
    multi: frozenset[int] = frozenset(),
    extras: Extras | None = None,
) -> list[tuple[str, bytes]]:
    """Each new Observation as the entity a GET returns, for its Datastream's topic and the firehose (under
    ``prefix`` when the hub may not publish where anonymous clients read), and for the ``extras`` topics that
    clients hold now (a ``$select`` shows the selected properties only)."""
    cols = {c: batch.column(c).to_pylist() for c in _PUBLISHED}
    out: list[tuple[str, bytes]] = []
    by_ds = extras.by_datastream if extras is not None else None
    for i in range(batch.num_rows):
        oid, ds = cols["id"][i], cols["datastream_id"][i]
        link = f"{base}/Observations({oid})"
        num, text, js = cols["result_number"][i], cols["result_string"][i], cols["result_json"][i]
        quality, params, vstart = cols["result_quality"][i], cols["parameters"][i], cols["valid_time_start"][i]
        valid = None if vstart is None else f"{iso_time(vstart)}/{iso_time(cols['valid_time_end'][i] or vstart)}"
        start, end = iso_time(cols["phenomenon_time"][i]), cols["phenomenon_time_end"][i]
        obs = {
            "@iot.id": oid,
            "@iot.selfLink": link,
            "phenomenonTime": start if end is None else f"{start}/{iso_time(end)}",
            "resultTime": iso_time(cols["result_time"][i]),
            "result": results.value_of(num, text, js),
            "resultQuality": orjson.loads(quality) if quality else None,
            "validTime": valid,
            "parameters": orjson.loads(params) if params else None,
        }
        for nav in _OBSERVATION_NAVS:  # every navigation link a GET shows, the MultiDatastream's too
            obs[f"{nav}@iot.navigationLink"] = f"{link}/{nav}"
        payload = orjson.dumps(obs)
        if per_datastream:
            stream = "MultiDatastreams" if ds in multi else "Datastreams"  # the ids of both never coincide
            out.append((f"{prefix}v1.1/{stream}({ds})/Observations", payload))
        if firehose:
            out.append((prefix + OBSERVATIONS_TOPIC, payload))
        if extras is not None:
            routes = (*extras.all_obs, *(by_ds.get(ds, ()) if by_ds else ()),
                      *extras.feature_topics(cols["feature_of_interest_id"][i]))  # fmt: skip
            for topic, names in routes:
                out.append((prefix + topic, payload if names is None else orjson.dumps(select(obs, names))))
    return out


def entity_messages(
    entity_set: str, entity: dict[str, Any], fields: tuple[str, ...] | None, prefix: str, extras: Extras | None
) -> list[tuple[str, bytes]]:
    """A created or updated entity for its set's topic, its own, a property topic per changed property (all of
    them when the change is not known property by property), and the ``$select`` topics clients hold."""
    eid = entity.get("@iot.id")
    payload = orjson.dumps(entity)
    out = [(f"{prefix}v1.1/{entity_set}", payload), (f"{prefix}v1.1/{entity_set}({eid})", payload)]
    changed = fields if fields is not None else [k for k in entity if not k.startswith("@") and "@" not in k]
    out += [(f"{prefix}v1.1/{entity_set}({eid})/{f}", orjson.dumps({f: entity[f]})) for f in changed if f in entity]
    if extras is not None and extras.entities and isinstance(eid, int):
        for key in ((entity_set, None), (entity_set, eid)):
            for topic, names in extras.entities.get(key, ()):
                out.append((prefix + topic, orjson.dumps(select(entity, names))))
    return out


def updated_observation_messages(
    obs: dict[str, Any], parents: tuple[str, ...], prefix: str, extras: Extras
) -> list[tuple[str, bytes]]:
    """An updated Observation for the ``$select`` topics of Observations clients hold: of all of them, of its
    Datastream's and of its FeatureOfInterest's (``parents``: its plain collection topics, already published)."""
    routes = [r for r in extras.all_obs if r[1] is not None]
    for topic in parents:
        route = parse(topic)
        if route is None or route.kind != "observations" or route.parent_id is None:
            continue
        table = extras.by_feature if route.parent == "FeaturesOfInterest" else extras.by_datastream
        routes += [r for r in (table or {}).get(route.parent_id, ()) if r[1] is not None]
    return [(prefix + topic, orjson.dumps(select(obs, names))) for topic, names in routes]


_OBSERVATION_NAVS = tuple(n.name for n in model.OBSERVATION.navs)
_PUBLISHED = (
    "id",
    "datastream_id",
    "feature_of_interest_id",
    "phenomenon_time",
    "phenomenon_time_end",
    "result_time",
    "result_number",
    "result_string",
    "result_json",
    "parameters",
    "result_quality",
    "valid_time_start",
    "valid_time_end",
)


class _Child:
    def __init__(self, conn: Connection, cfg: IoConfig) -> None:
        self.conn = conn
        self.cfg = cfg
        self.inbox: list[RawMessage] = []
        self.first_at = 0.0
        self.cond = threading.Condition()
        self.send_lock = threading.Lock()
        self.stopping = False
        self.refused: str | None = None
        self.jobs: collections.deque[_Job] = collections.deque()  # publish commands not yet fully queued
        self.chunks: collections.deque[tuple[Any, int, int]] = collections.deque()  # (paho info, bytes, messages)
        self.lost = 0
        self.command_waiting = False  # set by the pipe's watcher: the hub sent a command
        self.drained = threading.Event()
        # Fed on paho's network thread, read on this one (under the lock), derived into Extras once per change.
        self.watch = SubscriptionWatch(cfg.client_id)
        self.watch_lock = threading.Lock()
        self.firehose_configured = False
        self._extras: tuple[int, bool, Extras | None] = (-1, False, None)
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cfg.client_id, protocol=mqtt.MQTTv5, manual_ack=True)
        if cfg.username:
            c.username_pw_set(cfg.username, cfg.password)
        if cfg.tls or cfg.ca_file:
            c.tls_set_context(tls_context(cfg))
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(MAX_BACKLOG_MESSAGES * 2)  # QoS 1 publications while disconnected
        c.reconnect_delay_set(1, 30)
        c.on_connect = self.on_connect
        c.on_disconnect = self.on_disconnect
        c.on_message = self.on_message
        self.client = c

    def send(self, item: Any) -> None:
        with self.send_lock:
            self.conn.send(item)

    def on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.refused = f"connect refused: {reason}"  # the disconnect that follows must not hide why
            self.send(("status", {"connected": False, "last_error": self.refused}))
            return
        self.refused = None
        opts = SubscribeOptions(qos=1, noLocal=True)  # never hear what the hub itself publishes
        # The broker's subscription log at QoS 0: nothing to acknowledge, nothing queued while the hub is away.
        log_opts = SubscribeOptions(qos=0, noLocal=True)
        client.subscribe([(t, opts) for t in self.cfg.topics] + [(t, log_opts) for t in SYS_LOG_TOPICS])
        self.send(("status", {"connected": True, "session_present": bool(getattr(flags, "session_present", False))}))

    def on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.send(
                ("status", {"connected": False, "last_error": None if self.stopping else f"disconnected: {reason}"})
            )

    def on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.startswith("$SYS/"):  # the broker's log of subscriptions (cityhub.mqtt.topics)
            if msg.qos:
                client.ack(msg.mid, msg.qos)
            with self.watch_lock:
                before = self.watch.version
                self.watch.feed(msg.topic, bytes(msg.payload))
                changed = self.watch.version != before
                n = len(self.watch.count)
                # Topics only the hub can resolve (cityhub.mqtt.queries) go with the count, in the same message,
                # so that the hub knows them once /healthz counts their subscriptions.
                queries = tuple(f for f in self.watch.count if is_query(f)) if changed else ()
            if changed:
                with contextlib.suppress(OSError, ValueError):
                    self.send(("watch", n, queries))
            return
        with self.cond:
            while len(self.inbox) >= MAX_INBOX and not self.stopping:
                self.cond.wait(0.1)
            if not self.inbox:
                self.first_at = time.monotonic()
            self.inbox.append((msg.topic, bytes(msg.payload), msg.qos, msg.mid, time.time()))  # paho: bytes already
            self.cond.notify_all()

    def watch_pipe(self) -> None:
        """Wake :meth:`take` as soon as the hub sends a command: waiting for messages from the broker, the main
        thread must not leave a publish command in the pipe for long (a subscriber would hear of an entity only
        after it subscribed, what happened before)."""
        while not self.stopping:
            try:
                ready = self.conn.poll(0.5)
            except (EOFError, OSError):
                ready = True  # the main thread finds out what happened
            if ready:
                with self.cond:
                    self.command_waiting = True
                    self.cond.notify_all()
                self.drained.wait(0.5)  # until the main thread has read it (a bound: never stuck)
                self.drained.clear()

    def take(self) -> list[RawMessage]:
        """The next batch: wait for a first message, then up to BATCH_WINDOW_S for more."""
        with self.cond:
            while not self.inbox and not self.stopping:
                self.cond.wait(0.005 if self.jobs else 0.2)
                if self.command_waiting or self.jobs:  # a command while idle, or held publications to retry
                    return []
            delay = self.first_at + BATCH_WINDOW_S - time.monotonic()
            while delay > 0 and len(self.inbox) < MAX_BATCH and not self.stopping:
                self.cond.wait(delay)
                delay = self.first_at + BATCH_WINDOW_S - time.monotonic()
            batch, self.inbox = self.inbox[:MAX_BATCH], self.inbox[MAX_BATCH:]
            if self.inbox:
                self.first_at = time.monotonic()
            self.cond.notify_all()
            return batch

    def run(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = 65535  # QoS 1 messages in flight to us: acks wait for the group commit
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=30, clean_start=False, properties=props)
        self.client.loop_start()
        threading.Thread(target=self.watch_pipe, name="pipe-watch", daemon=True).start()
        wanted = False
        try:
            while True:
                if wanted:
                    batch = self.take()  # returns early, empty, when a command is waiting
                    if batch:
                        self.send(("msgs", batch))
                        wanted = False
                self.pump()
                # Held publications are retried every few ms; otherwise wait for the next command.
                timeout: float | None = 0 if wanted else 0.005 if self.jobs else None
                while self.conn.poll(timeout):
                    timeout = 0
                    cmd = self.conn.recv()
                    kind = cmd[0]
                    if kind == "next":
                        wanted = True
                    elif kind == "ack":
                        for mid, qos in cmd[1]:
                            self.client.ack(mid, qos)
                    elif kind == "pub":
                        self.jobs.append(_Job(cmd[2], messages=cmd[1]))
                    elif kind == "obs":
                        _, data, base, per_ds, firehose, qos, prefix, multi = cmd
                        table = paipc.open_stream(data).read_all()
                        self.firehose_configured = firehose
                        self.jobs.append(_Job(qos, table=table, fmt=(base, per_ds, firehose, prefix, multi)))
                    elif kind == "ent":
                        _, entity_set, payload, fields, qos, prefix, parents, queried = cmd
                        entity, extras = orjson.loads(payload), self.extras()
                        msgs = entity_messages(entity_set, entity, fields, prefix, extras)
                        msgs += [(prefix + topic, payload) for topic in parents]
                        msgs += [(prefix + topic, body) for topic, body in queried]
                        if entity_set == "Observations" and extras is not None:
                            msgs += updated_observation_messages(entity, parents, prefix, extras)
                        self.jobs.append(_Job(qos, messages=msgs))
                    elif kind == "pause":  # the hub stops ingesting: answer its pending "next" with nothing
                        wanted = False
                        self.send(("msgs", []))
                    elif kind == "stop":
                        deadline = time.monotonic() + 5  # what the hub handed over still goes out, if it can
                        while self.jobs and time.monotonic() < deadline:
                            self.pump()
                            if self.jobs:
                                time.sleep(0.005)
                        return
                    if kind in ("pub", "obs", "ent"):
                        self.pump()
                with self.cond:
                    self.command_waiting = False
                self.drained.set()
        except (EOFError, OSError):
            pass  # the hub is gone: let the broker redeliver whatever was not acknowledged
        finally:
            self.stopping = True
            with self.cond:
                self.cond.notify_all()
            self.client.disconnect()
            self.client.loop_stop()

    def extras(self) -> Extras | None:
        """The extra topics clients hold now; None while there are none (or the broker does not tell)."""
        with self.watch_lock:
            version = self.watch.version
            if (version, self.firehose_configured) == self._extras[:2]:
                return self._extras[2]
            filters = self.watch.filters()
        found = Extras.of(filters, self.firehose_configured) if filters else None
        self._extras = (version, self.firehose_configured, found)
        return found

    def backlog_full(self) -> bool:
        """Whether paho holds enough unwritten data (or unacknowledged QoS 1 publications) to wait."""
        chunks = self.chunks
        while chunks:
            info, _, n = chunks[0]
            if info.rc:  # the connection broke before it was written (paho marks such packets so)
                self.lost += n
            elif not info.is_published():
                break
            chunks.popleft()
        if self.lost:
            self.send(("lost", self.lost))
            self.lost = 0
        pending = sum(b for _, b, _ in chunks)
        return pending > MAX_BACKLOG_BYTES or len(self.client._out_messages) > MAX_BACKLOG_MESSAGES

    def pump(self) -> None:
        """Queue held publications on paho while it has room; answer each command once it is all queued."""
        while self.jobs:
            job = self.jobs[0]
            while not job.done:
                if not self.client.is_connected() and job.qos == 0:
                    job.dropped += job.left()  # QoS 0: at most once, and nobody to send to
                    job.pos = 1 << 62
                    break
                if self.backlog_full():
                    return
                part = job.take(CHUNK, self.extras)
                if job.qos == 0:
                    info = publish_batch(self.client, part)
                    if info is None:
                        job.dropped += len(part)
                    else:
                        self.chunks.append((info, sum(len(t) + len(p) + 8 for t, p in part), len(part)))
                        job.sent += len(part)
                else:
                    for t, p in part:
                        ok = self.client.publish(t, p, qos=job.qos).rc == mqtt.MQTT_ERR_SUCCESS
                        job.sent += ok
                        job.dropped += not ok
            self.jobs.popleft()
            self.send(("published", job.sent, job.dropped))


@dataclass
class _Job:
    """One publish command: messages ready to send ("pub"), or new Observations ("obs") kept as Arrow and
    formatted a chunk at a time as paho has room. Formatted, an Observation costs kilobytes of Python objects
    (a dict, datetimes, strings) against a hundred bytes in Arrow: formatting a whole command up front made a
    held command cost tens of megabytes."""

    qos: int
    messages: list[tuple[str, bytes]] | None = None
    table: pa.Table | None = None
    # base, per Datastream, firehose, prefix, the MultiDatastreams among the rows' streams
    fmt: tuple[str, bool, bool, str, frozenset[int]] = ("", True, False, "", frozenset())
    pos: int = 0  # messages or rows taken
    sent: int = 0
    dropped: int = 0

    @property
    def per_row(self) -> int:
        return self.fmt[1] + self.fmt[2]

    @property
    def done(self) -> bool:
        total = len(self.messages) if self.messages is not None else self.table.num_rows if self.table else 0
        return self.pos >= total

    def left(self) -> int:
        """Messages not taken yet."""
        if self.messages is not None:
            return len(self.messages) - self.pos
        return (self.table.num_rows - self.pos) * self.per_row if self.table is not None else 0

    def take(self, n: int, extras: Callable[[], Extras | None]) -> list[tuple[str, bytes]]:
        """About ``n`` more messages (and, for Observations, those of the ``extras`` topics clients hold now)."""
        if self.messages is not None:
            part = self.messages[self.pos : self.pos + n]
            self.pos += len(part)
            return part
        assert self.table is not None
        rows = self.table.slice(self.pos, max(1, n // max(1, self.per_row)))
        self.pos += rows.num_rows
        return observation_messages(rows, *self.fmt, extras=extras())


def io_main(conn: Connection, cfg: IoConfig) -> None:
    """Entry point of the child process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the hub's to handle; it stops us
    _Child(conn, cfg).run()
