"""Live VN_AQI latency: from the arrival of an hour's pollutant Observations (one bulk POST) to the updated
hourly index in the station's derived "VN_AQI hourly" Datastream, as a client polling the API sees it.

With ``--stations N``, also the cost of one live update of N stations' new hour (what the hub's leader does when
single Observations land on many stations): ``AirQuality.update`` timed in-process, on the store of ``--store``.

Run with ``python -m bench.aqi_live [--store postgresql://...?schema=...] [--stations 1000]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx
import orjson
import pyarrow as pa

from bench._util import (
    Report,
    Server,
    create_admin_key,
    ensure_importable,
    free_port,
    log,
    make_tmpdir,
    percentile,
    remove_tmpdir,
)

if TYPE_CHECKING:
    from cityhub.core import Core

POLLUTANTS = {"PM2.5": 45.0, "PM10": 80.0, "O3": 60.0, "NO2": 40.0, "SO2": 12.0, "CO": 900.0}
UGM3 = {
    "name": "microgram per cubic metre",
    "symbol": "µg/m³",
    "definition": "http://qudt.org/vocab/unit/MicroGM-PER-M3",
}
OM = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


def live_latency(report: Report, trials: int = 30, store: str = "") -> None:
    tmp = make_tmpdir("aqi-live")
    data_dir = tmp / "var"
    server = Server(data_dir, free_port(), create_admin_key(data_dir), ["--store", store] if store else [])
    try:
        server.start()
        with httpx.Client(base_url=server.base, headers=server.headers, timeout=30) as c:
            body = {
                "name": "Trạm Kim Liên", "description": "air-quality station",
                "Locations": [{"name": "Kim Liên", "description": "Hà Nội", "encodingType": "application/geo+json",
                               "location": {"type": "Point", "coordinates": [105.8384, 21.0073]}}],
                "Datastreams": [
                    {"name": name, "description": name, "observationType": OM, "unitOfMeasurement": UGM3,
                     "Sensor": {"name": "s", "description": "s", "encodingType": "text/html", "metadata": "m"},
                     "ObservedProperty": {"name": name, "definition": f"http://example.org/{name}",
                                          "description": name}}
                    for name in POLLUTANTS
                ],
            }  # fmt: skip
            thing = c.post("/v1.1/Things", json=body).json()["@iot.id"]
            streams = {d["name"]: d["@iot.id"] for d in c.get(f"/v1.1/Things({thing})/Datastreams").json()["value"]}
            start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=12 + trials)

            def post_hour(h: int) -> None:
                t = (start + timedelta(hours=h)).isoformat()
                rows = [f"{streams[n]},{t},{v * (1 + 0.1 * (h % 5))}" for n, v in POLLUTANTS.items()]
                r = c.post(
                    "/api/v1/ingest",
                    content="datastream,phenomenonTime,result\n" + "\n".join(rows),
                    headers={"Content-Type": "text/csv"},
                )
                r.raise_for_status()

            for h in range(12):  # a NowCast needs history
                post_hour(h)
            derived = None
            deadline = time.monotonic() + 10
            while derived is None and time.monotonic() < deadline:
                found = c.get(f"/v1.1/Things({thing})/Datastreams", params={"$filter": "name eq 'VN_AQI hourly'"})
                derived = (found.json()["value"] or [{}])[0].get("@iot.id")
                time.sleep(0.05)
            if derived is None:
                report.problem("the derived VN_AQI hourly Datastream did not appear")
                return
            lat: list[float] = []
            for k in range(trials):
                h = 12 + k
                want = (start + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ")
                t0 = time.perf_counter()
                post_hour(h)
                while True:
                    latest = c.get("/api/v1/latest", params={"datastreams": str(derived)}).json()["value"]
                    if latest and latest[0]["phenomenonTime"] == want:
                        break
                    if time.perf_counter() - t0 > 5:
                        report.problem(f"hour {want}: the hourly VN_AQI was not updated within 5 s")
                        break
                    time.sleep(0.002)
                lat.append(time.perf_counter() - t0)
        p50, p95 = statistics.median(lat) * 1e3, percentile(lat, 0.95) * 1e3
        log(
            f"  live VN_AQI: {trials} hours posted; ingest → updated hourly index median {p50:.0f} ms, p95 {p95:.0f} ms"
        )
        report.add(
            f"live: an hour's Observations → updated hourly VN_AQI ({trials} hours, p50 / p95)",
            f"{p50:.0f} / {p95:.0f} ms",
            "< 100 ms",
            p95 < 100,
        )
    finally:
        server.stop()
        remove_tmpdir(tmp)


def _make_stations(core: Core, n: int) -> list[int]:
    """n stations of one PM2.5 Datastream each (with a Location, whose FeatureOfInterest the indices take), made
    in bulk through the store rather than n deep inserts over HTTP."""
    store = core.store
    things = [int(i) for i in store.allocate_ids("things", n)]
    locations = [int(i) for i in store.allocate_ids("locations", n)]
    with store.transaction() as tx:
        tx.append_table(
            "things",
            pa.Table.from_pylist(
                [{"id": t, "name": f"Trạm {k}", "description": "air-quality station"} for k, t in enumerate(things)]
            ),
        )
        tx.append_table(
            "locations",
            pa.Table.from_pylist(
                [
                    {
                        "id": loc,
                        "name": f"site {k}",
                        "description": "Hà Nội",
                        "encoding_type": "application/geo+json",
                        "location": orjson.dumps({"type": "Point", "coordinates": [105.7 + k * 1e-4, 21.0]}).decode(),
                    }
                    for k, loc in enumerate(locations)
                ]
            ),
        )
        tx.append_table("thing_locations", pa.Table.from_pylist(
            [{"thing_id": t, "location_id": loc} for t, loc in zip(things, locations, strict=True)]
        ))  # fmt: skip
    made = store.airquality.ensure_derived(
        {"name": "PM2.5", "definition": "http://example.org/PM2.5", "description": "PM2.5"},
        {"name": "s", "description": "s", "encoding_type": "text/html", "metadata": "m"},
        [
            {"name": "PM2.5", "description": "PM2.5", "observation_type": OM,
             "unit_of_measurement": orjson.dumps(UGM3).decode(), "thing_id": t}
            for t in things
        ],
    )  # fmt: skip
    core.catalog.invalidate()
    return made.datastream_ids


def _post_hour(core: Core, streams: list[int], hour: datetime, h: int) -> None:
    from cityhub.store.base import OBSERVATION_BATCH_SCHEMA

    rows = [
        {"datastream_id": ds, "phenomenon_time": hour, "result_number": 20.0 + (k * 7 + h * 13) % 60}
        for k, ds in enumerate(streams)
    ]
    for r, i in zip(rows, core.store.allocate_ids("observations", len(rows)), strict=True):
        r["id"] = int(i)
    core.writer.submit(pa.Table.from_pylist(rows, OBSERVATION_BATCH_SCHEMA), bounded=False).result()


def many_stations(report: Report, n: int, store: str = "", rounds: int = 5) -> None:
    """``AirQuality.update`` of n stations' newest hour (one station-hour each, as single POSTs on n stations
    leave them), after 30 hours of history; the first round (which makes the derived Datastreams) is not timed."""
    ensure_importable()
    from cityhub.airquality.live import AirQuality
    from cityhub.config import Settings
    from cityhub.core import open_core

    tmp = make_tmpdir("aqi-many")
    settings = Settings(data_dir=tmp / "var", **({"store": store} if store else {}))
    core = open_core(settings)
    try:
        streams = _make_stations(core, n)
        # No start(): nothing but the calls below updates the indices.
        live = AirQuality(core, day_offset_minutes=settings.day_offset_minutes)
        things = list(live.stations())
        t0 = datetime(2026, 1, 15, tzinfo=UTC)
        history = 30
        for h in range(history):
            _post_hour(core, streams, t0 + timedelta(hours=h), h)
        times: list[float] = []
        for k in range(rounds + 1):
            h = history + k
            hour = t0 + timedelta(hours=h)
            _post_hour(core, streams, hour, h)
            started = time.perf_counter()
            live.update([(t, hour) for t in things])
            if k:
                times.append(time.perf_counter() - started)
        kind = "PostgreSQL" if store else "DuckDB"
        p50 = statistics.median(times) * 1e3
        log(f"  live VN_AQI, {n} stations' new hour in one update ({kind}): median {p50:.0f} ms "
            f"({p50 * 1e3 / n:.0f} µs a station), all {', '.join(f'{t * 1e3:.0f}' for t in times)} ms")  # fmt: skip
        report.add(f"live: one update of {n} stations' new hour ({kind}, median of {rounds})", f"{p50:.0f} ms")
    finally:
        core.writer.close()
        core.store.close()
        remove_tmpdir(tmp)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.aqi_live", description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", default="", help="postgresql://...?schema=... (default: the embedded DuckDB file)")
    ap.add_argument("--stations", type=int, default=0, help="also time one update of this many stations (0: not)")
    ap.add_argument("--rounds", type=int, default=5, help="timed updates of the stations (default 5)")
    ap.add_argument("--no-latency", action="store_true", help="skip the ingest → index latency part")
    args = ap.parse_args(argv)
    report = Report()
    if not args.no_latency:
        live_latency(report, store=args.store)
    if args.stations:
        many_stations(report, args.stations, args.store, args.rounds)
    report.print()
    return 0 if not report.problems else 1


if __name__ == "__main__":
    sys.exit(main())
