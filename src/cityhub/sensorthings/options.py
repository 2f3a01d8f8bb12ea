"""SensorThings query options: ``$filter $select $expand $orderby $top $skip $count $resultFormat``.

``$expand`` nests: ``Datastreams($filter=...;$top=5;$expand=Observations($top=1)),Locations`` and the
path form ``Datastreams/Observations`` are both accepted, each level with its own options.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cityhub import model
from cityhub.errors import ProblemError, bad_request
from cityhub.sensorthings.filter import Node, parse_filter

KNOWN = {"$filter", "$select", "$expand", "$orderby", "$top", "$skip", "$count", "$resultFormat"}


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
    et: model.EntityType, raw: dict[str, str], *, max_top: int, default_top: int, nested: bool = False
) -> QueryOptions:
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
        opts.expand = _parse_expand(et, raw["$expand"], max_top=max_top)
    return opts


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


def _parse_expand(et: model.EntityType, text: str, *, max_top: int) -> list[Expand]:
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
        _add_expand(et, out, path, opts_text, max_top)
    return out


def _add_expand(et: model.EntityType, out: list[Expand], path: list[str], opts_text: str, max_top: int) -> None:
    nav = et.nav(path[0].strip())
    if nav is None:
        raise bad_request(f"{et.name} has no navigation property {path[0]!r}", field="$expand")
    target = model.entity(nav.target)
    existing = next((e for e in out if e.nav is nav), None)
    if existing is None:
        existing = Expand(nav, QueryOptions(top=None))
        out.append(existing)
    if len(path) > 1:
        _add_expand(target, existing.options.expand, path[1:], opts_text, max_top)
        return
    if opts_text:
        raw: dict[str, str] = {}
        for part in _split_top(opts_text, ";"):
            if "=" not in part:
                raise bad_request(f"bad nested option {part!r} in $expand", field="$expand")
            k, v = part.split("=", 1)
            raw[k.strip()] = v
        nested = parse_options(target, raw, max_top=max_top, default_top=max_top, nested=True)
        nested.expand = existing.options.expand + nested.expand
        existing.options = nested
