"""Things for map clients in DuckDB (portable SQL)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa
import shapely

from cityhub.store.duckdb.util import DuckDBHost, id_list, registered, tx_cursor
from cityhub.store.ops.geo import GeoOps
from cityhub.store.transaction import Transaction


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

    def extend_observed_areas(self, pairs: Sequence[tuple[int, int]]) -> list[int]:
        table = pa.table({
            "datastream_id": pa.array([p[0] for p in pairs], pa.int64()),
            "feature_of_interest_id": pa.array([p[1] for p in pairs], pa.int64()),
        })  # fmt: skip
        with self.store.transaction(fold_derived=False) as tx:
            cur = tx_cursor(tx)
            with registered(cur, "_ch_pairs", table):
                new = cur.execute(
                    """INSERT INTO datastream_features SELECT DISTINCT datastream_id, feature_of_interest_id
                       FROM _ch_pairs ON CONFLICT DO NOTHING RETURNING datastream_id"""
                ).fetchall()
            changed = sorted({int(r[0]) for r in new})
            if changed:
                self.recompute_observed_areas(tx, changed)
        return changed

    def recompute_observed_areas(self, tx: Transaction, datastream_ids: Sequence[int]) -> None:
        # DuckDB here has no spatial functions of its own (see DuckDBStore._register_udfs): GEOS through shapely,
        # as PostGIS computes it on the other store.
        rows = tx.execute(
            f"""SELECT x.datastream_id, f.feature FROM datastream_features x
                JOIN features_of_interest f ON f.id = x.feature_of_interest_id
                WHERE x.datastream_id IN {id_list()}""",
            [[int(i) for i in datastream_ids]],
        )
        shapes: dict[int, list[Any]] = {int(i): [] for i in datastream_ids}
        for ds, feature in rows:
            geom = _shape(feature)
            if geom is not None:
                shapes[int(ds)].append(geom)
        areas = pa.table({
            "id": pa.array(list(shapes), pa.int64()),
            "area": pa.array([_hull(g) for g in shapes.values()], pa.string()),
        })  # fmt: skip
        cur = tx_cursor(tx)
        with registered(cur, "_ch_areas", areas):
            for table in ("datastreams", "multi_datastreams"):  # one id space: each id is in one of them
                cur.execute(f"UPDATE {table} d SET observed_area = a.area FROM _ch_areas a WHERE d.id = a.id")


def _shape(text: str | None) -> Any:
    """A stored feature's geometry (GeoJSON, a Feature's geometry), or None where it holds none."""
    try:
        obj = orjson.loads(text) if text else None
        if isinstance(obj, dict) and obj.get("type") == "Feature":
            obj = obj.get("geometry")
        return shapely.geometry.shape(obj) if isinstance(obj, dict) else None
    except Exception:  # text/plain features, malformed GeoJSON: no geometry
        return None


def _hull(geoms: list[Any]) -> str | None:
    if not geoms:
        return None
    hull = shapely.GeometryCollection(geoms).convex_hull
    return orjson.dumps(shapely.geometry.mapping(hull)).decode()
