"""Look-ups over stored Observations in DuckDB."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pyarrow as pa

from cityhub.store.base import OBSERVATION_BATCH_SCHEMA
from cityhub.store.duckdb.util import DuckDBHost, id_list, registered
from cityhub.store.ops.observations import ObservationOps


class DuckDBObservations(ObservationOps):
    def __init__(self, store: DuckDBHost) -> None:
        self.store = store

    def ids_by_key(self, keys: Sequence[tuple[int, datetime]]) -> dict[tuple[int, datetime], int]:
        if not keys:
            return {}
        # The keys' positions come back with the ids, so the answer is keyed by the caller's own tuples
        # (whatever their time zone), not by the stored times.
        table = pa.table(
            {
                "k": pa.array(range(len(keys)), pa.int64()),
                "datastream_id": pa.array([k[0] for k in keys], pa.int64()),
                "phenomenon_time": pa.array([k[1] for k in keys], pa.timestamp("us", tz="UTC")),
            }
        )
        cur = self.store._cursor()
        with registered(cur, "_ch_keys_asked", table):
            rows = cur.execute(
                """SELECT q.k, o.id FROM _ch_keys_asked q JOIN observations o
                   ON o.datastream_id = q.datastream_id AND o.phenomenon_time = q.phenomenon_time"""
            ).fetchall()
        return {keys[k]: int(i) for k, i in rows}

    def rows_by_id(self, ids: Sequence[int]) -> pa.Table:
        cols = ", ".join(f"o.{f.name}" for f in OBSERVATION_BATCH_SCHEMA)
        got = (
            self.store._cursor()
            .sql(
                f"SELECT {cols} FROM observations o SEMI JOIN {id_list()} i ON i.id = o.id ORDER BY o.id",
                params=[[int(i) for i in ids]],
            )
            .to_arrow_table()
        )
        return got.cast(OBSERVATION_BATCH_SCHEMA)
