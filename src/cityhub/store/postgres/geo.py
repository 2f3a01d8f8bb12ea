"""Things for map clients in PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cityhub.store.ops.geo import GeoOps
from cityhub.store.postgres.util import PgHost, id_array
from cityhub.store.transaction import Transaction


class PgGeoOps(GeoOps):
    def __init__(self, store: PgHost) -> None:
        self.store = store

    def things(
        self, kind_hints: Sequence[str], observed_properties: Sequence[str]
    ) -> tuple[list[tuple[int, str, str | None, str | None]], list[tuple[Any, ...]]]:
        clauses: list[str] = []
        params: list[Any] = []
        if kind_hints:
            # strpos, not LIKE: the hint is a substring of the stored JSON text, with no pattern characters to
            # escape (PostgreSQL's LIKE treats a backslash as one); json has no text operators, hence the cast.
            clauses.append("(" + " OR ".join("strpos(t.properties::text, %s) > 0" for _ in kind_hints) + ")")
            params += list(kind_hints)
        if observed_properties:
            clauses.append(
                """t.id IN (SELECT d2.thing_id FROM datastreams d2
                    JOIN observed_properties op2 ON op2.id = d2.observed_property_id
                    WHERE op2.definition = ANY(%s::text[]) OR op2.name = ANY(%s::text[]))"""
            )
            params += [list(observed_properties), list(observed_properties)]
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

    def extend_observed_areas(self, pairs: Sequence[tuple[int, int]]) -> list[int]:
        with self.store.transaction(fold_derived=False) as tx:
            new = tx.execute(
                """INSERT INTO datastream_features
                   SELECT DISTINCT * FROM unnest(%s::bigint[], %s::bigint[]) ORDER BY 1, 2
                   ON CONFLICT DO NOTHING RETURNING datastream_id""",
                [id_array([p[0] for p in pairs]), id_array([p[1] for p in pairs])],
            )
            changed = sorted({int(r[0]) for r in new})
            if changed:
                self.recompute_observed_areas(tx, changed)
        return changed

    def recompute_observed_areas(self, tx: Transaction, datastream_ids: Sequence[int]) -> None:
        # feature_geom is NULL for a feature without a GeoJSON geometry; ST_Collect skips NULLs. Datastreams and
        # MultiDatastreams share one id space: each id is in one of the two tables.
        for table in ("datastreams", "multi_datastreams"):
            tx.execute(
                f"""UPDATE {table} d SET observed_area = (
                       SELECT ST_AsGeoJSON(ST_ConvexHull(ST_Collect(f.feature_geom)))::json
                       FROM datastream_features x JOIN features_of_interest f ON f.id = x.feature_of_interest_id
                       WHERE x.datastream_id = d.id)
                   WHERE d.id = ANY(%s::bigint[])""",
                [id_array(list(datastream_ids))],
            )
