"""Every way of writing an Observation applies the same result rules per observationType (SensorThings v1.1
§8.2.4): single POST, PATCH, bulk NDJSON ingest and CreateObservations accept and refuse the same results,
store them the same way and name the field ``result`` when they refuse one."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityhub import model, results
from tests.conftest import station_body

BIG = -1516082288180410101  # FROST's test data: a 64-bit integer that a double cannot hold
VALUES: list[Any] = [7, 2.5, -3, "7", "high", "true", True, False, None, {"level": 2}, [1, 2], BIG, 2**64, 10.0]
REFUSED = object()
# What each type stores for each value, as the API reads it back; REFUSED where it is refused. A result keeps its
# JSON type (7 stays 7, 10.0 stays 10.0, a 64-bit integer is exact); past 64 bits an integer is its double.
NUMBERS = [7, 2.5, -3]
AFTER = [BIG, float(2**64), 10.0]
EXPECTED: dict[str, list[Any]] = {
    model.OM_MEASUREMENT: NUMBERS + [REFUSED] * 8 + AFTER,
    model.OM_COUNT: [7, REFUSED, -3] + [REFUSED] * 8 + AFTER,
    model.OM_TRUTH: [REFUSED] * 6 + [True, False] + [REFUSED] * 3 + [REFUSED] * 3,
    model.OM_CATEGORY: NUMBERS + ["7", "high", "true"] + [REFUSED] * 5 + AFTER,
    # An OM_Observation's result is "Any": null is one (SensorThings v1.1 Table 13; FROST-Server stores it)
    model.OM_OBSERVATION: [*NUMBERS, "7", "high", "true", True, False, None, {"level": 2}, [1, 2], *AFTER],
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
    # The standard library writes integers of any size (orjson stops at 64 bits)
    line = json.dumps({"datastream": ds, "phenomenonTime": t, "result": value}).encode()
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
    # ... and the MultiDatastream's (OM_ComplexObservation: an array, one value per ObservedProperty).
    assert set(results.RULES) == set(model.OBSERVATION_TYPES) | {model.OM_COMPLEX}
    assert results.rule_for("urn:unknown") is results.DEFAULT


@pytest.mark.parametrize("otype", sorted(EXPECTED), ids=lambda t: t.rsplit("_", 1)[1])
def test_csv_cells_are_read_as_the_datastream_expects(client: TestClient, otype: str) -> None:
    """Text formats carry no JSON types: a cell is read as the type's ``text_as`` kind."""
    thing = station_body(name="csv" + otype.rsplit("_", 1)[1])
    thing["Datastreams"][0]["observationType"] = otype
    r = client.post("/v1.1/Things", json=thing)
    assert r.status_code == 201, r.text
    ds = client.get(f"/v1.1/Things({r.json()['@iot.id']})/Datastreams").json()["value"][0]["@iot.id"]
    cells = {"7": {model.OM_MEASUREMENT: 7, model.OM_COUNT: 7, model.OM_CATEGORY: "7", model.OM_OBSERVATION: "7"},
             "7.0": {model.OM_MEASUREMENT: 7.0, model.OM_COUNT: 7.0, model.OM_CATEGORY: "7.0",
                     model.OM_OBSERVATION: "7.0"},
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


# -- results keep their JSON type (issue 13, point 1) ------------------------------------------------------------
def _observation_stream(client: TestClient, name: str, otype: str = model.OM_OBSERVATION) -> int:
    thing = station_body(name=name)
    thing["Datastreams"][0]["observationType"] = otype
    r = client.post("/v1.1/Things", json=thing)
    assert r.status_code == 201, r.text
    return int(client.get(f"/v1.1/Things({r.json()['@iot.id']})/Datastreams").json()["value"][0]["@iot.id"])


MIXED: list[Any] = [3, 2.5, 10.0, "30", "abc", True, None, {"a": 1}, BIG]


def test_filters_on_results_of_every_type(client: TestClient) -> None:
    """Numbers compare with numbers; with a string literal a number compares as its JSON text, as FROST-Server
    documents it (result eq '3' finds 3); eq null finds an explicit null, not an object."""
    ds = _observation_stream(client, "filters")
    for k, value in enumerate(MIXED):
        body = {"phenomenonTime": f"2025-01-01T0{k}:00:00Z", "result": value}
        r = client.post(f"/v1.1/Datastreams({ds})/Observations", json=body)
        assert r.status_code == 201, r.text

    def found(flt: str) -> list[Any]:
        r = client.get(f"/v1.1/Datastreams({ds})/Observations", params={"$filter": flt, "$orderby": "phenomenonTime"})
        assert r.status_code == 200, (flt, r.text)
        return [o["result"] for o in r.json()["value"]]

    assert _exact(found("result eq 3")) == _exact([3])
    assert _exact(found("result gt 3")) == _exact([10.0])
    assert _exact(found("result lt 0")) == _exact([BIG])
    assert _exact(found(f"result eq {BIG}")) == _exact([BIG])
    assert _exact(found("result eq '3'")) == _exact([3])
    assert _exact(found("result eq '10.0'")) == _exact([10.0])
    assert _exact(found("result gt '3'")) == _exact(["30", "abc"])  # '10.0', '2.5', '-15…' sort before '3'
    assert _exact(found("result eq true")) == _exact([True])
    assert _exact(found("result eq null")) == _exact([None])
    assert len(found("result ne null")) == len(MIXED) - 1


def test_identical_resends_store_once_and_10_is_10_0(client: TestClient) -> None:
    ds = _observation_stream(client, "resend", model.OM_MEASUREMENT)

    def post(value: Any) -> int:
        body = {"phenomenonTime": "2025-01-01T00:00:00Z", "result": value}
        return client.post(f"/v1.1/Datastreams({ds})/Observations", json=body).status_code

    assert post(10) == 201
    assert post(10) == 200  # the stored one, not a second row
    assert post(10.0) == 200  # the same number as JSON compares them
    assert post(11) == 409
    body = {"phenomenonTime": "2025-01-01T01:00:00Z", "result": BIG}
    assert client.post(f"/v1.1/Datastreams({ds})/Observations", json=body).status_code == 201
    # BIG + 1 has the same double as BIG: still another integer, so a conflict
    r = client.post(f"/v1.1/Datastreams({ds})/Observations", json={**body, "result": BIG + 1})
    assert r.status_code == 409, r.text
    latest = client.get(f"/api/v1/latest?datastreams={ds}").json()["value"]
    assert _exact([v["result"] for v in latest]) == _exact([BIG])


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(results.INT64_MIN, results.INT64_MAX)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=JSON_VALUES)
def test_any_json_result_round_trips_with_its_type(client: TestClient, value: Any) -> None:
    """On an OM_Observation (result "Any"), through a single POST and through bulk NDJSON: what is read back is
    the value sent, as JSON text (so 1 is not 1.0 nor true)."""
    ds = _observation_stream(client, f"any {next(_times)}")
    r = client.post(f"/v1.1/Datastreams({ds})/Observations", json={"phenomenonTime": _time(), "result": value})
    assert r.status_code == 201, r.text
    assert _exact(client.get(r.headers["location"]).json()["result"]) == _exact(value)
    stored, refused = _ingest(client, ds, value)
    assert refused is None and _exact(stored) == _exact(value)


def test_results_that_add_past_the_largest_double(client: TestClient) -> None:
    """Any finite double is a result (1.7e308 is one), so an hour's sum can pass the largest double. Its roll-up is
    then infinite, as IEEE 754 adds (DuckDB does so; PostgreSQL's own ``+`` raised and failed the fold, which
    Hypothesis found in ``test_any_json_result_round_trips_with_its_type``): the aggregate reads as null beside its
    count, min and max stay exact, and the store goes on taking writes."""
    ds = _observation_stream(client, "huge", model.OM_MEASUREMENT)

    def post(t: str, value: float) -> int:
        r = client.post(f"/v1.1/Datastreams({ds})/Observations", json={"phenomenonTime": t, "result": value})
        assert r.status_code == 201, r.text
        return int(r.json()["@iot.id"])

    def aggregate(function: str, interval: str = "hour") -> list[tuple[Any, int]]:
        r = client.get("/api/v1/aggregate", params={"datastreams": ds, "function": function, "interval": interval})
        assert r.status_code == 200, r.text
        (series,) = r.json()["value"]
        return list(zip(series["value"], series["count"], strict=True))

    post("2025-03-01T00:10:00Z", 1.5e308)
    assert aggregate("sum") == [(1.5e308, 1)]  # folded: the next one adds to a stored hour
    second = post("2025-03-01T00:20:00Z", 1.6e308)
    assert aggregate("sum") == [(None, 2)]
    assert aggregate("avg") == [(None, 2)]
    assert aggregate("max") == [(1.6e308, 2)] and aggregate("min") == [(1.5e308, 2)]
    # Two finite hours whose day overflows
    post("2025-03-01T01:10:00Z", 1.7e308)
    r = client.patch(f"/v1.1/Observations({second})", json={"result": -1.6e308})  # the hour recomputed: finite
    assert r.status_code == 200, r.text
    assert [v for v, _ in aggregate("sum")] == [pytest.approx(-1e307), 1.7e308]
    post("2025-03-01T01:20:00Z", 1.6e308)
    assert aggregate("sum") == [(pytest.approx(-1e307), 2), (None, 2)]
    assert aggregate("sum", "day") == [(None, 4)]
    assert aggregate("count", "day") == [(4.0, 4)]
    post("2025-03-01T02:00:00Z", 1.0)
    assert aggregate("sum")[-1] == (1.0, 1)


def test_filter_arithmetic_past_the_largest_double(client: TestClient) -> None:
    """``$filter`` arithmetic on doubles answers as IEEE 754 does on both stores (an infinity or a zero), where
    PostgreSQL's own operators raised "value out of range" (a 500); ``mod``, computed in DECIMAL(38, 9) on both,
    refuses a value past 1e29 with a 400."""
    ds = _observation_stream(client, "huge filters", model.OM_MEASUREMENT)
    for minute, value in ((1, 1.5e308), (2, 2.0), (3, 1e-300)):
        body = {"phenomenonTime": f"2025-03-01T00:0{minute}:00Z", "result": value}
        assert client.post(f"/v1.1/Datastreams({ds})/Observations", json=body).status_code == 201

    def matching(expression: str) -> list[Any]:
        r = client.get(f"/v1.1/Datastreams({ds})/Observations", params={"$filter": expression, "$orderby": "id"})
        assert r.status_code == 200, r.text
        return [o["result"] for o in r.json()["value"]]

    assert matching("result add 1.7e308 gt 1.7e308") == [1.5e308]  # infinity
    assert matching("result sub -1.7e308 lt 0") == []
    assert matching("result mul -10 lt -1e308") == [1.5e308]  # minus infinity
    assert matching("result div 1e-300 gt 1e305") == [1.5e308]
    assert matching("result mul 1e-300 eq 0") == [1e-300]  # underflow: zero
    assert matching("result div 1e300 eq 0") == [1e-300]
    assert matching("result mul 2 eq 4") == [2.0]
    r = client.get(f"/v1.1/Datastreams({ds})/Observations", params={"$filter": "result mod 7 ge 0"})
    assert r.status_code == 400, r.text
    assert "could not be evaluated" in r.json()["detail"]
