"""Export of Observations in CityHub's long format, for researchers and for ``cityhub replay``.

One row per Observation: ``thing, latitude, longitude, datastream, observed_property, unit, time, result``
(``result_text`` for non-numeric results), as CSV or Parquet. Coordinates are the Thing's first Point
Location; times are UTC.
"""

from __future__ import annotations

import asyncio
import io
from datetime import datetime
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cityhub.api.deps import hub_of, principal, require
from cityhub.api.params import ids_param, time_param
from cityhub.store.base import Store
from cityhub.timefmt import iso_array

router = APIRouter(prefix="/api/v1", tags=["Extensions"])
EXPORT_COLUMNS = ("thing", "latitude", "longitude", "datastream", "observed_property", "unit", "time", "result")
MAX_ROWS = 10_000_000


def export_table(
    store: Store,
    datastreams: list[int],
    things: list[int],
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> pa.Table:
    rows = store.export.observations(datastreams=datastreams, things=things, start=start, end=end, limit=limit)
    thing_ids = rows.column("thing_id").to_pylist()
    # Per-Thing facts are few: resolve them in Python instead of dialect-specific JSON SQL.
    coords: dict[int, tuple[float | None, float | None]] = {}
    for thing_id, loc in store.catalog.first_locations(sorted(set(thing_ids))).items():
        try:
            geo: Any = orjson.loads(loc) if isinstance(loc, str) else loc  # None: TypeError below
            lon, lat = geo["coordinates"][:2] if geo.get("type") == "Point" else (None, None)
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError, AttributeError):
            lon, lat = None, None
        coords[thing_id] = (lat, lon)
    units: dict[str, Any] = {}
    for u in set(rows.column("uom").to_pylist()):
        try:
            units[u] = (orjson.loads(u) or {}).get("symbol")
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            units[u] = None
    return pa.table(
        {
            "thing": rows.column("thing"),
            "latitude": pa.array([coords.get(t, (None, None))[0] for t in thing_ids], pa.float64()),
            "longitude": pa.array([coords.get(t, (None, None))[1] for t in thing_ids], pa.float64()),
            "datastream": rows.column("datastream"),
            "observed_property": rows.column("observed_property"),
            "unit": pa.array([units[u] for u in rows.column("uom").to_pylist()], pa.string()),
            "time": pc.cast(rows.column("time"), pa.timestamp("us", tz="UTC")),
            "result": rows.column("result"),
            "result_text": rows.column("result_text"),
        }
    )


@router.get(
    "/export",
    summary="Observations in CityHub's long format (CSV or Parquet)",
    description="One row per Observation: thing, latitude, longitude, datastream, observed_property, unit, "
    "time (UTC), result (numbers) and result_text (other results). Filter by Datastream or Thing ids and "
    "time; ordered by Datastream and time. `cityhub replay` plays such a file back as a live feed.",
    response_class=Response,
    responses={
        200: {
            "description": "the rows, as a file",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def export(
    request: Request,
    datastreams: str | None = Query(None, description="comma-separated Datastream ids (default: all)"),
    things: str | None = Query(None, description="comma-separated Thing ids"),
    start: str | None = Query(
        None, description="from (ISO 8601 with offset, inclusive)", json_schema_extra={"format": "date-time"}
    ),
    end: str | None = Query(
        None, description="to (ISO 8601 with offset, exclusive)", json_schema_extra={"format": "date-time"}
    ),
    format: Literal["csv", "parquet"] = Query("csv"),
    limit: int = Query(1_000_000, ge=1, le=MAX_ROWS),
) -> Response:
    require(principal(request), "read")
    ds_ids, thing_ids = ids_param(datastreams, "datastreams"), ids_param(things, "things")
    t0, t1 = time_param(start, "start"), time_param(end, "end")
    hub = hub_of(request)

    def build() -> bytes:
        table = export_table(hub.store, ds_ids, thing_ids, t0, t1, limit)
        sink = io.BytesIO()
        if format == "parquet":
            pq.write_table(table, sink, compression="zstd")
        else:  # times as in the rest of the API, "2026-01-01T00:10:00Z" (Arrow's: "2026-01-01 00:10:00.000000Z")
            times = pa.array(iso_array(table.column("time")), pa.string())
            pacsv.write_csv(table.set_column(table.schema.get_field_index("time"), "time", times), sink)
        return sink.getvalue()

    body = await asyncio.to_thread(build)
    media = "application/vnd.apache.parquet" if format == "parquet" else "text/csv; charset=utf-8"
    name = f"cityhub-export.{format}"
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})
