"""Named operations on webhooks and their outbox (one delivery row per webhook and alert event).

A delivery is written ``pending`` in the transaction of the event it carries (:meth:`WebhookOps.add_deliveries`
takes that transaction), so a restart resumes it; each attempt then updates it in a transaction of its own.
"""

from __future__ import annotations

import abc
from datetime import datetime
from typing import Any, NamedTuple

import pyarrow as pa

from cityhub.store.transaction import Transaction

TS = pa.timestamp("us", tz="UTC")

# The columns a new delivery is written with; the outcome columns (delivered_at, last_status, last_error) start NULL.
DELIVERY_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("webhook_id", pa.int64()),
        ("event_id", pa.int64()),
        ("alert_id", pa.int64()),
        ("event", pa.string()),
        ("status", pa.string()),
        ("attempts", pa.int32()),
        ("created_at", TS),
        ("next_attempt_at", TS),
        ("payload", pa.string()),
        ("log", pa.string()),
    ]
)
# Keys of the dicts :meth:`WebhookOps.deliveries` returns.
DELIVERY_COLUMNS = ("id", "event_id", "alert_id", "event", "status", "attempts", "created_at", "next_attempt_at",
                    "delivered_at", "last_status", "last_error", "log")  # fmt: skip


class WebhookRecord(NamedTuple):
    id: int
    url: str
    secret: str
    filter: str | None  # JSON text
    description: str | None
    created_at: datetime
    created_by: str | None


class PendingDelivery(NamedTuple):
    id: int
    webhook_id: int
    payload: str
    attempts: int
    next_attempt_at: datetime | None
    event: str
    log: str | None  # JSON text: the attempts so far


class WebhookOps(abc.ABC):
    @abc.abstractmethod
    def load_webhooks(self) -> list[WebhookRecord]:
        """Every registered webhook, by id."""

    @abc.abstractmethod
    def insert_webhook(self, hook: WebhookRecord) -> None:
        """Register a webhook (its id allocated by the caller), in a transaction of its own."""

    @abc.abstractmethod
    def delete_webhook(self, webhook_id: int) -> None:
        """Forget a webhook and its deliveries, in one transaction."""

    @abc.abstractmethod
    def add_deliveries(self, tx: Transaction, deliveries: pa.Table) -> None:
        """Append new deliveries (DELIVERY_SCHEMA) in the caller's transaction."""

    @abc.abstractmethod
    def pending_deliveries(self) -> list[PendingDelivery]:
        """The deliveries still to attempt (status ``pending``), by id."""

    @abc.abstractmethod
    def record_attempt(
        self,
        delivery_id: int,
        *,
        status: str,
        attempts: int,
        next_attempt_at: datetime | None,
        delivered_at: datetime | None,
        last_status: int | None,
        last_error: str | None,
        log: str,
    ) -> None:
        """The outcome of an attempt (``status`` pending, delivered or failed), in a transaction of its own."""

    @abc.abstractmethod
    def deliveries(self, webhook_id: int, status: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        """A webhook's deliveries, newest first, keyed by DELIVERY_COLUMNS (``log`` as JSON text)."""
