"""SensorThings query options: ``$filter $select $expand $orderby $top $skip $count $resultFormat``.

``$expand`` nests: ``Datastreams($filter=...;$top=5;$expand=Observations($top=1)),Locations`` and the
path form ``Datastreams/Observations`` are both accepted, each level with its own options. How deep it may
reach is a setting (``max_expand_depth``); a deeper or longer value is refused before it is parsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cityhub import model
from cityhub.errors import ProblemError, bad_request
from cityhub.sensorthings.filter import Node, parse_filter

KNOWN = {"$filter", "$select", "$expand", "$orderby", "$top", "$skip", "$count", "$resultFormat"}
# Far more than any useful $expand (options at every level included), and short enough that measuring one
# costs nothing.
MAX_EXPAND_LENGTH = 4_000


@dataclass
class OrderBy:
    expr: Node
    descending: bool = False


@dataclass
class Expand:
    nav: model.Nav
    options: QueryOptions


@dataclass
class QueryOptions:
    filter: Node | None = None
    select: list[str] | None = None
    expand: list[Expand] = field(default_factory=list)
    orderby: list[OrderBy] = field(default_factory=list)
    top: int | None = None
    skip: int = 0
    count: bool = False
    result_format: str | None = None


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses and quotes."""
    parts, depth, quote, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == "'":
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
            if depth < 0:
                raise bad_request("unbalanced ')'", field="$expand")
        elif not quote and depth == 0 and ch == sep:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0 or quote:
        raise bad_request("unbalanced parentheses or quotes", field="$expand")
    parts.append(text[start:])
    return parts


def _int_option(name: str, value: str, *, minimum: int = 0) -> int:
    try:
        n = int(value)
    except ValueError:
        raise bad_request(f"{name} must be a non-negative integer, got {value!r}", field=name) from None
    if n < minimum:
        raise bad_request(f"{name} must be ≥ {minimum}, got {n}", field=name)
    return n


def parse_options(
    et: model.EntityType,
    raw: dict[str, str],
    *,
    max_top: int,
    default_top: int,
    max_expand_depth: int,
    nested: bool = False,
    depth: int = 0,
) -> QueryOptions:
    """``depth``: the $expand level these options belong to (0 for the request's own)."""
    opts = QueryOptions()
    for key in raw:
        if key.startswith("$") and key not in KNOWN:
            raise bad_request(f"unknown query option {key}; known: {sorted(KNOWN)}", field=key)
    if "$filter" in raw:
        opts.filter = parse_filter(raw["$filter"])
    if "$select" in raw:
        opts.select = _parse_select(et, raw["$select"])
    if "$orderby" in raw:
        opts.orderby = _parse_orderby(raw["$orderby"])
    if "$top" in raw:
        opts.top = _int_option("$top", raw["$top"])
        if opts.top > max_top:
            raise bad_request(f"$top may be at most {max_top}", field="$top")
    else:
        opts.top = None if nested else default_top
    if "$skip" in raw:
        opts.skip = _int_option("$skip", raw["$skip"])
    if "$count" in raw:
        if raw["$count"] not in ("true", "false"):
            raise bad_request("$count must be true or false", field="$count")
        opts.count = raw["$count"] == "true"
    if "$resultFormat" in raw:
        if raw["$resultFormat"] not in ("dataArray", "default"):
            raise bad_request("$resultFormat must be dataArray", field="$resultFormat")
        if raw["$resultFormat"] == "dataArray":
            if et is not model.OBSERVATION:
                raise bad_request("$resultFormat=dataArray applies to Observations", field="$resultFormat")
            opts.result_format = "dataArray"
    if "$expand" in raw:
        if not nested:
            check_expand_size(raw["$expand"], max_expand_depth)
        opts.expand = _parse_expand(et, raw["$expand"], _Limits(max_top, max_expand_depth), depth)
    return opts


def check_expand_size(text: str, max_depth: int) -> None:
    """Refuse an ``$expand`` too long or too deep to serve, before parsing it: the parser recurses once per
    level, and every level multiplies the response (``Things → Datastreams → Thing → …`` cycles forever)."""
    if len(text) > MAX_EXPAND_LENGTH:
        raise bad_request(
            f"$expand is {len(text):,} characters long; this hub allows {MAX_EXPAND_LENGTH:,}", field="$expand"
        )
    depth = expand_depth(text)
    if depth > max_depth:
        raise _too_deep(depth, max_depth)


def _too_deep(depth: int, max_depth: int) -> ProblemError:
    return bad_request(
        f"$expand is nested {depth} levels deep; this hub allows {max_depth} "
        "(each path segment and each nested $expand is a level)",
        field="$expand",
    )


_LIST, _NAME, _VALUE = range(3)  # what expand_depth is reading


@dataclass
class _Frame:
    mode: int
    base: int
    segments: int = 1
    start: int = 0
    parens: int = 0


def expand_depth(text: str) -> int:
    """How many levels an ``$expand`` value reaches, path segments (``a/b``) and nested ``$expand`` options both
    counting, in one pass without recursion, so that any value can be measured before it is parsed.

    It splits as the parser does: at ``,``/``;``/``/`` outside quotes and outside the parentheses of other
    options' values. A malformed value may measure deeper than it parses; the parser refuses it either way.
    """
    deepest = 0
    # One frame per open context: an $expand list whose items start at level `base`; or the options of an item
    # at level `base`, reading an option's name (from `start`) or skipping another option's value (`parens`
    # open in it).
    stack: list[_Frame] = [_Frame(_LIST, 0)]
    quote = False
    for i, ch in enumerate(text):
        if ch == "'":
            quote = not quote
            continue
        if quote:
            continue
        top = stack[-1]
        if top.mode == _LIST:
            if ch == "/":
                top.segments += 1
            elif ch == ",":
                top.segments = 1
            elif ch == "(":
                stack.append(_Frame(_NAME, top.base + top.segments, start=i + 1))
            elif ch in ");":  # the end of a nested $expand value, and with ")" of its item's options too
                stack.pop()
                if len(stack) < 2:
                    break  # unbalanced: the parser says so
                if ch == ")":
                    stack.pop()
                else:
                    stack[-1].start = i + 1
            elif not ch.isspace():
                deepest = max(deepest, top.base + top.segments)
        elif top.mode == _NAME:
            if ch == "=":
                if text[top.start : i].strip() == "$expand":
                    stack.append(_Frame(_LIST, top.base))
                else:
                    top.mode, top.parens = _VALUE, 0
            elif ch == ";":
                top.start = i + 1
            elif ch == ")":
                stack.pop()
            elif ch == "(":
                top.mode, top.parens = _VALUE, 1
        elif ch == "(":
            top.parens += 1
        elif ch == ")":
            if top.parens == 0:
                stack.pop()
            else:
                top.parens -= 1
        elif ch == ";" and top.parens == 0:
            top.mode, top.start = _NAME, i + 1
    return deepest


@dataclass
class _Limits:
    max_top: int
    max_depth: int


def _parse_select(et: model.EntityType, text: str) -> list[str]:
    names = []
    for part in text.split(","):
        name = part.strip()
        if name in ("id", "@iot.id"):
            names.append("@iot.id")
        elif name in ("@iot.selfLink", "selfLink"):
            names.append("@iot.selfLink")
        elif et.prop(name) or et.nav(name):
            names.append(name)
        elif "/" in name and (prop := et.prop(name.split("/", 1)[0])) is not None and prop.kind == model.JSON:
            # A member of a JSON property (OData 4.01 URL Conventions §5.1.3: a path to a property of a complex or
            # open type): shown inside its property, alone.
            if not all(name.split("/")[1:]):
                raise bad_request(f"empty member name in {name!r}", field="$select")
            names.append(name)
        else:
            raise bad_request(f"{et.name} has no property {name!r}", field="$select")
    return names


def _parse_orderby(text: str) -> list[OrderBy]:
    out = []
    for part in _split_top(text, ","):
        words = part.strip().rsplit(" ", 1)
        desc = False
        expr_text = part.strip()
        if len(words) == 2 and words[1].lower() in ("asc", "desc"):
            expr_text, desc = words[0].strip(), words[1].lower() == "desc"
        if not expr_text:
            raise bad_request("empty $orderby item", field="$orderby")
        try:
            expr = parse_filter(expr_text)
        except ProblemError as exc:
            raise bad_request(f"bad $orderby item {expr_text!r}: {exc.detail}", field="$orderby") from None
        out.append(OrderBy(expr, desc))
    return out


def _parse_expand(et: model.EntityType, text: str, limits: _Limits, depth: int) -> list[Expand]:
    out: list[Expand] = []
    for item in _split_top(text, ","):
        item = item.strip()
        if not item:
            raise bad_request("empty $expand item", field="$expand")
        opts_text = ""
        if "(" in item:
            if not item.endswith(")"):
                raise bad_request(f"bad $expand item {item!r}", field="$expand")
            item, opts_text = item[: item.index("(")], item[item.index("(") + 1 : -1]
        path = item.split("/")
        _add_expand(et, out, path, opts_text, limits, depth + 1)
    return out


def _add_expand(
    et: model.EntityType, out: list[Expand], path: list[str], opts_text: str, limits: _Limits, depth: int
) -> None:
    if depth > limits.max_depth:  # check_expand_size measured it first; this keeps the recursion bounded anyway
        raise _too_deep(depth, limits.max_depth)
    nav = et.nav(path[0].strip())
    if nav is None:
        raise bad_request(f"{et.name} has no navigation property {path[0]!r}", field="$expand")
    target = model.entity(nav.target)
    existing = next((e for e in out if e.nav is nav), None)
    if existing is None:
        existing = Expand(nav, QueryOptions(top=None))
        out.append(existing)
    if len(path) > 1:
        _add_expand(target, existing.options.expand, path[1:], opts_text, limits, depth + 1)
        return
    if opts_text:
        raw: dict[str, str] = {}
        for part in _split_top(opts_text, ";"):
            if "=" not in part:
                raise bad_request(f"bad nested option {part!r} in $expand", field="$expand")
            k, v = part.split("=", 1)
            raw[k.strip()] = v
        nested = parse_options(
            target,
            raw,
            max_top=limits.max_top,
            default_top=limits.max_top,
            max_expand_depth=limits.max_depth,
            nested=True,
            depth=depth,
        )
        nested.expand = existing.options.expand + nested.expand
        existing.options = nested
