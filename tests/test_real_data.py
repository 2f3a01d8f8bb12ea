"""Real Hanoi data from ../shared/data through the hub: the US Embassy PM2.5 hours of 2016–2017."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from fastapi.testclient import TestClient

from cityhub.app import create_app
from cityhub.auth.keys import KeyStore
from cityhub.config import Settings
from tests.conftest import station_body


def stateair_rows(shared_data: Path) -> pa.Table:
    """Valid hourly PM2.5 of the three StateAir files, deduplicated on the local date-time."""
    tables = []
    for name in ("Hanoi_PM2.5_2016_YTD.csv", "Hanoi_PM2.5_2016_12_MTD.csv", "Hanoi_PM2.5_2017_YTD.csv"):
        t = pacsv.read_csv(
            shared_data / "air" / "stateair_hanoi" / name,
            convert_options=pacsv.ConvertOptions(column_types={"Date (LT)": pa.string()}),
        )
        tables.append(t.select(["Date (LT)", "Year", "Month", "Day", "Hour", "Raw Conc.", "QC Name"]))
    t = pa.concat_tables(tables)
    t = t.filter(pc.and_(pc.equal(t["QC Name"], "Valid"), pc.greater_equal(t["Raw Conc."], 0)))
    times = [
        f"{y:04d}-{m:02d}-{d:02d}T{h:02d}:00:00+07:00"
        for y, m, d, h in zip(
            t["Year"].to_pylist(),
            t["Month"].to_pylist(),
            t["Day"].to_pylist(),
            t["Hour"].to_pylist(),
            strict=True,
        )
    ]
    return pa.table({"phenomenonTime": times, "result": t["Raw Conc."]})


def test_import_us_embassy_pm25_over_http_and_check_daily_means(shared_data: Path, client: TestClient) -> None:
    rows = stateair_rows(shared_data)
    unique = len(set(rows["phenomenonTime"].to_pylist()))
    thing = client.post("/v1.1/Things", json=station_body("Đại sứ quán Hoa Kỳ", 105.8189, 21.0215)).json()["@iot.id"]
    ds = client.get(f"/v1.1/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]
    body = rows.add_column(0, "datastream", pa.array([ds] * rows.num_rows, pa.int64()))
    sink = pa.BufferOutputStream()
    pacsv.write_csv(body, sink)
    data = sink.getvalue().to_pybytes()
    r = client.post("/api/v1/ingest", content=data, headers={"Content-Type": "text/csv"})
    # The export labels hours in local time but repeats 03:00 on the days the US (not Vietnam) starts
    # daylight saving, with two different values: a real conflict, reported, not silently resolved.
    assert r.status_code == 409, r.text
    conflicts = r.json()["errors"]
    assert [rows["phenomenonTime"][e["index"]].as_py() for e in conflicts] == [
        "2016-03-13T03:00:00+07:00",
        "2017-03-12T03:00:00+07:00",
    ]
    assert client.get(f"/v1.1/Datastreams({ds})/Observations?$top=0&$count=true").json()["@iot.count"] == 0

    r = client.post("/api/v1/ingest?partial=true", content=data, headers={"Content-Type": "text/csv"})
    assert r.status_code == 207, r.text
    out = r.json()
    # The YTD and MTD files overlap in December 2016: the overlap is stored once.
    assert out["stored"] == unique
    assert out["rejected"] == 2
    assert out["duplicates"] == rows.num_rows - unique - 2
    assert unique > 15_000
    rows = rows.filter(pa.array([i not in {e["index"] for e in conflicts} for i in range(rows.num_rows)]))

    # Daily means (Hanoi days) from the hub equal a direct computation over the same hours.
    direct: dict[str, list[float]] = {}
    for t, v in zip(rows["phenomenonTime"].to_pylist(), rows["result"].to_pylist(), strict=True):
        direct.setdefault(t[:10], []).append(v)
    agg = client.post(
        "/api/v1/aggregate",
        json={
            "datastreams": [ds],
            "interval": "day",
            "start": "2016-03-01T00:00:00+07:00",
            "end": "2016-04-01T00:00:00+07:00",
        },
    ).json()
    series = agg["value"][0]
    assert len(series["time"]) == len([d for d in direct if d.startswith("2016-03")]) >= 28
    for t, v, n in zip(series["time"], series["value"], series["count"], strict=True):
        # a bucket starting at 17:00Z is local midnight of the next calendar day
        local = (datetime.fromisoformat(t.replace("Z", "+00:00")) + timedelta(hours=7)).date().isoformat()
        assert n == len(direct[local]), local
        assert abs(v - sum(direct[local]) / n) < 1e-9


def test_cli_import_parquet_of_real_rows(shared_data: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var")
    KeyStore(settings.keys_path).create("admin", "t")
    with TestClient(create_app(settings)) as c:
        key = KeyStore(settings.keys_path).create("admin", "t2")
        c.headers["Authorization"] = f"Bearer {key}"
        thing = c.post("/v1.1/Things", json=station_body()).json()["@iot.id"]
        ds = c.get(f"/v1.1/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]
    rows = stateair_rows(shared_data).slice(0, 5000)
    path = tmp_path / "pm25.parquet"
    pq.write_table(rows.add_column(0, "datastream", pa.array([ds] * rows.num_rows, pa.int64())), path)
    cli = str(Path(sys.executable).with_name("cityhub"))
    done = subprocess.run(
        [cli, "import", str(path), "--data-dir", str(settings.data_dir)], capture_output=True, text=True
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2016-03-12T20:00:00+00:00" in done.stdout  # 03:00 of the US daylight-saving day, repeated
    done = subprocess.run(
        [cli, "import", str(path), "--partial", "--data-dir", str(settings.data_dir)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "stored 4,999, duplicates 0, rejected 1" in done.stdout
    info = subprocess.run([cli, "info", "--json", "--data-dir", str(settings.data_dir)], capture_output=True, text=True)
    assert '"observations": 4999' in info.stdout
