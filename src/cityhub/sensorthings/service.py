"""SensorThings semantics over a Store: reading with query options, deep insert, update, delete.

The HTTP layer (``cityhub.sensorthings.api``) only maps requests to these calls.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import shapely.geometry

from cityhub.bus import EntityOp, EventBus
from cityhub.errors import ProblemError, bad_request, conflict, not_found
from cityhub.ingest import observations as obsin
from cityhub.ingest.pipeline import IngestPipeline
from cityhub.sensorthings import model, results
from cityhub.sensorthings.options import Expand, QueryOptions
from cityhub.sensorthings.query import SqlBuilder, columns, filter_sql, orderby_sql, read_table
from cityhub.store.base import QueryError, Store, Transaction
from cityhub.timefmt import iso_time, parse_interval, parse_time

log = logging.getLogger(__name__)

_SEGMENT = re.compile(r"^([A-Za-z]+)(?:\(([^)]*)\))?$")


@dataclass
class Step:
    """One segment of a resource path: an entity set or navigation, optionally with an id."""

    et: model.EntityType
    nav: model.Nav | None  # None for the root entity set
    id: int | None


@dataclass
class Resource:
    steps: list[Step]
    member: str | None = None  # a property addressed by the path: /Things(1)/name
    value: bool = False  # .../$value
    ref: bool = False  # .../$ref

    @property
    def et(self) -> model.EntityType:
        return self.steps[-1].et

    @property
    def is_collection(self) -> bool:
        last = self.steps[-1]
        if last.id is not None:
            return False
        return last.nav is None or last.nav.many


def parse_path(path: str) -> Resource:
    """``Things(1)/Datastreams`` → Resource. Raises 404 for unknown sets, 400 for malformed ids."""
    parts = [p for p in path.strip("/").split("/") if p]
    if not parts:
        raise not_found("no entity set named")
    steps: list[Step] = []
    res = Resource(steps)
    for i, part in enumerate(parts):
        if part == "$value":
            if res.member is None or i != len(parts) - 1:
                raise bad_request("$value must follow a property", field="path")
            res.value = True
            continue
        if part == "$ref":
            if i != len(parts) - 1 or not steps:
                raise bad_request("$ref must end the path", field="path")
            res.ref = True
            continue
        if res.member is not None:
            raise not_found(f"nothing below property {res.member!r}", field="path")
        m = _SEGMENT.match(part)
        if m is None:
            raise not_found(f"unknown path segment {part!r}", field="path")
        name, id_text = m.group(1), m.group(2)
        entity_id = None
        if id_text is not None:
            try:
                entity_id = int(id_text.strip("'"))
            except ValueError:
                raise bad_request(f"entity id must be an integer, got {id_text!r}", field="path") from None
            if not 0 <= entity_id < 2**63:
                raise not_found(f"no entity has id {entity_id} (ids are 64-bit integers ≥ 0)", field="path")
        if not steps:
            et = model.BY_PLURAL.get(name)
            if et is None:
                raise not_found(f"no entity set {name!r}; known: {sorted(model.BY_PLURAL)}", field="path")
            steps.append(Step(et, None, entity_id))
            continue
        prev = steps[-1]
        if prev.id is None and (prev.nav is None or prev.nav.many):
            raise bad_request(f"{prev.et.plural} needs an id before /{name}", field="path")
        nav = prev.et.nav(name)
        if nav is not None:
            if entity_id is not None and not nav.many:
                raise bad_request(f"{name} is a single entity and takes no id", field="path")
            steps.append(Step(model.entity(nav.target), nav, entity_id))
        elif prev.et.prop(name) is not None or name == "id":
            if entity_id is not None:
                raise bad_request(f"property {name} takes no id", field="path")
            res.member = name
        else:
            raise not_found(f"{prev.et.name} has no property or navigation {name!r}", field="path")
    return res


def chain_where(builder: SqlBuilder, steps: list[Step], alias: str) -> str:
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


def _ids_sql(builder: SqlBuilder, steps: list[Step]) -> str:
    last = steps[-1]
    if len(steps) == 1 and last.id is not None:
        return builder.param(last.id)
    alias = builder.alias()
    return f"SELECT {alias}.id FROM {read_table(last.et)} {alias} WHERE {chain_where(builder, steps, alias)}"


# -- serialisation ---------------------------------------------------------------------------------------


def _json(text: Any) -> Any:
    if text is None:
        return None
    if not isinstance(text, str):
        return text
    return orjson.loads(text)


def row_to_dict(et: model.EntityType, row: tuple[Any, ...]) -> tuple[dict[str, Any], dict[str, int | None]]:
    """A fetched row (``columns(et)`` order) → entity JSON properties and its to-one foreign keys."""
    out: dict[str, Any] = {"@iot.id": row[0]}
    i = 1
    for p in et.props:
        if p.kind == model.RESULT:
            num, text, js = row[i : i + 3]
            i += 3
            out[p.name] = num if num is not None else text if text is not None else _json(js)
            if isinstance(out[p.name], float) and out[p.name].is_integer() and abs(out[p.name]) < 2**53:
                out[p.name] = int(out[p.name]) if js == "int" else out[p.name]
            continue
        v = row[i]
        i += 1
        if p.kind in (model.JSON, model.GEOMETRY):
            out[p.name] = _json(v)
        elif p.kind == model.DATETIME:
            out[p.name] = iso_time(v)
        elif p.kind == model.INTERVAL:
            end = row[i]
            i += 1
            if v is None:
                out[p.name] = None
            else:
                out[p.name] = iso_time(v) if end is None or end == v else f"{iso_time(v)}/{iso_time(end)}"
        else:
            out[p.name] = v
    fks = {n.name: row[i + k] for k, n in enumerate(n for n in et.navs if n.fk)}
    return out, fks


class SensorThings:
    """The service behind ``/v1.1``."""

    def __init__(
        self,
        store: Store,
        pipeline: IngestPipeline,
        catalog: obsin.DatastreamCatalog,
        bus: EventBus,
        *,
        max_top: int = 10_000,
        default_top: int = 100,
        max_future: timedelta = timedelta(days=1),
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.bus = bus
        self.catalog = catalog
        self.max_top = max_top
        self.default_top = default_top
        self.max_future = max_future

    def _announce(self, et: model.EntityType, entity_id: int, op: EntityOp = "created") -> None:
        # Entity changes go out on the bus (MQTT entity topics); Observations are published by the writer.
        self.bus.entity(et.plural, entity_id, op)

    # -- reading ---------------------------------------------------------------------------------------
    def read(self, res: Resource, opts: QueryOptions, base: str, query_string: str) -> Any:
        try:
            return self._read(res, opts, base, query_string)
        except QueryError as exc:
            if opts.filter is not None or opts.orderby:
                raise QueryError(exc.detail, field="$filter" if opts.filter is not None else "$orderby") from None
            raise

    def _read(self, res: Resource, opts: QueryOptions, base: str, query_string: str) -> Any:
        et = res.et
        if _shows_datastreams(et, opts):
            self.store.flush_derived()  # Datastream.phenomenonTime comes from the latest-value table
        b = SqlBuilder(self.store.dialect)
        where = chain_where(b, res.steps, "e")
        self._check_parents_exist(res)
        if res.member is not None or not res.is_collection:
            rows = self.store.query(
                f"SELECT {', '.join('e.' + c for c in columns(et))} FROM {read_table(et)} e WHERE {where}",
                b.params,
            )
            if not rows:
                raise not_found(f"{et.name} not found", field="path")
            entity, fks = row_to_dict(et, rows[0])
            if res.member is not None:
                name = "@iot.id" if res.member == "id" else res.member
                value = entity[name]
                if res.value:
                    return ("raw", value)
                return {name: value}
            if res.ref:
                return {"@iot.selfLink": self.self_link(base, et, entity["@iot.id"])}
            self._expand(base, et, [(entity, fks)], opts.expand)
            return self._shape(base, et, entity, opts.select)
        if opts.filter is not None:
            where += " AND (" + filter_sql(b, et, "e", opts.filter) + ")"
        order = orderby_sql(b, et, "e", opts.orderby)
        top = opts.top if opts.top is not None else self.default_top
        sql = (
            f"SELECT {', '.join('e.' + c for c in columns(et))} FROM {read_table(et)} e WHERE {where} "
            f"ORDER BY {order} LIMIT {top + 1} OFFSET {opts.skip}"
        )
        params = list(b.params)
        rows = self.store.query(sql, params)
        more = len(rows) > top
        rows = rows[:top]
        body: dict[str, Any] = {}
        if opts.count:
            cb = SqlBuilder(self.store.dialect)
            cwhere = chain_where(cb, res.steps, "e")
            if opts.filter is not None:
                cwhere += " AND (" + filter_sql(cb, et, "e", opts.filter) + ")"
            body["@iot.count"] = self.store.query(f"SELECT count(*) FROM {read_table(et)} e WHERE {cwhere}", cb.params)[
                0
            ][0]
        if more and top > 0:  # $top=0 asks for the count only: a next page of nothing would never end
            body["@iot.nextLink"] = _next_link(base, res, query_string, opts.skip + top, top)
        pairs = [row_to_dict(et, r) for r in rows]
        if res.ref:
            body["value"] = [{"@iot.selfLink": self.self_link(base, et, e["@iot.id"])} for e, _ in pairs]
            return body
        if opts.result_format == "dataArray":
            body["value"] = self._data_array(base, pairs, opts.select)
            return body
        self._expand(base, et, pairs, opts.expand)
        body["value"] = [self._shape(base, et, e, opts.select) for e, _ in pairs]
        return body

    def _check_parents_exist(self, res: Resource) -> None:
        for i, step in enumerate(res.steps[:-1]):
            if step.id is None:
                continue
            b = SqlBuilder(self.store.dialect)
            where = chain_where(b, res.steps[: i + 1], "e")
            if not self.store.query(f"SELECT 1 FROM {read_table(step.et)} e WHERE {where}", b.params):
                raise not_found(f"{step.et.name}({step.id}) not found", field="path")

    def self_link(self, base: str, et: model.EntityType, entity_id: Any) -> str:
        return f"{base}/{et.plural}({entity_id})"

    def _shape(self, base: str, et: model.EntityType, entity: dict[str, Any], select: list[str] | None) -> dict:
        link = self.self_link(base, et, entity["@iot.id"])
        out: dict[str, Any] = {"@iot.id": entity["@iot.id"], "@iot.selfLink": link}
        for k, v in entity.items():
            if k != "@iot.id" and not k.startswith("_"):
                out[k] = v
        for nav in et.navs:
            if nav.name in entity:
                continue  # expanded
            out[f"{nav.name}@iot.navigationLink"] = f"{link}/{nav.name}"
        if select is not None:
            # Expanded navigations are shown whatever $select says; their links follow $select.
            keep = set(select) | {n.name for n in et.navs if n.name in entity}
            out = {k: v for k, v in out.items() if k in keep or k.split("@")[0] in keep}
        return out

    def _expand(self, base: str, et: model.EntityType, pairs: list[tuple[dict, dict]], expands: list[Expand]) -> None:
        if not pairs:
            return
        for ex in expands:
            nav, opts = ex.nav, ex.options
            target = model.entity(nav.target)
            b = SqlBuilder(self.store.dialect)
            # Placeholders are positional: the ORDER BY (inside the window) comes first in the SQL text.
            order = orderby_sql(b, target, "e", opts.orderby)
            ids = sorted({e["@iot.id"] for e, _ in pairs})
            if nav.fk:
                wanted = sorted({fks[nav.name] for _, fks in pairs if fks.get(nav.name) is not None})
                parent_expr, where = "e.id", f"e.id IN ({', '.join(b.param(i) for i in wanted) or 'NULL'})"
            elif nav.remote_fk:
                parent_expr = f"e.{nav.remote_fk}"
                where = f"e.{nav.remote_fk} IN ({', '.join(b.param(i) for i in ids)})"
            else:
                assert nav.link is not None
                this_col = nav.link[1]
                parent_expr = f"l.{this_col}"
                where = f"l.{this_col} IN ({', '.join(b.param(i) for i in ids)})"
            if opts.filter is not None:
                where += " AND (" + filter_sql(b, target, "e", opts.filter) + ")"
            from_ = f"{read_table(target)} e"
            if nav.link:
                from_ = f"{nav.link[0]} l JOIN {from_} ON e.id = l.{nav.link[2]}"
            cols = ", ".join("e." + c for c in columns(target))
            top = opts.top if opts.top is not None else self.default_top
            sql = f"""SELECT * FROM (
                        SELECT {parent_expr} AS _parent, {cols},
                               row_number() OVER (PARTITION BY {parent_expr} ORDER BY {order}) AS _rn
                        FROM {from_} WHERE {where}) x
                      WHERE _rn > {opts.skip} AND _rn <= {opts.skip + top}
                      ORDER BY _parent, _rn"""
            rows = self.store.query(sql, b.params)
            children: dict[Any, list[tuple[dict, dict]]] = {}
            for r in rows:
                children.setdefault(r[0], []).append(row_to_dict(target, r[1:-1]))
            all_children = [c for cs in children.values() for c in cs]
            self._expand(base, target, all_children, opts.expand)
            for entity, fks in pairs:
                if nav.fk:
                    found = children.get(fks.get(nav.name))
                    entity[nav.name] = self._shape(base, target, found[0][0], opts.select) if found else None
                else:
                    kids = children.get(entity["@iot.id"], [])
                    entity[nav.name] = [self._shape(base, target, c, opts.select) for c, _ in kids]
                    if len(kids) == top and top > 0:
                        entity[f"{nav.name}@iot.nextLink"] = (
                            f"{self.self_link(base, et, entity['@iot.id'])}/{nav.name}"
                            f"?$top={top}&$skip={opts.skip + top}"
                        )

    def _data_array(self, base: str, pairs: list[tuple[dict, dict]], select: list[str] | None) -> list[dict]:
        comps = [c for c in (select or ["@iot.id", "phenomenonTime", "result"]) if not c.endswith("selfLink")]
        comps = ["id" if c == "@iot.id" else c for c in comps]
        groups: dict[Any, list[list[Any]]] = {}
        for e, fks in pairs:
            groups.setdefault(fks["Datastream"], []).append([e["@iot.id"] if c == "id" else e.get(c) for c in comps])
        return [
            {
                "Datastream@iot.navigationLink": self.self_link(base, model.DATASTREAM, ds),
                "components": comps,
                "dataArray@iot.count": len(rows),
                "dataArray": rows,
            }
            for ds, rows in groups.items()
        ]

    # -- writing ---------------------------------------------------------------------------------------
    async def create(self, res: Resource, body: Any, base: str, device_thing: int | None = None) -> dict:
        if res.member is not None or res.ref or not res.is_collection:
            raise ProblemError(405, "Method Not Allowed", "POST creates entities in a collection", field="path")
        if len(res.steps) > 1:
            await asyncio.to_thread(self._check_parents_exist, res)
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object", field="body")
        et = res.et
        parent = None
        if len(res.steps) > 1:
            last = res.steps[-1]
            assert last.nav is not None
            parent_step = res.steps[-2]
            parent = (parent_step.et, last.nav, parent_step.id)
        if et is model.OBSERVATION:
            ds_id = None
            if parent is not None and parent[1].name == "Observations" and parent[0] is model.DATASTREAM:
                ds_id = parent[2]
            return await self.create_observation(body, ds_id, base, device_thing=device_thing)
        if device_thing is not None:
            raise ProblemError(403, "Forbidden", "a device key may only create Observations", field="authorization")
        return await asyncio.to_thread(self._create_entity, et, body, parent, base)

    def _create_entity(self, et: model.EntityType, body: dict[str, Any], parent: tuple | None, base: str) -> dict:
        with self.store.transaction() as tx:
            new_id = self._create(tx, et, body, "", parent)
        self.catalog.invalidate()
        self._announce(et, new_id)
        return self._fetch(base, et, new_id)

    def _fetch(self, base: str, et: model.EntityType, entity_id: int) -> dict:
        out = self.read(Resource([Step(et, None, entity_id)]), QueryOptions(), base, "")
        return out

    def _create(
        self,
        tx: Transaction,
        et: model.EntityType,
        body: dict[str, Any],
        where: str,
        parent: tuple[model.EntityType, model.Nav, Any] | None,
    ) -> int:
        prefix = f"{where}." if where else ""
        if "@iot.id" in body:
            if len(body) == 1 and where:
                return self._reference(tx, et, body["@iot.id"], where)
            raise bad_request("@iot.id is assigned by the server", field=f"{prefix}@iot.id")
        if et is model.OBSERVATION:
            raise bad_request(
                "Observations are created through a Datastream: POST them to /Observations or "
                "/Datastreams(id)/Observations",
                field=where or "body",
            )
        values = self._values(et, body, prefix, partial=False)
        # to-one links: from the parent in the URL / deep insert, or from the body
        linked_by_parent = None
        if parent is not None:
            linked_by_parent = _inverse(parent[0], parent[1], et)
        for nav in et.navs:
            if not nav.fk:
                continue
            if linked_by_parent is not None and linked_by_parent.name == nav.name:
                values[nav.fk] = parent[2]  # type: ignore[index]
                if nav.name in body:
                    raise bad_request(f"{nav.name} is given by the path", field=prefix + nav.name)
                continue
            if nav.name in body:
                sub = body[nav.name]
                if not isinstance(sub, dict):
                    raise bad_request(f"{nav.name} must be an object", field=prefix + nav.name)
                values[nav.fk] = self._create(tx, model.entity(nav.target), sub, prefix + nav.name, None)
            elif nav.required:
                raise bad_request(f"{et.name} needs {nav.name}", field=prefix + nav.name)
        new_id = tx.insert(et.table, values)
        # links of the parent in the URL that live outside this row
        if parent is not None and linked_by_parent is None:
            self._link(tx, parent[0], parent[1], parent[2], new_id)
            if parent[1].name == "Locations" and parent[0] is model.THING:
                self._historical_location(tx, parent[2])
        # to-many and many-to-many children
        for nav in et.navs:
            if nav.fk or nav.name not in body:
                continue
            subs = body[nav.name]
            if not isinstance(subs, list):
                raise bad_request(f"{nav.name} must be an array", field=prefix + nav.name)
            target = model.entity(nav.target)
            for k, sub in enumerate(subs):
                field = f"{prefix}{nav.name}[{k}]"
                if not isinstance(sub, dict):
                    raise bad_request(f"{nav.name} items must be objects", field=field)
                if target is model.OBSERVATION:
                    self._create_observation_in_tx(tx, sub, new_id, field)
                    continue
                if nav.link:
                    child = self._create(tx, target, sub, field, None)
                    self._link(tx, et, nav, new_id, child)
                else:
                    self._create(tx, target, sub, field, (et, nav, new_id))
        if et is model.THING and body.get("Locations"):
            self._historical_location(tx, new_id)
        return new_id

    def _reference(self, tx: Transaction, et: model.EntityType, ref: Any, where: str) -> int:
        if not isinstance(ref, int) or isinstance(ref, bool):
            raise bad_request("@iot.id must be an integer", field=f"{where}.@iot.id")
        if not tx.execute(f"SELECT 1 FROM {et.table} WHERE id = ?", [ref]):
            raise bad_request(f"{et.name}({ref}) does not exist", field=f"{where}.@iot.id")
        return ref

    def _link(self, tx: Transaction, et: model.EntityType, nav: model.Nav, this_id: int, other_id: int) -> None:
        if nav.link:
            link, this_col, other_col = nav.link
            tx.execute(
                f"INSERT INTO {link} ({this_col}, {other_col}) VALUES (?, ?) ON CONFLICT DO NOTHING",
                [this_id, other_id],
            )
        elif nav.remote_fk:
            tx.execute(
                f"UPDATE {model.entity(nav.target).table} SET {nav.remote_fk} = ? WHERE id = ?",
                [this_id, other_id],
            )

    def _historical_location(self, tx: Transaction, thing_id: int) -> None:
        hl = tx.insert("historical_locations", {"time": datetime.now(UTC), "thing_id": thing_id})
        tx.execute(
            """INSERT INTO historical_location_locations (historical_location_id, location_id)
               SELECT ?, location_id FROM thing_locations WHERE thing_id = ?""",
            [hl, thing_id],
        )

    def _values(self, et: model.EntityType, body: dict[str, Any], prefix: str, *, partial: bool) -> dict[str, Any]:
        known = {p.name for p in et.props} | {n.name for n in et.navs} | {"@iot.id"}
        for k in body:
            if k not in known and not k.endswith("@iot.navigationLink") and k != "@iot.selfLink":
                raise bad_request(f"{et.name} has no property {k!r}", field=prefix + k)
        values: dict[str, Any] = {}
        for p in et.props:
            if p.name not in body:
                if p.required and not partial:
                    raise bad_request(f"{et.name}.{p.name} is required", field=prefix + p.name)
                continue
            v = body[p.name]
            field = prefix + p.name
            if p.read_only:
                raise bad_request(f"{p.name} is computed by the server", field=field)
            if p.kind == model.RESULT:
                continue  # judged by the Datastream's observationType (results.result_columns), null included
            if v is None:
                if p.required:
                    raise bad_request(f"{p.name} may not be null", field=field)
                values[p.column] = None
                continue
            if p.kind in (model.STRING, model.URI):
                if not isinstance(v, str):
                    raise bad_request(f"{p.name} must be a string", field=field)
                if p.name == "observationType" and v not in model.OBSERVATION_TYPES:
                    raise bad_request(
                        f"unknown observationType; use one of {sorted(model.OBSERVATION_TYPES)}", field=field
                    )
                values[p.column] = v
            elif p.kind == model.JSON:
                if p.name == "unitOfMeasurement":
                    _check_uom(v, field)
                elif p.name in ("properties", "parameters") and not isinstance(v, dict):
                    raise bad_request(f"{p.name} must be a JSON object", field=field)
                values[p.column] = orjson.dumps(v).decode()
            elif p.kind == model.GEOMETRY:
                _check_geojson(v, field)
                values[p.column] = orjson.dumps(v).decode()
            elif p.kind == model.DATETIME:
                values[p.column] = parse_time(v, field)
            elif p.kind == model.INTERVAL:
                start, end = parse_interval(v, field)
                values[p.column] = start
                assert p.column_end
                values[p.column_end] = end
        return values

    # -- observations ----------------------------------------------------------------------------------
    def _observation_table(
        self,
        body: dict[str, Any],
        ds_id: int | None,
        field_prefix: str,
        datastream: obsin.DatastreamInfo | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Validate one Observation body; returns the row (no id yet) and extra info."""
        known = {p.name for p in model.OBSERVATION.props} | {"Datastream", "FeatureOfInterest"}
        for k in body:
            if k not in known and not k.endswith("@iot.navigationLink") and k != "@iot.selfLink":
                raise bad_request(f"Observation has no property {k!r}", field=field_prefix + k)
        if "@iot.id" in body:
            raise bad_request("@iot.id is assigned by the server", field=field_prefix + "@iot.id")
        if ds_id is None:
            ds = body.get("Datastream")
            if not isinstance(ds, dict) or set(ds) != {"@iot.id"}:
                raise bad_request(
                    'an Observation needs Datastream: {"@iot.id": <id>}', field=field_prefix + "Datastream"
                )
            ds_id = ds["@iot.id"]
            if not isinstance(ds_id, int) or isinstance(ds_id, bool):
                raise bad_request("Datastream @iot.id must be an integer", field=field_prefix + "Datastream")
        elif "Datastream" in body:
            raise bad_request("Datastream is given by the path", field=field_prefix + "Datastream")
        if "result" not in body:
            raise bad_request("Observation.result is required", field=field_prefix + "result")
        pt = body.get("phenomenonTime")
        pt_end = None
        if pt is None:
            pt = iso_time(datetime.now(UTC))
        elif isinstance(pt, str) and "/" in pt:
            s, e = parse_interval(pt, field_prefix + "phenomenonTime")
            pt, pt_end = iso_time(s), e
        if body.get("parameters") is not None and not isinstance(body["parameters"], dict):
            raise bad_request("parameters must be a JSON object", field=field_prefix + "parameters")
        info = datastream if datastream is not None else self.catalog.lookup(ds_id)
        try:
            row = obsin.validate_one({**body, "phenomenonTime": pt}, info, max_future=self.max_future)
        except ProblemError as exc:
            exc.field = field_prefix + (exc.field or "")
            raise
        assert info is not None
        extra: dict[str, Any] = {"thing_id": info.thing_id, "datastream_id": ds_id}
        row["phenomenon_time_end"] = pt_end
        if body.get("validTime") is not None:
            row["valid_time_start"], row["valid_time_end"] = parse_interval(
                body["validTime"], field_prefix + "validTime"
            )
        if body.get("resultQuality") is not None:
            row["result_quality"] = orjson.dumps(body["resultQuality"]).decode()
        return row, extra

    async def create_observation(
        self, body: dict[str, Any], ds_id: int | None, base: str, *, device_thing: int | None = None
    ) -> dict:
        row, extra = self._observation_table(body, ds_id, "")  # cheap: no query once the catalogue is loaded
        if device_thing is not None and extra["thing_id"] != device_thing:
            raise ProblemError(403, "Forbidden", "this device key may not write to that Datastream", field="Datastream")
        foi_id = None if "FeatureOfInterest" in body else self.catalog.cached_default_foi(extra["datastream_id"])
        if foi_id is None:  # needs a query, or a new FeatureOfInterest
            foi_id = await asyncio.to_thread(self._feature_of_interest, body, extra["datastream_id"])
        row["feature_of_interest_id"] = foi_id
        new_id = row["id"] = int(self.store.allocate_ids("observations", 1)[0])
        result = await asyncio.wrap_future(self.pipeline.submit_rows([row]))
        if new_id in result.conflicting:
            stored = result.duplicate_of[new_id]
            raise conflict(
                f"Datastream already has Observation {stored} at this phenomenonTime with another result; "
                "PATCH that Observation to change it",
                field="phenomenonTime",
                existing=self.self_link(base, model.OBSERVATION, stored),
            )
        if new_id in result.duplicate_of:  # the same Observation again: answer with the stored one
            entity = self._fetch(base, model.OBSERVATION, result.duplicate_of[new_id])
            entity["_created"] = False
            return entity
        entity, _ = row_to_dict(model.OBSERVATION, tuple(row[c] for c in columns(model.OBSERVATION)))
        return self._shape(base, model.OBSERVATION, entity, None)

    def _feature_of_interest(self, body: dict[str, Any], ds_id: int) -> int:
        foi = body.get("FeatureOfInterest")
        if foi is not None:
            if not isinstance(foi, dict):
                raise bad_request("FeatureOfInterest must be an object", field="FeatureOfInterest")
            with self.store.transaction() as tx:
                return self._create(tx, model.FEATURE_OF_INTEREST, foi, "FeatureOfInterest", None)
        foi_id = self.catalog.default_foi(ds_id)
        if foi_id is None:
            raise bad_request(
                "no FeatureOfInterest given and the Datastream's Thing has no Location to make one from",
                field="FeatureOfInterest",
            )
        return foi_id

    def observation_row(self, body: Any, ds_id: int | None) -> dict[str, Any]:
        """Validate one Observation as a client would POST it (to a Datastream's Observations when ``ds_id``
        is given, else with a Datastream link) and return its row for the writer, id allocated. For
        callers outside a request (the MQTT bridge); raises ProblemError naming the field at fault."""
        if not isinstance(body, dict):
            raise bad_request("an Observation must be a JSON object", field="body")
        row, extra = self._observation_table(body, ds_id, "")
        foi_id = None if "FeatureOfInterest" in body else self.catalog.cached_default_foi(extra["datastream_id"])
        if foi_id is None:
            foi_id = self._feature_of_interest(body, extra["datastream_id"])
        row["feature_of_interest_id"] = foi_id
        row["id"] = int(self.store.allocate_ids("observations", 1)[0])
        return row

    def _create_observation_in_tx(self, tx: Transaction, body: dict[str, Any], ds_id: int, field: str) -> None:
        # Deep insert: the new Datastream is not committed yet, so validate against this transaction's view.
        rows = tx.execute(
            "SELECT observation_type, unit_of_measurement, thing_id FROM datastreams WHERE id = ?", [ds_id]
        )
        uom = orjson.loads(rows[0][1]) if rows else {}
        info = obsin.DatastreamInfo(ds_id, rows[0][0], uom.get("symbol"), rows[0][2])
        row, _ = self._observation_table(body, ds_id, field + ".", info)
        if isinstance(body.get("FeatureOfInterest"), dict):
            foi_id = self._create(
                tx, model.FEATURE_OF_INTEREST, body["FeatureOfInterest"], field + ".FeatureOfInterest", None
            )
        else:
            foi_id = obsin.location_fois_in(tx, [ds_id])[ds_id]
            if foi_id is None:
                raise bad_request("no FeatureOfInterest and the Thing has no Location", field=field)
        row["feature_of_interest_id"] = foi_id
        row["id"] = int(self.store.allocate_ids("observations", 1)[0])
        res = self.store.append_observations(tx, obsin.rows_to_batch([row]))
        if res.conflicting:
            raise conflict("two Observations with the same phenomenonTime and different results", field=field)

    # -- update / delete -----------------------------------------------------------------------------
    def update(self, res: Resource, body: Any, base: str) -> dict:
        if res.member is not None or res.is_collection or res.ref:
            raise ProblemError(405, "Method Not Allowed", "PATCH needs a single entity", field="path")
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object", field="body")
        et = res.et
        entity_id = self._resolve_id(res)
        values = self._values(et, body, "", partial=True)
        with self.store.transaction() as tx:
            for nav in et.navs:
                if nav.name not in body:
                    continue
                sub = body[nav.name]
                if nav.fk:
                    if not isinstance(sub, dict) or set(sub) != {"@iot.id"}:
                        raise bad_request(f'{nav.name} must be {{"@iot.id": <id>}}', field=nav.name)
                    values[nav.fk] = self._reference(tx, model.entity(nav.target), sub["@iot.id"], nav.name)
                else:
                    if not isinstance(sub, list):
                        raise bad_request(f"{nav.name} must be an array", field=nav.name)
                    if nav.link:
                        tx.execute(f"DELETE FROM {nav.link[0]} WHERE {nav.link[1]} = ?", [entity_id])
                    for k, item in enumerate(sub):
                        if not isinstance(item, dict):
                            raise bad_request(f"{nav.name} items must be objects", field=f"{nav.name}[{k}]")
                        target = model.entity(nav.target)
                        child = (
                            self._reference(tx, target, item["@iot.id"], f"{nav.name}[{k}]")
                            if set(item) == {"@iot.id"}
                            else self._create(tx, target, item, f"{nav.name}[{k}]", None)
                        )
                        self._link(tx, et, nav, entity_id, child)
                    if et is model.THING and nav.name == "Locations":
                        self._historical_location(tx, entity_id)
            if et is model.OBSERVATION:
                self._update_observation(tx, entity_id, body, values)
            elif values:
                sets = ", ".join(f"{c} = ?" for c in values)
                tx.execute(f"UPDATE {et.table} SET {sets} WHERE id = ?", [*values.values(), entity_id])
        self.catalog.invalidate()
        self._announce(et, entity_id, "updated")
        return self._fetch(base, et, entity_id)

    def _update_observation(self, tx: Transaction, obs_id: int, body: dict[str, Any], values: dict) -> None:
        old = tx.execute("SELECT datastream_id, phenomenon_time FROM observations WHERE id = ?", [obs_id])
        ds_id, old_time = old[0]
        if "result" in body:
            r = body["result"]
            values.pop("result", None)
            ot = tx.execute("SELECT observation_type FROM datastreams WHERE id = ?", [ds_id])[0][0]
            values.update(results.result_columns(r, ot))
        if "Datastream" in body:
            raise bad_request(
                "an Observation cannot move to another Datastream; delete and recreate it", field="Datastream"
            )
        if not values:
            return
        new_time = values.get("phenomenon_time", old_time)
        if new_time != old_time and tx.execute(
            "SELECT id FROM observations WHERE datastream_id = ? AND phenomenon_time = ?", [ds_id, new_time]
        ):
            raise conflict("the Datastream already has an Observation at that phenomenonTime", field="phenomenonTime")
        # DuckDB cannot update a primary-key column in place: replace the row.
        row = tx.execute("SELECT * FROM observations WHERE id = ?", [obs_id])[0]
        cols = [c[0] for c in tx.execute("DESCRIBE observations")]
        record = dict(zip(cols, row, strict=True))
        record.update(values)
        tx.execute("DELETE FROM observations WHERE id = ?", [obs_id])
        tx.execute(
            f"INSERT INTO observations ({', '.join(record)}) VALUES ({', '.join('?' for _ in record)})",
            list(record.values()),
        )
        self.store.refresh_derived(tx, ds_id, sorted({old_time, new_time}))

    def _resolve_id(self, res: Resource) -> int:
        b = SqlBuilder(self.store.dialect)
        where = chain_where(b, res.steps, "e")
        rows = self.store.query(f"SELECT e.id FROM {read_table(res.et)} e WHERE {where}", b.params)
        if not rows:
            raise not_found(f"{res.et.name} not found", field="path")
        return int(rows[0][0])

    # -- references (SensorThings §10.3.3, §10.4.3) --------------------------------------------------------
    def add_reference(self, res: Resource, body: Any) -> None:
        """``POST .../Things(1)/Locations/$ref`` (or ``PUT .../Datastreams(1)/Sensor/$ref``) with
        ``{"@iot.id": 5}`` or ``{"@iot.selfLink": ".../Locations(5)"}``: link an existing entity."""
        if len(res.steps) < 2 or res.steps[-1].id is not None:
            raise bad_request("a reference is made from an entity to one of its navigation properties", field="path")
        parent, last = res.steps[-2], res.steps[-1]
        nav = last.nav
        assert nav is not None
        target_id = _reference_id(body, last.et)
        parent_id = self._resolve_id(Resource(res.steps[:-1]))
        with self.store.transaction() as tx:
            self._reference(tx, last.et, target_id, "@iot.id")
            if nav.fk:
                tx.execute(f"UPDATE {parent.et.table} SET {nav.fk} = ? WHERE id = ?", [target_id, parent_id])
            else:
                self._link(tx, parent.et, nav, parent_id, target_id)
                if parent.et is model.THING and nav.name == "Locations":
                    self._historical_location(tx, parent_id)
        self.catalog.invalidate()

    def delete_reference(self, res: Resource) -> None:
        """``DELETE .../Things(1)/Locations(5)/$ref``: unlink, deleting neither entity."""
        last = res.steps[-1]
        if len(res.steps) < 2 or last.id is None or last.nav is None:
            raise bad_request("name the linked entity: .../Things(1)/Locations(5)/$ref", field="path")
        if not last.nav.link:
            raise conflict(f"{last.nav.name} is required by the entity; link another one instead", field="path")
        parent_id = self._resolve_id(Resource(res.steps[:-1]))
        self._resolve_id(res)  # 404 unless linked
        link, this_col, other_col = last.nav.link
        with self.store.transaction() as tx:
            tx.execute(f"DELETE FROM {link} WHERE {this_col} = ? AND {other_col} = ?", [parent_id, last.id])

    def delete(self, res: Resource) -> None:
        if res.ref:
            self.delete_reference(res)
            return
        if res.member is not None or res.is_collection:
            raise ProblemError(405, "Method Not Allowed", "DELETE needs a single entity", field="path")
        entity_id = self._resolve_id(res)
        with self.store.transaction() as tx:
            self._delete(tx, res.et, entity_id)
        self.catalog.invalidate()
        self._announce(res.et, entity_id, "deleted")

    def _delete(self, tx: Transaction, et: model.EntityType, entity_id: int) -> None:
        if et is model.THING:
            for (ds,) in tx.execute("SELECT id FROM datastreams WHERE thing_id = ?", [entity_id]):
                self._delete(tx, model.DATASTREAM, ds)
            for (hl,) in tx.execute("SELECT id FROM historical_locations WHERE thing_id = ?", [entity_id]):
                self._delete(tx, model.HISTORICAL_LOCATION, hl)
            tx.execute("DELETE FROM thing_locations WHERE thing_id = ?", [entity_id])
        elif et is model.LOCATION:
            tx.execute("DELETE FROM thing_locations WHERE location_id = ?", [entity_id])
            tx.execute("DELETE FROM historical_location_locations WHERE location_id = ?", [entity_id])
            tx.execute(
                "UPDATE features_of_interest SET from_location_id = NULL WHERE from_location_id = ?",
                [entity_id],
            )
        elif et is model.HISTORICAL_LOCATION:
            tx.execute("DELETE FROM historical_location_locations WHERE historical_location_id = ?", [entity_id])
        elif et in (model.SENSOR, model.OBSERVED_PROPERTY):
            col = "sensor_id" if et is model.SENSOR else "observed_property_id"
            for (ds,) in tx.execute(f"SELECT id FROM datastreams WHERE {col} = ?", [entity_id]):
                self._delete(tx, model.DATASTREAM, ds)
        elif et is model.DATASTREAM:
            tx.execute("DELETE FROM observations WHERE datastream_id = ?", [entity_id])
            tx.execute("DELETE FROM obs_hourly WHERE datastream_id = ?", [entity_id])
            tx.execute("DELETE FROM ds_latest WHERE datastream_id = ?", [entity_id])
        elif et is model.FEATURE_OF_INTEREST:
            touched = tx.execute(
                "SELECT DISTINCT datastream_id FROM observations WHERE feature_of_interest_id = ?",
                [entity_id],
            )
            hours = tx.execute(
                "SELECT DISTINCT datastream_id, phenomenon_time FROM observations WHERE feature_of_interest_id = ?",
                [entity_id],
            )
            tx.execute("DELETE FROM observations WHERE feature_of_interest_id = ?", [entity_id])
            for (ds,) in touched:
                self.store.refresh_derived(tx, ds, [t for d, t in hours if d == ds])
        elif et is model.OBSERVATION:
            row = tx.execute("SELECT datastream_id, phenomenon_time FROM observations WHERE id = ?", [entity_id])
            tx.execute("DELETE FROM observations WHERE id = ?", [entity_id])
            if row:
                self.store.refresh_derived(tx, row[0][0], [row[0][1]])
            return
        tx.execute(f"DELETE FROM {et.table} WHERE id = ?", [entity_id])


def _reference_id(body: Any, et: model.EntityType) -> int:
    if isinstance(body, dict) and set(body) == {"@iot.id"} and isinstance(body["@iot.id"], int):
        return body["@iot.id"]
    if isinstance(body, dict) and set(body) == {"@iot.selfLink"} and isinstance(body["@iot.selfLink"], str):
        m = re.search(rf"/{et.plural}\((\d+)\)$", body["@iot.selfLink"])
        if m:
            return int(m.group(1))
        raise bad_request(f"@iot.selfLink must end in /{et.plural}(<id>)", field="@iot.selfLink")
    raise bad_request('send {"@iot.id": <id>} or {"@iot.selfLink": "<url>"}', field="body")


def _shows_datastreams(et: model.EntityType, opts: QueryOptions) -> bool:
    return et is model.DATASTREAM or any(_shows_datastreams(model.entity(e.nav.target), e.options) for e in opts.expand)


def _inverse(p_et: model.EntityType, p_nav: model.Nav, et: model.EntityType) -> model.Nav | None:
    """The to-one navigation of ``et`` that points back at the parent (Datastream.Thing for Thing.Datastreams)."""
    if p_nav.remote_fk:
        for n in et.navs:
            if n.fk == p_nav.remote_fk and n.target == p_et.name:
                return n
    return None


def _check_uom(v: Any, field: str) -> None:
    if not isinstance(v, dict):
        raise bad_request("unitOfMeasurement must be an object with name, symbol and definition", field=field)
    for k, val in v.items():
        if k not in ("name", "symbol", "definition"):
            raise bad_request(f"unitOfMeasurement has no member {k!r}", field=f"{field}.{k}")
        if val is not None and not isinstance(val, str):
            raise bad_request(f"unitOfMeasurement.{k} must be a string", field=f"{field}.{k}")


def _check_geojson(v: Any, field: str) -> None:
    if not isinstance(v, dict):
        raise bad_request("must be a GeoJSON object", field=field)
    geom = v.get("geometry") if v.get("type") == "Feature" else v
    try:
        shape = shapely.geometry.shape(geom)
        if shape.is_empty:
            raise ValueError("empty geometry")
        coords = np.asarray(shapely.get_coordinates(shape))
        if not np.isfinite(coords).all():
            raise ValueError("coordinates must be finite numbers")
    except Exception as exc:  # shapely raises several types for malformed GeoJSON
        raise bad_request(f"not valid GeoJSON: {exc}", field=field) from None


def _next_link(base: str, res: Resource, query_string: str, skip: int, top: int) -> str:
    from urllib.parse import parse_qsl, urlencode

    path = "/".join(
        (s.nav.name if s.nav else s.et.plural) + (f"({s.id})" if s.id is not None else "") for s in res.steps
    )
    params = [(k, v) for k, v in parse_qsl(query_string, keep_blank_values=True) if k not in ("$skip", "$top")]
    params += [("$top", str(top)), ("$skip", str(skip))]
    return f"{base}/{path}?{urlencode(params, safe='$(),/')}"
