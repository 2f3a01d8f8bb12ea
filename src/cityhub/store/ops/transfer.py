"""Named operations for moving a whole store to another backend (``cityhub copy``): every table of the model read
as a stream of Arrow batches in key order, and written into an empty store with its ids kept.

Both backends read each column with the same Arrow type (:func:`arrow_type`), so that a checksum computed from
the batches one backend reads equals the one computed from what the other reads back after the copy.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable, Iterator

import pyarrow as pa

from cityhub.store.schema import TABLES

# Rows a read yields at a time, unless the caller asks otherwise: Arrow batches of this size keep memory bounded
# (a few tens of MB for Observations) while the per-batch costs (a COPY, a registration) stay small.
DEFAULT_BATCH_ROWS = 50_000

# Bookkeeping of the embedded store's deferred roll-ups: empty once they are folded (a store folds them when it
# opens and before every read here), and meaningless to another store.
_NOT_COPIED = frozenset({"rollup_pending"})

#: The tables a copy moves, in the order of cityhub.store.schema. No table has a foreign key, so any order loads.
COPY_TABLES: tuple[str, ...] = tuple(t for t in TABLES if t not in _NOT_COPIED)

# Observations are read by id: unique by construction (ids are allocated, never reused) and the order they were
# stored in, so that a range of ids is a contiguous stretch of the embedded file; the natural key breaks ties.
_READ_ORDER = {"observations": ("id", "datastream_id", "phenomenon_time")}

# SQL type names of either backend (DuckDB's, PostgreSQL's format_type) → the Arrow type both read them as.
_ARROW_TYPES: dict[str, pa.DataType] = {
    "bigint": pa.int64(),
    "int8": pa.int64(),
    "integer": pa.int32(),
    "int4": pa.int32(),
    "int": pa.int32(),
    "smallint": pa.int16(),
    "int2": pa.int16(),
    "double": pa.float64(),
    "double precision": pa.float64(),
    "float8": pa.float64(),
    "real": pa.float64(),
    "float": pa.float64(),
    "float4": pa.float64(),
    "boolean": pa.bool_(),
    "bool": pa.bool_(),
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}


def arrow_type(sql_type: str) -> pa.DataType:
    """The Arrow type a column of ``sql_type`` is read as: int64/int32/int16, float64, bool, timestamp[us, UTC]
    (microseconds since the Unix epoch), and string for everything else (VARCHAR, text, JSON text kept as stored)."""
    return _ARROW_TYPES.get(sql_type.strip().lower(), pa.string())


def read_order(table: str) -> tuple[str, ...]:
    """The columns a table's rows are read in order of: its primary key (Observations: id, then the key)."""
    if table in _READ_ORDER:
        return _READ_ORDER[table]
    body = TABLES[table]
    composite = re.search(r"PRIMARY KEY\s*\(([^)]*)\)", body)
    if composite:
        return tuple(c.strip() for c in composite.group(1).split(","))
    single = re.search(r"(\w+)\s+\w+\s+PRIMARY KEY", body)
    if single:
        return (single.group(1),)
    raise ValueError(f"table {table} has no primary key to read it in order of")


class TransferOps(abc.ABC):
    @abc.abstractmethod
    def tables(self) -> list[str]:
        """The tables to copy, in an order they can be loaded in (no table refers to a later one)."""

    @abc.abstractmethod
    def columns(self, table: str) -> list[str]:
        """The columns of ``table`` a copy reads and writes, in table order; generated ones (PostgreSQL's
        ``*_geom``) are left out, the target computes them."""

    @abc.abstractmethod
    def schema(self, table: str) -> pa.Schema:
        """The Arrow schema :meth:`read` yields for ``table``: :meth:`columns` with their :func:`arrow_type`."""

    @abc.abstractmethod
    def row_count(self, table: str) -> int:
        """Rows in ``table`` now."""

    @abc.abstractmethod
    def read(self, table: str, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.Table]:
        """Every row of ``table`` as Arrow tables of at most ``batch_rows`` rows (schema :meth:`schema`), in the
        order of :func:`read_order`; memory stays bounded by the batch size, whatever the table's."""

    @abc.abstractmethod
    def is_empty(self) -> bool:
        """True when no table of :meth:`tables` holds a row (a copy writes only into an empty store)."""

    @abc.abstractmethod
    def write(self, table: str, batches: Iterable[pa.Table]) -> int:
        """Append the batches (columns named as ``table``'s, ids included) to ``table`` as they come, in one
        transaction; returns the rows written. The store must hold no row of ``table`` that conflicts."""

    @abc.abstractmethod
    def finish(self) -> None:
        """After the last write: make new ids continue above the copied ones, update planner statistics."""
