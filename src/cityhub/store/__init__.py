"""Storage: the :class:`~cityhub.store.base.Store` boundary and its backends (one folder each)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cityhub.store.base import Store

if TYPE_CHECKING:
    from cityhub.config import Settings


def open_store(settings: Settings, *, migrate_mode: str = "auto") -> Store:
    """The store a deployment's settings name: the PostgreSQL database of ``settings.store``, else the embedded
    DuckDB file under the data directory."""
    if settings.store:
        from cityhub.store.postgres import PostgresStore

        return PostgresStore(
            settings.store,
            pool_size=settings.pg_pool_size,
            statement_timeout_s=settings.pg_statement_timeout_s,
            pool_timeout_s=settings.pg_pool_timeout_s,
            migrate_mode=migrate_mode,
        )
    from cityhub.store.duckdb import DuckDBStore

    return DuckDBStore(
        settings.db_path,
        memory_limit=settings.duckdb_memory_limit,
        auto_checkpoint_bytes=4 * settings.checkpoint_wal_bytes,
    )


__all__ = ["Store", "open_store"]
