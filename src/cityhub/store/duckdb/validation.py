"""Bulk validation of Observations on an in-memory DuckDB used as a vectorised compute engine (not the store):
one statement gives each row of a body its stored columns or the first reason it is refused. The result rules
are generated from :data:`cityhub.results.RULES`, the same table the per-row checks read."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cityhub import jsontext, results, timefmt
from cityhub.errors import bad_request

_local = threading.local()


def _engine() -> duckdb.DuckDBPyConnection:
    con = getattr(_local, "con", None)
    if con is None:
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        _local.con = con
    return con


def _time_exprs(table: pa.Table, col: str) -> tuple[str, str]:
    """SQL (value, error) expressions for a time column, by its Arrow type."""
    if col not in table.column_names:
        return "CAST(NULL AS TIMESTAMPTZ)", "NULL"
    value, error = _parsed_time(table.schema.field(col).type, f'"{col}"')
    # DuckDB reads far more years than Python can hold (0001-01-01T00:00:00+14:00 is 1 BC): the range
    # timefmt.parse_iso holds single Observations to applies here too, or a stored row breaks every read.
    outside = f"{value} < {_TIME_MIN} OR {value} > {_TIME_MAX}"
    return value, f"coalesce({error}, CASE WHEN {outside} THEN {_literal(timefmt.OUT_OF_RANGE)} END)"


_TIME_MIN = f"TIMESTAMPTZ '{timefmt.TIME_MIN.isoformat()}'"
_TIME_MAX = f"TIMESTAMPTZ '{timefmt.TIME_MAX.isoformat()}'"


def _parsed_time(typ: pa.DataType, q: str) -> tuple[str, str]:
    if pa.types.is_timestamp(typ):
        if typ.tz is None:
            return "CAST(NULL AS TIMESTAMPTZ)", f"CASE WHEN {q} IS NOT NULL THEN '{timefmt.NO_ZONE}' END"
        return f"CAST({q} AS TIMESTAMPTZ)", "NULL"
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        # DuckDB, like fromisoformat, does not read a lowercase z; timefmt.parse_iso accepts it, so here too.
        value = f"TRY_CAST(regexp_replace(trim({q}), 'z$', 'Z') AS TIMESTAMPTZ)"
        zone = f"regexp_matches(trim({q}), '{timefmt.ZONE}')"
        error = (
            f"CASE WHEN {q} IS NULL THEN NULL "
            f"WHEN NOT {zone} AND {value} IS NOT NULL THEN '{timefmt.NO_ZONE}' "
            f"WHEN {value} IS NULL THEN '{timefmt.NOT_ISO}' END"
        )
        return f"CASE WHEN {zone} THEN {value} END", error
    return "CAST(NULL AS TIMESTAMPTZ)", f"CASE WHEN {q} IS NOT NULL THEN '{timefmt.NOT_ISO}' END"


_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000}


def _scannable_times(table: pa.Table) -> pa.Table:
    """Arrow timestamp columns with instants outside the hub's range moved to just before it. DuckDB fails the
    whole scan on a second or millisecond timestamp it cannot hold in microseconds; moved, each such row is
    refused by the range check alone (nanoseconds never leave the range)."""
    for col in ("phenomenonTime", "resultTime"):
        if col not in table.column_names:
            continue
        typ = table.schema.field(col).type
        if not pa.types.is_timestamp(typ) or typ.unit not in _PER_SECOND:
            continue
        per_us = 1_000_000 // _PER_SECOND[typ.unit]
        lo, hi = -(-timefmt.TIME_MIN_US // per_us), timefmt.TIME_MAX_US // per_us  # whole units inside the range
        ints = pc.cast(table.column(col), pa.int64())
        outside = pc.or_(pc.less(ints, lo), pc.greater(ints, hi))
        if pc.any(outside).as_py():
            moved = pc.if_else(outside, pa.scalar(lo - 1, pa.int64()), ints).cast(typ)
            table = table.set_column(table.schema.get_field_index(col), col, moved)
    return table


def _by_type(expr: Any) -> str:
    """``CASE ot WHEN <type> THEN expr(rule) ... ELSE expr(results.DEFAULT) END``."""
    whens = " ".join(f"WHEN '{ot}' THEN {expr(rule)}" for ot, rule in results.RULES.items())
    return f"CASE ot {whens} ELSE {expr(results.DEFAULT)} END"


def sql_kinds(*, text_source: bool) -> str:
    """SELECT-list items ``k_num, k_str, k_bool, k_obj``: a row's result as each kind (at most one is not
    NULL), from ``num_in`` (DOUBLE), ``txt_in`` (VARCHAR) and ``js_in`` (JSON text of a boolean, object or
    array) and the Datastream's type ``ot``. With ``text_source``, text is read as the type's ``text_as``."""
    is_bool = "js_in IN ('true', 'false')"
    if not text_source:
        num, txt, boolean = "num_in", "txt_in", f"CASE WHEN {is_bool} THEN js_in END"
    else:
        truth = "CASE lower(trim(txt_in)) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' END"
        num = _by_type(
            lambda r: "coalesce(num_in, TRY_CAST(txt_in AS DOUBLE))" if r.text_as == results.NUMBER else "num_in"
        )
        txt = _by_type(lambda r: "txt_in" if r.text_as == results.STRING else "CAST(NULL AS VARCHAR)")
        boolean = _by_type(
            lambda r: f"CASE WHEN {is_bool} THEN js_in ELSE {truth if r.text_as == results.BOOLEAN else 'NULL'} END"
        )
    obj = f"CASE WHEN NOT {is_bool} THEN js_in END"
    return f"{num} AS k_num, {txt} AS k_str, {boolean} AS k_bool, {obj} AS k_obj"


_KIND_COLUMN = {results.NUMBER: "k_num", results.STRING: "k_str", results.BOOLEAN: "k_bool", results.OBJECT: "k_obj"}


def _stored(rule: results.Rule, column: str) -> str:
    parts = []
    for kind, col in rule.store.items():
        if col == column and kind != results.NULL:  # a null arrives as the JSON text 'null': the OBJECT kind
            k = _KIND_COLUMN[kind]
            parts.append(f"CAST({k} AS VARCHAR)" if kind == results.NUMBER and column != results.NUM else k)
    if not parts:
        return "NULL"
    return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"


def _reason(rule: results.Rule) -> str:
    accepted = " AND ".join(f"{_KIND_COLUMN[k]} IS NULL" for k in rule.store if k != results.NULL)
    whens = [f"WHEN {accepted} THEN {_literal(rule.reason)}"]
    if results.NUMBER in rule.store:
        whens.append(f"WHEN isnan(k_num) OR isinf(k_num) THEN {_literal(results.NOT_FINITE)}")
        if rule.integer:
            whens.append(f"WHEN k_num <> floor(k_num) THEN {_literal(results.NOT_INTEGER)}")
    return f"CASE {' '.join(whens)} END"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sql_stored() -> tuple[str, str, str, str]:
    """SQL for ``result_number``, ``result_string``, ``result_json`` and the reason a result is refused
    (NULL when it is fine), over the items of ``sql_kinds`` and ``ot``; missing results are the caller's."""
    num, txt, js = (_by_type(lambda r, c=c: _stored(r, c)) for c in results.COLUMNS)
    return num, txt, js, _by_type(_reason)


def check_rows(table: pa.Table, datastreams: pa.Table, latest: datetime) -> pa.Table:
    """Columns ``_idx, ds, pt, rt, thing_id, foi, params, result_number, result_string, result_json, error`` for
    each row of ``table`` (the columns of ``POST /api/v1/ingest``) in order, joined with the catalogue
    ``datastreams``; ``error`` is ``"field: reason"`` or NULL; times after ``latest`` are too far ahead."""
    cols = table.column_names
    rtype = table.schema.field("result").type
    # The exact text of an integer result (results.INT64_MIN..MAX), kept beside its double.
    exact = "CAST(NULL AS VARCHAR)"
    if pa.types.is_integer(rtype):
        exact = 'CAST(TRY_CAST("result" AS BIGINT) AS VARCHAR)'
    if pa.types.is_integer(rtype) or pa.types.is_floating(rtype) or pa.types.is_decimal(rtype):
        num, text, js = 'CAST("result" AS DOUBLE)', "CAST(NULL AS VARCHAR)", "CAST(NULL AS VARCHAR)"
    elif pa.types.is_boolean(rtype):
        num, text = "CAST(NULL AS DOUBLE)", "CAST(NULL AS VARCHAR)"
        js = """CASE WHEN "result" THEN 'true' WHEN NOT "result" THEN 'false' END"""
    elif pa.types.is_string(rtype) or pa.types.is_large_string(rtype):
        num, text, js = "CAST(NULL AS DOUBLE)", '"result"', "CAST(NULL AS VARCHAR)"
    elif pa.types.is_null(rtype):
        num, text, js = "CAST(NULL AS DOUBLE)", "CAST(NULL AS VARCHAR)", "CAST(NULL AS VARCHAR)"
    else:
        raise bad_request(f"result column has unsupported type {rtype}", field="result")
    # Text formats (CSV) carry every result as text; JSON keeps types apart, and there a string is a string.
    from_json = "result_text" in cols
    if from_json:
        text, js, exact = "result_text", "result_json", "result_int"
    elif "result_int" in cols:  # CreateObservations' plain groups: numbers, integers' exact text beside them
        exact = "result_int"
    elif pa.types.is_string(rtype) or pa.types.is_large_string(rtype):
        # A text cell of integer shape is an integer, as a JSON reader would read it (ingest.small does the same).
        exact = """CASE WHEN regexp_full_match(trim("result"), '-?[0-9]+')
                        THEN CAST(TRY_CAST(trim("result") AS BIGINT) AS VARCHAR) END"""
    kinds = sql_kinds(text_source=not from_json)
    result_number, result_string, result_json, result_err = sql_stored()
    pt, pt_err = _time_exprs(table, "phenomenonTime")
    rt, rt_err = _time_exprs(table, "resultTime")
    unit = '"unit"' if "unit" in cols else "CAST(NULL AS VARCHAR)"
    foi = 'TRY_CAST("featureOfInterest" AS BIGINT)' if "featureOfInterest" in cols else "CAST(NULL AS BIGINT)"
    foi_bad = (
        '"featureOfInterest" IS NOT NULL AND TRY_CAST("featureOfInterest" AS BIGINT) IS NULL'
        if "featureOfInterest" in cols
        else "FALSE"
    )
    params = '"parameters"' if "parameters" in cols else "CAST(NULL AS VARCHAR)"
    table = _scannable_times(table)
    raw = table.append_column("_idx", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    raw = raw.append_column("_params_err", _unreadable_json(table, "parameters"))
    con = _engine()
    con.register("_raw", raw)
    con.register("_ds", datastreams)
    try:
        out = con.sql(
            f"""
            WITH r AS (
              SELECT _idx, "datastream" AS ds_raw, TRY_CAST("datastream" AS BIGINT) AS ds,
                     {pt} AS pt, {pt_err} AS pt_err, {rt} AS rt, {rt_err} AS rt_err,
                     {num} AS num_in, {text} AS txt_in, {js} AS js_in, {exact} AS int_in, {unit} AS unit,
                     {foi} AS foi, {foi_bad} AS foi_bad, {params} AS params, _params_err
              FROM _raw),
            j AS (
              SELECT r.*, d.observation_type AS ot, d.unit_symbol, d.thing_id
              FROM r LEFT JOIN _ds d ON d.id = r.ds),
            k AS (SELECT j.*, {kinds} FROM j),
            s0 AS (
              SELECT k.*, {result_number} AS result_number, {result_string} AS result_string,
                     {result_json} AS result_json_kind, {result_err} AS result_err
              FROM k),
            s AS (
              SELECT s0.* EXCLUDE (result_json_kind),
                     coalesce(result_json_kind, CASE WHEN result_number IS NOT NULL THEN int_in END) AS result_json
              FROM s0)
            SELECT _idx, ds, pt, rt, thing_id, foi, params, result_number, result_string, result_json,
              CASE
                WHEN ds_raw IS NULL THEN 'datastream: is missing'
                WHEN ds IS NULL THEN 'datastream: is not an integer id'
                WHEN ot IS NULL THEN 'datastream: no Datastream has this id'
                WHEN pt_err IS NOT NULL THEN 'phenomenonTime: ' || pt_err
                WHEN pt IS NULL THEN 'phenomenonTime: is missing'
                WHEN pt > ?::TIMESTAMPTZ THEN 'phenomenonTime: is too far in the future'
                WHEN pt < TIMESTAMPTZ '1900-01-01 00:00:00+00' THEN 'phenomenonTime: is before 1900'
                WHEN rt_err IS NOT NULL THEN 'resultTime: ' || rt_err
                WHEN num_in IS NULL AND txt_in IS NULL AND js_in IS NULL THEN 'result: {results.MISSING}'
                WHEN result_err IS NOT NULL THEN 'result: ' || result_err
                WHEN unit IS NOT NULL AND unit IS DISTINCT FROM unit_symbol
                  THEN 'unit: ' || unit || ' does not match the Datastream''s unit '
                       || coalesce(unit_symbol, '(none)')
                WHEN foi_bad THEN 'featureOfInterest: is not an integer id'
                WHEN params IS NOT NULL AND json_valid(params) IS NOT TRUE THEN 'parameters: is not JSON'
                -- json_valid takes texts the reads cannot load (NaN, 1e400, [1,]): those are refused too
                WHEN _params_err IS NOT NULL THEN 'parameters: ' || _params_err
              END AS error
            FROM s ORDER BY _idx""",
            params=[latest],
        ).to_arrow_table()
    finally:
        con.unregister("_raw")
        con.unregister("_ds")
    return out


def _unreadable_json(table: pa.Table, col: str) -> pa.Array:
    """Per row: why the JSON text in ``col`` could not be read back (jsontext.unreadable), or null. A column
    that is not text is refused: JSON travels as text in every body format."""
    n = table.num_rows
    if col not in table.column_names or pa.types.is_null(table.schema.field(col).type):
        return pa.nulls(n, pa.string())
    typ = table.schema.field(col).type
    if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
        raise bad_request(f"the {col} column must hold JSON as text, not {typ}", field=col)
    return pa.array(
        [None if text is None else jsontext.unreadable(text) for text in table.column(col).to_pylist()], pa.string()
    )
