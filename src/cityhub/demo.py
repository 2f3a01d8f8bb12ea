"""Demo city for ``make run``: Hanoi air-quality stations that report PM2.5 every minute.

The stations are a small fact table written for CityHub (coordinates approximate, to about 100 m). The
readings come from a simple diurnal profile around a seasonal level; the calibrated simulator of the
whole city (traffic, the Red River, faults) replaces this generator later. Readings go through the same
group-commit writer as every client's.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
from datetime import UTC, datetime, timedelta

from cityhub.ingest import observations as obsin
from cityhub.sensorthings import model
from cityhub.sensorthings.service import Resource, Step

# name, latitude, longitude
STATIONS: list[tuple[str, float, float]] = [
    ("Hoàn Kiếm", 21.0245, 105.8535),
    ("Thành Công", 21.0196, 105.8146),
    ("Kim Liên", 21.0073, 105.8384),
    ("Nguyễn Văn Cừ", 21.0491, 105.8831),
    ("Minh Khai", 21.0490, 105.7420),
    ("Phạm Văn Đồng", 21.0480, 105.7810),
    ("Tây Mỗ", 21.0058, 105.7470),
    ("Hàng Đậu", 21.0422, 105.8466),
    ("Trung Yên", 21.0152, 105.8000),
    ("Đại sứ quán Hoa Kỳ", 21.0215, 105.8189),
]
# Monthly mean PM2.5 (µg/m³) of the US Embassy Hanoi monitor 2016–2017 (../shared/data/air/stateair_hanoi),
# rounded: winter peaks, summer lows.
MONTHLY_PM25 = [85, 70, 60, 55, 40, 30, 30, 30, 38, 55, 65, 85]
PM25_DEFINITION = "http://dbpedia.org/resource/Particulates"


def seed(hub) -> list[int]:
    """Create the demo Things once; return the PM2.5 Datastream ids."""
    existing = hub.store.query("SELECT id FROM datastreams WHERE name LIKE 'PM2.5 %' ORDER BY id")
    if existing:
        return [r[0] for r in existing]
    with hub.store.transaction() as tx:
        sensor = tx.insert(
            "sensors",
            {
                "name": "BAM-1020",
                "description": "beta attenuation PM monitor",
                "encoding_type": "text/html",
                "metadata": "https://metone.com/bam-1020",
            },
        )
        prop = tx.insert(
            "observed_properties",
            {"name": "PM2.5", "definition": PM25_DEFINITION, "description": "fine particulate matter"},
        )
    ids = []
    for name, lat, lon in STATIONS:
        body = {
            "name": f"Trạm quan trắc {name}",
            "description": f"Air-quality monitoring station {name}, Hà Nội",
            "properties": {"city": "Hà Nội", "network": "demo"},
            "Locations": [
                {
                    "name": name,
                    "description": f"{name}, Hà Nội",
                    "encodingType": "application/geo+json",
                    "location": {"type": "Point", "coordinates": [lon, lat]},
                }
            ],
            "Datastreams": [
                {
                    "name": f"PM2.5 {name}",
                    "description": f"hourly PM2.5 at {name}",
                    "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
                    "unitOfMeasurement": {
                        "name": "microgram per cubic metre",
                        "symbol": "µg/m³",
                        "definition": "http://www.qudt.org/qudt/owl/1.0.0/unit/Instances.html",
                    },
                    "Sensor": {"@iot.id": sensor},
                    "ObservedProperty": {"@iot.id": prop},
                }
            ],
        }


        out = asyncio.run(hub.sensorthings.create(Resource([Step(model.THING, None, None)]), body, ""))
        ids.append(hub.store.query("SELECT id FROM datastreams WHERE thing_id = ?", [out["@iot.id"]])[0][0])
    hub.catalog.invalidate()
    return ids


def pm25(t: datetime, station: int, rng: random.Random) -> float:
    local = t + timedelta(hours=7)
    level = MONTHLY_PM25[local.month - 1]
    # Morning and evening traffic peaks, afternoon mixing-layer low.
    diurnal = (
        1 + 0.25 * math.cos((local.hour - 8) / 24 * 2 * math.pi) + 0.15 * math.cos((local.hour - 21) / 12 * math.pi)
    )
    return round(max(1.0, level * diurnal * (0.85 + 0.03 * station) + rng.gauss(0, 5)), 1)


def run(hub, stop: threading.Event, interval_s: float = 60.0, backfill_hours: int = 48) -> None:
    ds_ids = seed(hub)
    rng = random.Random(7)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(hours=backfill_hours)
    t = start
    while not stop.is_set():
        times = []
        while t <= datetime.now(UTC):
            times.append(t)
            t += timedelta(minutes=1 if t >= now else 10)
        if times:
            recs = [
                {"datastream": ds, "phenomenonTime": ts.isoformat(), "result": pm25(ts, k, rng)}
                for ts in times
                for k, ds in enumerate(ds_ids)
            ]
            raw = obsin.rows_to_table(recs)
            v = obsin.validate(raw, hub.catalog.table(), max_future=hub.settings.max_future)
            batch = obsin.resolve_features(v, hub.catalog).good
            ids = hub.store.allocate_ids("observations", batch.num_rows)
            hub.writer.submit(obsin.with_ids(batch, ids)).result()
        stop.wait(interval_s)


def start(hub) -> threading.Event:
    stop = threading.Event()
    threading.Thread(target=run, args=(hub, stop), name="demo", daemon=True).start()
    return stop
