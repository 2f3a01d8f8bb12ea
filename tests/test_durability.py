"""A 2xx means committed: kill -9 of a real `cityhub serve` right after acknowledged writes loses nothing."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from cityhub.auth.keys import KeyStore
from tests.conftest import station_body
from tests.servers import free_port, start_server, stop_server


def test_kill_9_after_acknowledged_writes_loses_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    key = KeyStore(data_dir / "keys.json").create("admin", "test")
    headers = {"Authorization": f"Bearer {key}"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(data_dir, port)
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
            thing = c.post("/v1.1/Things", json=station_body()).json()["@iot.id"]
            ds = c.get(f"/v1.1/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]

            def single(k: int) -> int:
                with httpx.Client(base_url=base, headers=headers, timeout=30) as cc:
                    r = cc.post(
                        f"/v1.1/Datastreams({ds})/Observations",
                        json={"phenomenonTime": f"2026-01-01T00:{k // 60:02d}:{k % 60:02d}Z", "result": k},
                    )
                    return r.status_code

            with ThreadPoolExecutor(8) as pool:
                codes = list(pool.map(single, range(200)))
            assert codes == [201] * 200
            rows = "\n".join(f"{ds},2026-01-02T{h:02d}:{m:02d}:00Z,{h * 60 + m}" for h in range(24) for m in range(60))
            r = c.post(
                "/api/v1/ingest",
                content="datastream,phenomenonTime,result\n" + rows,
                headers={"Content-Type": "text/csv"},
            )
            assert r.status_code == 200
            assert r.json()["stored"] == 1440
        os.kill(proc.pid, signal.SIGKILL)  # no chance to checkpoint or flush anything
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()

    proc = start_server(data_dir, port)
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            count = c.get(f"/v1.1/Datastreams({ds})/Observations?$count=true&$top=1").json()["@iot.count"]
            assert count == 200 + 1440
            latest = c.get(f"/api/v1/latest?datastreams={ds}").json()["value"][0]
            assert latest["count"] == 1640
            assert latest["phenomenonTime"] == "2026-01-02T23:59:00Z"
    finally:
        stop_server(proc)
