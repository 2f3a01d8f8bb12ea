"""Which ``result`` values a Datastream accepts, by its observationType, and the column each is stored in.

SensorThings v1.1 (§8.2.4, the observationType table): a Measurement's result is a number, a
CountObservation's an integer, a TruthObservation's a boolean, a CategoryObservation's a category (a
URI or a term; a numeric code is taken and kept as text), and an OM_Observation's anything. The table
``RULES`` is the only statement of this: the per-row Python check (single POST, MQTT, PATCH) reads it
and the vectorised SQL of bulk validation is generated from it, so the paths cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from cityhub import model
from cityhub.errors import bad_request

# The JSON kind of a result (null is never a result: it is "missing").
NUMBER, STRING, BOOLEAN, OBJECT = "number", "string", "boolean", "object"  # OBJECT: objects and arrays
# Where a result is stored.
NUM, STR, JSON = "result_number", "result_string", "result_json"
COLUMNS = (NUM, STR, JSON)

MISSING = "is missing"
NOT_FINITE = "NaN and infinity are not values"
NOT_INTEGER = "a count must be an integer"


@dataclass(frozen=True)
class Rule:
    store: Mapping[str, str]  # accepted kind → column; a kind not here is refused with ``reason``
    reason: str
    integer: bool = False  # numbers must be whole
    # What a cell of a text format (CSV, an Arrow string column) is read as: text carries no JSON kind,
    # so "7" is a number to a Measurement and "true" a boolean to a TruthObservation.
    text_as: str = STRING
    kinds: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", frozenset(self.store))


RULES: dict[str, Rule] = {
    model.OM_MEASUREMENT: Rule({NUMBER: NUM}, "is not a number (the Datastream is Measurement)", text_as=NUMBER),
    model.OM_COUNT: Rule(
        {NUMBER: NUM}, "is not a number (the Datastream is CountObservation)", integer=True, text_as=NUMBER
    ),
    model.OM_TRUTH: Rule({BOOLEAN: JSON}, "must be true or false", text_as=BOOLEAN),
    model.OM_CATEGORY: Rule({STRING: STR, NUMBER: STR}, "must be a category"),
    model.OM_OBSERVATION: Rule({NUMBER: NUM, STRING: STR, BOOLEAN: JSON, OBJECT: JSON}, "is not a JSON value"),
}
# Datastreams whose type the model does not list (stored before it was checked) take any result.
DEFAULT = RULES[model.OM_OBSERVATION]


def rule_for(observation_type: str | None) -> Rule:
    return RULES.get(observation_type or "", DEFAULT)


def kind_of(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):  # before int: bool is an int subclass
        return BOOLEAN
    if isinstance(value, (int, float)):
        return NUMBER
    if isinstance(value, str):
        return STRING
    return OBJECT


def result_columns(value: Any, observation_type: str | None) -> dict[str, Any]:
    """The three result columns for a JSON ``value`` on a Datastream of this type; otherwise a 400 whose
    field is ``result`` and whose reason is the one bulk validation gives for the same value."""
    kind = kind_of(value)
    if kind is None:
        raise _refuse(MISSING)
    rule = rule_for(observation_type)
    column = rule.store.get(kind)
    if column is None:
        raise _refuse(rule.reason)
    out: dict[str, Any] = dict.fromkeys(COLUMNS)
    if kind == NUMBER:
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any double
            raise _refuse(NOT_FINITE) from None
        if not math.isfinite(number):
            raise _refuse(NOT_FINITE)
        if rule.integer and not number.is_integer():
            raise _refuse(NOT_INTEGER)
        # str(float) is what DuckDB's CAST(DOUBLE AS VARCHAR) writes, so a category code reads the same.
        out[column] = number if column == NUM else str(number)
    elif kind == BOOLEAN:
        out[column] = "true" if value else "false"
    elif kind == OBJECT:
        out[column] = orjson.dumps(value).decode()
    else:
        out[column] = value
    return out


def _refuse(reason: str) -> Exception:
    return bad_request(f"result {reason}", field="result")


# -- the same rules as SQL ---------------------------------------------------------------------------------
def _by_type(expr: Any) -> str:
    """``CASE ot WHEN <type> THEN expr(rule) ... ELSE expr(DEFAULT) END``."""
    whens = " ".join(f"WHEN '{ot}' THEN {expr(rule)}" for ot, rule in RULES.items())
    return f"CASE ot {whens} ELSE {expr(DEFAULT)} END"


def sql_kinds(*, text_source: bool) -> str:
    """SELECT-list items ``k_num, k_str, k_bool, k_obj``: a row's result as each kind (at most one is not
    NULL), from ``num_in`` (DOUBLE), ``txt_in`` (VARCHAR) and ``js_in`` (JSON text of a boolean, object or
    array) and the Datastream's type ``ot``. With ``text_source``, text is read as the type's ``text_as``."""
    is_bool = "js_in IN ('true', 'false')"
    if not text_source:
        num, txt, boolean = "num_in", "txt_in", f"CASE WHEN {is_bool} THEN js_in END"
    else:
        truth = "CASE lower(trim(txt_in)) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' END"
        num = _by_type(lambda r: "coalesce(num_in, TRY_CAST(txt_in AS DOUBLE))" if r.text_as == NUMBER else "num_in")
        txt = _by_type(lambda r: "txt_in" if r.text_as == STRING else "CAST(NULL AS VARCHAR)")
        boolean = _by_type(
            lambda r: f"CASE WHEN {is_bool} THEN js_in ELSE {truth if r.text_as == BOOLEAN else 'NULL'} END"
        )
    obj = f"CASE WHEN NOT {is_bool} THEN js_in END"
    return f"{num} AS k_num, {txt} AS k_str, {boolean} AS k_bool, {obj} AS k_obj"


_KIND_COLUMN = {NUMBER: "k_num", STRING: "k_str", BOOLEAN: "k_bool", OBJECT: "k_obj"}


def _stored(rule: Rule, column: str) -> str:
    parts = []
    for kind, col in rule.store.items():
        if col == column:
            k = _KIND_COLUMN[kind]
            parts.append(f"CAST({k} AS VARCHAR)" if kind == NUMBER and column != NUM else k)
    if not parts:
        return "NULL"
    return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"


def _reason(rule: Rule) -> str:
    accepted = " AND ".join(f"{_KIND_COLUMN[k]} IS NULL" for k in rule.store)
    whens = [f"WHEN {accepted} THEN {_literal(rule.reason)}"]
    if NUMBER in rule.store:
        whens.append(f"WHEN isnan(k_num) OR isinf(k_num) THEN {_literal(NOT_FINITE)}")
        if rule.integer:
            whens.append(f"WHEN k_num <> floor(k_num) THEN {_literal(NOT_INTEGER)}")
    return f"CASE {' '.join(whens)} END"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sql_stored() -> tuple[str, str, str, str]:
    """SQL for ``result_number``, ``result_string``, ``result_json`` and the reason a result is refused
    (NULL when it is fine), over the items of ``sql_kinds`` and ``ot``; missing results are the caller's."""
    num, txt, js = (_by_type(lambda r, c=c: _stored(r, c)) for c in COLUMNS)
    return num, txt, js, _by_type(_reason)
