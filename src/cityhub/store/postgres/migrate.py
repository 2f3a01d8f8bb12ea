"""Versioned schema migrations: numbered SQL files (``migrations/0001_initial.sql``...) and a recorded version.

Why not Alembic: it is built around SQLAlchemy, which CityHub does not use, and its migrations are Python that
drives SQL anyway. Numbered plain-SQL files are what a database administrator reads, reviews and can apply by
hand (``psql -f``); the ``cityhub_schema`` table records which ran, when, and by which code version. Each file
runs in one transaction under an advisory lock, so two hub processes starting at once cannot both apply it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

from cityhub.errors import ProblemError

# One advisory lock key for "the schema of this database is being changed" (any 64-bit number; this one is the
# ASCII of "CHSC").
SCHEMA_LOCK = 0x43_48_53_43
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every migration shipped with this code, in order."""
    out = []
    for entry in resources.files("cityhub.store.postgres").joinpath("migrations").iterdir():
        m = _FILE.match(entry.name)
        if m:
            out.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    out.sort(key=lambda m: m.version)
    if [m.version for m in out] != list(range(1, len(out) + 1)):
        raise RuntimeError(f"migrations are not numbered 1..n: {[m.version for m in out]}")
    return out


CODE_VERSION = len(migrations())


class SchemaError(ProblemError):
    """The database's schema does not match this code (older: upgrade it; newer: upgrade the code)."""

    def __init__(self, detail: str) -> None:
        super().__init__(503, "Service Unavailable", detail, field="store")


def current_version(con: psycopg.Connection[Any], schema: str) -> int:
    """The schema version recorded in ``schema`` (0: CityHub was never installed there)."""
    row = con.execute("SELECT to_regclass(format('%%I.cityhub_schema', %s::text)) IS NOT NULL", [schema]).fetchone()
    if not row or not row[0]:
        return 0
    got = con.execute(f'SELECT coalesce(max(version), 0) FROM "{schema}".cityhub_schema').fetchone()
    return int(got[0]) if got else 0


@contextmanager
def schema_lock(con: psycopg.Connection[Any]) -> Iterator[None]:
    """Hold the schema lock for this session until the block ends, waiting while another process holds it.

    Each migration also takes the lock for its own transaction, but an upgrade is several transactions: a hub
    process that read the version between two of them (a second worker while the first initialises an empty
    schema) would see a half-upgraded schema and refuse to start. Held around the whole upgrade and around the
    reading of the version, it makes readers wait for the upgrade's end. (A session may take a lock it holds.)"""
    con.execute("SELECT pg_advisory_lock(%s)", [SCHEMA_LOCK])
    try:
        yield
    finally:
        if not con.closed:
            con.execute("SELECT pg_advisory_unlock(%s)", [SCHEMA_LOCK])


def upgrade(con: psycopg.Connection[Any], schema: str, *, target: int | None = None) -> list[Migration]:
    """Apply the migrations ``schema`` lacks (all of them into an empty one); safe to run twice and from several
    processes at once. Returns those applied. Raises :class:`SchemaError` when the schema is newer than the code.
    ``con`` must be in autocommit mode: each migration commits on its own."""
    with schema_lock(con):
        return _upgrade(con, schema, CODE_VERSION if target is None else target)


def _upgrade(con: psycopg.Connection[Any], schema: str, target: int) -> list[Migration]:
    from cityhub import __version__

    applied: list[Migration] = []
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(%s)", [SCHEMA_LOCK])
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        # PostGIS lives in public whatever the hub's schema, so that dropping a hub schema never drops it.
        con.execute("CREATE EXTENSION IF NOT EXISTS postgis SCHEMA public")
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS "{schema}".cityhub_schema (
                    version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),
                    code_version text NOT NULL)"""
        )
    version = current_version(con, schema)
    if version > CODE_VERSION:
        raise SchemaError(newer_message(version))
    for m in migrations():
        if m.version <= version or m.version > target:
            continue
        with con.transaction():
            con.execute("SELECT pg_advisory_xact_lock(%s)", [SCHEMA_LOCK])
            if current_version(con, schema) >= m.version:  # another process got there first
                continue
            con.execute(f'SET LOCAL search_path TO "{schema}", public')
            con.execute(m.sql.encode())  # bytes: the file's text is not a template, '%' stays '%'
            con.execute(
                f'INSERT INTO "{schema}".cityhub_schema (version, name, code_version) VALUES (%s, %s, %s)',
                [m.version, m.name, __version__],
            )
            applied.append(m)
    return applied


def newer_message(version: int) -> str:
    return (
        f"the database's CityHub schema is version {version}, newer than this code's {CODE_VERSION}: "
        "run a CityHub release at least as new as the one that upgraded it"
    )


def older_message(version: int) -> str:
    return (
        f"the database's CityHub schema is version {version}, older than this code's {CODE_VERSION}: "
        "run `cityhub db upgrade --store <url>` first"
    )
