"""The dashboard's own basemap, for a control room without internet or tile server: Hà Nội's 126 wards and
communes (the July 2025 reorganisation) and its main roads, as one GeoJSON at ``GET /api/v1/basemap``.

Built at run time from the project's reference data in ``Settings.geo_dir`` (``../shared/data/geo``: OSM ward
polygons, OSM main-road graph ~2016), never copied into the repository: ward polygons are kept where their name and
centroid match a Hà Nội ward of ``vietnam_wards_2025.csv`` (the GeoJSON also holds units of neighbouring
provinces), simplified to ~20 m; roads are the graph's motorway, trunk, primary and secondary edges as straight
segments between its nodes. Built once per process (~0.5 s) and served with an ETag. Where the folder is absent
the answer is a 404 saying so, and the page keeps its plain background.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import orjson
import shapely
from fastapi import APIRouter, Request
from fastapi.responses import Response

from cityhub.api.deps import hub_of, principal, require
from cityhub.errors import ProblemError

router = APIRouter(prefix="/api/v1", tags=["operations"])

WARDS = "hanoi_wards_2025_merged.geojson"
WARD_LIST = "vietnam_wards_2025.csv"
ROADS = "hanoi_main_roads_2016.gexf"
ROAD_CLASSES = ("motorway", "trunk", "primary", "secondary")
SIMPLIFY_DEG = 0.0002  # ~20 m at Hanoi's latitude: invisible at city zoom, a tenth of the vertices
MATCH_DEG = 0.08  # a polygon's centre within ~9 km of the listed centroid of a ward of the same name


def _wards(geo_dir: Path) -> list[dict[str, Any]]:
    listed: dict[str, list[tuple[float, float]]] = {}
    with (geo_dir / WARD_LIST).open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["province"] == "Hà Nội":
                listed.setdefault(row["ward"].casefold(), []).append((float(row["lon"]), float(row["lat"])))
    data = orjson.loads((geo_dir / WARDS).read_bytes())
    out = []
    for feature in data["features"]:
        name = str(feature["properties"].get("name") or "")
        geom = shapely.geometry.shape(feature["geometry"])
        centre = geom.representative_point()
        near = listed.get(name.casefold(), [])
        if not any(abs(centre.x - lon) < MATCH_DEG and abs(centre.y - lat) < MATCH_DEG for lon, lat in near):
            continue
        simple = shapely.set_precision(geom.simplify(SIMPLIFY_DEG, preserve_topology=True), 1e-5)
        out.append({
            "type": "Feature",
            "geometry": shapely.geometry.mapping(simple),
            "properties": {"layer": "ward", "name": name, "population": feature["properties"].get("population")},
        })  # fmt: skip
    return out


def _roads(geo_dir: Path) -> list[dict[str, Any]]:
    root = ET.parse(geo_dir / ROADS).getroot()
    uri = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    q = (lambda tag: f"{{{uri}}}{tag}") if uri else (lambda tag: tag)
    titles: dict[tuple[str, str], str] = {}
    for attrs in root.iter(q("attributes")):
        for attr in attrs.iter(q("attribute")):
            titles[(attrs.get("class", ""), attr.get("id", ""))] = attr.get("title", "")
    nodes: dict[str, tuple[float, float]] = {}
    for node in root.iter(q("node")):
        vals = {titles.get(("node", v.get("for", ""))): v.get("value") for v in node.iter(q("attvalue"))}
        if vals.get("lat") and vals.get("lng"):
            nodes[node.get("id", "")] = (round(float(vals["lng"] or 0), 5), round(float(vals["lat"] or 0), 5))
    out = []
    for edge in root.iter(q("edge")):
        vals = {titles.get(("edge", v.get("for", ""))): v.get("value") for v in edge.iter(q("attvalue"))}
        kind = (vals.get("HIGHWAY") or "").removesuffix("_link")
        a, b = nodes.get(edge.get("source", "")), nodes.get(edge.get("target", ""))  # ends: (lon, lat)
        if kind not in ROAD_CLASSES or a is None or b is None:
            continue
        raw = vals.get("NAME") or ""
        try:  # the file stores UTF-8 names as Latin-1 (see the data README)
            name = raw.encode("latin1").decode("utf8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            name = raw
        out.append({
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": [list(a), list(b)]},
            "properties": {"layer": "road", "class": kind, "name": name or None},
        })  # fmt: skip
    return out


def available(geo_dir: Path) -> bool:
    """Whether the reference files the basemap is built from are there."""
    return all((geo_dir / f).is_file() for f in (WARDS, WARD_LIST, ROADS))


def build(geo_dir: Path) -> bytes | None:
    """The basemap as GeoJSON bytes, or None where the reference files are absent."""
    if not available(geo_dir):
        return None
    features = _wards(geo_dir) + _roads(geo_dir)
    source = "OpenStreetMap contributors (ODbL): wards 2025, main roads ~2016"
    return orjson.dumps({"type": "FeatureCollection", "source": source, "features": features})


_built: dict[Path, tuple[bytes, str] | None] = {}
_lock = threading.Lock()


def cached(geo_dir: Path) -> tuple[bytes, str] | None:
    with _lock:
        if geo_dir not in _built:
            body = build(geo_dir)
            _built[geo_dir] = None if body is None else (body, hashlib.sha256(body).hexdigest()[:16])
        return _built[geo_dir]


@router.get(
    "/basemap",
    summary="Hà Nội's wards and main roads (GeoJSON), the dashboard's map without tiles",
    response_class=Response,
    responses={200: {"content": {"application/geo+json": {"schema": {"type": "object"}}}}},
)
async def basemap(request: Request) -> Response:
    require(principal(request), "read")
    geo_dir = hub_of(request).settings.geo_dir
    got = await asyncio.to_thread(cached, geo_dir)
    if got is None:
        raise ProblemError(404, "Not Found", f"no basemap: the reference data is not in {geo_dir} (CITYHUB_GEO_DIR)")
    body, etag = got
    headers = {"ETag": f'"{etag}"', "Cache-Control": "public, max-age=3600"}
    if request.headers.get("if-none-match") == f'"{etag}"':
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/geo+json", headers=headers)
