"""The operations dashboard under load: first meaningful render with 1,000 air-quality stations and 5,000 road
segments, and the latency from ingest to a marker's change, measured in headless Chromium.

A real `cityhub serve` gets, through the public APIs only (SensorThings deep inserts and bulk ingest):

- 1,000 air-quality stations (a Thing with a Point Location and a PM2.5 Datastream each) spread over Hanoi, with
  three hours of hourly PM2.5 so every station has a current VN_AQI;
- 5,000 road segments: Things of kind "traffic detector" whose Location is a LineString (a 150–400 m piece of
  road) and whose properties carry the free-flow speed, each with a "Speed" Datastream (km/h) and a current value.

Then Debian's /usr/bin/chromium (Playwright, headless) opens the page several times; the page sets the Performance
API mark "cityhub:render" once every layer is drawn (after the canvas has painted), and its startTime (ms since
navigation start) is the first meaningful render. For the live latency, each trial installs a MutationObserver on
one station's marker and posts a hazardous PM2.5 reading from the same page (fetch, an admin key): the time from
just before the POST to the marker's colour change, both on the page's performance.now() clock.

    python -m bench.dashboard            # ~2 minutes on the project's 2-core machine
    python -m bench.dashboard --quick    # 200 stations, 1,000 segments, fewer trials
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import math
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench._util import Report, Server, create_admin_key, free_port, log, make_tmpdir, percentile, remove_tmpdir

CHROMIUM = "/usr/bin/chromium"
OM = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
UGM3 = {
    "name": "microgram per cubic metre",
    "symbol": "µg/m³",
    "definition": "http://qudt.org/vocab/unit/MicroGM-PER-M3",
}
KMH = {"name": "kilometre per hour", "symbol": "km/h", "definition": "http://qudt.org/vocab/unit/KiloM-PER-HR"}
# Greater Hanoi, where the points go.
LAT = (20.93, 21.12)
LON = (105.72, 105.92)


def _pool_post(c: httpx.Client, bodies: list[dict[str, Any]], workers: int = 6) -> list[int]:
    def one(body: dict[str, Any]) -> int:
        r = c.post("/v1.1/Things", json=body)
        if r.status_code != 201:
            raise RuntimeError(f"creating a Thing failed: {r.status_code} {r.text[:300]}")
        return int(r.json()["@iot.id"])

    with cf.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, bodies))


def build_city(c: httpx.Client, n_stations: int, n_segments: int, rng: random.Random) -> dict[str, Any]:
    sensor = c.post(
        "/v1.1/Sensors", json={"name": "bench", "description": "bench", "encodingType": "text/html", "metadata": "-"}
    ).json()["@iot.id"]
    pm25 = c.post(
        "/v1.1/ObservedProperties",
        json={"name": "PM2.5", "definition": "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/6001",
              "description": "PM2.5"},
    ).json()["@iot.id"]  # fmt: skip
    speed = c.post(
        "/v1.1/ObservedProperties",
        json={
            "name": "Traffic speed",
            "definition": "http://qudt.org/vocab/quantitykind/Speed",
            "description": "speed",
        },
    ).json()["@iot.id"]

    def point() -> tuple[float, float]:
        return rng.uniform(*LON), rng.uniform(*LAT)

    stations = []
    for i in range(n_stations):
        lon, lat = point()
        stations.append(
            {
                "name": f"Trạm thử {i:04d}",
                "description": "bench air-quality station",
                "properties": {"kind": "air-quality station", "network": "bench"},
                "Locations": [{"name": f"s{i}", "description": "bench", "encodingType": "application/geo+json",
                               "location": {"type": "Point", "coordinates": [round(lon, 5), round(lat, 5)]}}],
                "Datastreams": [{"name": f"PM2.5 {i}", "description": "PM2.5", "observationType": OM,
                                 "unitOfMeasurement": UGM3, "Sensor": {"@iot.id": sensor},
                                 "ObservedProperty": {"@iot.id": pm25}}],
            }
        )  # fmt: skip
    segments = []
    for i in range(n_segments):
        lon, lat = point()
        heading = rng.uniform(0, math.pi)
        length = rng.uniform(0.0015, 0.004)  # degrees: 150–400 m
        pts = [[round(lon + k * length / 2 * math.cos(heading), 6), round(lat + k * length / 2 * math.sin(heading), 6)]
               for k in range(3)]  # fmt: skip
        free = rng.choice([40, 50, 50, 60, 70, 80])
        segments.append(
            {
                "name": f"Đoạn đường thử {i:05d}",
                "description": "bench road segment",
                "properties": {"kind": "traffic detector", "freeFlowSpeed": free, "road": f"Đường {i % 300}"},
                "Locations": [{"name": f"r{i}", "description": "bench", "encodingType": "application/geo+json",
                               "location": {"type": "LineString", "coordinates": pts}}],
                "Datastreams": [{"name": f"Speed {i}", "description": "speed", "observationType": OM,
                                 "unitOfMeasurement": KMH, "Sensor": {"@iot.id": sensor},
                                 "ObservedProperty": {"@iot.id": speed}}],
            }
        )  # fmt: skip
    t0 = time.perf_counter()
    station_ids = _pool_post(c, stations)
    log(f"  {n_stations} stations created in {time.perf_counter() - t0:.1f}s")
    t0 = time.perf_counter()
    segment_ids = _pool_post(c, segments)
    log(f"  {n_segments} road segments created in {time.perf_counter() - t0:.1f}s")

    def ds_of(prop: int) -> dict[int, int]:
        """Thing → Datastream of an ObservedProperty (one Datastream per Thing here)."""
        out: dict[int, int] = {}
        url: str | None = "/v1.1/Datastreams"
        params: dict[str, str] | None = {
            "$filter": f"ObservedProperty/id eq {prop}", "$select": "id", "$expand": "Thing($select=id)",
            "$top": "10000",
        }  # fmt: skip
        while url:
            page = c.get(url, params=params).json()
            out.update({r["Thing"]["@iot.id"]: r["@iot.id"] for r in page["value"]})
            url, params = page.get("@iot.nextLink"), None
        return out

    station_ds = ds_of(pm25)
    segment_ds = ds_of(speed)
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    lines = ["datastream,phenomenonTime,result"]
    for ds in station_ds.values():
        base = rng.uniform(8, 70)  # good to poor: room for a hazardous change
        for h in (2, 1, 0):
            lines.append(f"{ds},{(hour - timedelta(hours=h)).isoformat()},{base * rng.uniform(0.9, 1.1):.1f}")
    recent = (now - timedelta(minutes=2)).replace(microsecond=0).isoformat()
    for ds in segment_ds.values():
        lines.append(f"{ds},{recent},{rng.uniform(5, 75):.1f}")
    t0 = time.perf_counter()
    r = c.post("/api/v1/ingest", content="\n".join(lines) + "\n", headers={"Content-Type": "text/csv"}, timeout=300)
    r.raise_for_status()
    log(f"  {r.json()['stored']} Observations ingested in {time.perf_counter() - t0:.1f}s")
    return {"stations": station_ids, "station_ds": station_ds, "segments": segment_ids, "segment_ds": segment_ds}


def wait_for_derived(c: httpx.Client, n: int, timeout: float = 600) -> float:
    """The hub derives a VN_AQI Datastream pair per new station in the background: wait until it is done, so the
    measurements do not share the CPU with it."""
    t0 = time.perf_counter()
    last = -1
    while time.perf_counter() - t0 < timeout:
        r = c.get("/v1.1/Datastreams", params={"$filter": "name eq 'VN_AQI hourly'", "$count": "true", "$top": "0"})
        count = r.json().get("@iot.count", 0)
        if count >= n:
            break
        if count != last:
            last = count
        time.sleep(1.0)
    # The Datastreams come first (all in one transaction), their indices after: wait until air quality has no
    # station-hour left to index (/healthz says so), twice in a row.
    calm = 0
    while time.perf_counter() - t0 < timeout and calm < 2:
        aq = c.get("/healthz").json().get("airquality", {})
        calm = calm + 1 if aq.get("idle") and not aq.get("pendingStationHours") else 0
        time.sleep(1.0)
    return time.perf_counter() - t0


def measure(server: Server, city: dict[str, Any], report: Report, loads: int, trials: int) -> None:
    from playwright.sync_api import sync_playwright

    n_st, n_seg = len(city["stations"]), len(city["segments"])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            renders, datas, errors = [], [], []
            for k in range(loads + 1):  # the first load warms the server's caches and the browser
                ctx = browser.new_context(viewport={"width": 1920, "height": 1080})
                page = ctx.new_page()
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.goto(server.base + "/")
                page.wait_for_function("window.cityhub && window.cityhub.ready", timeout=60_000)
                marks = page.evaluate(
                    "Object.fromEntries(performance.getEntriesByType('mark').map(m => [m.name, m.startTime]))"
                )
                markers = page.locator(".aq-marker").count()
                roads = page.evaluate("window.cityhub.state.traffic.size")
                if markers != n_st or roads != n_seg:
                    report.problem(f"load {k}: {markers} station markers ({n_st} wanted), {roads} segments ({n_seg})")
                if k:
                    renders.append(marks["cityhub:render"])
                    datas.append(marks["cityhub:data"])
                warm = " (warm-up)" if not k else ""
                log(f"  load {k}: data {marks['cityhub:data']:.0f} ms, drawn {marks['cityhub:render']:.0f} ms{warm}")
                if k < loads:
                    ctx.close()
            med = statistics.median(renders)
            report.add(
                f"first meaningful render, {n_st:,} stations + {n_seg:,} road segments (median of {loads})",
                f"{med / 1000:.2f} s (max {max(renders) / 1000:.2f} s, data {statistics.median(datas) / 1000:.2f} s)",
                "< 2 s",
                max(renders) < 2000,
            )
            # Live latency on the last page: ingest (POST) → marker colour change, on the page's clock.
            lat = []
            ids = random.Random(5).sample(city["stations"], trials)
            for thing in ids:
                ds = city["station_ds"][thing]
                t = datetime.now(UTC).replace(microsecond=0).isoformat()
                ms = page.evaluate(
                    """async ([thing, ds, key, t]) => {
                        const el = document.querySelector(`.aq-marker[data-thing="${thing}"]`);
                        const before = el.dataset.color;
                        const changed = new Promise((resolve) => {
                          const obs = new MutationObserver(() => {
                            if (el.dataset.color !== before) { obs.disconnect(); resolve(performance.now()); }
                          });
                          obs.observe(el, { attributes: true });
                          setTimeout(() => { obs.disconnect(); resolve(null); }, 5000);
                        });
                        const t0 = performance.now();
                        const r = await fetch('/v1.1/Observations', {method: 'POST', headers: {
                          'Content-Type': 'application/json', Authorization: `Bearer ${key}`},
                          body: JSON.stringify({phenomenonTime: t, result: 900, Datastream: {'@iot.id': ds}})});
                        if (r.status !== 201) return -r.status;
                        const t1 = await changed;
                        return t1 === null ? null : t1 - t0;
                    }""",
                    [thing, ds, server.key, t],
                )
                if ms is None or ms < 0:
                    report.problem(f"station {thing}: marker did not change ({ms})")
                    continue
                lat.append(ms)
                time.sleep(0.15)
            if lat:
                report.add(
                    f"live update, ingest → marker colour change ({len(lat)} trials)",
                    f"median {statistics.median(lat):.0f} ms, p95 {percentile(lat, 0.95):.0f} ms, "
                    f"max {max(lat):.0f} ms",
                    "< 1 s",
                    max(lat) < 1000,
                )
            # The same for a road segment (canvas: the page's change hook instead of a DOM observer).
            road = []
            for thing in random.Random(6).sample(city["segments"], min(trials, 10)):
                ds = city["segment_ds"][thing]
                t = datetime.now(UTC).replace(microsecond=0).isoformat()
                ms = page.evaluate(
                    """async ([thing, ds, key, t]) => {
                        const tr = window.cityhub.state.traffic.get(thing);
                        const value = tr.speed !== null && tr.speed / tr.freeFlow < 0.5 ? tr.freeFlow : 1;
                        const changed = new Promise((resolve) => {
                          const fn = (layer, th, now) => { if (layer === 'traffic' && th === thing) resolve(now); };
                          window.cityhub.changes.push(fn);
                          setTimeout(() => resolve(null), 5000);
                        });
                        const t0 = performance.now();
                        const r = await fetch('/v1.1/Observations', {method: 'POST', headers: {
                          'Content-Type': 'application/json', Authorization: `Bearer ${key}`},
                          body: JSON.stringify({phenomenonTime: t, result: value, Datastream: {'@iot.id': ds}})});
                        if (r.status !== 201) return -r.status;
                        const t1 = await changed;
                        return t1 === null ? null : t1 - t0;
                    }""",
                    [thing, ds, server.key, t],
                )
                if ms is not None and ms >= 0:
                    road.append(ms)
            if road:
                report.add(
                    f"live update, ingest → road segment recoloured ({len(road)} trials)",
                    f"median {statistics.median(road):.0f} ms, max {max(road):.0f} ms",
                    "< 1 s",
                    max(road) < 1000,
                )
            if errors:
                report.problem(f"console errors: {errors[:5]}")
            report.add("console errors during the run", str(len(errors)), "0", not errors)
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="200 stations, 1,000 segments, fewer trials")
    ap.add_argument("--stations", type=int, default=None)
    ap.add_argument("--segments", type=int, default=None)
    args = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        log(f"{CHROMIUM} not found: apt-get install chromium")
        return 2
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from cityhub.web import vendor_built

    if not vendor_built():
        log("the dashboard's map library is not built: run `make web` first")
        return 2
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    n_st = args.stations or (200 if args.quick else 1000)
    n_seg = args.segments or (1000 if args.quick else 5000)
    loads, trials = (3, 10) if args.quick else (5, 20)
    report = Report()
    tmp = make_tmpdir("dashboard")
    data_dir = tmp / "var"
    server = Server(data_dir, free_port(), create_admin_key(data_dir))
    try:
        server.start()
        log(f"building a city of {n_st:,} stations and {n_seg:,} road segments through the API")
        with httpx.Client(base_url=server.base, headers=server.headers, timeout=120) as c:
            t0 = time.perf_counter()
            city = build_city(c, n_st, n_seg, random.Random(42))
            report.add("setup through the API (Things, Observations)", f"{time.perf_counter() - t0:.0f} s")
            log(f"  waiting for the hub to derive VN_AQI of {n_st} stations")
            waited = wait_for_derived(c, n_st)
            log(f"  done after {waited:.0f}s")
            t0 = time.perf_counter()
            n = len(c.get("/api/v1/aqi/stations").json()["value"])
            report.add(f"GET /api/v1/aqi/stations ({n:,} stations)", f"{(time.perf_counter() - t0) * 1000:.0f} ms")
        log("measuring in headless Chromium")
        measure(server, city, report, loads, trials)
    finally:
        server.stop()
        remove_tmpdir(tmp)
    report.print()
    return 0 if all(r.ok is not False for r in report.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
