"""Reading: a resource path with query options ($filter, $orderby, $top/$skip, $count, nested $expand,
$select, dataArray) compiled to SQL through the query builder (placeholders from the store's dialect).

Expanded collections are paged like top-level ones: each parent gets at most the level's ``$top`` children
(``default_top`` when none is given) and a ``<nav>@iot.nextLink`` to the rest. One response holds at most
``max_response_entities`` entities, the page and everything expanded in it, counted as often as they are
shown; a request that would pass it is refused with a 400 as soon as a level's rows pass it, before the
deeper levels are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cityhub import model
from cityhub.errors import ProblemError, bad_request, not_found
from cityhub.sensorthings.filter.query import (
    SqlBuilder,
    chain_where,
    count_sql,
    expand_count_sql,
    expand_sql,
    filter_sql,
    ids_sql,
    orderby_sql,
    path_source,
    select_sql,
)
from cityhub.sensorthings.options import Expand, QueryOptions
from cityhub.sensorthings.service.base import ServiceBase
from cityhub.sensorthings.service.paths import Resource, Step, next_link
from cityhub.sensorthings.service.serialize import MISSING, data_array, json_member, row_to_dict, self_link, shape
from cityhub.store.base import QueryError

Pair = tuple[dict[str, Any], dict[str, Any]]  # an entity's JSON properties and its to-one foreign keys


@dataclass
class _Budget:
    """Entities one response may still hold. An entity counts once for every place the response shows it: the
    Datastream expanded under 1,000 Observations is 1,000 entities of JSON, though it is read once."""

    limit: int
    used: int = 0

    @property
    def left(self) -> int:
        return self.limit - self.used

    def spend(self, n: int, field: str) -> None:
        self.used += n
        if self.used > self.limit:
            raise self.exceeded(field)

    def exceeded(self, field: str) -> ProblemError:
        if field == "$top":
            return bad_request(
                f"this page would hold more than {self.limit:,} entities, the most one response may; "
                "ask for fewer with $top and follow @iot.nextLink for the rest",
                field="$top",
            )
        return bad_request(
            f"this response would hold more than {self.limit:,} entities (the page and everything $expand adds "
            "to it), the most one response may; ask for fewer with $top, or narrow the $expand: fewer levels, "
            "or $top and $filter inside it",
            field="$expand",
        )


class ReadMixin(ServiceBase):
    def _is_multi(self, stream_id: int) -> bool:
        """Whether a Datastream id names a MultiDatastream (the two share one id space)."""
        info = self.catalog.lookup(stream_id)
        return info is not None and info.components is not None

    def read(self, res: Resource, opts: QueryOptions, base: str, query_string: str) -> Any:
        try:
            return self._read(res, opts, base, query_string)
        except QueryError as exc:
            if opts.filter is not None or opts.orderby:
                raise QueryError(exc.detail, field="$filter" if opts.filter is not None else "$orderby") from None
            raise

    def _read(self, res: Resource, opts: QueryOptions, base: str, query_string: str) -> Any:
        et = res.et
        if _shows_datastreams(et, opts) and self._current.tx is None:  # a change set folded at its start
            self.store.flush_derived()  # Datastream.phenomenonTime comes from the latest-value table
        b = SqlBuilder(self.store.dialect)
        if res.member is None:
            source, tie, where = path_source(b, res.steps)
        else:
            source, tie, where = None, None, chain_where(b, res.steps, "e")
        self._check_parents_exist(res)
        if res.member is not None or not res.is_collection:
            rows = self._query(select_sql(et, where), b.params)
            if not rows:
                raise not_found(f"{et.name} not found", field="path")
            entity, fks = row_to_dict(et, rows[0])
            if res.member is not None:
                name = "@iot.id" if res.member == "id" else res.member
                value = entity[name]
                if res.keys:
                    value = _member(value, res.keys, res.key_name or name)
                    name = res.key_name or name
                # OData 4.0 Part 1 §11.2.4.1: a null property is 204 No Content, whether or not $value asks for
                # it raw.
                if res.value or value is None:
                    return ("raw", value)
                return {name: value}
            if res.ref:
                return {"@iot.selfLink": self_link(base, et, entity["@iot.id"])}
            budget = _Budget(self.max_response_entities)
            budget.spend(1, "$expand")
            self._expand(base, et, [(entity, fks)], [1], opts.expand, budget)
            return shape(base, et, entity, opts.select)
        if opts.filter is not None:
            where += " AND (" + filter_sql(b, et, "e", opts.filter) + ")"
        order = orderby_sql(b, et, "e", opts.orderby, tie)
        top = opts.top if opts.top is not None else self.default_top
        dialect = self.store.dialect
        key = dialect.row_key(et.table) if dialect.placeholder not in order else None
        sql = select_sql(et, where, order, top + 1, opts.skip, key, source)
        params = list(b.params)
        rows = self._query(sql, params)
        more = len(rows) > top
        rows = rows[:top]
        budget = _Budget(self.max_response_entities)
        budget.spend(len(rows), "$top")
        body: dict[str, Any] = {}
        if opts.count:
            cb = SqlBuilder(self.store.dialect)
            cwhere = path_source(cb, res.steps)[2]
            if opts.filter is not None:
                cwhere += " AND (" + filter_sql(cb, et, "e", opts.filter) + ")"
            body["@iot.count"] = self._query(count_sql(et, cwhere, source), cb.params)[0][0]
        if more and top > 0:  # $top=0 asks for the count only: a next page of nothing would never end
            body["@iot.nextLink"] = next_link(base, res, query_string, opts.skip + top, top)
        pairs = [row_to_dict(et, r) for r in rows]
        if res.ref:
            body["value"] = [{"@iot.selfLink": self_link(base, et, e["@iot.id"])} for e, _ in pairs]
            return body
        if opts.result_format == "dataArray":
            body["value"] = data_array(base, pairs, opts.select, self._is_multi)
            return body
        self._expand(base, et, pairs, [1] * len(pairs), opts.expand, budget)
        body["value"] = [shape(base, et, e, opts.select) for e, _ in pairs]
        return body

    def _check_parents_exist(self, res: Resource) -> None:
        for i, step in enumerate(res.steps[:-1]):
            if step.id is None:
                continue
            b = SqlBuilder(self.store.dialect)
            where = chain_where(b, res.steps[: i + 1], "e")
            if not self._query(ids_sql(step.et, where) + " LIMIT 1", b.params):
                raise not_found(f"{step.et.name}({step.id}) not found", field="path")

    def _expand(
        self,
        base: str,
        et: model.EntityType,
        pairs: list[Pair],
        shown: list[int],
        expands: list[Expand],
        budget: _Budget,
    ) -> None:
        """Expand ``pairs`` level by level; ``shown[i]``: how many times the response shows ``pairs[i]``."""
        if not pairs:
            return
        for ex in expands:
            nav, opts = ex.nav, ex.options
            target = model.entity(nav.target)
            b = SqlBuilder(self.store.dialect)
            ids = sorted({e["@iot.id"] for e, _ in pairs})
            wanted = sorted({fks[nav.name] for _, fks in pairs if fks.get(nav.name) is not None}) if nav.fk else []
            top = opts.top if opts.top is not None else self.default_top
            # Every row read is shown at least once, so one more row than the budget has left already passes it:
            # the database never hands over more than that.
            sql = expand_sql(b, nav, target, ids, wanted, opts.filter, opts.orderby, top, opts.skip, budget.left + 1)
            rows = self._query(sql, b.params)
            if len(rows) > budget.left:
                raise budget.exceeded("$expand")
            children: dict[Any, list[Pair]] = {}
            for r in rows:
                children.setdefault(r[0], []).append(row_to_dict(target, r[1:-1]))
            # The children under one key (a to-one target's id, or a parent's id) are shown under every parent
            # with that key, as often as that parent is shown.
            times: dict[Any, int] = {}
            for (entity, fks), n in zip(pairs, shown, strict=True):
                key = fks.get(nav.name) if nav.fk else entity["@iot.id"]
                times[key] = times.get(key, 0) + n
            all_children = [c for cs in children.values() for c in cs]
            child_shown = [times.get(k, 0) for k, cs in children.items() for _ in cs]
            budget.spend(sum(child_shown), "$expand")
            self._expand(base, target, all_children, child_shown, opts.expand, budget)
            # A to-many level counts each parent's children when $count asks for it, or when a page is full and
            # only the count tells whether more follow (a nextLink on a last page would lead to nothing).
            totals: dict[Any, int] = {}
            if not nav.fk and (opts.count or (top > 0 and any(len(cs) == top for cs in children.values()))):
                cb = SqlBuilder(self.store.dialect)
                totals = {r[0]: int(r[1]) for r in self._query(expand_count_sql(cb, nav, target, ids, opts.filter),
                                                                cb.params)}  # fmt: skip
            for entity, fks in pairs:
                if nav.fk:
                    found = children.get(fks.get(nav.name))
                    entity[nav.name] = shape(base, target, found[0][0], opts.select) if found else None
                else:
                    kids = children.get(entity["@iot.id"], [])
                    entity[nav.name] = [shape(base, target, c, opts.select) for c, _ in kids]
                    total = totals.get(entity["@iot.id"], 0)
                    if opts.count:
                        entity[f"{nav.name}@iot.count"] = total
                    if len(kids) == top and top > 0 and opts.skip + top < total:
                        entity[f"{nav.name}@iot.nextLink"] = (
                            f"{self_link(base, et, entity['@iot.id'])}/{nav.name}?$top={top}&$skip={opts.skip + top}"
                        )

    def _fetch(self, base: str, et: model.EntityType, entity_id: int) -> dict[str, Any]:
        out: dict[str, Any] = self.read(Resource([Step(et, None, entity_id)]), QueryOptions(), base, "")
        return out

    def _resolve_id(self, res: Resource) -> int:
        b = SqlBuilder(self.store.dialect)
        where = chain_where(b, res.steps, "e")
        rows = self._query(ids_sql(res.et, where), b.params)
        if not rows:
            raise not_found(f"{res.et.name} not found", field="path")
        return int(rows[0][0])


def _member(value: Any, keys: tuple[str, ...], name: str) -> Any:
    """The member at ``keys`` of a JSON property's value; a 404 where there is none (a member that is there with
    the value null is null, answered 204 as a null property is)."""
    found = json_member(value, keys)
    if found is MISSING:
        raise not_found(f"no member {name!r}", field="path")
    return found


def _shows_datastreams(et: model.EntityType, opts: QueryOptions) -> bool:
    return et is model.DATASTREAM or any(_shows_datastreams(model.entity(e.nav.target), e.options) for e in opts.expand)
