"""The air-quality layer's operations in DuckDB."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from cityhub.store.duckdb.util import DuckDBHost
from cityhub.store.ops.airquality import (
    HOURLY_MEANS_SCHEMA,
    AirQualityOps,
    DerivedEntities,
    HourRange,
    StationStream,
    merge_ranges,
)


class DuckDBAirQuality(AirQualityOps):
    def __init__(self, store: DuckDBHost) -> None:
        self.store = store

    def station_streams(self) -> list[StationStream]:
        rows = self.store.query(
            """SELECT d.id, d.thing_id, t.name, op.name, op.definition, d.unit_of_measurement, d.properties
               FROM datastreams d JOIN things t ON t.id = d.thing_id
               JOIN observed_properties op ON op.id = d.observed_property_id ORDER BY d.id"""
        )
        return [StationStream(*r) for r in rows]

    def hourly_means(self, ranges: Sequence[HourRange]) -> pa.Table:
        merged = merge_ranges(ranges)
        if not merged:
            return HOURLY_MEANS_SCHEMA.empty_table()
        self.store.flush_derived()  # roll-ups of recent commits may still be deferred
        ds, lo, hi = (list(v) for v in zip(*merged, strict=True))
        # The overall bounds as well: they let the scan skip row groups of other times before the join.
        t = (
            self.store._cursor()
            .sql(
                """SELECT h.datastream_id, h.hour AS time, h.total / h.n AS value
                   FROM obs_hourly h
                   JOIN (SELECT unnest(CAST(? AS BIGINT[])) AS ds, unnest(CAST(? AS BIGINT[])) AS lo,
                                unnest(CAST(? AS BIGINT[])) AS hi) r
                     ON h.datastream_id = r.ds AND h.hour >= to_timestamp(r.lo) AND h.hour < to_timestamp(r.hi)
                   WHERE h.hour >= to_timestamp(?) AND h.hour < to_timestamp(?)
                   ORDER BY 1, 2""",
                params=[ds, lo, hi, min(lo), max(hi)],
            )
            .to_arrow_table()
        )
        return t.cast(HOURLY_MEANS_SCHEMA)

    def ensure_derived(
        self,
        observed_property: Mapping[str, Any],
        sensor: Mapping[str, Any],
        datastreams: Sequence[Mapping[str, Any]],
    ) -> DerivedEntities:
        created: list[tuple[str, int]] = []
        with self.store.transaction(fold_derived=False) as tx:
            found = tx.execute(
                "SELECT min(id) FROM observed_properties WHERE definition = ?", [observed_property["definition"]]
            )[0][0]
            if found is None:
                found = tx.insert("observed_properties", dict(observed_property))
                created.append(("ObservedProperties", int(found)))
            op_id = int(found)
            found = tx.execute("SELECT min(id) FROM sensors WHERE name = ?", [sensor["name"]])[0][0]
            if found is None:
                found = tx.insert("sensors", dict(sensor))
                created.append(("Sensors", int(found)))
            sensor_id = int(found)
            # One Arrow append for all of them (a first run derives every station of the city at once).
            ids = self.store.allocate_ids("datastreams", len(datastreams))
            ds_ids = [int(i) for i in ids]
            if datastreams:
                rows = [
                    {"id": i, **ds, "sensor_id": sensor_id, "observed_property_id": op_id}
                    for i, ds in zip(ds_ids, datastreams, strict=True)
                ]
                tx.append_table("datastreams", pa.Table.from_pylist(rows))
            created += [("Datastreams", i) for i in ds_ids]
        return DerivedEntities(op_id, sensor_id, ds_ids, created)
