"""Things as GeoJSON for map clients: ``GET /api/v1/geo/things``.

One Feature per Thing: its (first) Location as the geometry, its name and properties, and its Datastreams with
their unit and ObservedProperty, in a single flat query; optionally only the Things of some kinds, or with a
Datastream of some ObservedProperties (what a map view shows). The same content as
``/v1.1/Things?$expand=Locations,Datastreams($expand=ObservedProperty)``, in the shape GIS tools read, at a
fraction of the cost for thousands of Things (the dashboard's road segments); the JSON members stored as text are
passed through without being parsed again.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import Field

from cityhub.api.deps import hub_of, principal, require
from cityhub.errors import bad_request
from cityhub.hub import Hub

router = APIRouter(prefix="/api/v1/geo", tags=["CityHub extensions"])

MAX_KINDS = 20
GEOJSON = {"type": "object", "properties": {"type": {"const": "FeatureCollection"}, "features": {"type": "array"}}}


def _features(hub: Hub, kinds: list[str], observed: list[str]) -> bytes:
    # The SQL pre-filter on kinds is loose (text contains); the exact test on properties.kind is here.
    things, rows = hub.store.geo.things(kinds, observed)
    wanted = set(kinds)
    keep: dict[int, tuple[str, Any, str | None]] = {}
    for tid, name, props, location in things:
        parsed = orjson.loads(props) if props else {}
        if wanted and not (isinstance(parsed, dict) and parsed.get("kind") in wanted):
            continue
        keep[tid] = (name, props, location)
    streams: dict[int, list[dict[str, Any]]] = {tid: [] for tid in keep}
    if keep:
        for did, tid, dname, uom, opname, opdef in rows:
            if tid in streams:
                unit = orjson.loads(uom) if uom else {}
                streams[tid].append(
                    {
                        "@iot.id": did,
                        "name": dname,
                        "unit": unit.get("symbol") if isinstance(unit, dict) else None,
                        "observedProperty": {"name": opname, "definition": opdef},
                    }
                )
    features = []
    for tid, (name, props, location) in keep.items():
        geometry: Any = None
        if location:
            geometry = orjson.Fragment(location)
            if '"Feature"' in location[:40]:  # a Location given as a GeoJSON Feature: its geometry
                geometry = orjson.loads(location).get("geometry")
        features.append(
            {
                "type": "Feature",
                "id": tid,
                "geometry": geometry,
                "properties": {
                    "name": name,
                    "properties": orjson.Fragment(props) if props else None,
                    "Datastreams": streams[tid],
                    "selfLink": f"/v1.1/Things({tid})",
                },
            }
        )
    return orjson.dumps({"type": "FeatureCollection", "features": features})


@router.get(
    "/things",
    summary="Things with their Location and Datastreams, as GeoJSON",
    description=(
        "A GeoJSON FeatureCollection, one Feature per Thing (`id`: the Thing's `@iot.id`; `geometry`: its first "
        "Location, null without one; `properties`: `name`, the Thing's `properties`, its `Datastreams` with "
        "`@iot.id`, `name`, `unit` (symbol) and `observedProperty` {name, definition}). `kind=` (repeatable) keeps "
        "the Things whose `properties.kind` is one of them, e.g. `kind=traffic detector&kind=water gauge`; "
        "`observedProperty=` (repeatable) keeps the Things with a Datastream whose ObservedProperty's `definition` or "
        "`name` is one of them, e.g. `observedProperty=http://qudt.org/vocab/quantitykind/Speed` (with both, a Thing "
        "passes both)."
    ),
    response_class=Response,
    responses={
        200: {"description": "a GeoJSON FeatureCollection", "content": {"application/geo+json": {"schema": GEOJSON}}}
    },
)
async def geo_things(
    request: Request,
    kind: list[Annotated[str, Field(min_length=1, max_length=100)]] = Query([], max_length=MAX_KINDS),
    observed_property: list[Annotated[str, Field(min_length=1, max_length=300)]] = Query(
        [], alias="observedProperty", max_length=MAX_KINDS
    ),
) -> Response:
    require(principal(request), "read")
    if any(not k or len(k) > 100 for k in kind):
        raise bad_request("each kind has 1 to 100 characters", field="kind")
    if any(not p or len(p) > 300 for p in observed_property):
        raise bad_request("each observedProperty has 1 to 300 characters", field="observedProperty")
    body = await asyncio.to_thread(_features, hub_of(request), kind, observed_property)
    return Response(body, media_type="application/geo+json")
