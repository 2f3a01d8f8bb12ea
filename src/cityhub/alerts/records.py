"""The records the alert modules share: a stored rule, an alert, a set of changes awaiting commit, the counters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from cityhub.alerts.evaluate import NONE_T, US
from cityhub.alerts.rules import RuleSpec
from cityhub.store.ops.alerts import ACTIVE_STATES, ALERT_COLUMNS
from cityhub.timefmt import iso_time

ACTIVE = ACTIVE_STATES
SYSTEM = "cityhub"  # the actor of automatic changes


def dt_of(us: int | None) -> datetime | None:
    """A time in microseconds (the evaluation's unit; NONE_T for none) as a datetime."""
    if us is None or us == NONE_T:
        return None
    return datetime.fromtimestamp(us / US, UTC)


def iso(ts: datetime | None) -> str | None:
    return iso_time(ts)


@dataclass
class RuleRow:
    id: int
    spec: RuleSpec
    ruleset: str | None
    created_at: datetime
    updated_at: datetime
    created_by: str | None

    @property
    def name(self) -> str:
        return self.spec.name

    def to_json(self, **extra: Any) -> dict[str, Any]:
        return {"id": self.id, **self.spec.dump(), "ruleset": self.ruleset, "createdAt": iso(self.created_at),
                "updatedAt": iso(self.updated_at), "createdBy": self.created_by, **extra}  # fmt: skip


@dataclass
class Alert:
    id: int
    rule_id: int
    rule_name: str
    subject_type: str
    subject_id: int
    subject_name: str | None
    state: str
    level: int
    level_name: str | None
    severity: str
    opened_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    trigger_time: datetime | None = None
    since: datetime | None = None
    value: float | None = None
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    COLUMNS = ALERT_COLUMNS

    def to_row(self) -> dict[str, Any]:
        row = {c: getattr(self, c) for c in self.COLUMNS}
        row["details"] = orjson.dumps(self.details, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Alert:
        d = {c: row[c] for c in cls.COLUMNS}
        d["details"] = orjson.loads(d["details"]) if d["details"] else {}
        return cls(**d)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": {"id": self.rule_id, "name": self.rule_name},
            "subject": {"type": self.subject_type, "id": self.subject_id, "name": self.subject_name},
            "state": self.state,
            "level": self.level,
            "levelName": self.level_name,
            "severity": self.severity,
            "message": self.message,
            "value": self.value,
            "triggerTime": iso(self.trigger_time),
            "since": iso(self.since),
            "openedAt": iso(self.opened_at),
            "updatedAt": iso(self.updated_at),
            "acknowledgedAt": iso(self.acknowledged_at),
            "acknowledgedBy": self.acknowledged_by,
            "resolvedAt": iso(self.resolved_at),
            "resolvedBy": self.resolved_by,
            "details": self.details,
        }


@dataclass
class Changes:
    """What one step changed, committed together (:meth:`AlertLifecycle.commit`) before anything is published."""

    alerts: dict[int, Alert] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)  # published payloads, with their event rows
    event_rows: list[dict[str, Any]] = field(default_factory=list)
    states: set[int] = field(default_factory=set)  # state keys to write (or delete when absent/quiet)

    def __bool__(self) -> bool:
        return bool(self.alerts or self.events or self.states)


@dataclass
class EngineStats:
    batches: int = 0
    rows: int = 0
    late: int = 0
    evaluated: int = 0  # (rule, Observation) pairs classified
    stepped: int = 0  # of which went through the per-subject state machine
    transitions: int = 0
    compiles: int = 0
    last_lag_ms: float = 0.0
    max_lag_ms: float = 0.0  # from a batch's commit to its evaluation
    max_process_ms: float = 0.0  # one round of evaluation (all queued batches)
    commits: int = 0  # transactions of alert changes
    max_commit_ms: float = 0.0
    errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)
