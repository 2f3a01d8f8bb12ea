"""Shared fixtures: settings in a temporary data directory, an app client with an admin key, a station."""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
from collections.abc import Callable, Iterator
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


# -- the store every test runs on: `pytest --store postgresql` (or CITYHUB_TEST_STORE) runs the whole suite on
# PostgreSQL, each test in a schema of its own in the database below; `make test` runs both stores.
PG_TEST_DB = os.environ.get("CITYHUB_TEST_PG_DB", "cityhub_test")
PG_TEST_URL = os.environ.get("CITYHUB_TEST_PG_URL", f"postgresql://postgres@127.0.0.1:5432/{PG_TEST_DB}")
_schema_numbers = itertools.count(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store",
        choices=("duckdb", "postgresql"),
        default=os.environ.get("CITYHUB_TEST_STORE", "duckdb"),
        help="the store every test runs on (default: duckdb; CITYHUB_TEST_STORE)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "duckdb_only: a test of the embedded store's own mechanics")
    config.addinivalue_line("markers", "postgresql_only: a test of the PostgreSQL store's own mechanics")


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def missing_prerequisites(chromium: Path = Path("/usr/bin/chromium"), pg_port: int = 5432) -> list[str]:
    """What this machine lacks for some tests, each with how to get it (shown before the run starts)."""
    import importlib.util
    import shutil

    from cityhub.web import vendor_built

    out = []
    if not chromium.exists():
        out.append(f"browser tests: {chromium} is missing (apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        out.append("browser tests: Playwright is missing (pip install -e '.[test]')")
    if not vendor_built() and shutil.which("npm") is None:
        out.append("browser tests and eslint: npm is missing, so web/node_modules is not built (install Node.js 20)")
    for port, what, how in (
        (
            pg_port,
            "PostgreSQL tests",
            "PostgreSQL 15 with PostGIS on 127.0.0.1:5432 (apt-get install postgresql-15-postgis-3)",
        ),
        (1883, "MQTT tests", "Mosquitto on 127.0.0.1:1883 (apt-get install mosquitto)"),
    ):
        if not _listening(port):
            out.append(f"{what}: nothing listens on {port}: {how}")
    if not (Path(__file__).resolve().parents[2] / "shared" / "data").is_dir():
        out.append("real-data tests: ../shared/data is absent")
    return out


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [f"store: {config.getoption('--store')}"]
    missing = missing_prerequisites()
    if missing:
        strict = os.environ.get("CITYHUB_REQUIRE_SERVICES") == "1"
        lines.append("these tests will " + ("FAIL (CITYHUB_REQUIRE_SERVICES=1):" if strict else "be skipped:"))
        lines += [f"  - {m}" for m in missing]
    return lines


def store_kind(config: pytest.Config) -> str:
    return str(config.getoption("--store"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kind = store_kind(config)
    for item in items:
        if kind == "postgresql" and item.get_closest_marker("duckdb_only"):
            item.add_marker(pytest.mark.skip(reason="tests the embedded DuckDB store's own mechanics"))
        if kind == "duckdb" and item.get_closest_marker("postgresql_only"):
            item.add_marker(pytest.mark.skip(reason="tests the PostgreSQL store's own mechanics (--store postgresql)"))


@pytest.fixture(scope="session")
def pg_test_database(pytestconfig: pytest.Config) -> Iterator[str]:
    """The test database (made with PostGIS when missing); schemas left by an earlier, killed run are dropped."""
    require_service("127.0.0.1", 5432, "PostgreSQL")
    import psycopg

    admin = PG_TEST_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as con:
        if not con.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG_TEST_DB]).fetchone():
            con.execute(f'CREATE DATABASE "{PG_TEST_DB}"')
    with psycopg.connect(PG_TEST_URL, autocommit=True) as con:
        with con.transaction():  # under the migrations' lock: several test runs may start at once
            con.execute("SELECT pg_advisory_xact_lock(%s)", [0x43_48_53_43])
            con.execute("CREATE EXTENSION IF NOT EXISTS postgis SCHEMA public")
        mine = f"t{os.getpid()}_"
        for (name,) in con.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname ~ '^t[0-9]+_[0-9]+$' AND nspname NOT LIKE %s", [mine + "%"]
        ).fetchall():
            pid = int(name[1:].split("_")[0])
            if not _alive(pid):
                con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    yield PG_TEST_URL


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def new_pg_schema_url(base: str) -> str:
    """A store URL on a schema no other test uses (created by the store's migrations)."""
    return f"{base}?schema=t{os.getpid()}_{next(_schema_numbers)}"


def drop_pg_schema(url: str) -> None:
    import psycopg

    base, _, query = url.partition("?schema=")
    with psycopg.connect(base, autocommit=True) as con:
        con.execute("SET lock_timeout = '5s'")
        # psycopg.Error: a process of the test still holds it; the next run's start drops it.
        with contextlib.suppress(psycopg.Error):
            con.execute(f'DROP SCHEMA IF EXISTS "{query}" CASCADE')


@pytest.fixture(autouse=True)
def _test_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """With --store postgresql: CITYHUB_STORE names a fresh schema for this test (hubs started by the test, in
    process or as child processes, read it), dropped afterwards."""
    if store_kind(request.config) != "postgresql" or request.node.get_closest_marker("duckdb_only"):
        monkeypatch.delenv("CITYHUB_STORE", raising=False)
        yield ""
        return
    base = request.getfixturevalue("pg_test_database")
    url = new_pg_schema_url(base)
    monkeypatch.setenv("CITYHUB_STORE", url)
    try:
        yield url
    finally:
        drop_pg_schema(url)


@pytest.fixture
def another_store(request: pytest.FixtureRequest) -> Iterator[Callable[[], dict[str, str]]]:
    """Settings keywords for a second, independent hub in the same test (another schema on PostgreSQL; on DuckDB
    the data directory alone separates them): ``Settings(data_dir=..., **another_store())``."""
    made: list[str] = []

    def make() -> dict[str, str]:
        if not os.environ.get("CITYHUB_STORE"):
            return {}
        made.append(new_pg_schema_url(request.getfixturevalue("pg_test_database")))
        return {"store": made[-1]}

    yield make
    for url in made:
        drop_pg_schema(url)


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
