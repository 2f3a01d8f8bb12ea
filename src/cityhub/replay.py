"""``cityhub replay``: play a recorded feed into a running hub as a live stream, its timing compressed.

Recognised files (by their columns):

- the US Embassy StateAir CSV (``Date (LT)``, ``Raw Conc.``, ``QC Name``): hourly PM2.5 at the embassy;
- the long-format Parquet of aqi.in (``station_name, timestamp_utc, parameter, value``), with the
  ``stations.csv`` beside it for coordinates: many stations, irregular timing;
- Open-Meteo hourly CSVs (``UTC Time`` with ``PM25, PM10, …``, or ``datetime`` with ``pm2_5, …``);
- CityHub's own export (``GET /api/v1/export``: ``thing, datastream, observed_property, unit, time, result``).

Things (with a Point Location), ObservedProperties, a Sensor per source and Datastreams are created through
the public SensorThings API when no entity of that name exists. Observations keep their original times; the
gaps between them are divided by ``speed`` (``600`` plays an hour in 6 s; ``max`` sends as fast as the hub
takes them). ``via="http"`` posts Arrow batches to ``/api/v1/ingest?partial=true`` (duplicates and conflicts
are counted, not fatal); ``via="mqtt"`` publishes each Observation to ``v1.1/Datastreams(<id>)/Observations``
at QoS 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cityhub.ipc import table_to_ipc

OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
HANOI = "+07:00"
# What each source's column or parameter measures: (ObservedProperty name, unit symbol, definition URI).
PROPERTIES: dict[str, tuple[str, str, str]] = {
    "pm25": ("PM2.5", "µg/m³", "http://dbpedia.org/resource/Particulates"),
    "pm2_5": ("PM2.5", "µg/m³", "http://dbpedia.org/resource/Particulates"),
    "pm10": ("PM10", "µg/m³", "https://cityhub.hanoi/def/PM10"),
    "o3": ("O3", "µg/m³", "http://dbpedia.org/resource/Ozone"),
    "ozone": ("O3", "µg/m³", "http://dbpedia.org/resource/Ozone"),
    "no2": ("NO2", "µg/m³", "http://dbpedia.org/resource/Nitrogen_dioxide"),
    "nitrogen_dioxide": ("NO2", "µg/m³", "http://dbpedia.org/resource/Nitrogen_dioxide"),
    "so2": ("SO2", "µg/m³", "http://dbpedia.org/resource/Sulfur_dioxide"),
    "sulphur_dioxide": ("SO2", "µg/m³", "http://dbpedia.org/resource/Sulfur_dioxide"),
    "co": ("CO", "µg/m³", "http://dbpedia.org/resource/Carbon_monoxide"),
    "carbon_monoxide": ("CO", "µg/m³", "http://dbpedia.org/resource/Carbon_monoxide"),
    # aqi.in labels every parameter µg/m³, humidity and temperature too: their real units are used here.
    "hum": ("Relative humidity", "%", "http://dbpedia.org/resource/Humidity"),
    "relative humidity": ("Relative humidity", "%", "http://dbpedia.org/resource/Humidity"),
    "temp": ("Air temperature", "°C", "http://dbpedia.org/resource/Temperature"),
    "temperature": ("Air temperature", "°C", "http://dbpedia.org/resource/Temperature"),
    "wind speed": ("Wind speed", "km/h", "http://dbpedia.org/resource/Wind_speed"),
    "precipitation": ("Precipitation", "mm", "http://dbpedia.org/resource/Precipitation"),
    "pressure": ("Air pressure", "hPa", "http://dbpedia.org/resource/Atmospheric_pressure"),
}
# Open-Meteo's Cầu Giấy point and the US Embassy monitor (data README); approximate to ~100 m.
CAU_GIAY = (21.0362, 105.7906)
US_EMBASSY = (21.0215, 105.8189)
_READ_SCHEMA = pa.schema(
    [
        ("station", pa.string()),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("property", pa.string()),
        ("unit", pa.string()),
        ("definition", pa.string()),
        ("time", pa.timestamp("us", tz="UTC")),
        ("value", pa.float64()),
    ]
)
# ... and the Datastream each row goes to, by name within its station: the export's own name for a CityHub export
# (a Thing may have two Datastreams of one ObservedProperty, as VN_AQI hourly and daily), else "<property> <station>".
FEED_SCHEMA = _READ_SCHEMA.append(pa.field("datastream", pa.string()))
# ObservedProperties a hub derives for itself (cityhub.airquality.live): left out of a CityHub export's replay, since
# the receiving hub computes them from the pollutants replayed beside them.
DERIVED_PROPERTIES = frozenset({"VN_AQI"})


@dataclass
class Feed:
    source: str
    table: pa.Table  # FEED_SCHEMA, sorted by time
    skipped: int = 0  # rows without a value (missing, invalid) that are not replayed
    derived: int = 0  # rows of indices the receiving hub derives itself (DERIVED_PROPERTIES), not replayed


def _read_any(path: Path) -> pa.Table:
    if path.suffix.lower() == ".parquet":
        return pq.read_table(path)
    return pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(encoding="utf-8-sig" if _has_bom(path) else "utf-8"),
        convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
    )


def _has_bom(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(3) == b"\xef\xbb\xbf"


def _wide(table: pa.Table, times: pa.Array, station: str, lat: float, lon: float, columns: dict[str, str]) -> pa.Table:
    parts = []
    for col, key in columns.items():
        if col not in table.column_names:
            continue
        name, unit, definition = PROPERTIES[key]
        values = pc.cast(table.column(col), pa.float64())
        n = len(values)
        parts.append(
            pa.table(
                {
                    "station": pa.array([station] * n, pa.string()),
                    "latitude": pa.array(np.full(n, lat)),
                    "longitude": pa.array(np.full(n, lon)),
                    "property": pa.array([name] * n, pa.string()),
                    "unit": pa.array([unit] * n, pa.string()),
                    "definition": pa.array([definition] * n, pa.string()),
                    "time": times,
                    "value": values,
                },
                schema=_READ_SCHEMA,
            )
        )
    return pa.concat_tables(parts)


def _local(text: pa.ChunkedArray, fmt: str) -> pa.Array:
    """Local Hanoi wall-clock text → UTC timestamps."""
    naive = pc.strptime(text, format=fmt, unit="us")
    return pc.cast(pc.subtract(pc.cast(naive, pa.int64()), 7 * 3600 * 10**6), pa.timestamp("us", tz="UTC"))


def read_feed(path: Path) -> Feed:
    """Read a recorded feed into the normalised long table; ValueError when the file is not recognised."""
    raw = _read_any(path)
    cols = set(raw.column_names)
    ds_names: pa.ChunkedArray | None = None  # the Datastreams' own names, where the file gives them
    if {"Date (LT)", "Raw Conc.", "QC Name"} <= cols:
        source = "US Embassy Hanoi (StateAir)"
        times = _local(pc.cast(raw.column("Date (LT)"), pa.string()), "%Y-%m-%d %I:%M %p")
        valid = pc.and_(pc.equal(raw.column("QC Name"), "Valid"), pc.greater_equal(raw.column("Raw Conc."), 0))
        raw = raw.append_column("_t", times).filter(valid)
        table = _wide(raw, raw.column("_t"), "US Embassy Hanoi", *US_EMBASSY, {"Raw Conc.": "pm25"})
    elif {"UTC Time", "PM25"} <= cols:
        source = "Open-Meteo (CAMS)"
        times = pc.cast(
            pc.strptime(pc.cast(raw.column("UTC Time"), pa.string()), "%Y-%m-%d %H:%M:%S%z", "us"),
            pa.timestamp("us", tz="UTC"),
        )
        city = raw.column("City")[0].as_py() if "City" in cols else "Cầu Giấy"
        cmap = {
            c: c.lower()
            for c in (
                "PM25",
                "PM10",
                "O3",
                "NO2",
                "SO2",
                "CO",
                "Temperature",
                "Relative Humidity",
                "Wind Speed",
                "Precipitation",
                "Pressure",
            )
        }
        table = _wide(raw, times, f"Open-Meteo {city}", *CAU_GIAY, cmap)
    elif {"datetime", "pm2_5"} <= cols:
        source = "Open-Meteo (CAMS)"
        times = pc.cast(raw.column("datetime"), pa.timestamp("us", tz="UTC"))
        district = raw.column("district")[0].as_py() if "district" in cols else "Ba Đình"
        lat = raw.column("lat")[0].as_py() if "lat" in cols else 21.033
        lon = raw.column("lon")[0].as_py() if "lon" in cols else 105.814
        cmap = {c: c for c in ("pm2_5", "pm10", "ozone", "nitrogen_dioxide", "sulphur_dioxide", "carbon_monoxide")}
        table = _wide(raw, times, f"Open-Meteo {district}", lat, lon, cmap)
    elif {"station_name", "timestamp_utc", "parameter", "value"} <= cols:
        source = "aqi.in"
        coords: dict[str, tuple[float, float]] = {}
        stations = path.with_name("stations.csv")
        if stations.exists():
            st = pacsv.read_csv(stations).to_pylist()
            coords = {r["station_name"]: (r["latitude"], r["longitude"]) for r in st}
        keys = [p for p in raw.column("parameter").unique().to_pylist() if p in PROPERTIES]
        raw = raw.filter(pc.is_in(raw.column("parameter"), pa.array(keys)))
        params = raw.column("parameter").to_pylist()
        names = raw.column("station_name").to_pylist()
        table = pa.table(
            {
                "station": raw.column("station_name"),
                "latitude": pa.array([coords.get(n, (None, None))[0] for n in names], pa.float64()),
                "longitude": pa.array([coords.get(n, (None, None))[1] for n in names], pa.float64()),
                "property": pa.array([PROPERTIES[p][0] for p in params], pa.string()),
                "unit": pa.array([PROPERTIES[p][1] for p in params], pa.string()),
                "definition": pa.array([PROPERTIES[p][2] for p in params], pa.string()),
                "time": pc.cast(raw.column("timestamp_utc"), pa.timestamp("us", tz="UTC")),
                "value": pc.cast(raw.column("value"), pa.float64()),
            },
            schema=_READ_SCHEMA,
        )
    elif {"thing", "datastream", "observed_property", "unit", "time", "result"} <= cols:
        source = "CityHub export"
        ds_names = pc.cast(raw.column("datastream"), pa.string())
        t = raw.column("time")
        if not pa.types.is_timestamp(t.type):
            # ISO 8601 as exported ("2026-01-01T00:10:00Z"), or the space-separated form of earlier exports
            t = pc.cast(pc.cast(t, pa.string()), pa.timestamp("us", tz="UTC"))
        n = raw.num_rows
        table = pa.table(
            {
                "station": pc.cast(raw.column("thing"), pa.string()),
                "latitude": pc.cast(raw.column("latitude"), pa.float64())
                if "latitude" in cols
                else pa.nulls(n, pa.float64()),
                "longitude": pc.cast(raw.column("longitude"), pa.float64())
                if "longitude" in cols
                else pa.nulls(n, pa.float64()),
                "property": pc.cast(raw.column("observed_property"), pa.string()),
                "unit": pc.cast(raw.column("unit"), pa.string()),
                "definition": pa.nulls(n, pa.string()),
                "time": pc.cast(t, pa.timestamp("us", tz="UTC")),
                "value": pc.cast(raw.column("result"), pa.float64()),
            },
            schema=_READ_SCHEMA,
        )
    else:
        raise ValueError(
            f"{path}: not a recognised feed (StateAir CSV, aqi.in Parquet, Open-Meteo CSV or CityHub export); "
            f"columns: {sorted(cols)[:12]}"
        )
    default = pc.binary_join_element_wise(table.column("property"), table.column("station"), " ")
    table = table.append_column("datastream", default if ds_names is None else pc.coalesce(ds_names, default))
    n_derived = 0
    if source == "CityHub export":
        derived = pc.is_in(table.column("property"), pa.array(sorted(DERIVED_PROPERTIES)))
        n_derived = int(pc.sum(derived).as_py() or 0)
        table = table.filter(pc.invert(derived))
    ok = pc.and_(pc.is_valid(table.column("value")), pc.is_valid(table.column("time")))
    kept = table.filter(ok)
    kept = kept.take(pc.sort_indices(kept, sort_keys=[("time", "ascending")]))
    return Feed(source, kept, table.num_rows - kept.num_rows, n_derived)


# -- entities ----------------------------------------------------------------------------------------------
def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _find(client: httpx.Client, entity_set: str, name: str, expand: str = "") -> dict | None:
    params = {"$filter": f"name eq {_quote(name)}", "$top": "1"}
    if expand:
        params["$expand"] = expand
    r = client.get(f"/v1.1/{entity_set}", params=params)
    _check(r)
    value = r.json()["value"]
    return value[0] if value else None


def _check(r: httpx.Response) -> None:
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {detail}")


def ensure_datastreams(client: httpx.Client, feed: Feed) -> dict[tuple[str, str], int]:
    """Datastream id for each (station, Datastream name) of the feed, creating what is missing by name: a hub's own
    export replayed into it finds every Datastream it came from."""
    pairs = pc.unique(
        pc.binary_join_element_wise(feed.table.column("station"), feed.table.column("datastream"), "\x1f")
    ).to_pylist()
    first: dict[str, dict[str, Any]] = {}
    columns = ["station", "latitude", "longitude", "property", "unit", "definition", "datastream"]
    for row in feed.table.select(columns).to_pylist():
        first.setdefault(row["station"] + "\x1f" + row["datastream"], row)
    sensor = _find(client, "Sensors", f"Replay: {feed.source}")
    if sensor is None:
        r = client.post(
            "/v1.1/Sensors",
            json={
                "name": f"Replay: {feed.source}",
                "description": "a recorded feed",
                "encodingType": "text/plain",
                "metadata": feed.source,
            },
        )
        _check(r)
        sensor = r.json()
    out: dict[tuple[str, str], int] = {}
    things: dict[str, dict] = {}
    props: dict[str, int] = {}
    for key in pairs:
        station, ds_name = key.split("\x1f")
        info = first[key]
        prop = info["property"]
        if station not in things:
            thing = _find(client, "Things", station, "Datastreams($select=id,name)")
            if thing is None:
                body: dict[str, Any] = {
                    "name": station,
                    "description": f"{station} ({feed.source})",
                    "properties": {"kind": "air-quality station", "source": feed.source},
                }
                if info["latitude"] is not None and info["longitude"] is not None:
                    body["Locations"] = [
                        {
                            "name": station,
                            "description": station,
                            "encodingType": "application/geo+json",
                            "location": {"type": "Point", "coordinates": [info["longitude"], info["latitude"]]},
                        }
                    ]
                r = client.post("/v1.1/Things", json=body)
                _check(r)
                thing = {**r.json(), "Datastreams": []}
            things[station] = thing
        existing = {d["name"]: d["@iot.id"] for d in things[station].get("Datastreams", [])}
        if ds_name in existing:
            out[(station, ds_name)] = existing[ds_name]
            continue
        if prop not in props:
            op = _find(client, "ObservedProperties", prop)
            if op is None:
                r = client.post(
                    "/v1.1/ObservedProperties",
                    json={
                        "name": prop,
                        "definition": info["definition"] or f"https://cityhub.hanoi/def/{prop}",
                        "description": prop,
                    },
                )
                _check(r)
                op = r.json()
            props[prop] = op["@iot.id"]
        r = client.post(
            "/v1.1/Datastreams",
            json={
                "name": ds_name,
                "description": f"{prop} at {station} ({feed.source})",
                "observationType": OM_MEASUREMENT,
                "unitOfMeasurement": {"name": info["unit"], "symbol": info["unit"], "definition": info["unit"]},
                "Thing": {"@iot.id": things[station]["@iot.id"]},
                "Sensor": {"@iot.id": sensor["@iot.id"]},
                "ObservedProperty": {"@iot.id": props[prop]},
            },
        )
        _check(r)
        out[(station, ds_name)] = r.json()["@iot.id"]
        things[station].setdefault("Datastreams", []).append({"name": ds_name, "@iot.id": out[(station, ds_name)]})
    return out


# -- playing -----------------------------------------------------------------------------------------------
@dataclass
class ReplayStats:
    sent: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def parse_speed(text: str) -> float | None:
    """``600x`` / ``600`` → 600.0; ``max`` → None (no waiting)."""
    t = text.strip().lower()
    if t in ("max", "inf"):
        return None
    t = t.removesuffix("x")
    try:
        speed = float(t)
    except ValueError:
        raise ValueError(f"speed {text!r}: use e.g. 600x or max") from None
    if not speed > 0:
        raise ValueError("speed must be positive")
    return speed


class HttpSink:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def send(self, ds: np.ndarray, times: pa.Array, values: pa.Array, stats: ReplayStats) -> None:
        batch = pa.table({"datastream": pa.array(ds, pa.int64()), "phenomenonTime": times, "result": values})
        r = self.client.post(
            "/api/v1/ingest",
            params={"partial": "true"},
            content=table_to_ipc(batch),
            headers={"Content-Type": "application/vnd.apache.arrow.stream"},
        )
        _check(r)
        out = r.json()
        stats.stored += out.get("stored", 0)
        stats.duplicates += out.get("duplicates", 0)
        stats.rejected += out.get("rejected", 0)
        for e in out.get("errors", []):
            stats.reasons[e["reason"]] = stats.reasons.get(e["reason"], 0) + 1

    def close(self) -> None:
        pass


class MqttSink:
    def __init__(self, url: str, client_id: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from cityhub.mqtt.bridge import BrokerAddress

        addr = BrokerAddress.parse(url)
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if addr.username:
            self.c.username_pw_set(addr.username, addr.password)
        if addr.tls:
            self.c.tls_set()
        self.c.max_inflight_messages_set(1000)
        self.c.connect(addr.host, addr.port)
        self.c.loop_start()
        self.infos: list[Any] = []

    def send(self, ds: np.ndarray, times: pa.Array, values: pa.Array, stats: ReplayStats) -> None:
        iso = pc.strftime(pc.cast(times, pa.timestamp("s", tz="UTC")), format="%Y-%m-%dT%H:%M:%SZ").to_pylist()
        for d, t, v in zip(ds.tolist(), iso, values.to_pylist(), strict=True):
            payload = orjson.dumps({"phenomenonTime": t, "result": v})
            self.infos.append(self.c.publish(f"v1.1/Datastreams({d})/Observations", payload, qos=1))
        self.infos = [i for i in self.infos if not i.is_published()]

    def close(self) -> None:
        for i in self.infos:
            i.wait_for_publish(30)
        self.c.disconnect()
        self.c.loop_stop()


def play(
    feed: Feed,
    ids: dict[tuple[str, str], int],
    sink: HttpSink | MqttSink,
    speed: float | None,
    *,
    batch_rows: int = 10_000,
    progress: Callable[[int, Any], None] | None = None,
) -> ReplayStats:
    """Send the feed's rows when their compressed time comes (all at once with ``speed=None``)."""
    t = feed.table
    key = pc.binary_join_element_wise(t.column("station"), t.column("datastream"), "\x1f").to_pylist()
    ds = np.fromiter((ids[tuple(k.split("\x1f"))] for k in key), np.int64, len(key))
    times_us = pc.cast(t.column("time"), pa.int64()).to_numpy()
    times, values = t.column("time").combine_chunks(), t.column("value").combine_chunks()
    stats = ReplayStats()
    n = t.num_rows
    if not n:
        return stats
    t_start, wall0 = times_us[0], time.monotonic()
    i = 0
    while i < n:
        if speed is None:
            j = min(n, i + batch_rows)
        else:
            due = t_start + (time.monotonic() - wall0) * speed * 1e6
            j = min(int(np.searchsorted(times_us, due, side="right")), i + batch_rows)
            if j <= i:
                wait = (times_us[i] - due) / 1e6 / speed
                time.sleep(min(max(wait, 0.001), 0.1))
                continue
        sink.send(ds[i:j], times.slice(i, j - i), values.slice(i, j - i), stats)
        stats.sent += j - i
        i = j
        if progress is not None:
            progress(j, times[j - 1].as_py())
    sink.close()
    stats.seconds = time.monotonic() - wall0
    return stats
