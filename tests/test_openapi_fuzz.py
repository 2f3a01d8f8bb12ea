"""Schemathesis against /openapi.json of a real server: no generated request may produce a 5xx."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from cityhub.app import create_app
from cityhub.auth.keys import KeyStore
from cityhub.config import Settings
from tests.conftest import station_body
from tests.servers import free_port, start_server, stop_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, subprocess.Popen, Path]]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz") / "var"
    key = KeyStore(data_dir / "keys.json").create("admin", "fuzz")
    port = free_port()
    proc = start_server(data_dir, port)
    base = f"http://127.0.0.1:{port}"
    # Some data, so that generated ids and filters meet real rows.
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as c:
        for name in ("Hoàn Kiếm", "Minh Khai"):
            c.post("/v1.1/Things", json=station_body(name))
        c.post(
            "/api/v1/ingest",
            content="datastream,phenomenonTime,result\n1,2026-01-01T00:00:00Z,3\n2,2026-01-01T00:00:00Z,4\n",
            headers={"Content-Type": "text/csv"},
        )
    try:
        yield base, key, proc, data_dir
    finally:
        stop_server(proc)


# The schema comes from the application itself; requests go to the real server started above.
schema = schemathesis.openapi.from_dict(create_app(Settings(data_dir=Path("unused"))).openapi())


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, server: tuple[str, str, subprocess.Popen, Path]) -> None:
    base, key, proc, data_dir = server
    try:
        response = case.call(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    except Exception:
        # A hang: have the server print every thread's stack (cityhub serve registers SIGUSR1) and show it.
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1)
        print((data_dir / "server.log").read_text()[-20_000:])
        raise
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} → {response.status_code}: {response.text[:500]}"
    )
