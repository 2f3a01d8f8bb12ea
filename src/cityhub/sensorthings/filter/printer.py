"""The ``$filter`` canonical printer: an AST back to filter text that parses to the same AST."""

from __future__ import annotations

import datetime as dt
import math

from cityhub.sensorthings.filter.ast import (
    BINARY_BP,
    FUNCTIONS,
    INT64_MAX,
    INT64_MIN,
    MAX_DEPTH,
    RESERVED,
    Binary,
    Call,
    Lambda,
    Literal,
    Node,
    Path,
    Unary,
    chain,
    depth,
    duration_to_timedelta,
)
from cityhub.sensorthings.filter.lexer import INDEX_RE, SEGMENT_RE


def _datetime_text(value: dt.datetime) -> str:
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("datetime literal must be timezone-aware")
    if offset % dt.timedelta(minutes=1):  # the grammar only has ±hh:mm offsets
        value, offset = value.astimezone(dt.UTC), dt.timedelta(0)
    micros = value.microsecond
    spec = "seconds" if not micros else "milliseconds" if micros % 1000 == 0 else "microseconds"
    base = value.replace(tzinfo=None).isoformat(timespec=spec)
    if not offset:
        return base + "Z"
    minutes = abs(offset) // dt.timedelta(minutes=1)
    return f"{base}{'-' if offset < dt.timedelta(0) else '+'}{minutes // 60:02d}:{minutes % 60:02d}"


def _literal_text(node: Literal) -> str:
    v, kind = node.value, node.kind
    if kind == "string" and isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    if kind == "int" and type(v) is int and INT64_MIN <= v <= INT64_MAX:
        return str(v)
    if kind == "float" and isinstance(v, float) and math.isfinite(v):
        return repr(v)  # shortest text that reads back to the same double
    if kind == "bool" and isinstance(v, bool):
        return "true" if v else "false"
    if kind == "null" and v is None:
        return "null"
    if kind == "datetime" and isinstance(v, dt.datetime):
        return _datetime_text(v)
    if kind == "date" and type(v) is dt.date:
        return v.isoformat()
    if kind == "period" and isinstance(v, tuple) and len(v) == 2 and all(isinstance(t, dt.datetime) for t in v):
        if v[1] < v[0]:
            raise ValueError("a time interval cannot end before it starts")
        return f"{_datetime_text(v[0])}/{_datetime_text(v[1])}"
    if kind == "duration" and isinstance(v, str):
        try:
            duration_to_timedelta(v)
        except OverflowError:
            raise ValueError(f"duration {v!r} out of range") from None
        return f"duration'{v}'"
    if kind == "geometry" and isinstance(v, str):
        return f"geography'{v}'"  # STA literals are geography; the WKT holds no quotes
    raise ValueError(f"cannot print {kind} literal {v!r}")


def text_of(node: Node) -> str:
    if isinstance(node, Literal):
        return _literal_text(node)
    if isinstance(node, Path):
        segs = node.segments
        if (
            not segs
            or segs[0] in RESERVED
            or not SEGMENT_RE.fullmatch(segs[0])
            or not all(SEGMENT_RE.fullmatch(s) or INDEX_RE.fullmatch(s) for s in segs)
        ):
            raise ValueError(f"cannot print property path {segs!r}")
        return "".join(s if INDEX_RE.fullmatch(s) or n == 0 else "/" + s for n, s in enumerate(segs))
    if isinstance(node, Unary):
        inner = text_of(node.operand)
        if node.op == "not":
            # Parenthesised: 'not' reads as far as a comparison goes, so (not a) eq b needs its own pair.
            return f"(not {inner})"
        if node.op == "neg":
            # '-5' would read back as a signed literal, '-2016-01-01' as garbage: parenthesise literals.
            return f"-({inner})" if isinstance(node.operand, Literal) else "-" + inner
        raise ValueError(f"unknown unary operator {node.op!r}")
    if isinstance(node, Binary):
        if node.op not in BINARY_BP:
            raise ValueError(f"unknown binary operator {node.op!r}")
        return "(" + f" {node.op} ".join(text_of(x) for x in chain(node)) + ")"
    if isinstance(node, Lambda):
        path = text_of(Path(node.path))
        if node.body is None or node.var is None:
            if node.op != "any":
                raise ValueError("'all' needs a condition")
            return f"{path}/any()"
        if not SEGMENT_RE.fullmatch(node.var) or node.var in RESERVED:
            raise ValueError(f"cannot print lambda variable {node.var!r}")
        return f"{path}/{node.op}({node.var}: {text_of(node.body)})"
    if isinstance(node, Call):
        lo, hi = FUNCTIONS.get(node.name, (1, 0))
        if not lo <= len(node.args) <= hi:
            raise ValueError(f"cannot print call {node.name}() with {len(node.args)} arguments")
        return f"{node.name}({', '.join(text_of(a) for a in node.args)})"
    raise TypeError(f"not a filter node: {node!r}")


def to_text(node: Node) -> str:
    """Canonical text: every binary operation parenthesised, except that a left-associative chain of one
    ``and``/``or`` operator shares a single pair, e.g. ``((a eq 1) or (b eq 2) or c)``.

    ``parse_filter(to_text(n)) == n`` for every AST within the depth limit; raises ``ValueError`` for an
    AST that no filter text can express (bad literal values, naive datetimes, unknown operators...).
    """
    if depth(node) > MAX_DEPTH:
        raise ValueError(f"expression nested deeper than {MAX_DEPTH} levels")
    return text_of(node)
