"""Which ``result`` values a Datastream accepts, by its observationType, and the column each is stored in.

SensorThings v1.1 (§8.2.4, the observationType table): a Measurement's result is a number, a
CountObservation's an integer, a TruthObservation's a boolean, a CategoryObservation's a category (a
URI or a term; a numeric code is taken and kept as text), and an OM_Observation's anything. The table
``RULES`` is the only statement of this: the per-row Python checks (single POST, MQTT, PATCH, small
bodies) read it and the vectorised SQL of bulk validation (:mod:`cityhub.store.duckdb.validation`) is
generated from it, so the paths cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from cityhub import jsontext, model
from cityhub.errors import bad_request

# The JSON kind of a result. A result that is not there is "missing"; an explicit null is a value of kind NULL,
# which only an OM_Observation (whose result is "Any") takes.
NUMBER, STRING, BOOLEAN, OBJECT, NULL = "number", "string", "boolean", "object", "null"  # OBJECT: objects, arrays
# Where a result is stored.
NUM, STR, JSON = "result_number", "result_string", "result_json"
COLUMNS = (NUM, STR, JSON)

# An integer result keeps its type: result_number holds it as a double (for comparisons and aggregates) and
# result_json its exact text (10 reads back as 10, not 10.0; -1516082288180410101 exactly). Past 64 bits an
# integer is stored as its double, as every path that reads binary numbers (Arrow, PostgreSQL) must.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

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
    model.OM_CATEGORY: Rule({STRING: STR, NUMBER: NUM}, "must be a category"),
    model.OM_OBSERVATION: Rule(
        {NUMBER: NUM, STRING: STR, BOOLEAN: JSON, OBJECT: JSON, NULL: JSON}, "is not a JSON value"
    ),
    # A MultiDatastream's: an array with one value per ObservedProperty (its length is checked by check_components).
    model.OM_COMPLEX: Rule({OBJECT: JSON}, "must be an array, one value per ObservedProperty (a MultiDatastream)"),
}
# Datastreams whose type the model does not list (stored before it was checked) take any result.
DEFAULT = RULES[model.OM_OBSERVATION]


def rule_for(observation_type: str | None) -> Rule:
    return RULES.get(observation_type or "", DEFAULT)


def kind_of(value: Any, *, present: bool = False) -> str | None:
    """The JSON kind of ``value``; None for a result that is not there (``present``: an explicit null is one)."""
    if value is None:
        return NULL if present else None
    if isinstance(value, bool):  # before int: bool is an int subclass
        return BOOLEAN
    if isinstance(value, (int, float)):
        return NUMBER
    if isinstance(value, str):
        return STRING
    return OBJECT


def stored(kind: str, value: Any, observation_type: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """The three result columns for a ``value`` of this JSON ``kind`` on a Datastream of this type, or (None, the
    reason it is refused)."""
    rule = rule_for(observation_type)
    column = rule.store.get(kind)
    if column is None:
        return None, rule.reason
    out: dict[str, Any] = dict.fromkeys(COLUMNS)
    if kind == NUMBER:
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any double
            return None, NOT_FINITE
        if not math.isfinite(number):
            return None, NOT_FINITE
        if rule.integer and not number.is_integer():
            return None, NOT_INTEGER
        out[column] = number
        if type(value) is int and INT64_MIN <= value <= INT64_MAX:
            out[JSON] = str(value)
    elif kind == NULL:
        out[column] = "null"
    elif kind == BOOLEAN:
        out[column] = "true" if value else "false"
    elif kind == OBJECT:
        if jsontext.too_deep(value):
            return None, jsontext.TOO_DEEP
        out[column] = orjson.dumps(value).decode()
    else:
        out[column] = value
    return out, None


def value_of(number: float | None, text: str | None, js: str | None) -> Any:
    """The result a stored row holds, with its JSON type (the inverse of ``stored``): the exact JSON text first
    (an integer, a boolean, an object, null), then the number, then the string."""
    if js is not None:
        return orjson.loads(js)
    return number if number is not None else text


def result_columns(value: Any, observation_type: str | None, *, present: bool = True) -> dict[str, Any]:
    """The three result columns for a JSON ``value`` on a Datastream of this type; otherwise a 400 whose
    field is ``result`` and whose reason is the one bulk validation gives for the same value. ``present``: the
    body has a ``result`` member (its null is then a value, not a missing result)."""
    kind = kind_of(value, present=present)
    if kind is None:
        raise _refuse(MISSING)
    out, reason = stored(kind, value, observation_type)
    if out is None:
        raise _refuse(reason or MISSING)
    return out


def _refuse(reason: str) -> Exception:
    return bad_request(f"result {reason}", field="result")


def check_components(value: Any, components: int | None) -> None:
    """A 400 (field ``result``) unless ``value`` is an array of ``components`` values, as a MultiDatastream's result
    must be (SensorThings v1.1 §12.2: one per ObservedProperty, in order); nothing to check for a Datastream."""
    if components is None:
        return
    if not isinstance(value, list) or len(value) != components:
        raise bad_request(
            f"result must be an array of {components} values, one per ObservedProperty of the MultiDatastream",
            field="result",
        )
