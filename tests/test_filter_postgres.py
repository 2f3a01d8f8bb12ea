"""The SQL the $filter compiler writes is meant for DuckDB and PostgreSQL alike: run every compile case of
test_filter.py on the real PostgreSQL server and expect the same rows (geometry cases need PostGIS and are
left to the PostgreSQL store)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from cityhub import model
from cityhub.sensorthings.filter import compile_filter, parse_filter
from cityhub.sensorthings.filter.query import SqlBuilder, filter_sql, orderby_sql
from cityhub.sensorthings.options import OrderBy
from cityhub.store.base import Dialect
from tests.conftest import require_service
from tests.test_filter import COMPILE_CASES, LOCATIONS, ROWS, DuckCtx

psycopg = pytest.importorskip("psycopg")
PG_DSN = os.environ.get("CITYHUB_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
GEO = ("geo.", "st_")
_TRY_CAST = {"BOOLEAN": "ch_try_bool", "DOUBLE PRECISION": "ch_try_float8"}
_JSON_TYPES = {"number": "DOUBLE PRECISION", "boolean": "BOOLEAN"}


class PgDialect(Dialect):
    """What a psycopg-based PostgreSQL backend's dialect says: positional ``%s`` placeholders, jsonb member
    paths and the lenient ``ch_try_*`` casts its schema defines (see the ``pg`` fixture). Geometry needs
    PostGIS, which this test leaves to a PostgreSQL store."""

    placeholder = "%s"

    def json_value(self, sql: str, keys: Sequence[str], as_type: str) -> str:
        # A dialect cannot register parameters, so the path is a literal; psycopg reads '%' as a marker.
        elements = ",".join('"' + k.replace("\\", "\\\\").replace('"', '\\"') + '"' for k in keys)
        path = "'{" + elements.replace("'", "''").replace("%", "%%") + "}'"
        text = f"({sql} #>> {path}::text[])"
        return text if as_type == "string" else self.try_cast(text, _JSON_TYPES[as_type])

    def try_cast(self, sql: str, sql_type: str) -> str:
        return f"{_TRY_CAST[sql_type]}({sql})"

    def geo(self, func: str, args: list[str]) -> str:
        raise AssertionError("geometry cases are not run here")

    def geometry_literal(self, placeholder: str) -> str:
        raise AssertionError("geometry cases are not run here")


class PgCtx(DuckCtx):
    """DuckCtx on PostgreSQL: everything engine-specific comes from :class:`PgDialect`, except that the JSON
    path stays a bound parameter, so the compiler's placeholder order is checked on this driver too."""

    def __init__(self) -> None:
        super().__init__(PgDialect())

    def json_value(self, base_sql: str, keys: tuple[str, ...], as_type: str) -> str:
        return self.json_cast(f"({base_sql} #>> {self.param(list(keys))}::text[])", as_type)


class PgDialectJsonCtx(PgCtx):
    """JSON members exactly as :meth:`PgDialect.json_value` writes them."""

    def json_value(self, base_sql: str, keys: tuple[str, ...], as_type: str) -> str:
        return self.dialect.json_value(base_sql, keys, as_type)


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


NON_GEO_CASES = [c for c in COMPILE_CASES if not any(g in c[0] for g in GEO)]


def select_ids(pg: Any, ctx: PgCtx, text: str) -> set[int]:
    sql = compile_filter(parse_filter(text), ctx)
    assert "?" not in sql and sql.count("%s") == len(ctx.params)
    rows = pg.execute(f"SELECT obs.id FROM obs WHERE {sql} ORDER BY obs.id", ctx.params).fetchall()  # noqa: S608
    return {r[0] for r in rows}


@pytest.mark.parametrize(("text", "ids"), NON_GEO_CASES)
def test_same_rows_on_postgresql(pg: Any, text: str, ids: set[int]) -> None:
    assert select_ids(pg, PgCtx(), text) == ids


@pytest.mark.parametrize(("text", "ids"), [c for c in NON_GEO_CASES if "properties/" in c[0]])
def test_dialect_json_members_on_postgresql(pg: Any, text: str, ids: set[int]) -> None:
    assert select_ids(pg, PgDialectJsonCtx(), text) == ids


@pytest.mark.parametrize(
    "text",
    [
        "result eq true and result gt 5",
        "parameters/owner eq 'DONRE' or parameters/depth gt 2",
        "Datastream/Thing/name eq 'x' and phenomenonTime lt now()",
        "Datastream/Thing/Locations/name eq 'Lake'",
        "substringof('a', Datastream/name) and resultTime gt 2016-01-01",
    ],
)
def test_query_builder_takes_placeholders_from_dialect(text: str) -> None:
    builder = SqlBuilder(PgDialect())
    where = filter_sql(builder, model.OBSERVATION, "e", parse_filter(text))
    order = orderby_sql(builder, model.OBSERVATION, "e", [OrderBy(parse_filter("parameters/depth add 1"))])
    sql = f"{where} {order}"
    assert "?" not in sql and "TRY_CAST" not in sql
    assert sql.count("%s") == len(builder.params) > 0
