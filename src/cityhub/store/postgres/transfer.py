"""Whole-store copy (``cityhub copy``) in PostgreSQL: tables read through a server-side cursor, written by binary
COPY, id counters raised above the copied ids at the end."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa
from psycopg.types.string import TextBinaryLoader

from cityhub.store.ops.transfer import COPY_TABLES, DEFAULT_BATCH_ROWS, TransferOps, arrow_type, read_order
from cityhub.store.postgres.util import PgHost
from cityhub.store.schema import ID_SPACE

# A copy is an administrator's bulk job, not a request: a COPY of a batch into an indexed table or the FETCH of
# one from a large sort may take longer than the statement timeout that protects the server from slow requests,
# and a transaction waits while the other store reads or writes a batch.
_NO_TIMEOUTS = ("SET LOCAL statement_timeout = 0", "SET LOCAL idle_in_transaction_session_timeout = 0")


class PgTransfer(TransferOps):
    def __init__(self, store: PgHost) -> None:
        self.store = store
        self._schemas: dict[str, pa.Schema] = {}

    def tables(self) -> list[str]:
        return list(COPY_TABLES)

    def schema(self, table: str) -> pa.Schema:
        if table not in self._schemas:
            # attgenerated: the PostGIS *_geom columns are computed from the GeoJSON beside them, never written.
            rows = self.store.query(
                """SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a
                   WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
                     AND a.attgenerated = ''
                   ORDER BY a.attnum""",
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
        # Timestamps leave the server as integer microseconds since the Unix epoch: exact, and Python ints become an
        # Arrow column far faster than datetime objects do (and any year fits, not just datetime's 1-9999).
        select = ", ".join(
            f"(extract(epoch FROM {f.name}) * 1000000)::int8" if pa.types.is_timestamp(f.type) else f.name
            for f in schema
        )
        wire = pa.schema([pa.field(f.name, pa.int64() if pa.types.is_timestamp(f.type) else f.type) for f in schema])
        sql = f"SELECT {select} FROM {table} ORDER BY {', '.join(read_order(table))}"
        # A server-side cursor streams the rows: only batch_rows of them are ever Python tuples at once. It lives in
        # a transaction (the pool's connections are in autocommit, where a cursor without HOLD cannot be declared).
        with self.store.connection() as con, con.transaction():
            for stmt in _NO_TIMEOUTS:
                con.execute(stmt)
            # Binary results: half the time of text for psycopg to turn into Python values. JSON comes as its text
            # (psycopg's own binary JSON loader would parse it), exactly as stored.
            with con.cursor(name=f"cityhub_transfer_{table}", binary=True) as cur:
                for name in ("json", "jsonb"):
                    cur.adapters.register_loader(name, TextBinaryLoader)
                cur.itersize = batch_rows
                cur.execute(sql)
                while rows := cur.fetchmany(batch_rows):
                    yield _to_arrow(rows, wire).cast(schema)

    def write(self, table: str, batches: Iterable[pa.Table]) -> int:
        cols = self.columns(table)
        n = 0
        with self.store.connection() as con, con.transaction():
            cur = con.cursor()
            for stmt in _NO_TIMEOUTS:
                cur.execute(stmt)
            for batch in batches:
                if not batch.num_rows:
                    continue
                rows = batch.select(cols)
                if table == "observations":
                    # Made in this transaction, on its connection: another one would wait for its locks.
                    self.store.ensure_partitions(rows.column("phenomenon_time"), cur=cur)
                self.store.copy_in(cur, table, rows)
                n += rows.num_rows
        return n

    def finish(self) -> None:
        with self.store.connection() as con, con.transaction():
            cur = con.cursor()
            for stmt in _NO_TIMEOUTS:
                cur.execute(stmt)
            # Each process takes ids from id_counters: the next id of every table goes above the copied ones.
            names = [str(r[0]) for r in cur.execute("SELECT name FROM id_counters ORDER BY name").fetchall()]
            for name in names:
                # A sequence shared by several tables (schema.ID_SPACE) goes above the ids of each.
                tables = (name, *(t for t, space in ID_SPACE.items() if space == name))
                above = ", ".join(f"(SELECT coalesce(max(id), 0) + 1 FROM {t})" for t in tables)
                cur.execute(
                    f"""UPDATE id_counters SET next_id = greatest(next_id, {above})
                        WHERE name = %s""",
                    [name],
                )
        # Statistics for the planner now, rather than whenever autovacuum gets to tables that were empty.
        with self.store.connection() as con:
            con.execute("SET statement_timeout = 0")
            try:
                for table in self.tables():
                    con.execute(f"ANALYZE {table}")
            finally:
                con.execute("RESET statement_timeout")


def _to_arrow(rows: Sequence[tuple[Any, ...]], schema: pa.Schema) -> pa.Table:
    """Rows (tuples in ``schema``'s column order) as an Arrow table of ``schema``."""
    columns = list(zip(*rows, strict=True))
    return pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(columns, schema, strict=True)], schema=schema)
