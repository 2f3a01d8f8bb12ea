"""Webhooks and their outbox on PostgreSQL (:class:`cityhub.store.ops.webhooks.WebhookOps`).

Several hub processes may share the database, each with its own copy of the webhook registry, loaded at start:
one process's registry may still hold a webhook another has deleted. The writes below therefore check against the
stored webhooks under row locks, where DuckDB (the only writer of its file) trusts the caller's registry.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from cityhub.store.ops.webhooks import DELIVERY_COLUMNS, PendingDelivery, WebhookOps, WebhookRecord
from cityhub.store.postgres.util import PgHost, id_array
from cityhub.store.transaction import Transaction


class PgWebhookOps(WebhookOps):
    def __init__(self, store: PgHost) -> None:
        self._store = store

    def load_webhooks(self) -> list[WebhookRecord]:
        rows = self._store.query(
            "SELECT id, url, secret, filter, description, created_at, created_by FROM webhooks ORDER BY id"
        )
        return [WebhookRecord(int(r[0]), *r[1:]) for r in rows]

    def insert_webhook(self, hook: WebhookRecord) -> None:
        with self._store.transaction(fold_derived=False) as tx:
            tx.execute(
                """INSERT INTO webhooks (id, url, secret, filter, description, created_at, created_by)
                   VALUES (%s, %s, %s, %s::json, %s, %s, %s)""",
                list(hook),
            )

    def delete_webhook(self, webhook_id: int) -> None:
        with self._store.transaction(fold_derived=False) as tx:
            # The webhook first: deleting it waits for the transactions adding deliveries to it (they hold a share
            # lock on its row, see add_deliveries) and, once it is gone, they add none; so the deliveries deleted
            # next are all there will ever be.
            tx.execute("DELETE FROM webhooks WHERE id = %s", [webhook_id])
            tx.execute("DELETE FROM webhook_deliveries WHERE webhook_id = %s", [webhook_id])

    def add_deliveries(self, tx: Transaction, deliveries: pa.Table) -> None:
        if not deliveries.num_rows:
            return
        # The caller's registry may be stale (another process deleted a webhook): keep only the deliveries of the
        # webhooks still stored, and lock those rows (KEY SHARE, in id order) until the commit, so that a
        # concurrent delete_webhook cannot leave this transaction's deliveries behind without their webhook.
        hook_ids = pc.unique(deliveries.column("webhook_id")).to_pylist()
        locked = tx.execute(
            "SELECT id FROM webhooks WHERE id = ANY(%s::bigint[]) ORDER BY id FOR KEY SHARE", [id_array(hook_ids)]
        )
        live = [int(r[0]) for r in locked]
        if len(live) < len(hook_ids):
            deliveries = deliveries.filter(pc.is_in(deliveries.column("webhook_id"), pa.array(live, pa.int64())))
        if deliveries.num_rows:
            tx.append_table("webhook_deliveries", deliveries)

    def pending_deliveries(self) -> list[PendingDelivery]:
        rows = self._store.query(
            """SELECT id, webhook_id, payload, attempts, next_attempt_at, event, log FROM webhook_deliveries
               WHERE status = 'pending' ORDER BY id"""
        )
        return [PendingDelivery(int(r[0]), int(r[1]), r[2], int(r[3]), *r[4:]) for r in rows]

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
        with self._store.transaction(fold_derived=False) as tx:
            # Only a pending delivery changes: every process resumes the pending deliveries it finds at start, and
            # one that another process has meanwhile delivered (or given up on) must not be reopened by a late
            # outcome. One statement, so the check and the write cannot be split by another writer.
            tx.execute(
                """UPDATE webhook_deliveries SET status = %s, attempts = %s, next_attempt_at = %s, delivered_at = %s,
                          last_status = %s, last_error = %s, log = %s::json WHERE id = %s""",
                [status, attempts, next_attempt_at, delivered_at, last_status, last_error, log, delivery_id],
            )

    def deliveries(self, webhook_id: int, status: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        where = "webhook_id = %s"
        params: list[Any] = [webhook_id]
        if status:
            where += " AND status = %s"
            params.append(status)
        rows = self._store.query(
            f"""SELECT {", ".join(DELIVERY_COLUMNS)} FROM webhook_deliveries WHERE {where}
                ORDER BY id DESC LIMIT %s OFFSET %s""",
            [*params, limit, offset],
        )
        return [dict(zip(DELIVERY_COLUMNS, r, strict=True)) for r in rows]
