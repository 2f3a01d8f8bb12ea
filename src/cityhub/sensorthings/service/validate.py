"""Checks of entity bodies that need no database: property values, units, GeoJSON, references."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import shapely.geometry

from cityhub import jsontext, model
from cityhub.errors import bad_request
from cityhub.timefmt import parse_interval, parse_time


def values_of(et: model.EntityType, body: dict[str, Any], prefix: str, *, partial: bool) -> dict[str, Any]:
    known = {p.name for p in et.props} | {n.name for n in et.navs} | {"@iot.id"}
    for k in body:
        if k not in known and not k.endswith("@iot.navigationLink") and k != "@iot.selfLink":
            raise bad_request(f"{et.name} has no property {k!r}", field=prefix + k)
    values: dict[str, Any] = {}
    for p in et.props:
        if p.name not in body:
            if p.required and not partial:
                raise bad_request(f"{et.name}.{p.name} is required", field=prefix + p.name)
            if p.name == "observationType" and not partial:
                values[p.column] = model.OM_OBSERVATION  # the type whose result is "Any"
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
            jsontext.check_no_nul(v, field)
            if p.name == "observationType" and not v.strip():
                raise bad_request("observationType is a URI, not empty", field=field)
            values[p.column] = v
        elif p.kind == model.JSON:
            if p.name == "unitOfMeasurement":
                _check_uom(v, field)
            elif p.name in ("properties", "parameters") and not isinstance(v, dict):
                raise bad_request(f"{p.name} must be a JSON object", field=field)
            values[p.column] = jsontext.dump(v, field)
        elif p.kind == model.GEOMETRY:
            # GeoJSON unless the entity says otherwise (a Location may be text/plain, an address): then any JSON
            # value is kept as sent, and the geo functions see no geometry in it.
            if _is_geojson(body.get("encodingType")):
                _check_geojson(v, field)
            values[p.column] = jsontext.dump(v, field)
        elif p.kind == model.DATETIME:
            values[p.column] = parse_time(v, field)
        elif p.kind == model.INTERVAL:
            start, end = parse_interval(v, field)
            values[p.column] = start
            assert p.column_end
            values[p.column_end] = end
    return values


def _reference_id(body: Any, et: model.EntityType) -> int:
    if isinstance(body, dict) and set(body) == {"@iot.id"} and isinstance(body["@iot.id"], int):
        return body["@iot.id"]
    if isinstance(body, dict) and set(body) == {"@iot.selfLink"} and isinstance(body["@iot.selfLink"], str):
        m = re.search(rf"/{et.plural}\((\d+)\)$", body["@iot.selfLink"])
        if m:
            return int(m.group(1))
        raise bad_request(f"@iot.selfLink must end in /{et.plural}(<id>)", field="@iot.selfLink")
    raise bad_request('send {"@iot.id": <id>} or {"@iot.selfLink": "<url>"}', field="body")


def _inverse(p_et: model.EntityType, p_nav: model.Nav, et: model.EntityType) -> model.Nav | None:
    """The to-one navigation of ``et`` that points back at the parent (Datastream.Thing for Thing.Datastreams)."""
    if p_nav.remote_fk:
        for n in et.navs:
            if n.fk == p_nav.remote_fk and n.target == p_et.name:
                return n
    return None


def _is_geojson(encoding: Any) -> bool:
    """Whether a geometry property holds GeoJSON: its entity's encodingType says so (application/geo+json,
    application/vnd.geo+json), or gives none (a PATCH of the geometry alone, an observedArea)."""
    return encoding is None or not isinstance(encoding, str) or "geo+json" in encoding.lower()


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
