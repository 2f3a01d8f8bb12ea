"""The PostgreSQL/PostGIS store, for servers: several hub processes on one database."""

from cityhub.store.postgres.store import PostgresStore, StoreUnavailable

__all__ = ["PostgresStore", "StoreUnavailable"]
