"""Air-quality endpoints: the current index of every station, one station's history, a city summary and
school guidance. Indices are computed from the stations' hourly means at request time, so every standard
(VN_AQI, US EPA 2024 and 2012, Korea CAI) is available; VN_AQI is also stored as derived Datastreams."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from cityhub import airquality as aq
from cityhub.airquality.live import AirQuality, Station
from cityhub.api.deps import JSONResponse, hub_of, principal, require
from cityhub.api.params import time_param
from cityhub.errors import bad_request, not_found
from cityhub.timefmt import TIME_MIN, iso_time

router = APIRouter(prefix="/api/v1/aqi", tags=["Air quality"])
Standard = Literal["vn", "us", "us2012", "kr", "us2012-stateair"]
STANDARD_QUERY = Query(
    "vn",
    description="vn = VN_AQI (1459/QĐ-TCMT), us = US EPA AQI (2024), us2012, kr = Korea CAI, us2012-stateair = "
    "the 2012 table with the PM NowCast rounded as the US Embassy's StateAir files of 2016-2017 (historical)",
)


def _aq(request: Request) -> AirQuality:
    return hub_of(request).airquality


def _station_body(st: Station, hour: datetime | None, result: aq.IndexResult | None) -> dict[str, Any]:
    coords = (st.location or {}).get("coordinates") if isinstance(st.location, dict) else None
    return {
        "thing": st.thing_id,
        "name": st.name,
        "location": st.location,
        "coordinates": coords,
        "pollutants": sorted(st.streams),
        "hour": iso_time(hour),
        "aqi": result.to_dict() if result else None,
    }


def _station(request: Request, thing: int) -> Station:
    st = _aq(request).stations().get(thing)
    if st is None:
        raise not_found(f"Thing({thing}) is not an air-quality station (no pollutant Datastreams)", field="thing")
    return st


DATE_TIME: dict[str, Any] = {"json_schema_extra": {"format": "date-time"}}
THING = Path(ge=0, le=2**63 - 1, description="the station's Thing id")
AT_QUERY = Query(
    None,
    alias="at",
    json_schema_extra={"format": "date-time"},
    description="ISO 8601 with zone: the index of the hour holding this time (a past view); "
    "default: each station's latest hour with data",
)


@router.get("/stations", summary="Current index of every air-quality station")
async def stations(request: Request, index: Standard = STANDARD_QUERY, at_: str | None = AT_QUERY) -> Response:
    require(principal(request), "read")
    at = time_param(at_, "at")
    live = _aq(request)

    def compute() -> list[dict[str, Any]]:
        sts = list(live.stations().values())
        return [_station_body(st, *cur) for st, cur in zip(sts, live.current_many(sts, index, at), strict=True)]

    return JSONResponse({"index": index, "value": await asyncio.to_thread(compute)})


@router.get("/stations/{thing}", summary="Current index of one station")
async def station(
    request: Request, thing: int = THING, index: Standard = STANDARD_QUERY, at_: str | None = AT_QUERY
) -> Response:
    require(principal(request), "read")
    at = time_param(at_, "at")
    st = _station(request, thing)
    [(hour, result)] = await asyncio.to_thread(_aq(request).current_many, [st], index, at)
    return JSONResponse(_station_body(st, hour, result))


@router.get("/stations/{thing}/history", summary="Index history of one station, by hour or by day")
async def history(
    request: Request,
    thing: int = THING,
    index: Standard = STANDARD_QUERY,
    period: Literal["hour", "day"] = Query("hour"),
    start_: str | None = Query(
        None, alias="start", description="ISO 8601 with zone; default: 48 hours (hour) or 30 days ago", **DATE_TIME
    ),
    end_: str | None = Query(None, alias="end", description="ISO 8601 with zone, exclusive; default: now", **DATE_TIME),
) -> Response:
    require(principal(request), "read")
    start, end = time_param(start_, "start"), time_param(end_, "end")
    end = end or datetime.now(UTC) + timedelta(hours=1)
    span = timedelta(hours=48) if period == "hour" else timedelta(days=30)
    # An end near the start of the range has less than the default span before it.
    start = start or (end - span if end - TIME_MIN > span else TIME_MIN)
    if end <= start:
        raise bad_request("end must be after start", field="end")
    if end - start > timedelta(days=400 if period == "hour" else 3660):
        raise bad_request("the range is too long for one call", field="start")
    st = _station(request, thing)
    rows = await asyncio.to_thread(_aq(request).history, st, index, period, start, end)
    return JSONResponse(
        {
            "thing": thing,
            "index": index,
            "period": period,
            "value": [
                {"time": iso_time(t), **r.to_dict()} for t, r in rows if r.value is not None
            ],
        }
    )


@router.get("/summary", summary="City summary: worst station and the number of stations per category")
async def summary(request: Request, index: Standard = STANDARD_QUERY) -> Response:
    require(principal(request), "read")
    live = _aq(request)

    def compute() -> dict[str, Any]:
        sts = list(live.stations().values())
        bodies = [_station_body(st, *cur) for st, cur in zip(sts, live.current_many(sts, index), strict=True)]
        rated = [b for b in bodies if b["aqi"] and b["aqi"]["value"] is not None]
        counts: dict[str, int] = {}
        for b in rated:
            key = b["aqi"]["category"]["key"]
            counts[key] = counts.get(key, 0) + 1
        worst = max(rated, key=lambda b: b["aqi"]["value"], default=None)
        return {
            "index": index,
            "stations": len(bodies),
            "reporting": len(rated),
            "worst": worst,
            "categories": counts,
        }

    return JSONResponse(await asyncio.to_thread(compute))


@router.get("/stations/{thing}/school", summary="Outdoor-activity guidance for schools from the current VN_AQI")
async def school(request: Request, thing: int = THING) -> Response:
    require(principal(request), "read")
    st = _station(request, thing)
    hour, result = await asyncio.to_thread(_aq(request).current, st, "vn")
    if result is None or result.value is None:
        raise not_found("the station has no recent PM data to compute VN_AQI from", field="thing")
    return JSONResponse(
        {"thing": thing, "name": st.name, "hour": iso_time(hour), **aq.school_guidance(result)}
    )
