"""Helpers the DuckDB implementations of the named operations share."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, Protocol

import duckdb
import numpy as np
import pyarrow as pa

from cityhub.store.ops.geo import GeoOps
from cityhub.store.transaction import Transaction


@contextmanager
def registered(cur: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> Iterator[str]:
    """``table`` visible to queries on ``cur`` as ``name`` for the block: how id lists and key sets reach SQL,
    whatever their length (a view is local to its cursor, so threads do not see each other's)."""
    cur.register(name, table)
    try:
        yield name
    finally:
        cur.unregister(name)


def id_list(column: str = "id") -> str:
    """A one-column relation of the ids passed as one list parameter (``[int(i) for i in ids]``), for reads.

    Reads pass their ids this way rather than as a registered Arrow table, which costs a registration per call
    (~1.5 ms; see DuckDBStore.append_batch). Registering was first blamed for the CHECKPOINTs that kept failing
    while serving; measured, a registered table does not block one. What did was a result left unread to its end:
    see the note in DuckDBStore.__init__."""
    return f"(SELECT unnest(CAST(? AS BIGINT[])) AS {column})"


def id_table(ids: Sequence[int]) -> pa.Table:
    return pa.table({"id": pa.array(list(ids), pa.int64())})


def tx_cursor(tx: Transaction) -> duckdb.DuckDBPyConnection:
    """The cursor of a DuckDB transaction, for operations that register Arrow tables within it."""
    cur = getattr(tx, "cur", None)
    assert isinstance(cur, duckdb.DuckDBPyConnection), "a DuckDB operation was handed another backend's transaction"
    return cur


class DuckDBHost(Protocol):
    """What the named operations use of :class:`~cityhub.store.duckdb.store.DuckDBStore` (a protocol, so that
    they need not import the store module that builds them)."""

    geo: GeoOps

    def _cursor(self) -> duckdb.DuckDBPyConnection: ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def transaction(self, *, fold_derived: bool = True) -> AbstractContextManager[Transaction]: ...

    def allocate_ids(self, table: str, n: int) -> np.ndarray: ...

    def flush_derived(self) -> None: ...

    def refresh_derived(self, tx: Transaction, datastream_id: int, hours: Sequence[datetime]) -> None: ...

    def delete_observations_where(self, tx: Transaction, col: str, value: int) -> None: ...

    def observation_columns(self) -> list[str]: ...
