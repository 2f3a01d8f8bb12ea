"""Group commit of Observations.

Every path that stores Observations (single POST, bulk bodies, CreateObservations, MQTT) hands an Arrow
batch to one writer thread. The thread appends whatever is queued in one transaction and answers each
request after the commit, so a 2xx always means durable, and concurrent small writes share one commit
instead of paying one each.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from cityhub.bus import EventBus
from cityhub.errors import ProblemError
from cityhub.store.base import OBSERVATION_BATCH_SCHEMA, AppendResult, Store

log = logging.getLogger(__name__)

# Roll-ups (latest values, hourly aggregates) cost ~3 ms per statement whatever the rows, so they are
# folded in after a quiet moment, or at least every store.fold_interval_s under load. Reads of them fold first.
IDLE_FLUSH_S = 0.05
# ... or once this many rows wait: each fold has a fixed cost (two upserts and a commit), so fewer, larger folds
# leave more of a busy writer's time to commits; reads fold first, so none of them sees a stale roll-up.
MAX_PENDING_ROWS = 400_000
# The log's size is looked at (a system call) at most this often, or after this many rows: under a stream of
# small commits a look after each cost the writer ~2 ms, waiting for the GIL back from the event loop.
CHECKPOINT_LOOK_S = 0.1
CHECKPOINT_LOOK_ROWS = 100_000


@dataclass(eq=False)
class _Item:
    batch: pa.Table | list[dict[str, Any]]
    all_or_nothing: bool
    replace: bool = False
    future: Future[AppendResult] = field(default_factory=Future)

    @property
    def rows(self) -> int:
        return len(self.batch) if isinstance(self.batch, list) else self.batch.num_rows

    def ids(self) -> np.ndarray:
        if isinstance(self.batch, list):
            if len(self.batch) == 1:  # a single POST; np.fromiter's generator costs more than the row
                return np.array([self.batch[0]["id"]], np.int64)
            return np.fromiter((r["id"] for r in self.batch), np.int64, len(self.batch))
        ids: np.ndarray = self.batch.column("id").to_numpy()
        return ids


class WriterBusy(ProblemError):
    """The writer's queue is full: a 503 with ``Retry-After`` (HTTP), or a message left unacknowledged (MQTT)."""

    def __init__(self, queued: int, limit: int, retry_after: int) -> None:
        super().__init__(
            503,
            "Service Unavailable",
            f"the hub is storing {queued:,} rows already (its limit is {limit:,}); retry in {retry_after} s",
            field="body",
            headers={"Retry-After": str(retry_after)},
        )


class _Conflict(Exception):
    def __init__(self, results: dict[_Item, AppendResult]) -> None:
        self.results = results


# Writes of at most this many rows (a device's reading, a gateway's few) go ahead of bulk bodies in the queue.
SMALL_ROWS = 64


class _Lanes:
    """The writer's queue: a lane for small writes that the writer always empties first, and one for the rest
    (bulk bodies, derived rows, drain markers, the stop sentinel), each first in, first out.

    Under saturation the queue holds up to ``max_queued_rows`` rows of bulk bodies, seconds of work; a single
    reading from a sensor need not wait behind them. Order matters only within a lane: a drain marker sits in
    the bulk lane, and a small write queued before it is taken no later than it, since the small lane is
    emptied first at every turn."""

    def __init__(self) -> None:
        self._small: deque[_Item] = deque()
        self._bulk: deque[_Item | None] = deque()
        self._cond = threading.Condition()

    def put(self, item: _Item | None) -> None:
        with self._cond:
            if item is not None and not item.replace and 0 < item.rows <= SMALL_ROWS:
                self._small.append(item)
            else:
                self._bulk.append(item)
            self._cond.notify()

    def get(self, timeout: float) -> _Item | None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._small or self._bulk, timeout):
                raise queue.Empty
            return self._small.popleft() if self._small else self._bulk.popleft()

    def get_nowait(self) -> _Item | None:
        with self._cond:
            if self._small:
                return self._small.popleft()
            if self._bulk:
                return self._bulk.popleft()
            raise queue.Empty


class ObservationWriter:
    """Serialises Observation appends and commits them in groups of up to ``max_rows`` rows."""

    def __init__(
        self,
        store: Store,
        bus: EventBus | None = None,
        max_rows: int = 100_000,
        max_queued_rows: int = 1_000_000,
        checkpoint_interval_s: float = 300.0,
        checkpoint_log_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.store = store
        self.bus = bus or EventBus()
        self.max_rows = max_rows
        self.max_queued_rows = max_queued_rows
        self._queued_rows = 0  # rows submitted and not yet taken by the writer thread
        self._count_lock = threading.Lock()
        self._commit_rate = 200_000.0  # rows/s, updated as groups commit; sizes Retry-After
        self._queue = _Lanes()
        self._flushed = time.monotonic()
        # The store's write-ahead log is checkpointed here, in the one thread that writes, between commits: on a
        # schedule and whenever it has grown past its limit, so that a restart after kill -9 replays little.
        self.checkpoint_interval_s = checkpoint_interval_s
        self.checkpoint_log_bytes = checkpoint_log_bytes
        self._checkpointed = time.monotonic()
        self._looked = 0.0  # time.monotonic() of the last look at the log's size
        self._rows_unlooked = 0
        self.checkpoints = 0
        self.checkpoints_postponed = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="observation-writer", daemon=True)
        self._thread.start()

    def submit(
        self,
        batch: pa.Table | list[dict[str, Any]],
        *,
        all_or_nothing: bool = True,
        replace: bool = False,
        bounded: bool = True,
    ) -> Future[AppendResult]:
        """Queue a batch whose ``id`` column was allocated with ``store.allocate_ids``: an Arrow table, or
        rows (dicts with the columns of OBSERVATION_BATCH_SCHEMA; single POSTs skip Arrow until the group
        is committed).

        With ``all_or_nothing`` a batch holding a conflicting duplicate (same key, other result) stores
        nothing and its result lists the conflicts. With ``replace`` (derived Observations, recomputed as
        their inputs change) a row whose key is stored updates that Observation in place, keeping its id.

        Every committed row, new or replaced, is published on the bus (subject ``observations``) before the
        returned future resolves.

        With ``bounded`` (every client's write) a batch that would take the queue past ``max_queued_rows`` is
        refused with :class:`WriterBusy` rather than queued: memory stays bounded and the client learns when to
        retry. A batch is always taken when nothing is queued, however large. Derived rows (computed by the hub
        from rows already accepted) pass ``bounded=False``: refusing them would lose work the hub owes.
        """
        if self._closed:
            raise RuntimeError("the Observation writer is closed")
        item = _Item(batch, all_or_nothing, replace)
        rows = item.rows
        with self._count_lock:
            queued = self._queued_rows
            if bounded and queued and queued + rows > self.max_queued_rows:
                retry = max(1, min(60, round(queued / self._commit_rate)))
                raise WriterBusy(queued, self.max_queued_rows, retry)
            self._queued_rows = queued + rows
        self._queue.put(item)
        return item.future

    def submit_waiting(
        self, batch: pa.Table | list[dict[str, Any]], *, all_or_nothing: bool = True, poll_s: float = 0.2
    ) -> Future[AppendResult]:
        """``submit`` for a producer that is one client among others and may wait its turn (the demo city, a
        streamed body's later batches): while the queue is full it waits rather than being refused."""
        while True:
            try:
                return self.submit(batch, all_or_nothing=all_or_nothing)
            except WriterBusy:
                time.sleep(poll_s)

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    def drain(self) -> None:
        """Wait until everything submitted so far is committed (and published)."""
        marker = self.submit([], all_or_nothing=False)
        marker.result()

    def close(self) -> None:
        """Commit what is queued, fold the roll-ups in, and stop; waits for the thread however long it takes,
        since the store must not be closed under a commit."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            try:
                # With roll-ups pending, wait only briefly: a quiet moment is the time to fold them in.
                # Otherwise wake now and then: a checkpoint may fall due while nothing is written.
                first = self._queue.get(timeout=IDLE_FLUSH_S if self.store.pending_derived() else 1.0)
            except queue.Empty:
                self._flush()
                self._maybe_checkpoint()
                continue
            if first is None:
                self._flush()
                return
            items, rows, stop = [first], first.rows, False
            while rows < self.max_rows:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                items.append(nxt)
                rows += nxt.rows
            t0 = time.perf_counter()
            try:
                self._commit_group(items)
            finally:
                with self._count_lock:
                    self._queued_rows -= rows
            if rows >= 1000:
                self._commit_rate = 0.8 * self._commit_rate + 0.2 * rows / max(time.perf_counter() - t0, 1e-3)
            # Under sustained load, fold roll-ups in at least every store.fold_interval_s or MAX_PENDING_ROWS rows.
            due = time.monotonic() - self._flushed > self.store.fold_interval_s
            if self.store.pending_derived() >= MAX_PENDING_ROWS or due:
                self._flush()
            self._rows_unlooked += rows
            if self._rows_unlooked >= CHECKPOINT_LOOK_ROWS or time.monotonic() - self._looked >= CHECKPOINT_LOOK_S:
                self._maybe_checkpoint()
            if stop:
                self._flush()
                return

    def _flush(self) -> None:
        try:
            self.store.fold_own_derived()
        except Exception:
            log.exception("roll-up flush failed; it is retried after the next commit")
        self._flushed = time.monotonic()

    def _maybe_checkpoint(self) -> None:
        self._looked, self._rows_unlooked = time.monotonic(), 0
        size = self.store.log_bytes()
        if not size or (
            time.monotonic() - self._checkpointed < self.checkpoint_interval_s and size < self.checkpoint_log_bytes
        ):
            return
        # DuckDB refuses while another connection holds a write transaction open; then it is tried again after the
        # next commit. It is never forced: forcing stops new transactions while waiting for running ones, and a
        # reader between two statements would then wait for it while it waits for the reader.
        try:
            self.store.checkpoint()
        except Exception as exc:
            self.checkpoints_postponed += 1
            log.debug("checkpoint postponed: %s", exc)
            return
        self._checkpointed = time.monotonic()
        self.checkpoints += 1

    def _commit_group(self, items: list[_Item]) -> None:
        """Commit in queue order: runs of appends together, runs of replacements together; a drain marker is
        answered once everything before it is committed."""
        run: list[_Item] = []
        for item in items:
            kind = "append" if item.rows and not item.replace else "replace" if item.rows else "marker"
            if run and (kind == "marker" or (kind == "append") != (not run[0].replace)):
                self._commit_run(run)
                run = []
            if kind == "marker":
                item.future.set_result(AppendResult(np.empty(0, np.int64)))
            else:
                run.append(item)
        if run:
            self._commit_run(run)

    def _commit_run(self, items: list[_Item]) -> None:
        if items[0].replace:
            self._commit_replace(items)
        else:
            self._commit_appends(items)

    def _commit_appends(self, items: list[_Item]) -> None:
        while items:
            try:
                self._try_commit(items)
                return
            except _Conflict as exc:
                # Rare: a whole-body request met a conflicting duplicate. Answer it without storing
                # anything and commit the others again.
                for item, res in exc.results.items():
                    item.future.set_result(res)
                    items.remove(item)
            except Exception as exc:
                log.exception("observation commit failed")
                for item in items:
                    item.future.set_exception(exc)
                return

    def _try_commit(self, items: list[_Item]) -> None:
        batch = _combine(items)
        per_item: list[AppendResult] = []

        def check(result: AppendResult) -> None:
            if result.inserted.size == batch.num_rows:  # the usual case: every row is new, nothing to slice
                per_item[:] = [AppendResult(inserted=i.ids()) for i in items]
                return
            per_item[:] = [_slice(result, i.ids()) for i in items]
            bad = {
                item: AppendResult(np.empty(0, np.int64), res.duplicate_of, res.conflicting)
                for item, res in zip(items, per_item, strict=True)
                if item.all_or_nothing and res.conflicting
            }
            if bad:
                raise _Conflict(bad)

        result = self.store.append_batch(batch, check)
        # Published before the requests are answered: a client holding its 2xx can count on every subscriber
        # (alerts, MQTT, SSE) having the batch.
        if result.inserted.size == batch.num_rows:
            self.bus.observations(batch)
        elif result.inserted.size:
            mask = np.isin(batch.column("id").to_numpy(), result.inserted)
            self.bus.observations(batch.filter(pa.array(mask)))
        for item, res in zip(items, per_item, strict=True):
            item.future.set_result(res)

    def _commit_replace(self, items: list[_Item]) -> None:
        # The recomputes of many stations in one transaction; where two hold the same key, the later wins.
        try:
            batch = _last_per_key(_combine(items))
            result = self.store.replace_batch(batch)
        except Exception as exc:
            log.exception("replacing derived Observations failed")
            for item in items:
                item.future.set_exception(exc)
            return
        if result.replaced:
            ids = batch.column("id").to_numpy()
            stored = np.array([result.replaced.get(int(i), int(i)) for i in ids], np.int64)
            batch = batch.set_column(batch.schema.get_field_index("id"), "id", pa.array(stored, pa.int64()))
        self.bus.observations(batch)
        for item in items:
            item.future.set_result(result)


def _last_per_key(batch: pa.Table) -> pa.Table:
    keys = zip(batch.column("datastream_id").to_pylist(), batch.column("phenomenon_time").to_pylist(), strict=True)
    last = {k: i for i, k in enumerate(keys)}
    if len(last) == batch.num_rows:
        return batch
    return batch.take(pa.array(sorted(last.values()), pa.int64()))


def _combine(items: list[_Item]) -> pa.Table:
    rows = [r for i in items if isinstance(i.batch, list) for r in i.batch]
    tables = [i.batch for i in items if isinstance(i.batch, pa.Table)]
    if rows:
        tables.append(pa.Table.from_pylist(rows, schema=OBSERVATION_BATCH_SCHEMA))
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def _slice(result: AppendResult, ids: np.ndarray) -> AppendResult:
    lo, hi = (int(ids.min()), int(ids.max())) if ids.size else (0, -1)
    ins = result.inserted[(result.inserted >= lo) & (result.inserted <= hi)]
    dups = {k: v for k, v in result.duplicate_of.items() if lo <= k <= hi}
    return AppendResult(inserted=ins, duplicate_of=dups, conflicting={k for k in result.conflicting if lo <= k <= hi})
