"""Things for map clients in DuckDB (portable SQL)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cityhub.store.duckdb.util import DuckDBHost
from cityhub.store.ops.geo import GeoOps


class DuckDBGeoOps(GeoOps):
    def __init__(self, store: DuckDBHost) -> None:
        self.store = store

    def things(
        self, kind_hints: Sequence[str], observed_properties: Sequence[str]
    ) -> tuple[list[tuple[int, str, str | None, str | None]], list[tuple[Any, ...]]]:
        clauses: list[str] = []
        params: list[Any] = []
        if kind_hints:
            clauses.append("(" + " OR ".join("t.properties LIKE ?" for _ in kind_hints) + ")")
            params += [f"%{k}%" for k in kind_hints]
        if observed_properties:
            marks = ", ".join("?" for _ in observed_properties)
            clauses.append(
                f"""t.id IN (SELECT d2.thing_id FROM datastreams d2
                    JOIN observed_properties op2 ON op2.id = d2.observed_property_id
                    WHERE op2.definition IN ({marks}) OR op2.name IN ({marks}))"""
            )
            params += [*observed_properties, *observed_properties]
        where = "WHERE " + " AND ".join(clauses) if clauses else ""
        things = self.store.query(
            f"""SELECT t.id, t.name, t.properties, l.location FROM things t
                LEFT JOIN (SELECT thing_id, min(location_id) AS location_id FROM thing_locations GROUP BY thing_id) tl
                  ON tl.thing_id = t.id
                LEFT JOIN locations l ON l.id = tl.location_id {where} ORDER BY t.id""",
            params,
        )
        streams = self.store.query(
            f"""SELECT d.id, d.thing_id, d.name, d.unit_of_measurement, op.name, op.definition FROM datastreams d
                JOIN observed_properties op ON op.id = d.observed_property_id
                JOIN things t ON t.id = d.thing_id {where} ORDER BY d.id""",
            params,
        )
        return [(int(r[0]), r[1], r[2], r[3]) for r in things], streams
