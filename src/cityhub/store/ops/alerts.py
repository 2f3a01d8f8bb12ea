"""Named operations on the alerts aggregate: rules, alerts with their events, per-(rule, subject) evaluation state,
and the slice of the SensorThings model a rule's scope is resolved against.

Rows cross this boundary as Arrow tables (writes, with the schemas below) or as plain dicts and tuples (reads);
JSON members travel as JSON text, which the alerts package parses, so a stored value that is not valid any more is
the caller's to report rather than a store error. Ids come from :meth:`Store.allocate_ids` (tables in
``schema.ALERT_TABLES``), allocated by the caller so that an alert, its events and their deliveries can refer to
each other before anything is written.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import pyarrow as pa

from cityhub.store.transaction import Transaction

TS = pa.timestamp("us", tz="UTC")

# The columns of table ``alerts``, in this order (also the keys of the dicts the reads return).
ALERT_SCHEMA = pa.schema(
    [("id", pa.int64()), ("rule_id", pa.int64()), ("rule_name", pa.string()), ("subject_type", pa.string()),
     ("subject_id", pa.int64()), ("subject_name", pa.string()), ("state", pa.string()), ("level", pa.int32()),
     ("level_name", pa.string()), ("severity", pa.string()), ("opened_at", TS), ("updated_at", TS),
     ("acknowledged_at", TS), ("acknowledged_by", pa.string()), ("resolved_at", TS), ("resolved_by", pa.string()),
     ("trigger_time", TS), ("since", TS), ("value", pa.float64()), ("message", pa.string()),
     ("details", pa.string())]
)  # fmt: skip
EVENT_SCHEMA = pa.schema(
    [("id", pa.int64()), ("alert_id", pa.int64()), ("time", TS), ("kind", pa.string()), ("state", pa.string()),
     ("level", pa.int32()), ("actor", pa.string()), ("phenomenon_time", TS), ("value", pa.float64()),
     ("payload", pa.string())]
)  # fmt: skip
STATE_SCHEMA = pa.schema(
    [("state_key", pa.int64()), ("rule_id", pa.int64()), ("subject_id", pa.int64()), ("state", pa.string())]
)
ALERT_COLUMNS: tuple[str, ...] = tuple(ALERT_SCHEMA.names)
EVENT_COLUMNS = ("id", "kind", "time", "state", "level", "actor", "phenomenon_time", "value", "payload")
# The states an alert may still change from; the others (``resolved``) are history.
ACTIVE_STATES = ("open", "acknowledged")


class RuleRecord(NamedTuple):
    id: int
    name: str
    ruleset: str | None
    enabled: bool
    spec: str  # JSON text of the rule's specification
    created_at: datetime
    updated_at: datetime
    created_by: str | None


@dataclass(frozen=True)
class AlertQuery:
    """Filters of the alert history; ``None`` means any. ``state="active"`` is open or acknowledged."""

    state: str | None = None
    rule_id: int | None = None
    subject_id: int | None = None
    subject_type: str | None = None
    severity: str | None = None
    updated_since: datetime | None = None
    limit: int = 100
    offset: int = 0


class ModelRows(NamedTuple):
    """What resolving rule scopes needs from the model, in plain rows.

    ``datastreams``: (id, thing_id, name, unit_of_measurement, observed_property_id, properties), by id;
    ``things``: (id, name, properties, location) with one of its Locations' GeoJSON (the least as text) or None;
    ``observed_properties``: (id, name, definition).
    """

    datastreams: list[tuple[Any, ...]]
    things: list[tuple[Any, ...]]
    observed_properties: list[tuple[Any, ...]]


class AlertOps(abc.ABC):
    # -- rules --------------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def load_rules(self) -> list[RuleRecord]:
        """Every stored rule, by id."""

    @abc.abstractmethod
    def insert_rule(self, rule: RuleRecord) -> None:
        """Store a new rule (its id allocated by the caller), in a transaction of its own."""

    @abc.abstractmethod
    def update_rule(self, rule_id: int, name: str, enabled: bool, spec: str, updated_at: datetime) -> None:
        """Replace a rule's specification, in a transaction of its own."""

    @abc.abstractmethod
    def delete_rule(self, rule_id: int) -> None:
        """Forget a rule, in a transaction of its own (its alerts stay, as history)."""

    # -- alerts and events --------------------------------------------------------------------------------------
    @abc.abstractmethod
    def save_alerts(self, tx: Transaction, alerts: pa.Table, events: pa.Table) -> None:
        """Write alerts (ALERT_SCHEMA; a stored alert with the same id is replaced) and append their events
        (EVENT_SCHEMA). Either table may be empty."""

    @abc.abstractmethod
    def active_alerts(self) -> list[dict[str, Any]]:
        """The alerts in ACTIVE_STATES, as dicts keyed by ALERT_COLUMNS."""

    @abc.abstractmethod
    def get_alert(self, alert_id: int) -> dict[str, Any] | None:
        """One alert (keyed by ALERT_COLUMNS), or None."""

    @abc.abstractmethod
    def alert_events(self, alert_id: int) -> list[dict[str, Any]]:
        """An alert's events, oldest first, keyed by EVENT_COLUMNS."""

    @abc.abstractmethod
    def query_alerts(self, q: AlertQuery) -> tuple[int, list[dict[str, Any]]]:
        """How many alerts match ``q`` and the page ``q.limit``/``q.offset`` of them, newest opened first."""

    @abc.abstractmethod
    def events_after(self, event_id: int, limit: int) -> list[tuple[int, str]]:
        """(id, payload JSON text) of the events after ``event_id``, oldest first."""

    # -- evaluation state ---------------------------------------------------------------------------------------
    @abc.abstractmethod
    def load_states(self) -> list[tuple[int, str]]:
        """(state_key, state JSON text) of every stored per-(rule, subject) state."""

    @abc.abstractmethod
    def save_states(self, tx: Transaction, keys: Sequence[int], states: pa.Table) -> None:
        """Drop the stored states of ``keys``, then append ``states`` (STATE_SCHEMA, keys among ``keys``)."""

    # -- the model, for rule scopes -----------------------------------------------------------------------------
    @abc.abstractmethod
    def model_rows(self) -> ModelRows: ...
