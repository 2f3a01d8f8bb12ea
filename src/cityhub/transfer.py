"""``cityhub copy``: move a whole hub between stores (an embedded DuckDB data directory, a PostgreSQL schema) with
every id kept, then prove the copy by counting and checksumming every table on both sides.

The copy streams each table from the source's :class:`~cityhub.store.ops.transfer.TransferOps` into the target's
in Arrow batches, computing a checksum of the rows as read; afterwards it reads the target back and computes the
same checksum there. Both sides use the code here, over batches whose columns both backends read with the same
Arrow types, so equal checksums mean equal tables whatever the backends.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from cityhub.config import Settings
from cityhub.store.base import Store
from cityhub.store.ops.transfer import DEFAULT_BATCH_ROWS

_MOD = 1 << 64
# Per column and row: a presence byte (0 NULL, 1 a value) and 8 bytes (the value, or a string's length in bytes).
_CELL = 9


class CopyError(Exception):
    """A copy that cannot start (unreachable store, a target that holds data, tables that differ): the message
    says why and what to do."""


class CopyFailed(Exception):
    """A copy that failed part-way (the database went away, a value the target refuses): ``table`` is the table
    being copied or verified, ``cause`` the error."""

    def __init__(self, table: str, cause: BaseException) -> None:
        detail = getattr(cause, "detail", None) or str(cause) or type(cause).__name__
        super().__init__(f"{table}: {detail.strip().splitlines()[0]}")
        self.table = table


def _canonical_cells(arr: pa.Array) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(8 little-endian bytes per row, string bytes, string starts) of one column. Fixed-width values are int64
    (any integer width, booleans as 0/1, timestamps as microseconds since the Unix epoch UTC) or float64 IEEE bytes
    (every NaN the same); a string contributes its UTF-8 length here and its bytes after the row's cells."""
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        large = arr.cast(pa.large_binary())
        _, offsets_buf, data_buf = large.buffers()
        offsets = np.frombuffer(offsets_buf, dtype=np.int64)[large.offset : large.offset + len(large) + 1]
        data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
        lengths = np.diff(offsets)
        if large.null_count:
            lengths = np.where(large.is_null().to_numpy(zero_copy_only=False), 0, lengths)
        return lengths.astype("<i8"), data, offsets[:-1]
    if pa.types.is_floating(t):
        values = arr.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
        values = np.where(np.isnan(values), np.nan, values).astype("<f8")
        return values, None, None
    if pa.types.is_timestamp(t):
        arr = arr.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    elif pa.types.is_boolean(t) or pa.types.is_integer(t):
        arr = arr.cast(pa.int64())
    else:  # any other type (none in the model today) by its text
        return _canonical_cells(arr.cast(pa.large_string()))
    return arr.fill_null(0).to_numpy(zero_copy_only=False).astype("<i8"), None, None


def _gather_index(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """The indexes start[i], start[i]+1, ..., start[i]+len[i]-1 of every value, concatenated."""
    ends = np.cumsum(lens)
    return np.repeat(starts - (ends - lens), lens) + np.arange(int(ends[-1]) if len(ends) else 0, dtype=np.int64)


def row_bytes(batch: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(bytes, start of each row in them) of the canonical serialisation of every row of ``batch``: its columns in
    name order, each as a presence byte and 8 bytes, then the UTF-8 bytes of its strings in the same order. NULL
    and the empty string differ (presence byte); the row ends at the next start (the last at the end)."""
    n = batch.num_rows
    names = sorted(batch.column_names)
    width = _CELL * len(names)
    cells = np.zeros((n, width), np.uint8)
    strings: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    extra = np.zeros(n, np.int64)
    for k, name in enumerate(names):
        col = batch.column(name)
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        cells[:, _CELL * k] = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        values, data, starts = _canonical_cells(arr)
        cells[:, _CELL * k + 1 : _CELL * (k + 1)] = values.view(np.uint8).reshape(n, 8)
        if data is not None and starts is not None:
            strings.append((values.astype(np.int64), data, starts))
            extra += values
    if not strings:
        return cells.reshape(-1), np.arange(n, dtype=np.int64) * width
    sizes = width + extra
    row_starts = np.zeros(n, dtype=np.int64)
    np.cumsum(sizes[:-1], out=row_starts[1:])
    out = np.empty(int(sizes.sum()), np.uint8)
    for j in range(width):  # a column of bytes at a time: 5x faster than one fancy index over every cell
        out[row_starts + j] = cells[:, j]
    pos = row_starts + width
    for lengths, data, starts in strings:
        present = lengths > 0
        if present.any():
            lens = lengths[present]
            src = _gather_index(starts[present], lens)
            out[np.repeat(pos[present] - starts[present], lens) + src] = data[src]
        pos = pos + lengths
    return out, row_starts


class Checksum:
    """An order-independent checksum of a table's rows: the sum modulo 2**64 of a 64-bit BLAKE2b hash of each row's
    canonical serialisation (:func:`row_bytes`). Any changed value, a NULL for an empty string, a lost or an extra
    row changes it (barring a 2**-64 collision); the order rows come in does not."""

    def __init__(self) -> None:
        self.rows = 0
        self.value = 0

    def update(self, batch: pa.Table) -> None:
        n = batch.num_rows
        if not n:
            return
        data, starts = row_bytes(batch)
        ends = np.append(starts[1:], len(data)).tolist()
        view = memoryview(data.data)
        blake2b = hashlib.blake2b
        # The one loop per row left: hashlib has no vectorised form, and at ~1 µs a row it is about half the cost.
        digests = b"".join(
            [blake2b(view[s:e], digest_size=8).digest() for s, e in zip(starts.tolist(), ends, strict=True)]
        )
        # uint64 sums wrap around: modulo 2**64 by construction.
        self.value = (self.value + int(np.frombuffer(digests, "<u8").sum(dtype=np.uint64))) % _MOD
        self.rows += n

    def hexdigest(self) -> str:
        return f"{self.value:016x}"


@dataclass(frozen=True)
class _Failed:
    exc: BaseException


_DONE = object()


def read_ahead(batches: Iterator[pa.Table], depth: int = 2) -> Iterator[pa.Table]:
    """``batches`` as they come, produced by a worker thread up to ``depth`` batches ahead: one store's reads (and
    the checksum of what it read) overlap the other store's writes. The worker's exception is raised here; closing
    this iterator stops the worker and closes ``batches`` in it (a PostgreSQL read ends its transaction)."""
    ready: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            put(_Failed(exc))
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name="cityhub-copy-read", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            assert isinstance(item, pa.Table)
            yield item
    finally:
        stop.set()
        worker.join()


@dataclass
class TableReport:
    """One table of a copy: rows and checksum read from the source, rows written, rows and checksum read back."""

    table: str
    source_rows: int = 0
    source_sum: str = ""
    written: int = 0
    target_rows: int = 0
    target_sum: str = ""

    @property
    def ok(self) -> bool:
        return self.source_rows == self.written == self.target_rows and self.source_sum == self.target_sum


def is_url(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def describe(location: str) -> str:
    """A location for messages: a data directory, or a store URL without its password."""
    if not is_url(location):
        return str(Path(location))
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(location)
    if parts.password:
        return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))
    return location


def open_location(location: str, *, target: bool) -> Store:
    """The store at ``location``: a data directory (embedded DuckDB) or a ``postgresql://`` URL. A source must
    exist; a target is created when missing (a data directory, or the schema named in the URL)."""
    from cityhub.errors import ProblemError
    from cityhub.store import open_store

    if is_url(location):
        try:
            settings = Settings(store=location)
            return open_store(settings, migrate_mode="auto" if target else "check")
        except ValueError as exc:
            raise CopyError(f"{describe(location)}: {exc}") from None
        except ProblemError as exc:
            raise CopyError(f"{describe(location)}: {exc.detail}") from None
    settings = Settings(data_dir=Path(location), store="")
    if not target and not settings.db_path.exists():
        raise CopyError(f"no CityHub data in {location} (no {settings.db_path.name} there)")
    try:
        return open_store(settings)
    except Exception as exc:  # DuckDB: the file is held by a running hub, or is not a DuckDB file
        raise CopyError(f"cannot open {settings.db_path}: {str(exc).splitlines()[0]}") from None


def _same_location(a: str, b: str) -> bool:
    if is_url(a) or is_url(b):
        return is_url(a) and is_url(b) and a.rstrip("/") == b.rstrip("/")
    return Path(a).resolve() == Path(b).resolve()


def check_target(source: Store, target: Store, where: str) -> list[str]:
    """The tables to copy; raises :class:`CopyError` when the target holds any row or lacks a table or column."""
    tables = source.transfer.tables()
    if not target.transfer.is_empty():
        held = ", ".join(f"{t}: {n:,}" for t in target.transfer.tables() if (n := target.transfer.row_count(t)))
        raise CopyError(
            f"refusing to copy into {where}: it is not empty ({held}). Copy into a new data directory or a new "
            "PostgreSQL schema (postgresql://…/db?schema=name), or empty this one first."
        )
    have = set(target.transfer.tables())
    for table in tables:
        if table not in have:
            raise CopyError(f"{where} has no table {table}: is it on the same CityHub version as the source?")
        mine, theirs = source.transfer.columns(table), target.transfer.columns(table)
        if set(mine) != set(theirs):
            raise CopyError(f"table {table} differs: source columns {sorted(mine)}, target columns {sorted(theirs)}")
    return tables


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def copy_tables(
    source: Store,
    target: Store,
    tables: list[str],
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    console: Console | None = None,
) -> list[TableReport]:
    """Copy ``tables`` from ``source`` into the (empty) ``target``, then read the target back: per table the rows
    and checksums on both sides. Raises :class:`CopyFailed` when a read or write fails (the table's transaction is
    rolled back; earlier tables stay copied)."""
    console = console or Console()
    reports = {t: TableReport(t) for t in tables}
    counts = {t: source.transfer.row_count(t) for t in tables}
    total = sum(counts.values())
    started = time.monotonic()
    with _progress(console) as progress:
        task = progress.add_task("copying", total=total)
        for table in tables:
            progress.update(task, description=f"copying {table}")
            sums = Checksum()

            def batches(table: str = table, sums: Checksum = sums) -> Iterator[pa.Table]:
                for batch in read_ahead(source.transfer.read(table, batch_rows)):
                    sums.update(batch)
                    progress.advance(task, batch.num_rows)
                    yield batch

            try:
                reports[table].written = target.transfer.write(table, batches())
            except Exception as exc:
                raise CopyFailed(table, exc) from exc
            reports[table].source_rows, reports[table].source_sum = sums.rows, sums.hexdigest()
        try:
            target.transfer.finish()
        except Exception as exc:
            raise CopyFailed("(setting id counters)", exc) from exc
        progress.update(task, description="copied", completed=sum(r.source_rows for r in reports.values()))
        elapsed = time.monotonic() - started
        check = progress.add_task("verifying", total=total)
        for table in tables:
            progress.update(check, description=f"verifying {table}")
            back = Checksum()
            try:
                for batch in read_ahead(target.transfer.read(table, batch_rows)):
                    back.update(batch)
                    progress.advance(check, batch.num_rows)
            except Exception as exc:
                raise CopyFailed(table, exc) from exc
            reports[table].target_rows, reports[table].target_sum = back.rows, back.hexdigest()
        progress.update(check, description="verified")
    copied = sum(r.written for r in reports.values())
    console.print(f"copied {copied:,} rows in {elapsed:.1f} s ({copied / max(elapsed, 1e-9):,.0f} rows/s)")
    return [reports[t] for t in tables]


def report_table(reports: Iterable[TableReport], title: str) -> Table:
    """A Rich table of the copy: per table its rows, checksum and whether the target matches the source (where it
    does not, both sides are shown, source → target)."""
    reports = list(reports)
    t = Table(title=title)
    t.add_column("table", no_wrap=True, min_width=max((len(r.table) for r in reports), default=5))
    t.add_column("rows", justify="right", no_wrap=True)
    t.add_column("checksum", no_wrap=True)
    t.add_column("status", no_wrap=True)
    for r in reports:
        same_rows = r.source_rows == r.written == r.target_rows
        rows = f"{r.source_rows:,}" if same_rows else f"{r.source_rows:,} → {r.target_rows:,} ({r.written:,} written)"
        digest = r.source_sum if r.source_sum == r.target_sum else f"{r.source_sum} → {r.target_sum}"
        t.add_row(r.table, rows, digest, "[green]ok[/green]" if r.ok else "[red]MISMATCH[/red]")
    return t


def copy_store(source_loc: str, target_loc: str, *, batch_rows: int = DEFAULT_BATCH_ROWS,
               console: Console | None = None) -> int:  # fmt: skip
    """``cityhub copy``: everything at ``source_loc`` into the empty store at ``target_loc`` (data directories or
    ``postgresql://`` URLs), verified. Returns the exit code: 0 when every table matches, 1 when one does not or
    the copy failed part-way, 2 when it could not start (the message says why)."""
    console = console or Console()
    if _same_location(source_loc, target_loc):
        console.print("[red]--from and --to name the same store[/red]")
        return 2
    opened: list[Store] = []
    try:
        source = open_location(source_loc, target=False)
        opened.append(source)
        target = open_location(target_loc, target=True)
        opened.append(target)
        tables = check_target(source, target, describe(target_loc))
        reports = copy_tables(source, target, tables, batch_rows=batch_rows, console=console)
    except CopyError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    except CopyFailed as exc:
        console.print(
            f"[red]the copy failed at table {exc}[/red]\n{describe(target_loc)} now holds part of the data: remove it "
            "(the data directory, or the PostgreSQL schema with everything in it) or copy into another empty target "
            "once the cause is fixed."
        )
        return 1
    finally:
        for store in reversed(opened):
            store.close()
    console.print(report_table(reports, f"{describe(source_loc)} → {describe(target_loc)}"))
    bad = [r.table for r in reports if not r.ok]
    if bad:
        console.print(f"[red]{len(bad)} table(s) differ after the copy: {', '.join(bad)}[/red]")
        return 1
    console.print(f"[green]all {len(reports)} tables match[/green]")
    return 0
