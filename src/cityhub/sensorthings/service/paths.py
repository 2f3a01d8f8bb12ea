"""Resource paths of SensorThings (``Things(1)/Datastreams``, ``…/name/$value``, ``…/$ref``) and the SQL condition
that selects what a path addresses (compiled with the query builder's dialect placeholders)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from cityhub import model
from cityhub.errors import ProblemError, bad_request, not_found
from cityhub.sensorthings.filter import Node, parse_filter

_SEGMENT = re.compile(r"^([A-Za-z]+)(?:\(([^)]*)\))?$")
# A member of a JSON property, with the array indexes after it: /properties/list[0][1]
_JSON_SEGMENT = re.compile(r"^([^\[\]]+)((?:\[[0-9]{1,9}\])*)$")
_INDEX = re.compile(r"\[[0-9]+\]")
# A JSON property indexed at once: /Observations(1)/result[0] (a MultiDatastream's result), /Things(1)/properties[2]
_INDEXED = re.compile(r"^([A-Za-z]+)((?:\[[0-9]{1,9}\])+)$")
# Properties whose value is JSON, members of which a path may address (a result is any JSON value)
_WITH_MEMBERS = (model.JSON, model.RESULT)


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
    # Below a JSON property, the member addressed (/Things(1)/properties/list[0]: "list", "[0]") and the name
    # it is answered under (the last segment, "list[0]").
    keys: tuple[str, ...] = ()
    key_name: str | None = None
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
            prop = steps[-1].et.prop(res.member)
            m = _JSON_SEGMENT.match(part)
            if prop is None or prop.kind not in _WITH_MEMBERS or m is None:
                raise not_found(f"nothing below property {res.member!r}", field="path")
            res.keys += (m.group(1), *_INDEX.findall(m.group(2)))
            res.key_name = part
            continue
        indexed = _INDEXED.match(part)
        if indexed is not None and steps and steps[-1].id is not None:
            prop = steps[-1].et.prop(indexed.group(1))
            if prop is not None and prop.kind in _WITH_MEMBERS:
                res.member = indexed.group(1)
                res.keys += tuple(_INDEX.findall(indexed.group(2)))
                res.key_name = part
                continue
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


def reference_by_id(res: Resource, entity_id: str, url: str, base: str) -> Resource:
    """``DELETE .../Things(1)/Locations/$ref?$id=../../Locations(5)`` (OData 4.01 Part 1 §11.4.6.2): the $ref of
    the entity ``$id`` names, a URL relative to the request's ``url`` or absolute; ``base``: the service root. A
    400 unless it names one entity of the collection's type; a 404 for an id no entity can have."""
    from urllib.parse import urljoin, urlsplit

    target = urlsplit(urljoin(url, entity_id)).path
    root = urlsplit(base).path.rstrip("/")
    if not target.startswith(root + "/"):
        raise bad_request(f"$id must name an entity of this service ({base}/...)", field="$id")
    try:
        named = parse_path(target[len(root) :])
    except ProblemError as exc:
        raise ProblemError(exc.status, exc.title, f"$id: {exc.detail}", field="$id") from None
    step = named.steps[0]
    if len(named.steps) != 1 or step.id is None or named.member or named.ref or step.et is not res.et:
        raise bad_request(f"$id must name one of the {res.et.plural}: {res.et.plural}(<id>)", field="$id")
    last = res.steps[-1]
    return Resource([*res.steps[:-1], Step(last.et, last.nav, step.id)], ref=True)


def delete_target(res: Resource, query: Mapping[str, str], url: str, base: str) -> tuple[Resource, Node | None]:
    """What a DELETE of ``res`` with these query options removes, as the HTTP routes and ``$batch`` change sets both
    read it: the reference that ``$id`` names (``…/Locations/$ref?$id=…``, see ``reference_by_id``), or, for a
    collection, the members its ``$filter`` keeps (all of them without one)."""
    entity_id = query.get("$id")
    if res.ref and res.steps[-1].id is None and entity_id is not None:
        res = reference_by_id(res, entity_id, url, base)
    flt = query.get("$filter") if res.is_collection and not res.ref else None
    return res, None if flt is None else parse_filter(flt)


def next_link(base: str, res: Resource, query_string: str, skip: int, top: int) -> str:
    from urllib.parse import parse_qsl, urlencode

    path = "/".join(
        (s.nav.name if s.nav else s.et.plural) + (f"({s.id})" if s.id is not None else "") for s in res.steps
    )
    params = [(k, v) for k, v in parse_qsl(query_string, keep_blank_values=True) if k not in ("$skip", "$top")]
    params += [("$top", str(top)), ("$skip", str(skip))]
    return f"{base}/{path}?{urlencode(params, safe='$(),/')}"


def refuse_tasking(res: Resource, tasking: bool) -> None:
    """A 404 for a path through the Tasking entity sets while tasking is off (CITYHUB_TASKING): the HTTP routes
    and ``$batch`` change sets both ask here."""
    if not tasking and any(s.et.name in model.TASKING_TYPES for s in res.steps):
        raise ProblemError(404, "Not Found", "Tasking is not enabled on this hub (CITYHUB_TASKING)", field="path")
