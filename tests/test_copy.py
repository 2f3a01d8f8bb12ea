"""``cityhub copy``: a hub on the embedded store moved to PostgreSQL and back to a new data directory with every row
and id kept (entities, Observations from before 2000 to months later, roll-ups, alerts, webhooks, dead letters),
proven by per-table counts and checksums; a non-empty target is refused; the checksum sees one changed value."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from typer.testing import CliRunner

from cityhub import cli
from cityhub.app import create_app
from cityhub.auth.keys import KeyStore
from cityhub.config import Settings
from cityhub.ingest import deadletters as dl
from cityhub.store.ops.transfer import COPY_TABLES
from cityhub.transfer import Checksum
from tests.conftest import drop_pg_schema, new_pg_schema_url, station_body

OM_OBSERVATION = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Observation"
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def hub(data_dir: Path, store: str = "") -> TestClient:
    """An in-process hub on ``store`` (empty: the DuckDB file under ``data_dir``) whose client sends an admin key
    (keys live in the data directory, not in the store)."""
    settings = Settings(data_dir=data_dir, store=store, webhook_allow_hosts="127.0.0.1")
    key = KeyStore(settings.keys_path).create("admin", "test admin")
    return TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"})


def fill(client: TestClient) -> None:
    """Three stations, five Datastreams, 328 Observations over five months plus one from 1999, results of every
    kind, a FeatureOfInterest, an alert rule that opened an alert, a webhook whose deliveries fail, dead letters."""
    for name in ("Hoàn Kiếm", "Cầu Giấy"):
        assert client.post("/v1.1/Things", json=station_body(name, n_ds=2)).status_code == 201
    free = station_body("Tây Hồ")
    free["Datastreams"][0]["observationType"] = OM_OBSERVATION
    assert client.post("/v1.1/Things", json=free).status_code == 201
    streams = [d["@iot.id"] for d in client.get("/v1.1/Datastreams?$orderby=id").json()["value"]]
    measured, other = streams[:4], streams[4]
    r = client.post(
        "/v1.1/FeaturesOfInterest",
        json={"name": "Hồ Tây", "description": "the lake", "encodingType": "application/geo+json",
              "feature": {"type": "Polygon", "coordinates": [[[105.81, 21.05], [105.83, 21.05], [105.82, 21.07],
                                                              [105.81, 21.05]]]}},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    foi = r.json()["@iot.id"]
    rule = {"name": "PM2.5 high", "kind": "threshold", "value": 150, "scope": {"datastream": measured[0]}}
    assert client.post("/api/v1/rules", json=rule).status_code == 201
    hook = client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "secret": "s3cret-key"})
    assert hook.status_code == 201, hook.text
    for k, ds in enumerate(measured):
        rows = "".join(f"{ds},{iso(T0 + timedelta(hours=37 * i + k))},{(i * 7 + k) % 180 + 0.25}\n" for i in range(80))
        r = client.post("/api/v1/ingest", content="datastream,phenomenonTime,result\n" + rows,
                        headers={"Content-Type": "text/csv"})  # fmt: skip
        assert r.status_code == 200, r.text
    # The last value of the first Datastream is above the threshold: its alert stays open, with a state kept.
    last = client.post(f"/v1.1/Datastreams({measured[0]})/Observations",
                       json={"phenomenonTime": iso(T0 + timedelta(days=200)), "result": 175.5})  # fmt: skip
    assert last.status_code == 201, last.text
    old = client.post(f"/v1.1/Datastreams({measured[1]})/Observations",
                      json={"phenomenonTime": "1999-12-31T23:59:59.123456Z", "result": -0.0})  # fmt: skip
    assert old.status_code == 201, old.text
    for i, result in enumerate(["high", "", {"level": 2, "note": "đỏ"}, [1, 2.5], True, 3.25]):
        body: dict[str, Any] = {"phenomenonTime": iso(T0 + timedelta(days=i, minutes=7)), "result": result}
        if i == 2:
            body |= {"resultQuality": {"flag": "checked"}, "parameters": {"height": 3, "note": ""},
                     "validTime": "2025-01-01T00:00:00Z/2025-02-01T00:00:00Z",
                     "FeatureOfInterest": {"@iot.id": foi}}  # fmt: skip
        if i == 3:
            body["phenomenonTime"] = "2025-01-04T00:00:00Z/2025-01-04T01:00:00.5Z"
        r = client.post(f"/v1.1/Datastreams({other})/Observations", json=body)
        assert r.status_code == 201, r.text
    # A MultiDatastream whose ObservedProperties are not in id order, one of them twice: their positions are copied.
    ds = client.get(f"/v1.1/Datastreams({measured[0]})?$expand=Thing,Sensor,ObservedProperty").json()
    props = [
        d["ObservedProperty"]["@iot.id"]
        for d in client.get("/v1.1/Datastreams?$expand=ObservedProperty").json()["value"]
    ]
    order = [max(props), min(props), max(props)]
    multi = {"name": "wind", "description": "d", "Thing": {"@iot.id": ds["Thing"]["@iot.id"]},
             "Sensor": {"@iot.id": ds["Sensor"]["@iot.id"]}, "unitOfMeasurements": [{"name": "u", "symbol": "u"}] * 3,
             "multiObservationDataTypes": [OM_OBSERVATION] * 3,
             "ObservedProperties": [{"@iot.id": p} for p in order]}  # fmt: skip
    assert client.post("/v1.1/MultiDatastreams", json=multi).status_code == 201
    dl.record(
        client.app.state.hub.store,  # type: ignore[attr-defined]
        [dl.DeadLetter("mqtt", "hanoi/aq/x/pm25", b"thirty", "result is not a number", "result"),
         dl.DeadLetter("mqtt", None, b"\xff\xfe", "payload is not UTF-8")],
    )  # fmt: skip
    assert client.app.state.hub.alerts.wait_idle()  # type: ignore[attr-defined]


THINGS = "/v1.1/Things?$orderby=id&$expand=Locations,HistoricalLocations"
OBSERVATIONS = "/v1.1/Observations?$orderby=id&$top=1000&$count=true&$expand=FeatureOfInterest"


def snapshot(client: TestClient) -> dict[str, Any]:
    """What the API answers about everything copied, as JSON."""
    out: dict[str, Any] = {}
    for path in (
        THINGS,
        "/v1.1/Datastreams?$orderby=id&$expand=Sensor,ObservedProperty",
        OBSERVATIONS,
        "/v1.1/FeaturesOfInterest?$orderby=id",
        "/v1.1/MultiDatastreams?$orderby=id&$expand=ObservedProperties($select=id)",
        "/api/v1/rules",
        "/api/v1/alerts?limit=1000",
        "/api/v1/deadletters?limit=100",
    ):
        r = client.get(path)
        assert r.status_code == 200, r.text
        out[path] = r.json()
    alerts = out["/api/v1/alerts?limit=1000"]["value"]
    out["events"] = [client.get(f"/api/v1/alerts/{a['id']}").json()["events"] for a in alerts]
    return out


def copy(source: str, target: str, *extra: str) -> tuple[int, str, dict[str, tuple[str, str, str]]]:
    """Run ``cityhub copy``: exit code, output, and the table it printed (table → rows, checksum, status)."""
    result = CliRunner().invoke(cli.app, ["copy", "--from", source, "--to", target, *extra])
    rows = {}
    for line in result.output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 4 and cells[0] != "table":
            rows[cells[0]] = (cells[1], cells[2], cells[3])
    return result.exit_code, result.output, rows


@pytest.fixture
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    # The command's console is made at import with the terminal's width; the tests read its table whole.
    monkeypatch.setattr(cli, "console", Console(width=200))


@pytest.fixture
def pg_urls(pg_test_database: str) -> Iterator[list[str]]:
    urls: list[str] = []
    yield urls
    for url in urls:
        drop_pg_schema(url)


def test_embedded_to_postgresql_and_back_keeps_every_row_and_id(
    tmp_path: Path, pg_test_database: str, pg_urls: list[str], wide_console: None
) -> None:
    source = tmp_path / "embedded"
    with hub(source) as client:
        fill(client)
    url = new_pg_schema_url(pg_test_database)
    pg_urls.append(url)

    # Embedded → PostgreSQL (a schema that does not exist yet), in batches of 37 rows: many key ranges and batches.
    code, out, there = copy(str(source), url, "--batch-rows", "37")
    assert code == 0, out
    assert f"all {len(COPY_TABLES)} tables match" in out and re.search(r"copied [\d,]+ rows in", out), out
    assert set(there) >= {"things", "observations", "ds_latest", "obs_hourly", "alerts", "alert_events",
                          "alert_state", "webhooks", "webhook_deliveries", "deadletters", "api_keys"}  # fmt: skip
    assert all(status == "ok" for _, _, status in there.values()), out
    assert int(there["observations"][0].replace(",", "")) >= 4 * 80 + 2 + 6
    for table in ("alerts", "alert_events", "alert_state", "webhooks", "webhook_deliveries", "deadletters"):
        assert there[table][0] != "0", (table, out)

    # PostgreSQL → a new data directory: the same rows and checksums per table as at the start.
    back = tmp_path / "back"
    code, out, again = copy(url, str(back))
    assert code == 0, out
    assert again == there

    # A target that holds data is refused, whichever backend, and nothing is written.
    code, out, _ = copy(str(back), url)
    assert code != 0 and "not empty" in out and "observations" in out, out
    code, out, _ = copy(url, str(back))
    assert code != 0 and "not empty" in out, out
    code, out, _ = copy(str(tmp_path / "nothing-here"), str(tmp_path / "new"))
    assert code != 0 and "no CityHub data" in out, out

    with hub(source) as client:
        before = snapshot(client)
    assert before[OBSERVATIONS]["@iot.count"] == 4 * 80 + 2 + 6 and "@iot.nextLink" not in before[OBSERVATIONS]
    (multi,) = before["/v1.1/MultiDatastreams?$orderby=id&$expand=ObservedProperties($select=id)"]["value"]
    linked = [p["@iot.id"] for p in multi["ObservedProperties"]]
    assert len(linked) == 3 and linked[0] == linked[2] and linked[0] >= linked[1], linked  # as linked, not by id
    with hub(back) as client:
        assert snapshot(client) == before
    with hub(tmp_path / "pg-side", store=url) as client:
        assert snapshot(client) == before
        # New ids continue above the copied ones (PostgreSQL takes them from id_counters).
        things = [t["@iot.id"] for t in before[THINGS]["value"]]
        r = client.post("/v1.1/Things", json=station_body("Long Biên"))
        assert r.status_code == 201, r.text
        assert r.json()["@iot.id"] > max(things)
        obs = before[OBSERVATIONS]["value"]
        ds = client.get(f"/v1.1/Things({r.json()['@iot.id']})/Datastreams").json()["value"][0]["@iot.id"]
        r = client.post(f"/v1.1/Datastreams({ds})/Observations", json={"phenomenonTime": iso(T0), "result": 1})
        assert r.status_code == 201, r.text
        assert r.json()["@iot.id"] > max(o["@iot.id"] for o in obs)


def _table(**columns: Any) -> pa.Table:
    return pa.table(columns)


def test_checksum_sees_one_changed_value_and_null_for_empty() -> None:
    n = 1000
    ts = pa.timestamp("us", tz="UTC")
    base = {
        "id": pa.array(np.arange(n), pa.int64()),
        "level": pa.array(np.arange(n) % 5, pa.int32()),
        "time": pa.array(np.arange(n) * 3_600_000_000 - 10**15, ts),
        "value": pa.array(np.linspace(-1, 1, n)),
        "name": pa.array([f"trạm {i}" if i % 7 else "" for i in range(n)]),
        "doc": pa.array([None if i % 3 else '{"a": [1, 2]}' for i in range(n)]),
        "ok": pa.array([i % 2 == 0 for i in range(n)]),
    }

    def digest(table: pa.Table, batch: int = 128) -> tuple[int, str]:
        c = Checksum()
        for b in table.to_batches(batch):
            c.update(pa.Table.from_batches([b]))
        return c.rows, c.hexdigest()

    table = _table(**base)
    rows, same = digest(table)
    assert rows == n and same != "0" * 16
    # Neither the order of rows, nor batch boundaries, nor column order, nor an integer's width changes it.
    assert digest(table.take(np.random.default_rng(1).permutation(n)), 77) == (n, same)
    assert digest(table.select(list(reversed(table.column_names)))) == (n, same)
    assert digest(table.set_column(1, "level", table.column("level").cast(pa.int64()))) == (n, same)

    def changed(name: str, i: int, value: Any) -> pa.Table:
        col = table.column(name).to_pylist()
        col[i] = value
        return table.set_column(table.column_names.index(name), name, pa.array(col, table.schema.field(name).type))

    variants = {
        "one float": changed("value", 500, float(np.nextafter(table.column("value")[500].as_py(), 2))),
        "empty to NULL": changed("name", 0, None),
        "NULL to empty": changed("doc", 1, ""),
        "one microsecond": changed("time", 9, table.column("time")[9].as_py() + timedelta(microseconds=1)),
        "a boolean": changed("ok", 3, True),
        "an integer": changed("level", 4, 5),
        "one character": changed("name", 1, "trạm 2"),
        "a row lost": table.slice(1),
    }
    for what, other in variants.items():
        assert digest(other)[1] != same, what
    assert digest(changed("value", 0, 0.0)) != digest(changed("value", 0, -0.0))  # IEEE bytes, as stored
    # Two strings swapping a character between them (same bytes in the row overall) still differ.
    a = _table(x=pa.array(["ab"]), y=pa.array(["c"]))
    b = _table(x=pa.array(["a"]), y=pa.array(["bc"]))
    assert digest(a)[1] != digest(b)[1]
