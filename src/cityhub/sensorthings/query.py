"""Portable SQL for SensorThings reads: entity columns, URL navigation, ``$filter`` and ``$orderby``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cityhub.errors import bad_request
from cityhub.sensorthings import model
from cityhub.sensorthings.filter import FilterError, Path, Resolved, compile_expression, compile_filter
from cityhub.sensorthings.options import OrderBy
from cityhub.store.base import Dialect
from cityhub.store.schema import READ_VIEW


def read_table(et: model.EntityType) -> str:
    return READ_VIEW.get(et.table, et.table)


def columns(et: model.EntityType) -> list[str]:
    """Columns fetched for an entity, in a fixed order (see ``row_to_dict``)."""
    cols = ["id"]
    for p in et.props:
        if p.kind == model.RESULT:
            cols += ["result_number", "result_string", "result_json"]
        else:
            cols.append(p.column)
            if p.column_end:
                cols.append(p.column_end)
    cols += [n.fk for n in et.navs if n.fk]
    return cols


@dataclass
class SqlBuilder:
    """Collects bound parameters and implements the filter compiler's SqlContext for one entity alias."""

    dialect: Dialect
    params: list[Any] = field(default_factory=list)
    _alias_no: int = 0

    def param(self, value: object) -> str:
        self.params.append(value)
        return self.dialect.placeholder

    def alias(self) -> str:
        self._alias_no += 1
        return f"t{self._alias_no}"

    def context(self, et: model.EntityType, alias: str) -> FilterContext:
        return FilterContext(self, et, alias)


@dataclass
class FilterContext:
    builder: SqlBuilder
    et: model.EntityType
    alias: str

    # -- SqlContext protocol -------------------------------------------------------------------------
    def param(self, value: object) -> str:
        return self.builder.param(value)

    def json_value(self, base_sql: str, keys: tuple[str, ...], as_type: str) -> str:
        return self.builder.dialect.json_value(base_sql, keys, as_type)

    def geo(self, func: str, args: list[str]) -> str:
        return self.builder.dialect.geo(func, args)

    def geometry_literal(self, wkt: str) -> str:
        return self.builder.dialect.geometry_literal(self.param(wkt))

    def now(self) -> str:
        return self.builder.dialect.now()

    def resolve(self, path: tuple[str, ...]) -> Resolved:
        return self._resolve(self.et, self.alias, path, None)

    def _resolve(self, et: model.EntityType, alias: str, path: tuple[str, ...], exists: str | None) -> Resolved:
        head, rest = path[0], path[1:]
        if head in ("id", "@iot.id") and not rest:
            return Resolved(f"{alias}.id", "number", exists)
        prop = et.prop(head)
        if prop is not None:
            return self._prop(prop, alias, rest, exists)
        nav = et.nav(head)
        if nav is None:
            raise FilterError(f"{et.name} has no property or navigation {head!r}", 0)
        if not rest:
            raise FilterError(f"{'/'.join(path)} is an entity, not a value; name one of its properties", 0)
        target = model.entity(nav.target)
        inner = self.builder.alias()
        join = self._join(nav, et, alias, target, inner)
        template = f"EXISTS (SELECT 1 FROM {join} AND {{cond}})"
        exists = template if exists is None else exists.replace("{cond}", template)
        return self._resolve(target, inner, rest, exists)

    @staticmethod
    def _join(nav: model.Nav, et: model.EntityType, alias: str, target: model.EntityType, inner: str) -> str:
        table = f"{read_table(target)} {inner}"
        if nav.fk:
            return f"{table} WHERE {inner}.id = {alias}.{nav.fk}"
        if nav.remote_fk:
            return f"{table} WHERE {inner}.{nav.remote_fk} = {alias}.id"
        assert nav.link is not None
        link, this_col, other_col = nav.link
        return (
            f"{link} {inner}_l JOIN {table} ON {inner}.id = {inner}_l.{other_col} "
            f"WHERE {inner}_l.{this_col} = {alias}.id"
        )

    def _prop(self, prop: model.Prop, alias: str, rest: tuple[str, ...], exists: str | None) -> Resolved:
        col = f"{alias}.{prop.column}"
        if prop.kind == model.JSON:
            return Resolved(col, "json", exists, None, rest)
        if rest:
            raise FilterError(f"{prop.name} has no members", 0)
        if prop.kind == model.RESULT:
            return Resolved(
                f"{alias}.result_number",
                "result",
                exists,
                {
                    "number": f"{alias}.result_number",
                    "string": f"{alias}.result_string",
                    "boolean": f"TRY_CAST({alias}.result_json AS BOOLEAN)",
                },
            )
        kind = {
            model.STRING: "string",
            model.URI: "string",
            model.DATETIME: "datetime",
            model.INTERVAL: "datetime",
            model.GEOMETRY: "geometry",
        }[prop.kind]
        return Resolved(col, kind, exists)


def filter_sql(builder: SqlBuilder, et: model.EntityType, alias: str, node: Any) -> str:
    return compile_filter(node, builder.context(et, alias))


def orderby_sql(builder: SqlBuilder, et: model.EntityType, alias: str, orderby: list[OrderBy]) -> str:
    parts = []
    ctx = builder.context(et, alias)
    for o in orderby:
        try:
            sqls = compile_value(o.expr, ctx)
        except FilterError as exc:
            raise bad_request(f"bad $orderby: {exc.detail}", field="$orderby") from None
        direction = "DESC NULLS FIRST" if o.descending else "ASC NULLS LAST"
        parts += [f"{sql} {direction}" for sql in sqls]
    parts.append(f"{alias}.id ASC")  # a stable order makes $skip paging well defined
    return ", ".join(parts)


def compile_value(node: Any, ctx: FilterContext) -> list[str]:
    """SQL for one $orderby expression; a bare ``result`` sorts numbers, then strings."""
    if isinstance(node, Path) and node.segments == ("result",):
        r = ctx.resolve(node.segments)
        assert r.alt is not None
        return [r.alt["number"], r.alt["string"]]
    return [compile_expression(node, ctx)]
