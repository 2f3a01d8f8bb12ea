"""Limits that protect the hub: the request-body limit (issue 10: ``max_body_bytes`` was never enforced)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from cityhub.app import create_app
from cityhub.auth.keys import KeyStore
from cityhub.config import Settings
from tests.conftest import station_body
from tests.servers import free_port, start_server, stop_server

LIMIT = 64 * 1024


@pytest.fixture
def small(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "var", max_body_bytes=LIMIT)
    with TestClient(create_app(settings)) as c:
        c.headers["Authorization"] = f"Bearer {KeyStore(settings.keys_path).create('admin', 'test')}"
        yield c


def test_a_body_over_the_limit_is_413_naming_the_body(small: TestClient) -> None:
    thing = small.post("/v1.1/Things", json=station_body()).json()["@iot.id"]
    ds = small.get(f"/v1.1/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]
    rows = "".join(f"{ds},2026-01-01T00:{m % 60:02d}:{m // 60 % 60:02d}Z,{m}\n" for m in range(5000))
    body = ("datastream,phenomenonTime,result\n" + rows).encode()
    assert len(body) > LIMIT
    for path, ctype in (
        ("/api/v1/ingest", "text/csv"),
        ("/v1.1/Things", "application/json"),
        ("/api/v1/rules", "application/json"),
    ):
        r = small.post(path, content=body, headers={"Content-Type": ctype})
        assert r.status_code == 413, (path, r.status_code)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["field"] == "body" and f"{LIMIT:,}" in r.json()["detail"]
    # Nothing of it was stored, and a body within the limit still works.
    assert small.get(f"/v1.1/Datastreams({ds})/Observations").json()["value"] == []
    ok = small.post(
        "/api/v1/ingest",
        content=("datastream,phenomenonTime,result\n" + "".join(rows.splitlines(keepends=True)[:100])).encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert ok.status_code == 200 and ok.json()["stored"] > 0


def test_a_chunked_body_is_cut_off_at_the_limit(tmp_path: Path) -> None:
    """Without a Content-Length the body is counted as it streams, on a real server."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    key = KeyStore(tmp_path / "var" / "keys.json").create("admin", "test")
    server = start_server(tmp_path / "var", port, env={"CITYHUB_MAX_BODY_BYTES": str(LIMIT)})
    try:

        def chunks() -> Iterator[bytes]:
            yield b"datastream,phenomenonTime,result\n"
            for _ in range(200):
                yield b"1,2026-01-01T00:00:00Z,1\n" * 100

        r = httpx.post(
            f"{url}/api/v1/ingest",
            content=chunks(),
            headers={"Content-Type": "text/csv", "Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert r.status_code == 413
        assert r.json()["field"] == "body"
        assert httpx.get(f"{url}/healthz").status_code == 200
    finally:
        stop_server(server)
