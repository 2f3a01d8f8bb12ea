"""The store backends every contract test runs against (``store`` fixture); PostgreSQL joins when it exists."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cityhub.store.base import Store
from cityhub.store.duckdb import DuckDBStore

BACKENDS = ["duckdb"]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "duckdb":
        s: Store = DuckDBStore(tmp_path / "contract.duckdb")
    else:  # pragma: no cover - a backend listed above without a constructor here
        raise AssertionError(request.param)
    try:
        yield s
    finally:
        s.close()
