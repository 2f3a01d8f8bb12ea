"""Whole-store copy (``cityhub copy``) in DuckDB: tables read by key ranges as Arrow, written by Arrow appends."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

import duckdb
import pyarrow as pa

from cityhub.store.duckdb.util import DuckDBHost, registered, tx_cursor
from cityhub.store.ops.transfer import COPY_TABLES, DEFAULT_BATCH_ROWS, TransferOps, arrow_type, read_order
from cityhub.store.schema import ALERT_TABLES, ENTITY_TABLES, ID_SPACE

# Rows written per transaction (see write).
COMMIT_ROWS = 500_000
# The tables whose ids the store allocates (DuckDBStore keeps the next one per table in memory).
_ID_TABLES = (*ENTITY_TABLES, "api_keys", "deadletters", *ALERT_TABLES)


class _Host(DuckDBHost, Protocol):
    _next_id: dict[str, int]

    def flush_derived(self) -> None: ...

    def checkpoint(self) -> None: ...


class DuckDBTransfer(TransferOps):
    def __init__(self, store: _Host) -> None:
        self.store = store
        self._schemas: dict[str, pa.Schema] = {}

    def tables(self) -> list[str]:
        return list(COPY_TABLES)

    def schema(self, table: str) -> pa.Schema:
        if table not in self._schemas:
            rows = self.store.query(
                """SELECT column_name, data_type FROM duckdb_columns()
                   WHERE database_name = current_database() AND schema_name = 'main' AND table_name = ?
                   ORDER BY column_index""",
                [table],
            )
            if not rows:
                raise KeyError(f"no table {table} in this store")
            self._schemas[table] = pa.schema([(name, arrow_type(t)) for name, t in rows])
        return self._schemas[table]

    def columns(self, table: str) -> list[str]:
        return list(self.schema(table).names)

    def row_count(self, table: str) -> int:
        self.store.flush_derived()  # roll-ups still pending are rows of ds_latest and obs_hourly to come
        return int(self.store.query(f"SELECT count(*) FROM {table}")[0][0])

    def is_empty(self) -> bool:
        return not any(self.store.query(f"SELECT EXISTS (SELECT 1 FROM {t})")[0][0] for t in self.tables())

    def read(self, table: str, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.Table]:
        self.store.flush_derived()
        schema = self.schema(table)
        cols = ", ".join(schema.names)
        order = read_order(table)
        first = order[0]
        cur = self.store._cursor()
        if not pa.types.is_integer(schema.field(first).type):  # no table today: one sort, streamed
            yield from self._batches(cur, f"SELECT {cols} FROM {table} ORDER BY {', '.join(order)}", schema, batch_rows)
            return
        # One ORDER BY over a table of 10M rows would sort all of it before the first row comes out. Instead the
        # table is cut into ranges of its first key column holding about batch_rows rows each (boundaries from one
        # sort of that column alone), and each range is sorted on its own: the embedded file keeps rows in the
        # order they were stored, so a range of ids is a few row groups and the others are skipped unread.
        bounds = [
            int(b)
            for (b,) in cur.execute(
                f"""SELECT DISTINCT {first} FROM (
                        SELECT {first}, row_number() OVER (ORDER BY {first}) AS rn FROM {table})
                    WHERE rn % ? = 1 ORDER BY 1""",
                [batch_rows],
            ).fetchall()
        ]
        for i, lo in enumerate(bounds):
            # Bounds are integers read from the table itself, written as literals so that the scan can skip row
            # groups by their min/max before any row is read.
            where = f"{first} >= {lo}" + (f" AND {first} < {bounds[i + 1]}" if i + 1 < len(bounds) else "")
            sql = f"SELECT {cols} FROM {table} WHERE {where} ORDER BY {', '.join(order)}"
            yield from self._batches(cur, sql, schema, batch_rows)

    @staticmethod
    def _batches(cur: duckdb.DuckDBPyConnection, sql: str, schema: pa.Schema, batch_rows: int) -> Iterator[pa.Table]:
        """The result of ``sql`` streamed as Arrow tables of at most ``batch_rows`` rows, cast to ``schema``."""
        for batch in cur.sql(sql).to_arrow_reader(batch_rows):
            if batch.num_rows:
                yield pa.Table.from_batches([batch]).cast(schema)

    def write(self, table: str, batches: Iterable[pa.Table]) -> int:
        cols = self.columns(table)
        names = ", ".join(cols)
        n = 0
        pending = iter(batches)
        # One transaction per COMMIT_ROWS rows, not per table: a transaction's new rows and index entries are held
        # in memory until it commits, and 10M Observations in one exceeded the store's memory limit (1 GB) there.
        while True:
            with self.store.transaction(fold_derived=False) as tx:
                cur = tx_cursor(tx)
                in_tx = 0
                for batch in pending:
                    if not batch.num_rows:
                        continue
                    with registered(cur, "_ch_transfer", batch.select(cols)):
                        cur.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM _ch_transfer")
                    in_tx += batch.num_rows
                    if in_tx >= COMMIT_ROWS:
                        break
                else:
                    return n + in_tx
            n += in_tx

    def finish(self) -> None:
        # The store allocates ids from counters it computed when it opened (max(id) + 1): raise them above the
        # copied rows, as opening the file again would.
        for table in _ID_TABLES:
            ((mx,),) = self.store.query(f"SELECT coalesce(max(id), 0) FROM {table}")
            space = ID_SPACE.get(table, table)
            self.store._next_id[space] = max(self.store._next_id.get(space, 1), int(mx) + 1)
        # Into the data file now, rather than replaying a write-ahead log of the whole copy at the next start.
        self.store.checkpoint()
