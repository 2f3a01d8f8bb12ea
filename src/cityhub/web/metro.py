"""Hanoi metro lines and stations as GeoJSON: ``GET /api/v1/transit/metro``.

A small fact table written for CityHub (station names, order, approximate positions and status). Source:
the project's reference list ``../shared/data/transit/metro_stations_approx.csv`` (approximate coordinates,
~100 m), transcribed here for the two lines rather than read at run time, so the hub needs no shared files.
Good for a city map, not for surveying.

Status as of 2026: Line 2A (Cát Linh–Hà Đông, to Yên Nghĩa) has run since November 2021; Line 3's elevated
section Nhổn–Cầu Giấy since August 2024, its underground section Kim Mã–Ga Hà Nội is under construction and
the extension to Hoàng Mai is planned (the reference list marks Kim Liên and Hoàng Mai "construction"; that
extension is approved, not built, so they are "planned" here).
"""

from __future__ import annotations

import itertools
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cityhub.api.deps import JSONResponse, principal, require

router = APIRouter(prefix="/api/v1/transit", tags=["Transit"])

# line id → (name, display colour)
LINES: dict[str, tuple[str, str]] = {
    "2A": ("Tuyến 2A Cát Linh – Hà Đông", "#2e9e44"),
    "3": ("Tuyến 3 Nhổn – Ga Hà Nội – Hoàng Mai", "#d6336c"),
}

# code, name, line, lat, lon, status ("operating" | "construction" | "planned"); in line order
STATIONS: list[tuple[str, str, str, float, float, str]] = [
    ("C01", "Cát Linh", "2A", 21.02806, 105.82722, "operating"),
    ("C02", "La Thành", "2A", 21.02028, 105.82528, "operating"),
    ("C03", "Thái Hà", "2A", 21.01444, 105.81944, "operating"),
    ("C04", "Láng", "2A", 21.01250, 105.81194, "operating"),
    ("C05", "Thượng Đình", "2A", 21.00444, 105.80806, "operating"),
    ("C06", "Vành Đai 3", "2A", 20.99222, 105.80444, "operating"),
    ("C07", "Phùng Khoang", "2A", 20.98500, 105.79417, "operating"),
    ("C08", "Văn Quán", "2A", 20.97778, 105.78472, "operating"),
    ("C09", "Hà Đông", "2A", 20.97028, 105.77500, "operating"),
    ("C10", "La Khê", "2A", 20.96389, 105.76667, "operating"),
    ("C11", "Văn Khê", "2A", 20.95556, 105.75611, "operating"),
    ("C12", "Yên Nghĩa", "2A", 20.94972, 105.74833, "operating"),
    ("S01", "Nhổn", "3", 21.05259, 105.73523, "operating"),
    ("S02", "Minh Khai", "3", 21.04806, 105.74472, "operating"),
    ("S03", "Phú Diễn", "3", 21.04389, 105.75528, "operating"),
    ("S04", "Cầu Diễn", "3", 21.04111, 105.76278, "operating"),
    ("S05", "Lê Đức Thọ", "3", 21.03806, 105.77306, "operating"),
    ("S06", "Đại học Quốc gia", "3", 21.03667, 105.78278, "operating"),
    ("S07", "Chùa Hà", "3", 21.03500, 105.79800, "operating"),
    ("S08", "Cầu Giấy", "3", 21.02944, 105.80333, "operating"),
    ("S09", "Kim Mã", "3", 21.03056, 105.81417, "construction"),
    ("S10", "Cát Linh", "3", 21.02806, 105.82722, "construction"),
    ("S11", "Văn Miếu", "3", 21.02667, 105.83639, "construction"),
    ("S12", "Ga Hà Nội", "3", 21.02500, 105.84100, "construction"),
    ("S13", "Kim Liên", "3", 21.01160, 105.84270, "planned"),
    ("S14", "Hoàng Mai", "3", 20.97540, 105.86550, "planned"),
]

SOURCE = "CityHub fact table after metro_stations_approx.csv (approximate positions, ~100 m)"


def metro_geojson() -> dict[str, Any]:
    """A FeatureCollection: one LineString per line section of one status, then one Point per station."""
    features: list[dict[str, Any]] = []
    for line, (name, colour) in LINES.items():
        stops = [s for s in STATIONS if s[2] == line]
        # A section runs between consecutive stations; it takes the status of the less advanced end.
        rank = {"operating": 0, "construction": 1, "planned": 2}
        sections: list[tuple[str, list[list[float]]]] = []
        for a, b in itertools.pairwise(stops):
            status = max(a[5], b[5], key=rank.__getitem__)
            if sections and sections[-1][0] == status:
                sections[-1][1].append([b[4], b[3]])
            else:
                sections.append((status, [[a[4], a[3]], [b[4], b[3]]]))
        for status, coords in sections:
            features.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "LineString", "coordinates": coords},
                    "properties": {"kind": "line", "line": line, "name": name, "color": colour, "status": status},
                }
            )
    for code, name, line, lat, lon, status in STATIONS:
        features.append(
            {
                "type": "Feature",
                "id": code,
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "properties": {
                    "kind": "station",
                    "code": code,
                    "name": name,
                    "line": line,
                    "lineName": LINES[line][0],
                    "color": LINES[line][1],
                    "status": status,
                },
            }
        )
    return {"type": "FeatureCollection", "source": SOURCE, "features": features}


_CACHE = metro_geojson()


@router.get(
    "/metro",
    summary="Hanoi metro lines and stations (GeoJSON)",
    description=(
        "A GeoJSON FeatureCollection: `LineString` features (`kind: line`) per line section with its `status` "
        "(`operating`, `construction` or `planned`), and `Point` features (`kind: station`) with `code`, `name`, "
        "`line`, `lineName`, `color`, `status`. Lines 2A (Cát Linh–Hà Đông) and 3 (Nhổn–Ga Hà Nội–Hoàng Mai); "
        "positions approximate (~100 m)."
    ),
    response_class=Response,
    responses={
        200: {
            "description": "a GeoJSON FeatureCollection",
            "content": {"application/geo+json": {"schema": {"type": "object"}}},
        }
    },
)
async def metro(request: Request) -> Response:
    require(principal(request), "read")
    return JSONResponse(_CACHE, media_type="application/geo+json")
