"""Stored rows to SensorThings JSON: entity properties, self and navigation links, the dataArray format."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from cityhub import model, results
from cityhub.timefmt import iso_time


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
            out[p.name] = results.value_of(num, text, js)
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


def self_link(base: str, et: model.EntityType, entity_id: Any) -> str:
    return f"{base}/{et.plural}({entity_id})"


def shape(base: str, et: model.EntityType, entity: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    """An entity as the API shows it: ``@iot.id``, ``@iot.selfLink``, its properties, a navigation link for
    each navigation that was not expanded, reduced to ``$select``."""
    link = self_link(base, et, entity["@iot.id"])
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
        members = [s.split("/") for s in select if "/" in s]
        out = {k: v for k, v in out.items() if k in keep or k.split("@")[0] in keep}
        for head, *keys in members:
            if head in keep:
                continue  # the whole property is selected
            value = json_member(entity.get(head), keys)
            if value is not MISSING:
                _put(out.setdefault(head, {}), keys, value)
    return out


MISSING = object()  # what json_member finds where a JSON value has no such member


def json_member(value: Any, keys: Sequence[str]) -> Any:
    """The member at ``keys`` of a JSON value (an array index written ``[n]``); ``MISSING`` where there is none (a
    member that is there with the value null is None)."""
    for key in keys:
        if key.startswith("["):
            index = int(key[1:-1])
            if not isinstance(value, list) or index >= len(value):
                return MISSING
            value = value[index]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            return MISSING
    return value


def _put(out: dict[str, Any], keys: list[str], value: Any) -> None:
    """Sets the member at ``keys`` of ``out``, making the objects on the way: two selected members of one object
    share it."""
    for key in keys[:-1]:
        out = out.setdefault(key, {})
    out[keys[-1]] = value


def _component(entity: dict[str, Any], name: str) -> Any:
    """A data array's value of component ``name``: a property, or a member of a JSON one (``parameters/depth``)."""
    if name == "id":
        return entity["@iot.id"]
    if "/" not in name:
        return entity.get(name)
    head, *keys = name.split("/")
    value = json_member(entity.get(head), keys)
    return None if value is MISSING else value


def data_array(
    base: str,
    pairs: list[tuple[dict[str, Any], dict[str, Any]]],
    select: list[str] | None,
    is_multi: Callable[[int], bool] = lambda _: False,
) -> list[dict[str, Any]]:
    """Observations in the Data Array format (SensorThings §14.3), grouped by Datastream (or MultiDatastream: the
    two share one id space, ``is_multi`` tells them apart)."""
    # Without $select, every property of an Observation, as FROST-Server gives them (the spec's example selects).
    every = ["@iot.id"] + [p.name for p in model.OBSERVATION.props]
    comps = [c for c in (select or every) if not c.endswith("selfLink")]
    comps = ["id" if c == "@iot.id" else c for c in comps]
    groups: dict[Any, list[list[Any]]] = {}
    for e, fks in pairs:
        groups.setdefault(fks["Datastream"], []).append([_component(e, c) for c in comps])
    return [
        {
            **(
                {"MultiDatastream@iot.navigationLink": self_link(base, model.MULTI_DATASTREAM, ds)}
                if is_multi(ds)
                else {"Datastream@iot.navigationLink": self_link(base, model.DATASTREAM, ds)}
            ),
            "components": comps,
            "dataArray@iot.count": len(rows),
            "dataArray": rows,
        }
        for ds, rows in groups.items()
    ]
