"""The ``$filter`` SQL compiler: type-checks an AST and writes a SQL boolean expression (or, for
``$orderby``, a value expression) through a :class:`SqlContext` that the query engine supplies.

The SQL written here is accepted by DuckDB and PostgreSQL alike. Everything that differs between them
(bind-parameter placeholders, JSON members, geometry functions, the clock) is asked of the context, which
gets it from the backend's :class:`~cityhub.store.base.Dialect`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import NamedTuple, Protocol

from cityhub.sensorthings.filter.ast import (
    COMPARISONS,
    MAX_DEPTH,
    SIGNATURES,
    TIME_RELATIONS,
    Binary,
    Call,
    FilterError,
    Lambda,
    Literal,
    Node,
    Path,
    Unary,
    chain,
    depth,
    duration_to_timedelta,
)
from cityhub.sensorthings.filter.printer import text_of

_DE9IM_RE = re.compile(r"[012TF*]{9}")


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

    Placeholders: the compiler writes none itself; every one is what ``param`` returns, which for the
    query engine's context is the backend dialect's ``Dialect.placeholder`` (``?`` for DuckDB, ``%s``
    for psycopg). The compiler calls ``param``, ``json_value``, ``geometry_literal``, ``geo`` and ``now``
    in exactly the order their SQL appears in the output and never repeats a fragment, so positional
    placeholders work, provided that ``resolve`` and ``exists`` templates register no parameters, and
    that ``json_value``/``geo`` keep their arguments in order, each once. Nor does it write a ``%``
    (``mod()`` rather than the operator), which a ``%s``-style driver would read as a placeholder.

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
        """Register a bound parameter and return its placeholder (the backend dialect's)."""
        ...

    def json_value(self, base_sql: str, keys: tuple[str, ...], as_type: str) -> str:
        """The member at ``keys`` of JSON ``base_sql`` as "string", "number" or "boolean" SQL; NULL when
        the member is missing or does not convert (use TRY_CAST/CASE rather than failing the query)."""
        ...

    def json_contains(self, base_sql: str, keys: tuple[str, ...], value_sql: str, as_type: str) -> str:
        """Whether the array at ``keys`` of JSON ``base_sql`` holds ``value_sql``, a "string", "number" or "boolean"
        (an element of another JSON type never does); false when the member is no array."""
        ...

    def geo(self, func: str, args: list[str]) -> str:
        """SQL for a geo function by its filter name ("geo.distance", "st_within"...). ``args`` are
        geometry-typed SQL, except the third argument of "st_relate": a string (the DE-9IM pattern)."""
        ...

    def distance_within(self, inclusive: bool) -> str | None:
        """A template for ``geo.distance({a}, {b}) <= {d}`` (``inclusive``) or ``< {d}`` that an index can serve,
        or None to compare the distance itself."""
        ...

    def geometry_literal(self, wkt: str) -> str:
        """SQL for a WGS 84 geometry given as WKT (with a parameter placeholder inside)."""
        ...

    def arithmetic(self, op: str, left: str, right: str) -> str:
        """SQL for ``left`` op ``right`` on numbers (add, sub, mul, div): ``Dialect.arithmetic``."""
        ...

    def now(self) -> str:
        """SQL for the current timestamp."""
        ...

    def related(self, path: tuple[str, ...]) -> str | None:
        """SQL that is true when navigation ``path`` leads to an entity (``Thing eq null`` is its negation), or
        None if ``path`` does not end at a navigation property."""
        ...

    def scope(self, path: tuple[str, ...]) -> tuple[str, SqlContext]:
        """For a lambda over the collection ``path`` navigates to: an ``EXISTS (... AND {cond})`` template over
        its members (as ``Resolved.exists``) and the context that resolves a member's properties; FilterError
        if ``path`` does not end in a collection."""
        ...


class _Scoped:
    """The context inside a lambda's body: paths that start with its variable are the member's, others the
    enclosing context's; everything else is the enclosing context's."""

    def __init__(self, outer: SqlContext, var: str, inner: SqlContext) -> None:
        self.outer, self.var, self.inner = outer, var, inner

    def resolve(self, path: tuple[str, ...]) -> Resolved:
        if path[0] != self.var:
            return self.outer.resolve(path)
        if len(path) == 1:
            raise FilterError(f"'{self.var}' is an entity; name one of its properties: {self.var}/name", 0)
        return self.inner.resolve(path[1:])

    def scope(self, path: tuple[str, ...]) -> tuple[str, SqlContext]:
        return self.inner.scope(path[1:]) if path[0] == self.var else self.outer.scope(path)

    def related(self, path: tuple[str, ...]) -> str | None:
        if path[0] != self.var:
            return self.outer.related(path)
        return self.inner.related(path[1:]) if len(path) > 1 else None

    def param(self, value: object) -> str:
        return self.outer.param(value)

    def json_value(self, base_sql: str, keys: tuple[str, ...], as_type: str) -> str:
        return self.outer.json_value(base_sql, keys, as_type)

    def json_contains(self, base_sql: str, keys: tuple[str, ...], value_sql: str, as_type: str) -> str:
        return self.outer.json_contains(base_sql, keys, value_sql, as_type)

    def geo(self, func: str, args: list[str]) -> str:
        return self.outer.geo(func, args)

    def distance_within(self, inclusive: bool) -> str | None:
        return self.outer.distance_within(inclusive)

    def arithmetic(self, op: str, left: str, right: str) -> str:
        return self.outer.arithmetic(op, left, right)

    def geometry_literal(self, wkt: str) -> str:
        return self.outer.geometry_literal(wkt)

    def now(self) -> str:
        return self.outer.now()


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
    "period": "a time interval",
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
# Comparisons and relations of a = [s1, e1) and b = [s2, e2) (an instant t is [t, t]), FROST-Server's formulas
# (StaTimeIntervalWrapper): before is lt, after is gt; during(a, b) is "b contains a".
_TIME_FORMULAS = {
    "lt": "(e1 <= s2 AND s1 < s2)",
    "le": "(s1 <= s2 AND e1 <= e2)",
    "gt": "(s1 >= e2 AND s1 > s2)",
    "ge": "(s1 >= s2 AND e1 >= e2)",
    "eq": "(s1 = s2 AND e1 = e2)",
    "ne": "(s1 <> s2 AND e1 <> e2)",
    "before": "(e1 <= s2 AND s1 < s2)",
    "after": "(s1 >= e2 AND s1 > s2)",
    "meets": "(s1 = e2 OR e1 = s2)",
    "during": "(s2 <= s1 AND e2 > s1 AND e2 >= e1)",
    "overlaps": "(NOT (s1 >= e2 OR s2 >= e1) OR s1 = s2)",
    "starts": "(s1 = s2)",
    "finishes": "(e1 = e2)",
}
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
        text = text_of(node)
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
        self.scopes: dict[int, tuple[str, _Compiler]] = {}  # a lambda's EXISTS template and its body's compiler
        self.entity_nulls: dict[int, str] = {}  # "Thing eq null": the comparison's id -> SQL of "Thing exists"

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
        if isinstance(node, Lambda):
            _, child = self.lambda_scope(node)
            if node.body is not None and (t := child.info(node.body).type) not in _BOOLISH:
                raise FilterError(f"'{node.op}' needs a boolean condition, got {_DESCRIBE[t]} in '{_snippet(node)}'")
            return _Info("boolean")
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
                for operand in chain(node):
                    t = self.info(operand).type
                    if t not in _BOOLISH:
                        raise FilterError(
                            f"'{node.op}' needs boolean operands, got {_DESCRIBE[t]} in '{_snippet(operand)}'"
                        )
                return _Info("boolean")
            if node.op == "in":
                self.membership_type(node)
                return _Info("boolean")
            if node.op in ("eq", "ne") and (related := self.entity_null(node)) is not None:
                self.entity_nulls[id(node)] = related
                return _Info("boolean")
            left, right = self.info(node.left), self.info(node.right)
            if node.op in COMPARISONS:
                self.comparison_type(node)
                return _Info("boolean")
            return _Info(self.arithmetic_type(node), _merge(left.exists, right.exists))
        if isinstance(node, Call):
            self.call_targets(node)
            result = SIGNATURES[node.name][2]
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
        if self.is_period(node.left) or self.is_period(node.right):
            for side in (node.left, node.right):
                t = self.info(side).type
                if t not in ("datetime", "period") and not (t == "date" and isinstance(side, Literal)):
                    raise FilterError(f"cannot compare a time interval with {_DESCRIBE[t]} in '{_snippet(node)}'")
            return "period"
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

    def membership_type(self, node: Binary) -> tuple[str, Resolved]:
        """``x in <array>`` with the array a JSON member (``9 in properties/list``; a list ``x in (a, b)`` is parsed
        as the comparisons it stands for): the type x is looked for as, and the array's path."""
        right = node.right
        r = self.resolve(right.segments) if isinstance(right, Path) else None
        if r is None or r.type != "json":
            raise FilterError(f"'in' needs a list (a, b) or a JSON array member after it, in '{_snippet(node)}'")
        t = self.info(node.left).type
        if t in _POLY:
            t = "string"
        if t not in _SCALAR:
            raise FilterError(f"cannot look for {_DESCRIBE[t]} in a JSON array, in '{_snippet(node)}'")
        return t, r

    def arithmetic_type(self, node: Binary) -> str:
        a, b = self.info(node.left).type, self.info(node.right).type
        op = node.op
        if "null" in (a, b):
            raise FilterError(f"null can only be compared with eq or ne, in '{_snippet(node)}'")
        numeric = {"number"} | _POLY
        if a in numeric and b in numeric:
            return "number"
        # A time interval moved by a duration is an interval (FROST-Server: both ends move); an interval minus an
        # instant or interval is the duration from its start.
        if op in ("add", "sub") and self.is_period(node.left) and b == "interval":
            return "period"
        if op == "add" and a == "interval" and self.is_period(node.right):
            return "period"
        if op == "sub" and a == "period" and b in ("datetime", "period"):
            return "interval"
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
        if node.name not in SIGNATURES:  # hand-built ASTs skip the parser's checks
            raise FilterError(f"unknown function '{node.name}'")
        params, lo, _ = SIGNATURES[node.name]
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

    def lambda_scope(self, node: Lambda) -> tuple[str, _Compiler]:
        found = self.scopes.get(id(node))
        if found is None:
            template, inner = self.ctx.scope(node.path)
            child = _Compiler(_Scoped(self.ctx, node.var, inner) if node.var is not None else inner)
            found = self.scopes[id(node)] = (template, child)
        return found

    def lambda_sql(self, node: Lambda) -> str:
        """any: some member meets the condition (any(): there is a member); all: none fails it, a NULL
        condition failing (OData: all is true of an empty collection)."""
        template, child = self.lambda_scope(node)
        if node.body is None:
            return template.replace("{cond}", "TRUE")
        body = child.boolean(node.body)
        if node.op == "any":
            return template.replace("{cond}", body)
        return f"(NOT {template.replace('{cond}', f'NOT coalesce({body}, FALSE)')})"

    def emit(self, node: Node, want: str | None = None) -> str:
        """SQL for ``node``; ``want`` picks the representation of json/result values and date literals."""
        if isinstance(node, Literal):
            return self.literal(node, want)
        if isinstance(node, Lambda):
            return self.lambda_sql(node)
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
                return "(" + f" {node.op.upper()} ".join(self.boolean(x) for x in chain(node)) + ")"
            if node.op in COMPARISONS:
                return self.comparison(node)
            if node.op == "in":
                return self.membership(node)
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
            value = duration_to_timedelta(value)
        elif kind == "null":  # only reachable through a hand-built AST that skipped the type check
            raise FilterError("null can only be compared with eq or ne")
        return f"CAST({self.ctx.param(value)} AS {_PARAM_CAST[kind]})"

    @staticmethod
    def result_alt(r: Resolved, want: str, node: Node) -> str:
        sql = (r.alt or {}).get(want)
        if sql is None:
            raise FilterError(f"'{_snippet(node)}' cannot be used as {_DESCRIBE[want]}")
        return sql

    def entity_null(self, node: Binary) -> str | None:
        """For ``<navigation> eq|ne null`` (``Thing eq null``, ``Datastreams ne null``: is there a related entity),
        the SQL of "there is one"; None for any other comparison."""
        sides = (node.left, node.right)
        if not any(isinstance(s, Literal) and s.kind == "null" for s in sides):
            return None
        other = node.right if isinstance(node.left, Literal) and node.left.kind == "null" else node.left
        return self.ctx.related(other.segments) if isinstance(other, Path) else None

    def comparison(self, node: Binary) -> str:
        if (related := self.entity_nulls.get(id(node))) is not None:
            return f"(NOT {related})" if node.op == "eq" else related
        target = self.comparison_type(node)
        exists = _merge(self.info(node.left).exists, self.info(node.right).exists)
        if target is None:
            cond = self.null_test(node)
            if node.op == "eq" and exists:
                # A to-many path that leads to no entity at all has the value null too, as a property behind a
                # to-one navigation that is unset has (FROST-Server: ``Datastreams/id eq null`` finds the Things
                # without Datastreams).
                return f"((NOT {self.wrap('TRUE', exists)}) OR {self.wrap(cond, exists)})"
        elif target == "period":
            cond = self.period_comparison(node)
        elif (within := self.distance_within(node, target)) is not None:
            cond = within
        else:
            left = self.emit(node.left, target)
            right = self.emit(node.right, target)
            cond = f"({left} {_SQL_COMPARE[node.op]} {right})"
        return self.wrap(cond, exists)

    def membership(self, node: Binary) -> str:
        target, r = self.membership_type(node)
        value = self.emit(node.left, target)
        exists = _merge(self.info(node.left).exists, self.info(node.right).exists)
        return self.wrap(self.ctx.json_contains(r.sql, r.keys, value, target), exists)

    def is_period(self, node: Node) -> bool:
        """An interval literal, a property that holds time intervals (Resolved.alt["end"]), or either moved by a
        duration."""
        if isinstance(node, Literal):
            return node.kind == "period"
        if isinstance(node, Path):
            r = self.resolve(node.segments)
            return r.type == "datetime" and bool(r.alt) and "end" in (r.alt or {})
        if isinstance(node, Binary) and node.op in ("add", "sub"):
            if self.is_period(node.left) and self.info(node.right).type == "interval":
                return True
            return node.op == "add" and self.info(node.left).type == "interval" and self.is_period(node.right)
        return False

    def period_ends(self, side: Node) -> tuple[Callable[[], str], Callable[[], str]]:
        """SQL makers of the start and end of an instant or interval (an instant t is [t, t]; a stored instant has
        no end). Each call emits afresh: parameters must appear once each, in textual order."""
        if isinstance(side, Literal) and side.kind == "period":
            assert isinstance(side.value, tuple)
            start, end = (Literal(t, "datetime") for t in side.value)
            return (lambda: self.emit(start)), (lambda: self.emit(end))
        if isinstance(side, Binary) and self.is_period(side):
            period, duration = (side.left, side.right) if self.is_period(side.left) else (side.right, side.left)
            s, e = self.period_ends(period)
            sign = "+" if side.op == "add" else "-"
            if period is side.left:
                return (lambda: f"({s()} {sign} {self.emit(duration)})"), (
                    lambda: f"({e()} {sign} {self.emit(duration)})"
                )
            return (lambda: f"({self.emit(duration)} + {s()})"), (lambda: f"({self.emit(duration)} + {e()})")
        if self.is_period(side):
            assert isinstance(side, Path)
            r = self.resolve(side.segments)
            end_sql = (r.alt or {})["end"]
            return (lambda: r.sql), (lambda: f"coalesce({end_sql}, {r.sql})")
        return (lambda: self.emit(side, "datetime")), (lambda: self.emit(side, "datetime"))

    def period_comparison(self, node: Binary) -> str:
        """A comparison where a side is a time interval [s, e) (an instant t is [t, t]), as FROST-Server defines
        it (StaTimeIntervalWrapper, StaDateTimeWrapper; the same formulas whichever side is an instant): lt is
        "ends no later than the other starts, and starts before it", gt "starts no earlier than the other ends, and
        after it starts", le/ge compare both ends, eq is the same start and end (an interval equals no instant) and
        ne differs at both ends. Each condition bounds the start of a stored interval, so that an index serves."""
        return self.time_formula(node.op, node.left, node.right)

    def time_relation(self, node: Call) -> str:
        """before, after, meets, during, overlaps, starts, finishes of two instants or intervals, as FROST-Server
        evaluates them (TimeFieldWrapper); ``during(a, b)``: a lies in the interval b, which must be one."""
        a, b = node.args
        if node.name == "during" and not self.is_period(b):
            raise FilterError(f"during() needs a time interval as argument 2, in '{_snippet(node)}'")
        return self.time_formula(node.name, a, b)

    def time_formula(self, name: str, a: Node, b: Node) -> str:
        """``_TIME_FORMULAS[name]`` of a = [s1, e1) and b = [s2, e2), each end emitted afresh where it appears."""
        (s1, e1), (s2, e2) = self.period_ends(a), self.period_ends(b)
        ends = {"s1": s1, "e1": e1, "s2": s2, "e2": e2}
        return re.sub(r"\b([se][12])\b", lambda m: ends[m.group(1)](), _TIME_FORMULAS[name])

    def distance_within(self, node: Binary, target: str) -> str | None:
        """``geo.distance(a, b) lt|le d`` as the engine's index-assisted form, where it has one (``{a}``, ``{b}``,
        ``{d}`` of its template emitted afresh at each place, so that parameters stay in textual order)."""
        left = node.left
        if node.op not in ("lt", "le") or not isinstance(left, Call) or left.name != "geo.distance":
            return None
        template = self.ctx.distance_within(node.op == "le")
        if template is None:
            return None
        targets = self.call_targets(left)

        def part(m: re.Match[str]) -> str:
            name = m.group(1)
            if name == "d":
                return self.emit(node.right, target)
            i = 0 if name == "a" else 1
            return self.emit(left.args[i], targets[i])

        return re.sub(r"\{([abd])\}", part, template)

    def null_test(self, node: Binary) -> str:
        left, right = node.left, node.right
        if self.info(left).type == "null" and self.info(right).type == "null":
            return f"CAST({self.ctx.param(node.op == 'eq')} AS BOOLEAN)"
        other = right if self.info(left).type == "null" else left
        if isinstance(other, Path) and self.resolve(other.segments).type == "result":
            alt = self.resolve(other.segments).alt or {}
            alts = [sql for kind, sql in alt.items() if kind != "null"]
            if not alts:
                raise FilterError(f"'{_snippet(other)}' cannot be compared with null")
            # "null": how the context tells a null value from one of a kind no alternative reads (an object)
            is_null = alt.get("null") or "(" + " AND ".join(f"{sql} IS NULL" for sql in alts) + ")"
        else:
            is_null = f"({self.emit(other)} IS NULL)"
        return is_null if node.op == "eq" else f"(NOT {is_null})"

    def arithmetic(self, node: Binary) -> str:
        kind = self.arithmetic_type(node)
        if kind == "period":
            raise FilterError(f"a time interval moved by a duration can only be compared, in '{_snippet(node)}'")
        if kind == "interval" and self.is_period(node.left):  # the duration from its start (FROST-Server)
            return f"({self.period_ends(node.left)[0]()} - {self.period_ends(node.right)[0]()})"
        want = "number" if kind == "number" else None
        left = self.emit(node.left, want)
        right = self.emit(node.right, want)
        if node.op == "div":  # always true division, and NULL rather than an error on zero
            return self.ctx.arithmetic("div", f"CAST({left} AS DOUBLE PRECISION)", f"NULLIF({right}, 0)")
        if node.op == "mod":  # PostgreSQL has no double % double; DECIMAL(38, 9) works in both engines
            return f"mod(CAST({left} AS DECIMAL(38, 9)), NULLIF(CAST({right} AS DECIMAL(38, 9)), 0))"
        if kind == "number":
            return self.ctx.arithmetic(node.op, left, right)
        return f"({left} {'+' if node.op == 'add' else '-'} {right})"

    def call(self, node: Call) -> str:
        name = node.name
        targets = self.call_targets(node)
        exists = _merge(*(self.info(a).exists for a in node.args))
        if name in TIME_RELATIONS:
            return self.wrap(self.time_relation(node), exists)
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
        return self.wrap(sql, exists) if SIGNATURES[name][2] == "boolean" else sql


def compile_filter(node: Node, ctx: SqlContext) -> str:
    """Type-check a parsed filter and compile it to a SQL boolean expression (see :class:`SqlContext`)."""
    if depth(node) > MAX_DEPTH:
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
    if depth(node) > MAX_DEPTH:
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
