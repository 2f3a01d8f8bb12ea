"""Rule administration: the rules in force, created, patched and deleted one by one or as named rule sets.

Every change is stored first, then applied in memory; ``on_change`` (the engine) recompiles what it evaluates. Not
thread-safe on its own: every method runs under the engine's lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from cityhub.alerts.lifecycle import AlertLifecycle
from cityhub.alerts.records import RuleRow
from cityhub.alerts.rules import RuleSpec, parse_rule
from cityhub.errors import ProblemError, conflict, not_found
from cityhub.store.base import Store
from cityhub.store.ops.alerts import RuleRecord

log = logging.getLogger(__name__)

# Fields that change what an alert says, not when it is raised: changing only these keeps the runs under way.
_PRESENTATION = {"name", "description", "enabled", "severity", "message", "advice"}


class RuleAdmin:
    def __init__(self, store: Store, lifecycle: AlertLifecycle, on_change: Callable[[], None]) -> None:
        self.store = store
        self.lifecycle = lifecycle
        self.on_change = on_change
        self.rules: dict[int, RuleRow] = {}
        self.version = 0  # bumped on every change, so compiled views know they are out of date
        self._enabled_cache: tuple[int, list[RuleRow]] | None = None

    def load(self) -> None:
        for rec in self.store.alerts.load_rules():
            try:
                parsed = parse_rule(orjson.loads(rec.spec))
            except (ProblemError, orjson.JSONDecodeError):
                log.error("alert rule %d in the store is not valid any more; it is ignored", rec.id)
                continue
            self.rules[rec.id] = RuleRow(rec.id, parsed, rec.ruleset, rec.created_at, rec.updated_at, rec.created_by)

    def enabled(self) -> list[RuleRow]:
        if self._enabled_cache is None or self._enabled_cache[0] != self.version:
            self._enabled_cache = (self.version, [r for r in self.rules.values() if r.spec.enabled])
        return self._enabled_cache[1]

    def get(self, rule_id: int) -> RuleRow:
        row = self.rules.get(rule_id)
        if row is None:
            raise not_found(f"no rule {rule_id}", field="rule_id")
        return row

    def changed(self) -> None:
        self.version += 1
        self.on_change()

    def _check_name(self, name: str, ruleset: str | None, exclude: int | None = None) -> None:
        for r in self.rules.values():
            if r.name == name and r.ruleset == ruleset and r.id != exclude:
                raise conflict(f"a rule named {name!r} exists already (id {r.id})", field="name", existing=r.id)

    # -- one rule -------------------------------------------------------------------------------------------------
    def create(self, spec: RuleSpec, who: str, ruleset: str | None = None) -> RuleRow:
        self._check_name(spec.name, ruleset)
        row = self._insert(spec, who, ruleset)
        self.changed()
        return row

    def _insert(self, spec: RuleSpec, who: str, ruleset: str | None) -> RuleRow:
        rid = int(self.store.allocate_ids("alert_rules", 1)[0])
        now = datetime.now(UTC)
        self.store.alerts.insert_rule(
            RuleRecord(rid, spec.name, ruleset, spec.enabled, orjson.dumps(spec.dump()).decode(), now, now, who)
        )
        row = self.rules[rid] = RuleRow(rid, spec, ruleset, now, now, who)
        self.version += 1
        return row

    def update(self, rule_id: int, patch: dict[str, Any]) -> RuleRow:
        """JSON merge patch of the rule's fields (``null`` removes an optional one); the result is validated."""
        row = self.get(rule_id)
        merged = row.spec.dump()
        for k, v in patch.items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = v
        spec = parse_rule(merged)
        if spec.name != row.name:
            self._check_name(spec.name, row.ruleset, exclude=row.id)
        self._replace(row, spec)
        return row

    def _replace(self, row: RuleRow, spec: RuleSpec) -> None:
        now = datetime.now(UTC)
        self.store.alerts.update_rule(row.id, spec.name, spec.enabled, orjson.dumps(spec.dump()).decode(), now)
        new, old = spec.dump(), row.spec.dump()
        changed_logic = {k for k in new.keys() | old.keys() if new.get(k) != old.get(k)} - _PRESENTATION
        row.spec, row.updated_at = spec, now
        if changed_logic:
            self.lifecycle.reset_runs(row.id)
        self.changed()

    def delete(self, rule_id: int, who: str) -> None:
        self._delete(self.get(rule_id), who)

    def _delete(self, row: RuleRow, who: str) -> None:
        self.store.alerts.delete_rule(row.id)
        del self.rules[row.id]
        self.lifecycle.forget_rule(row.id, who)
        self.changed()

    # -- rule sets ------------------------------------------------------------------------------------------------
    def apply_ruleset(
        self, name: str, specs: list[RuleSpec], who: str, *, prune: bool = True, update: bool = True
    ) -> dict[str, Any]:
        """Make the rule set ``name`` hold these rules (matched by name): create the missing ones, replace the
        changed ones (with ``update``) and delete the others (with ``prune``). Applying a file twice changes
        nothing the second time."""
        current = {r.name: r for r in self.rules.values() if r.ruleset == name}
        out: dict[str, list[int]] = {"created": [], "updated": [], "unchanged": [], "deleted": []}
        for spec in specs:
            row = current.pop(spec.name, None)
            if row is None:
                out["created"].append(self._insert(spec, who, name).id)
            elif update and row.spec.dump() != spec.dump():
                self._replace(row, spec)
                out["updated"].append(row.id)
            else:
                out["unchanged"].append(row.id)
        if prune:
            for row in current.values():
                self._delete(row, who)
                out["deleted"].append(row.id)
        self.changed()
        return {"ruleset": name, **out}
