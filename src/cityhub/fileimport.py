"""``cityhub import``: files of Observations straight into the store, in committed batches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cityhub.config import Settings
from cityhub.core import open_core
from cityhub.errors import ProblemError
from cityhub.ingest import observations as obsin
from cityhub.store.base import AppendResult


def _batches(path: Path, rows: int) -> Iterator[pa.Table]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        pf = pq.ParquetFile(path)
        for b in pf.iter_batches(batch_size=rows):
            yield obsin.check_columns(pa.Table.from_batches([b]), "parquet")
    elif suffix == ".csv":
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=16 << 20),
            convert_options=pacsv.ConvertOptions(
                column_types={"phenomenonTime": pa.string(), "resultTime": pa.string(), "unit": pa.string()},
                strings_can_be_null=True,
                null_values=[""],  # keep NaN/NA visible so validation can name them
            ),
        )
        for b in reader:
            yield obsin.check_columns(pa.Table.from_batches([b]), "csv")
    elif suffix in (".ndjson", ".jsonl", ".json"):
        with path.open("rb") as f:  # a run of lines at a time: memory does not grow with the file
            lines: list[bytes] = []
            for line in f:
                lines.append(line)
                if len(lines) >= rows:
                    yield obsin.parse_body(b"".join(lines), "ndjson")
                    lines = []
            if any(x.strip() for x in lines):
                yield obsin.parse_body(b"".join(lines), "ndjson")
    else:
        raise ProblemError(400, "Bad Request", f"{path}: unknown file type (csv, ndjson, parquet)", field="file")


class _Conflicts(Exception):
    def __init__(self, result: AppendResult, ids: np.ndarray, batch: pa.Table) -> None:
        self.result, self.ids, self.batch = result, ids, batch

    def describe(self) -> list[str]:
        pos = {int(i): k for k, i in enumerate(self.ids)}
        out = []
        for c in sorted(self.result.conflicting):
            row = self.batch.slice(pos[c], 1).to_pylist()[0]
            out.append(
                f"datastream {row['datastream_id']} at {row['phenomenon_time'].isoformat()}: result "
                f"{row['result_number'] if row['result_number'] is not None else row['result_string']} "
                f"conflicts with stored Observation {self.result.duplicate_of[c]}"
            )
        return out


def _count_rows(path: Path) -> int | None:
    """Rows in a file, for the progress bar (a newline count for text files: one fast pass)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pq.ParquetFile(path).metadata.num_rows
    if suffix in (".csv", ".ndjson", ".jsonl", ".json"):
        with path.open("rb") as f:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b""))
        return max(lines - (1 if suffix == ".csv" else 0), 0)
    return None


def import_files(files: list[Path], settings: Settings, *, partial: bool, batch_rows: int, console: Console) -> int:
    """Import files through the same ingest pipeline as the HTTP API; 0, 1 (bad or conflicting rows without
    ``partial``: nothing more is imported) or 2 (an unreadable file)."""
    core = open_core(settings)
    pipeline = core.pipeline
    totals = {"stored": 0, "duplicates": 0, "rejected": 0}
    code = 0
    where = ""
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as progress:
            for path in files:
                where = f"{path}: "
                task = progress.add_task(path.name, total=_count_rows(path))
                offset = 0
                for raw in _batches(path, batch_rows):
                    # Validated as partial so that the bad rows can be listed here rather than raised.
                    prep = pipeline.prepare(raw, partial=True)
                    bad = prep.validated.bad_count
                    if bad and not partial:
                        for e in prep.validated.bad[:20]:
                            console.print(f"[red]{path}: row {offset + e['index']}: {e['field']} {e['reason']}[/red]")
                        console.print(f"[red]{path}: {bad} bad rows; nothing more imported (use --partial)[/red]")
                        return 1
                    prep.partial = partial
                    res = pipeline.submit(prep).result()
                    if res.conflicting and not partial:
                        for line in _Conflicts(res, prep.ids, prep.batch).describe()[:20]:
                            console.print(f"[red]{path}: {line}[/red]")
                        console.print(
                            f"[red]{path}: {len(res.conflicting)} rows conflict with stored "
                            "Observations; nothing more imported (use --partial)[/red]"
                        )
                        return 1
                    totals["stored"] += int(res.inserted.size)
                    totals["duplicates"] += len(res.duplicate_of) - len(res.conflicting)
                    totals["rejected"] += bad + len(res.conflicting)
                    offset += raw.num_rows
                    progress.update(task, completed=offset)
    except ProblemError as exc:
        console.print(f"{where}{exc.detail}", style="red", markup=False)
        code = 2
    finally:
        core.writer.close()
        core.store.close()
    console.print(f"stored {totals['stored']:,}, duplicates {totals['duplicates']:,}, rejected {totals['rejected']:,}")
    return code
