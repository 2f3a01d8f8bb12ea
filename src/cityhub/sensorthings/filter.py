"""The SensorThings API v1.1 ``$filter`` query option: parser, canonical printer and SQL compiler.

``parse_filter`` turns the OData-style expression into a small immutable AST, ``to_text`` prints an AST
back in canonical form, and ``compile_filter`` type-checks an AST and turns it into a SQL boolean
expression through a :class:`SqlContext` supplied by the query engine (DuckDB or PostgreSQL).

The tokenizer and the precedence-climbing parser are hand-written so that every error names the exact
character offset (0-based) at fault, and so that SensorThings' own function set is checked while parsing.

Limits: at most :data:`MAX_LENGTH` characters and :data:`MAX_DEPTH` levels of nesting. A level is a
grouping parenthesis, a function call, a unary operator, or a binary operation nested inside another
operand; a left-associative chain of one ``and``/``or`` operator counts once, so ``id eq 1 or id eq 2 or
...`` may be as long as the length limit allows. The printer emits exactly that much nesting, so any
parsed filter prints to text that parses back to the same AST. The canonical text can be longer than the
input (parentheses are added, numbers and WKT normalised), so near :data:`MAX_LENGTH` re-parsing it needs
``parse_filter(text, max_length=...)``; a next link should carry the client's original text.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, TypeAlias

import numpy as np
import shapely

from cityhub.errors import ProblemError

__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Binary",
    "Call",
    "FilterError",
    "Literal",
    "Node",
    "Path",
    "Resolved",
    "SqlContext",
    "Unary",
    "compile_filter",
    "parse_filter",
    "to_text",
]

MAX_LENGTH = 10_000
MAX_DEPTH = 100

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class FilterError(ProblemError):
    """A malformed or ill-typed ``$filter``; ``position`` is the 0-based character offset, if known."""

    def __init__(self, message: str, position: int | None = None) -> None:
        extra = {} if position is None else {"position": position}
        super().__init__(400, "Bad Request", message, field="$filter", **extra)
        self.position = position


# --------------------------------------------------------------------------------------------------- AST

LITERAL_KINDS = frozenset({"string", "int", "float", "bool", "null", "datetime", "date", "duration", "geometry"})


class _NodeBase:
    """Structural equality and a hash cached at construction.

    The generated dataclass ``__eq__``/``__hash__`` recurse once per level; a 600-term ``or`` chain (which
    the parser accepts) would overflow the stack, so both are iterative / O(1) here.
    """

    __slots__ = ()
    _hash: int

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _NodeBase):
            return NotImplemented
        return _equal(self, other)  # type: ignore[arg-type]

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, eq=False)
class Literal(_NodeBase):
    """A constant. ``value`` by kind: str, int, float, bool, None, aware datetime, date, the ISO 8601
    duration text, or WKT (normalised on construction, so equal geometries compare equal)."""

    value: object
    kind: str
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in LITERAL_KINDS:
            raise ValueError(f"unknown literal kind {self.kind!r}")
        if self.kind == "geometry":
            if not isinstance(self.value, str):
                raise ValueError("geometry literal value must be WKT text")
            object.__setattr__(self, "value", _normalise_wkt(self.value))
        object.__setattr__(self, "_hash", hash(("lit", self.kind, self.value)))


@dataclass(frozen=True, eq=False)
class Path(_NodeBase):
    """A property path such as ``Datastream/Thing/name`` or ``properties/owner``; ``id`` is ``@iot.id``."""

    segments: tuple[str, ...]
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(self.segments))
        object.__setattr__(self, "_hash", hash(("path", self.segments)))


@dataclass(frozen=True, eq=False)
class Unary(_NodeBase):
    op: str  # "not" | "neg"
    operand: Node
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash(("un", self.op, self.operand._hash)))


@dataclass(frozen=True, eq=False)
class Binary(_NodeBase):
    op: str  # and or eq ne gt ge lt le add sub mul div mod
    left: Node
    right: Node
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash(("bin", self.op, self.left._hash, self.right._hash)))


@dataclass(frozen=True, eq=False)
class Call(_NodeBase):
    name: str
    args: tuple[Node, ...]
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "_hash", hash(("call", self.name, tuple(a._hash for a in self.args))))


Node: TypeAlias = Literal | Path | Unary | Binary | Call


def _equal(a: Node, b: Node) -> bool:
    stack: list[tuple[Node, Node]] = [(a, b)]
    while stack:
        x, y = stack.pop()
        if x is y:
            continue
        if type(x) is not type(y) or x._hash != y._hash:
            return False
        if isinstance(x, Literal):
            assert isinstance(y, Literal)
            if x.kind != y.kind or x.value != y.value:
                return False
        elif isinstance(x, Path):
            assert isinstance(y, Path)
            if x.segments != y.segments:
                return False
        elif isinstance(x, Unary):
            assert isinstance(y, Unary)
            if x.op != y.op:
                return False
            stack.append((x.operand, y.operand))
        elif isinstance(x, Binary):
            assert isinstance(y, Binary)
            if x.op != y.op:
                return False
            stack.append((x.left, y.left))
            stack.append((x.right, y.right))
        else:
            assert isinstance(x, Call) and isinstance(y, Call)
            if x.name != y.name or len(x.args) != len(y.args):
                return False
            stack.extend(zip(x.args, y.args, strict=True))
    return True


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Call):
        return node.args
    return ()


def _is_chain(op: str, left: Node) -> bool:
    """A left operand that continues an ``and``/``or`` chain: printed without its own parentheses."""
    return op in ("and", "or") and isinstance(left, Binary) and left.op == op


def _chain(node: Binary) -> list[Node]:
    """Operands of a left-associative ``and``/``or`` chain, collected without recursion."""
    if node.op not in ("and", "or"):
        return [node.left, node.right]
    rights: list[Node] = []
    cur: Node = node
    while isinstance(cur, Binary) and cur.op == node.op:
        rights.append(cur.right)
        cur = cur.left
    return [cur, *reversed(rights)]


def _depth(root: Node) -> int:
    """Nesting depth as the parser counts it (see the module docstring), computed without recursion."""
    memo: dict[int, int] = {}
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, ready = stack.pop()
        if id(node) in memo:
            continue
        kids = _children(node)
        if not ready and kids:
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in memo)
            continue
        if isinstance(node, Binary):
            left = memo[id(node.left)] - (1 if _is_chain(node.op, node.left) else 0)
            memo[id(node)] = 1 + max(left, memo[id(node.right)])
        elif kids:
            memo[id(node)] = 1 + max(memo[id(k)] for k in kids)
        else:
            memo[id(node)] = 0
    return memo[id(root)]


# ------------------------------------------------------------------------------------ vocabulary

_BINARY_BP = {
    "or": 1,
    "and": 2,
    **dict.fromkeys(("eq", "ne", "gt", "ge", "lt", "le"), 3),
    **dict.fromkeys(("add", "sub"), 4),
    **dict.fromkeys(("mul", "div", "mod"), 5),
}
_UNARY_BP = 6
_COMPARISONS = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
_ARITHMETIC = frozenset({"add", "sub", "mul", "div", "mod"})
_RESERVED = frozenset({*_BINARY_BP, "not", "true", "false", "null"})

_S, _N, _G = frozenset({"string"}), frozenset({"number"}), frozenset({"geometry"})
_DT, _DTD, _DTT = frozenset({"datetime"}), frozenset({"datetime", "date"}), frozenset({"datetime", "time"})

# name -> (parameter types, minimum arity, result type); the maximum arity is len(parameter types).
_SIGNATURES: dict[str, tuple[tuple[frozenset[str], ...], int, str]] = {
    "substringof": ((_S, _S), 2, "boolean"),
    "endswith": ((_S, _S), 2, "boolean"),
    "startswith": ((_S, _S), 2, "boolean"),
    "length": ((_S,), 1, "number"),
    "indexof": ((_S, _S), 2, "number"),
    "substring": ((_S, _N, _N), 2, "string"),
    "tolower": ((_S,), 1, "string"),
    "toupper": ((_S,), 1, "string"),
    "trim": ((_S,), 1, "string"),
    "concat": ((_S, _S), 2, "string"),
    "year": ((_DTD,), 1, "number"),
    "month": ((_DTD,), 1, "number"),
    "day": ((_DTD,), 1, "number"),
    "hour": ((_DTT,), 1, "number"),
    "minute": ((_DTT,), 1, "number"),
    "second": ((_DTT,), 1, "number"),
    "fractionalseconds": ((_DTT,), 1, "number"),
    "date": ((_DT,), 1, "date"),
    "time": ((_DT,), 1, "time"),
    "totaloffsetminutes": ((_DT,), 1, "number"),
    "now": ((), 0, "datetime"),
    "mindatetime": ((), 0, "datetime"),
    "maxdatetime": ((), 0, "datetime"),
    "round": ((_N,), 1, "number"),
    "floor": ((_N,), 1, "number"),
    "ceiling": ((_N,), 1, "number"),
    "geo.distance": ((_G, _G), 2, "number"),
    "geo.length": ((_G,), 1, "number"),
    "geo.intersects": ((_G, _G), 2, "boolean"),
    **{
        name: ((_G, _G), 2, "boolean")
        for name in (
            "st_equals",
            "st_disjoint",
            "st_touches",
            "st_within",
            "st_overlaps",
            "st_crosses",
            "st_intersects",
            "st_contains",
        )
    },
    "st_relate": ((_G, _G, _S), 3, "boolean"),
}

#: Function name -> (minimum, maximum) number of arguments.
FUNCTIONS: dict[str, tuple[int, int]] = {name: (lo, len(ps)) for name, (ps, lo, _) in _SIGNATURES.items()}


# --------------------------------------------------------------------------------------- literals

_WS = " \t\r\n"
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_SEGMENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER_RE = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DATETIME_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?"
)
# OData durations: days and clock time only (years and months have no fixed length).
_DURATION_RE = re.compile(r"(-)?P(?:([0-9]+)D)?(?:T(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+)(?:\.([0-9]+))?S)?)?")
_DE9IM_RE = re.compile(r"[012TF*]{9}")
_AFTER_LITERAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:")


def _normalise_wkt(wkt: str) -> str:
    # GEOS reads C strings: a NUL would silently cut the text short, so only printable ASCII is allowed.
    if not (wkt.isascii() and wkt.isprintable()):
        raise ValueError("WKT must be printable ASCII")
    with np.errstate(all="ignore"):  # overflowing coordinates are reported below, not as a warning
        geom = shapely.from_wkt(wkt)
        coords = shapely.get_coordinates(geom, include_z=bool(shapely.has_z(geom)))
        if not np.isfinite(coords).all():
            raise ValueError("coordinates must be finite numbers")
    return str(shapely.to_wkt(geom, rounding_precision=-1, trim=True))


def _duration_to_timedelta(text: str) -> dt.timedelta:
    m = _DURATION_RE.fullmatch(text)
    if m is None or text.endswith(("P", "T")):
        raise ValueError("not an ISO 8601 duration such as 'P1DT2H30M'")
    sign, days, hours, minutes, seconds, fraction = m.groups()
    micros = int((fraction or "")[:6].ljust(6, "0"))
    delta = dt.timedelta(
        days=int(days or 0),
        hours=int(hours or 0),
        minutes=int(minutes or 0),
        seconds=int(seconds or 0),
        microseconds=micros,
    )
    return -delta if sign else delta


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


# -------------------------------------------------------------------------------------- tokenizer


class _Tok(NamedTuple):
    kind: str  # ident literal ( ) , / - eof
    pos: int
    end: int
    text: str
    value: Literal | None = None


def _describe(tok: _Tok) -> str:
    if tok.kind == "eof":
        return "end of input"
    text = tok.text if len(tok.text) <= 30 else tok.text[:27] + "..."
    return f"'{text}'"


def _scan_string(text: str, start: int) -> tuple[str, int]:
    """The value of the quoted string opening at ``start`` and the offset just past its closing quote."""
    parts: list[str] = []
    i = start + 1
    while True:
        j = text.find("'", i)
        if j < 0:
            raise FilterError(f"unterminated string literal starting at position {start}", start)
        parts.append(text[i:j])
        if text.startswith("'", j + 1):  # '' is an escaped quote
            parts.append("'")
            i = j + 2
            continue
        return "".join(parts), j + 1


def _check_boundary(text: str, end: int, what: str, start: int) -> None:
    if end < len(text) and text[end] in _AFTER_LITERAL:
        raise FilterError(f"invalid {what} literal at position {start}", start)


def _lex_datetime(text: str, m: re.Match[str]) -> Literal:
    start = m.start()
    if m.group(8) is None:
        raise FilterError(f"timestamp needs a zone ('Z' or an offset such as '+07:00') at position {m.end()}", m.end())
    _check_boundary(text, m.end(), "datetime", start)
    year, month, day, hour, minute, second = (int(g or 0) for g in m.groups()[:6])
    micros = int((m.group(7) or "")[:6].ljust(6, "0"))
    zone = m.group(8)
    try:
        if zone == "Z":
            tz = dt.UTC
        else:
            hh, mm = int(zone[1:3]), int(zone[4:6])
            if hh > 23 or mm > 59:
                raise ValueError
            off = dt.timedelta(hours=hh, minutes=mm)
            tz = dt.timezone(-off if zone[0] == "-" else off)
        value = dt.datetime(year, month, day, hour, minute, second, micros, tzinfo=tz)
    except ValueError:
        raise FilterError(f"invalid datetime '{m.group()}' at position {start}", start) from None
    return Literal(value, "datetime")


def _lex_number(text: str, m: re.Match[str]) -> Literal:
    start, raw = m.start(), m.group()
    _check_boundary(text, m.end(), "number", start)
    if m.group(1) is None and m.group(2) is None:
        digits = raw.lstrip("-").lstrip("0")
        value = int(raw) if len(digits) <= 19 else None  # int() of huge strings is slow (and capped)
        if value is None or not _INT64_MIN <= value <= _INT64_MAX:
            raise FilterError(f"integer out of range at position {start}", start)
        return Literal(value, "int")
    number = float(raw)
    if not math.isfinite(number):
        raise FilterError(f"number out of range at position {start}", start)
    return Literal(number, "float")


def _lex_typed(text: str, prefix: str, start: int, quote: int) -> tuple[Literal, int]:
    body, end = _scan_string(text, quote)
    try:
        if prefix == "duration":
            _duration_to_timedelta(body)
            return Literal(body, "duration"), end
        return Literal(body, "geometry"), end
    except OverflowError:
        raise FilterError(f"duration out of range at position {start}", start) from None
    except Exception as exc:  # shapely/GEOS raise assorted types; all mean "bad literal"
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise FilterError(f"invalid {prefix} literal at position {start}: {detail}", start) from None


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in _WS:
            i += 1
        elif ch in "(),/":
            toks.append(_Tok(ch, i, i + 1, ch))
            i += 1
        elif ch == "'":
            value, end = _scan_string(text, i)
            toks.append(_Tok("literal", i, end, text[i:end], Literal(value, "string")))
            i = end
        elif "0" <= ch <= "9" or (ch == "-" and i + 1 < n and "0" <= text[i + 1] <= "9"):
            # An adjacent minus belongs to the number (OData's signed literals); '- 5' is negation.
            if ch != "-" and (m := _DATETIME_RE.match(text, i)):
                lit = _lex_datetime(text, m)
            elif ch != "-" and (m := _DATE_RE.match(text, i)):
                _check_boundary(text, m.end(), "date", i)
                try:
                    lit = Literal(dt.date(*(int(g) for g in m.groups())), "date")
                except ValueError:
                    raise FilterError(f"invalid date '{m.group()}' at position {i}", i) from None
            else:
                m = _NUMBER_RE.match(text, i)
                assert m is not None
                lit = _lex_number(text, m)
            toks.append(_Tok("literal", i, m.end(), m.group(), lit))
            i = m.end()
        elif ch == "-":
            toks.append(_Tok("-", i, i + 1, ch))
            i += 1
        elif ch == "_" or ("a" <= ch <= "z") or ("A" <= ch <= "Z"):
            m = _IDENT_RE.match(text, i)
            assert m is not None
            word = m.group()
            if word in ("duration", "geography", "geometry") and text.startswith("'", m.end()):
                lit, end = _lex_typed(text, word, i, m.end())
                toks.append(_Tok("literal", i, end, text[i:end], lit))
                i = end
            else:
                toks.append(_Tok("ident", i, m.end(), word))
                i = m.end()
        elif text.startswith("@iot.id", i):
            raise FilterError(f"unexpected character '@' at position {i}; write 'id' for '@iot.id'", i)
        else:
            raise FilterError(f"unexpected character {ch!r} at position {i}", i)
    toks.append(_Tok("eof", n, n, ""))
    return toks


# ----------------------------------------------------------------------------------------- parser


class _Parser:
    """Precedence climbing. Each parse method returns the node and its nesting depth (see ``_depth``)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.parens = 0  # open grouping parentheses
        self.pending = 0  # operands being parsed that will nest inside a node; a lower bound on depth

    def error(self, expected: str, tok: _Tok) -> FilterError:
        return FilterError(f"expected {expected} at position {tok.pos}, found {_describe(tok)}", tok.pos)

    def too_deep(self, tok: _Tok) -> FilterError:
        message = f"expression nested too deeply (over {MAX_DEPTH} levels) at position {tok.pos}"
        return FilterError(message, tok.pos)

    def enter(self, tok: _Tok) -> None:
        self.pending += 1
        if self.pending > MAX_DEPTH:
            raise self.too_deep(tok)

    def built(self, depth: int, tok: _Tok) -> int:
        if depth > MAX_DEPTH:
            raise self.too_deep(tok)
        return depth

    def expect(self, kind: str, what: str) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind != kind:
            raise self.error(what, tok)
        self.i += 1
        return tok

    def parse(self) -> Node:
        node, _ = self.expression(0)
        tok = self.toks[self.i]
        if tok.kind != "eof":
            hint = ""
            if tok.kind == "ident" and tok.text.lower() in _RESERVED and tok.text not in _RESERVED:
                hint = f" (operators are lowercase: '{tok.text.lower()}')"
            raise FilterError(
                f"expected an operator or end of input at position {tok.pos}, found {_describe(tok)}{hint}",
                tok.pos,
            )
        return node

    def expression(self, min_bp: int) -> tuple[Node, int]:
        left, depth = self.operand()
        while True:
            tok = self.toks[self.i]
            bp = _BINARY_BP.get(tok.text) if tok.kind == "ident" else None
            if bp is None or bp < min_bp:
                return left, depth
            # OData requires whitespace around operators: 'a eq(b)' is as wrong as 'aeq b'.
            if self.text[tok.pos - 1] not in _WS:
                raise FilterError(f"expected whitespace before '{tok.text}' at position {tok.pos}", tok.pos)
            if tok.end < len(self.text) and self.text[tok.end] not in _WS:
                raise FilterError(f"expected whitespace after '{tok.text}' at position {tok.end}", tok.end)
            self.i += 1
            self.enter(tok)
            right, right_depth = self.expression(bp + 1)  # bp + 1: left-associative
            self.pending -= 1
            left_depth = depth - 1 if _is_chain(tok.text, left) else depth
            depth = self.built(1 + max(left_depth, right_depth), tok)
            left = Binary(tok.text, left, right)

    def operand(self) -> tuple[Node, int]:
        tok = self.toks[self.i]
        if tok.kind == "-" or (tok.kind == "ident" and tok.text == "not"):
            if tok.kind == "ident" and tok.end < len(self.text) and self.text[tok.end] not in _WS + "(":
                raise FilterError(f"expected whitespace after 'not' at position {tok.end}", tok.end)
            self.i += 1
            self.enter(tok)
            inner, depth = self.expression(_UNARY_BP)
            self.pending -= 1
            return Unary("neg" if tok.kind == "-" else "not", inner), self.built(depth + 1, tok)
        if tok.kind == "(":
            self.parens += 1
            if self.parens > MAX_DEPTH:
                raise self.too_deep(tok)
            self.i += 1
            node, depth = self.expression(0)
            self.expect(")", "')'")
            self.parens -= 1
            return node, depth
        if tok.kind == "literal":
            assert tok.value is not None
            self.i += 1
            return tok.value, 0
        if tok.kind != "ident":
            raise self.error("an expression", tok)
        word = tok.text
        if word in ("true", "false"):
            self.i += 1
            return Literal(word == "true", "bool"), 0
        if word == "null":
            self.i += 1
            return Literal(None, "null"), 0
        if word in _RESERVED:
            raise self.error("an expression", tok)
        if self.toks[self.i + 1].kind == "(":
            return self.call(tok)
        if "." in word:
            if word in FUNCTIONS:
                raise FilterError(f"expected '(' after function '{word}' at position {tok.end}", tok.end)
            raise FilterError(f"invalid property name '{word}' at position {tok.pos}", tok.pos)
        self.i += 1
        segments = [word]
        # A path is written without spaces: 'a/b'; a spaced '/' is left for the caller to reject.
        while (slash := self.toks[self.i]).kind == "/" and slash.pos == self.toks[self.i - 1].end:
            seg = self.toks[self.i + 1]
            if seg.kind != "ident" or "." in seg.text or seg.pos != slash.end:
                raise self.error("a property name right after '/'", seg._replace(pos=slash.end))
            segments.append(seg.text)
            self.i += 2
        return Path(tuple(segments)), 0

    def call(self, name_tok: _Tok) -> tuple[Node, int]:
        name = name_tok.text
        if name not in FUNCTIONS:
            raise FilterError(f"unknown function '{name}' at position {name_tok.pos}", name_tok.pos)
        self.i += 2  # name and '('
        self.enter(name_tok)
        args: list[Node] = []
        depth = 0
        if self.toks[self.i].kind == ")":
            self.i += 1
        else:
            while True:
                arg, arg_depth = self.expression(0)
                args.append(arg)
                depth = max(depth, arg_depth)
                tok = self.toks[self.i]
                self.i += 1
                if tok.kind == ")":
                    break
                if tok.kind != ",":
                    raise self.error("',' or ')'", tok)
        self.pending -= 1
        lo, hi = FUNCTIONS[name]
        if not lo <= len(args) <= hi:
            want = f"{lo}" if lo == hi else f"{lo} or {hi}"
            noun = "argument" if want == "1" else "arguments"
            raise FilterError(
                f"function '{name}' takes {want} {noun}, got {len(args)} at position {name_tok.pos}",
                name_tok.pos,
            )
        return Call(name, tuple(args)), self.built(depth + 1, name_tok)


def parse_filter(text: str, *, max_length: int = MAX_LENGTH) -> Node:
    """Parse a ``$filter`` expression; raises :class:`FilterError` (with the offset at fault) on bad input.

    ``max_length`` exists for re-parsing our own canonical text (``to_text`` output may be longer than
    the client's input); requests should keep the default.
    """
    if len(text) > max_length:
        raise FilterError(f"filter is too long: {len(text)} characters, at most {max_length}", max_length)
    try:
        return _Parser(text).parse()
    except RecursionError:  # the depth limits prevent this; kept so a deep caller stack still gets a 400
        raise FilterError("expression nested too deeply", None) from None


# ---------------------------------------------------------------------------------------- printer


def _literal_text(node: Literal) -> str:
    v, kind = node.value, node.kind
    if kind == "string" and isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    if kind == "int" and type(v) is int and _INT64_MIN <= v <= _INT64_MAX:
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
    if kind == "duration" and isinstance(v, str):
        try:
            _duration_to_timedelta(v)
        except OverflowError:
            raise ValueError(f"duration {v!r} out of range") from None
        return f"duration'{v}'"
    if kind == "geometry" and isinstance(v, str):
        return f"geography'{v}'"  # STA literals are geography; the WKT holds no quotes
    raise ValueError(f"cannot print {kind} literal {v!r}")


def _text(node: Node) -> str:
    if isinstance(node, Literal):
        return _literal_text(node)
    if isinstance(node, Path):
        segs = node.segments
        if not segs or segs[0] in _RESERVED or not all(_SEGMENT_RE.fullmatch(s) for s in segs):
            raise ValueError(f"cannot print property path {segs!r}")
        return "/".join(segs)
    if isinstance(node, Unary):
        inner = _text(node.operand)
        if node.op == "not":
            return "not " + inner
        if node.op == "neg":
            # '-5' would read back as a signed literal, '-2016-01-01' as garbage: parenthesise literals.
            return f"-({inner})" if isinstance(node.operand, Literal) else "-" + inner
        raise ValueError(f"unknown unary operator {node.op!r}")
    if isinstance(node, Binary):
        if node.op not in _BINARY_BP:
            raise ValueError(f"unknown binary operator {node.op!r}")
        return "(" + f" {node.op} ".join(_text(x) for x in _chain(node)) + ")"
    if isinstance(node, Call):
        lo, hi = FUNCTIONS.get(node.name, (1, 0))
        if not lo <= len(node.args) <= hi:
            raise ValueError(f"cannot print call {node.name}() with {len(node.args)} arguments")
        return f"{node.name}({', '.join(_text(a) for a in node.args)})"
    raise TypeError(f"not a filter node: {node!r}")


def to_text(node: Node) -> str:
    """Canonical text: every binary operation parenthesised, except that a left-associative chain of one
    ``and``/``or`` operator shares a single pair, e.g. ``((a eq 1) or (b eq 2) or c)``.

    ``parse_filter(to_text(n)) == n`` for every AST within the depth limit; raises ``ValueError`` for an
    AST that no filter text can express (bad literal values, naive datetimes, unknown operators...).
    """
    if _depth(node) > MAX_DEPTH:
        raise ValueError(f"expression nested deeper than {MAX_DEPTH} levels")
    return _text(node)


# --------------------------------------------------------------------------------------- compiler


class Resolved(NamedTuple):
    """What :meth:`SqlContext.resolve` says about a property path.

    ``type`` is one of "number", "string", "boolean", "datetime", "date", "time", "interval", "geometry",
    "json" or "result".

    - "json": a member of a JSON column (``properties/owner``, ``parameters/a/b``). ``sql`` is the JSON
      column itself and ``keys`` the member keys below it (``("owner",)``, ``("a", "b")``). The compiler
      picks the SQL type from the other operand and calls ``ctx.json_value(sql, keys, as_type)`` with
      as_type "string", "number" or "boolean" (string when nothing decides, e.g. ``eq null``).
    - "result": an Observation result stored per type. ``alt`` maps "number", "string" and "boolean" to
      SQL for each representation; the other operand picks one (number when nothing decides, e.g.
      ``result eq result``). ``result eq null`` tests that every ``alt`` expression is NULL. ``sql`` is
      unused.
    - ``exists``: for a path through a to-many navigation (``Thing/Locations/name`` from a Datastream):
      a template like ``"EXISTS (SELECT 1 FROM locations l JOIN ... WHERE ... AND {cond})"``. Each
      comparison or boolean function using such a path is substituted for ``{cond}`` (with
      ``str.replace``, so the SQL may contain other braces). Paths with the same template in one
      comparison share one EXISTS, so ``Locations/a eq Locations/b`` compares within one row.
    """

    sql: str
    type: str
    exists: str | None = None
    alt: dict[str, str] | None = None
    keys: tuple[str, ...] = ()


class SqlContext(Protocol):
    """Engine-specific SQL pieces for :func:`compile_filter` (DuckDB or PostgreSQL).

    Placeholder order: the compiler calls ``param``, ``json_value``, ``geometry_literal``, ``geo`` and
    ``now`` in exactly the order their SQL appears in the output and never repeats a fragment, so
    positional placeholders (``?``, ``%s``) work, provided that ``resolve`` and ``exists`` templates
    register no parameters, and that ``json_value``/``geo`` keep their arguments in order, each once.

    Every literal goes through ``param`` and is wrapped in a ``CAST(... AS <type>)`` so both engines know
    its type. Values passed: str, int (64-bit), float (finite), bool, timezone-aware datetime,
    ``datetime.date``, ``datetime.timedelta`` (durations). Never None: null comparisons become IS NULL.

    Timestamps are taken to be UTC: ``year()``, ``hour()``, ``date()``... use ``EXTRACT``/``CAST`` and so
    follow the session time zone, which must be UTC.
    """

    def resolve(self, path: tuple[str, ...]) -> Resolved:
        """SQL and type for a property path (see :class:`Resolved`); raise FilterError if unknown."""
        ...

    def param(self, value: object) -> str:
        """Register a bound parameter and return its placeholder."""
        ...

    def json_value(self, base_sql: str, keys: tuple[str, ...], as_type: str) -> str:
        """The member at ``keys`` of JSON ``base_sql`` as "string", "number" or "boolean" SQL; NULL when
        the member is missing or does not convert (use TRY_CAST/CASE rather than failing the query)."""
        ...

    def geo(self, func: str, args: list[str]) -> str:
        """SQL for a geo function by its filter name ("geo.distance", "st_within"...). ``args`` are
        geometry-typed SQL, except the third argument of "st_relate": a string (the DE-9IM pattern)."""
        ...

    def geometry_literal(self, wkt: str) -> str:
        """SQL for a WGS 84 geometry given as WKT (with a parameter placeholder inside)."""
        ...

    def now(self) -> str:
        """SQL for the current timestamp."""
        ...


_TYPES = frozenset({"number", "string", "boolean", "datetime", "date", "time", "interval", "geometry"})
_POLY = frozenset({"json", "result"})  # take their SQL type from the other operand
_BOOLISH = frozenset({"boolean", "json", "result"})
_SCALAR = frozenset({"number", "string", "boolean"})  # what a json/result value can turn into

_DESCRIBE = {
    "number": "a number",
    "string": "a string",
    "boolean": "a boolean",
    "datetime": "a datetime",
    "date": "a date",
    "time": "a time of day",
    "interval": "a duration",
    "geometry": "a geometry",
    "json": "a JSON member",
    "result": "a result",
    "null": "null",
}

_SQL_COMPARE = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_PARAM_CAST = {
    "string": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE PRECISION",
    "bool": "BOOLEAN",
    "datetime": "TIMESTAMP WITH TIME ZONE",
    "date": "DATE",
    "duration": "INTERVAL",
}

# SQL accepted by both DuckDB and PostgreSQL. OData positions are 0-based, SQL ones 1-based; substring()
# arguments are clamped and cast to INTEGER: PostgreSQL has no BIGINT overload, and a huge position must
# not fail the query.
_CALL_SQL = {
    "substringof": "(strpos({1}, {0}) > 0)",  # substringof(needle, haystack)
    "startswith": "(strpos({0}, {1}) = 1)",
    "endswith": "(strpos(reverse({0}), reverse({1})) = 1)",  # avoids repeating {1} (placeholder order)
    "length": "length({0})",
    "indexof": "(strpos({0}, {1}) - 1)",
    "tolower": "lower({0})",
    "toupper": "upper({0})",
    "trim": "trim({0})",
    "concat": "({0} || {1})",
    "year": "EXTRACT(YEAR FROM {0})",
    "month": "EXTRACT(MONTH FROM {0})",
    "day": "EXTRACT(DAY FROM {0})",
    "hour": "EXTRACT(HOUR FROM {0})",
    "minute": "EXTRACT(MINUTE FROM {0})",
    "second": "floor(EXTRACT(SECOND FROM {0}))",  # PostgreSQL includes the fraction
    "fractionalseconds": "(mod(EXTRACT(MICROSECONDS FROM {0}), 1000000) / 1000000.0)",
    "date": "CAST({0} AS DATE)",
    "time": "CAST(CAST({0} AS TIMESTAMP) AS TIME)",  # DuckDB has no direct TIMESTAMPTZ -> TIME cast
    "totaloffsetminutes": "(EXTRACT(TIMEZONE FROM {0}) / 60)",
    "round": "round({0})",
    "floor": "floor({0})",
    "ceiling": "ceiling({0})",
}
_INT32 = "CAST(LEAST(GREATEST({}, -2147483648), 2147483647) AS INTEGER)"
_SUBSTRING_SQL = {
    2: "substring({0}, " + _INT32.format("{1} + 1") + ")",
    3: "substring({0}, " + _INT32.format("{1} + 1") + ", " + _INT32.format("{2}") + ")",
}


class _Info(NamedTuple):
    type: str  # a _TYPES member, "json", "result" or "null"
    exists: tuple[str, ...] = ()  # to-many templates not yet applied


def _merge(*groups: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t for g in groups for t in g))


def _snippet(node: Node) -> str:
    try:
        text = _text(node)
    except (ValueError, TypeError):
        text = type(node).__name__
    if isinstance(node, Binary):
        text = text[1:-1]  # the outer parentheses add nothing in a message
    return text if len(text) <= 60 else text[:57] + "..."


class _Compiler:
    """Two passes: ``info`` type-checks (calling only ``resolve``), ``emit`` writes SQL left to right."""

    def __init__(self, ctx: SqlContext) -> None:
        self.ctx = ctx
        self.infos: dict[int, _Info] = {}
        self.paths: dict[tuple[str, ...], Resolved] = {}

    def resolve(self, path: tuple[str, ...]) -> Resolved:
        if path not in self.paths:
            r = self.ctx.resolve(path)
            if r.type not in _TYPES | _POLY:
                raise TypeError(f"resolver returned unknown type {r.type!r} for {path!r}")
            self.paths[path] = r
        return self.paths[path]

    # ---- typing

    def info(self, node: Node) -> _Info:
        found = self.infos.get(id(node))
        if found is None:
            found = self.infos[id(node)] = self._info(node)
        return found

    def _info(self, node: Node) -> _Info:
        if isinstance(node, Literal):
            kinds = {"int": "number", "float": "number", "bool": "boolean", "duration": "interval"}
            return _Info(kinds.get(node.kind, node.kind))
        if isinstance(node, Path):
            r = self.resolve(node.segments)
            return _Info(r.type, (r.exists,) if r.exists else ())
        if isinstance(node, Unary):
            inner = self.info(node.operand)
            if node.op == "not":
                if inner.type not in _BOOLISH:
                    raise FilterError(
                        f"'not' needs a boolean operand, got {_DESCRIBE[inner.type]} in '{_snippet(node)}'"
                    )
                return _Info("boolean")
            if inner.type not in {"number", "interval"} | _POLY:
                raise FilterError(f"'-' needs a number, got {_DESCRIBE[inner.type]} in '{_snippet(node)}'")
            return _Info("number" if inner.type in _POLY else inner.type, inner.exists)
        if isinstance(node, Binary):
            if node.op in ("and", "or"):
                for operand in _chain(node):
                    t = self.info(operand).type
                    if t not in _BOOLISH:
                        raise FilterError(
                            f"'{node.op}' needs boolean operands, got {_DESCRIBE[t]} in '{_snippet(operand)}'"
                        )
                return _Info("boolean")
            left, right = self.info(node.left), self.info(node.right)
            if node.op in _COMPARISONS:
                self.comparison_type(node)
                return _Info("boolean")
            return _Info(self.arithmetic_type(node), _merge(left.exists, right.exists))
        if isinstance(node, Call):
            self.call_targets(node)
            result = _SIGNATURES[node.name][2]
            exists = _merge(*(self.info(a).exists for a in node.args))
            return _Info(result, () if result == "boolean" else exists)
        raise TypeError(f"not a filter node: {node!r}")

    def comparison_type(self, node: Binary) -> str | None:
        """The SQL type both operands are compared as; None for a comparison with null."""
        a, b = self.info(node.left).type, self.info(node.right).type
        if "null" in (a, b):
            if node.op not in ("eq", "ne"):
                raise FilterError(f"null can only be compared with eq or ne, in '{_snippet(node)}'")
            return None
        if a in _POLY and b in _POLY:
            return "number" if "result" in (a, b) else "string"
        if a in _POLY and b in _SCALAR:
            a = b
        elif b in _POLY and a in _SCALAR:
            b = a
        # An unquoted date compared with a timestamp means midnight UTC of that day.
        if {a, b} == {"date", "datetime"}:
            date_side = node.left if a == "date" else node.right
            if isinstance(date_side, Literal):
                a = b = "datetime"
        if a != b:
            hint = " (write datetimes unquoted)" if {a, b} == {"string", "datetime"} else ""
            raise FilterError(f"cannot compare {_DESCRIBE[a]} with {_DESCRIBE[b]} in '{_snippet(node)}'{hint}")
        if a == "geometry":
            raise FilterError(f"geometries cannot be compared with '{node.op}'; use st_equals(), in '{_snippet(node)}'")
        if a == "boolean" and node.op not in ("eq", "ne"):
            raise FilterError(f"booleans can only be compared with eq or ne, in '{_snippet(node)}'")
        return a

    def arithmetic_type(self, node: Binary) -> str:
        a, b = self.info(node.left).type, self.info(node.right).type
        op = node.op
        if "null" in (a, b):
            raise FilterError(f"null can only be compared with eq or ne, in '{_snippet(node)}'")
        numeric = {"number"} | _POLY
        if a in numeric and b in numeric:
            return "number"
        if op in ("add", "sub"):
            if a == "datetime" and b == "interval":
                return "datetime"
            if op == "add" and a == "interval" and b == "datetime":
                return "datetime"
            if op == "sub" and a == b == "datetime":
                return "interval"
            if a == b == "interval":
                return "interval"
        raise FilterError(f"'{op}' cannot combine {_DESCRIBE[a]} and {_DESCRIBE[b]} in '{_snippet(node)}'")

    def call_targets(self, node: Call) -> list[str]:
        """Type-check the arguments; returns the SQL type each argument is emitted as."""
        if node.name not in _SIGNATURES:  # hand-built ASTs skip the parser's checks
            raise FilterError(f"unknown function '{node.name}'")
        params, lo, _ = _SIGNATURES[node.name]
        if not lo <= len(node.args) <= len(params):
            raise FilterError(f"function '{node.name}' takes {lo} to {len(params)} arguments, got {len(node.args)}")
        targets = []
        for i, (arg, allowed) in enumerate(zip(node.args, params, strict=False)):
            t = self.info(arg).type
            if t in _POLY and allowed & _SCALAR:
                t = min(allowed & _SCALAR)
            if t not in allowed:
                want = " or ".join(_DESCRIBE[x] for x in sorted(allowed))
                raise FilterError(
                    f"{node.name}() needs {want} as argument {i + 1}, got {_DESCRIBE[t]} in '{_snippet(node)}'"
                )
            targets.append(t)
        if node.name == "st_relate":
            pattern = node.args[2]
            if not (
                isinstance(pattern, Literal) and isinstance(pattern.value, str) and _DE9IM_RE.fullmatch(pattern.value)
            ):
                raise FilterError("st_relate() needs a DE-9IM pattern such as 'T*F**F***' as argument 3")
        return targets

    # ---- SQL

    def boolean(self, node: Node) -> str:
        """SQL for a boolean operand of and/or/not or the whole filter, inside its EXISTS if any."""
        return self.wrap(self.emit(node, "boolean"), self.info(node).exists)

    @staticmethod
    def wrap(cond: str, exists: tuple[str, ...]) -> str:
        for template in exists:
            cond = template.replace("{cond}", cond)
        return cond

    def emit(self, node: Node, want: str | None = None) -> str:
        """SQL for ``node``; ``want`` picks the representation of json/result values and date literals."""
        if isinstance(node, Literal):
            return self.literal(node, want)
        if isinstance(node, Path):
            r = self.resolve(node.segments)
            if r.type == "json":
                return self.ctx.json_value(r.sql, r.keys, want if want in _SCALAR else "string")
            if r.type == "result":
                return self.result_alt(r, want if want in _SCALAR else "number", node)
            return r.sql
        if isinstance(node, Unary):
            if node.op == "not":
                return f"(NOT {self.boolean(node.operand)})"
            return f"(-{self.emit(node.operand, 'number')})"
        if isinstance(node, Binary):
            if node.op in ("and", "or"):
                return "(" + f" {node.op.upper()} ".join(self.boolean(x) for x in _chain(node)) + ")"
            if node.op in _COMPARISONS:
                return self.comparison(node)
            return self.arithmetic(node)
        return self.call(node)

    def literal(self, node: Literal, want: str | None) -> str:
        value, kind = node.value, node.kind
        if kind == "geometry":
            assert isinstance(value, str)
            return self.ctx.geometry_literal(value)
        if kind == "date" and want == "datetime":
            assert isinstance(value, dt.date)
            value, kind = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC), "datetime"
        elif kind == "duration":
            assert isinstance(value, str)
            value = _duration_to_timedelta(value)
        elif kind == "null":  # only reachable through a hand-built AST that skipped the type check
            raise FilterError("null can only be compared with eq or ne")
        return f"CAST({self.ctx.param(value)} AS {_PARAM_CAST[kind]})"

    @staticmethod
    def result_alt(r: Resolved, want: str, node: Node) -> str:
        sql = (r.alt or {}).get(want)
        if sql is None:
            raise FilterError(f"'{_snippet(node)}' cannot be used as {_DESCRIBE[want]}")
        return sql

    def comparison(self, node: Binary) -> str:
        target = self.comparison_type(node)
        exists = _merge(self.info(node.left).exists, self.info(node.right).exists)
        if target is None:
            cond = self.null_test(node)
        else:
            left = self.emit(node.left, target)
            right = self.emit(node.right, target)
            cond = f"({left} {_SQL_COMPARE[node.op]} {right})"
        return self.wrap(cond, exists)

    def null_test(self, node: Binary) -> str:
        left, right = node.left, node.right
        if self.info(left).type == "null" and self.info(right).type == "null":
            return f"CAST({self.ctx.param(node.op == 'eq')} AS BOOLEAN)"
        other = right if self.info(left).type == "null" else left
        if isinstance(other, Path) and self.resolve(other.segments).type == "result":
            alts = list((self.resolve(other.segments).alt or {}).values())
            if not alts:
                raise FilterError(f"'{_snippet(other)}' cannot be compared with null")
            is_null = "(" + " AND ".join(f"{sql} IS NULL" for sql in alts) + ")"
        else:
            is_null = f"({self.emit(other)} IS NULL)"
        return is_null if node.op == "eq" else f"(NOT {is_null})"

    def arithmetic(self, node: Binary) -> str:
        want = "number" if self.arithmetic_type(node) == "number" else None
        left = self.emit(node.left, want)
        right = self.emit(node.right, want)
        if node.op == "div":  # always true division, and NULL rather than an error on zero
            return f"(CAST({left} AS DOUBLE PRECISION) / NULLIF({right}, 0))"
        if node.op == "mod":  # PostgreSQL has no double % double; DECIMAL(38, 9) works in both engines
            return f"mod(CAST({left} AS DECIMAL(38, 9)), NULLIF(CAST({right} AS DECIMAL(38, 9)), 0))"
        sql_op = {"add": "+", "sub": "-", "mul": "*"}[node.op]
        return f"({left} {sql_op} {right})"

    def call(self, node: Call) -> str:
        name = node.name
        targets = self.call_targets(node)
        exists = _merge(*(self.info(a).exists for a in node.args))
        if name == "now":
            return self.ctx.now()
        if name in ("mindatetime", "maxdatetime"):
            bound = dt.datetime.min if name == "mindatetime" else dt.datetime.max
            return f"CAST({self.ctx.param(bound.replace(tzinfo=dt.UTC))} AS TIMESTAMP WITH TIME ZONE)"
        # Emit arguments in the order they appear in the SQL (substringof swaps them).
        order = (1, 0) if name == "substringof" else range(len(node.args))
        sqls: dict[int, str] = {i: self.emit(node.args[i], targets[i]) for i in order}
        args = [sqls[i] for i in range(len(node.args))]
        if name.startswith(("geo.", "st_")):
            sql = self.ctx.geo(name, args)
        elif name == "substring":
            sql = _SUBSTRING_SQL[len(args)].format(*args)
        else:
            sql = _CALL_SQL[name].format(*args)
        return self.wrap(sql, exists) if _SIGNATURES[name][2] == "boolean" else sql


def compile_filter(node: Node, ctx: SqlContext) -> str:
    """Type-check a parsed filter and compile it to a SQL boolean expression (see :class:`SqlContext`)."""
    if _depth(node) > MAX_DEPTH:
        raise FilterError(f"expression nested too deeply (over {MAX_DEPTH} levels)")
    compiler = _Compiler(ctx)
    try:
        kind = compiler.info(node).type
        if kind not in _BOOLISH:
            raise FilterError(f"filter must be a boolean expression, not {_DESCRIBE[kind]}")
        return compiler.boolean(node)
    except RecursionError:
        raise FilterError("expression nested too deeply") from None


def compile_expression(node: Node, ctx: SqlContext) -> str:
    """Compile any expression to SQL for sorting (``$orderby``). A to-many path has no single value to
    sort by, so it is an error; a boolean expression sorts false before true."""
    if _depth(node) > MAX_DEPTH:
        raise FilterError(f"expression nested too deeply (over {MAX_DEPTH} levels)")
    compiler = _Compiler(ctx)
    try:
        info = compiler.info(node)
        if info.exists:
            raise FilterError(f"cannot sort by '{_snippet(node)}': it has many values per entity")
        if info.type == "boolean":
            return compiler.boolean(node)
        return compiler.emit(node)
    except RecursionError:
        raise FilterError("expression nested too deeply") from None
