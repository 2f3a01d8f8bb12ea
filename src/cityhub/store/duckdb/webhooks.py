"""Webhooks and their outbox on DuckDB (:class:`cityhub.store.ops.webhooks.WebhookOps`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa

from cityhub.store.duckdb.util import DuckDBHost
from cityhub.store.ops.webhooks import DELIVERY_COLUMNS, PendingDelivery, WebhookOps, WebhookRecord
from cityhub.store.transaction import Transaction


class DuckDBWebhookOps(WebhookOps):
    def __init__(self, store: DuckDBHost) -> None:
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
                   VALUES (?, ?, ?, ?, ?, ?, ?)""",
                list(hook),
            )

    def delete_webhook(self, webhook_id: int) -> None:
        with self._store.transaction(fold_derived=False) as tx:
            tx.execute("DELETE FROM webhook_deliveries WHERE webhook_id = ?", [webhook_id])
            tx.execute("DELETE FROM webhooks WHERE id = ?", [webhook_id])

    def add_deliveries(self, tx: Transaction, deliveries: pa.Table) -> None:
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
            tx.execute(
                """UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, delivered_at = ?,
                          last_status = ?, last_error = ?, log = ? WHERE id = ?""",
                [status, attempts, next_attempt_at, delivered_at, last_status, last_error, log, delivery_id],
            )

    def deliveries(self, webhook_id: int, status: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        where = "webhook_id = ?"
        params: list[Any] = [webhook_id]
        if status:
            where += " AND status = ?"
            params.append(status)
        rows = self._store.query(
            f"""SELECT {", ".join(DELIVERY_COLUMNS)} FROM webhook_deliveries WHERE {where}
                ORDER BY id DESC LIMIT ? OFFSET ?""",
            [*params, limit, offset],
        )
        return [dict(zip(DELIVERY_COLUMNS, r, strict=True)) for r in rows]
