"""Shared fixtures: settings in a temporary data directory, an app client with an admin key, a station."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cityhub.app import create_app
from cityhub.auth.keys import KeyStore
from cityhub.config import Settings

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
REFERENCE = ROOT.parent / "shared" / "reference"


def require_service(host: str, port: int, name: str) -> None:
    """Skip when a service is absent (a laptop); fail in CI, where CITYHUB_REQUIRE_SERVICES=1."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return
    except OSError as exc:
        msg = f"{name} not reachable at {host}:{port} ({exc})"
        if os.environ.get("CITYHUB_REQUIRE_SERVICES") == "1":
            pytest.fail(msg + " and CITYHUB_REQUIRE_SERVICES=1")
        pytest.skip(msg)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var")


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def admin_key(settings: Settings) -> str:
    return KeyStore(settings.keys_path).create("admin", "test admin")


@pytest.fixture
def client(app_client: TestClient, admin_key: str) -> TestClient:
    """A client that sends an admin key."""
    app_client.headers["Authorization"] = f"Bearer {admin_key}"
    return app_client


OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
UGM3 = {
    "name": "microgram per cubic metre",
    "symbol": "µg/m³",
    "definition": "http://qudt.org/vocab/unit/MicroGM-PER-M3",
}


def station_body(name: str = "Hoàn Kiếm", lon: float = 105.8535, lat: float = 21.0245, n_ds: int = 1) -> dict:
    return {
        "name": f"Trạm {name}",
        "description": f"air-quality station {name}",
        "properties": {"district": name, "height": 3},
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
                "name": f"PM2.5 {name} {k}",
                "description": "hourly PM2.5",
                "observationType": OM_MEASUREMENT,
                "unitOfMeasurement": UGM3,
                "Sensor": {
                    "name": "BAM-1020",
                    "description": "beta attenuation",
                    "encodingType": "text/html",
                    "metadata": "https://metone.com",
                },
                "ObservedProperty": {
                    "name": "PM2.5",
                    "definition": "http://dbpedia.org/resource/Particulates",
                    "description": "fine particulates",
                },
            }
            for k in range(n_ds)
        ],
    }


@pytest.fixture
def station(client: TestClient) -> dict:
    """A Thing with one Location and one PM2.5 Datastream; returns ids."""
    r = client.post("/v1.1/Things", json=station_body())
    assert r.status_code == 201, r.text
    thing = r.json()["@iot.id"]
    ds = client.get(f"/v1.1/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]
    return {"thing": thing, "datastream": ds}
