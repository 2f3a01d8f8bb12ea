"""The SQL the $filter compiler writes is meant for DuckDB and PostgreSQL alike: run every compile case of
test_filter.py on the real PostgreSQL server and expect the same rows (geometry cases need PostGIS and are
left to the PostgreSQL store)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from cityhub.sensorthings.filter import compile_filter, parse_filter
from tests.conftest import require_service
from tests.test_filter import COMPILE_CASES, LOCATIONS, ROWS, DuckCtx

psycopg = pytest.importorskip("psycopg")
PG_DSN = os.environ.get("CITYHUB_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
GEO = ("geo.", "st_")


class PgCtx(DuckCtx):
    """The SqlContext contract for PostgreSQL, with psycopg's positional ``%s`` parameters."""

    def param(self, value: object) -> str:
        self.params.append(value)
        return "%s"

    def json_value(self, base_sql: str, keys: tuple[str, ...], as_type: str) -> str:
        text = f"({base_sql} #>> {self.param(list(keys))}::text[])"
        return {"string": text, "number": f"ch_try_float8({text})", "boolean": f"ch_try_bool({text})"}[as_type]

    def geo(self, func: str, args: list[str]) -> str:
        raise AssertionError("geometry cases are not run here")

    def geometry_literal(self, wkt: str) -> str:
        raise AssertionError("geometry cases are not run here")

    def now(self) -> str:
        return "now()"


@pytest.fixture(scope="module")
def pg() -> Iterator[Any]:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    with psycopg.connect(PG_DSN, autocommit=True) as con:
        schema = f"cityhub_filter_test_{os.getpid()}"
        con.execute(f"CREATE SCHEMA {schema}")
        try:
            con.execute(f"SET search_path TO {schema}")
            con.execute("SET TIME ZONE 'UTC'")
            # What a PostgreSQL store defines for lenient JSON member casts (DuckDB has TRY_CAST).
            con.execute(
                """CREATE FUNCTION ch_try_float8(t text) RETURNS float8 LANGUAGE plpgsql IMMUTABLE AS
                   $$ BEGIN RETURN t::float8; EXCEPTION WHEN others THEN RETURN NULL; END $$"""
            )
            con.execute(
                """CREATE FUNCTION ch_try_bool(t text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS
                   $$ BEGIN RETURN t::boolean; EXCEPTION WHEN others THEN RETURN NULL; END $$"""
            )
            con.execute(
                "CREATE TABLE obs (id integer, name text, description text, result_number float8, "
                "result_string text, result_boolean boolean, phenomenon_time timestamptz, properties jsonb, "
                "location text, op_name text, valid boolean)"
            )
            with con.cursor() as cur:
                for row in ROWS:
                    props = None if row[7] is None else json.dumps(row[7])
                    cur.execute(
                        "INSERT INTO obs VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        [*row[:7], props, *row[8:]],
                    )
                cur.execute("CREATE TABLE loc (obs_id integer, name text)")
                for obs_id, name in LOCATIONS:
                    cur.execute("INSERT INTO loc VALUES (%s, %s)", [obs_id, name])
            yield con
        finally:
            con.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.parametrize(("text", "ids"), [c for c in COMPILE_CASES if not any(g in c[0] for g in GEO)])
def test_same_rows_on_postgresql(pg: Any, text: str, ids: set[int]) -> None:
    ctx = PgCtx()
    sql = compile_filter(parse_filter(text), ctx)
    rows = pg.execute(f"SELECT obs.id FROM obs WHERE {sql} ORDER BY obs.id", ctx.params).fetchall()
    assert {r[0] for r in rows} == ids
