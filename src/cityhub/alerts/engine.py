"""The alert engine: evaluation of the enabled rules on every committed batch, in a thread of its own.

Evaluation is incremental: the writer (and the air-quality module, for the derived VN_AQI) hands each committed
batch to ``on_commit``, which only queues it; the engine thread evaluates queued batches together (see
:mod:`cityhub.alerts.evaluate`), never reading the Observations table. Silence (``stale`` rules) is checked on a
timer against the latest time seen per Datastream, kept in memory. At start the engine reloads rules, states and
open alerts, and takes each Datastream's evaluation position from the store's latest values, so data evaluated
before the restart is not evaluated again.

The other jobs live next door: the alert lifecycle and its persistence in :mod:`cityhub.alerts.lifecycle`, what an
event says in :mod:`cityhub.alerts.messages`, rule administration in :mod:`cityhub.alerts.admin`. The engine holds
the lock they all run under and keeps the public face the API and the hub use.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from cityhub.alerts.admin import RuleAdmin
from cityhub.alerts.evaluate import (
    NONE_T,
    US,
    Elements,
    Pairs,
    RuleParams,
    SubjectState,
    Tracker,
    Transition,
    split_key,
    step,
)
from cityhub.alerts.lifecycle import AlertLifecycle
from cityhub.alerts.messages import Publisher, event_json, school_advice
from cityhub.alerts.notify import Broadcaster, Webhooks, sse_message
from cityhub.alerts.records import ACTIVE, SYSTEM, Alert, Changes, EngineStats, RuleRow, dt_of, iso
from cityhub.alerts.rules import RuleSpec, seconds
from cityhub.alerts.scope import ModelSnapshot, Resolved, resolve
from cityhub.bus import OBSERVATIONS, AlertEvent, Event, EventBus, Handler, on_observations
from cityhub.errors import not_found
from cityhub.store.base import Store
from cityhub.store.ops.alerts import AlertQuery

log = logging.getLogger(__name__)

# Re-exported: these lived here before the engine was split, and callers may still import them from here.
__all__ = ["ACTIVE", "SYSTEM", "Alert", "AlertEngine", "EngineStats", "RuleRow", "school_advice"]


@dataclass
class _Stale:
    """The silence rules, as arrays: one entry per (rule, Datastream)."""

    params: list[RuleParams]
    rule: np.ndarray
    slot: np.ndarray
    subject: np.ndarray
    limit_us: np.ndarray  # silent when no data for longer than this (inf: usual interval unknown)
    interval_s: np.ndarray


class AlertEngine:
    def __init__(
        self,
        store: Store,
        catalog: Any,
        *,
        stale_check_s: float = 5.0,
        state_flush_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        webhooks: Webhooks | None = None,
        bus: EventBus | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.stale_check_s = stale_check_s
        self.state_flush_s = state_flush_s
        self.clock = clock
        self.lock = threading.RLock()
        self.tracker = Tracker()
        self.params: dict[int, RuleParams] = {}
        self.resolved: dict[int, Resolved] = {}
        self.pairs: Pairs | None = None
        self.stale: _Stale | None = None
        self.snapshot: ModelSnapshot | None = None
        self.broadcaster = Broadcaster()
        self.publisher = Publisher(self.broadcaster, bus)
        self.webhooks = webhooks or Webhooks(store)
        self.stats = EngineStats()
        self.lifecycle = AlertLifecycle(store, self.webhooks, self.publisher, self.stats, self._describe)
        self.admin = RuleAdmin(store, self.lifecycle, self._rules_changed)
        self._compiled_for = (-1, -1)
        self._need_positions = True
        self._queue: queue.Queue[tuple[pa.Table, float] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)
        self._started_us = int(self.clock() * US)
        self._next_stale = 0.0
        self._next_flush = 0.0
        self._stale_intervals: dict[int, float] = {}
        self._stale_intervals_at = 0.0
        self._idle = threading.Event()
        self._idle.set()
        self._closed = False
        # Several hub processes on one store (cityhub.cluster): one leads and evaluates; the others only serve the
        # API from the store, tell the leader (``on_change``) after a change by hand, and pass the leader's events
        # on to their own live-stream clients.
        self.leading = False
        self.on_change: Callable[[], None] | None = None

    # The state the other modules own, under the names callers have used.
    @property
    def rules(self) -> dict[int, RuleRow]:
        return self.admin.rules

    @property
    def states(self) -> dict[int, SubjectState]:
        return self.lifecycle.states

    @property
    def alerts(self) -> dict[int, Alert]:
        """The active alerts (open or acknowledged), by id."""
        return self.lifecycle.alerts

    @property
    def bus(self) -> EventBus | None:
        return self.publisher.bus

    @bus.setter
    def bus(self, bus: EventBus | None) -> None:
        self.publisher.bus = bus

    # -- the hub's Domain protocol ----------------------------------------------------------------------------------
    name = "alerts"

    def subscriptions(self) -> list[tuple[str, Handler]]:
        return [(OBSERVATIONS, on_observations(self.on_commit))]

    def stop(self) -> None:
        self.close()

    def follow(self) -> None:
        """Serve the alerts API without evaluating (another process leads): rules and active alerts as stored."""
        with self.lock:
            self._reload()

    def on_remote_alert(self, event: Event) -> None:
        """Bus handler: another process's alert event, to this process's live-stream clients."""
        if isinstance(event, AlertEvent) and event.remote and not self.leading:
            self.broadcaster.publish(sse_message(orjson.loads(event.payload)["id"], event.payload))

    def reload(self) -> None:
        """Another process changed rules or alerts by hand: read them back from the store."""
        with self.lock:
            if self.leading:
                self.lifecycle.flush_states()
            self._reload()

    def _reload(self) -> None:
        self.admin.rules.clear()
        self.admin.load()
        lc = self.lifecycle
        lc.states.clear()
        lc.alerts.clear()
        lc.alert_of.clear()
        lc.load()
        self.admin.changed()

    def _by_hand(self) -> None:
        """After a change by hand: the leader reloads it."""
        if self.on_change is not None:
            self.on_change()

    def start(self) -> None:
        self.leading = True
        if self.on_change is not None:  # it followed until now: what it holds may be stale
            with self.lock:
                self._reload()
        self.admin.load()
        self.lifecycle.load()
        if self._enabled():
            with self.lock:  # positions now, before any batch is committed: evaluation resumes where it stopped
                self._ensure_compiled()
        self.webhooks.load()
        self.webhooks.start()
        self._thread.start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join()  # evaluates what is queued first; the store is closed only after this
        with self.lock:
            self.lifecycle.flush_states()
        self.webhooks.close()
        self.broadcaster.close()

    def on_commit(self, batch: pa.Table) -> None:
        """Bus handler: queue the committed batch (called in the writer thread, so nothing more)."""
        self._idle.clear()
        self._queue.put((batch, time.time()))

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every queued batch is evaluated (for tests and the replay)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.empty() and self._idle.wait(0.05) and self._queue.empty():
                return True
        return False

    # -- the evaluation thread ------------------------------------------------------------------------------------
    def _run(self) -> None:
        stop = False
        while not stop:
            now = time.monotonic()
            wait = max(0.0, min(self._next_stale, self._next_flush if self.lifecycle.dirty else now + 3600) - now)
            items: list[tuple[pa.Table, float]] = []
            try:
                first = self._queue.get(timeout=min(wait, 1.0) if wait > 0 else 0.001)
                if first is None:
                    stop = True
                else:
                    items.append(first)
                while len(items) < 256:
                    nxt = self._queue.get_nowait()
                    if nxt is None:
                        stop = True
                        break
                    items.append(nxt)
            except queue.Empty:
                pass
            try:
                with self.lock:
                    if items:
                        t0 = time.perf_counter()
                        self._process(items)
                        ms = (time.perf_counter() - t0) * 1000
                        self.stats.max_process_ms = max(self.stats.max_process_ms, ms)
                    now = time.monotonic()
                    if now >= self._next_stale:
                        self._check_stale()
                        self._next_stale = now + self.stale_check_s
                    if self.lifecycle.dirty and now >= self._next_flush:
                        self.lifecycle.flush_states()
                        self._next_flush = now + self.state_flush_s
            except Exception:  # keep evaluating the next batches; the failure is logged and counted
                self.stats.errors += 1
                log.exception("alert evaluation failed")
            if self._queue.empty():
                self._idle.set()

    # -- compilation ----------------------------------------------------------------------------------------------
    def _enabled(self) -> list[RuleRow]:
        return self.admin.enabled()

    def _ensure_compiled(self) -> None:
        version = self.catalog.version
        if (version, self.admin.version) == self._compiled_for:
            return
        if self.snapshot is None or self.snapshot.version != version:
            self.snapshot = ModelSnapshot.load(self.store, version)
        snap = self.snapshot
        positions = self._positions() if self._need_positions else None
        self._need_positions = False
        self.tracker.set_datastreams(snap.ds_id, positions)
        params: list[RuleParams] = []
        slots, rules, subjects = [], [], []
        stale_params: list[RuleParams] = []
        st_rule, st_slot, st_subject = [], [], []
        self.params, self.resolved = {}, {}
        for row in self._enabled():
            p = RuleParams.compile(row.id, row.spec)
            res = resolve(snap, row.spec)
            self.params[row.id], self.resolved[row.id] = p, res
            sl = self.tracker.slots(res.inputs)
            ok = sl >= 0
            if row.spec.kind == "stale":
                st_rule.append(np.full(int(ok.sum()), len(stale_params), np.int64))
                stale_params.append(p)
                st_slot.append(sl[ok])
                st_subject.append(res.subjects[ok])
            else:
                rules.append(np.full(int(ok.sum()), len(params), np.int64))
                params.append(p)
                slots.append(sl[ok])
                subjects.append(res.subjects[ok])
        cat = lambda xs: np.concatenate(xs) if xs else np.empty(0, np.int64)  # noqa: E731
        self.pairs = Pairs(params, cat(slots), cat(rules), cat(subjects), len(self.tracker.ds_ids))
        self.stale = self._compile_stale(stale_params, cat(st_rule), cat(st_slot), cat(st_subject))
        states = self.lifecycle.states
        for key in list(states):
            rid, _ = split_key(key)
            if rid in self.params:
                states[key].sized(self.params[rid].nlevels)
        self._compiled_for = (version, self.admin.version)
        self.lifecycle.states_changed()
        self.stats.compiles += 1
        self._drop_out_of_scope()

    def _positions(self) -> dict[int, tuple[int, float]]:
        """Each Datastream's latest stored time and value: where evaluation resumes after a start."""
        ids = self.snapshot.ds_id.tolist() if self.snapshot is not None else []
        if not ids:
            return {}
        t = self.store.latest(ids)
        times = t.column("phenomenon_time").cast(pa.int64()).to_numpy()
        values = pc.fill_null(t.column("result_number"), np.nan).to_numpy(zero_copy_only=False)
        ds = t.column("datastream_id").to_numpy().tolist()
        return {int(d): (int(tt), float(v)) for d, tt, v in zip(ds, times.tolist(), values.tolist(), strict=True)}

    def _compile_stale(
        self, params: list[RuleParams], rule: np.ndarray, slot: np.ndarray, subject: np.ndarray
    ) -> _Stale:
        snap = self.snapshot
        assert snap is not None
        ds = self.tracker.ds_ids[slot] if len(slot) else np.empty(0, np.int64)
        declared = np.array([snap.ds_interval_s[snap.ds_index[int(d)]] for d in ds.tolist()], np.float64)
        need = sorted({int(d) for d, x in zip(ds.tolist(), declared.tolist(), strict=True) if np.isnan(x)})
        if need and (time.monotonic() - self._stale_intervals_at > 600 or set(need) - set(self._stale_intervals)):
            self._stale_intervals = self._mean_intervals(need)
            self._stale_intervals_at = time.monotonic()
        interval = np.array(
            [x if not np.isnan(x) else self._stale_intervals.get(int(d), np.nan)
             for d, x in zip(ds.tolist(), declared.tolist(), strict=True)], np.float64)  # fmt: skip
        limit = np.full(len(slot), np.inf)
        for i, p in enumerate(params):
            m = rule == i
            spec = p.spec
            iv = np.full(int(m.sum()), seconds(spec.interval)) if spec.interval is not None else interval[m]
            interval[m] = iv
            lim = spec.factor * iv
            if spec.min_silence is not None:
                lim = np.maximum(lim, seconds(spec.min_silence))
            limit[m] = np.where(np.isnan(lim), np.inf, lim * US)
        return _Stale(params, rule, slot, subject, limit, interval)

    def _mean_intervals(self, ids: list[int]) -> dict[int, float]:
        """Usual interval of Datastreams that do not declare one: their mean spacing (from the latest values)."""
        t = self.store.latest(ids)
        out: dict[int, float] = {}
        for d, last, first, n in zip(
            t.column("datastream_id").to_pylist(), t.column("phenomenon_time").to_pylist(),
            t.column("first_time").to_pylist(), t.column("count").to_pylist(), strict=True,
        ):  # fmt: skip
            if n >= 3 and last > first:
                out[int(d)] = (last - first).total_seconds() / (n - 1)
        return out

    def _drop_out_of_scope(self) -> None:
        """States of subjects no longer watched (rule disabled or gone, subject out of scope): resolve and forget."""
        changes = Changes()
        now = datetime.now(UTC)
        rules = self.admin.rules
        for key in list(self.lifecycle.states):
            rid, subject = split_key(key)
            res = self.resolved.get(rid)
            if res is not None and (subject in self._subject_set(rid)):
                continue
            if rid in rules and not rules[rid].spec.enabled:
                reason = "the rule was disabled"
            elif rid in rules:
                reason = "the subject left the rule's scope"
            else:
                reason = "the rule was deleted"
            self.lifecycle.forget(changes, key, SYSTEM, now, reason)
        if changes:
            self.lifecycle.commit(changes)

    def _subject_set(self, rid: int) -> set[int]:
        res = self.resolved[rid]
        cache = getattr(res, "_set", None)
        if cache is None:
            cache = set(res.all_subjects.tolist())
            res._set = cache  # type: ignore[attr-defined]
        return cache

    # -- evaluation -----------------------------------------------------------------------------------------------
    def _process(self, items: list[tuple[pa.Table, float]]) -> None:
        self.stats.batches += len(items)
        if not self._enabled():
            self._need_positions = True  # nothing watched: positions are taken again when rules appear
            return
        self._ensure_compiled()
        cols: dict[str, list[np.ndarray]] = {"ds": [], "t": [], "end": [], "v": [], "oid": [], "ct": []}
        for table, committed in items:
            n = table.num_rows
            if not n:
                continue
            t = table.column("phenomenon_time").cast(pa.int64()).to_numpy()
            cols["ds"].append(table.column("datastream_id").to_numpy())
            cols["t"].append(t)
            end = table.column("phenomenon_time_end").cast(pa.int64())
            if end.null_count == n:
                cols["end"].append(t)
            else:  # interval Observations (the derived hourly VN_AQI): a run lasts until the end of its last one
                filled = pc.fill_null(end, 0).to_numpy(zero_copy_only=False)
                cols["end"].append(np.where(end.is_null().to_numpy(zero_copy_only=False), t, filled))
            cols["v"].append(pc.fill_null(table.column("result_number"), np.nan).to_numpy(zero_copy_only=False))
            cols["oid"].append(table.column("id").to_numpy())
            cols["ct"].append(np.full(n, committed))
        if not cols["ds"]:
            return
        arr = {k: np.concatenate(v) for k, v in cols.items()}
        self.stats.rows += len(arr["ds"])
        lag = (time.time() - float(arr["ct"].min())) * 1000
        self.stats.last_lag_ms, self.stats.max_lag_ms = lag, max(self.stats.max_lag_ms, lag)
        rows = self.tracker.prepare(arr["ds"], arr["t"], arr["end"], arr["v"], {"oid": arr["oid"], "ct": arr["ct"]})
        if rows is None:
            return
        self.stats.late += rows.late
        assert self.pairs is not None
        # A subject is stepped through the whole batch once it is active or breaches anywhere in the batch (its
        # later quiet points may end a run or clear an alert); quiet subjects cost nothing per row. Each kind's
        # elements are filtered on their own (their keys are disjoint), and only what is left is merged.
        active = self.lifecycle.active_keys()
        picked: list[Elements] = []
        for els in self.pairs.expand(rows):
            self.stats.evaluated += len(els.key)
            hot = np.unique(els.key[els.r > 0])
            if active.size:
                hot = np.union1d(hot, active)
            if not hot.size:
                continue
            keep = np.flatnonzero(np.isin(els.key, hot))
            if keep.size:
                picked.append(Elements(*(getattr(els, f)[keep] for f in ("row", "rule", "subject", "r", "h", "key"))))
        if not picked:
            return
        els = picked[0] if len(picked) == 1 else Elements(
            *(np.concatenate([getattr(e, f) for e in picked]) for f in ("row", "rule", "subject", "r", "h", "key"))
        )  # fmt: skip
        idx = np.lexsort((rows.t[els.row], els.key))
        self.stats.stepped += int(idx.size)
        params = self.pairs.params
        keys, rule_ix, subj = els.key[idx].tolist(), els.rule[idx].tolist(), els.subject[idx].tolist()
        row_ix = els.row[idx]
        ts, ends, vs = rows.t[row_ix].tolist(), rows.end[row_ix].tolist(), rows.v[row_ix].tolist()
        rs, hs = els.r[idx].tolist(), els.h[idx].tolist()
        transitions: list[tuple[Transition, int]] = []
        touched: set[int] = set()
        states = self.lifecycle.states
        for i, key in enumerate(keys):
            p = params[rule_ix[i]]
            st = states.get(key)
            if st is None:
                st = states[key] = SubjectState().sized(p.nlevels)
            tr = step(p, st, subj[i], ts[i], ends[i], rs[i], hs[i], vs[i])
            touched.add(key)
            if tr is not None:
                transitions.append((tr, int(row_ix[i])))
        for key in touched:
            if states[key].quiet:
                del states[key]
        self.lifecycle.dirty |= touched
        self.lifecycle.states_changed()
        if transitions:
            self._apply(transitions, rows)

    def _apply(self, transitions: list[tuple[Transition, int]], rows: Any) -> None:
        changes = Changes()
        now = datetime.now(UTC)
        for tr, row in transitions:
            if self.params[tr.rule_id].kind == "stuck" and tr.kind == "opened":
                tr.since = int(rows.same_since[row])  # when the value started repeating, not when it became "stuck"
            trigger = {
                "observation": int(rows.extra["oid"][row]),
                "datastream": int(self.tracker.ds_ids[rows.slot[row]]),
                "phenomenonTime": iso(dt_of(tr.time)),
                "result": tr.value,
                "committedAt": iso(datetime.fromtimestamp(float(rows.extra["ct"][row]), UTC)),
            }
            self.lifecycle.transition(changes, self.params[tr.rule_id], tr, trigger, now)
        self.lifecycle.commit(changes)

    def _describe(self, rule_id: int, subject: int, datastream: int | None) -> tuple[str, str | None, str | None]:
        """A new alert's subject type, subject name and unit, from the compiled view of the model."""
        res = self.resolved.get(rule_id)
        stype = res.subject_type if res is not None else "datastream"
        snap = self.snapshot
        name = None
        if snap is not None:
            name = snap.thing_name.get(subject) if stype == "thing" else snap.datastream_name(subject)
        unit = None
        if snap is not None and datastream is not None and datastream in snap.ds_index:
            unit = snap.ds_unit[snap.ds_index[datastream]]
        return stype, name, unit

    # -- silence --------------------------------------------------------------------------------------------------
    def _check_stale(self) -> None:
        if not any(r.spec.kind == "stale" for r in self._enabled()):
            return
        self._ensure_compiled()
        s = self.stale
        if s is None or not len(s.slot):
            return
        now_us = int(self.clock() * US)
        seen = self.tracker.seen_t[s.slot]
        reference = np.maximum(seen, self._started_us)  # a hub that was down does not blame its sensors
        silent = (seen != NONE_T) & (now_us - reference > s.limit_us)
        keys = (np.array([p.id for p in s.params], np.int64)[s.rule] << 32) | s.subject
        states = self.lifecycle.states
        known = np.isin(keys, self.lifecycle.active_keys()) if states else np.zeros(len(keys), bool)
        todo = np.flatnonzero(silent | known)
        if not todo.size:
            return
        changes = Changes()
        now = datetime.now(UTC)
        for i in todo.tolist():
            key = int(keys[i])
            p = s.params[int(s.rule[i])]
            st = states.get(key)
            subject, quiet_for = int(s.subject[i]), (now_us - int(seen[i])) / US
            trigger = {"datastream": int(self.tracker.ds_ids[s.slot[i]]), "lastTime": iso(dt_of(int(seen[i]))),
                       "silentFor": round(quiet_for, 1), "usualInterval": float(s.interval_s[i])}  # fmt: skip
            if silent[i]:
                if st is None:
                    st = states[key] = SubjectState().sized(1)
                if st.level or st.suppressed:
                    continue
                st.level = 1
                tr = Transition(p.id, subject, "opened", 0, 1, now_us, now_us, quiet_for, int(seen[i]))
                self.lifecycle.transition(changes, p, tr, trigger, now)
            elif st is not None:
                if st.level:
                    st.level = 0
                    last = int(seen[i])
                    tr = Transition(p.id, subject, "resolved", 1, 0, last, last, quiet_for, last)
                    self.lifecycle.transition(changes, p, tr, trigger, now)
                st.suppressed = False
                if st.quiet:
                    del states[key]
                    changes.states.add(key)
        if changes:
            self.lifecycle.states_changed()
            self.lifecycle.commit(changes)

    def check_stale(self) -> None:
        """Run the silence check now (it also runs every ``stale_check_s`` in the engine thread)."""
        with self.lock:
            self._check_stale()

    # -- lifecycle by hand ----------------------------------------------------------------------------------------
    def acknowledge(self, alert_id: int, who: str, note: str | None = None) -> dict[str, Any]:
        with self.lock:
            self._sync_follower()
            out = self.lifecycle.acknowledge(alert_id, who, note)
        self._by_hand()
        return out

    def _sync_follower(self) -> None:
        # A follower's copy is as fresh as the leader's last note: read the store before changing anything.
        if self.on_change is not None and not self.leading:
            self._reload()

    def resolve(self, alert_id: int, who: str, note: str | None = None) -> dict[str, Any]:
        """Close an alert by hand. The subject must then clear (leave the condition) before the rule raises a new
        alert for it, so that closing an alert whose condition persists does not raise it again at once."""
        with self.lock:
            self._sync_follower()
            out = self.lifecycle.resolve(alert_id, who, note)
        self._by_hand()
        return out

    # -- rules ----------------------------------------------------------------------------------------------------
    def rule_json(self, row: RuleRow) -> dict[str, Any]:
        res = self.resolved.get(row.id)
        n_open = sum(1 for a in self.alerts.values() if a.rule_id == row.id)
        return row.to_json(subjects=len(res.all_subjects) if res is not None else 0, activeAlerts=n_open)

    def list_rules(self, ruleset: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            self._ensure_compiled()
            return [self.rule_json(r) for r in self.rules.values() if ruleset is None or r.ruleset == ruleset]

    def get_rule(self, rule_id: int) -> dict[str, Any]:
        with self.lock:
            self._ensure_compiled()
            return self.rule_json(self.admin.get(rule_id))

    def create_rule(self, spec: RuleSpec, who: str, ruleset: str | None = None) -> dict[str, Any]:
        with self.lock:
            self._sync_follower()
            out = self.rule_json(self.admin.create(spec, who, ruleset))
        self._by_hand()
        return out

    def update_rule(self, rule_id: int, patch: dict[str, Any], who: str) -> dict[str, Any]:
        """JSON merge patch of the rule's fields (``null`` removes an optional one); the result is validated."""
        with self.lock:
            self._sync_follower()
            out = self.rule_json(self.admin.update(rule_id, patch))
        self._by_hand()
        return out

    def delete_rule(self, rule_id: int, who: str) -> None:
        with self.lock:
            self._sync_follower()
            self.admin.delete(rule_id, who)
        self._by_hand()

    def apply_ruleset(
        self, name: str, specs: list[RuleSpec], who: str, *, prune: bool = True, update: bool = True
    ) -> dict[str, Any]:
        """Make the rule set ``name`` hold these rules (matched by name): create the missing ones, replace the
        changed ones (with ``update``) and delete the others (with ``prune``). Applying a file twice changes
        nothing the second time."""
        with self.lock:
            self._sync_follower()
            out = self.admin.apply_ruleset(name, specs, who, prune=prune, update=update)
        self._by_hand()
        return out

    def _rules_changed(self) -> None:
        self.lifecycle.states_changed()
        self._ensure_compiled()

    # -- queries --------------------------------------------------------------------------------------------------
    def query_alerts(
        self,
        state: str | None = None,
        rule: int | None = None,
        subject: int | None = None,
        subject_type: str | None = None,
        since: datetime | None = None,
        severity: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        q = AlertQuery(state, rule, subject, subject_type, severity, since, limit, offset)
        total, rows = self.store.alerts.query_alerts(q)
        return {"count": total, "value": [Alert.from_row(r).to_json() for r in rows]}

    def get_alert(self, alert_id: int) -> dict[str, Any]:
        row = self.store.alerts.get_alert(alert_id)
        if row is None:
            raise not_found(f"no alert {alert_id}", field="alert_id")
        out = Alert.from_row(row).to_json()
        out["events"] = [event_json(e) for e in self.store.alerts.alert_events(alert_id)]
        return out

    def events_after(self, event_id: int, limit: int = 1000) -> list[tuple[int, bytes]]:
        """Published events after ``event_id`` (an SSE client's Last-Event-ID), oldest first."""
        return [(i, p.encode()) for i, p in self.store.alerts.events_after(event_id, limit)]

    def status(self) -> dict[str, Any]:
        with self.lock:
            self._ensure_compiled()
            return {
                "rules": len(self.rules),
                "enabledRules": len(self._enabled()),
                "pairs": len(self.pairs) if self.pairs is not None else 0,
                "staleWatches": len(self.stale.slot) if self.stale is not None else 0,
                "activeStates": len(self.states),
                "activeAlerts": len(self.alerts),
                "queued": self._queue.qsize(),
                "sseSubscribers": self.broadcaster.subscribers,
                "webhooksPending": self.webhooks.pending(),
                **self.stats.as_dict(),
            }
