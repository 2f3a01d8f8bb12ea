"""Faults that real sensor networks have, injected into the simulated stream.

Rates are shares of the readings a series would emit (``offline_per_day`` is per Thing and day). Value faults
(stuck, spike, negative) change what is sent; delivery faults (late, duplicate) change when and how often;
gaps and outages drop readings. Every emitted faulty reading carries its fault's name in ``Reading.fault``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

FAULT_KINDS = ("gap", "stuck", "spike", "negative", "late", "duplicate", "offline")


@dataclass(frozen=True)
class FaultConfig:
    """Fault rates; the defaults are the demo's modest ones (about 3 % of readings touched)."""

    gap: float = 0.01  # share of readings lost, in runs of ``gap_run`` readings on average (a dropped uplink)
    stuck: float = 0.005  # share repeating the value before them, in runs of ``stuck_run`` (a frozen sensor)
    spike: float = 0.002  # share multiplied by 3–8 (electrical noise, an insect in the inlet)
    negative: float = 0.001  # share sent as a negative value (zero drift, a sign error in a gateway)
    late: float = 0.01  # share delivered 1–6 reporting intervals late, so out of order (a buffering gateway)
    duplicate: float = 0.005  # share delivered twice (an at-least-once retry)
    offline_per_day: float = 0.02  # outages per Thing and day; each silences all its Datastreams for 2–8 h
    gap_run: float = 3.0
    stuck_run: float = 6.0

    @classmethod
    def none(cls) -> FaultConfig:
        return cls(**{f.name: 0.0 for f in fields(cls) if not f.name.endswith("_run")})

    def scaled(self, factor: float) -> FaultConfig:
        """Every rate multiplied by ``factor`` (run lengths unchanged)."""
        return replace(
            self, **{f.name: getattr(self, f.name) * factor for f in fields(self) if not f.name.endswith("_run")}
        )

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) > 0 for f in fields(self) if not f.name.endswith("_run"))


def _runs(n: int, share: float, mean_run: float, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask covering about ``share`` of ``n`` slots with runs of geometric length (mean ``mean_run``)."""
    mask = np.zeros(n, dtype=bool)
    if share <= 0 or n == 0:
        return mask
    starts = np.flatnonzero(rng.random(n) < share / mean_run)
    lengths = rng.geometric(1.0 / mean_run, size=starts.size)
    for s, k in zip(starts.tolist(), lengths.tolist(), strict=True):
        mask[s : s + k] = True
    return mask


@dataclass
class Faulted:
    """One series' readings after faults: which slots are sent, their values, extra delays (in intervals,
    0 = on time), whether each is sent twice, and the fault labels ("" for none; a repeated reading's copy adds
    "duplicate")."""

    index: np.ndarray
    values: np.ndarray
    delay: np.ndarray
    twice: np.ndarray
    labels: list[str]


def apply(values: np.ndarray, offline: np.ndarray, cfg: FaultConfig, rng: np.random.Generator) -> Faulted:
    """Inject faults into one series' block of clean ``values`` (``offline``: slots of a Thing outage)."""
    n = values.size
    out = values.astype(np.float64).copy()
    labels = np.zeros(n, dtype=np.int8)  # bit flags in the order of FAULT_KINDS
    drop = offline | _runs(n, cfg.gap, cfg.gap_run, rng)
    stuck = _runs(n, cfg.stuck, cfg.stuck_run, rng) & ~drop
    if stuck.any():
        # Each run repeats the last value before it (or its own first value at the start of the block).
        idx = np.arange(n)
        last_free = np.maximum.accumulate(np.where(stuck, -1, idx))
        src = np.where(last_free >= 0, last_free, np.argmax(stuck))
        out[stuck] = values[src[stuck]]
        labels[stuck] |= 1 << 1
    free = ~drop & ~stuck
    spike = free & (rng.random(n) < cfg.spike)
    out[spike] = np.round(out[spike] * rng.uniform(3.0, 8.0, spike.sum()), 1)
    labels[spike] |= 1 << 2
    neg = free & ~spike & (rng.random(n) < cfg.negative)
    out[neg] = -np.round(np.abs(out[neg]) * rng.uniform(0.05, 1.0, neg.sum()) + 0.1, 1)
    labels[neg] |= 1 << 3
    late = rng.random(n) < cfg.late
    delay = np.where(late, rng.uniform(1.0, 6.0, n), 0.0)
    labels[late] |= 1 << 4
    twice = rng.random(n) < cfg.duplicate  # the copy is labelled "duplicate" when it is emitted
    keep = np.flatnonzero(~drop)
    names = [
        "+".join(k for b, k in enumerate(FAULT_KINDS) if flags >> b & 1) if flags else ""
        for flags in labels[keep].tolist()
    ]
    return Faulted(keep, out[keep], delay[keep], twice[keep], names)


def outages(
    start: np.datetime64, end: np.datetime64, carried: np.datetime64 | None, cfg: FaultConfig, rng: np.random.Generator
) -> tuple[list[tuple[np.datetime64, np.datetime64]], np.datetime64 | None]:
    """A Thing's outages overlapping the block [start, end): those starting in it (Poisson, ``offline_per_day`` per
    day, 2–8 h long) and one carried over from the previous block; returns them and the one to carry on."""
    windows = []
    if carried is not None and carried > start:
        windows.append((start, carried))
    span_days = (end - start) / np.timedelta64(1, "D")
    for _ in range(rng.poisson(cfg.offline_per_day * span_days)):
        s = start + np.timedelta64(int(rng.uniform(0, span_days * 86400)), "s")
        windows.append((s, s + np.timedelta64(int(rng.uniform(2, 8) * 3600), "s")))
    carry = max((e for _, e in windows if e > end), default=None)
    return windows, carry
