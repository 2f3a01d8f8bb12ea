"""Helpers the PostgreSQL implementations of the named operations share."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import psycopg
import pyarrow as pa

from cityhub.store.ops.geo import GeoOps
from cityhub.store.transaction import Transaction


def tx_cursor(tx: Transaction) -> psycopg.Cursor[Any]:
    """The cursor of a PostgreSQL transaction, for operations that need more than ``tx.execute`` (COPY)."""
    cur = getattr(tx, "cur", None)
    assert isinstance(cur, psycopg.Cursor), "a PostgreSQL operation was handed another backend's transaction"
    return cur


def id_array(ids: Sequence[int] | np.ndarray) -> str:
    """Ids as one ``bigint[]`` parameter (``= ANY(%s::bigint[])``): one bound value whatever the length, sent as
    the array's text (``{1,2,3}``), which psycopg passes through as it is: adapting a list of 10,000 ints took
    5-8 ms, the text 1.5 ms."""
    return "{" + ",".join(str(int(i)) for i in ids) + "}"


class PgHost(Protocol):
    """What the named operations use of :class:`~cityhub.store.postgres.store.PostgresStore` (a protocol, so that
    they need not import the store module that builds them)."""

    geo: GeoOps

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def query_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table: ...

    def connection(self) -> AbstractContextManager[psycopg.Connection[Any]]: ...

    def transaction(self, *, fold_derived: bool = True) -> AbstractContextManager[Transaction]: ...

    def allocate_ids(self, table: str, n: int) -> np.ndarray: ...

    def flush_derived(self) -> None: ...

    def refresh_derived(self, tx: Transaction, datastream_id: int, hours: Sequence[datetime]) -> None: ...

    def delete_observations_where(self, tx: Transaction, col: str, value: int) -> None: ...

    def ensure_partitions(self, times: Sequence[datetime], cur: psycopg.Cursor[Any] | None = None) -> None: ...

    def observation_columns(self) -> list[str]: ...

    def copy_in(self, cur: psycopg.Cursor[Any], table: str, rows: pa.Table) -> None: ...
