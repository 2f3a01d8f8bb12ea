"""Helpers the DuckDB implementations of the named operations share."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import duckdb
import pyarrow as pa

from cityhub.store.base import Transaction


@contextmanager
def registered(cur: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> Iterator[str]:
    """``table`` visible to queries on ``cur`` as ``name`` for the block: how id lists and key sets reach SQL,
    whatever their length (a view is local to its cursor, so threads do not see each other's)."""
    cur.register(name, table)
    try:
        yield name
    finally:
        cur.unregister(name)


def id_table(ids: Sequence[int]) -> pa.Table:
    return pa.table({"id": pa.array(list(ids), pa.int64())})


def tx_cursor(tx: Transaction) -> duckdb.DuckDBPyConnection:
    """The cursor of a DuckDB transaction, for operations that register Arrow tables within it."""
    from cityhub.store.duckdb.store import _DuckTransaction

    assert isinstance(tx, _DuckTransaction), "a DuckDB operation was handed another backend's transaction"
    return tx.cur
