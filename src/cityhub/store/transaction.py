"""A serialised write transaction of a store (what ``Store.transaction()`` yields); below both the Store and its
named operations, which take one from their callers."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import pyarrow as pa


class Transaction(abc.ABC):
    # The Store it belongs to (a cityhub.store.base.Store), so that a named operation can run within a
    # transaction its caller holds.
    store: Any

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @abc.abstractmethod
    def insert(self, table: str, values: dict[str, Any]) -> int:
        """Insert one row with a newly allocated ``id`` and return the id."""

    @abc.abstractmethod
    def append_table(self, table: str, rows: pa.Table) -> None:
        """Append an Arrow table whose columns (``id`` included) are columns of ``table``."""
