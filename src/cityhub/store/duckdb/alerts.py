"""The alerts aggregate on DuckDB (:class:`cityhub.store.ops.alerts.AlertOps`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from cityhub.store.duckdb.util import DuckDBHost
from cityhub.store.ops.alerts import (
    ACTIVE_STATES,
    ALERT_COLUMNS,
    EVENT_COLUMNS,
    AlertOps,
    AlertQuery,
    ModelRows,
    RuleRecord,
)
from cityhub.store.transaction import Transaction

_ALERT_SELECT = f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts"


def tx_cursor(tx: Transaction) -> duckdb.DuckDBPyConnection:
    """The cursor a DuckDB transaction runs on, to register Arrow tables on (read without importing store.py,
    which imports this module)."""
    cur = getattr(tx, "cur", None)
    if not isinstance(cur, duckdb.DuckDBPyConnection):
        raise TypeError(f"not a DuckDB transaction: {tx!r}")
    return cur


def delete_ids(tx: Transaction, table: str, column: str, ids: Sequence[int]) -> None:
    """Delete the rows of ``table`` whose ``column`` is among ``ids``: the ids travel as a registered Arrow table,
    since thousands of state keys per flush would make an IN list of parameters slow to bind."""
    if not ids:
        return
    cur = tx_cursor(tx)
    cur.register("_ch_del_ids", pa.table({"k": pa.array(ids, pa.int64())}))
    try:
        cur.execute(f"DELETE FROM {table} WHERE {column} IN (SELECT k FROM _ch_del_ids)")
    finally:
        cur.unregister("_ch_del_ids")


class DuckDBAlertOps(AlertOps):
    def __init__(self, store: DuckDBHost) -> None:
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
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                list(rule),
            )

    def update_rule(self, rule_id: int, name: str, enabled: bool, spec: str, updated_at: datetime) -> None:
        with self._store.transaction(fold_derived=False) as tx:
            tx.execute(
                "UPDATE alert_rules SET name = ?, enabled = ?, spec = ?, updated_at = ? WHERE id = ?",
                [name, enabled, spec, updated_at, rule_id],
            )

    def delete_rule(self, rule_id: int) -> None:
        with self._store.transaction(fold_derived=False) as tx:
            tx.execute("DELETE FROM alert_rules WHERE id = ?", [rule_id])

    # -- alerts and events --------------------------------------------------------------------------------------
    def save_alerts(self, tx: Transaction, alerts: pa.Table, events: pa.Table) -> None:
        if alerts.num_rows:
            # Replace rather than update: a changed alert is written whole, like a new one.
            delete_ids(tx, "alerts", "id", alerts.column("id").to_pylist())
            tx.append_table("alerts", alerts)
        if events.num_rows:
            tx.append_table("alert_events", events)

    def active_alerts(self) -> list[dict[str, Any]]:
        marks = ", ".join("?" for _ in ACTIVE_STATES)
        rows = self._store.query(f"{_ALERT_SELECT} WHERE state IN ({marks}) ORDER BY id", ACTIVE_STATES)
        return [dict(zip(ALERT_COLUMNS, r, strict=True)) for r in rows]

    def get_alert(self, alert_id: int) -> dict[str, Any] | None:
        rows = self._store.query(f"{_ALERT_SELECT} WHERE id = ?", [alert_id])
        return dict(zip(ALERT_COLUMNS, rows[0], strict=True)) if rows else None

    def alert_events(self, alert_id: int) -> list[dict[str, Any]]:
        rows = self._store.query(
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM alert_events WHERE alert_id = ? ORDER BY id", [alert_id]
        )
        return [dict(zip(EVENT_COLUMNS, r, strict=True)) for r in rows]

    def query_alerts(self, q: AlertQuery) -> tuple[int, list[dict[str, Any]]]:
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if q.state == "active":
            where.append(f"state IN ({', '.join('?' for _ in ACTIVE_STATES)})")
            params.extend(ACTIVE_STATES)
        elif q.state is not None:
            where.append("state = ?")
            params.append(q.state)
        for col, val in (("rule_id", q.rule_id), ("subject_id", q.subject_id), ("subject_type", q.subject_type),
                         ("severity", q.severity)):  # fmt: skip
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        if q.updated_since is not None:
            where.append("updated_at >= ?")
            params.append(q.updated_since)
        cond = " AND ".join(where)
        total = self._store.query(f"SELECT count(*) FROM alerts WHERE {cond}", params)[0][0]
        rows = self._store.query(
            f"{_ALERT_SELECT} WHERE {cond} ORDER BY opened_at DESC, id DESC LIMIT ? OFFSET ?",
            [*params, q.limit, q.offset],
        )
        return int(total), [dict(zip(ALERT_COLUMNS, r, strict=True)) for r in rows]

    def events_after(self, event_id: int, limit: int) -> list[tuple[int, str]]:
        rows = self._store.query(
            "SELECT id, payload FROM alert_events WHERE id > ? ORDER BY id LIMIT ?", [event_id, limit]
        )
        return [(int(i), p) for i, p in rows]

    # -- evaluation state ---------------------------------------------------------------------------------------
    def load_states(self) -> list[tuple[int, str]]:
        return [(int(k), s) for k, s in self._store.query("SELECT state_key, state FROM alert_state")]

    def save_states(self, tx: Transaction, keys: Sequence[int], states: pa.Table) -> None:
        delete_ids(tx, "alert_state", "state_key", keys)
        if states.num_rows:
            tx.append_table("alert_state", states)

    # -- the model, for rule scopes -----------------------------------------------------------------------------
    def model_rows(self) -> ModelRows:
        q = self._store.query
        datastreams = q(
            """SELECT d.id, d.thing_id, d.name, d.unit_of_measurement, d.observed_property_id, d.properties
               FROM datastreams d JOIN observed_properties op ON op.id = d.observed_property_id ORDER BY d.id"""
        )
        # The least Location as text: a deterministic choice among a Thing's Locations, and min() over text is
        # portable where min() over JSON is not.
        things = q(
            """SELECT t.id, t.name, t.properties, min(CAST(l.location AS VARCHAR)) FROM things t
               LEFT JOIN thing_locations tl ON tl.thing_id = t.id LEFT JOIN locations l ON l.id = tl.location_id
               GROUP BY t.id, t.name, t.properties"""
        )
        ops = q("SELECT id, name, definition FROM observed_properties")
        return ModelRows(datastreams, things, ops)
