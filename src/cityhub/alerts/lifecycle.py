"""The alert lifecycle: alerts open, escalate, de-escalate, are acknowledged and resolve; the per-(rule, subject)
states that carry hysteresis and runs between batches; and their persistence.

An alert change, its event, the state of its (rule, subject) and the webhook deliveries it causes are committed in
one transaction *before* anything is published, so a restart neither re-raises nor loses an alert; the other states
(runs under way) are only marked dirty and written at most every ``state_flush_s`` by the engine.

Not thread-safe on its own: every method runs under the engine's lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from cityhub.alerts.evaluate import RuleParams, SubjectState, Transition, split_key, state_key
from cityhub.alerts.messages import (
    Publisher,
    alert_details,
    alert_message,
    alert_title,
    event_payload,
    event_row,
)
from cityhub.alerts.notify import Webhooks
from cityhub.alerts.records import SYSTEM, Alert, Changes, EngineStats, dt_of
from cityhub.errors import conflict, not_found
from cityhub.store.base import Store
from cityhub.store.ops.alerts import ALERT_SCHEMA, EVENT_SCHEMA, STATE_SCHEMA

# (rule id, subject id, Datastream that triggered or None) → (subject type, subject name, unit): how the engine's
# compiled view of the model names a new alert's subject.
Describe = Callable[[int, int, int | None], tuple[str, str | None, str | None]]


class AlertLifecycle:
    def __init__(self, store: Store, webhooks: Webhooks, publisher: Publisher, stats: EngineStats,
                 describe: Describe) -> None:  # fmt: skip
        self.store = store
        self.webhooks = webhooks
        self.publisher = publisher
        self.stats = stats
        self.describe = describe
        self.states: dict[int, SubjectState] = {}
        self.alerts: dict[int, Alert] = {}  # active ones (open or acknowledged)
        self.alert_of: dict[int, int] = {}  # state key → its active alert (one per rule and subject)
        self.dirty: set[int] = set()  # state keys changed since they were last written
        self._active_keys: np.ndarray | None = None

    def load(self) -> None:
        """States and active alerts as committed, after a restart."""
        for key, text in self.store.alerts.load_states():
            self.states[key] = SubjectState.from_json(orjson.loads(text))
        for row in self.store.alerts.active_alerts():
            alert = Alert.from_row(row)
            self.alerts[alert.id] = alert
            # The state is committed with the alert; this only repairs a state lost some other way.
            key = state_key(alert.rule_id, alert.subject_id)
            self.alert_of[key] = alert.id
            st = self.states.setdefault(key, SubjectState())
            if st.alert_id != alert.id:
                st.alert_id, st.level = alert.id, max(st.level, alert.level)
        self._active_keys = None

    # -- states ---------------------------------------------------------------------------------------------------
    def active_keys(self) -> np.ndarray:
        """The keys of every state held (subjects active or with a run under way), cached until they change."""
        if self._active_keys is None:
            self._active_keys = np.fromiter(self.states, np.int64, len(self.states))
        return self._active_keys

    def states_changed(self) -> None:
        self._active_keys = None

    def reset_runs(self, rule_id: int) -> None:
        """Forget the runs under way of a rule whose logic changed: they were measured against the old rule. Open
        alerts stay."""
        for key, st in list(self.states.items()):
            if split_key(key)[0] == rule_id:
                st.reset_runs()
                st.snap = None
                self.dirty.add(key)

    def forget(self, changes: Changes, key: int, who: str, now: datetime, reason: str) -> None:
        """Stop watching a (rule, subject): resolve its alert, if any, and drop its state."""
        if key in self.alert_of:
            self.close_alert(changes, self.alerts[self.alert_of[key]], who, now, reason)
        del self.states[key]
        changes.states.add(key)

    def forget_rule(self, rule_id: int, who: str) -> None:
        """A deleted rule: resolve its alerts and drop its states."""
        changes = Changes()
        now = datetime.now(UTC)
        for alert in [a for a in self.alerts.values() if a.rule_id == rule_id]:
            self.close_alert(changes, alert, who, now, "the rule was deleted")
        for key in [k for k in self.states if split_key(k)[0] == rule_id]:
            del self.states[key]
            changes.states.add(key)
        if changes:
            self.commit(changes)

    # -- transitions ----------------------------------------------------------------------------------------------
    def transition(self, changes: Changes, p: RuleParams, tr: Transition, trigger: dict[str, Any],
                   now: datetime) -> None:  # fmt: skip
        """Apply a transition of a (rule, subject)'s state machine to its alert."""
        key = state_key(tr.rule_id, tr.subject)
        st = self.states.get(key)
        self.stats.transitions += 1
        changes.states.add(key)
        aid = self.alert_of.get(key)
        alert = self.alerts.get(aid) if aid is not None else None
        kind = tr.kind
        if alert is None and kind in ("escalated", "deescalated"):
            kind = "opened"  # the alert was closed by hand meanwhile: a new one
        if alert is None and kind == "resolved":
            return  # already closed (by hand): nothing to resolve
        if kind == "opened":
            if alert is not None:  # cannot happen (one alert per rule and subject); close it rather than lose it
                self.close_alert(changes, alert, SYSTEM, now, "replaced")
            alert = self._new_alert(p, tr, now, trigger.get("datastream"))
            self.alert_of[key] = alert.id
        assert alert is not None
        alert.level = tr.level_to if kind != "resolved" else alert.level
        alert.level_name, alert.severity = p.level_name(alert.level), p.severity(alert.level)
        alert.updated_at = now
        if kind == "escalated" and alert.state == "acknowledged":
            alert.state = "open"  # worse than what was acknowledged: it needs attention again
        if kind in ("opened", "escalated", "deescalated"):
            alert.value = tr.value  # what raised the current level
            alert.message = alert_message(p, alert, tr)
            alert.details.update(alert_details(p, alert.level, tr.value))
            title = alert_title(p, alert, tr)
            if title:
                alert.details["title"] = title
            else:
                alert.details.pop("title", None)
        if kind == "resolved":
            alert.state, alert.resolved_at, alert.resolved_by = "resolved", now, SYSTEM
            alert.details.update(resolvedBy="condition cleared", resolvedValue=tr.value)
            self.alerts.pop(alert.id, None)
            self.alert_of.pop(key, None)
        if st is not None:
            st.alert_id = self.alert_of.get(key)
        changes.alerts[alert.id] = alert
        self.event(changes, alert, kind, SYSTEM, now, tr.time, tr.value, trigger)

    def _new_alert(self, p: RuleParams, tr: Transition, now: datetime, datastream: int | None) -> Alert:
        aid = int(self.store.allocate_ids("alerts", 1)[0])
        stype, name, unit = self.describe(p.id, tr.subject, datastream)
        alert = Alert(aid, p.id, p.name, stype, tr.subject, name, "open", tr.level_to, None, p.spec.severity, now, now,
                      trigger_time=dt_of(tr.time), since=dt_of(tr.since), value=tr.value,
                      details={"kind": p.kind, "datastream": datastream, "unit": unit})  # fmt: skip
        self.alerts[aid] = alert
        return alert

    def close_alert(self, changes: Changes, alert: Alert, who: str, now: datetime, note: str | None) -> None:
        alert.state, alert.resolved_at, alert.resolved_by, alert.updated_at = "resolved", now, who, now
        if note:
            alert.details["resolvedBy"] = note
        self.alerts.pop(alert.id, None)
        self.alert_of.pop(state_key(alert.rule_id, alert.subject_id), None)
        changes.alerts[alert.id] = alert
        self.event(changes, alert, "resolved", who, now, None, None, None, note)

    # -- by hand --------------------------------------------------------------------------------------------------
    def acknowledge(self, alert_id: int, who: str, note: str | None = None) -> dict[str, Any]:
        alert = self.active_alert(alert_id)
        if alert.state == "acknowledged":
            raise conflict(f"alert {alert_id} was already acknowledged by {alert.acknowledged_by}", field="alert_id")
        now = datetime.now(UTC)
        alert.state, alert.acknowledged_at, alert.acknowledged_by, alert.updated_at = "acknowledged", now, who, now
        changes = Changes()
        changes.alerts[alert.id] = alert
        self.event(changes, alert, "acknowledged", who, now, None, None, None, note)
        self.commit(changes)
        return alert.to_json()

    def resolve(self, alert_id: int, who: str, note: str | None = None) -> dict[str, Any]:
        """Close an alert by hand. The subject must then clear (leave the condition) before the rule raises a new
        alert for it, so that closing an alert whose condition persists does not raise it again at once."""
        alert = self.active_alert(alert_id)
        now = datetime.now(UTC)
        changes = Changes()
        self.close_alert(changes, alert, who, now, note)
        key = state_key(alert.rule_id, alert.subject_id)
        st = self.states.get(key)
        if st is not None:
            st.level, st.alert_id, st.suppressed = 0, None, True
            st.reset_runs()
            changes.states.add(key)
        self._active_keys = None
        self.commit(changes)
        return alert.to_json()

    def active_alert(self, alert_id: int) -> Alert:
        alert = self.alerts.get(alert_id)
        if alert is not None:
            return alert
        if self.store.alerts.get_alert(alert_id) is not None:
            raise conflict(f"alert {alert_id} is already resolved", field="alert_id")
        raise not_found(f"no alert {alert_id}", field="alert_id")

    # -- persistence and publication ------------------------------------------------------------------------------
    def event(
        self,
        changes: Changes,
        alert: Alert,
        kind: str,
        actor: str,
        now: datetime,
        phen_us: int | None,
        value: float | None,
        trigger: dict[str, Any] | None,
        note: str | None = None,
    ) -> None:
        eid = int(self.store.allocate_ids("alert_events", 1)[0])
        payload = event_payload(eid, kind, actor, now, alert, trigger, note)
        changes.events.append(payload)
        changes.event_rows.append(event_row(payload, alert, now, phen_us, value))

    def commit(self, changes: Changes) -> None:
        """Persist alert changes with their events, states and webhook deliveries in one transaction, then publish."""
        alerts = pa.Table.from_pylist([a.to_row() for a in changes.alerts.values()], schema=ALERT_SCHEMA)
        events = pa.Table.from_pylist(changes.event_rows, schema=EVENT_SCHEMA)
        keys = list(changes.states)
        states = self._state_rows(keys)
        deliveries, due = self.webhooks.rows_for(changes.events)
        t0 = time.perf_counter()
        with self.store.transaction(fold_derived=False) as tx:
            self.store.alerts.save_alerts(tx, alerts, events)
            if keys:
                self.store.alerts.save_states(tx, keys, states)
            if deliveries is not None:
                self.store.webhooks.add_deliveries(tx, deliveries)
        self.stats.commits += 1
        self.stats.max_commit_ms = max(self.stats.max_commit_ms, (time.perf_counter() - t0) * 1000)
        self.dirty -= changes.states
        self.webhooks.schedule(due)
        self.publisher.publish(changes.events)

    def flush_states(self) -> None:
        """Write the dirty states (a quiet or dropped one is deleted)."""
        if not self.dirty:
            return
        keys = list(self.dirty)
        states = self._state_rows(keys)
        with self.store.transaction(fold_derived=False) as tx:
            self.store.alerts.save_states(tx, keys, states)
        self.dirty.clear()

    def _state_rows(self, keys: list[int]) -> pa.Table:
        rows = [{"state_key": k, "rule_id": split_key(k)[0], "subject_id": split_key(k)[1],
                 "state": orjson.dumps(s.to_json()).decode()}
                for k in keys if (s := self.states.get(k)) is not None and not s.quiet]  # fmt: skip
        return pa.Table.from_pylist(rows, schema=STATE_SCHEMA)
