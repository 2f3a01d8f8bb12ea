"""The ``$filter`` language itself: its immutable AST node types, its error type and limits, and the
vocabulary (operators, functions and their signatures) that the lexer, parser, printer and compiler share.

Nesting depth is defined here (:func:`depth`) because the parser, the printer and the compiler must all
count it the same way; see the package docstring for the rule.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import shapely

from cityhub.errors import ProblemError

MAX_LENGTH = 10_000
MAX_DEPTH = 100

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class FilterError(ProblemError):
    """A malformed or ill-typed ``$filter``; ``position`` is the 0-based character offset, if known."""

    def __init__(self, message: str, position: int | None = None) -> None:
        extra: dict[str, Any] = {} if position is None else {"position": position}
        super().__init__(400, "Bad Request", message, field="$filter", **extra)
        self.position = position


# --------------------------------------------------------------------------------------------------- nodes

# "period": an ISO 8601 time interval, start/end or start/duration, written unquoted (value: (start, end))
LITERAL_KINDS = frozenset(
    {"string", "int", "float", "bool", "null", "datetime", "date", "duration", "geometry", "period"}
)


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
            object.__setattr__(self, "value", normalise_wkt(self.value))
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


@dataclass(frozen=True, eq=False)
class Lambda(_NodeBase):
    """OData's lambda operators over the collection ``path`` navigates to: ``Datastreams/any(d: d/name eq 'x')``,
    ``Datastreams/all(d: ...)``, or ``Datastreams/any()`` (is there any; ``var`` and ``body`` None). In ``body``
    a path that starts with ``var`` is a member of the collection, any other one the entity being filtered."""

    path: tuple[str, ...]
    op: str  # "any" | "all"
    var: str | None
    body: Node | None
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", tuple(self.path))
        body_hash = self.body._hash if self.body is not None else 0
        object.__setattr__(self, "_hash", hash(("lambda", self.path, self.op, self.var, body_hash)))


Node: TypeAlias = Literal | Path | Unary | Binary | Call | Lambda


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
        elif isinstance(x, Lambda):
            assert isinstance(y, Lambda)
            if (x.path, x.op, x.var) != (y.path, y.op, y.var) or (x.body is None) != (y.body is None):
                return False
            if x.body is not None and y.body is not None:
                stack.append((x.body, y.body))
        else:
            assert isinstance(x, Call) and isinstance(y, Call)
            if x.name != y.name or len(x.args) != len(y.args):
                return False
            stack.extend(zip(x.args, y.args, strict=True))
    return True


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Call):
        return node.args
    if isinstance(node, Lambda) and node.body is not None:
        return (node.body,)
    return ()


def is_chain(op: str, left: Node) -> bool:
    """A left operand that continues an ``and``/``or`` chain: printed without its own parentheses."""
    return op in ("and", "or") and isinstance(left, Binary) and left.op == op


def chain(node: Binary) -> list[Node]:
    """Operands of a left-associative ``and``/``or`` chain, collected without recursion."""
    if node.op not in ("and", "or"):
        return [node.left, node.right]
    rights: list[Node] = []
    cur: Node = node
    while isinstance(cur, Binary) and cur.op == node.op:
        rights.append(cur.right)
        cur = cur.left
    return [cur, *reversed(rights)]


def depth(root: Node) -> int:
    """Nesting depth as the parser counts it (see the package docstring), computed without recursion."""
    memo: dict[int, int] = {}
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, ready = stack.pop()
        if id(node) in memo:
            continue
        kids = children(node)
        if not ready and kids:
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in memo)
            continue
        if isinstance(node, Binary):
            left = memo[id(node.left)] - (1 if is_chain(node.op, node.left) else 0)
            memo[id(node)] = 1 + max(left, memo[id(node.right)])
        elif kids:
            memo[id(node)] = 1 + max(memo[id(k)] for k in kids)
        else:
            memo[id(node)] = 0
    return memo[id(root)]


# ------------------------------------------------------------------------------------ literal values

# OData durations: days and clock time only (years and months have no fixed length).
_DURATION_RE = re.compile(r"(-)?P(?:([0-9]+)D)?(?:T(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+)(?:\.([0-9]+))?S)?)?")


def normalise_wkt(wkt: str) -> str:
    # GEOS reads C strings: a NUL would silently cut the text short, so only printable ASCII is allowed.
    if not (wkt.isascii() and wkt.isprintable()):
        raise ValueError("WKT must be printable ASCII")
    with np.errstate(all="ignore"):  # overflowing coordinates are reported below, not as a warning
        geom = shapely.from_wkt(wkt)
        coords = shapely.get_coordinates(geom, include_z=bool(shapely.has_z(geom)))
        if not np.isfinite(coords).all():
            raise ValueError("coordinates must be finite numbers")
    return str(shapely.to_wkt(geom, rounding_precision=-1, trim=True))


def duration_to_timedelta(text: str) -> dt.timedelta:
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


# ------------------------------------------------------------------------------------ vocabulary

BINARY_BP = {
    "or": 1,
    "and": 2,
    **dict.fromkeys(("eq", "ne", "gt", "ge", "lt", "le"), 3),
    **dict.fromkeys(("add", "sub"), 4),
    **dict.fromkeys(("mul", "div", "mod"), 5),
    # OData 4.01's membership operator, a primary one (URL Conventions §5.1.1.16): tighter than the rest.
    "in": 7,
}
UNARY_BP = 6
NOT_BP = BINARY_BP["eq"]  # what 'not' applies to: a comparison (and the arithmetic in it), not and/or
COMPARISONS = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
RESERVED = frozenset({*BINARY_BP, "not", "true", "false", "null"})
LAMBDAS = frozenset({"any", "all"})

_S, _N, _G = frozenset({"string"}), frozenset({"number"}), frozenset({"geometry"})
_DT, _DTD, _DTT = frozenset({"datetime"}), frozenset({"datetime", "date"}), frozenset({"datetime", "time"})
_T = frozenset({"datetime", "period"})  # an instant or a time interval
TIME_RELATIONS = ("before", "after", "meets", "during", "overlaps", "starts", "finishes")

# name -> (parameter types, minimum arity, result type); the maximum arity is len(parameter types).
SIGNATURES: dict[str, tuple[tuple[frozenset[str], ...], int, str]] = {
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
    # Time relations of an instant or interval with another (SensorThings v1.1 Table 26; FROST-Server's meaning).
    **{name: ((_T, _T), 2, "boolean") for name in TIME_RELATIONS},
}

#: Function name -> (minimum, maximum) number of arguments.
FUNCTIONS: dict[str, tuple[int, int]] = {name: (lo, len(ps)) for name, (ps, lo, _) in SIGNATURES.items()}
