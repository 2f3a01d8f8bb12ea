"""Exports in DuckDB."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from datetime import datetime
from typing import Any

import pyarrow as pa

from cityhub.store.duckdb.util import DuckDBHost, id_table, registered
from cityhub.store.ops.export import ExportOps


class DuckDBExport(ExportOps):
    def __init__(self, store: DuckDBHost) -> None:
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
        cur = self.store._cursor()
        with ExitStack() as views:
            if datastreams:
                views.enter_context(registered(cur, "_ch_export_ds", id_table(datastreams)))
                where.append("o.datastream_id IN (SELECT id FROM _ch_export_ds)")
            if things:
                views.enter_context(registered(cur, "_ch_export_things", id_table(things)))
                where.append("d.thing_id IN (SELECT id FROM _ch_export_things)")
            if start:
                where.append("o.phenomenon_time >= ?")
                params.append(start)
            if end:
                where.append("o.phenomenon_time < ?")
                params.append(end)
            clause = f"WHERE {' AND '.join(where)}" if where else ""
            return cur.sql(
                f"""SELECT d.thing_id, t.name AS thing, d.name AS datastream, op.name AS observed_property,
                           d.unit_of_measurement AS uom, o.phenomenon_time AS time, o.result_number AS result,
                           coalesce(o.result_string,
                                    CASE WHEN o.result_number IS NULL THEN o.result_json END) AS result_text
                    FROM observations o JOIN datastreams d ON d.id = o.datastream_id
                    JOIN things t ON t.id = d.thing_id
                    JOIN observed_properties op ON op.id = d.observed_property_id
                    {clause} ORDER BY d.id, o.phenomenon_time LIMIT ?""",
                params=[*params, limit],
            ).to_arrow_table()
