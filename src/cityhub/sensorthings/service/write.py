"""Writing entities: deep insert, PATCH, references ($ref) and delete, in one transaction each, through the
store's named entity operations."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

import jsonpatch
import orjson

from cityhub import model
from cityhub.errors import ProblemError, bad_request, conflict
from cityhub.sensorthings.filter import Node
from cityhub.sensorthings.filter.query import SqlBuilder, chain_where, filter_sql, ids_sql
from cityhub.sensorthings.service.base import ServiceBase
from cityhub.sensorthings.service.paths import Resource
from cityhub.sensorthings.service.validate import _inverse, _reference_id, values_of
from cityhub.store.transaction import Transaction

# The entities whose Observations a POST to their Observations creates (a MultiDatastream's: the extension).
_STREAMS = (model.DATASTREAM, model.MULTI_DATASTREAM)


class WriteMixin(ServiceBase):
    def create_in_change_set(self, res: Resource, body: Any, base: str) -> dict[str, Any]:
        """POST within a ``$batch`` change set (see ``change_set``): Observations too are written in its
        transaction, not handed to the writer, so that they commit or roll back with the rest."""
        et, parent = self._create_target(res, body)
        self._check_parents_exist(res)
        if et is not model.OBSERVATION:
            return self._create_entity(et, body, parent, base)
        ds_id = parent[2] if parent is not None and parent[0] in _STREAMS else None
        if ds_id is None:
            ds = body.get("MultiDatastream" if "MultiDatastream" in body else "Datastream")
            ds_id = ds.get("@iot.id") if isinstance(ds, dict) else None
            if not isinstance(ds_id, int) or isinstance(ds_id, bool):
                raise bad_request('an Observation needs Datastream: {"@iot.id": <id>}', field="Datastream")
        with self._tx() as tx:
            new_id = self._create_observation_in_tx(tx, body, ds_id, "")
        return self._fetch(base, model.OBSERVATION, new_id)

    def _create_target(
        self, res: Resource, body: Any
    ) -> tuple[model.EntityType, tuple[model.EntityType, model.Nav, Any] | None]:
        if res.member is not None or res.ref or not res.is_collection:
            raise ProblemError(405, "Method Not Allowed", "POST creates entities in a collection", field="path")
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object", field="body")
        parent = None
        if len(res.steps) > 1:
            last = res.steps[-1]
            assert last.nav is not None
            parent_step = res.steps[-2]
            parent = (parent_step.et, last.nav, parent_step.id)
        return res.et, parent

    async def create(self, res: Resource, body: Any, base: str, device_thing: int | None = None) -> dict[str, Any]:
        if res.member is not None or res.ref or not res.is_collection:
            raise ProblemError(405, "Method Not Allowed", "POST creates entities in a collection", field="path")
        if len(res.steps) > 1:
            top = res.steps[0]
            # POST Datastreams(id)/Observations, the hot path of devices: the catalogue in memory knows the
            # Datastream, so no query and no thread hop; anything else is looked up.
            known = len(res.steps) == 2 and top.et is model.DATASTREAM and top.id is not None
            if not (known and self.catalog.lookup(top.id) is not None):  # type: ignore[arg-type]
                await asyncio.to_thread(self._check_parents_exist, res)
        et, parent = self._create_target(res, body)
        if et is model.OBSERVATION and parent is None and new_stream(body) is not None:
            return await asyncio.to_thread(self.create_observation_with_stream, body, base)
        if et is model.OBSERVATION:
            ds_id = None
            if parent is not None and parent[1].name == "Observations" and parent[0] in _STREAMS:
                ds_id = parent[2]
            return await self.create_observation(body, ds_id, base, device_thing=device_thing)
        if device_thing is not None:
            raise ProblemError(403, "Forbidden", "a device key may only create Observations", field="authorization")
        return await asyncio.to_thread(self._create_entity, et, body, parent, base)

    def create_observation_with_stream(self, body: dict[str, Any], base: str) -> dict[str, Any]:
        """Deep insert of an Observation with a new Datastream (or MultiDatastream) written inline, with its Thing,
        Sensor and ObservedProperty (SensorThings v1.1 §10.2.1.2): all in one transaction."""
        key = new_stream(body)
        assert key is not None
        et = model.MULTI_DATASTREAM if key == "MultiDatastream" else model.DATASTREAM
        with self._tx() as tx:
            ds_id = self._create(tx, et, body[key], key, None)
            new_id = self._create_observation_in_tx(tx, {k: v for k, v in body.items() if k != key}, ds_id, "")
        self._after_commit(lambda: self.catalog.entity_changed(et.plural, "created"))
        return self._fetch(base, model.OBSERVATION, new_id)

    def _create_entity(
        self,
        et: model.EntityType,
        body: dict[str, Any],
        parent: tuple[model.EntityType, model.Nav, Any] | None,
        base: str,
    ) -> dict[str, Any]:
        with self._tx() as tx:
            new_id = self._create(tx, et, body, "", parent)
        self._after_commit(lambda: self.catalog.entity_changed(et.plural, "created"))
        return self._fetch(base, et, new_id)

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
            if where:
                # A linked entity. FROST-Server links by the id and ignores the rest, and its clients (the
                # frost_sta_client package) send the whole entity they hold: the same here.
                return self._reference(tx, et, body["@iot.id"], where)
            raise bad_request("@iot.id is assigned by the server", field=f"{prefix}@iot.id")
        if et is model.OBSERVATION:
            raise bad_request(
                "Observations are created through a Datastream: POST them to /Observations or "
                "/Datastreams(id)/Observations",
                field=where or "body",
            )
        values = values_of(et, body, prefix, partial=False)
        if et is model.MULTI_DATASTREAM:
            linked = parent is not None and parent[0] is model.OBSERVED_PROPERTY  # POST ObservedProperties(1)/...
            _check_multi_datastream(body, values, prefix, linked)
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
        if et is model.TASKING_CAPABILITY:
            _fields(body["taskingParameters"], prefix + "taskingParameters")
        elif et is model.TASK:
            values["creation_time"] = datetime.now(UTC)
            cap = self._fetch("", model.TASKING_CAPABILITY, values["tasking_capability_id"])
            _check_task(body["taskingParameters"], _fields(cap["taskingParameters"], "taskingParameters"), prefix)
        new_id = tx.insert(et.table, values)
        self._announce(et, new_id)  # each entity a deep insert makes, not only the one posted
        # links of the parent in the URL that live outside this row
        if parent is not None and linked_by_parent is None:
            self._link(tx, parent[0], parent[1], parent[2], new_id)
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
                    self._create_linked(tx, et, nav, new_id, sub, field)
                else:
                    self._create(tx, target, sub, field, (et, nav, new_id))
        if et is model.HISTORICAL_LOCATION and self.store.entities.adopt_historical_location(tx, new_id) is not None:
            # The latest HistoricalLocation of its Thing: the Thing is now where it says (its default
            # FeatureOfInterest with it).
            self._after_commit(self.catalog.invalidate)
        return new_id

    def _create_linked(
        self, tx: Transaction, et: model.EntityType, nav: model.Nav, new_id: int, sub: dict[str, Any], field: str
    ) -> None:
        """One member of a many-to-many navigation of a new entity: made (or referenced), then linked."""
        target = model.entity(nav.target)
        if nav.rank and not nav.ordered:
            # MultiDatastreams under a new ObservedProperty: a new one has it first, then those it lists (its
            # arrays are checked so); an existing one would gain a value without its unit and type.
            if "@iot.id" in sub:
                raise bad_request(
                    "a MultiDatastream's ObservedProperties change on the MultiDatastream, with its "
                    "unitOfMeasurements and multiObservationDataTypes",
                    field=field,
                )
            self._create(tx, target, sub, field, (et, nav, new_id))
            return
        child = self._create(tx, target, sub, field, None)
        self._link(tx, et, nav, new_id, child)

    def _reference(self, tx: Transaction, et: model.EntityType, ref: Any, where: str) -> int:
        if not isinstance(ref, int) or isinstance(ref, bool):
            raise bad_request("@iot.id must be an integer", field=f"{where}.@iot.id")
        if not self.store.entities.exists(tx, et.table, ref):
            raise bad_request(f"{et.name}({ref}) does not exist", field=f"{where}.@iot.id")
        return ref

    def _link(self, tx: Transaction, et: model.EntityType, nav: model.Nav, this_id: int, other_id: int) -> None:
        if nav.link:
            link, this_col, other_col = nav.link
            self.store.entities.link(tx, link, this_col, other_col, this_id, other_id, nav.rank)
            if et is model.THING and nav.name == "Locations":
                self._moved(this_id)
            elif et is model.LOCATION and nav.name == "Things":
                self._moved(other_id)
        elif nav.remote_fk:
            self.store.entities.update(tx, model.entity(nav.target).table, other_id, {nav.remote_fk: this_id})

    def update(self, res: Resource, body: Any, base: str, *, replace: bool = False) -> dict[str, Any]:
        """PATCH (``replace`` False): the properties in ``body`` change, the rest stay. PUT (``replace``): the
        entity becomes ``body`` (SensorThings v1.1 §10.3.1): required properties must be there, an optional one
        left out becomes null; relations left out stay as they are (a required one cannot be null, and a PUT of a
        Datastream that dropped its Observations would be a delete)."""
        verb = "PUT" if replace else "PATCH"
        if res.member is not None or res.is_collection or res.ref:
            raise ProblemError(405, "Method Not Allowed", f"{verb} needs a single entity", field="path")
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object", field="body")
        et = res.et
        entity_id = self._resolve_id(res)
        values = values_of(et, body, "", partial=not replace)
        if et is model.OBSERVED_PROPERTY and "MultiDatastreams" in body:
            # Each of them would gain or lose a value of its result without the unit and type that go with it.
            raise bad_request(
                "a MultiDatastream's ObservedProperties change on the MultiDatastream, with its unitOfMeasurements "
                "and multiObservationDataTypes",
                field="MultiDatastreams",
            )
        if replace:
            if et is model.OBSERVATION and "phenomenonTime" not in body:
                # Not null, and no default that would make sense for a stored Observation: "now" would move it.
                raise bad_request("Observation.phenomenonTime is required", field="phenomenonTime")
            for p in et.props:
                if p.name in body or p.read_only or p.kind == model.RESULT or p.column in values:
                    continue  # (values holds a default values_of gave, an observationType's)
                values[p.column] = None
                if p.column_end:
                    values[p.column_end] = None
        with self._tx() as tx:
            for nav in et.navs:
                if nav.name not in body:
                    continue
                sub = body[nav.name]
                if nav.fk:
                    if not isinstance(sub, dict) or "@iot.id" not in sub:  # other members ignored, as in _create
                        raise bad_request(f'{nav.name} must be {{"@iot.id": <id>}}', field=nav.name)
                    values[nav.fk] = self._reference(tx, model.entity(nav.target), sub["@iot.id"], nav.name)
                else:
                    if not isinstance(sub, list):
                        raise bad_request(f"{nav.name} must be an array", field=nav.name)
                    if nav.link:
                        self.store.entities.unlink(tx, nav.link[0], nav.link[1], entity_id)
                    for k, item in enumerate(sub):
                        if not isinstance(item, dict) or "@iot.id" not in item:
                            # The OGC suite (invalidPatchEntities): an update links existing entities; a new
                            # one is made with POST, in its own collection or the entity's.
                            raise bad_request(
                                f'a {verb} links {nav.name} by id ({{"@iot.id": <id>}}); create new ones with POST',
                                field=f"{nav.name}[{k}]",
                            )
                        target = model.entity(nav.target)
                        child = self._reference(tx, target, item["@iot.id"], f"{nav.name}[{k}]")
                        self._link(tx, et, nav, entity_id, child)
            if et is model.MULTI_DATASTREAM:
                self._check_multi_datastream_update(tx, entity_id, body)
            if et is model.OBSERVATION:
                self._update_observation(tx, entity_id, body, values)
            else:
                self.store.entities.update(tx, et.table, entity_id, values)
        self._after_commit(self.catalog.invalidate)
        # What changed, for the MQTT property topics: a PUT replaces every property, a PATCH those it names.
        changed = tuple(p.name for p in et.props if replace or p.name in body)
        self._announce(et, entity_id, "updated", changed)
        return self._fetch(base, et, entity_id)

    def _check_multi_datastream_update(self, tx: Transaction, md_id: int, body: dict[str, Any]) -> None:
        """A changed MultiDatastream still has one unit and one data type per ObservedProperty (SensorThings v1.1
        §12.2), whichever of the three the request changed; its observationType stays OM_ComplexObservation."""
        given = body.get("observationType")
        if "observationType" in body and given != model.OM_COMPLEX:
            raise bad_request(f"a MultiDatastream's observationType is {model.OM_COMPLEX}", field="observationType")
        changed = {"unitOfMeasurements", "multiObservationDataTypes", "ObservedProperties"} & set(body)
        if not changed:
            return
        units, types, props = self._multi_datastream_arrays(tx, md_id)
        _check_multi_datastream_arrays(
            body.get("unitOfMeasurements", units),
            body.get("multiObservationDataTypes", types),
            len(props),
            "",
            changed,
        )

    def patch_json(self, res: Resource, ops: Any, base: str) -> dict[str, Any]:
        """PATCH with ``application/json-patch+json`` (RFC 6902, as SensorThings v1.1 §10.3.2 allows): the
        operations apply to the entity as a GET shows it; what they change is then a PATCH. A failed ``test``
        or a path that is not there is a 409/400 naming the operation, and nothing changes."""
        if res.member is not None or res.is_collection or res.ref:
            raise ProblemError(405, "Method Not Allowed", "PATCH needs a single entity", field="path")
        if not isinstance(ops, list):
            raise bad_request("a JSON Patch is an array of operations", field="body")
        et = res.et
        current = self._fetch(base, et, self._resolve_id(res))
        doc = {p.name: current.get(p.name) for p in et.props}
        try:
            patch = jsonpatch.JsonPatch(ops)
            new = patch.apply(doc)
        except jsonpatch.JsonPatchTestFailed as exc:
            raise conflict(f"JSON Patch: {exc}", field="body") from None
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as exc:
            raise bad_request(f"JSON Patch: {exc}", field="body") from None
        if not isinstance(new, dict):
            raise bad_request("JSON Patch: the result must stay an object", field="body")
        body = {k: v for k, v in new.items() if k not in doc or doc[k] != v or type(doc[k]) is not type(v)}
        body.update({k: None for k in doc if k not in new})
        if not body:
            return dict(current)
        return self.update(res, body, base)

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
        if nav.rank:
            raise bad_request(
                "a MultiDatastream's ObservedProperties change with its unitOfMeasurements and "
                "multiObservationDataTypes: PATCH the MultiDatastream with all three",
                field=nav.name,
            )
        with self._tx() as tx:
            self._reference(tx, last.et, target_id, "@iot.id")
            if nav.fk:
                self.store.entities.update(tx, parent.et.table, parent_id, {nav.fk: target_id})
            else:
                self._link(tx, parent.et, nav, parent_id, target_id)
        self._after_commit(self.catalog.invalidate)

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
        with self._tx() as tx:
            if last.nav.rank:
                md, prop = (parent_id, last.id) if last.nav.ordered else (last.id, parent_id)
                self._drop_observed_property(tx, md, prop)
            else:
                self.store.entities.unlink(tx, link, this_col, parent_id, other_col, last.id)
        # A Thing without that Location any more has another default FeatureOfInterest.
        self._after_commit(self.catalog.invalidate)

    def _multi_datastream_arrays(self, tx: Transaction, md_id: int) -> tuple[list[Any], list[Any], list[int]]:
        """A stored MultiDatastream's unitOfMeasurements, multiObservationDataTypes and ObservedProperty ids, in
        the order of its result's values, as this transaction sees them."""
        nav = _OBSERVED_PROPERTIES
        assert nav.link is not None and nav.rank is not None
        link, this_col, other_col = nav.link
        props = self.store.entities.ranked_links(tx, link, this_col, other_col, nav.rank[0], md_id)
        stored = self.store.entities.columns_in_tx(
            tx, model.MULTI_DATASTREAM.table, md_id, ("unit_of_measurements", "multi_observation_data_types")
        )
        assert stored is not None  # resolved in this request
        units, types = (orjson.loads(v) if isinstance(v, (str, bytes)) else v for v in stored)
        return units, types, props

    def _drop_observed_property(self, tx: Transaction, md_id: int, prop_id: int) -> None:
        """Unlink an ObservedProperty from a MultiDatastream with the unit and data type of each value it was,
        so that the three still fit (SensorThings v1.1 §12.2); the Observations stored keep their results."""
        units, types, props = self._multi_datastream_arrays(tx, md_id)
        keep = [k for k, p in enumerate(props) if p != prop_id]
        if not keep:
            raise conflict(
                "a MultiDatastream has at least one ObservedProperty; delete the MultiDatastream instead",
                field="path",
            )
        nav = _OBSERVED_PROPERTIES
        assert nav.link is not None
        link, this_col, other_col = nav.link
        et = model.MULTI_DATASTREAM
        self.store.entities.update(
            tx,
            et.table,
            md_id,
            {
                "unit_of_measurements": orjson.dumps([units[k] for k in keep]).decode(),
                "multi_observation_data_types": orjson.dumps([types[k] for k in keep]).decode(),
            },
        )
        self.store.entities.unlink(tx, link, this_col, md_id)
        for k in keep:
            self.store.entities.link(tx, link, this_col, other_col, md_id, props[k], nav.rank)

    def delete(self, res: Resource, flt: Node | None = None) -> None:
        """DELETE of an entity, or of the members of a collection that ``flt`` (its ``$filter``) keeps."""
        if res.ref:
            self.delete_reference(res)
            return
        if res.member is not None:
            raise ProblemError(405, "Method Not Allowed", "DELETE needs an entity or a collection", field="path")
        if res.is_collection:
            self._delete_members(res, flt)
            return
        entity_id = self._resolve_id(res)
        with self._tx() as tx:
            self.store.entities.delete(tx, res.et.plural, entity_id)
        self._after_commit(self.catalog.invalidate)
        self._announce(res.et, entity_id, "deleted")

    def _delete_members(self, res: Resource, flt: Node | None) -> None:
        """OData 4.01 Part 1 §11.4.14 (Delete Members of a Collection): each member that the ``$filter`` keeps (all
        of them without one) is deleted as a DELETE of it would, all in one transaction, so that a failure deletes
        none."""
        self._check_parents_exist(res)
        b = SqlBuilder(self.store.dialect)
        where = chain_where(b, res.steps, "e")
        if flt is not None:
            where += " AND (" + filter_sql(b, res.et, "e", flt) + ")"
        with self._tx() as tx:
            ids = [int(row[0]) for row in tx.execute(ids_sql(res.et, where), b.params)]
            for entity_id in ids:
                self.store.entities.delete(tx, res.et.plural, entity_id)
        self._after_commit(self.catalog.invalidate)
        for entity_id in ids:
            self._announce(res.et, entity_id, "deleted")


def new_stream(body: dict[str, Any]) -> str | None:
    """ "Datastream" or "MultiDatastream" when an Observation's body writes a new one inline (no ``@iot.id``)."""
    for key in ("Datastream", "MultiDatastream"):
        sub = body.get(key)
        if isinstance(sub, dict) and "@iot.id" not in sub:
            return key
    return None


def _check_multi_datastream(body: dict[str, Any], values: dict[str, Any], prefix: str, linked: bool) -> None:
    """A MultiDatastream's arrays agree (SensorThings v1.1 §12.2): one unitOfMeasurements entry and one
    multiObservationDataTypes entry per ObservedProperty, in order; its observationType is OM_ComplexObservation
    (given or not)."""
    given = body.get("observationType")
    if given is not None and given != model.OM_COMPLEX:
        raise bad_request(
            f"a MultiDatastream's observationType is {model.OM_COMPLEX}", field=prefix + "observationType"
        )
    values["observation_type"] = model.OM_COMPLEX
    props = body.get("ObservedProperties")
    n = (len(props) if isinstance(props, list) else 0) + linked
    _check_multi_datastream_arrays(
        body.get("unitOfMeasurements"), body.get("multiObservationDataTypes"), n, prefix, _MD_ARRAYS
    )


# The three members of a MultiDatastream that must agree, in the order a disagreement names them.
_MD_ARRAYS = ("multiObservationDataTypes", "unitOfMeasurements", "ObservedProperties")
_OBSERVED_PROPERTIES = next(n for n in model.MULTI_DATASTREAM.navs if n.name == "ObservedProperties")


def _check_multi_datastream_arrays(units: Any, types: Any, n: int, prefix: str, changed: Collection[str]) -> None:
    """A 400 unless ``units`` (unitOfMeasurements) and ``types`` (multiObservationDataTypes) are arrays with one
    entry per ObservedProperty (``n`` of them). A disagreement names the member the request gave that is the odd
    one out (a PATCH of unitOfMeasurements alone that no longer fits names unitOfMeasurements)."""
    if not isinstance(units, list) or not units or not all(isinstance(u, dict) for u in units):
        raise bad_request(
            "unitOfMeasurements must be a non-empty array of objects", field=prefix + "unitOfMeasurements"
        )
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise bad_request(
            "multiObservationDataTypes must be an array of URIs", field=prefix + "multiObservationDataTypes"
        )
    sizes = {"multiObservationDataTypes": len(types), "unitOfMeasurements": len(units), "ObservedProperties": n}
    if len(set(sizes.values())) == 1:
        return
    counts = list(sizes.values())
    odd = [k for k in _MD_ARRAYS if k in changed and counts.count(sizes[k]) == 1]
    field = (odd or [k for k in _MD_ARRAYS if k in changed] or list(_MD_ARRAYS))[0]
    raise bad_request(
        f"{n} ObservedProperties, {len(units)} unitOfMeasurements and {len(types)} multiObservationDataTypes; one "
        "of each per value of the result, in order",
        field=prefix + field,
    )


# The SWE Common component types a Task's parameter may have (OGC 17-079r1 §8.2.2, SWE Common 2.0 JSON) and the
# JSON kinds each takes.
_SWE_KINDS: dict[str, tuple[type, ...]] = {
    "Boolean": (bool,),
    "Count": (int,),
    "Quantity": (int, float),
    "Text": (str,),
    "Category": (str,),
    "Time": (str,),
}


def _fields(record: Any, field: str) -> dict[str, dict[str, Any]]:
    """A TaskingCapability's taskingParameters (a SWE Common DataRecord: ``{"type": "DataRecord", "field": [...]}``;
    ``fields`` read as well) as its fields by name; a 400 naming ``field`` where it is not one."""
    if not isinstance(record, dict) or record.get("type") != "DataRecord":
        raise bad_request(
            'taskingParameters must be a SWE Common DataRecord ({"type": "DataRecord", ...})', field=field
        )
    items = record.get("field", record.get("fields"))
    if not isinstance(items, list) or not items:
        raise bad_request("taskingParameters must list its fields (DataRecord.field)", field=field)
    out: dict[str, dict[str, Any]] = {}
    for k, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise bad_request("each field of taskingParameters needs a name", field=f"{field}.field[{k}]")
        out[item["name"]] = item
    return out


def _check_task(params: Any, fields: dict[str, dict[str, Any]], prefix: str) -> None:
    """A Task's taskingParameters hold values of its TaskingCapability's fields: known names, the JSON kind of each
    field's type, a value among its AllowedTokens; a 400 naming the parameter otherwise."""
    where = prefix + "taskingParameters"
    if not isinstance(params, dict):
        raise bad_request("taskingParameters must be an object of parameter values", field=where)
    for name, value in params.items():
        spec = fields.get(name)
        if spec is None:
            raise bad_request(f"the TaskingCapability has no parameter {name!r} (it has {sorted(fields)})",
                              field=f"{where}.{name}")  # fmt: skip
        kinds = _SWE_KINDS.get(str(spec.get("type")))
        if kinds is not None and (not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool))):
            raise bad_request(f"{name} must be a {spec['type']} value", field=f"{where}.{name}")
        constraint = spec.get("constraint")
        if isinstance(constraint, dict) and constraint.get("type") == "AllowedTokens":
            allowed = constraint.get("value", [])
            if isinstance(allowed, list) and value not in allowed:
                raise bad_request(f"{name} must be one of {allowed}", field=f"{where}.{name}")
