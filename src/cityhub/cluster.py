"""Several hub processes on one store: what one commits reaches the others' subscribers, and one of them leads.

Where the store is shared (PostgreSQL), each process relays the events its own writes publish on the bus to the
others through the store's channel (LISTEN/NOTIFY), and publishes theirs on its own bus marked ``remote``: live
streams, the dashboard and the Datastream catalogue of every process see every write. A message names what
changed (Observation id ranges, an entity, an alert event), never more than fits; Observations are read back
from the store by id. Delivery is at most once: a process that was disconnected misses what was said meanwhile,
as a browser misses events while offline, but never a stored row.

One process leads (a lease on the store, freed when its holder dies): it alone runs the work that must happen
once for the whole hub (alert evaluation and webhooks, derived air-quality indices, the demo city). The others
take over within ``takeover_s`` of its death. A leader that finds another process holding the lease after a
lost connection exits at once (fencing): two evaluators would raise every alert twice.

With an embedded store (one process) there is nothing to relay and this process leads from the start.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable

import numpy as np
import orjson

from cityhub.bus import (
    ALERTS,
    ENTITIES,
    OBSERVATIONS,
    AlertEvent,
    EntityChanged,
    Event,
    EventBus,
    ObservationsCommitted,
)
from cityhub.store.base import Store

log = logging.getLogger(__name__)

# Codes in the messages (short: a NOTIFY payload holds under 8000 bytes).
_OBS, _ENT, _ALERT, _NOTE = "o", "e", "a", "n"
# Exit status of a leader fenced off by another (EX_TEMPFAIL: a supervisor restarts it as a follower).
FENCED_EXIT = 75


def id_ranges(ids: np.ndarray) -> list[list[int]]:
    """Sorted ``ids`` as [first, last] runs of consecutive ids (a writer's batch is usually one run)."""
    if not len(ids):
        return []
    ids = np.unique(ids)
    breaks = np.flatnonzero(np.diff(ids) != 1)
    firsts = np.concatenate([ids[:1], ids[breaks + 1]])
    lasts = np.concatenate([ids[breaks], ids[-1:]])
    return [[int(a), int(b)] for a, b in zip(firsts, lasts, strict=True)]


class Cluster:
    """The relay and the lease of one process (see the module's docstring). ``note`` handlers receive the
    named notes other processes ``say`` (e.g. "alerts": rules or alerts changed in the store)."""

    def __init__(self, store: Store, bus: EventBus, *, takeover_s: float = 2.0) -> None:
        self.store = store
        self.bus = bus
        self.origin = uuid.uuid4().hex[:12]
        self.channel = store.channel()
        self.lease = store.lease("leader")
        self.takeover_s = takeover_s
        self._leading = threading.Event()
        self._stop = threading.Event()
        self._out: queue.Queue[str | None] = queue.Queue()
        self._on_lead: list[Callable[[], None]] = []
        self._notes: dict[str, list[Callable[[], None]]] = {}
        self._threads: list[threading.Thread] = []
        self.relayed = 0
        self.received = 0
        self.dropped = 0
        if self.channel is None:
            self._leading.set()

    @property
    def shared(self) -> bool:
        """Whether other processes may share the store."""
        return self.channel is not None

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    def when_leading(self, action: Callable[[], None]) -> None:
        """Run ``action`` once this process leads: now if it does, else in the lease thread when it takes over."""
        if self.is_leader:
            action()
        else:
            self._on_lead.append(action)

    def on_note(self, name: str, handler: Callable[[], None]) -> None:
        self._notes.setdefault(name, []).append(handler)

    def say(self, name: str) -> None:
        """Tell the other processes ``name`` (their ``on_note`` handlers run; this process's do not)."""
        if self.channel is not None:
            self._out.put(orjson.dumps({"k": _NOTE, "o": self.origin, "n": name}).decode())

    def leader_only(self, handler: Callable[[Event], None]) -> Callable[[Event], None]:
        """A bus handler that acts only while this process leads."""

        def gated(event: Event) -> None:
            if self._leading.is_set():
                handler(event)

        return gated

    # -- life cycle ------------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.channel is None:
            return
        for subject in (OBSERVATIONS, ENTITIES, ALERTS):
            self.bus.subscribe(subject, self._local)
        for target, name in ((self._relay, "cluster-relay"), (self._listen, "cluster-listen"),
                             (self._lead, "cluster-lease")):  # fmt: skip
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        if self.lease is not None and self.lease.try_acquire():
            self._become_leader()

    def stop(self) -> None:
        self._stop.set()
        self._out.put(None)
        for t in self._threads:
            t.join(5)
        if self.channel is not None:
            self.channel.close()
        if self.lease is not None:
            self.lease.release()

    # -- leadership ------------------------------------------------------------------------------------------------
    def _become_leader(self) -> None:
        if self._leading.is_set():
            return
        self._leading.set()
        log.info("this process leads the hub (alert evaluation, derived indices)")
        actions, self._on_lead = self._on_lead, []
        for action in actions:
            try:
                action()
            except Exception:
                log.exception("starting leader work failed")

    def _lead(self) -> None:
        assert self.lease is not None
        free_since: float | None = None
        while not self._stop.wait(0.25 if self._leading.is_set() else 0.5):
            if self._leading.is_set():
                if self.lease.held():
                    continue
                # Lost (its connection, e.g. a server restart): take it back at once, before any follower may.
                deadline = time.monotonic() + 30
                while not self._stop.is_set() and time.monotonic() < deadline:
                    if self.lease.try_acquire():
                        break
                    if self._lease_taken(unknown=False):  # not known to be taken: try again shortly
                        log.critical("another hub process leads now; exiting so that alerts are not raised twice")
                        os._exit(FENCED_EXIT)
                    time.sleep(0.2)
                continue
            # A follower takes a free lease only once it has stayed free for takeover_s: a leader whose
            # connection dropped gets it back first.
            if self._lease_taken():
                free_since = None
                continue
            now = time.monotonic()
            free_since = free_since or now
            if now - free_since >= self.takeover_s and self.lease.try_acquire():
                self._become_leader()

    def _lease_taken(self, unknown: bool = True) -> bool:
        """Whether another process holds the lease now; ``unknown`` when that cannot be told (a follower counts it
        taken: only a sure vacancy is taken; a leader winning it back counts it free: only a sure rival fences it)."""
        assert self.lease is not None
        try:
            return self.lease.taken()
        except Exception:
            return unknown

    # -- the relay -------------------------------------------------------------------------------------------------
    def _local(self, event: Event) -> None:
        """Bus handler (the publisher's thread): queue a message for this process's own events."""
        if getattr(event, "remote", False):
            return
        if isinstance(event, ObservationsCommitted):
            ranges = id_ranges(event.batch.column("id").to_numpy())
            per = max(1, (self.channel.max_bytes - 60) // 24) if self.channel else 1
            for i in range(0, len(ranges), per):
                self._out.put(orjson.dumps({"k": _OBS, "o": self.origin, "r": ranges[i : i + per]}).decode())
        elif isinstance(event, EntityChanged):
            msg = {"k": _ENT, "o": self.origin, "s": event.entity_set, "i": event.entity_id, "op": event.op,
                   "f": event.fields}  # fmt: skip
            self._out.put(orjson.dumps(msg).decode())
        elif isinstance(event, AlertEvent):
            msg = {"k": _ALERT, "o": self.origin, "r": event.rule_id, "t": event.subject_type, "i": event.subject_id}
            text = orjson.dumps({**msg, "p": event.payload.decode()}).decode()
            if self.channel is not None and len(text.encode()) > self.channel.max_bytes:
                self.dropped += 1  # the alert is in the store; only its live announcement to other processes is lost
                log.warning("alert event of %d bytes too long to relay to other processes", len(text))
                return
            self._out.put(text)

    def _relay(self) -> None:
        assert self.channel is not None
        while True:
            first = self._out.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < 500:
                try:
                    nxt = self._out.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._out.put(None)
                    break
                batch.append(nxt)
            try:
                self.channel.send(batch)
                self.relayed += len(batch)
            except Exception as exc:  # the database is away: the rows are stored, only the announcement is lost
                self.dropped += len(batch)
                log.warning("could not relay %d events to other processes: %s", len(batch), exc)

    def _listen(self) -> None:
        assert self.channel is not None
        while not self._stop.is_set():
            for text in self.channel.receive(0.5):
                try:
                    self._deliver(orjson.loads(text))
                except Exception:
                    log.exception("a relayed event could not be delivered")

    def _deliver(self, msg: dict) -> None:
        if msg.get("o") == self.origin:
            return
        self.received += 1
        kind = msg.get("k")
        if kind == _OBS:
            ids = [i for lo, hi in msg["r"] for i in range(lo, hi + 1)]
            batch = self.store.observations.rows_by_id(ids)
            if batch.num_rows:
                self.bus.publish(OBSERVATIONS, ObservationsCommitted(batch, remote=True))
        elif kind == _ENT:
            fields = tuple(msg["f"]) if msg.get("f") is not None else None
            self.bus.publish(ENTITIES, EntityChanged(msg["s"], int(msg["i"]), msg["op"], remote=True, fields=fields))
        elif kind == _ALERT:
            event = AlertEvent(int(msg["r"]), msg["t"], int(msg["i"]), msg["p"].encode(), remote=True)
            self.bus.publish(ALERTS, event)
        elif kind == _NOTE:
            for handler in self._notes.get(msg.get("n", ""), ()):
                handler()

    def status(self) -> dict[str, object]:
        return {
            "shared": self.shared,
            "leader": self.is_leader,
            "origin": self.origin,
            "relayed": self.relayed,
            "received": self.received,
            "dropped": self.dropped,
        }
