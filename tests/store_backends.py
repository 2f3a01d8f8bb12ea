"""The store every contract test runs against (``store`` fixture): the one ``--store`` names (make test runs both)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cityhub.store.base import Store
from cityhub.store.duckdb import DuckDBStore


@pytest.fixture
def store(_test_store: str, tmp_path: Path) -> Iterator[Store]:
    if _test_store:
        from cityhub.store.postgres import PostgresStore

        s: Store = PostgresStore(_test_store)
    else:
        s = DuckDBStore(tmp_path / "contract.duckdb")
    try:
        yield s
    finally:
        s.close()
