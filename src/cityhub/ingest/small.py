"""Validation of small bodies (a gateway's few readings, an MQTT batch) row by row in Python.

The vectorised validator (:func:`cityhub.ingest.observations.validate`) plans one SQL statement per body on an
in-memory DuckDB; that costs ~15 ms however few the rows, which is nearly all of a one-row request. Here the
same checks run in Python, in the same order and with the same reasons, for bodies of at most ``MAX_ROWS``
rows whose columns have the plain shapes clients send (integer ids, ISO 8601 texts in the canonical form,
numeric or boolean results, or text results that are plainly a number, ``true``/``false`` or a word). Anything
else returns None and takes the vectorised path, so the two can only agree; a property test
(``tests/test_small_validation.py``) checks that they do.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from cityhub import results, timefmt
from cityhub.ingest.validated import Validated
from cityhub.store.base import OBSERVATION_BATCH_SCHEMA
from cityhub.store.ops.catalog import DatastreamInfo

# Python takes ~5 µs a row, the vectorised query ~20 ms however few: the crossover is near 4,000 rows.
MAX_ROWS = 2048
# Texts both DuckDB's TIMESTAMPTZ cast and Python's fromisoformat read the same way; others go vectorised.
_CANONICAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?$")
# Text results that are plainly a decimal number (DuckDB's DOUBLE cast and float() agree on these).
_PLAIN_NUMBER = re.compile(r"^-?\d{1,15}(\.\d{1,15})?$")
_PLAIN_TEXT = re.compile(r"^[A-Za-z][A-Za-z0-9_:/.#-]{0,200}$")  # a term or URI, never a number or boolean
_TIME_TYPES = (pa.string(), pa.null())
# Words DuckDB's DOUBLE cast reads as numbers (NaN, infinity), which the query then refuses as such.
_DOUBLE_WORDS = frozenset({"nan", "inf", "infinity"})


def _time(value: str | None) -> tuple[datetime | None, str | None] | None:
    """(time, error) as the vectorised check gives them; None: not a canonical text (go vectorised)."""
    if value is None:
        return None, None
    if not _CANONICAL_TIME.match(value):
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        return None  # e.g. 2026-02-30: let the vectorised path word it
    if ts.tzinfo is None:
        return None, timefmt.NO_ZONE
    try:
        return timefmt.to_utc(ts), None
    except timefmt.TimeFormatError as exc:  # the vectorised check's range, so the same reason
        return None, exc.reason


def _text_result(value: str, otype: str | None) -> tuple[str, Any] | None:
    """A text cell's result as (kind, value) by the Datastream's ``text_as``; None: not plain (go vectorised)."""
    rule = results.rule_for(otype)
    if rule.text_as == results.NUMBER:
        if _PLAIN_NUMBER.match(value):
            # An integer cell is an integer result (at most 15 digits here: always within 64 bits), as the
            # vectorised check reads it.
            return results.NUMBER, (float(value) if "." in value else int(value))
        if value.lower() in _DOUBLE_WORDS:
            return None
        return (results.STRING, value) if _PLAIN_TEXT.match(value) else None
    if rule.text_as == results.BOOLEAN:
        low = value.lower()
        if low in ("true", "false"):
            return results.BOOLEAN, low == "true"
        return (results.STRING, value) if _PLAIN_TEXT.match(value) else None
    if _PLAIN_TEXT.match(value) or _PLAIN_NUMBER.match(value):
        return results.STRING, value
    return None


def _id_type(t: pa.DataType) -> bool:
    # Signed integers only: an unsigned one beyond 2**63 is "not an integer id" to the vectorised check.
    return pa.types.is_signed_integer(t) or t == pa.null()


def validate_small(
    table: pa.Table, lookup: Callable[[int], DatastreamInfo | None], *, max_future: timedelta, now: datetime
) -> Validated | None:
    """``validate`` for a small table of plain shapes, or None when it must take the vectorised path."""
    # JSON bodies carry their results in result_text/result_json (typed apart): the vectorised path reads them.
    if table.num_rows > MAX_ROWS or {"parameters", "result_text", "result_json"} & set(table.column_names):
        return None
    schema = table.schema
    if not _id_type(schema.field("datastream").type):
        return None
    if schema.field("phenomenonTime").type not in _TIME_TYPES:
        return None
    if "resultTime" in table.column_names and schema.field("resultTime").type not in _TIME_TYPES:
        return None
    if "unit" in table.column_names and schema.field("unit").type not in _TIME_TYPES:
        return None
    if "featureOfInterest" in table.column_names and not _id_type(schema.field("featureOfInterest").type):
        return None
    rtype = schema.field("result").type
    text_result = rtype == pa.string()
    if not (text_result or rtype == pa.null() or pa.types.is_boolean(rtype) or pa.types.is_floating(rtype)
            or pa.types.is_integer(rtype)):  # fmt: skip
        return None
    rows = table.to_pylist()
    latest = now + max_future
    good: list[dict[str, Any]] = []
    good_index: list[int] = []
    thing_ids: list[int] = []
    bad: list[dict[str, Any]] = []
    for i, r in enumerate(rows):
        ds = r.get("datastream")
        pt_parsed = _time(r.get("phenomenonTime"))
        rt_parsed = _time(r.get("resultTime"))
        if pt_parsed is None or rt_parsed is None:
            return None
        info = lookup(ds) if ds is not None else None
        value = r.get("result")
        if value is not None and (exact := r.get("result_int")) is not None:
            value = int(exact)  # an integer result beside its double (CreateObservations' plain groups)
        kind_value: tuple[str, Any] | None
        if value is None:
            kind_value = None
        elif text_result:
            kind_value = _text_result(value, info.observation_type if info else None)
            if kind_value is None:
                return None
        else:
            kind_value = (results.kind_of(value) or results.NUMBER, value)
        error: tuple[str, str] | None = None
        stored: dict[str, Any] | None = None
        pt, pt_err = pt_parsed
        rt, rt_err = rt_parsed
        unit = r.get("unit")
        if ds is None:
            error = ("datastream", "is missing")
        elif info is None:
            error = ("datastream", "no Datastream has this id")
        elif pt_err is not None:
            error = ("phenomenonTime", pt_err)
        elif pt is None:
            error = ("phenomenonTime", "is missing")
        elif pt > latest:
            error = ("phenomenonTime", "is too far in the future")
        elif pt.year < 1900:
            error = ("phenomenonTime", "is before 1900")
        elif rt_err is not None:
            error = ("resultTime", rt_err)
        elif kind_value is None:
            error = ("result", results.MISSING)
        else:
            stored, reason = results.stored(*kind_value, info.observation_type)
            if reason is not None:
                error = ("result", reason)
            elif unit is not None and unit != info.unit_symbol:
                error = ("unit", f"{unit} does not match the Datastream's unit {info.unit_symbol or '(none)'}")
        if error is not None:
            bad.append({"index": i, "field": error[0], "reason": error[1]})
            continue
        assert info is not None and stored is not None
        good.append(
            {
                "datastream_id": ds,
                "phenomenon_time": pt,
                "phenomenon_time_end": None,
                "result_time": rt,
                **stored,
                "result_quality": None,
                "valid_time_start": None,
                "valid_time_end": None,
                "parameters": None,
                "feature_of_interest_id": r.get("featureOfInterest"),
            }
        )
        good_index.append(i)
        thing_ids.append(info.thing_id)
    schema_no_id = pa.schema([f for f in OBSERVATION_BATCH_SCHEMA if f.name != "id"])
    return Validated(
        good=pa.Table.from_pylist(good, schema=schema_no_id),
        good_index=np.array(good_index, np.int64),
        thing_ids=np.array(thing_ids, np.int64),
        bad=bad,
        bad_count=len(bad),
    )
