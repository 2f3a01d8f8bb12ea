"""Live VN_AQI latency: from the arrival of an hour's pollutant Observations (one bulk POST) to the updated
hourly index in the station's derived "VN_AQI hourly" Datastream, as a client polling the API sees it.

Run alone with ``python -m bench.aqi_live``; ``python -m bench.aqi`` runs it too.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx

from bench._util import Report, Server, create_admin_key, free_port, log, make_tmpdir, percentile, remove_tmpdir

POLLUTANTS = {"PM2.5": 45.0, "PM10": 80.0, "O3": 60.0, "NO2": 40.0, "SO2": 12.0, "CO": 900.0}
UGM3 = {
    "name": "microgram per cubic metre",
    "symbol": "µg/m³",
    "definition": "http://qudt.org/vocab/unit/MicroGM-PER-M3",
}
OM = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


def live_latency(report: Report, trials: int = 30) -> None:
    tmp = make_tmpdir("aqi-live")
    data_dir = tmp / "var"
    server = Server(data_dir, free_port(), create_admin_key(data_dir))
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


def main() -> int:
    report = Report()
    live_latency(report)
    report.print()
    return 0 if not report.problems else 1


if __name__ == "__main__":
    sys.exit(main())
