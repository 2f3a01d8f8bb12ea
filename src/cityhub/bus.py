"""The hub's one event bus: what was committed, announced once to every part of the process that cares.

Publishers are the write paths (the Observation writer, the SensorThings entity service); subscribers are the
MQTT republisher, the live SSE stream, the alert engine, air quality and any domain plugged in later. Each
event goes out on a *subject* (``observations``, ``entities``), the way NATS names them, so that the
JetStream transport between machines can carry the same subjects and the same events unchanged.

Handlers run in the publisher's thread, synchronously, before the write that caused the event is answered:
a client that got its 2xx can rely on every subscriber having been handed the event. So a handler must be
cheap (queue the event, wake a thread) and must not block; one that raises is logged and never breaks the
write path or the other handlers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

log = logging.getLogger(__name__)

OBSERVATIONS = "observations"
ENTITIES = "entities"
ALERTS = "alerts"

EntityOp = Literal["created", "updated", "deleted"]


@dataclass(frozen=True)
class ObservationsCommitted:
    """Observations just committed, new or changed in place, with their stored ids
    (columns of :data:`cityhub.store.base.OBSERVATION_BATCH_SCHEMA`)."""

    batch: pa.Table
    # Committed by another hub process on the same store (cityhub.cluster relayed it): subscribers that act for
    # the whole hub once (MQTT republication) leave it to the process that took the write.
    remote: bool = False


@dataclass(frozen=True)
class EntityChanged:
    """A SensorThings entity was created, updated or deleted; ``entity_set`` is its set name (``Things``)."""

    entity_set: str
    entity_id: int
    op: EntityOp = "created"
    remote: bool = False
    # An update's changed properties (SensorThings names), for the MQTT property topics; None: not known.
    fields: tuple[str, ...] | None = None


@dataclass(frozen=True)
class AlertEvent:
    """A change in an alert's life (raised, escalated, acknowledged, resolved): the alert engine's event
    message as ``GET /api/v1/alerts/stream`` sends it, already serialised."""

    rule_id: int
    subject_type: str
    subject_id: int
    payload: bytes
    remote: bool = False


Event = ObservationsCommitted | EntityChanged | AlertEvent
Handler = Callable[[Event], None]


class Subscription:
    """What :meth:`EventBus.subscribe` returns; ``close()`` stops the deliveries."""

    def __init__(self, bus: EventBus, subject: str, handler: Handler) -> None:
        self.bus, self.subject, self.handler = bus, subject, handler

    def close(self) -> None:
        self.bus._remove(self)


class EventBus:
    """In-process publish/subscribe by subject, synchronous and thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, tuple[Subscription, ...]] = {}

    def subscribe(self, subject: str, handler: Handler) -> Subscription:
        sub = Subscription(self, subject, handler)
        with self._lock:
            self._subs[subject] = (*self._subs.get(subject, ()), sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subs[sub.subject] = tuple(s for s in self._subs.get(sub.subject, ()) if s is not sub)

    def publish(self, subject: str, event: Event) -> None:
        # The tuple is replaced, never mutated, so iterating it needs no lock.
        for sub in self._subs.get(subject, ()):
            try:
                sub.handler(event)
            except Exception:  # a subscriber must never break the write that published
                log.exception("event handler for %s failed", subject)

    def observations(self, batch: pa.Table) -> None:
        if batch.num_rows:
            self.publish(OBSERVATIONS, ObservationsCommitted(batch))

    def entity(
        self, entity_set: str, entity_id: int, op: EntityOp = "created", fields: tuple[str, ...] | None = None
    ) -> None:
        self.publish(ENTITIES, EntityChanged(entity_set, entity_id, op, fields=fields))


def on_observations(handler: Callable[[pa.Table], None], *, remote: bool = True) -> Handler:
    """Adapt a handler of Observation batches to a bus handler (ignores other events; with ``remote=False`` also
    the batches other hub processes committed)."""

    def handle(event: Event) -> None:
        if isinstance(event, ObservationsCommitted) and (remote or not event.remote):
            handler(event.batch)

    return handle
