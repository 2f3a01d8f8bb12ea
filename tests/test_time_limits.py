"""The range of times the hub stores (timefmt.TIME_MIN … TIME_MAX), held at every edge, and the bodies that used to
answer 500: whatever a client sends is a 4xx naming the field, and whatever the hub accepts it can read back."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.ipc as paipc
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cityhub import jsontext, model, timefmt
from tests.conftest import UGM3, station_body

BEFORE = "0001-01-01T00:00:00+14:00"  # 0000-12-31T10:00Z: beyond Python's datetime in UTC
AFTER = "9999-12-31T23:59:59-14:00"  # 10000-01-01T13:59:59Z
EXTREMES = [BEFORE, AFTER]
NDJSON = {"Content-Type": "application/x-ndjson"}
ARROW = "application/vnd.apache.arrow.stream"


def ndjson(*rows: dict[str, Any]) -> bytes:
    return b"\n".join(orjson.dumps(r) for r in rows) + b"\n"


def assert_problem(r: Any, status: int, field: str, *, detail: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["field"] == field, body
    if detail is not None:
        assert detail in body["detail"], body
    return body


def assert_rows_refused(r: Any, field: str, reason: str, index: int = 0) -> None:
    assert r.status_code == 422, r.text
    assert {"index": index, "field": field, "reason": reason} in r.json()["errors"]


# -- the range ---------------------------------------------------------------------------------------------------
def test_the_range_is_representable_at_every_offset_and_named_in_the_message() -> None:
    for edge in (timefmt.TIME_MIN, timefmt.TIME_MAX):
        for minutes in (-(24 * 60 - 1), 24 * 60 - 1):
            local = edge.astimezone(timezone(timedelta(minutes=minutes)))
            assert timefmt.parse_iso(local.isoformat()) == edge
        for shift in (timedelta(days=-1), timedelta(days=1)):  # a local day either side
            assert timefmt.iso_time(edge + shift)
    first, last = (timefmt.iso_time(t) or "" for t in (timefmt.TIME_MIN, timefmt.TIME_MAX))
    assert f"({first[:10]} … {last[:10]})" in timefmt.OUT_OF_RANGE
    with pytest.raises(timefmt.TimeFormatError, match="outside the range"):
        timefmt.parse_iso(BEFORE)
    with pytest.raises(timefmt.TimeFormatError, match="outside the range"):
        timefmt.parse_iso("0001-01-01T23:59:59.999999Z")


def test_iso_time_writes_four_digit_years() -> None:
    """strftime wrote year 1 as "1-01-02T00:00:00Z", which nothing, the hub included, could read back."""
    assert timefmt.iso_time(timefmt.TIME_MIN) == "0001-01-02T00:00:00Z"
    assert timefmt.iso_time(datetime(999, 3, 4, 5, 6, 7, 80, tzinfo=UTC)) == "0999-03-04T05:06:07.00008Z"
    assert timefmt.parse_iso(timefmt.iso_time(timefmt.TIME_MIN) or "") == timefmt.TIME_MIN


@settings(max_examples=200, deadline=None)
@given(st.lists(st.datetimes(min_value=timefmt.TIME_MIN.replace(tzinfo=None),
                             max_value=timefmt.TIME_MAX.replace(tzinfo=None)) | st.none(), max_size=20))  # fmt: skip
def test_times_written_by_orjson_match_iso_time(values: list[datetime | None]) -> None:
    """Aggregates hand orjson datetime64 arrays (iso_numpy): the text must be iso_time's, fractions, nulls and
    years before 1000 included."""
    utc = [v.replace(tzinfo=UTC) if v else None for v in values]
    col = pa.array(utc, pa.timestamp("us", tz="UTC"))
    event("datetime64" if not isinstance(timefmt.iso_numpy(col), list) else "strings")
    written = orjson.loads(orjson.dumps(timefmt.iso_numpy(col), option=timefmt.ORJSON_TIMES))
    assert written == [timefmt.iso_time(v) for v in utc]
    whole = pa.array([v.replace(microsecond=0) for v in utc if v], pa.timestamp("us", tz="UTC"))
    assert not isinstance(timefmt.iso_numpy(whole), list)
    assert orjson.loads(orjson.dumps(timefmt.iso_numpy(whole), option=timefmt.ORJSON_TIMES)) == timefmt.iso_array(whole)


# -- single Observations and entities ----------------------------------------------------------------------------
OBSERVATION_BODIES: dict[str, Callable[[str], dict[str, Any]]] = {
    "phenomenonTime": lambda t: {"phenomenonTime": t, "result": 1},
    "phenomenonTime interval start": lambda t: {"phenomenonTime": f"{t}/2026-01-01T00:00:00Z", "result": 1},
    "phenomenonTime interval end": lambda t: {"phenomenonTime": f"2026-01-01T00:00:00Z/{t}", "result": 1},
    "resultTime": lambda t: {"phenomenonTime": "2026-01-01T00:00:00Z", "resultTime": t, "result": 1},
    "validTime": lambda t: {"phenomenonTime": "2026-01-01T00:00:00Z", "validTime": f"{t}/{t}", "result": 1},
}


@pytest.mark.parametrize("time", EXTREMES)
@pytest.mark.parametrize("case", sorted(OBSERVATION_BODIES))
def test_extreme_times_in_an_observation_are_400_naming_the_field(
    client: TestClient, station: dict, case: str, time: str
) -> None:
    field = case.split()[0]
    body = OBSERVATION_BODIES[case](time)
    r = client.post(f"/v1.1/Datastreams({station['datastream']})/Observations", json=body)
    assert_problem(r, 400, field, detail=timefmt.OUT_OF_RANGE)
    r = client.post("/v1.1/Observations", json={**body, "Datastream": {"@iot.id": station["datastream"]}})
    assert_problem(r, 400, field, detail=timefmt.OUT_OF_RANGE)
    r = client.post(f"/v1.1/Things({station['thing']})/Datastreams", json={**_datastream(), "Observations": [body]})
    assert_problem(r, 400, f"Observations[0].{field}", detail=timefmt.OUT_OF_RANGE)
    assert client.get(f"/v1.1/Datastreams({station['datastream']})/Observations").json()["value"] == []


@pytest.mark.parametrize("time", EXTREMES)
def test_extreme_times_in_a_patch_are_400(client: TestClient, station: dict, time: str) -> None:
    r = client.post(
        f"/v1.1/Datastreams({station['datastream']})/Observations",
        json={"phenomenonTime": "2026-01-01T00:00:00Z", "result": 1},
    )
    oid = r.json()["@iot.id"]
    for field in ("phenomenonTime", "resultTime"):
        assert_problem(client.patch(f"/v1.1/Observations({oid})", json={field: time}), 400, field)
    assert_problem(client.patch(f"/v1.1/Observations({oid})", json={"validTime": f"{time}/{time}"}), 400, "validTime")
    assert client.get(f"/v1.1/Observations({oid})").status_code == 200


@pytest.mark.parametrize("time", EXTREMES)
def test_extreme_historical_location_time_is_400(client: TestClient, station: dict, time: str) -> None:
    body = {"time": time, "Thing": {"@iot.id": station["thing"]}}
    assert_problem(client.post("/v1.1/HistoricalLocations", json=body), 400, "time", detail=timefmt.OUT_OF_RANGE)
    hl = client.get(f"/v1.1/Things({station['thing']})/HistoricalLocations").json()["value"][0]["@iot.id"]
    assert_problem(client.patch(f"/v1.1/HistoricalLocations({hl})", json={"time": time}), 400, "time")


def test_the_edges_of_the_range_are_stored_and_read_back(client: TestClient, station: dict) -> None:
    lo, hi = "0001-01-02T00:00:00Z", "9998-12-31T23:59:59.999999Z"
    body = {
        "phenomenonTime": f"1900-01-01T07:00:00+07:00/{hi}",
        "resultTime": "0001-01-02T05:00:00+05:00",  # TIME_MIN, written at an offset
        "validTime": f"{lo}/{hi}",
        "result": 1,
    }
    r = client.post(f"/v1.1/Datastreams({station['datastream']})/Observations", json=body)
    assert r.status_code == 201, r.text
    got = client.get(f"/v1.1/Observations({r.json()['@iot.id']})").json()
    assert got["phenomenonTime"] == f"1900-01-01T00:00:00Z/{hi}"
    assert got["resultTime"] == lo
    assert got["validTime"] == f"{lo}/{hi}"
    r = client.post("/v1.1/HistoricalLocations", json={"time": lo, "Thing": {"@iot.id": station["thing"]}})
    assert r.status_code == 201, r.text
    assert r.json()["time"] == lo


# -- query parameters --------------------------------------------------------------------------------------------
def _query_cases(station: dict) -> list[tuple[str, str, dict[str, Any], str]]:
    ds, thing = station["datastream"], station["thing"]
    return [
        ("GET", "/api/v1/aggregate", {"datastreams": ds, "start": "{t}"}, "start"),
        ("GET", "/api/v1/aggregate", {"datastreams": ds, "end": "{t}"}, "end"),
        ("POST", "/api/v1/aggregate", {"datastreams": [ds], "start": "{t}"}, "start"),
        ("POST", "/api/v1/aggregate", {"datastreams": [ds], "end": "{t}"}, "end"),
        ("GET", "/api/v1/aqi/stations", {"at": "{t}"}, "at"),
        ("GET", f"/api/v1/aqi/stations/{thing}", {"at": "{t}"}, "at"),
        ("GET", f"/api/v1/aqi/stations/{thing}/history", {"start": "{t}"}, "start"),
        ("GET", f"/api/v1/aqi/stations/{thing}/history", {"end": "{t}"}, "end"),
        ("GET", "/api/v1/alerts", {"since": "{t}"}, "since"),
        ("GET", "/api/v1/export", {"start": "{t}"}, "start"),
        ("GET", "/api/v1/deadletters", {"since": "{t}"}, "since"),
    ]


@pytest.mark.parametrize("time", EXTREMES)
def test_extreme_times_in_query_parameters_are_400(client: TestClient, station: dict, time: str) -> None:
    for method, path, params, field in _query_cases(station):
        filled = {k: time if v == "{t}" else v for k, v in params.items()}
        r = client.get(path, params=filled) if method == "GET" else client.post(path, json=filled)
        assert r.status_code == 400, (path, field, r.text)
        assert r.json()["field"] == field, (path, r.text)
        assert "outside the range" in r.json()["detail"], (path, r.text)


def test_query_parameters_at_the_edges_of_the_range_are_answered(client: TestClient, station: dict) -> None:
    for time in ("0001-01-02T00:00:00Z", "9998-12-31T23:59:59.999999Z", "9999-01-01T06:59:59+07:00"):
        for method, path, params, field in _query_cases(station):
            filled = {k: time if v == "{t}" else v for k, v in params.items()}
            r = client.get(path, params=filled) if method == "GET" else client.post(path, json=filled)
            # A range of eight thousand years is too long for one AQI history call; nothing else refuses.
            assert r.status_code == 200 or (r.status_code == 400 and "history" in path), (path, field, r.text)


# -- bulk ingest ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("time", EXTREMES)
@pytest.mark.parametrize("field", ["phenomenonTime", "resultTime"])
def test_bulk_extreme_times_are_refused_per_row(client: TestClient, station: dict, field: str, time: str) -> None:
    ds = station["datastream"]
    good = {"datastream": ds, "phenomenonTime": "2026-01-01T01:00:00Z", "result": 2}
    bad = {"datastream": ds, "phenomenonTime": "2026-01-01T00:00:00Z", "result": 1, field: time}
    # Two rows take the small path, CSV and a parameters column the vectorised query.
    r = client.post("/api/v1/ingest", content=ndjson(bad, good), headers=NDJSON)
    assert_rows_refused(r, field, timefmt.OUT_OF_RANGE)
    r = client.post("/api/v1/ingest", content=ndjson({**bad, "parameters": "{}"}, good), headers=NDJSON)
    assert_rows_refused(r, field, timefmt.OUT_OF_RANGE)
    rt = time if field == "resultTime" else ""
    pt = time if field == "phenomenonTime" else "2026-01-01T00:00:00Z"
    csv = f"datastream,phenomenonTime,result,resultTime\n{ds},{pt},1,{rt}\n{ds},2026-01-01T01:00:00Z,2,\n"
    r = client.post("/api/v1/ingest", content=csv, headers={"Content-Type": "text/csv"})
    assert_rows_refused(r, field, timefmt.OUT_OF_RANGE)
    many = [{**good, "phenomenonTime": f"2026-01-02T00:{m:02d}:00Z"} for m in range(59)] + [bad] * 10
    r = client.post("/api/v1/ingest", content=ndjson(*many), headers=NDJSON)  # the Arrow path declines it
    assert_rows_refused(r, field, timefmt.OUT_OF_RANGE, index=59)
    comps = ["phenomenonTime", "result", "resultTime"] if rt else ["phenomenonTime", "result"]
    group = {"Datastream": {"@iot.id": ds}, "components": comps, "dataArray": [[pt, 1, rt] if rt else [pt, 1]]}
    r = client.post("/v1.1/CreateObservations", json=[group])
    assert r.status_code == 201, r.text
    assert r.json() == [f"error: {field} {timefmt.OUT_OF_RANGE}"]
    assert client.get(f"/v1.1/Datastreams({ds})/Observations").json()["value"] == []


def test_an_out_of_range_result_time_never_reaches_the_store(client: TestClient, station: dict) -> None:
    """A resultTime of 1 BC used to be stored by the vectorised path, and every read of its Datastream was a 500."""
    ds = station["datastream"]
    rows = [
        {"datastream": ds, "phenomenonTime": "2026-01-02T00:00:00Z", "result": 1, "parameters": "{}",
         "resultTime": "0001-01-01T00:00:00+01:00"},
        {"datastream": ds, "phenomenonTime": "2026-01-03T00:00:00Z", "result": 1},
    ]  # fmt: skip
    r = client.post("/api/v1/ingest?partial=true", content=ndjson(*rows), headers=NDJSON)
    assert r.status_code == 207, r.text
    assert r.json()["stored"] == 1
    assert r.json()["errors"] == [{"index": 0, "field": "resultTime", "reason": timefmt.OUT_OF_RANGE}]
    assert client.get(f"/v1.1/Datastreams({ds})/Observations").status_code == 200
    assert client.get("/v1.1/Observations?$resultFormat=dataArray").status_code == 200


@pytest.mark.parametrize("unit", ["s", "ms", "us"])
def test_arrow_timestamps_far_from_1970_are_refused_per_row(client: TestClient, station: dict, unit: str) -> None:
    ds = station["datastream"]
    per_second = {"s": 1, "ms": 10**3, "us": 10**6}[unit]
    table = pa.table(
        {
            "datastream": pa.array([ds, ds], pa.int64()),
            "phenomenonTime": pa.array([1_767_225_600 * per_second, 2**62], pa.timestamp(unit, tz="UTC")),
            "result": pa.array([1.0, 2.0]),
        }
    )
    sink = io.BytesIO()
    with paipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    r = client.post("/api/v1/ingest", content=sink.getvalue(), headers={"Content-Type": ARROW})
    assert_rows_refused(r, "phenomenonTime", timefmt.OUT_OF_RANGE, index=1)


# -- parameters in bulk bodies -----------------------------------------------------------------------------------
def test_bulk_parameters_as_json_objects_are_stored_as_json(client: TestClient, station: dict) -> None:
    """The documented form: Arrow's JSON reader made a struct of it, which nothing could cast to text (a 500)."""
    ds = station["datastream"]
    rows = [
        {"datastream": ds, "phenomenonTime": "2026-01-01T00:00:00Z", "result": 1, "parameters": {"a": 1, "b": [True]}},
        {"datastream": ds, "phenomenonTime": "2026-01-01T01:00:00Z", "result": 2, "parameters": '{"c": "text"}'},
        {"datastream": ds, "phenomenonTime": "2026-01-01T02:00:00Z", "result": 3},
    ]
    r = client.post("/api/v1/ingest", content=ndjson(*rows), headers=NDJSON)
    assert r.status_code == 200, r.text
    got = client.get(f"/v1.1/Datastreams({ds})/Observations?$orderby=phenomenonTime&$select=parameters").json()
    assert [o["parameters"] for o in got["value"]] == [{"a": 1, "b": [True]}, {"c": "text"}, None]


def test_csv_parameters_are_json_text_whatever_they_look_like(client: TestClient, station: dict) -> None:
    """A cell like 2026-01-01 was read as a date, passed the JSON check and failed in the store (a 500)."""
    ds = station["datastream"]
    head = "datastream,phenomenonTime,result,parameters\n"
    r = client.post("/api/v1/ingest", content=f"{head}{ds},2026-01-01T00:00:00Z,1,2026-01-01\n",
                    headers={"Content-Type": "text/csv"})  # fmt: skip
    assert_rows_refused(r, "parameters", jsontext.NOT_JSON)
    body = f'{head}{ds},2026-01-01T00:00:00Z,1,7\n{ds},2026-01-01T01:00:00Z,2,"{{""a"": 1}}"\n'
    r = client.post("/api/v1/ingest", content=body, headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    got = client.get(f"/v1.1/Datastreams({ds})/Observations?$orderby=phenomenonTime&$select=parameters").json()
    assert [o["parameters"] for o in got["value"]] == [7, {"a": 1}]


@pytest.mark.parametrize("text", ['{"a": NaN}', "[1,]", '{"a": 1e400}', '{"a": Infinity}', "[" * 100 + "]" * 100])
def test_parameters_the_reads_could_not_load_are_refused(client: TestClient, station: dict, text: str) -> None:
    """DuckDB's json_valid takes these; stored, each made every read of its Datastream a 500."""
    ds = station["datastream"]
    rows = [{"datastream": ds, "phenomenonTime": f"2026-01-01T0{h}:00:00Z", "result": h, "parameters": text}
            for h in range(2)]  # fmt: skip
    r = client.post("/api/v1/ingest", content=ndjson(*rows), headers=NDJSON)
    assert r.status_code == 422, r.text
    assert {e["field"] for e in r.json()["errors"]} == {"parameters"}
    assert client.get(f"/v1.1/Datastreams({ds})/Observations").status_code == 200


def test_an_arrow_parameters_column_must_be_text(client: TestClient, station: dict) -> None:
    table = pa.table(
        {
            "datastream": pa.array([station["datastream"]], pa.int64()),
            "phenomenonTime": pa.array(["2026-01-01T00:00:00Z"]),
            "result": pa.array([1.0]),
            "parameters": pa.array([{"a": 1}]),
        }
    )
    sink = io.BytesIO()
    with paipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    r = client.post("/api/v1/ingest", content=sink.getvalue(), headers={"Content-Type": ARROW})
    assert_problem(r, 400, "parameters")


# -- other bodies that were a 500 ----------------------------------------------------------------------------------
def test_patch_phenomenon_time_to_null_is_400(client: TestClient, station: dict) -> None:
    ds = station["datastream"]
    for h in range(2):
        client.post(f"/v1.1/Datastreams({ds})/Observations", json={"phenomenonTime": f"2026-01-01T0{h}:00:00Z",
                                                                  "result": h})  # fmt: skip
    assert_problem(client.patch("/v1.1/Observations(2)", json={"phenomenonTime": None}), 400, "phenomenonTime")
    # A PATCH is held to the other rules of a POST too.
    assert_problem(client.patch("/v1.1/Observations(2)", json={"phenomenonTime": "1899-12-31T00:00:00Z"}), 400,
                   "phenomenonTime", detail="before 1900")  # fmt: skip
    assert_problem(client.patch("/v1.1/Observations(2)", json={"phenomenonTime": "2999-01-01T00:00:00Z"}), 400,
                   "phenomenonTime", detail="future")  # fmt: skip
    assert client.get("/v1.1/Observations(2)").json()["phenomenonTime"] == "2026-01-01T01:00:00Z"


@pytest.mark.parametrize("components", [[["result"]], [{"a": 1}, "result"], ["result", 7]])
def test_create_observations_with_components_that_are_not_names_is_400(
    client: TestClient, station: dict, components: list[Any]
) -> None:
    body = [{"Datastream": {"@iot.id": station["datastream"]}, "components": components, "dataArray": [[1]]}]
    assert_problem(client.post("/v1.1/CreateObservations", json=body), 400, "[0].components")


def _nested(depth: int) -> Any:
    value: Any = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "text",
    [
        "[" * 5000 + "]" * 5000,  # PyYAML recursed past Python's limit: a RecursionError, a 500
        "{a: " * 5000 + "1" + "}" * 5000,
        "rules:\n" + "".join("  " * i + "- \n" for i in range(400)),
        "rules: " + "[" * 100 + "]" * 100,
        orjson.dumps({"rules": [{"name": "x", "kind": "range", "min": 0, "scope": {"area": _nested(200)}}]}).decode(),
    ],
)
def test_a_ruleset_nested_too_deep_is_400(client: TestClient, text: str) -> None:
    r = client.put("/api/v1/rulesets/deep", content=text, headers={"Content-Type": "application/yaml"})
    assert_problem(r, 400, "body")


def test_json_members_too_deep_to_read_back_are_400(client: TestClient, station: dict) -> None:
    """orjson reads 1,024 levels but writes 254: a member between the two was a 500 on the way in or out."""
    ds = station["datastream"]
    deep = _nested(300)
    obs = {"phenomenonTime": "2026-01-01T00:00:00Z", "result": 1}
    url = f"/v1.1/Datastreams({ds})/Observations"
    assert_problem(client.post(url, json={**obs, "parameters": deep}), 400, "parameters", detail=jsontext.TOO_DEEP)
    assert_problem(client.post(url, json={**obs, "resultQuality": deep}), 400, "resultQuality")
    assert_problem(client.post("/v1.1/Things", json={**station_body(), "properties": deep}), 400, "properties")
    generic = client.post(f"/v1.1/Things({station['thing']})/Datastreams", json={
        **_datastream(model.OM_OBSERVATION), "Observations": [{**obs, "result": [deep]}]})  # fmt: skip
    assert_problem(generic, 400, "Observations[0].result", detail=jsontext.TOO_DEEP)
    nested = '{"a":' * 300 + "{}" + "}" * 300  # deeper than orjson writes, so written out by hand
    for member in ("parameters", "result"):
        line = f'{{"datastream": {ds}, "phenomenonTime": "2026-01-01T00:00:00Z", "result": 1, "{member}": {nested}}}'
        r = client.post("/api/v1/ingest", content=line.replace('"result": 1, "result"', '"result"'), headers=NDJSON)
        assert_problem(r, 400, member, detail=jsontext.TOO_DEEP)
    assert client.get(url).json()["value"] == []


def _datastream(otype: str = model.OM_MEASUREMENT) -> dict[str, Any]:
    return {
        "name": otype.rsplit("/", 1)[-1],
        "description": "a Datastream of this type",
        "observationType": otype,
        "unitOfMeasurement": UGM3 if otype == model.OM_MEASUREMENT else {},
        "Sensor": {"name": "s", "description": "s", "encodingType": "text/html", "metadata": "https://x.org"},
        "ObservedProperty": {"name": "p", "definition": "https://x.org/p", "description": "p"},
    }


# -- storable implies readable ---------------------------------------------------------------------------------------
OFFSETS = st.integers(-(24 * 60 - 1), 24 * 60 - 1)
INSTANTS = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999_999))


def _written(local: datetime, minutes: int) -> str:
    """A local date and time at an offset, as a client writes it; its instant may lie outside the range."""
    text = local.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat()
    return text.replace("+00:00", "Z")


def _instant(text: str) -> datetime | None:
    """The UTC instant of ``text``, None if the hub must refuse it (computed without the hub's code)."""
    try:
        utc = datetime.fromisoformat(text).astimezone(UTC)
    except OverflowError:
        return None
    return utc if timefmt.TIME_MIN <= utc <= timefmt.TIME_MAX else None


# Uniform draws almost never come near the ends of the range, where the bugs were: a third are within days of them.
NEAR_ENDS = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1, 1, 4)),
    st.datetimes(min_value=datetime(9998, 12, 29), max_value=datetime(9999, 12, 31, 23, 59, 59, 999_999)),
)
times_anywhere = st.builds(_written, st.one_of(INSTANTS, NEAR_ENDS, NEAR_ENDS), OFFSETS)


@st.composite
def intervals(draw: Any, start: str | None = None) -> str:
    """``start/end``, nearly always in order (an interval ending before it starts is refused)."""
    a, b = start or draw(times_anywhere), draw(times_anywhere)
    ia, ib = _instant(a), _instant(b)
    if ia is not None and ib is not None and ib < ia and draw(st.integers(0, 9)):
        a, b = (a, a) if start else (b, a)  # a phenomenonTime's start is kept: it must be from 1900 on
    return f"{a}/{b}"


# phenomenonTime: 1900 on, and no further ahead than the hub allows (a day by default).
phenomenon_times = st.builds(
    _written,
    st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2026, 1, 1)),
    OFFSETS,
)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)  # fmt: skip
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
RESULTS = {
    model.OM_MEASUREMENT: st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**53), 2**53)),
    model.OM_COUNT: st.integers(-(2**53), 2**53),
    model.OM_TRUTH: st.booleans(),
    model.OM_CATEGORY: st.one_of(st.text(min_size=1, max_size=20), st.integers(-1000, 1000)),
    model.OM_OBSERVATION: json_values.filter(lambda v: v is not None),
}


@st.composite
def observations(draw: Any) -> dict[str, Any]:
    otype = draw(st.sampled_from(sorted(RESULTS)))
    bulk = draw(st.booleans())  # bulk rows have neither intervals nor validTime
    obs: dict[str, Any] = {"phenomenonTime": draw(phenomenon_times), "result": draw(RESULTS[otype])}
    if not bulk and draw(st.booleans()):
        obs["phenomenonTime"] = draw(intervals(obs["phenomenonTime"]))
    if draw(st.booleans()):
        obs["resultTime"] = draw(times_anywhere)
    if not bulk and draw(st.booleans()):
        obs["validTime"] = draw(intervals())
    if draw(st.booleans()):
        obs["parameters"] = draw(st.dictionaries(st.text(max_size=5), json_values, max_size=3))
    return {"type": otype, "body": obs, "bulk": bulk}


def _acceptable(body: dict[str, Any]) -> bool:
    """Whether the hub must take ``body``: every time within the range, intervals in order, and no text result
    holding U+0000 (which no store takes: PostgreSQL's text cannot hold it)."""
    if isinstance(body.get("result"), str) and "\x00" in body["result"]:
        return False
    for field in ("phenomenonTime", "resultTime", "validTime"):
        if field not in body:
            continue
        parts = [_instant(t) for t in body[field].split("/")]
        known = [p for p in parts if p is not None]
        if len(known) < len(parts) or known != sorted(known):
            return False
    return True


def _bulk_row(ds: int, body: dict[str, Any]) -> dict[str, Any] | None:
    """The Observation as a bulk NDJSON row; None if the bulk format cannot say it (intervals, validTime)."""
    if "/" in body["phenomenonTime"] or "validTime" in body:
        return None
    return {"datastream": ds, **body}


def test_storable_implies_readable(client: TestClient) -> None:
    """Any Observation the hub accepts, through either entry point, is read back by every read path."""
    thing_body = {**station_body(), "Datastreams": [_datastream(t) for t in sorted(RESULTS)]}
    thing = client.post("/v1.1/Things", json=thing_body).json()["@iot.id"]
    streams = {
        d["observationType"]: d["@iot.id"] for d in client.get(f"/v1.1/Things({thing})/Datastreams").json()["value"]
    }

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(observations())
    def check(case: dict[str, Any]) -> None:
        ds, body = streams[case["type"]], case["body"]
        row = _bulk_row(ds, body) if case["bulk"] else None
        if row is not None:
            r = client.post("/api/v1/ingest", content=ndjson(row), headers=NDJSON)
        else:
            r = client.post(f"/v1.1/Datastreams({ds})/Observations", json=body)
        event(f"{'bulk' if row is not None else 'single'} {'accepted' if _acceptable(body) else 'refused'}")
        if not _acceptable(body):
            assert r.status_code in (400, 422), r.text
            problem = r.json()
            fields = {e["field"] for e in problem["errors"]} if r.status_code == 422 else {problem["field"]}
            assert fields <= {"phenomenonTime", "resultTime", "validTime", "result"}, problem
            return
        assert r.status_code in (200, 201), r.text
        found = client.get(
            f"/v1.1/Datastreams({ds})/Observations",
            # starts(): an instant or interval starting then (eq of an interval and an instant never holds)
            params={"$filter": f"starts(phenomenonTime, {body['phenomenonTime'].split('/')[0]})"},
        )
        assert found.status_code == 200, found.text
        [obs] = found.json()["value"]
        try:
            _read_everything(client, ds, obs["@iot.id"], body)
        finally:
            assert client.delete(f"/v1.1/Observations({obs['@iot.id']})").status_code in (200, 204)

    check()


def _read_everything(client: TestClient, ds: int, oid: int, body: dict[str, Any]) -> None:
    got = client.get(f"/v1.1/Observations({oid})")
    assert got.status_code == 200, got.text
    entity = got.json()
    for field in ("phenomenonTime", "resultTime", "validTime"):
        if field in body:
            sent = [_instant(t) for t in body[field].split("/")]
            back = [timefmt.parse_iso(t) for t in entity[field].split("/")]
            assert back == sent if len(sent) == 2 and sent[0] != sent[1] else back[:1] == sent[:1], (field, entity)
    if "parameters" in body:
        assert entity["parameters"] == body["parameters"]
    select = "id,phenomenonTime,result,resultTime,validTime,parameters,resultQuality"
    pt = body["phenomenonTime"].split("/")[0]
    hour = timefmt.parse_iso(pt)
    reads = [
        ("/v1.1/Observations", {"$filter": f"id eq {oid}"}),
        (f"/v1.1/Datastreams({ds})/Observations", {"$resultFormat": "dataArray", "$select": select}),
        (f"/v1.1/Datastreams({ds})/Observations", {"$filter": f"phenomenonTime ge {pt} and phenomenonTime le {pt}"}),
        (f"/v1.1/Datastreams({ds})", {"$expand": "Observations"}),
        (f"/v1.1/Datastreams({ds})", {}),
        ("/api/v1/latest", {"datastreams": str(ds)}),
        ("/api/v1/aggregate", {"datastreams": str(ds), "function": "count", "interval": "day"}),
        (
            "/api/v1/aggregate",
            {"datastreams": str(ds), "start": pt, "end": timefmt.iso_time(hour + timedelta(hours=1))},
        ),
        ("/api/v1/export", {"datastreams": str(ds)}),
    ]
    for path, params in reads:
        r = client.get(path, params=params)
        assert r.status_code == 200, (path, params, r.text)
    r = client.post("/api/v1/aggregate", json={"datastreams": [ds], "start": pt})
    assert r.status_code == 200, r.text
