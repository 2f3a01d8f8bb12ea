"""The air-quality layer's operations in PostgreSQL."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
import pyarrow as pa

from cityhub.store.ops.airquality import (
    HOURLY_MEANS_SCHEMA,
    AirQualityOps,
    DerivedEntities,
    HourRange,
    StationStream,
    merge_ranges,
)
from cityhub.store.postgres.copy import decode_fixed
from cityhub.store.postgres.util import PgHost, id_array

# Advisory lock key for "derived air-quality entities are being found or made" (crc32 of the name): two hub
# processes deriving at once must not both create the ObservedProperty or the Sensor.
_DERIVED_LOCK = zlib.crc32(b"cityhub.airquality.derived")


class PgAirQuality(AirQualityOps):
    def __init__(self, store: PgHost) -> None:
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
        ds, lo, hi = zip(*merged, strict=True)
        # One index range scan of the roll-up per range (a lateral join: a plain join over the ranges may scan the
        # whole table); bounds as epoch seconds in array text, which costs far less to send than adapted datetimes.
        # Read as a binary copy (every value is fixed-width and present): no Python object per value.
        query = psycopg.sql.SQL(
            """COPY (SELECT r.ds, h.hour, h.total / h.n
                     FROM unnest({}::bigint[], {}::bigint[], {}::bigint[]) AS r(ds, lo, hi)
                     CROSS JOIN LATERAL (
                         SELECT hour, total, n FROM obs_hourly
                         WHERE datastream_id = r.ds AND hour >= to_timestamp(r.lo) AND hour < to_timestamp(r.hi)
                     ) h
                     ORDER BY 1, 2) TO STDOUT (FORMAT BINARY)"""
        ).format(*(psycopg.sql.Literal(id_array(v)) for v in (ds, lo, hi)))
        buf = bytearray()
        with self.store.connection() as con:
            cur = con.cursor()
            with cur.copy(query) as cp:
                for chunk in cp:
                    buf += chunk
        table = decode_fixed(bytes(buf), HOURLY_MEANS_SCHEMA.names, ["int8", "timestamptz", "float8"])
        if table is None:  # not expected: the roll-up's columns are all NOT NULL
            raise ValueError("hourly means could not be decoded")
        return table.cast(HOURLY_MEANS_SCHEMA)

    def ensure_derived(
        self,
        observed_property: Mapping[str, Any],
        sensor: Mapping[str, Any],
        datastreams: Sequence[Mapping[str, Any]],
    ) -> DerivedEntities:
        created: list[tuple[str, int]] = []
        with self.store.transaction(fold_derived=False) as tx:
            # Held to the commit; the look-ups below run after it, so they see what a process that held it
            # before committed.
            tx.execute("SELECT pg_advisory_xact_lock(%s::bigint)", [_DERIVED_LOCK])
            found = tx.execute(
                "SELECT min(id) FROM observed_properties WHERE definition = %s", [observed_property["definition"]]
            )[0][0]
            if found is None:
                found = tx.insert("observed_properties", dict(observed_property))
                created.append(("ObservedProperties", int(found)))
            op_id = int(found)
            found = tx.execute("SELECT min(id) FROM sensors WHERE name = %s", [sensor["name"]])[0][0]
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
