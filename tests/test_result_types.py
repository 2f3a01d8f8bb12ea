"""Every way of writing an Observation applies the same result rules per observationType (SensorThings v1.1
§8.2.4): single POST, PATCH, bulk NDJSON ingest and CreateObservations accept and refuse the same results,
store them the same way and name the field ``result`` when they refuse one."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from cityhub import model, results
from tests.conftest import station_body

VALUES: list[Any] = [7, 2.5, -3, "7", "high", "true", True, False, None, {"level": 2}, [1, 2]]
REFUSED = object()
# What each type stores for each value, as the API reads it back; REFUSED where it is refused.
EXPECTED: dict[str, list[Any]] = {
    model.OM_MEASUREMENT: [7.0, 2.5, -3.0] + [REFUSED] * 8,
    model.OM_COUNT: [7.0, REFUSED, -3.0] + [REFUSED] * 8,
    model.OM_TRUTH: [REFUSED] * 6 + [True, False] + [REFUSED] * 3,
    model.OM_CATEGORY: ["7.0", "2.5", "-3.0", "7", "high", "true"] + [REFUSED] * 5,
    model.OM_OBSERVATION: [7.0, 2.5, -3.0, "7", "high", "true", True, False, REFUSED, {"level": 2}, [1, 2]],
}
# A result each type accepts, for the Observation that PATCH then changes.
VALID = {
    model.OM_MEASUREMENT: 1.5,
    model.OM_COUNT: 1,
    model.OM_TRUTH: True,
    model.OM_CATEGORY: "low",
    model.OM_OBSERVATION: "x",
}
_times = itertools.count()


def _time() -> str:
    return (datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=next(_times))).strftime("%Y-%m-%dT%H:%M:%SZ")


def _exact(v: Any) -> bytes:
    """Compare as JSON text, so that True is not 1 and 7 is not 7.0."""
    return orjson.dumps(v)


def _stored(client: TestClient, ds: int, t: str) -> Any:
    r = client.get(f"/v1.1/Datastreams({ds})/Observations", params={"$filter": f"phenomenonTime eq {t}"})
    assert r.status_code == 200, r.text
    (obs,) = r.json()["value"]
    return obs["result"]


def _post(client: TestClient, ds: int, value: Any) -> tuple[Any, str | None]:
    r = client.post(
        "/v1.1/Observations", json={"Datastream": {"@iot.id": ds}, "phenomenonTime": _time(), "result": value}
    )
    if r.status_code == 201:
        return client.get(r.headers["location"]).json()["result"], None
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["field"] == "result", body
    return REFUSED, body["detail"]


def _patch(client: TestClient, obs: int, value: Any) -> tuple[Any, str | None]:
    r = client.patch(f"/v1.1/Observations({obs})", json={"result": value})
    if r.status_code == 200:
        return client.get(f"/v1.1/Observations({obs})").json()["result"], None
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["field"] == "result", body
    return REFUSED, body["detail"]


def _ingest(client: TestClient, ds: int, value: Any) -> tuple[Any, str | None]:
    t = _time()
    line = orjson.dumps({"datastream": ds, "phenomenonTime": t, "result": value})
    r = client.post("/api/v1/ingest", content=line, headers={"Content-Type": "application/x-ndjson"})
    if r.status_code == 200:
        assert r.json()["stored"] == 1, r.text
        return _stored(client, ds, t), None
    assert r.status_code == 422, r.text
    (err,) = r.json()["errors"]
    assert err["field"] == "result", err
    return REFUSED, f"result {err['reason']}"


def _create_observations(client: TestClient, ds: int, value: Any) -> tuple[Any, str | None]:
    t = _time()
    body = [{"Datastream": {"@iot.id": ds}, "components": ["phenomenonTime", "result"], "dataArray": [[t, value]]}]
    r = client.post("/v1.1/CreateObservations", json=body)
    assert r.status_code == 201, r.text
    (answer,) = r.json()
    if not answer.startswith("error: "):
        return _stored(client, ds, t), None
    assert answer.startswith("error: result "), answer
    return REFUSED, answer.removeprefix("error: ")


@pytest.mark.parametrize("otype", sorted(EXPECTED), ids=lambda t: t.rsplit("_", 1)[1])
def test_every_write_path_applies_the_same_result_rules(client: TestClient, otype: str) -> None:
    thing = station_body(name=otype.rsplit("_", 1)[1])
    thing["Datastreams"][0]["observationType"] = otype
    r = client.post("/v1.1/Things", json=thing)
    assert r.status_code == 201, r.text
    ds = client.get(f"/v1.1/Things({r.json()['@iot.id']})/Datastreams").json()["value"][0]["@iot.id"]
    r = client.post(
        "/v1.1/Observations", json={"Datastream": {"@iot.id": ds}, "phenomenonTime": _time(), "result": VALID[otype]}
    )
    assert r.status_code == 201, r.text
    patched = r.json()["@iot.id"]

    for value, expected in zip(VALUES, EXPECTED[otype], strict=True):
        outcomes = {
            "POST": _post(client, ds, value),
            "PATCH": _patch(client, patched, value),
            "ingest": _ingest(client, ds, value),
            "CreateObservations": _create_observations(client, ds, value),
        }
        stored = {path: out[0] for path, out in outcomes.items()}
        if expected is REFUSED:
            assert all(s is REFUSED for s in stored.values()), (value, outcomes)
            reasons = {out[1] for out in outcomes.values()}
            assert len(reasons) == 1, (value, reasons)  # the same words on every path
        else:
            assert all(s is not REFUSED and _exact(s) == _exact(expected) for s in stored.values()), (value, outcomes)


def test_rule_table_covers_every_observation_type() -> None:
    assert set(results.RULES) == set(model.OBSERVATION_TYPES)
    assert results.rule_for("urn:unknown") is results.DEFAULT


@pytest.mark.parametrize("otype", sorted(EXPECTED), ids=lambda t: t.rsplit("_", 1)[1])
def test_csv_cells_are_read_as_the_datastream_expects(client: TestClient, otype: str) -> None:
    """Text formats carry no JSON types: a cell is read as the type's ``text_as`` kind."""
    thing = station_body(name="csv" + otype.rsplit("_", 1)[1])
    thing["Datastreams"][0]["observationType"] = otype
    r = client.post("/v1.1/Things", json=thing)
    assert r.status_code == 201, r.text
    ds = client.get(f"/v1.1/Things({r.json()['@iot.id']})/Datastreams").json()["value"][0]["@iot.id"]
    cells = {"7": {model.OM_MEASUREMENT: 7.0, model.OM_COUNT: 7.0, model.OM_CATEGORY: "7", model.OM_OBSERVATION: "7"},
             "TRUE": {model.OM_TRUTH: True, model.OM_CATEGORY: "TRUE", model.OM_OBSERVATION: "TRUE"},
             "high": {model.OM_CATEGORY: "high", model.OM_OBSERVATION: "high"}}  # fmt: skip
    for cell, by_type in cells.items():
        t = _time()
        body = f"datastream,phenomenonTime,result\n{ds},{t},{cell}\nNaN,{t},x\n"  # 2nd row keeps the column text
        r = client.post("/api/v1/ingest?partial=true", content=body, headers={"Content-Type": "text/csv"})
        assert r.status_code == 207, r.text
        if otype in by_type:
            assert r.json()["stored"] == 1, (cell, r.text)
            assert _exact(_stored(client, ds, t)) == _exact(by_type[otype])
        else:
            assert r.json()["stored"] == 0, (cell, r.text)
            assert [e["field"] for e in r.json()["errors"]] == ["result", "datastream"]
