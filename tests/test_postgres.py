"""The PostgreSQL store's own mechanics: schema migrations, month partitions, outages (a real server restart),
statement timeouts, and several hub processes on one database. Everything else runs on both stores through the
whole suite (`pytest --store postgresql`)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from cityhub.auth.keys import KeyStore
from cityhub.cli import app as cli
from cityhub.config import Settings
from cityhub.errors import ProblemError
from cityhub.store import open_store
from cityhub.store.base import OBSERVATION_BATCH_SCHEMA
from cityhub.store.postgres import PostgresStore, migrate
from cityhub.store.postgres.store import split_url
from tests.conftest import station_body
from tests.servers import CITYHUB, free_port, start_server, stop_server

pytestmark = pytest.mark.postgresql_only


@pytest.fixture
def url(_test_store: str) -> str:
    return _test_store


def schema_version(url: str) -> int:
    conninfo, schema = split_url(url)
    with psycopg.connect(conninfo, autocommit=True) as con:
        return migrate.current_version(con, schema)


def test_db_init_is_safe_twice_and_a_newer_schema_is_refused(url: str) -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["db", "init", "--store", url])
    assert first.exit_code == 0, first.output
    assert "applied 0001_initial" in first.output
    again = runner.invoke(cli, ["db", "init", "--store", url])
    assert again.exit_code == 0 and "nothing to do" in again.output
    assert runner.invoke(cli, ["db", "upgrade", "--store", url]).exit_code == 0
    status = runner.invoke(cli, ["db", "status", "--store", url])
    assert status.exit_code == 0 and f"version {migrate.CODE_VERSION}" in status.output
    assert schema_version(url) == migrate.CODE_VERSION
    # A database upgraded by newer code: this code neither upgrades nor serves it.
    conninfo, schema = split_url(url)
    with psycopg.connect(conninfo, autocommit=True) as con:
        con.execute(
            f'INSERT INTO "{schema}".cityhub_schema (version, name, code_version) VALUES (%s, %s, %s)',  # noqa: S608
            [migrate.CODE_VERSION + 1, "from_the_future", "9.9"],
        )
    newer = runner.invoke(cli, ["db", "upgrade", "--store", url])
    assert newer.exit_code == 2 and "newer than this code" in newer.output
    with pytest.raises(migrate.SchemaError, match="newer than this code"):
        PostgresStore(url)


def test_upgrade_without_init_and_serving_an_uninitialised_schema(url: str) -> None:
    out = CliRunner().invoke(cli, ["db", "upgrade", "--store", url])
    assert out.exit_code == 1 and "db init" in out.output
    with pytest.raises(migrate.SchemaError, match="db init"):
        PostgresStore(url, migrate_mode="check")
    store = PostgresStore(url)  # "auto" (serve): an empty schema is initialised
    store.close()
    assert schema_version(url) == migrate.CODE_VERSION


def test_migration_0012_keeps_the_order_multi_datastream_links_were_read_in(url: str) -> None:
    """The links stored before the position column are numbered in ObservedProperty id order, the order they were
    read back in; afterwards an ObservedProperty may be linked twice."""
    conninfo, schema = split_url(url)
    table = f'"{schema}".multi_datastream_observed_properties'
    with psycopg.connect(conninfo, autocommit=True) as con:
        migrate.upgrade(con, schema, target=11)
        con.execute(f"INSERT INTO {table} VALUES (5, 9), (5, 4), (6, 9)")  # noqa: S608
        migrate.upgrade(con, schema)
        rows = con.execute(f"SELECT multi_datastream_id, observed_property_id, rank FROM {table} ORDER BY 1, 3")  # noqa: S608
        assert rows.fetchall() == [(5, 4, 0), (5, 9, 1), (6, 9, 0)]
        con.execute(f"INSERT INTO {table} VALUES (5, 4, 2)")  # noqa: S608


def test_two_processes_migrating_at_once_apply_each_migration_once(url: str) -> None:
    errors: list[BaseException] = []

    def open_close() -> None:
        try:
            PostgresStore(url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_close) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    conninfo, schema = split_url(url)
    with psycopg.connect(conninfo, autocommit=True) as con:
        rows = con.execute(f'SELECT version FROM "{schema}".cityhub_schema').fetchall()  # noqa: S608
    assert rows == [(v,) for v in range(1, migrate.CODE_VERSION + 1)]


def test_a_process_starting_during_another_ones_first_upgrade_waits_for_its_end(url: str) -> None:
    """`serve --workers 2` on an empty schema: one worker initialises it, migration by migration; the other, reading
    the version between two of them, saw a half-made schema and refused to start (seen in CI)."""
    conninfo, schema = split_url(url)
    opened: list[object] = []
    with psycopg.connect(conninfo, autocommit=True) as con, migrate.schema_lock(con):
        migrate.upgrade(con, schema, target=5)  # the first worker, half-way
        starter = threading.Thread(target=lambda: opened.append(_open_or_error(url)))
        starter.start()
        starter.join(1.0)
        assert starter.is_alive() and opened == []  # waiting for the lock, not refusing
        migrate.upgrade(con, schema)
    starter.join(30)
    assert len(opened) == 1 and isinstance(opened[0], PostgresStore), opened
    opened[0].close()
    assert schema_version(url) == migrate.CODE_VERSION


def _open_or_error(url: str) -> object:
    try:
        return PostgresStore(url)
    except Exception as exc:
        return exc


def partitions(url: str) -> set[str]:
    conninfo, schema = split_url(url)
    with psycopg.connect(conninfo, autocommit=True) as con:
        rows = con.execute(
            """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace
               WHERE p.relname = 'observations' AND n.nspname = %s""",
            [schema],
        ).fetchall()
    return {r[0] for r in rows}


def test_observations_land_in_month_partitions_made_ahead_and_on_demand(url: str, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from cityhub.app import create_app

    settings = Settings(data_dir=tmp_path / "var")
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {KeyStore(settings.keys_path).create('admin', 't')}"
        thing = client.post("/v1.1/Things", json=station_body()).json()["@iot.id"]
        ds = client.get(f"/v1.1/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]
        now = datetime.now(UTC)
        ahead = {f"observations_p{(now.year * 12 + now.month - 1 + k) // 12:04d}{(now.month - 1 + k) % 12 + 1:02d}"
                 for k in range(3)}  # fmt: skip
        assert ahead <= partitions(url)
        times = ["1990-05-01T00:00:00Z", "2019-03-15T10:00:00Z", "2019-03-15T11:00:00Z"]
        body = {"Datastream": {"@iot.id": ds}, "components": ["phenomenonTime", "result"],
                "dataArray": [[t, float(i)] for i, t in enumerate(times)]}  # fmt: skip
        r = client.post("/v1.1/CreateObservations", json=[body])
        assert r.status_code == 201, r.text
        assert "observations_p201903" in partitions(url)
        got = client.get(f"/v1.1/Datastreams({ds})/Observations?$orderby=phenomenonTime&$select=result").json()
        assert [o["result"] for o in got["value"]] == [0.0, 1.0, 2.0]
        # Moving an Observation to a month without a partition yet makes that partition in the same transaction.
        first = client.get(f"/v1.1/Datastreams({ds})/Observations?$orderby=phenomenonTime&$top=1").json()["value"][0]
        r = client.patch(f"/v1.1/Observations({first['@iot.id']})", json={"phenomenonTime": "2011-07-04T00:00:00Z"})
        assert r.status_code == 200, r.text
        assert "observations_p201107" in partitions(url)
        ds_now = client.get(f"/v1.1/Datastreams({ds})").json()
        assert ds_now["phenomenonTime"] == "2011-07-04T00:00:00Z/2019-03-15T11:00:00Z"


def test_a_statement_past_the_timeout_is_cancelled_and_answered_503(url: str) -> None:
    store = PostgresStore(url, statement_timeout_s=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(ProblemError) as err:
            store.query("SELECT pg_sleep(5)")
        assert time.monotonic() - started < 3
        assert err.value.status == 503 and "statement timeout" in err.value.detail
        assert err.value.headers == {"Retry-After": "5"}
        assert store.query("SELECT 1") == [(1,)]  # the connection went back to the pool usable
    finally:
        store.close()


def test_the_pool_is_bounded_and_a_request_waits_then_gets_503(url: str) -> None:
    store = PostgresStore(url, pool_size=1, pool_timeout_s=0.5)
    try:
        with store.connection(), pytest.raises(ProblemError) as err:
            store.query("SELECT 1")
        assert err.value.status == 503 and err.value.headers == {"Retry-After": "1"}
    finally:
        store.close()


# -- real processes and a real server restart ---------------------------------------------------------------------
def _cluster() -> tuple[str, str] | None:
    if not shutil.which("pg_ctlcluster") or not shutil.which("pg_lsclusters"):
        return None
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=False).stdout.split()
    return (out[0], out[1]) if len(out) >= 2 else None


@pytest.fixture
def hub_env(url: str, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    data = tmp_path / "var"
    data.mkdir()
    key = KeyStore(data / "keys.json").create("admin", "t")
    yield data, key


def _datastream(base: str, key: str) -> int:
    h = {"Authorization": f"Bearer {key}"}
    thing = httpx.post(f"{base}/v1.1/Things", json=station_body(), headers=h, timeout=10).json()["@iot.id"]
    return httpx.get(f"{base}/v1.1/Things({thing})/Datastreams", headers=h, timeout=10).json()["value"][0]["@iot.id"]


def test_a_server_restart_mid_ingest_gives_503s_then_the_hub_reconnects_and_loses_nothing(
    url: str, hub_env: tuple[Path, str]
) -> None:
    cluster = _cluster()
    if cluster is None or os.geteuid() != 0:
        pytest.skip("needs pg_ctlcluster and root to restart the PostgreSQL server")
    data, key = hub_env
    port = free_port()
    proc = start_server(data, port)
    base = f"http://127.0.0.1:{port}"
    try:
        ds = _datastream(base, key)
        acked: list[str] = []
        statuses: dict[int, int] = {}
        slowest = 0.0
        stop = threading.Event()
        t0 = datetime(2026, 1, 1, tzinfo=UTC)

        def post() -> None:
            nonlocal slowest
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
                i = 0
                while not stop.is_set():
                    when = (t0 + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
                    started = time.monotonic()
                    r = c.post(f"/v1.1/Datastreams({ds})/Observations", json={"phenomenonTime": when, "result": i})
                    slowest = max(slowest, time.monotonic() - started)
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    if r.status_code == 201:
                        acked.append(when)
                    elif r.status_code == 503:
                        assert r.headers.get("Retry-After"), r.text
                        assert r.json()["detail"]
                        time.sleep(0.1)
                    i += 1

        writer = threading.Thread(target=post)
        writer.start()
        time.sleep(1.0)
        before = len(acked)
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, "restart"], check=True, timeout=60)
        # The hub reconnects by itself: writes are acknowledged again within seconds.
        deadline = time.monotonic() + 20
        after_restart = len(acked)
        while time.monotonic() < deadline and len(acked) < after_restart + 20:
            time.sleep(0.1)
        stop.set()
        writer.join(30)
        assert before > 0 and len(acked) >= after_restart + 20, statuses
        assert set(statuses) <= {201, 503}, statuses  # never a 500
        assert slowest < 20  # never a hang
        got = httpx.get(
            f"{base}/v1.1/Datastreams({ds})/Observations",
            params={"$select": "phenomenonTime", "$top": 10000, "$orderby": "phenomenonTime"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        ).json()["value"]
        stored = {o["phenomenonTime"] for o in got}
        assert set(acked) <= stored
    finally:
        stop_server(proc)


def test_two_processes_share_one_database_and_kill_9_of_one_loses_nothing(url: str, hub_env: tuple[Path, str]) -> None:
    data, key = hub_env
    ports = [free_port(), free_port()]
    procs = [start_server(data, p) for p in ports]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    h = {"Authorization": f"Bearer {key}"}
    try:
        ds = _datastream(bases[0], key)
        # Entities made through both at once: ids never collide.
        made: list[int] = []

        def make(base: str) -> None:
            for k in range(10):
                r = httpx.post(f"{base}/v1.1/Sensors", headers=h, timeout=10,
                               json={"name": f"s{k}", "description": "d", "encodingType": "text/html",
                                     "metadata": "m"})  # fmt: skip
                assert r.status_code == 201, r.text
                made.append(r.json()["@iot.id"])

        threads = [threading.Thread(target=make, args=(b,)) for b in bases]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(made)) == 20
        # A write acknowledged by one process is read by the other at once (latest value included).
        r = httpx.post(f"{bases[0]}/v1.1/Datastreams({ds})/Observations", headers=h, timeout=10,
                       json={"phenomenonTime": "2026-02-01T00:00:00Z", "result": 42})  # fmt: skip
        assert r.status_code == 201
        obs = httpx.get(f"{bases[1]}/v1.1/Datastreams({ds})/Observations", headers=h, timeout=10).json()["value"]
        assert [o["result"] for o in obs] == [42]
        # kill -9 of the first while the second serves: what the first acknowledged is kept.
        acked = []
        for i in range(50):
            when = f"2026-02-02T00:{i // 60:02d}:{i % 60:02d}Z"
            r = httpx.post(f"{bases[0]}/v1.1/Datastreams({ds})/Observations", headers=h, timeout=10,
                           json={"phenomenonTime": when, "result": i})  # fmt: skip
            assert r.status_code == 201
            acked.append(when)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(10)
        r = httpx.post(f"{bases[1]}/v1.1/Datastreams({ds})/Observations", headers=h, timeout=10,
                       json={"phenomenonTime": "2026-02-03T00:00:00Z", "result": 7})  # fmt: skip
        assert r.status_code == 201
        got = httpx.get(f"{bases[1]}/v1.1/Datastreams({ds})/Observations", headers=h, timeout=10,
                        params={"$top": 1000, "$select": "phenomenonTime"}).json()["value"]  # fmt: skip
        assert set(acked) <= {o["phenomenonTime"] for o in got}
        assert len(got) == 52
    finally:
        for p in procs:
            if p.poll() is None:
                stop_server(p)


def test_open_store_follows_the_settings(url: str, tmp_path: Path) -> None:
    store = open_store(Settings(data_dir=tmp_path, store=url))
    try:
        info = store.info()
        assert info["backend"] == "postgresql" and info["counts"]["observations"] == 0
        assert info["bytes_on_disk"] > 0
    finally:
        store.close()


def _health(base: str) -> dict:
    return httpx.get(f"{base}/healthz", timeout=10).json()


def _wait(cond: object, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_one_process_evaluates_alerts_events_reach_every_process_and_another_takes_over(
    url: str, hub_env: tuple[Path, str]
) -> None:
    data, key = hub_env
    h = {"Authorization": f"Bearer {key}"}
    ports = [free_port(), free_port()]
    a = start_server(data, ports[0])
    b = start_server(data, ports[1])
    base_a, base_b = (f"http://127.0.0.1:{p}" for p in ports)
    try:
        assert _health(base_a)["cluster"]["leader"] is True
        assert _health(base_b)["cluster"]["leader"] is False
        ds = _datastream(base_b, key)  # made through the follower: the leader's catalogue learns of it
        rule = {"name": "PM2.5 high", "kind": "threshold", "value": 100, "scope": {"datastream": ds}}
        r = httpx.post(f"{base_b}/api/v1/rules", json=rule, headers=h, timeout=10)  # a change by hand in the follower
        assert r.status_code == 201, r.text
        # An exceedance written through the follower is evaluated once, by the leader.
        r = httpx.post(f"{base_b}/v1.1/Datastreams({ds})/Observations", headers=h, timeout=10,
                       json={"phenomenonTime": "2026-03-01T00:00:00Z", "result": 250})  # fmt: skip
        assert r.status_code == 201, r.text
        assert _wait(lambda: httpx.get(f"{base_a}/api/v1/alerts", headers=h, timeout=10).json()["count"] == 1)
        time.sleep(1.0)
        for base in (base_a, base_b):
            alerts = httpx.get(f"{base}/api/v1/alerts", headers=h, timeout=10).json()
            assert alerts["count"] == 1, alerts
        assert _health(base_b)["cluster"]["received"] > 0
        # The leader dies: the follower takes over within seconds and evaluates what comes next.
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        assert _wait(lambda: _health(base_b)["cluster"]["leader"] is True, timeout=15)
        ds2 = _datastream(base_b, key)
        rule2 = {**rule, "name": "PM2.5 high 2", "scope": {"datastream": ds2}}
        assert httpx.post(f"{base_b}/api/v1/rules", json=rule2, headers=h, timeout=10).status_code == 201
        r = httpx.post(f"{base_b}/v1.1/Datastreams({ds2})/Observations", headers=h, timeout=10,
                       json={"phenomenonTime": "2026-03-01T01:00:00Z", "result": 300})  # fmt: skip
        assert r.status_code == 201
        assert _wait(lambda: httpx.get(f"{base_b}/api/v1/alerts", headers=h, timeout=10).json()["count"] == 2)
    finally:
        for p in (a, b):
            if p.poll() is None:
                stop_server(p)


def test_workers_serve_one_port_and_the_embedded_store_refuses_them(url: str, hub_env: tuple[Path, str]) -> None:
    data, key = hub_env
    out = subprocess.run([CITYHUB, "serve", "--workers", "2", "--data-dir", str(data)], capture_output=True, text=True,
                         env={**os.environ, "CITYHUB_STORE": ""}, timeout=60)  # fmt: skip
    assert out.returncode == 2 and "--workers needs --store" in out.stdout
    port = free_port()
    proc = start_server(data, port, "--workers", "2")
    try:
        base = f"http://127.0.0.1:{port}"
        origins = set()
        leaders = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(origins) < 2:
            with httpx.Client(timeout=10) as c:  # a new connection each time: the kernel spreads them
                got = c.get(f"{base}/healthz").json()["cluster"]
            if got["origin"] not in origins:
                origins.add(got["origin"])
                leaders += got["leader"]
        assert len(origins) == 2 and leaders == 1
        ds = _datastream(base, key)
        for i in range(20):
            r = httpx.post(f"{base}/v1.1/Datastreams({ds})/Observations", headers={"Authorization": f"Bearer {key}"},
                           json={"phenomenonTime": f"2026-04-01T00:00:{i:02d}Z", "result": i}, timeout=10)  # fmt: skip
            assert r.status_code == 201, r.text
        got = httpx.get(f"{base}/v1.1/Datastreams({ds})/Observations?$count=true&$top=0", timeout=10).json()
        assert got["@iot.count"] == 20
    finally:
        stop_server(proc)


# -- deferred roll-ups ---------------------------------------------------------------------------------------------
def _pg_with_datastreams(url: str, n: int = 2) -> tuple[PostgresStore, list[int]]:
    store = PostgresStore(url)
    with store.transaction() as tx:
        thing = tx.insert("things", {"name": "t", "description": "d"})
        sensor = tx.insert("sensors", {"name": "s", "description": "d", "encoding_type": "text/html", "metadata": "m"})
        prop = tx.insert("observed_properties", {"name": "p", "definition": "d", "description": "d"})
        ds = {
            "name": "ds", "description": "d", "unit_of_measurement": '{"symbol": "x"}', "thing_id": thing,
            "observation_type": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
            "sensor_id": sensor, "observed_property_id": prop,
        }  # fmt: skip
        ids = [tx.insert("datastreams", ds) for _ in range(n)]
    return store, ids


def _rows(store: PostgresStore, ds: int, minutes: range, value: float) -> pa.Table:
    """Observations of Datastream ``ds`` at these minutes after 2025-03-01, each with result ``value + minute``."""
    base = datetime(2025, 3, 1, tzinfo=UTC)
    n = len(minutes)
    cols: dict[str, list[object]] = {f.name: [None] * n for f in OBSERVATION_BATCH_SCHEMA}
    cols["id"] = store.allocate_ids("observations", n).tolist()
    cols["datastream_id"] = [ds] * n
    cols["phenomenon_time"] = [base + timedelta(minutes=m) for m in minutes]
    cols["result_number"] = [value + m for m in minutes]
    return pa.table(cols, schema=OBSERVATION_BATCH_SCHEMA)


def _pending_ranges(url: str) -> int:
    conninfo, schema = split_url(url)
    with psycopg.connect(conninfo, autocommit=True) as con:
        return int(con.execute(f'SELECT count(*) FROM "{schema}".rollup_pending').fetchone()[0])  # noqa: S608


def _hourly(store: PostgresStore, ds: int) -> list[tuple[datetime, float, int]]:
    t = store.aggregate([ds], "sum", "hour", None, None, 0)
    return list(zip(t.column("time").to_pylist(), t.column("value").to_pylist(), t.column("count").to_pylist(),
                    strict=True))  # fmt: skip


def test_roll_ups_are_deferred_and_any_process_folds_them_once(url: str) -> None:
    """Appends commit their rows and the id ranges awaiting roll-ups; a read folds first, in whichever process reads:
    rows another process holds in memory are read back from the database, and that process, folding later, does
    not count them again. Sums per hour and the latest value equal those of the rows, whatever folded them."""
    a, (ds1, ds2) = _pg_with_datastreams(url)
    b = PostgresStore(url)
    try:
        a.append_batch(_rows(a, ds1, range(0, 30), 0.0), lambda r: None)  # hour 0, minutes 0-29
        b.append_batch(_rows(b, ds1, range(30, 90), 0.0), lambda r: None)  # hour 0 and 1: shares a key with a's
        a.append_batch(_rows(a, ds2, range(0, 5), 100.0), lambda r: None)
        assert _pending_ranges(url) == 3 and a.pending_derived() == 35 and b.pending_derived() == 60
        # a folds all three: its own rows from memory, b's read back; b's hour-0 rows share a's key.
        a.flush_derived()
        assert _pending_ranges(url) == 0 and a.pending_derived() == 0
        assert _hourly(a, ds1) == [
            (datetime(2025, 3, 1, 0, tzinfo=UTC), float(sum(range(60))), 60),
            (datetime(2025, 3, 1, 1, tzinfo=UTC), float(sum(range(60, 90))), 30),
        ]
        # b still holds its rows, but they were claimed elsewhere: its fold drops them without counting them twice.
        b.flush_derived()
        assert b.pending_derived() == 0
        assert _hourly(b, ds1)[0][2] == 60
        latest = b.latest([ds1, ds2]).to_pylist()
        assert [(r["datastream_id"], r["result_number"], r["count"]) for r in latest] == [
            (ds1, 89.0, 90),
            (ds2, 104.0, 5),
        ]
        assert latest[0]["first_time"] == datetime(2025, 3, 1, tzinfo=UTC)
        # A read in b folds what a appended since, without a's flush.
        a.append_batch(_rows(a, ds2, range(5, 10), 100.0), lambda r: None)
        assert [r["result_number"] for r in b.latest([ds2]).to_pylist()] == [109.0]
        assert _hourly(b, ds2) == [(datetime(2025, 3, 1, 0, tzinfo=UTC), float(sum(range(100, 110))), 10)]
        a.flush_derived()
        assert _hourly(a, ds2)[0][2] == 10
        # The writers' own folds leave the other process's rows alone (no reading them back).
        a.append_batch(_rows(a, ds2, range(10, 12), 100.0), lambda r: None)
        b.fold_own_derived()
        assert _pending_ranges(url) == 1 and a.pending_derived() == 2
        a.fold_own_derived()
        assert _pending_ranges(url) == 0 and a.pending_derived() == 0
        assert _hourly(b, ds2)[0][2] == 12
    finally:
        a.close()
        b.close()


def test_a_recompute_folds_pending_rows_first_and_a_killed_process_leaves_them_to_others(url: str) -> None:
    """Deleting an Observation recomputes its hour from stored rows; rows of that hour still pending are folded in
    first, so they are counted once. Rows appended by a process that never folds (killed) are folded by the next
    process that starts or reads."""
    a, (ds1, _) = _pg_with_datastreams(url)
    first = _rows(a, ds1, range(0, 10), 0.0)
    a.append_batch(first, lambda r: None)
    with a.transaction() as tx:  # folds first, then recomputes hour 0 without the deleted row
        a.delete_observations_where(tx, "id", int(first.column("id")[3].as_py()))
    assert _hourly(a, ds1) == [(datetime(2025, 3, 1, tzinfo=UTC), float(sum(range(10)) - 3), 9)]
    a.append_batch(_rows(a, ds1, range(10, 20), 0.0), lambda r: None)
    a._pool.close()  # as if killed: no fold on the way out
    assert _pending_ranges(url) == 1
    c = PostgresStore(url)  # starting up folds what was left
    try:
        assert _pending_ranges(url) == 0
        assert _hourly(c, ds1) == [(datetime(2025, 3, 1, tzinfo=UTC), float(sum(range(20)) - 3), 19)]
        assert c.latest([ds1]).to_pylist()[0]["count"] == 19
    finally:
        c.close()


def test_binary_arrays_and_copies_decode_to_what_the_server_sent(url: str) -> None:
    """decode_array (aggregates: one array per column) and decode_fixed (a binary COPY) against the server's own
    encodings: values, timestamps at both ends of the hub's range, empty arrays, and NULL (None: the caller then
    reads rows another way)."""
    from cityhub.store.postgres.copy import decode_array, decode_fixed

    conninfo, _ = split_url(url)
    times = [
        "0001-01-02 00:00:00+00",
        "1970-01-01 00:00:00+00",
        "2026-12-07 15:00:00.123456+00",
        "9998-12-31 00:00:00+00",
    ]
    with psycopg.connect(conninfo) as con:
        cur = con.cursor(binary=True)
        row = cur.execute(
            """SELECT array_send(ARRAY[-9223372036854775807, 0, 42]::int8[]),
                      array_send(ARRAY[1.5, -0.0, 1e308]::float8[]), array_send(%s::timestamptz[]),
                      array_send(ARRAY[]::int8[]), array_send(ARRAY[1, NULL]::int8[])""",
            [times],
        ).fetchone()  # fmt: skip
        assert row is not None
        ints, floats, stamps, empty, with_null = (bytes(v) for v in row)
        buf = bytearray()
        with cur.copy(
            "COPY (SELECT 7::int8, %s::timestamptz, 2.5::float8) TO STDOUT (FORMAT BINARY)", [times[2]]
        ) as cp:
            for chunk in cp:
                buf += chunk
    assert decode_array(ints, "int8").tolist() == [-9223372036854775807, 0, 42]  # type: ignore[union-attr]
    assert decode_array(floats, "float8").tolist() == [1.5, -0.0, 1e308]  # type: ignore[union-attr]
    want = [datetime.fromisoformat(t) for t in times]
    micros = decode_array(stamps, "timestamptz")
    assert micros is not None
    assert pa.array(micros).cast(pa.timestamp("us", tz="UTC")).to_pylist() == want
    assert decode_array(empty, "int8").tolist() == []  # type: ignore[union-attr]
    assert decode_array(with_null, "int8") is None
    table = decode_fixed(bytes(buf), ["a", "t", "v"], ["int8", "timestamptz", "float8"])
    assert table is not None and table.to_pylist() == [{"a": 7, "t": want[2], "v": 2.5}]
