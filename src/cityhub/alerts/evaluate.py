"""Incremental evaluation: vectorised per batch, a small state machine per (rule, subject) only where needed.

Each committed batch goes through three steps:

1. ``Tracker.prepare``: rows sorted by (Datastream, phenomenonTime); rows older than what was already evaluated
   for their Datastream are dropped (late), a row at the same time as the last one is a revision (the derived
   VN_AQI of the current hour is rewritten as data arrives) and replaces it; per row the previous value and time
   (for rates) and the run of equal values (for stuck sensors) are computed with cumulative NumPy operations.
2. ``Pairs.expand``: every row is paired with the rules watching its Datastream (an index by Datastream slot) and
   each pair gets a *raw level* ``r`` (how many thresholds the value passes) and a *hold level* ``h`` (the same
   with the hysteresis band), vectorised per kind.
3. Only pairs with ``r > 0`` or whose (rule, subject) is already active (a run under way or an alert open) go
   through ``step``, in time order: per level, the run at or above it (``for``/``for_count`` raise it) and the
   run held below it with the hysteresis band (``clear_for``/``clear_count`` lower it). Quiet data costs no
   Python per row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from cityhub.alerts.rules import RuleSpec, seconds

US = 1_000_000
NONE_T = np.iinfo(np.int64).min  # "no time yet"
DIRECTION = {"rise": 1, "fall": -1, "both": 0}


def _us(value: str | float | None, default: float = 0.0) -> int:
    return round((seconds(value) if value is not None else default) * US)


@dataclass
class RuleParams:
    """A rule compiled for evaluation."""

    id: int
    name: str
    spec: RuleSpec
    kind: str
    sign: float = 1.0
    strict: bool = False
    thresholds: list[float] = field(default_factory=list)  # in signed space, ascending
    level_values: list[float] = field(default_factory=list)  # as written, in level order
    level_names: list[str | None] = field(default_factory=list)
    level_titles: list[dict[str, str] | None] = field(default_factory=list)
    level_severities: list[str] = field(default_factory=list)
    hysteresis: float = 0.0
    for_us: int = 0
    for_count: int = 1
    clear_us: int = 0
    clear_count: int = 1
    max_gap_us: int = 3600 * US
    lo: float = -np.inf
    hi: float = np.inf
    rate_max: float = np.inf
    per_us: int = 3600 * US
    direction: int = 0
    stuck_us: int = 0
    stuck_min: int = 3

    @property
    def nlevels(self) -> int:
        return max(1, len(self.thresholds))

    @classmethod
    def compile(cls, rule_id: int, spec: RuleSpec) -> RuleParams:
        p = cls(rule_id, spec.name, spec, spec.kind)
        p.hysteresis = spec.hysteresis
        p.for_us, p.for_count = _us(spec.for_), spec.for_count
        p.clear_us, p.clear_count = _us(spec.clear_for), spec.clear_count
        p.max_gap_us = _us(spec.max_gap)
        if spec.kind == "threshold":
            p.sign = 1.0 if spec.op in (">=", ">") else -1.0
            p.strict = spec.op in (">", "<")
            levels = spec.levels or []
            items = [(lv.value, lv.name, lv.severity, lv.title) for lv in levels] or [
                (float(spec.value or 0.0), None, None, None)
            ]
            items.sort(key=lambda x: p.sign * x[0])
            p.level_values = [v for v, _, _, _ in items]
            p.thresholds = [p.sign * v for v, _, _, _ in items]
            p.level_names = [n for _, n, _, _ in items]
            p.level_severities = [s or spec.severity for _, _, s, _ in items]
            p.level_titles = [{str(k): v for k, v in t.items()} if t else None for _, _, _, t in items]
        else:
            p.level_names, p.level_severities = [None], [spec.severity]
        if spec.kind == "range":
            p.lo = spec.min if spec.min is not None else -np.inf
            p.hi = spec.max if spec.max is not None else np.inf
            p.level_values = [v for v in (spec.min, spec.max) if v is not None]
        if spec.kind == "rate":
            p.rate_max = float(spec.max_rate or np.inf)
            p.per_us = _us(spec.per)
            p.direction = DIRECTION[spec.direction]
            p.level_values = [p.rate_max]
        if spec.kind == "stuck":
            p.stuck_us = _us(spec.duration)
            p.stuck_min = spec.min_count
        return p

    def level_name(self, level: int) -> str | None:
        return self.level_names[level - 1] if 0 < level <= len(self.level_names) else None

    def title(self, level: int) -> dict[str, str] | None:
        """The title templates of ``level`` (per language), else the rule's."""
        own = self.level_titles[level - 1] if 0 < level <= len(self.level_titles) else None
        return own or ({str(k): v for k, v in self.spec.title.items()} if self.spec.title else None)

    def severity(self, level: int) -> str:
        return self.level_severities[level - 1] if 0 < level <= len(self.level_severities) else self.spec.severity

    def threshold(self, level: int) -> float | None:
        if self.kind == "threshold" and 0 < level <= len(self.level_values):
            return self.level_values[level - 1]
        return None


@dataclass
class SubjectState:
    """Evaluation state of one (rule, subject), persisted in ``alert_state`` while it is not quiet."""

    level: int = 0
    alert_id: int | None = None
    run_start: list[int] = field(default_factory=list)  # per level: start of the run at or above it (NONE_T: none)
    run_count: list[int] = field(default_factory=list)
    low_start: list[int] = field(default_factory=list)  # per level: start of the run held below it (clearing)
    low_count: list[int] = field(default_factory=list)
    last_t: int = NONE_T
    last_end: int = NONE_T
    suppressed: bool = False  # resolved by hand: wait until the condition clears before raising again
    snap: list[Any] | None = None  # the run state before the last point, to apply a revision of it

    def sized(self, n: int) -> SubjectState:
        if len(self.run_start) != n or len(self.low_start) != n:
            self.run_start = (self.run_start + [NONE_T] * n)[:n]
            self.run_count = (self.run_count + [0] * n)[:n]
            self.low_start, self.low_count = [NONE_T] * n, [0] * n
            self.level = min(self.level, n)
        return self

    @property
    def quiet(self) -> bool:
        """Nothing to remember: no alert, no run under way, and none before the last point (which a revision of
        that point would bring back)."""
        if self.level or self.suppressed or any(s != NONE_T for s in self.run_start):
            return False
        return self.snap is None or (not self.snap[6] and all(s == NONE_T for s in self.snap[0]))

    def reset_runs(self) -> None:
        self.run_start = [NONE_T] * len(self.run_start)
        self.run_count = [0] * len(self.run_count)
        self.reset_low()

    def reset_low(self) -> None:
        self.low_start = [NONE_T] * len(self.low_start)
        self.low_count = [0] * len(self.low_count)

    def _snapshot(self) -> list[Any]:
        return [list(self.run_start), list(self.run_count), list(self.low_start), list(self.low_count), self.last_t,
                self.last_end, self.suppressed]  # fmt: skip

    def _restore(self, snap: list[Any]) -> None:
        self.run_start, self.run_count, self.low_start, self.low_count = (list(x) for x in snap[:4])
        self.last_t, self.last_end, self.suppressed = snap[4], snap[5], snap[6]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SubjectState:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class Transition:
    rule_id: int
    subject: int
    kind: str  # opened | escalated | deescalated | resolved
    level_from: int
    level_to: int
    time: int  # phenomenon time (µs) of the Observation that caused it
    end: int
    value: float
    since: int  # start of the run that caused it (µs), or the time


def step(p: RuleParams, s: SubjectState, subject: int, t: int, end: int, r: int, h: int, v: float) -> Transition | None:
    """Apply one Observation (already classified into raw level ``r`` and hold level ``h``) to a subject."""
    if s.last_t != NONE_T and t < s.last_t:
        return None  # late: older than what this subject has already been evaluated on
    if t == s.last_t and s.snap is not None:
        s._restore(s.snap)  # a revision of the last point: evaluate it again from the state before it
    else:
        s.snap = s._snapshot()
    if s.last_t != NONE_T and t - s.last_t > p.max_gap_us:
        s.reset_runs()  # a gap breaks consecutive runs (and a clearing run)
    s.last_t, s.last_end = t, end
    if s.suppressed:
        if h == 0:
            s.suppressed = False
        return None
    # Runs per level: at or above it (raw level r, towards raising it) and held below it (hold level h, which
    # includes the hysteresis band, towards clearing it).
    for k in range(len(s.run_start)):
        if r > k:
            if s.run_start[k] == NONE_T:
                s.run_start[k], s.run_count[k] = t, 1
            else:
                s.run_count[k] += 1
        else:
            s.run_start[k], s.run_count[k] = NONE_T, 0
        if h <= k:
            if s.low_start[k] == NONE_T:
                s.low_start[k], s.low_count[k] = t, 1
            else:
                s.low_count[k] += 1
        else:
            s.low_start[k], s.low_count[k] = NONE_T, 0
    target = 0
    for k in range(len(s.run_start) - 1, -1, -1):
        start = s.run_start[k]
        if start != NONE_T and s.run_count[k] >= p.for_count and end - start >= p.for_us:
            target = k + 1
            break
    if target > s.level:
        tr = Transition(p.id, subject, "opened" if s.level == 0 else "escalated", s.level, target, t, end, v,
                        s.run_start[target - 1])  # fmt: skip
        s.level = target
        return tr
    for k in range(s.level):  # the lowest level whose clearing run is complete: drop below it
        start = s.low_start[k]
        if start != NONE_T and s.low_count[k] >= p.clear_count and end - start >= p.clear_us:
            tr = Transition(p.id, subject, "resolved" if k == 0 else "deescalated", s.level, k, t, end, v, start)
            s.level = k  # the runs below the lower levels go on: they measure the same readings
            return tr
    return None


# -- vectorised stages ---------------------------------------------------------------------------------------------
@dataclass
class Rows:
    slot: np.ndarray
    t: np.ndarray
    end: np.ndarray
    v: np.ndarray
    prev_t: np.ndarray
    prev_v: np.ndarray
    same_since: np.ndarray
    same_count: np.ndarray
    late: int = 0
    extra: dict[str, np.ndarray] = field(default_factory=dict)


class Tracker:
    """Per-Datastream evaluation position: the last value evaluated and the one before it, the run of equal values,
    and the latest time seen (for silence). Datastreams get dense slots so that all of it is NumPy indexing."""

    FIELDS = ("last_t", "bl_t", "since", "bl_since", "seen_t")
    FFIELDS = ("last_v", "bl_v")
    IFIELDS = ("cnt", "bl_cnt")
    # Per-slot arrays, set by name (setattr over FIELDS / FFIELDS / IFIELDS).
    last_t: np.ndarray
    bl_t: np.ndarray
    since: np.ndarray
    bl_since: np.ndarray
    seen_t: np.ndarray
    last_v: np.ndarray
    bl_v: np.ndarray
    cnt: np.ndarray
    bl_cnt: np.ndarray

    def __init__(self) -> None:
        self.ds_ids = np.empty(0, np.int64)
        self.slot_of = np.full(0, -1, np.int64)
        for f in self.FIELDS:
            setattr(self, f, np.full(0, NONE_T, np.int64))
        for f in self.FFIELDS:
            setattr(self, f, np.full(0, np.nan))
        for f in self.IFIELDS:
            setattr(self, f, np.zeros(0, np.int64))

    def set_datastreams(self, ds_ids: np.ndarray, initial: dict[int, tuple[int, float]] | None = None) -> None:
        """Give every Datastream a slot, keeping what is known of those that had one; ``initial`` (Datastream →
        (last time µs, last value)) seeds the others (at start-up, from the store's latest values)."""
        ds_ids = np.unique(ds_ids.astype(np.int64))
        old_slot = self._slots(ds_ids)
        had = old_slot >= 0
        for f in (*self.FIELDS, *self.FFIELDS, *self.IFIELDS):
            old = getattr(self, f)
            new = np.full(len(ds_ids), NONE_T if f in self.FIELDS else (np.nan if f in self.FFIELDS else 0),
                          dtype=old.dtype)  # fmt: skip
            new[had] = old[old_slot[had]]
            setattr(self, f, new)
        if initial:
            for i in np.flatnonzero(~had):
                got = initial.get(int(ds_ids[i]))
                if got is not None:
                    self.last_t[i] = self.seen_t[i] = self.since[i] = got[0]
                    self.last_v[i] = got[1]
                    self.cnt[i] = 1
        self.ds_ids = ds_ids
        top = int(ds_ids.max()) + 1 if len(ds_ids) else 0
        self.slot_of = np.full(top, -1, np.int64)
        self.slot_of[ds_ids] = np.arange(len(ds_ids))

    def _slots(self, ds: np.ndarray) -> np.ndarray:
        out = np.full(len(ds), -1, np.int64)
        ok = (ds >= 0) & (ds < len(self.slot_of))
        out[ok] = self.slot_of[ds[ok]]
        return out

    def slots(self, ds: np.ndarray) -> np.ndarray:
        return self._slots(ds.astype(np.int64))

    def prepare(
        self, ds: np.ndarray, t: np.ndarray, end: np.ndarray, v: np.ndarray, extra: dict[str, np.ndarray] | None = None
    ) -> Rows | None:
        """Evaluate-ready rows of a batch (``extra`` columns are carried along) and the new positions."""
        slot = self._slots(ds)
        pos = np.flatnonzero(slot >= 0)
        if not pos.size:
            return None
        # Sorted by (slot, time), stably: of equal keys the later-arrived row stays last. Bodies usually come in
        # time order, where a stable sort on the slot alone is enough (and twice as fast).
        tp = t[pos]
        if tp.size < 2 or bool(np.all(tp[1:] >= tp[:-1])):
            pos = pos[np.argsort(slot[pos], kind="stable")]
        else:
            pos = pos[np.lexsort((tp, slot[pos]))]
        slot, t = slot[pos], t[pos]
        last_of_group = np.r_[slot[1:] != slot[:-1], True]
        g = slot[last_of_group]
        self.seen_t[g] = np.maximum(self.seen_t[g], t[last_of_group])
        num = ~np.isnan(v[pos])
        dup = np.r_[(slot[1:] == slot[:-1]) & (t[1:] == t[:-1]), False]  # a row re-sent later in the batch wins
        late = t < self.last_t[slot]
        sel = num & ~dup & ~late
        n_late = int((num & late).sum())
        pos = pos[sel]
        slot, t, end, v = slot[sel], t[sel], end[pos], v[pos]
        extras = {k: a[pos] for k, a in (extra or {}).items()}
        m = len(slot)
        if not m:
            return Rows(slot, t, end, v, t, v, t, t, late=n_late, extra=extras)
        first = np.r_[True, slot[1:] != slot[:-1]]
        rev = first & (t == self.last_t[slot])
        fs = slot[first]
        frev = rev[first]
        prev_t = np.empty(m, np.int64)
        prev_v = np.empty(m)
        prev_t[1:], prev_v[1:] = t[:-1], v[:-1]
        prev_t[first] = np.where(frev, self.bl_t[fs], self.last_t[fs])
        prev_v[first] = np.where(frev, self.bl_v[fs], self.last_v[fs])
        same = v == prev_v  # NaN (nothing before) is never equal
        c_since = np.zeros(m, np.int64)
        c_cnt = np.zeros(m, np.int64)
        c_since[first] = np.where(frev, self.bl_since[fs], self.since[fs])
        c_cnt[first] = np.where(frev, self.bl_cnt[fs], self.cnt[fs])
        carry = first & same
        anchor = first | ~same
        idx = np.arange(m)
        a = np.maximum.accumulate(np.where(anchor, idx, 0))
        same_since = np.where(carry, c_since, t)[a]
        same_count = np.where(carry, c_cnt, 0)[a] + (idx - a + 1)
        # New per-slot position: the group's last row, and the row before it (or what was last before).
        last = np.flatnonzero(np.r_[slot[1:] != slot[:-1], True])
        ls = slot[last]
        single = first[last]
        lrev = rev[last]
        before = np.maximum(last - 1, 0)
        self.bl_t[ls], self.bl_v[ls], self.bl_since[ls], self.bl_cnt[ls] = (
            np.where(single, np.where(lrev, self.bl_t[ls], self.last_t[ls]), t[before]),
            np.where(single, np.where(lrev, self.bl_v[ls], self.last_v[ls]), v[before]),
            np.where(single, np.where(lrev, self.bl_since[ls], self.since[ls]), same_since[before]),
            np.where(single, np.where(lrev, self.bl_cnt[ls], self.cnt[ls]), same_count[before]),
        )
        self.last_t[ls], self.last_v[ls] = t[last], v[last]
        self.since[ls], self.cnt[ls] = same_since[last], same_count[last]
        return Rows(slot, t, end, v, prev_t, prev_v, same_since, same_count, late=n_late, extra=extras)


@dataclass
class Elements:
    row: np.ndarray
    rule: np.ndarray  # index into Pairs.params
    subject: np.ndarray
    r: np.ndarray
    h: np.ndarray
    key: np.ndarray


class _Group:
    """The pairs of one rule kind, sorted by Datastream slot, with every pair's parameters gathered once at compile
    time (thresholds in signed space, one column per level; a strict ``>`` is ``>=`` the next float up), so that a
    batch costs a few one-dimensional comparisons per level."""

    def __init__(self, kind: str, params: list[RuleParams], slot: np.ndarray, rule: np.ndarray,
                 subject: np.ndarray, nslots: int) -> None:  # fmt: skip
        order = np.argsort(slot, kind="stable")
        self.kind = kind
        self.slot, self.rule, self.subject = slot[order], rule[order], subject[order]
        self.lo = np.searchsorted(self.slot, np.arange(nslots), "left")
        self.hi = np.searchsorted(self.slot, np.arange(nslots), "right")
        ps = [params[i] for i in self.rule.tolist()]
        col = lambda f, dt=np.float64: np.array([f(p) for p in ps], dt)  # noqa: E731
        self.key = (col(lambda p: p.id, np.int64) << 32) | self.subject
        if kind == "threshold":
            self.sign = col(lambda p: p.sign)
            k = max([p.nlevels for p in ps] or [1])
            self.up, self.hold = [], []
            for j in range(k):
                t = col(lambda p, j=j: p.thresholds[j] if j < len(p.thresholds) else np.inf)
                held = t - col(lambda p: p.hysteresis)
                strict = col(lambda p: p.strict, bool)
                self.up.append(np.where(strict, np.nextafter(t, np.inf), t))
                self.hold.append(np.where(strict, np.nextafter(held, np.inf), held))
        elif kind == "range":
            hy = col(lambda p: p.hysteresis)
            self.lo_v, self.hi_v = col(lambda p: p.lo), col(lambda p: p.hi)
            self.lo_h, self.hi_h = self.lo_v + hy, self.hi_v - hy
        elif kind == "rate":
            self.rate_max = col(lambda p: p.rate_max)
            self.rate_hold = self.rate_max - col(lambda p: p.hysteresis)
            self.per_us = col(lambda p: p.per_us)
            self.gap_us = col(lambda p: p.max_gap_us, np.int64)
            self.direction = col(lambda p: p.direction, np.int8)
        elif kind == "stuck":
            self.stuck_us = col(lambda p: p.stuck_us, np.int64)
            self.stuck_min = col(lambda p: p.stuck_min, np.int64)

    def expand(self, rows: Rows) -> Elements | None:
        lo = self.lo[rows.slot]
        cnt = self.hi[rows.slot] - lo
        total = int(cnt.sum())
        if total == 0:
            return None
        row = np.repeat(np.arange(len(cnt)), cnt)
        pair = np.repeat(lo - (np.cumsum(cnt) - cnt), cnt) + np.arange(total)
        v = rows.v[row]
        if self.kind == "threshold":
            x = v * self.sign[pair]
            r = (x >= self.up[0][pair]).astype(np.int16)
            h = (x >= self.hold[0][pair]).astype(np.int16)
            for up, hold in zip(self.up[1:], self.hold[1:], strict=True):
                r += x >= up[pair]
                h += x >= hold[pair]
        elif self.kind == "range":
            r = ((v < self.lo_v[pair]) | (v > self.hi_v[pair])).astype(np.int16)
            h = ((v < self.lo_h[pair]) | (v > self.hi_h[pair])).astype(np.int16)
        elif self.kind == "rate":
            pt, pv = rows.prev_t[row], rows.prev_v[row]
            ok = pt != NONE_T
            dt = np.where(ok, rows.t[row] - np.where(ok, pt, 0), 0)
            ok &= (dt > 0) & (dt <= self.gap_us[pair]) & ~np.isnan(pv)
            with np.errstate(invalid="ignore", divide="ignore"):
                rate = (v - pv) / np.where(ok, dt, 1) * self.per_us[pair]
            d = self.direction[pair]
            signed = np.where(d > 0, rate, np.where(d < 0, -rate, np.abs(rate)))
            r = (ok & (signed >= self.rate_max[pair])).astype(np.int16)
            h = (ok & (signed >= self.rate_hold[pair])).astype(np.int16)
        else:  # stuck
            same = rows.same_count[row]
            r = (same >= self.stuck_min[pair]) & (rows.t[row] - rows.same_since[row] >= self.stuck_us[pair])
            r = r.astype(np.int16)
            h = (same >= 2).astype(np.int16)
        return Elements(row, self.rule[pair], self.subject[pair], r, h, self.key[pair])


class Pairs:
    """(Datastream slot, rule, subject) triples of the point-evaluated rules, one group per kind."""

    def __init__(self, params: list[RuleParams], slot: np.ndarray, rule: np.ndarray, subject: np.ndarray,
                 nslots: int) -> None:  # fmt: skip
        self.params = params
        self.size = len(slot)
        kinds = np.array([p.kind for p in params], dtype=object)[rule] if len(rule) else np.empty(0, object)
        self.groups = [
            _Group(k, params, slot[m], rule[m], subject[m], nslots)
            for k in ("threshold", "range", "rate", "stuck")
            if (m := kinds == k).any()
        ]

    def __len__(self) -> int:
        return self.size

    def expand(self, rows: Rows) -> list[Elements]:
        """Each kind's (row, pair) elements with their raw and hold levels."""
        if not self.size or not len(rows.slot):
            return []
        return [e for g in self.groups if (e := g.expand(rows)) is not None]


def state_key(rule_id: int, subject: int) -> int:
    return (int(rule_id) << 32) | int(subject)


def split_key(key: int) -> tuple[int, int]:
    return key >> 32, key & 0xFFFFFFFF
