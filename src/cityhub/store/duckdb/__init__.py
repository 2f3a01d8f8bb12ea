"""The embedded DuckDB backend: one file, one process. ``store.py`` holds the connection, transactions and the
Observation hot path; one module per aggregate implements that aggregate's named operations
(:mod:`cityhub.store.ops`)."""

from cityhub.store.duckdb.store import DuckDBDialect, DuckDBStore

__all__ = ["DuckDBDialect", "DuckDBStore"]
