"""Look-ups over stored Observations in PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pyarrow as pa

from cityhub.store.base import OBSERVATION_BATCH_SCHEMA
from cityhub.store.ops.observations import ObservationOps
from cityhub.store.postgres.util import PgHost, id_array


class PgObservations(ObservationOps):
    def __init__(self, store: PgHost) -> None:
        self.store = store

    def ids_by_key(self, keys: Sequence[tuple[int, datetime]]) -> dict[tuple[int, datetime], int]:
        if not keys:
            return {}
        # The keys' positions come back with the ids, so the answer is keyed by the caller's own tuples
        # (whatever their time zone), not by the stored times. A naive time is UTC, as it is on the embedded
        # store; the keys travel as two array parameters, whatever their number.
        times = [t if t.tzinfo is not None else t.replace(tzinfo=UTC) for _, t in keys]
        rows = self.store.query(
            """SELECT q.k, o.id
               FROM unnest(%s::bigint[], %s::timestamptz[]) WITH ORDINALITY AS q(datastream_id, phenomenon_time, k)
               JOIN observations o
                 ON o.datastream_id = q.datastream_id AND o.phenomenon_time = q.phenomenon_time""",
            [id_array([k[0] for k in keys]), times],
        )
        return {keys[int(k) - 1]: int(i) for k, i in rows}  # ORDINALITY counts from 1

    def rows_by_id(self, ids: Sequence[int]) -> pa.Table:
        cols = ", ".join(f.name for f in OBSERVATION_BATCH_SCHEMA)
        rows = self.store.query(
            f"SELECT {cols} FROM observations WHERE id = ANY(%s::bigint[]) ORDER BY id", [id_array(ids)]
        )
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in OBSERVATION_BATCH_SCHEMA]
        return pa.table(
            [pa.array(list(c), f.type) for c, f in zip(columns, OBSERVATION_BATCH_SCHEMA, strict=True)],
            schema=OBSERVATION_BATCH_SCHEMA,
        )
