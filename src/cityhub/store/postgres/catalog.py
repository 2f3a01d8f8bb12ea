"""The model catalogue in PostgreSQL."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

from cityhub.store.ops.catalog import CatalogOps, DatastreamInfo, components, unit_symbol
from cityhub.store.postgres.util import PgHost, id_array
from cityhub.store.transaction import Transaction

# Advisory lock key for "FeaturesOfInterest are being made from Locations" (crc32 of the name): hub processes
# sharing the database serialise on it, as the threads of one embedded store do on its write lock.
_FEATURES_LOCK = zlib.crc32(b"cityhub.location_features")


class PgCatalog(CatalogOps):
    def __init__(self, store: PgHost) -> None:
        self.store = store

    # -- Datastreams --------------------------------------------------------------------------------------
    def datastream_infos(self) -> list[DatastreamInfo]:
        rows = self.store.query(
            "SELECT id, observation_type, unit_of_measurement, thing_id FROM datastreams ORDER BY id"
        )
        infos = [DatastreamInfo(int(i), ot, unit_symbol(uom), int(t)) for i, ot, uom, t in rows]
        multi = self.store.query(
            "SELECT id, observation_type, unit_of_measurements, thing_id FROM multi_datastreams ORDER BY id"
        )
        infos += [DatastreamInfo(int(i), ot, None, int(t), components(uoms)) for i, ot, uoms, t in multi]
        return sorted(infos, key=lambda d: d.id)

    def datastream_ids(self, *, thing: int | None = None, observed_property: int | None = None) -> list[int]:
        where: list[str] = []
        params: list[Any] = []
        if thing is not None:
            where.append("thing_id = %s")
            params.append(thing)
        if observed_property is not None:
            where.append("observed_property_id = %s")
            params.append(observed_property)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        return [int(r[0]) for r in self.store.query(f"SELECT id FROM datastreams {clause} ORDER BY id", params)]

    def datastream_ids_by_name(self, thing: int | None = None) -> dict[str, int]:
        clause, params = ("WHERE thing_id = %s", [thing]) if thing is not None else ("", [])
        rows = self.store.query(f"SELECT name, min(id) FROM datastreams {clause} GROUP BY name", params)
        return {name: int(i) for name, i in rows}

    # -- Things, Sensors, ObservedProperties ----------------------------------------------------------------
    def thing_ids_by_name(self) -> dict[str, int]:
        return {name: int(i) for name, i in self.store.query("SELECT name, min(id) FROM things GROUP BY name")}

    def sensor_id(self, name: str) -> int | None:
        (found,) = self.store.query("SELECT min(id) FROM sensors WHERE name = %s", [name])[0]
        return None if found is None else int(found)

    def observed_property_id(self, name: str, definition: str | None = None) -> int | None:
        sql, params = "SELECT min(id) FROM observed_properties WHERE name = %s", [name]
        if definition is not None:
            sql, params = sql + " AND definition = %s", [name, definition]
        (found,) = self.store.query(sql, params)[0]
        return None if found is None else int(found)

    def first_locations(self, thing_ids: Sequence[int] | None = None) -> dict[int, str | None]:
        sql = """SELECT f.thing_id, l.location
                 FROM (SELECT thing_id, min(location_id) AS location_id FROM thing_locations {where}
                       GROUP BY thing_id) f
                 JOIN locations l ON l.id = f.location_id"""
        if thing_ids is None:
            rows = self.store.query(sql.format(where=""))
        elif not thing_ids:
            return {}
        else:
            rows = self.store.query(sql.format(where="WHERE thing_id = ANY(%s::bigint[])"), [id_array(thing_ids)])
        return {int(t): loc for t, loc in rows}

    # -- FeaturesOfInterest ---------------------------------------------------------------------------------
    def existing_features(self, ids: Sequence[int]) -> set[int]:
        if not len(ids):
            return set()
        rows = self.store.query("SELECT id FROM features_of_interest WHERE id = ANY(%s::bigint[])", [id_array(ids)])
        return {int(r[0]) for r in rows}

    def location_features_in(
        self, tx: Transaction, datastream_ids: Sequence[int], made: list[int] | None = None
    ) -> dict[int, int | None]:
        out: dict[int, int | None] = dict.fromkeys(datastream_ids)
        if not out:
            return out
        # Held to the end of the caller's transaction: another one looking for the same feature waits, then (each
        # statement reading what is committed by then) finds the one made here instead of making its own.
        tx.execute("SELECT pg_advisory_xact_lock(%s::bigint)", [_FEATURES_LOCK])
        rows = tx.execute(
            # Per Datastream, index lookups of its Thing's first Location and that Location's first feature: grouping
            # every Thing's Locations and every feature first cost 40 ms a call with 10,000 Things.
            """SELECT d.id, l.id, l.name, l.description, l.encoding_type, l.location, f.id
               FROM (SELECT id, thing_id FROM datastreams WHERE id = ANY(%s::bigint[])
                     UNION ALL SELECT id, thing_id FROM multi_datastreams WHERE id = ANY(%s::bigint[])) d
               CROSS JOIN LATERAL (SELECT min(location_id) AS location_id FROM thing_locations
                                   WHERE thing_id = d.thing_id) tl
               JOIN locations l ON l.id = tl.location_id
               CROSS JOIN LATERAL (SELECT min(id) AS id FROM features_of_interest
                                   WHERE from_location_id = l.id) f""",
            [id_array(list(out)), id_array(list(out))],
        )
        by_location: dict[int, int] = {}  # Location id → feature made here, for Datastreams sharing a Thing
        for ds_id, loc_id, name, description, encoding, location, foi_id in rows:
            if foi_id is None:
                foi_id = by_location.get(loc_id)
            if foi_id is None:
                foi_id = by_location[loc_id] = tx.insert(
                    "features_of_interest",
                    {
                        "name": name,
                        "description": description,
                        "encoding_type": encoding,
                        "feature": location,
                        "from_location_id": loc_id,
                    },
                )
                if made is not None:
                    made.append(int(foi_id))
            out[int(ds_id)] = int(foi_id)
        return out

    def location_features(self, datastream_ids: Sequence[int], made: list[int] | None = None) -> dict[int, int | None]:
        # fold_derived=False: only entity tables are read and written, never Observations or their roll-ups.
        with self.store.transaction(fold_derived=False) as tx:
            return self.location_features_in(tx, datastream_ids, made)
