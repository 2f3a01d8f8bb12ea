"""Dead letters in PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from cityhub.store.ops.deadletters import DEADLETTER_SCHEMA, DeadLetterOps, DeadLetterPage, StoredDeadLetter
from cityhub.store.postgres.util import PgHost, id_array, tx_cursor

_COLUMNS = "id, received_at, source, topic, payload, payload_encoding, reason, field"


class PgDeadLetters(DeadLetterOps):
    def __init__(self, store: PgHost) -> None:
        self.store = store

    def record(self, rows: pa.Table) -> np.ndarray:
        if not rows.num_rows:
            return np.empty(0, np.int64)
        rows = rows.select(DEADLETTER_SCHEMA.names).cast(DEADLETTER_SCHEMA)
        ids = self.store.allocate_ids("deadletters", rows.num_rows)
        # fold_derived=False: dead letters touch neither Observations nor roll-ups, so need not wait for them.
        with self.store.transaction(fold_derived=False) as tx:
            tx.append_table("deadletters", rows.add_column(0, "id", pa.array(ids, pa.int64())))
        return ids

    def page(
        self,
        *,
        source: str | None = None,
        topic_prefix: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> DeadLetterPage:
        where: list[str] = []
        params: list[Any] = []
        if source:
            where.append("source = %s")
            params.append(source)
        if topic_prefix:
            where.append("starts_with(topic, %s)")  # LIKE would need escaping
            params.append(topic_prefix)
        if since:
            where.append("received_at >= %s")
            params.append(since)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        (total,) = self.store.query(f"SELECT count(*) FROM deadletters {clause}", params)[0]
        rows = self.store.query(
            f"SELECT {_COLUMNS} FROM deadletters {clause} ORDER BY id DESC LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )
        return DeadLetterPage(int(total), [StoredDeadLetter(*r) for r in rows])

    def delete(self, ids: Sequence[int]) -> int:
        if not ids:
            return 0
        with self.store.transaction(fold_derived=False) as tx:
            # The statement's own row count: the ids that existed, without shipping them back.
            cur = tx_cursor(tx)
            cur.execute("DELETE FROM deadletters WHERE id = ANY(%s::bigint[])", [id_array(ids)])
            return max(cur.rowcount, 0)

    def delete_before(self, before: datetime | None) -> int:
        clause, params = ("WHERE received_at < %s", [before]) if before is not None else ("", [])
        with self.store.transaction(fold_derived=False) as tx:
            # The DELETE's row count, not RETURNING: clearing a flooded table must not ship every id back to
            # Python; nor a count before it, which a letter committed in between would make wrong.
            cur = tx_cursor(tx)
            cur.execute(f"DELETE FROM deadletters {clause}", params)
            return max(cur.rowcount, 0)
