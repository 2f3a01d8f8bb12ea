"""Bulk bodies of any size with bounded memory: parsed, validated and stored batch by batch as they stream in.

A body larger than ``STREAM_ABOVE`` bytes (or sent chunked, without a length) is not read whole. The route
hands its chunks to :class:`ChunkPipe`, a bounded queue that a worker thread reads as a file: CSV and Arrow IPC
are parsed a block at a time (pyarrow's streaming readers), NDJSON a run of lines at a time. Each batch is
validated as it comes (``IngestPipeline.prepare``) and its good rows are spooled to an Arrow IPC file on disk,
so memory holds one batch whatever the body's size.

Only when the whole body has been read and validated is anything stored: a body with a bad row stores nothing
(422 listing the bad rows, as for a small body) unless ``partial``. The spooled batches are then committed one
after another, each a transaction of its own. A batch that meets a conflicting stored Observation stops the
import with a 409 that says how many rows the batches before it stored; those stay stored, and sending the
corrected body again stores the rest (the stored rows count as duplicates), which is why batches are safe to
commit one at a time.
"""

from __future__ import annotations

import contextlib
import io
import queue
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as paipc

from cityhub.auth.keys import Principal
from cityhub.errors import ProblemError, bad_request
from cityhub.ingest import observations as obsin
from cityhub.ingest.pipeline import IngestPipeline

# Bodies up to this size are read whole (the fast path for a gateway's request); larger ones stream.
STREAM_ABOVE = 32 * 1024 * 1024
BATCH_ROWS = 100_000
NDJSON_LINES = 100_000
_CHUNKS_QUEUED = 64  # chunks of the body (~64 KiB each from the server) between the socket and the parser


class ChunkPipe(io.RawIOBase):
    """A read-only file over chunks put by another thread; ``put`` blocks while ``_CHUNKS_QUEUED`` wait."""

    def __init__(self) -> None:
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=_CHUNKS_QUEUED)
        self._buf = b""
        self._eof = False
        self._failed = False
        self.abandoned = threading.Event()  # the reader stopped early (a bad body): the writer stops putting

    def put(self, chunk: bytes | None) -> bool:
        """Queue a chunk (None: the end); False once the reader has given up."""
        while not self.abandoned.is_set():
            try:
                self._q.put(chunk, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def fail(self) -> None:
        """The sender went away mid-body: the reader sees the body end in an error, so nothing is stored."""
        self._failed = True
        while True:
            try:
                self._q.put_nowait(None)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._q.get_nowait()

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf and not self._eof:
            chunk = self._q.get()
            if chunk is None:
                if self._failed:
                    raise OSError("the request body was cut off before its end")
                self._eof = True
            else:
                self._buf = chunk
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _tables(pipe: ChunkPipe, fmt: str) -> Iterator[pa.Table]:
    """The body's rows, a batch at a time."""
    if fmt == "csv":
        try:
            reader = pacsv.open_csv(
                io.BufferedReader(pipe, buffer_size=1 << 20),
                read_options=pacsv.ReadOptions(block_size=4 << 20),
                convert_options=obsin.CSV_CONVERT,
            )
            for batch in reader:
                yield pa.Table.from_batches([batch])
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
            raise bad_request(f"CSV could not be read: {exc}", field="body") from None
    elif fmt == "ndjson":
        lines: list[bytes] = []
        for line in io.BufferedReader(pipe, buffer_size=1 << 20):
            lines.append(line)
            if len(lines) >= NDJSON_LINES:
                yield obsin.parse_body(b"".join(lines), "ndjson")
                lines = []
        if any(x.strip() for x in lines):
            yield obsin.parse_body(b"".join(lines), "ndjson")
    elif fmt == "arrow":
        try:
            for batch in paipc.open_stream(io.BufferedReader(pipe, buffer_size=1 << 20)):
                batch.validate(full=True)  # IPC buffers come from the client
                yield pa.Table.from_batches([batch])
        except (pa.ArrowException, OSError, UnicodeDecodeError, ValueError) as exc:
            raise bad_request(f"Arrow IPC stream could not be read: {exc}", field="body") from None
    else:
        raise bad_request(f"unknown format {fmt!r}; use csv, ndjson or arrow", field="format")


def _rebatch(tables: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """Batches of ``BATCH_ROWS`` rows (the last one fewer), whatever size the parser's blocks have."""
    held: list[pa.Table] = []
    rows = 0
    for t in tables:
        held.append(t)
        rows += t.num_rows
        while rows >= BATCH_ROWS:
            whole = pa.concat_tables(held, promote_options="permissive")
            yield whole.slice(0, BATCH_ROWS)
            rest = whole.slice(BATCH_ROWS)
            held, rows = ([rest] if rest.num_rows else []), rest.num_rows
    if held:
        yield pa.concat_tables(held, promote_options="permissive")


def ingest_stream(
    pipeline: IngestPipeline, pipe: ChunkPipe, fmt: str, who: Principal | None, *, partial: bool, spool_dir: Path
) -> dict[str, Any]:
    """Read, validate, spool, then store a streamed body (runs in a worker thread). Returns the bulk response;
    raises the 4xx of a bad body."""
    try:
        return _ingest_stream(pipeline, pipe, fmt, who, partial=partial, spool_dir=spool_dir)
    finally:
        pipe.abandoned.set()  # whatever happened, the route stops feeding the pipe


def _ingest_stream(
    pipeline: IngestPipeline, pipe: ChunkPipe, fmt: str, who: Principal | None, *, partial: bool, spool_dir: Path
) -> dict[str, Any]:
    spool_dir.mkdir(parents=True, exist_ok=True)
    received = bad_count = 0
    bad: list[dict[str, Any]] = []
    with tempfile.NamedTemporaryFile(dir=spool_dir, prefix="ingest-", suffix=".arrows") as spool:
        writer: paipc.RecordBatchStreamWriter | None = None
        for raw in _rebatch(_tables(pipe, fmt)):
            raw = obsin.check_columns(raw, fmt)
            prep = pipeline.prepare(raw, who, partial=True)
            v = prep.validated
            if v.bad_count:
                bad_count += v.bad_count
                room = obsin.MAX_BAD_ROWS_LISTED - len(bad)
                bad.extend({**e, "index": e["index"] + received} for e in v.bad[: max(room, 0)])
            if prep.batch.num_rows:
                out = prep.batch.append_column("_index", pa.array(v.good_index + received, pa.int64()))
                if writer is None:
                    writer = paipc.new_stream(spool, out.schema)
                writer.write_table(out)
            received += raw.num_rows
        if writer is not None:
            writer.close()
        if received == 0:
            raise bad_request("the body is empty", field="body")
        if bad_count and not partial:
            raise ProblemError(
                422,
                "Unprocessable Content",
                f"{bad_count} of {received} rows are not acceptable; nothing was stored "
                "(send ?partial=true to store the good rows)",
                field="rows",
                errors=bad,
                rejected=bad_count,
            )
        stored = duplicates = conflicts = 0
        conflict_errors: list[dict[str, Any]] = []
        if writer is not None:
            spool.flush()
            with paipc.open_stream(spool.name) as reader:
                for batch in reader:
                    table = pa.Table.from_batches([batch])
                    index = table.column("_index").to_numpy()
                    rows = table.drop_columns(["_index"])
                    result = pipeline.writer.submit_waiting(rows, all_or_nothing=not partial).result()
                    ids = rows.column("id").to_numpy()
                    found = [
                        {"index": int(index[np.searchsorted(ids, c)]), "field": "result",
                         "reason": f"conflicts with stored Observation {result.duplicate_of[c]}"}
                        for c in sorted(result.conflicting)
                    ]  # fmt: skip
                    if found and not partial:
                        raise ProblemError(
                            409,
                            "Conflict",
                            f"{len(found)} rows repeat a stored Observation (datastream, phenomenonTime, resultTime, "
                            "FeatureOfInterest, parameters) with another result; "
                            f"their batch was not stored, and {stored} rows of the batches before it were "
                            "(sending the corrected body again stores the rest; those count as duplicates)",
                            field="rows",
                            errors=found[: obsin.MAX_BAD_ROWS_LISTED],
                            stored=stored,
                        )
                    stored += int(result.inserted.size)
                    duplicates += len(result.duplicate_of) - len(result.conflicting)
                    conflicts += len(found)
                    conflict_errors.extend(found[: max(obsin.MAX_BAD_ROWS_LISTED - len(conflict_errors), 0)])
    errors = sorted(bad + conflict_errors, key=lambda e: e["index"])[: obsin.MAX_BAD_ROWS_LISTED]
    return {
        "received": received,
        "stored": stored,
        "duplicates": duplicates,
        "rejected": bad_count + conflicts,
        "errors": errors,
    }
