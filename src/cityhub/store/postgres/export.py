"""Exports in PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from cityhub.store.ops.export import ExportOps
from cityhub.store.postgres.util import PgHost, id_array

# The columns (and Arrow types) the embedded store's export returns, which the CSV and Parquet writers expect.
_SCHEMA = pa.schema(
    [
        ("thing_id", pa.int64()),
        ("thing", pa.string()),
        ("datastream", pa.string()),
        ("observed_property", pa.string()),
        ("uom", pa.string()),
        ("time", pa.timestamp("us", tz="UTC")),
        ("result", pa.float64()),
        ("result_text", pa.string()),
    ]
)
# Rows fetched from the server-side cursor at a time: an export may be millions of rows, and only this many are
# ever Python tuples at once; the rest are Arrow batches.
_CHUNK = 10_000


class PgExport(ExportOps):
    def __init__(self, store: PgHost) -> None:
        self.store = store

    def observations(
        self,
        *,
        datastreams: Sequence[int] = (),
        things: Sequence[int] = (),
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int,
    ) -> pa.Table:
        where: list[str] = []
        params: list[Any] = []
        if datastreams:
            where.append("o.datastream_id = ANY(%s::bigint[])")
            params.append(id_array(datastreams))
        if things:
            where.append("d.thing_id = ANY(%s::bigint[])")
            params.append(id_array(things))
        if start:
            where.append("o.phenomenon_time >= %s")
            params.append(start)
        if end:
            where.append("o.phenomenon_time < %s")
            params.append(end)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = f"""SELECT d.thing_id, t.name AS thing, d.name AS datastream, op.name AS observed_property,
                         d.unit_of_measurement AS uom, o.phenomenon_time AS time, o.result_number AS result,
                         coalesce(o.result_string,
                                    CASE WHEN o.result_number IS NULL THEN o.result_json END) AS result_text
                  FROM observations o JOIN datastreams d ON d.id = o.datastream_id
                  JOIN things t ON t.id = d.thing_id
                  JOIN observed_properties op ON op.id = d.observed_property_id
                  {clause} ORDER BY d.id, o.phenomenon_time LIMIT %s"""
        batches: list[pa.RecordBatch] = []
        # A server-side cursor streams the rows instead of holding the whole result in the client; it lives in a
        # transaction (the pool's connections are in autocommit, where a cursor without HOLD cannot be declared).
        with self.store.connection() as con, con.transaction(), con.cursor(name="cityhub_export") as cur:
            cur.execute(sql, [*params, limit])
            while rows := cur.fetchmany(_CHUNK):
                columns = zip(*rows, strict=True)
                batches.append(
                    pa.RecordBatch.from_arrays(
                        [pa.array(col, f.type) for col, f in zip(columns, _SCHEMA, strict=True)], schema=_SCHEMA
                    )
                )
        return pa.Table.from_batches(batches, schema=_SCHEMA)
