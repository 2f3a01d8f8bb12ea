"""Portable SQL for SensorThings reads: entity columns, resource paths, ``$filter``, ``$orderby``, ``$expand``,
counts; every value bound through the dialect's placeholder. The only SQL of the read path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cityhub import model
from cityhub.errors import bad_request
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
    """Collects bound parameters for one statement; ``context`` gives the filter compiler's SqlContext for
    an entity alias. Every placeholder is the dialect's, so the SQL suits the backend's driver."""

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

    def json_contains(self, base_sql: str, keys: tuple[str, ...], value_sql: str, as_type: str) -> str:
        return self.builder.dialect.json_contains(base_sql, keys, value_sql, as_type)

    def geo(self, func: str, args: list[str]) -> str:
        return self.builder.dialect.geo(func, args)

    def distance_within(self, inclusive: bool) -> str | None:
        return self.builder.dialect.distance_within(inclusive)

    def arithmetic(self, op: str, left: str, right: str) -> str:
        return self.builder.dialect.arithmetic(op, left, right)

    def geometry_literal(self, wkt: str) -> str:
        return self.builder.dialect.geometry_literal(self.param(wkt))

    def now(self) -> str:
        return self.builder.dialect.now()

    def resolve(self, path: tuple[str, ...]) -> Resolved:
        return self._resolve(self.et, self.alias, path, None)

    def related(self, path: tuple[str, ...]) -> str | None:
        walked = self._walk(path)
        return None if walked is None else walked[0].replace("{cond}", "TRUE")

    def scope(self, path: tuple[str, ...]) -> tuple[str, FilterContext]:
        walked = self._walk(path)
        if walked is None:
            raise FilterError(f"{'/'.join(path)} is not a navigation path to take any/all of", 0)
        exists, nav, et, alias = walked
        if nav.fk:
            raise FilterError(f"any/all take a collection; {'/'.join(path)} is a single entity", 0)
        return exists, FilterContext(self.builder, et, alias)

    def _walk(self, path: tuple[str, ...]) -> tuple[str, model.Nav, model.EntityType, str] | None:
        """The EXISTS template over where navigation ``path`` leads, its last navigation, and the entity type and
        alias reached; None unless every segment is a navigation."""
        et, alias, exists, nav = self.et, self.alias, None, None
        for head in path:
            nav = et.nav(head)
            if nav is None:
                return None
            et, alias, exists = self._step(nav, et, alias, exists)
        return None if nav is None or exists is None else (exists, nav, et, alias)

    def _step(
        self, nav: model.Nav, et: model.EntityType, alias: str, exists: str | None
    ) -> tuple[model.EntityType, str, str]:
        """One navigation further: the target type, its alias, and ``exists`` with the join to it nested in."""
        target = model.entity(nav.target)
        inner = self.builder.alias()
        template = f"EXISTS (SELECT 1 FROM {self._join(nav, et, alias, target, inner)} AND {{cond}})"
        return target, inner, template if exists is None else exists.replace("{cond}", template)

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
        target, inner, exists = self._step(nav, et, alias, exists)
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
            dialect = self.builder.dialect
            return Resolved(
                f"{alias}.result_number",
                "result",
                exists,
                {
                    "number": f"{alias}.result_number",
                    # Compared with a string, a number is its JSON text (an integer's exact one), as FROST-Server
                    # does: result eq '3' finds the result 3.
                    "string": f"""coalesce({alias}.result_string, CASE WHEN {alias}.result_number IS NOT NULL
                        THEN coalesce({alias}.result_json, {dialect.double_text(f"{alias}.result_number")}) END)""",
                    # result_json of a number is its exact text ('1' would cast to true)
                    "boolean": f"""CASE WHEN {alias}.result_number IS NULL
                        THEN {dialect.try_cast(f"{alias}.result_json", "BOOLEAN")} END""",
                    # an explicit null (an OM_Observation's), not an object that no alternative reads
                    "null": f"""({alias}.result_number IS NULL AND {alias}.result_string IS NULL
                        AND ({alias}.result_json IS NULL OR {alias}.result_json = 'null'))""",
                },
            )
        kind = {
            model.STRING: "string",
            model.URI: "string",
            model.DATETIME: "datetime",
            model.INTERVAL: "datetime",
            model.GEOMETRY: "geometry",
        }[prop.kind]
        if kind == "geometry":
            col = self.builder.dialect.geometry_column(alias, prop.column)
        if prop.kind == model.INTERVAL and prop.column_end:
            # A time interval: its start stands for it in functions and $orderby; comparisons use both ends.
            return Resolved(col, kind, exists, {"end": f"{alias}.{prop.column_end}"})
        return Resolved(col, kind, exists)


def filter_sql(builder: SqlBuilder, et: model.EntityType, alias: str, node: Any) -> str:
    return compile_filter(node, builder.context(et, alias))


def orderby_sql(
    builder: SqlBuilder, et: model.EntityType, alias: str, orderby: list[OrderBy], tie: str | None = None
) -> str:
    """ORDER BY for ``$orderby``, ending in ``tie`` (by default the entity's id): a stable order makes ``$skip``
    paging well defined."""
    parts = []
    ctx = builder.context(et, alias)
    for o in orderby:
        try:
            sqls = compile_value(o.expr, ctx)
        except FilterError as exc:
            raise bad_request(f"bad $orderby: {exc.detail}", field="$orderby") from None
        direction = "DESC NULLS FIRST" if o.descending else "ASC NULLS LAST"
        parts += [f"{sql} {direction}" for sql in sqls]
    parts.append(tie or f"{alias}.id ASC")
    return ", ".join(parts)


def compile_value(node: Any, ctx: FilterContext) -> list[str]:
    """SQL for one $orderby expression; a bare ``result`` sorts numbers, then strings."""
    if isinstance(node, Path) and node.segments == ("result",):
        r = ctx.resolve(node.segments)
        assert r.alt is not None
        return [r.alt["number"], r.alt["string"]]
    return [compile_expression(node, ctx)]


# -- resource paths and reads -------------------------------------------------------------------------------
class PathStep(Protocol):
    """One segment of a resource path (``cityhub.sensorthings.service.paths.Step``)."""

    et: model.EntityType
    nav: model.Nav | None
    id: int | None


def chain_where(builder: SqlBuilder, steps: Sequence[PathStep], alias: str) -> str:
    """SQL condition on ``alias`` selecting the entities the path's last step addresses."""
    conds = []
    last = steps[-1]
    if len(steps) > 1:
        prev_ids = _ids_sql(builder, steps[:-1])
        nav = last.nav
        assert nav is not None
        if nav.remote_fk:
            conds.append(f"{alias}.{nav.remote_fk} IN ({prev_ids})")
        elif nav.fk:
            prev_table = steps[-2].et.table
            conds.append(f"{alias}.id IN (SELECT {nav.fk} FROM {prev_table} WHERE id IN ({prev_ids}))")
        else:
            assert nav.link is not None
            link, this_col, other_col = nav.link
            conds.append(f"{alias}.id IN (SELECT {other_col} FROM {link} WHERE {this_col} IN ({prev_ids}))")
    if last.id is not None:
        conds.append(f"{alias}.id = {builder.param(last.id)}")
    return " AND ".join(conds) if conds else "TRUE"


def _ranked_source(builder: SqlBuilder, steps: Sequence[PathStep]) -> tuple[str, str, str] | None:
    """For a collection path whose last navigation is ordered (a MultiDatastream's ObservedProperties): the FROM
    clause joining the link rows (an entity linked twice is read twice), the condition on them, and the order of
    the links (the tie-breaker of ``orderby_sql``). None for any other path, which ``chain_where`` serves."""
    last = steps[-1]
    nav = last.nav
    if nav is None or not nav.ordered or last.id is not None:
        return None
    assert nav.link is not None and nav.rank is not None
    link, this_col, other_col = nav.link
    source = f"{read_table(last.et)} e JOIN {link} r ON r.{other_col} = e.id"
    return source, f"r.{this_col} IN ({_ids_sql(builder, steps[:-1])})", f"r.{nav.rank[0]} ASC"


def path_source(builder: SqlBuilder, steps: Sequence[PathStep]) -> tuple[str | None, str | None, str]:
    """(FROM clause, order of the links, WHERE) of the entities a path addresses: ``_ranked_source``'s for a path
    that ends in an ordered navigation, else the entity's own table (None, None) with ``chain_where``."""
    ranked = _ranked_source(builder, steps)
    if ranked is None:
        return None, None, chain_where(builder, steps, "e")
    return ranked[0], ranked[2], ranked[1]


def _ids_sql(builder: SqlBuilder, steps: Sequence[PathStep]) -> str:
    last = steps[-1]
    if len(steps) == 1 and last.id is not None:
        return builder.param(last.id)
    alias = builder.alias()
    return f"SELECT {alias}.id FROM {read_table(last.et)} {alias} WHERE {chain_where(builder, steps, alias)}"


def select_sql(
    et: model.EntityType,
    where: str,
    order: str | None = None,
    limit: int | None = None,
    offset: int = 0,
    key: Sequence[str] | None = None,
    source: str | None = None,
) -> str:
    """The entity columns of ``read_table(et) e`` rows matching ``where``.

    With ``key`` (the columns of a unique index, see ``Dialect.row_key``) and a page to cut, the page is chosen by
    the key alone and only its rows are read whole: a filter that matches 100,000 Observations then sorts 100,000
    keys an index holds, not 100,000 rows read from as many pages. ``order`` must then hold no parameter, since
    it is written twice. ``source`` replaces ``read_table(et) e`` as the FROM clause (see ``_ranked_source``)."""
    cols = ", ".join("e." + c for c in columns(et))
    table = read_table(et)
    if source is None and key and order is not None and limit is not None:
        keys = ", ".join("e." + k for k in key)
        page = f"SELECT {keys} FROM {table} e WHERE {where} ORDER BY {order} LIMIT {int(limit)} OFFSET {int(offset)}"
        return f"SELECT {cols} FROM {table} e WHERE ({keys}) IN ({page}) ORDER BY {order}"
    sql = f"SELECT {cols} FROM {source or table + ' e'} WHERE {where}"
    if order is not None:
        sql += f" ORDER BY {order}"
    if limit is not None:
        sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
    return sql


def count_sql(et: model.EntityType, where: str, source: str | None = None) -> str:
    return f"SELECT count(*) FROM {source or read_table(et) + ' e'} WHERE {where}"


def ids_sql(et: model.EntityType, where: str) -> str:
    return f"SELECT e.id FROM {read_table(et)} e WHERE {where}"


def expand_sql(
    builder: SqlBuilder,
    nav: model.Nav,
    target: model.EntityType,
    parent_ids: Sequence[int],
    fk_ids: Sequence[int],
    filter_node: Any,
    orderby: list[OrderBy],
    top: int,
    skip: int,
    limit: int | None = None,
) -> str:
    """One statement for a ``$expand`` level over all parents: the children of each parent (``_parent``), ranked
    by ``$orderby`` and cut to ``$skip``/``$top`` per parent with a window function; at most ``limit`` rows in
    all (the response's remaining entity budget)."""
    # Placeholders are positional: the ORDER BY (inside the window) comes first in the SQL text.
    order = orderby_sql(builder, target, "e", orderby, f"l.{nav.rank[0]} ASC" if nav.ordered and nav.rank else None)
    parent_expr, from_, where = _expand_source(builder, nav, target, parent_ids, fk_ids, filter_node)
    cols = ", ".join("e." + c for c in columns(target))
    return f"""SELECT * FROM (
                SELECT {parent_expr} AS _parent, {cols},
                       row_number() OVER (PARTITION BY {parent_expr} ORDER BY {order}) AS _rn
                FROM {from_} WHERE {where}) x
              WHERE _rn > {int(skip)} AND _rn <= {int(skip + top)}
              ORDER BY _parent, _rn""" + (f" LIMIT {int(limit)}" if limit is not None else "")


def expand_count_sql(
    builder: SqlBuilder,
    nav: model.Nav,
    target: model.EntityType,
    parent_ids: Sequence[int],
    filter_node: Any,
) -> str:
    """How many children (after ``$filter``) each parent has under a to-many ``$expand``: (``_parent``, count)
    rows, for ``<nav>@iot.count`` and to tell whether a parent's page is its last."""
    parent_expr, from_, where = _expand_source(builder, nav, target, parent_ids, (), filter_node)
    return f"SELECT {parent_expr} AS _parent, count(*) FROM {from_} WHERE {where} GROUP BY {parent_expr}"


def _expand_source(
    builder: SqlBuilder,
    nav: model.Nav,
    target: model.EntityType,
    parent_ids: Sequence[int],
    fk_ids: Sequence[int],
    filter_node: Any,
) -> tuple[str, str, str]:
    """The parent key, FROM and WHERE of an ``$expand`` level over all parents."""
    if nav.fk:
        parent_expr, where = "e.id", f"e.id IN ({', '.join(builder.param(i) for i in fk_ids) or 'NULL'})"
    elif nav.remote_fk:
        parent_expr = f"e.{nav.remote_fk}"
        where = f"e.{nav.remote_fk} IN ({', '.join(builder.param(i) for i in parent_ids)})"
    else:
        assert nav.link is not None
        this_col = nav.link[1]
        parent_expr = f"l.{this_col}"
        where = f"l.{this_col} IN ({', '.join(builder.param(i) for i in parent_ids)})"
    if filter_node is not None:
        where += " AND (" + filter_sql(builder, target, "e", filter_node) + ")"
    from_ = f"{read_table(target)} e"
    if nav.link:
        link = nav.link[0]
        if nav.rank and not nav.ordered:
            # The other side of a ranked link lists each entity once, however often it is linked to it.
            link = f"(SELECT DISTINCT {nav.link[1]}, {nav.link[2]} FROM {link})"
        from_ = f"{link} l JOIN {from_} ON e.id = l.{nav.link[2]}"
    return parent_expr, from_, where
