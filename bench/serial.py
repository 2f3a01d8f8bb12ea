"""One client, one request at a time: what a single sensor gateway or script sees (issue 10's figures).

Against a real ``cityhub serve`` serving nothing else: the latency of a single Observation POST, of a 1-row
bulk CSV request, of a 10,000-row one, and the rate of a client that posts 10,000-row CSV bodies one after
another, next to PostgreSQL ``COPY`` of the same rows on one connection, one commit per batch, in the same
run. Part of ``python -m bench.ingest``; alone: ``python -m bench.serial``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench._util import Report, Server, create_admin_key, free_port, log, make_tmpdir, remove_tmpdir

BATCH = 10_000


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _csv(ds: int, start: datetime, n: int) -> bytes:
    lines = [f"{ds},{_iso(start + timedelta(seconds=i))},{i % 997 / 10}" for i in range(n)]
    return ("datastream,phenomenonTime,result\n" + "\n".join(lines) + "\n").encode()


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def serial_part(report: Report, tmp: Path, *, singles: int = 1000, bulks: int = 20) -> None:
    log(
        f"\n[serial] one client, one request at a time: {singles} single POSTs, {singles // 2} 1-row bulks, "
        f"{bulks} x {BATCH:,}-row bulks"
    )
    data_dir = tmp / "serial"
    data_dir.mkdir()
    key = create_admin_key(data_dir)
    server = Server(data_dir, free_port(), key)
    server.start()
    base = datetime(2025, 1, 1, tzinfo=UTC)
    try:
        with httpx.Client(base_url=server.base, headers=server.headers, timeout=120) as c:
            thing = {
                "name": "serial bench", "description": "d",
                "Locations": [{"name": "l", "description": "d", "encodingType": "application/geo+json",
                               "location": {"type": "Point", "coordinates": [105.85, 21.03]}}],
                "Datastreams": [{
                    "name": f"ds{k}", "description": "d",
                    "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
                    "unitOfMeasurement": {"name": "µg/m³", "symbol": "µg/m³", "definition": "x"},
                    "Sensor": {"name": "s", "description": "d", "encodingType": "text/html", "metadata": "m"},
                    "ObservedProperty": {"name": f"p{k}", "definition": f"http://example.org/p{k}",
                                         "description": "d"},
                } for k in range(3)],
            }  # fmt: skip
            tid = c.post("/v1.1/Things", json=thing).json()["@iot.id"]
            ds = [d["@iot.id"] for d in c.get(f"/v1.1/Things({tid})/Datastreams").json()["value"]]
            for i in range(50):  # warm-up: connections, caches, first FeatureOfInterest
                c.post(
                    f"/v1.1/Datastreams({ds[0]})/Observations",
                    json={"phenomenonTime": _iso(base - timedelta(minutes=i + 1)), "result": i},
                )
            lat: list[float] = []
            for i in range(singles):
                body = {"phenomenonTime": _iso(base + timedelta(seconds=i)), "result": i / 10}
                t0 = time.perf_counter()
                r = c.post(f"/v1.1/Datastreams({ds[0]})/Observations", json=body)
                lat.append(time.perf_counter() - t0)
                assert r.status_code == 201, r.text
            p50, p99 = statistics.median(lat) * 1e3, _pct(lat, 0.99) * 1e3
            log(f"  single POST: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
            report.add(
                "single Observation POST, one client (p50 / p99)", f"{p50:.2f} / {p99:.2f} ms", "p50 < 5 ms", p50 < 5
            )
            lat = []
            for i in range(singles // 2):
                body1 = _csv(ds[1], base + timedelta(seconds=i), 1)
                t0 = time.perf_counter()
                r = c.post("/api/v1/ingest", content=body1, headers={"Content-Type": "text/csv"})
                lat.append(time.perf_counter() - t0)
                assert r.status_code == 200 and r.json()["stored"] == 1, r.text
            p50, p99 = statistics.median(lat) * 1e3, _pct(lat, 0.99) * 1e3
            log(f"  1-row bulk CSV: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
            report.add(
                "1-row bulk CSV request, one client (p50 / p99)", f"{p50:.2f} / {p99:.2f} ms", "< 10 ms", p50 < 10
            )
            bodies = [_csv(ds[2], base + timedelta(seconds=k * BATCH), BATCH) for k in range(bulks)]
            lat = []
            t_all = time.perf_counter()
            for b in bodies:
                t0 = time.perf_counter()
                r = c.post("/api/v1/ingest", content=b, headers={"Content-Type": "text/csv"})
                lat.append(time.perf_counter() - t0)
                assert r.status_code == 200 and r.json()["stored"] == BATCH, r.text
            wall = time.perf_counter() - t_all
            hub_rate = bulks * BATCH / wall
            log(
                f"  {BATCH:,}-row bulk CSV: p50 {statistics.median(lat) * 1e3:.1f} ms; serial client "
                f"{hub_rate:,.0f} rows/s"
            )
            report.add(f"{BATCH:,}-row bulk CSV request, one client (p50)", f"{statistics.median(lat) * 1e3:.1f} ms")
    finally:
        server.stop()
    copy_rate = _pg_copy_serial(bodies)
    if copy_rate is None:
        report.add("serial 10,000-row client vs PostgreSQL COPY", f"{hub_rate:,.0f} rows/s; COPY skipped", "")
        return
    ratio = hub_rate / copy_rate
    log(
        f"  PostgreSQL COPY of the same CSV bodies, one connection, commit per batch: {copy_rate:,.0f} rows/s "
        f"-> CityHub {ratio:.2f}x"
    )
    report.add(
        "serial 10,000-row CSV client: CityHub / PostgreSQL COPY (one connection)",
        f"{hub_rate:,.0f} / {copy_rate:,.0f} rows/s = {ratio:.2f}x",
        ">= 0.5x",
        ratio >= 0.5,
    )


def _pg_copy_serial(bodies: list[bytes]) -> float | None:
    """COPY ... FROM STDIN (FORMAT csv) of the very bodies the hub got, one per transaction, into a table
    with the same natural key; None when no PostgreSQL answers."""
    try:
        import psycopg

        conn: Any = psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=3)
    except Exception as exc:
        log(f"  PostgreSQL COPY skipped: {str(exc).strip()[:120]}")
        return None
    schema = f"cityhub_serial_{int(time.time())}"
    try:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(
            f"CREATE TABLE {schema}.obs (datastream_id bigint, phenomenon_time timestamptz, result double precision,"
            " PRIMARY KEY (datastream_id, phenomenon_time))"
        )
        conn.commit()
        sql = f"COPY {schema}.obs FROM STDIN (FORMAT csv, HEADER true)"
        t0 = time.perf_counter()
        for b in bodies:
            with conn.cursor() as cur, cur.copy(sql) as cp:
                cp.write(b)
            conn.commit()
        wall = time.perf_counter() - t0
        return len(bodies) * BATCH / wall
    finally:
        conn.rollback()
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.commit()
        conn.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.serial", description=__doc__)
    p.add_argument("--singles", type=int, default=1000)
    p.add_argument("--bulks", type=int, default=20)
    a = p.parse_args(argv)
    report = Report()
    tmp = make_tmpdir("serial")
    try:
        serial_part(report, tmp, singles=a.singles, bulks=a.bulks)
    finally:
        remove_tmpdir(tmp)
    report.print()
    return 1 if report.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
