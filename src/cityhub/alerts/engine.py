"""The alert engine: rules, their evaluation on every committed batch, the alert lifecycle and its persistence.

Evaluation is incremental: the writer (and the air-quality module, for the derived VN_AQI) hands each committed
batch to ``on_commit``, which only queues it; the engine thread evaluates queued batches together (see
:mod:`cityhub.alerts.evaluate`), never reading the Observations table. Silence (``stale`` rules) is checked on a
timer against the latest time seen per Datastream, kept in memory.

Persistence, so that a restart neither re-raises nor loses an alert: an alert change, its event, the state of its
(rule, subject) and the webhook deliveries it causes are committed in one transaction *before* anything is
published; the other per-subject states (runs under way) are written at most every ``state_flush_s``. At start the
engine reloads rules, states and open alerts, and takes each Datastream's evaluation position from the store's
latest values, so data evaluated before the restart is not evaluated again.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from cityhub.airquality.indices import IndexResult, advice_of, category_of
from cityhub.airquality.school import school_guidance
from cityhub.airquality.tables import INDEX_NAMES
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
    state_key,
    step,
)
from cityhub.alerts.notify import Broadcaster, Webhooks, sse_message
from cityhub.alerts.rules import RuleSpec, parse_rule, seconds
from cityhub.alerts.scope import ModelSnapshot, Resolved, resolve
from cityhub.bus import ALERTS, OBSERVATIONS, AlertEvent, EventBus, Handler, on_observations
from cityhub.errors import ProblemError, conflict, not_found
from cityhub.store.base import Store
from cityhub.timefmt import iso_time

log = logging.getLogger(__name__)

TS = pa.timestamp("us", tz="UTC")
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
ACTIVE = ("open", "acknowledged")
SYSTEM = "cityhub"  # the actor of automatic changes


def _dt(us: int | None) -> datetime | None:
    if us is None or us == NONE_T:
        return None
    return datetime.fromtimestamp(us / US, UTC)


def _iso(ts: datetime | None) -> str | None:
    return iso_time(ts)


class _Safe(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def school_advice(value: float) -> dict[str, Any]:
    """School guidance (cityhub.airquality.school) for a VN_AQI value."""
    v = round(value)
    res = IndexResult("vn", INDEX_NAMES["vn"], "hour", v, category_of("vn", v), None, advice=advice_of("vn", v))
    return school_guidance(res)


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
        return {"id": self.id, **self.spec.dump(), "ruleset": self.ruleset, "createdAt": _iso(self.created_at),
                "updatedAt": _iso(self.updated_at), "createdBy": self.created_by, **extra}  # fmt: skip


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

    COLUMNS = tuple(ALERT_SCHEMA.names)

    def to_row(self) -> dict[str, Any]:
        row = {c: getattr(self, c) for c in self.COLUMNS}
        row["details"] = orjson.dumps(self.details, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        return row

    @classmethod
    def from_row(cls, row: Iterable[Any]) -> Alert:
        d = dict(zip(cls.COLUMNS, row, strict=True))
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
            "triggerTime": _iso(self.trigger_time),
            "since": _iso(self.since),
            "openedAt": _iso(self.opened_at),
            "updatedAt": _iso(self.updated_at),
            "acknowledgedAt": _iso(self.acknowledged_at),
            "acknowledgedBy": self.acknowledged_by,
            "resolvedAt": _iso(self.resolved_at),
            "resolvedBy": self.resolved_by,
            "details": self.details,
        }


@dataclass
class _Changes:
    alerts: dict[int, Alert] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)  # published payloads, with their event rows
    event_rows: list[dict[str, Any]] = field(default_factory=list)
    states: set[int] = field(default_factory=set)  # state keys to write (or delete when absent/quiet)

    def __bool__(self) -> bool:
        return bool(self.alerts or self.events or self.states)


@dataclass
class _Stale:
    """The silence rules, as arrays: one entry per (rule, Datastream)."""

    params: list[RuleParams]
    rule: np.ndarray
    slot: np.ndarray
    subject: np.ndarray
    limit_us: np.ndarray  # silent when no data for longer than this (inf: usual interval unknown)
    interval_s: np.ndarray


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
        self.bus = bus
        self.catalog = catalog
        self.stale_check_s = stale_check_s
        self.state_flush_s = state_flush_s
        self.clock = clock
        self.lock = threading.RLock()
        self.rules: dict[int, RuleRow] = {}
        self.states: dict[int, SubjectState] = {}
        self.alerts: dict[int, Alert] = {}  # active ones (open or acknowledged)
        self._alert_of: dict[int, int] = {}  # state key → its active alert (one per rule and subject)
        self.tracker = Tracker()
        self.params: dict[int, RuleParams] = {}
        self.resolved: dict[int, Resolved] = {}
        self.pairs: Pairs | None = None
        self.stale: _Stale | None = None
        self.snapshot: ModelSnapshot | None = None
        self.broadcaster = Broadcaster()
        self.webhooks = webhooks or Webhooks(store)
        self.stats = EngineStats()
        self._rules_version = 0
        self._enabled_cache: tuple[int, list[RuleRow]] | None = None
        self._compiled_for = (-1, -1)
        self._need_positions = True
        self._active_keys: np.ndarray | None = None
        self._dirty: set[int] = set()
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

    # -- life cycle -----------------------------------------------------------------------------------------------
    name = "alerts"

    def subscriptions(self) -> list[tuple[str, Handler]]:
        return [(OBSERVATIONS, on_observations(self.on_commit))]

    def stop(self) -> None:
        self.close()

    def start(self) -> None:
        self._load()
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
            self._flush_states(force=True)
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

    def _load(self) -> None:
        for rid, ruleset, spec, created_at, updated_at, created_by in self.store.query(
            "SELECT id, ruleset, spec, created_at, updated_at, created_by FROM alert_rules ORDER BY id"
        ):
            try:
                parsed = parse_rule(orjson.loads(spec))
            except (ProblemError, orjson.JSONDecodeError):
                log.error("alert rule %d in the store is not valid any more; it is ignored", rid)
                continue
            self.rules[int(rid)] = RuleRow(int(rid), parsed, ruleset, created_at, updated_at, created_by)
        for key, text in self.store.query("SELECT state_key, state FROM alert_state"):
            self.states[int(key)] = SubjectState.from_json(orjson.loads(text))
        cols = ", ".join(Alert.COLUMNS)
        for row in self.store.query(f"SELECT {cols} FROM alerts WHERE state IN ('open', 'acknowledged')"):
            alert = Alert.from_row(row)
            self.alerts[alert.id] = alert
            # The state is committed with the alert; this only repairs a state lost some other way.
            key = state_key(alert.rule_id, alert.subject_id)
            self._alert_of[key] = alert.id
            st = self.states.setdefault(key, SubjectState())
            if st.alert_id != alert.id:
                st.alert_id, st.level = alert.id, max(st.level, alert.level)
        self._active_keys = None

    # -- the evaluation thread ------------------------------------------------------------------------------------
    def _run(self) -> None:
        stop = False
        while not stop:
            now = time.monotonic()
            wait = max(0.0, min(self._next_stale, self._next_flush if self._dirty else now + 3600) - now)
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
                    if self._dirty and now >= self._next_flush:
                        self._flush_states()
                        self._next_flush = now + self.state_flush_s
            except Exception:  # keep evaluating the next batches; the failure is logged and counted
                self.stats.errors += 1
                log.exception("alert evaluation failed")
            if self._queue.empty():
                self._idle.set()

    # -- compilation ----------------------------------------------------------------------------------------------
    def _enabled(self) -> list[RuleRow]:
        if self._enabled_cache is None or self._enabled_cache[0] != self._rules_version:
            self._enabled_cache = (self._rules_version, [r for r in self.rules.values() if r.spec.enabled])
        return self._enabled_cache[1]

    def _ensure_compiled(self) -> None:
        version = self.catalog.version
        if (version, self._rules_version) == self._compiled_for:
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
        for key in list(self.states):
            rid, _ = split_key(key)
            if rid in self.params:
                self.states[key].sized(self.params[rid].nlevels)
        self._compiled_for = (version, self._rules_version)
        self._active_keys = None
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
        changes = _Changes()
        now = datetime.now(UTC)
        for key in list(self.states):
            rid, subject = split_key(key)
            res = self.resolved.get(rid)
            if res is not None and (subject in self._subject_set(rid)):
                continue
            if rid in self.rules and not self.rules[rid].spec.enabled:
                reason = "the rule was disabled"
            elif rid in self.rules:
                reason = "the subject left the rule's scope"
            else:
                reason = "the rule was deleted"
            if key in self._alert_of:
                self._close_alert(changes, self.alerts[self._alert_of[key]], SYSTEM, now, reason)
            del self.states[key]
            changes.states.add(key)
        if changes:
            self._commit(changes)

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
        active = self._active()
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
        for i, key in enumerate(keys):
            p = params[rule_ix[i]]
            st = self.states.get(key)
            if st is None:
                st = self.states[key] = SubjectState().sized(p.nlevels)
            tr = step(p, st, subj[i], ts[i], ends[i], rs[i], hs[i], vs[i])
            touched.add(key)
            if tr is not None:
                transitions.append((tr, int(row_ix[i])))
        for key in touched:
            if self.states[key].quiet:
                del self.states[key]
        self._dirty |= touched
        self._active_keys = None
        if transitions:
            self._apply(transitions, rows)

    def _active(self) -> np.ndarray:
        if self._active_keys is None:
            self._active_keys = np.fromiter(self.states, np.int64, len(self.states))
        return self._active_keys

    def _apply(self, transitions: list[tuple[Transition, int]], rows: Any) -> None:
        changes = _Changes()
        now = datetime.now(UTC)
        for tr, row in transitions:
            if self.params[tr.rule_id].kind == "stuck" and tr.kind == "opened":
                tr.since = int(rows.same_since[row])  # when the value started repeating, not when it became "stuck"
            trigger = {
                "observation": int(rows.extra["oid"][row]),
                "datastream": int(self.tracker.ds_ids[rows.slot[row]]),
                "phenomenonTime": _iso(_dt(tr.time)),
                "result": tr.value,
                "committedAt": _iso(datetime.fromtimestamp(float(rows.extra["ct"][row]), UTC)),
            }
            self._transition(changes, tr, trigger, now)
        self._commit(changes)

    def _transition(self, changes: _Changes, tr: Transition, trigger: dict[str, Any], now: datetime) -> None:
        p = self.params[tr.rule_id]
        key = state_key(tr.rule_id, tr.subject)
        st = self.states.get(key)
        self.stats.transitions += 1
        changes.states.add(key)
        aid = self._alert_of.get(key)
        alert = self.alerts.get(aid) if aid is not None else None
        kind = tr.kind
        if alert is None and kind in ("escalated", "deescalated"):
            kind = "opened"  # the alert was closed by hand meanwhile: a new one
        if alert is None and kind == "resolved":
            return  # already closed (by hand): nothing to resolve
        if kind == "opened":
            if alert is not None:  # cannot happen (one alert per rule and subject); close it rather than lose it
                self._close_alert(changes, alert, SYSTEM, now, "replaced")
            alert = self._new_alert(p, tr, now, trigger.get("datastream"))
            self._alert_of[key] = alert.id
        assert alert is not None
        alert.level = tr.level_to if kind != "resolved" else alert.level
        alert.level_name, alert.severity = p.level_name(alert.level), p.severity(alert.level)
        alert.updated_at = now
        if kind == "escalated" and alert.state == "acknowledged":
            alert.state = "open"  # worse than what was acknowledged: it needs attention again
        if kind in ("opened", "escalated", "deescalated"):
            alert.value = tr.value  # what raised the current level
            alert.message = self._message(p, alert, tr)
            alert.details.update(self._details(p, alert.level, tr.value))
        if kind == "resolved":
            alert.state, alert.resolved_at, alert.resolved_by = "resolved", now, SYSTEM
            alert.details.update(resolvedBy="condition cleared", resolvedValue=tr.value)
            self.alerts.pop(alert.id, None)
            self._alert_of.pop(key, None)
        if st is not None:
            st.alert_id = self._alert_of.get(key)
        changes.alerts[alert.id] = alert
        self._event(changes, alert, kind, SYSTEM, now, tr.time, tr.value, trigger)

    def _new_alert(self, p: RuleParams, tr: Transition, now: datetime, datastream: int | None) -> Alert:
        aid = int(self.store.allocate_ids("alerts", 1)[0])
        res = self.resolved.get(p.id)
        stype = res.subject_type if res is not None else "datastream"
        snap = self.snapshot
        name = None
        if snap is not None:
            name = snap.thing_name.get(tr.subject) if stype == "thing" else snap.datastream_name(tr.subject)
        unit = None
        if snap is not None and datastream is not None and datastream in snap.ds_index:
            unit = snap.ds_unit[snap.ds_index[datastream]]
        alert = Alert(aid, p.id, p.name, stype, tr.subject, name, "open", tr.level_to, None, p.spec.severity, now, now,
                      trigger_time=_dt(tr.time), since=_dt(tr.since), value=tr.value,
                      details={"kind": p.kind, "datastream": datastream, "unit": unit})  # fmt: skip
        self.alerts[aid] = alert
        return alert

    def _details(self, p: RuleParams, level: int, value: float) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if p.kind == "threshold":
            d.update(op=p.spec.op, threshold=p.threshold(level), hysteresis=p.hysteresis)
        elif p.kind == "range":
            d.update(min=p.spec.min, max=p.spec.max)
        elif p.kind == "rate":
            d.update(maxRate=p.rate_max, per=p.spec.per, direction=p.spec.direction)
        elif p.kind == "stuck":
            d.update(minCount=p.stuck_min, duration=p.spec.duration)
        if p.spec.advice == "school":
            d["guidance"] = school_advice(value)
        return d

    def _message(self, p: RuleParams, alert: Alert, tr: Transition) -> str:
        unit = alert.details.get("unit") or ""
        unit = f" {unit}" if unit and p.kind != "stale" else ""
        who = alert.subject_name or f"{alert.subject_type} {alert.subject_id}"
        v = f"{tr.value:g}"
        if p.spec.index:
            unit, v = "", f"{p.spec.index} {v}"
        if p.kind == "threshold":
            lvl = f" ({alert.level_name})" if alert.level_name else ""
            text = f"{who}: {v}{unit} {p.spec.op} {p.threshold(alert.level):g}{unit}{lvl}"
            held = [f"{p.spec.for_}"] if p.spec.for_ else []
            if p.for_count > 1:
                what = {"hour": "hours", "day": "days"}[p.spec.index_period] if p.spec.index else "Observations"
                held.append(f"{p.for_count} consecutive {what}")
            if held:
                text += " for " + " and ".join(held)
        elif p.kind == "range":
            text = f"{who}: {v}{unit} outside the physical range [{p.spec.min}, {p.spec.max}]"
        elif p.kind == "rate":
            text = f"{who}: {v}{unit}, changing faster than {p.rate_max:g}{unit} per {p.spec.per}"
        elif p.kind == "stuck":
            text = f"{who}: {v}{unit} repeated since {_iso(_dt(tr.since))}"
        else:
            text = f"{who}: no data for {tr.value / 60:.0f} min"
        if p.spec.message:
            values = _Safe(subject=who, value=v, unit=unit.strip(), level=alert.level_name or alert.level,
                           rule=p.name, threshold=p.threshold(alert.level), default=text)  # fmt: skip
            with contextlib.suppress(ValueError, IndexError, AttributeError, KeyError):  # bad template: default text
                text = p.spec.message.format_map(values)
        return text

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
        known = np.isin(keys, self._active()) if self.states else np.zeros(len(keys), bool)
        todo = np.flatnonzero(silent | known)
        if not todo.size:
            return
        changes = _Changes()
        now = datetime.now(UTC)
        for i in todo.tolist():
            key = int(keys[i])
            p = s.params[int(s.rule[i])]
            st = self.states.get(key)
            subject, quiet_for = int(s.subject[i]), (now_us - int(seen[i])) / US
            trigger = {"datastream": int(self.tracker.ds_ids[s.slot[i]]), "lastTime": _iso(_dt(int(seen[i]))),
                       "silentFor": round(quiet_for, 1), "usualInterval": float(s.interval_s[i])}  # fmt: skip
            if silent[i]:
                if st is None:
                    st = self.states[key] = SubjectState().sized(1)
                if st.level or st.suppressed:
                    continue
                st.level = 1
                self._transition(changes, Transition(p.id, subject, "opened", 0, 1, now_us, now_us, quiet_for,
                                                     int(seen[i])), trigger, now)  # fmt: skip
            elif st is not None:
                if st.level:
                    st.level = 0
                    self._transition(changes, Transition(p.id, subject, "resolved", 1, 0, int(seen[i]), int(seen[i]),
                                                         quiet_for, int(seen[i])), trigger, now)  # fmt: skip
                st.suppressed = False
                if st.quiet:
                    del self.states[key]
                    changes.states.add(key)
        if changes:
            self._active_keys = None
            self._commit(changes)

    def check_stale(self) -> None:
        """Run the silence check now (it also runs every ``stale_check_s`` in the engine thread)."""
        with self.lock:
            self._check_stale()

    # -- persistence and publication ------------------------------------------------------------------------------
    def _event(
        self,
        changes: _Changes,
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
        payload = {"id": eid, "event": kind, "time": _iso(now), "actor": actor, "alert": alert.to_json()}
        if trigger:
            payload["trigger"] = trigger
        if note:
            payload["note"] = note
        changes.events.append(payload)
        text = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        changes.event_rows.append(
            {"id": eid, "alert_id": alert.id, "time": now, "kind": kind, "state": alert.state, "level": alert.level,
             "actor": actor, "phenomenon_time": _dt(phen_us), "value": value, "payload": text}
        )  # fmt: skip

    def _commit(self, changes: _Changes) -> None:
        """Persist alert changes with their events, states and webhook deliveries in one transaction, then publish."""
        alerts = [a.to_row() for a in changes.alerts.values()]
        states = [(k, self.states.get(k)) for k in changes.states]
        keep = [(k, s) for k, s in states if s is not None and not s.quiet]
        deliveries, due = self.webhooks.rows_for(changes.events)
        t0 = time.perf_counter()
        with self.store.transaction(fold_derived=False) as tx:
            if alerts:
                tx.execute("DELETE FROM alerts WHERE id IN (SELECT unnest(?::BIGINT[]))", [[a["id"] for a in alerts]])
                tx.append_table("alerts", pa.Table.from_pylist(alerts, schema=ALERT_SCHEMA))
            if changes.event_rows:
                tx.append_table("alert_events", pa.Table.from_pylist(changes.event_rows, schema=EVENT_SCHEMA))
            if states:
                self._write_states(tx, [k for k, _ in states], keep)
            if deliveries is not None:
                tx.append_table("webhook_deliveries", deliveries)
        self.stats.commits += 1
        self.stats.max_commit_ms = max(self.stats.max_commit_ms, (time.perf_counter() - t0) * 1000)
        self._dirty -= changes.states
        self.webhooks.schedule(due)
        self._publish(changes.events)

    def _write_states(self, tx: Any, keys: list[int], keep: list[tuple[int, SubjectState]]) -> None:
        tx.execute("DELETE FROM alert_state WHERE state_key IN (SELECT unnest(?::BIGINT[]))", [keys])
        if keep:
            rows = [{"state_key": k, "rule_id": split_key(k)[0], "subject_id": split_key(k)[1],
                     "state": orjson.dumps(s.to_json()).decode()} for k, s in keep]  # fmt: skip
            tx.append_table("alert_state", pa.Table.from_pylist(rows, schema=STATE_SCHEMA))

    def _flush_states(self, force: bool = False) -> None:
        if not self._dirty:
            return
        keys = list(self._dirty)
        keep = [(k, s) for k in keys if (s := self.states.get(k)) is not None and not s.quiet]
        with self.store.transaction(fold_derived=False) as tx:
            self._write_states(tx, keys, keep)
        self._dirty.clear()

    def _publish(self, events: list[dict[str, Any]]) -> None:
        for e in events:
            payload = orjson.dumps(e, option=orjson.OPT_SERIALIZE_NUMPY)
            self.broadcaster.publish(sse_message(e["id"], payload))
            if self.bus is not None:  # MQTT republishes them; SSE, webhooks and the store have them anyway
                a = e["alert"]
                self.bus.publish(ALERTS, AlertEvent(a["rule"]["id"], a["subject"]["type"], a["subject"]["id"], payload))

    # -- lifecycle by hand ----------------------------------------------------------------------------------------
    def _close_alert(self, changes: _Changes, alert: Alert, who: str, now: datetime, note: str | None) -> None:
        alert.state, alert.resolved_at, alert.resolved_by, alert.updated_at = "resolved", now, who, now
        if note:
            alert.details["resolvedBy"] = note
        self.alerts.pop(alert.id, None)
        self._alert_of.pop(state_key(alert.rule_id, alert.subject_id), None)
        changes.alerts[alert.id] = alert
        self._event(changes, alert, "resolved", who, now, None, None, None, note)

    def acknowledge(self, alert_id: int, who: str, note: str | None = None) -> dict[str, Any]:
        with self.lock:
            alert = self._active_alert(alert_id)
            if alert.state == "acknowledged":
                raise conflict(
                    f"alert {alert_id} was already acknowledged by {alert.acknowledged_by}", field="alert_id"
                )
            now = datetime.now(UTC)
            alert.state, alert.acknowledged_at, alert.acknowledged_by, alert.updated_at = "acknowledged", now, who, now
            changes = _Changes()
            changes.alerts[alert.id] = alert
            self._event(changes, alert, "acknowledged", who, now, None, None, None, note)
            self._commit(changes)
            return alert.to_json()

    def resolve(self, alert_id: int, who: str, note: str | None = None) -> dict[str, Any]:
        """Close an alert by hand. The subject must then clear (leave the condition) before the rule raises a new
        alert for it, so that closing an alert whose condition persists does not raise it again at once."""
        with self.lock:
            alert = self._active_alert(alert_id)
            now = datetime.now(UTC)
            changes = _Changes()
            self._close_alert(changes, alert, who, now, note)
            key = state_key(alert.rule_id, alert.subject_id)
            st = self.states.get(key)
            if st is not None:
                st.level, st.alert_id, st.suppressed = 0, None, True
                st.reset_runs()
                changes.states.add(key)
            self._active_keys = None
            self._commit(changes)
            return alert.to_json()

    def _active_alert(self, alert_id: int) -> Alert:
        alert = self.alerts.get(alert_id)
        if alert is not None:
            return alert
        if self.store.query("SELECT 1 FROM alerts WHERE id = ?", [alert_id]):
            raise conflict(f"alert {alert_id} is already resolved", field="alert_id")
        raise not_found(f"no alert {alert_id}", field="alert_id")

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
            return self.rule_json(self._rule(rule_id))

    def _rule(self, rule_id: int) -> RuleRow:
        row = self.rules.get(rule_id)
        if row is None:
            raise not_found(f"no rule {rule_id}", field="rule_id")
        return row

    def _check_name(self, name: str, ruleset: str | None, exclude: int | None = None) -> None:
        for r in self.rules.values():
            if r.name == name and r.ruleset == ruleset and r.id != exclude:
                raise conflict(f"a rule named {name!r} exists already (id {r.id})", field="name", existing=r.id)

    def create_rule(self, spec: RuleSpec, who: str, ruleset: str | None = None) -> dict[str, Any]:
        with self.lock:
            self._check_name(spec.name, ruleset)
            row = self._insert_rule(spec, who, ruleset)
            self._rules_changed()
            return self.rule_json(row)

    def _insert_rule(self, spec: RuleSpec, who: str, ruleset: str | None) -> RuleRow:
        rid = int(self.store.allocate_ids("alert_rules", 1)[0])
        now = datetime.now(UTC)
        with self.store.transaction(fold_derived=False) as tx:
            tx.execute(
                """INSERT INTO alert_rules (id, name, ruleset, enabled, spec, created_at, updated_at, created_by)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                [rid, spec.name, ruleset, spec.enabled, orjson.dumps(spec.dump()).decode(), now, now, who],
            )
        row = self.rules[rid] = RuleRow(rid, spec, ruleset, now, now, who)
        self._rules_version += 1
        return row

    def update_rule(self, rule_id: int, patch: dict[str, Any], who: str) -> dict[str, Any]:
        """JSON merge patch of the rule's fields (``null`` removes an optional one); the result is validated."""
        with self.lock:
            row = self._rule(rule_id)
            merged = row.spec.dump()
            for k, v in patch.items():
                if v is None:
                    merged.pop(k, None)
                else:
                    merged[k] = v
            spec = parse_rule(merged)
            if spec.name != row.name:
                self._check_name(spec.name, row.ruleset, exclude=row.id)
            self._replace_rule(row, spec)
            return self.rule_json(row)

    def _replace_rule(self, row: RuleRow, spec: RuleSpec) -> None:
        now = datetime.now(UTC)
        with self.store.transaction(fold_derived=False) as tx:
            tx.execute(
                "UPDATE alert_rules SET name = ?, enabled = ?, spec = ?, updated_at = ? WHERE id = ?",
                [spec.name, spec.enabled, orjson.dumps(spec.dump()).decode(), now, row.id],
            )
        evaluation = {"name", "description", "enabled", "severity", "message", "advice"}
        changed_logic = {k for k in spec.dump().keys() | row.spec.dump().keys()
                         if spec.dump().get(k) != row.spec.dump().get(k)} - evaluation  # fmt: skip
        row.spec, row.updated_at = spec, now
        if changed_logic:  # runs under way were measured against the old rule; open alerts stay
            for key, st in list(self.states.items()):
                if split_key(key)[0] == row.id:
                    st.reset_runs()
                    st.snap = None
                    self._dirty.add(key)
        self._rules_changed()

    def delete_rule(self, rule_id: int, who: str) -> None:
        with self.lock:
            row = self._rule(rule_id)
            self._delete_rule(row, who)

    def _delete_rule(self, row: RuleRow, who: str) -> None:
        with self.store.transaction(fold_derived=False) as tx:
            tx.execute("DELETE FROM alert_rules WHERE id = ?", [row.id])
        del self.rules[row.id]
        changes = _Changes()
        now = datetime.now(UTC)
        for alert in [a for a in self.alerts.values() if a.rule_id == row.id]:
            self._close_alert(changes, alert, who, now, "the rule was deleted")
        for key in [k for k in self.states if split_key(k)[0] == row.id]:
            del self.states[key]
            changes.states.add(key)
        if changes:
            self._commit(changes)
        self._rules_changed()

    def _rules_changed(self) -> None:
        self._rules_version += 1
        self._active_keys = None
        self._ensure_compiled()

    def apply_ruleset(
        self, name: str, specs: list[RuleSpec], who: str, *, prune: bool = True, update: bool = True
    ) -> dict[str, Any]:
        """Make the rule set ``name`` hold these rules (matched by name): create the missing ones, replace the
        changed ones (with ``update``) and delete the others (with ``prune``). Applying a file twice changes
        nothing the second time."""
        with self.lock:
            current = {r.name: r for r in self.rules.values() if r.ruleset == name}
            out: dict[str, list[int]] = {"created": [], "updated": [], "unchanged": [], "deleted": []}
            for spec in specs:
                row = current.pop(spec.name, None)
                if row is None:
                    out["created"].append(self._insert_rule(spec, who, name).id)
                elif update and row.spec.dump() != spec.dump():
                    self._replace_rule(row, spec)
                    out["updated"].append(row.id)
                else:
                    out["unchanged"].append(row.id)
            if prune:
                for row in current.values():
                    self._delete_rule(row, who)
                    out["deleted"].append(row.id)
            self._rules_changed()
            return {"ruleset": name, **out}

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
        where, params = ["1 = 1"], []
        if state == "active":
            where.append("state IN ('open', 'acknowledged')")
        elif state is not None:
            where.append("state = ?")
            params.append(state)
        for col, val in (("rule_id", rule), ("subject_id", subject), ("subject_type", subject_type),
                         ("severity", severity)):  # fmt: skip
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        if since is not None:
            where.append("updated_at >= ?")
            params.append(since)
        cond = " AND ".join(where)
        total = self.store.query(f"SELECT count(*) FROM alerts WHERE {cond}", params)[0][0]
        rows = self.store.query(
            f"SELECT {', '.join(Alert.COLUMNS)} FROM alerts WHERE {cond} ORDER BY opened_at DESC, id DESC "
            "LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return {"count": int(total), "value": [Alert.from_row(r).to_json() for r in rows]}

    def get_alert(self, alert_id: int) -> dict[str, Any]:
        rows = self.store.query(f"SELECT {', '.join(Alert.COLUMNS)} FROM alerts WHERE id = ?", [alert_id])
        if not rows:
            raise not_found(f"no alert {alert_id}", field="alert_id")
        out = Alert.from_row(rows[0]).to_json()
        out["events"] = [
            {"id": i, "event": k, "time": _iso(t), "state": s, "level": lv, "actor": a,
             "phenomenonTime": _iso(pt), "value": v, **({"note": orjson.loads(p).get("note")} if p else {})}
            for i, k, t, s, lv, a, pt, v, p in self.store.query(
                """SELECT id, kind, time, state, level, actor, phenomenon_time, value, payload FROM alert_events
                   WHERE alert_id = ? ORDER BY id""", [alert_id])
        ]  # fmt: skip
        return out

    def events_after(self, event_id: int, limit: int = 1000) -> list[tuple[int, bytes]]:
        """Published events after ``event_id`` (an SSE client's Last-Event-ID), oldest first."""
        return [(int(i), p.encode()) for i, p in self.store.query(
            "SELECT id, payload FROM alert_events WHERE id > ? ORDER BY id LIMIT ?", [event_id, limit])]  # fmt: skip

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
