"""The alerts aggregate on PostgreSQL (:class:`cityhub.store.ops.alerts.AlertOps`).

Several hub processes may share the database, so the writes that DuckDB does as "delete, then append" (it is the
only writer of its file) are upserts here: a delete followed by an insert of the same key races with another
process doing the same, and the later insert fails on the primary key.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from cityhub.store.ops.alerts import (
    ACTIVE_STATES,
    ALERT_COLUMNS,
    EVENT_COLUMNS,
    AlertOps,
    AlertQuery,
    ModelRows,
    RuleRecord,
)
from cityhub.store.postgres.util import PgHost, id_array
from cityhub.store.transaction import Transaction

_ALERT_SELECT = f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts"


def _pg_type(field: pa.Field, json_columns: Collection[str]) -> str:
    """The PostgreSQL type an Arrow column travels as (one array parameter of it). JSON columns are named: their
    values are text in Arrow, and text converts to json only by an explicit cast."""
    if field.name in json_columns:
        return "json"
    t = field.type
    if pa.types.is_int64(t):
        return "bigint"
    if pa.types.is_int32(t):
        return "integer"
    if pa.types.is_floating(t):
        return "double precision"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_timestamp(t):
        return "timestamptz"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t):
        return "text"
    raise TypeError(f"no PostgreSQL type for column {field.name!r} of type {t}")


def upsert_rows(tx: Transaction, table: str, key: str, rows: pa.Table, json_columns: Collection[str] = ()) -> None:
    """Insert ``rows`` into ``table``, replacing whole the stored rows with the same ``key``, in one statement.

    Each column travels as one array parameter (``unnest``), so the statement binds as many values as there are
    columns whatever the number of rows. Rows go in key order, so that two processes upserting overlapping keys
    lock them in the same order rather than deadlock.
    """
    if not rows.num_rows:
        return
    cols = rows.column_names
    arrays = ", ".join(f"%s::{_pg_type(rows.schema.field(c), json_columns)}[]" for c in cols)
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c != key)
    tx.execute(
        f"""INSERT INTO {table} ({", ".join(cols)})
            SELECT * FROM unnest({arrays}) AS r({", ".join(cols)}) ORDER BY {key}
            ON CONFLICT ({key}) DO UPDATE SET {updates}""",
        [rows.column(c).to_pylist() for c in cols],
    )


class PgAlertOps(AlertOps):
    def __init__(self, store: PgHost) -> None:
        self._store = store

    # -- rules --------------------------------------------------------------------------------------------------
    def load_rules(self) -> list[RuleRecord]:
        rows = self._store.query(
            """SELECT id, name, ruleset, enabled, spec, created_at, updated_at, created_by
               FROM alert_rules ORDER BY id"""
        )
        return [RuleRecord(int(r[0]), *r[1:]) for r in rows]

    def insert_rule(self, rule: RuleRecord) -> None:
        with self._store.transaction(fold_derived=False) as tx:
            tx.execute(
                """INSERT INTO alert_rules (id, name, ruleset, enabled, spec, created_at, updated_at, created_by)
                   VALUES (%s, %s, %s, %s, %s::json, %s, %s, %s)""",
                list(rule),
            )

    def update_rule(self, rule_id: int, name: str, enabled: bool, spec: str, updated_at: datetime) -> None:
        with self._store.transaction(fold_derived=False) as tx:
            tx.execute(
                "UPDATE alert_rules SET name = %s, enabled = %s, spec = %s::json, updated_at = %s WHERE id = %s",
                [name, enabled, spec, updated_at, rule_id],
            )

    def delete_rule(self, rule_id: int) -> None:
        with self._store.transaction(fold_derived=False) as tx:
            tx.execute("DELETE FROM alert_rules WHERE id = %s", [rule_id])

    # -- alerts and events --------------------------------------------------------------------------------------
    def save_alerts(self, tx: Transaction, alerts: pa.Table, events: pa.Table) -> None:
        # Replace rather than update: a changed alert is written whole, like a new one (an upsert of every
        # column, not DuckDB's delete-then-append, which two processes could interleave).
        upsert_rows(tx, "alerts", "id", alerts, json_columns=("details",))
        if events.num_rows:
            # Events only accumulate, with ids from the shared counter: nothing for another process to collide with.
            tx.append_table("alert_events", events)

    def active_alerts(self) -> list[dict[str, Any]]:
        rows = self._store.query(f"{_ALERT_SELECT} WHERE state = ANY(%s::text[]) ORDER BY id", [list(ACTIVE_STATES)])
        return [dict(zip(ALERT_COLUMNS, r, strict=True)) for r in rows]

    def get_alert(self, alert_id: int) -> dict[str, Any] | None:
        rows = self._store.query(f"{_ALERT_SELECT} WHERE id = %s", [alert_id])
        return dict(zip(ALERT_COLUMNS, rows[0], strict=True)) if rows else None

    def alert_events(self, alert_id: int) -> list[dict[str, Any]]:
        rows = self._store.query(
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM alert_events WHERE alert_id = %s ORDER BY id", [alert_id]
        )
        return [dict(zip(EVENT_COLUMNS, r, strict=True)) for r in rows]

    def query_alerts(self, q: AlertQuery) -> tuple[int, list[dict[str, Any]]]:
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if q.state == "active":
            where.append("state = ANY(%s::text[])")
            params.append(list(ACTIVE_STATES))
        elif q.state is not None:
            where.append("state = %s")
            params.append(q.state)
        for col, val in (("rule_id", q.rule_id), ("subject_id", q.subject_id), ("subject_type", q.subject_type),
                         ("severity", q.severity)):  # fmt: skip
            if val is not None:
                where.append(f"{col} = %s")
                params.append(val)
        if q.updated_since is not None:
            where.append("updated_at >= %s")
            params.append(q.updated_since)
        cond = " AND ".join(where)
        total = self._store.query(f"SELECT count(*) FROM alerts WHERE {cond}", params)[0][0]
        rows = self._store.query(
            f"{_ALERT_SELECT} WHERE {cond} ORDER BY opened_at DESC, id DESC LIMIT %s OFFSET %s",
            [*params, q.limit, q.offset],
        )
        return int(total), [dict(zip(ALERT_COLUMNS, r, strict=True)) for r in rows]

    def events_after(self, event_id: int, limit: int) -> list[tuple[int, str]]:
        rows = self._store.query(
            "SELECT id, payload FROM alert_events WHERE id > %s ORDER BY id LIMIT %s", [event_id, limit]
        )
        return [(int(i), p) for i, p in rows]

    # -- evaluation state ---------------------------------------------------------------------------------------
    def load_states(self) -> list[tuple[int, str]]:
        return [(int(k), s) for k, s in self._store.query("SELECT state_key, state FROM alert_state")]

    def save_states(self, tx: Transaction, keys: Sequence[int], states: pa.Table) -> None:
        if keys:
            # Lock the stored rows of every key first, in key order: the delete and the upsert below each lock in
            # their own order, and two processes saving overlapping keys could otherwise take them crosswise and
            # deadlock. (Keys not stored yet are not locked here; the upsert resolves their race.)
            tx.execute(
                """SELECT state_key FROM alert_state WHERE state_key = ANY(%s::bigint[])
                   ORDER BY state_key FOR UPDATE""",
                [id_array(keys)],
            )
        # A key listed without a row is a state gone quiet: delete it. The others are upserted rather than deleted
        # and appended, so that a row another process inserted meanwhile is replaced, not a key violation.
        kept = set(states.column("state_key").to_pylist()) if states.num_rows else set()
        gone = [k for k in keys if k not in kept]
        if gone:
            tx.execute("DELETE FROM alert_state WHERE state_key = ANY(%s::bigint[])", [id_array(gone)])
        upsert_rows(tx, "alert_state", "state_key", states, json_columns=("state",))

    # -- the model, for rule scopes -----------------------------------------------------------------------------
    def model_rows(self) -> ModelRows:
        q = self._store.query
        datastreams = q(
            """SELECT d.id, d.thing_id, d.name, d.unit_of_measurement, d.observed_property_id, d.properties
               FROM datastreams d JOIN observed_properties op ON op.id = d.observed_property_id ORDER BY d.id"""
        )
        # The least Location as text: a deterministic choice among a Thing's Locations (json has no ordering, its
        # text does). Grouped by the key alone: json has no equality either, and name and properties depend on it.
        things = q(
            """SELECT t.id, t.name, t.properties, min(l.location::text) FROM things t
               LEFT JOIN thing_locations tl ON tl.thing_id = t.id LEFT JOIN locations l ON l.id = tl.location_id
               GROUP BY t.id"""
        )
        ops = q("SELECT id, name, definition FROM observed_properties")
        return ModelRows(datastreams, things, ops)
