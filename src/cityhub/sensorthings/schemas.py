"""JSON Schemas of entity bodies for the OpenAPI document, generated from the model metadata."""

from __future__ import annotations

from typing import Any

from cityhub import model

_KIND: dict[str, dict[str, Any]] = {
    model.STRING: {"type": "string"},
    model.URI: {"type": "string"},
    model.JSON: {"type": ["object", "null"]},
    model.DATETIME: {"type": "string", "format": "date-time"},
    model.INTERVAL: {"type": "string", "description": "ISO 8601 time or interval start/end"},
    model.GEOMETRY: {"type": "object", "description": "GeoJSON geometry or Feature"},
    model.RESULT: {"description": "number, string, boolean or JSON value, per observationType"},
}


def entity_schema(et: model.EntityType, depth: int = 0) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for p in et.props:
        if p.read_only:
            continue
        s = dict(_KIND[p.kind])
        if p.name == "observationType":
            s["description"] = (
                "the O&M type; its result rules apply (any other URI, or none: OM_Observation's, any JSON value)"
            )
            s["examples"] = sorted(model.OBSERVATION_TYPES)
        if p.kind == model.GEOMETRY:
            s = {"description": "GeoJSON geometry or Feature; any JSON value when encodingType is not GeoJSON"}
        if p.name == "unitOfMeasurement":
            s = {
                "type": "object",
                "properties": {k: {"type": "string"} for k in ("name", "symbol", "definition")},
                "additionalProperties": False,
            }
        props[p.name] = s
    ref = {"type": "object", "properties": {"@iot.id": {"type": "integer"}}, "required": ["@iot.id"]}
    for n in et.navs:
        if depth >= 1:
            target: dict[str, Any] = ref
        else:
            target = {"oneOf": [ref, entity_schema(model.entity(n.target), depth + 1)]}
        props[n.name] = {"type": "array", "items": target} if n.many else target
    return {
        "type": "object",
        "title": et.name,
        "properties": props,
        "required": [p.name for p in et.props if p.required],
        "additionalProperties": False,
    }
