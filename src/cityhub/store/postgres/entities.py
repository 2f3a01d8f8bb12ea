"""The entity model's named writes in PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cityhub.store.ops.entities import LINKS_OF as _LINKS_OF
from cityhub.store.ops.entities import TABLE_OF as _TABLE
from cityhub.store.ops.entities import EntityOps
from cityhub.store.postgres.util import PgHost, tx_cursor
from cityhub.store.schema import DUPLICATE_KEY_COLUMNS as _KEY_COLUMNS
from cityhub.store.transaction import Transaction


class PgEntityOps(EntityOps):
    def __init__(self, store: PgHost) -> None:
        self.store = store

    def exists(self, tx: Transaction, table: str, entity_id: int) -> bool:
        return bool(tx.execute(f"SELECT 1 FROM {table} WHERE id = %s", [entity_id]))

    def update(self, tx: Transaction, table: str, entity_id: int, values: dict[str, Any]) -> None:
        if values:
            sets = ", ".join(f"{c} = %s" for c in values)
            tx.execute(f"UPDATE {table} SET {sets} WHERE id = %s", [*values.values(), entity_id])

    def link(
        self, tx: Transaction, link_table: str, this_col: str, other_col: str, this_id: int, other_id: int,
        rank: tuple[str, str] | None = None,
    ) -> None:  # fmt: skip
        if rank is None:
            tx.execute(
                f"INSERT INTO {link_table} ({this_col}, {other_col}) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                [this_id, other_id],
            )
            return
        rank_col, owner_col = rank
        owner = this_id if owner_col == this_col else other_id
        tx.execute(
            f"""INSERT INTO {link_table} ({this_col}, {other_col}, {rank_col})
                SELECT %s::bigint, %s::bigint, coalesce(max({rank_col}) + 1, 0) FROM {link_table}
                WHERE {owner_col} = %s""",
            [this_id, other_id, owner],
        )

    def ranked_links(
        self, tx: Transaction, link_table: str, owner_col: str, other_col: str, rank_col: str, owner_id: int
    ) -> list[int]:
        rows = tx.execute(
            f"SELECT {other_col} FROM {link_table} WHERE {owner_col} = %s ORDER BY {rank_col}", [owner_id]
        )
        return [int(r[0]) for r in rows]

    def columns_in_tx(
        self, tx: Transaction, table: str, entity_id: int, columns: Sequence[str]
    ) -> tuple[Any, ...] | None:
        rows = tx.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE id = %s", [entity_id])
        return tuple(rows[0]) if rows else None

    def unlink(
        self, tx: Transaction, link_table: str, this_col: str, this_id: int, other_col: str | None = None,
        other_id: int | None = None,
    ) -> None:  # fmt: skip
        if other_col is None:
            tx.execute(f"DELETE FROM {link_table} WHERE {this_col} = %s", [this_id])
        else:
            tx.execute(f"DELETE FROM {link_table} WHERE {this_col} = %s AND {other_col} = %s", [this_id, other_id])

    def add_historical_location(self, tx: Transaction, thing_id: int, time: datetime) -> int:
        hl_id = tx.insert("historical_locations", {"time": time, "thing_id": thing_id})
        # Typed: a bare parameter in a select list would reach the INSERT as text.
        tx.execute(
            """INSERT INTO historical_location_locations (historical_location_id, location_id)
               SELECT %s::bigint, location_id FROM thing_locations WHERE thing_id = %s""",
            [hl_id, thing_id],
        )
        return hl_id

    def adopt_historical_location(self, tx: Transaction, hl_id: int) -> int | None:
        rows = tx.execute(
            """SELECT h.thing_id FROM historical_locations h
               WHERE h.id = %s AND NOT EXISTS (
                   SELECT 1 FROM historical_locations o WHERE o.thing_id = h.thing_id AND o.time > h.time)""",
            [hl_id],
        )
        if not rows:
            return None
        thing_id = int(rows[0][0])
        tx.execute("DELETE FROM thing_locations WHERE thing_id = %s", [thing_id])
        tx.execute(
            """INSERT INTO thing_locations (thing_id, location_id)
               SELECT DISTINCT %s::bigint, location_id FROM historical_location_locations
               WHERE historical_location_id = %s""",
            [thing_id, hl_id],
        )
        return thing_id

    def columns_of(self, table: str, entity_id: int, columns: Sequence[str]) -> tuple[Any, ...] | None:
        rows = self.store.query(f"SELECT {', '.join(columns)} FROM {table} WHERE id = %s", [entity_id])
        return tuple(rows[0]) if rows else None

    def delete(self, tx: Transaction, entity_set: str, entity_id: int) -> None:
        if entity_set == "Things":
            for (ds,) in tx.execute("SELECT id FROM datastreams WHERE thing_id = %s", [entity_id]):
                self.delete(tx, "Datastreams", ds)
            for (ds,) in tx.execute("SELECT id FROM multi_datastreams WHERE thing_id = %s", [entity_id]):
                self.delete(tx, "MultiDatastreams", ds)
            for (cap,) in tx.execute("SELECT id FROM tasking_capabilities WHERE thing_id = %s", [entity_id]):
                self.delete(tx, "TaskingCapabilities", cap)
            for (hl,) in tx.execute("SELECT id FROM historical_locations WHERE thing_id = %s", [entity_id]):
                self.delete(tx, "HistoricalLocations", hl)
        elif entity_set == "Locations":
            tx.execute(
                "UPDATE features_of_interest SET from_location_id = NULL WHERE from_location_id = %s", [entity_id]
            )
            # Its HistoricalLocations go with it (SensorThings §10.4), not only their links to it.
            hls = tx.execute(
                "SELECT historical_location_id FROM historical_location_locations WHERE location_id = %s", [entity_id]
            )
            for (hl,) in hls:
                self.delete(tx, "HistoricalLocations", hl)
        elif entity_set in ("Sensors", "ObservedProperties"):
            col = "sensor_id" if entity_set == "Sensors" else "observed_property_id"
            for (ds,) in tx.execute(f"SELECT id FROM datastreams WHERE {col} = %s", [entity_id]):
                self.delete(tx, "Datastreams", ds)
            # A MultiDatastream goes with its Sensor, or with any one of its ObservedProperties.
            multi = (
                "SELECT id FROM multi_datastreams WHERE sensor_id = %s"
                if entity_set == "Sensors"
                else "SELECT multi_datastream_id FROM multi_datastream_observed_properties "
                "WHERE observed_property_id = %s"
            )
            for (ds,) in tx.execute(multi, [entity_id]):
                self.delete(tx, "MultiDatastreams", ds)
        elif entity_set in ("Datastreams", "MultiDatastreams"):
            for table in ("observations", "obs_hourly", "ds_latest", "datastream_features"):
                tx.execute(f"DELETE FROM {table} WHERE datastream_id = %s", [entity_id])
        elif entity_set == "Actuators":
            for (cap,) in tx.execute("SELECT id FROM tasking_capabilities WHERE actuator_id = %s", [entity_id]):
                self.delete(tx, "TaskingCapabilities", cap)
        elif entity_set == "TaskingCapabilities":
            tx.execute("DELETE FROM tasks WHERE tasking_capability_id = %s", [entity_id])
        elif entity_set == "FeaturesOfInterest":
            self._delete_observations(tx, "feature_of_interest_id", entity_id)
            # The observedAreas it was part of shrink to what is left.
            gone = tx.execute(
                "DELETE FROM datastream_features WHERE feature_of_interest_id = %s RETURNING datastream_id", [entity_id]
            )
            if gone:
                self.store.geo.recompute_observed_areas(tx, sorted({int(r[0]) for r in gone}))
        elif entity_set == "Observations":
            self._delete_observations(tx, "id", entity_id)
            return
        for link, col in _LINKS_OF.get(entity_set, ()):
            tx.execute(f"DELETE FROM {link} WHERE {col} = %s", [entity_id])
        tx.execute(f"DELETE FROM {_TABLE[entity_set]} WHERE id = %s", [entity_id])

    def _delete_observations(self, tx: Transaction, col: str, value: int) -> None:
        # The roll-ups of the touched (Datastream, hour) pairs are recomputed in one set-based pass, whatever
        # the number of Observations deleted.
        self.store.delete_observations_where(tx, col, value)

    def datastream_in_tx(self, tx: Transaction, ds_id: int) -> tuple[str, str | None, int] | None:
        rows = tx.execute(
            """SELECT observation_type, unit_of_measurement, thing_id FROM datastreams WHERE id = %s
               UNION ALL
               SELECT observation_type, unit_of_measurements, thing_id FROM multi_datastreams WHERE id = %s""",
            [ds_id, ds_id],
        )
        return (rows[0][0], rows[0][1], int(rows[0][2])) if rows else None

    def observation_key(self, tx: Transaction, obs_id: int) -> tuple[int, datetime] | None:
        rows = tx.execute("SELECT datastream_id, phenomenon_time FROM observations WHERE id = %s", [obs_id])
        return (int(rows[0][0]), rows[0][1]) if rows else None

    def observation_like(self, tx: Transaction, obs_id: int, values: dict[str, Any]) -> int | None:
        rows = tx.execute(
            """SELECT datastream_id, phenomenon_time, phenomenon_time_end, result_time, feature_of_interest_id,
                      CAST(parameters AS VARCHAR)
               FROM observations WHERE id = %s""",
            [obs_id],
        )
        if not rows:
            return None
        ds_id, *stored = rows[0]
        key = [values.get(c, v) for c, v in zip(_KEY_COLUMNS, stored, strict=True)]
        found = tx.execute(
            """SELECT id FROM observations
               WHERE datastream_id = %s AND phenomenon_time = %s AND phenomenon_time_end IS NOT DISTINCT FROM %s
                 AND result_time IS NOT DISTINCT FROM %s
                 AND feature_of_interest_id IS NOT DISTINCT FROM %s
                 AND CAST(parameters AS VARCHAR) IS NOT DISTINCT FROM %s AND id <> %s""",
            [ds_id, *key, obs_id],
        )
        return int(found[0][0]) if found else None

    def update_observation(self, tx: Transaction, obs_id: int, values: dict[str, Any]) -> None:
        key = self.observation_key(tx, obs_id)
        if key is None or not values:
            return
        ds_id, old_time = key
        new_time = values.get("phenomenon_time", old_time)
        if new_time != old_time:
            # PostgreSQL updates a primary-key (and partition-key) column in place, moving the row to the month
            # partition of its new time, which must exist first: made on this transaction's connection, since
            # another would wait for the locks it holds on observations.
            self.store.ensure_partitions([new_time], cur=tx_cursor(tx))
            values = {**values, "variant": _next_variant(tx, ds_id, new_time)}
        self.update(tx, "observations", obs_id, values)
        self.store.refresh_derived(tx, ds_id, sorted({old_time, new_time}))


def _next_variant(tx: Transaction, ds_id: int, time: datetime) -> int:
    """The ``variant`` free for one more Observation of the Datastream at ``time`` (schema.TABLES)."""
    rows = tx.execute(
        "SELECT coalesce(max(variant) + 1, 0) FROM observations WHERE datastream_id = %s AND phenomenon_time = %s",
        [ds_id, time],
    )
    return int(rows[0][0])
