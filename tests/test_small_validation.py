"""Small bodies are validated row by row in Python (cityhub.ingest.small), large plainly good ones with Arrow
kernels (cityhub.ingest.plain), and the rest in one vectorised query: whatever the body, the fast paths give the
same stored rows and the same refusals (field and reason) as the query."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityhub import model, timefmt
from cityhub.errors import ProblemError
from cityhub.ingest import observations as obsin
from cityhub.ingest.observations import DatastreamInfo, datastream_table
from cityhub.ingest.plain import MIN_ROWS as PLAIN_MIN_ROWS
from cityhub.ingest.plain import validate_plain
from cityhub.ingest.small import validate_small

NOW = datetime(2026, 6, 1, tzinfo=UTC)
INFOS = [
    DatastreamInfo(1, model.OM_MEASUREMENT, "µg/m³", 10),
    DatastreamInfo(2, model.OM_COUNT, "vehicles", 11),
    DatastreamInfo(3, model.OM_TRUTH, None, 12),
    DatastreamInfo(4, model.OM_CATEGORY, None, 13),
    DatastreamInfo(5, model.OM_OBSERVATION, None, 14),
]
BY_ID = {i.id: i for i in INFOS}
CATALOG = datastream_table(INFOS)

# Either side of the range every path holds times to (timefmt.TIME_MIN … TIME_MAX), and beyond Python's.
EDGE_TIMES = [
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-02T00:00:00Z", "0001-01-01T23:59:59.999999Z",
    "0001-01-02T05:00:00+05:00", "0001-01-02T04:59:59+05:00", "9998-12-31T23:59:59.999999Z", "9999-01-01T00:00:00Z",
    "9999-01-01T06:59:59+07:00", "9999-01-01T07:00:00+07:00", "0000-12-31T00:00:00Z", "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00-23:59", "10000-01-01T00:00:00Z", "0000-06-01T00:00:00",
]  # fmt: skip
times = st.one_of(
    st.none(),
    st.sampled_from(
        ["2026-01-01T00:00:00Z", "2026-01-01T07:00:00+07:00", "2026-05-31T23:59:59.5Z", "2026-01-01T00:00:00",
         "2026-01-01T00:00Z", "1899-12-31T23:00:00Z", "1900-01-01T00:30:00+01:00", "2026-06-03T00:00:00Z",
         "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "yesterday", "2026-01-01 00:00:00Z", "2026-01-01T00:00:00z",
         " 2026-01-01T00:00:00Z", "2026-01-01T00:00:00+0700", "2026-01-01T00:00:00-03:30"]
    ),
    st.datetimes(min_value=datetime(1850, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)).map(
        lambda d: d.isoformat().replace("+00:00", "Z")
    ),
    st.sampled_from(EDGE_TIMES),
    # Any text Python can write, at any offset: the instant may lie outside the hub's range, or beyond Python's.
    st.builds(
        lambda d, minutes: d.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat(),
        st.datetimes(), st.integers(-(24 * 60 - 1), 24 * 60 - 1),
    ),
)  # fmt: skip
text_results = st.one_of(
    st.sampled_from(["7", "2.5", "-3", "true", "false", "TRUE", "high", "http://x.org/a#b", "1e3", " 7", "nan",
                     "inf", "0x10", "", "True", "7.0", "1234567890123456789", "a b", "-0"]),
    st.text(max_size=5),
)  # fmt: skip


@st.composite
def bodies(draw: Any) -> pa.Table:
    n = draw(st.integers(1, 8))
    ds = draw(st.lists(st.one_of(st.none(), st.integers(0, 7)), min_size=n, max_size=n))
    pts = draw(st.lists(times, min_size=n, max_size=n))
    kind = draw(st.sampled_from(["float", "int", "bool", "text", "null"]))
    if kind == "float":
        res: pa.Array = pa.array(
            draw(
                st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)), min_size=n, max_size=n)
            ),
            pa.float64(),
        )
    elif kind == "int":
        res = pa.array(draw(st.lists(st.integers(-(2**40), 2**40), min_size=n, max_size=n)), pa.int64())
    elif kind == "bool":
        res = pa.array(draw(st.lists(st.one_of(st.none(), st.booleans()), min_size=n, max_size=n)), pa.bool_())
    elif kind == "text":
        res = pa.array(draw(st.lists(st.one_of(st.none(), text_results), min_size=n, max_size=n)), pa.string())
    else:
        res = pa.nulls(n)
    cols: dict[str, pa.Array] = {
        "datastream": pa.array(ds, pa.int64()),
        "phenomenonTime": pa.array(pts, pa.string()),
        "result": res,
    }
    if draw(st.booleans()):
        cols["resultTime"] = pa.array(draw(st.lists(times, min_size=n, max_size=n)), pa.string())
    if draw(st.booleans()):
        cols["unit"] = pa.array(
            draw(st.lists(st.sampled_from([None, "µg/m³", "vehicles", "ppm"]), min_size=n, max_size=n)), pa.string()
        )
    if draw(st.booleans()):
        cols["featureOfInterest"] = pa.array(draw(st.lists(st.one_of(st.none(), st.integers(1, 9)), min_size=n,
                                                           max_size=n)), pa.int64())  # fmt: skip
    return pa.table(cols)


@st.composite
def mostly_good_bodies(draw: Any) -> pa.Table:
    """Bodies most of whose rows are fine, so that stored values are compared too, not only refusals."""
    n = draw(st.integers(1, 8))
    good_times = st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T07:00:00+07:00", "2026-05-31T23:59:59.5Z"])
    cols: dict[str, pa.Array] = {
        "datastream": pa.array(draw(st.lists(st.integers(1, 5), min_size=n, max_size=n)), pa.int64()),
        "phenomenonTime": pa.array(draw(st.lists(good_times, min_size=n, max_size=n)), pa.string()),
    }
    kind = draw(st.sampled_from(["float", "int", "bool", "text"]))
    if kind == "float":
        cols["result"] = pa.array(draw(st.lists(st.floats(-1e6, 1e6), min_size=n, max_size=n)), pa.float64())
    elif kind == "int":
        cols["result"] = pa.array(draw(st.lists(st.integers(-1000, 1000), min_size=n, max_size=n)), pa.int64())
    elif kind == "bool":
        cols["result"] = pa.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), pa.bool_())
    else:
        words = st.sampled_from(["7", "2.5", "-3", "true", "false", "high", "http://x.org/a#b", "7.0", "0.25"])
        cols["result"] = pa.array(draw(st.lists(words, min_size=n, max_size=n)), pa.string())
    if draw(st.booleans()):
        cols["resultTime"] = pa.array(draw(st.lists(good_times, min_size=n, max_size=n)), pa.string())
    return pa.table(cols)


def as_compared(v: obsin.Validated) -> tuple[list[dict[str, Any]], list[int], list[int], list[dict[str, Any]]]:
    rows = v.good.to_pylist()
    for r in rows:  # NaN never equals itself; results that are NaN are refused anyway
        for k, x in r.items():
            if isinstance(x, float) and x != x:
                r[k] = "nan"
    return rows, v.good_index.tolist(), v.thing_ids.tolist(), v.bad


@settings(max_examples=300, deadline=None)
@given(st.one_of(bodies(), mostly_good_bodies()))
def test_small_and_vectorised_validation_agree(body: pa.Table) -> None:
    small = validate_small(body, BY_ID.get, max_future=timedelta(days=1), now=NOW)
    vectorised = obsin.validate(body, CATALOG, max_future=timedelta(days=1), now=NOW)
    if small is not None:
        assert as_compared(small) == as_compared(vectorised)


def test_plain_bodies_take_the_small_path() -> None:
    body = pa.table(
        {"datastream": [1, 2, 9], "phenomenonTime": ["2026-01-01T00:00:00Z"] * 3, "result": ["7.5", "3", "1"]}
    )
    small = validate_small(body, BY_ID.get, max_future=timedelta(days=1), now=NOW)
    assert small is not None
    assert small.good.column("result_number").to_pylist() == [7.5, 3.0]
    assert small.bad == [{"index": 2, "field": "datastream", "reason": "no Datastream has this id"}]
    big = pa.concat_tables([body] * 700)  # more rows than the small path takes
    assert validate_small(big, BY_ID.get, max_future=timedelta(days=1), now=NOW) is None


# -- large plain bodies: Arrow kernels (cityhub.ingest.plain) against the vectorised query --------------------
@st.composite
def plain_bodies(draw: Any) -> pa.Table:
    """Bodies of at least MIN_ROWS rows, mostly of the shapes the Arrow path takes, with a few that are not."""
    n = draw(st.integers(PLAIN_MIN_ROWS, PLAIN_MIN_ROWS + 40))
    zoned = st.sampled_from(
        ["2026-01-01T00:00:00Z", "2026-01-01T07:00:00+07:00", "2026-05-31T23:59:59.5Z", "2026-01-01T00:00Z",
         "2026-01-01T00:00:00-03:30", "2026-06-01T23:59:59.999999+00:00"]
    )  # fmt: skip
    odd = st.sampled_from(["2026-01-01T00:00:00", "1899-12-31T23:00:00Z", "2026-06-03T00:00:00Z",
                           "2026-02-30T00:00:00Z", "2026-01-01T00:00:00z", None, "2026-01-01 00:00:00Z",
                           *EDGE_TIMES])  # fmt: skip
    times_ = st.one_of(zoned, zoned, zoned, odd) if draw(st.booleans()) else zoned
    ds_ids = st.sampled_from([1, 2, 5]) if draw(st.booleans()) else st.integers(1, 6)
    cols: dict[str, pa.Array] = {
        "datastream": pa.array(draw(st.lists(ds_ids, min_size=n, max_size=n)), pa.int64()),
        "phenomenonTime": pa.array(draw(st.lists(times_, min_size=n, max_size=n)), pa.string()),
    }
    if draw(st.booleans()):
        values = st.one_of(st.integers(-1000, 1000).map(float), st.floats(-1e6, 1e6)) if draw(st.booleans()) else (
            st.integers(-1000, 1000).map(float))  # fmt: skip
        cols["result"] = pa.array(draw(st.lists(values, min_size=n, max_size=n)), pa.float64())
    else:
        cols["result"] = pa.array(draw(st.lists(st.integers(-(2**40), 2**40), min_size=n, max_size=n)), pa.int64())
    if draw(st.booleans()):
        result_times = st.one_of(st.none(), zoned, st.sampled_from(EDGE_TIMES)) if draw(st.booleans()) else (
            st.one_of(st.none(), zoned))  # fmt: skip
        cols["resultTime"] = pa.array(draw(st.lists(result_times, min_size=n, max_size=n)), pa.string())
    if draw(st.booleans()):
        units = st.sampled_from([None, "µg/m³", "vehicles"]) if draw(st.booleans()) else st.just(None)
        cols["unit"] = pa.array(draw(st.lists(units, min_size=n, max_size=n)), pa.string())
    if draw(st.booleans()):
        fois = st.lists(st.one_of(st.none(), st.integers(1, 9)), min_size=n, max_size=n)
        cols["featureOfInterest"] = pa.array(draw(fois), pa.int64())
    return pa.table(cols)


@settings(max_examples=200, deadline=None)
@given(plain_bodies())
def test_plain_and_vectorised_validation_agree(body: pa.Table) -> None:
    plain = validate_plain(body, BY_ID.get, max_future=timedelta(days=1), now=NOW)
    vectorised = obsin.validate(body, CATALOG, max_future=timedelta(days=1), now=NOW)
    if plain is not None:
        assert as_compared(plain) == as_compared(vectorised)
        assert vectorised.bad_count == 0  # the Arrow path only ever takes bodies that are good throughout


def test_plain_bodies_take_the_arrow_path_and_others_do_not() -> None:
    n = 500
    body = pa.table(
        {
            "datastream": [1, 2, 5, 1] * (n // 4),
            "phenomenonTime": [f"2026-01-01T{h % 24:02d}:00:00+07:00" for h in range(n)],
            "result": pa.array(range(n), pa.int64()),
            "unit": ["µg/m³", "vehicles", None, None] * (n // 4),
        }
    )
    plain = validate_plain(body, BY_ID.get, max_future=timedelta(days=1), now=NOW)
    assert plain is not None
    assert as_compared(plain) == as_compared(obsin.validate(body, CATALOG, max_future=timedelta(days=1), now=NOW))
    assert plain.good.column("phenomenon_time")[0].as_py() == datetime(2025, 12, 31, 17, tzinfo=UTC)
    assert plain.thing_ids[:4].tolist() == [10, 11, 14, 10]
    refused = {  # each of these has a row the vectorised query must word, so the Arrow path declines
        "unknown Datastream": body.set_column(0, "datastream", pa.array([9] + [1] * (n - 1), pa.int64())),
        "Truth Datastream": body.set_column(0, "datastream", pa.array([3] + [1] * (n - 1), pa.int64())),
        "no zone": body.set_column(1, "phenomenonTime", pa.array(["2026-01-01T00:00:00"] * n)),
        "whole count": body.set_column(2, "result", pa.array([0.5] * n, pa.float64())),
        "NaN": body.set_column(2, "result", pa.array([float("nan")] * n, pa.float64())),
        "unit": body.set_column(3, "unit", pa.array(["ppm"] * n)),
        "parameters": body.append_column("parameters", pa.array(["{}"] * n)),
    }
    for why, bad in refused.items():
        assert validate_plain(bad, BY_ID.get, max_future=timedelta(days=1), now=NOW) is None, why


# -- the time range: the same on every path ----------------------------------------------------------------------
def _single(text: str, field: str) -> tuple[str, str] | None:
    """(field, reason) the single-Observation path gives for ``text`` in ``field``, or None if it takes it."""
    record = {"phenomenonTime": "2026-01-01T00:00:00Z", "result": 1.0, field: text}
    try:
        obsin.validate_one(record, BY_ID[1], max_future=timedelta(days=1), now=NOW)
    except ProblemError as exc:
        assert exc.field is not None
        return exc.field, exc.detail.removeprefix(f"{exc.field} ")
    return None


@pytest.mark.parametrize("text", EDGE_TIMES)
def test_every_path_holds_result_times_to_one_range(text: str) -> None:
    body = pa.table(
        {"datastream": [1], "phenomenonTime": ["2026-01-01T00:00:00Z"], "result": [1.0], "resultTime": [text]}
    )
    vectorised = obsin.validate(body, CATALOG, max_future=timedelta(days=1), now=NOW)
    refusal = (vectorised.bad[0]["field"], vectorised.bad[0]["reason"]) if vectorised.bad else None
    try:
        inside = timefmt.TIME_MIN <= datetime.fromisoformat(text).astimezone(UTC) <= timefmt.TIME_MAX
    except (ValueError, OverflowError):  # year 0 or 10000, or an instant beyond Python's
        inside = False
    expected = timefmt.NO_ZONE if not timefmt.has_zone(text) else None if inside else timefmt.OUT_OF_RANGE
    assert refusal == (None if expected is None else ("resultTime", expected))
    assert _single(text, "resultTime") == refusal
    small = validate_small(body, BY_ID.get, max_future=timedelta(days=1), now=NOW)
    if small is not None:  # year 0 is no date to Python: the small path leaves it to the query
        assert as_compared(small) == as_compared(vectorised)
    big = pa.concat_tables([body] * PLAIN_MIN_ROWS)
    plain = validate_plain(big, BY_ID.get, max_future=timedelta(days=1), now=NOW)
    assert (plain is not None) == (expected is None)  # the Arrow path takes only bodies good throughout
    if plain is not None:
        assert as_compared(plain) == as_compared(obsin.validate(big, CATALOG, max_future=timedelta(days=1), now=NOW))


@pytest.mark.parametrize("text", EDGE_TIMES)
def test_phenomenon_times_outside_the_range_are_refused_alike(text: str) -> None:
    body = pa.table({"datastream": [1], "phenomenonTime": [text], "result": [1.0]})
    vectorised = obsin.validate(body, CATALOG, max_future=timedelta(days=1), now=NOW)
    assert vectorised.bad_count == 1  # before 1900 or after NOW + 1 day, if not outside the range
    refusal = (vectorised.bad[0]["field"], vectorised.bad[0]["reason"])
    assert _single(text, "phenomenonTime") == refusal
    small = validate_small(body, BY_ID.get, max_future=timedelta(days=1), now=NOW)
    if small is not None:
        assert as_compared(small) == as_compared(vectorised)


@pytest.mark.parametrize("unit", ["s", "ms", "us"])  # nanoseconds cannot leave 1677-2262
def test_arrow_timestamps_beyond_the_range_are_refused_per_row(unit: str) -> None:
    """Seconds and milliseconds far from 1970 cannot be held in microseconds: DuckDB used to fail the whole scan."""
    per_second = {"s": 1, "ms": 10**3, "us": 10**6}[unit]
    values = [2**62, -(2**62), 1_767_225_600 * per_second]  # the last: 2026-01-01
    body = pa.table(
        {
            "datastream": [1, 1, 1],
            "phenomenonTime": ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"],
            "result": [1.0, 2.0, 3.0],
            "resultTime": pa.array(values, pa.timestamp(unit, tz="UTC")),
        }
    )
    v = obsin.validate(body, CATALOG, max_future=timedelta(days=1), now=NOW)
    assert v.bad == [{"index": i, "field": "resultTime", "reason": timefmt.OUT_OF_RANGE} for i in (0, 1)]
    assert v.good.column("result_time").to_pylist() == [datetime(2026, 1, 1, tzinfo=UTC)]


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(  # mostly recent times (the Arrow path takes them), sometimes anything a timestamp can hold
        *(
            st.lists(
                st.datetimes(min_value=lo, max_value=hi, timezones=st.just(UTC)),
                min_size=PLAIN_MIN_ROWS,
                max_size=PLAIN_MIN_ROWS + 20,
            )
            for lo, hi in ((datetime(2020, 1, 1), datetime(2026, 6, 1)), (datetime(1, 1, 1), datetime(9999, 12, 31)))
        )
    ),
    st.sampled_from(["s", "ms", "us", "ns"]),
    st.sampled_from(["UTC", "Asia/Ho_Chi_Minh", None]),
)
def test_arrow_timestamp_bodies_agree_on_both_paths(times: list[datetime], unit: str, tz: str | None) -> None:
    """Arrow IPC bodies carry phenomenonTime as a timestamp column: the Arrow path takes zoned ones in range."""
    us = pa.array(times, pa.timestamp("us", tz="UTC"))
    try:
        col = us.cast(pa.timestamp(unit, tz=tz))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return  # not representable in this unit (ns beyond 2262, or sub-second values in s)
    n = len(times)
    body = pa.table({"datastream": pa.array([1, 2] * (n // 2) + [1] * (n % 2), pa.int64()), "phenomenonTime": col,
                     "result": pa.array(range(n), pa.int64())})  # fmt: skip
    plain = validate_plain(body, BY_ID.get, max_future=timedelta(days=1), now=NOW)
    vectorised = obsin.validate(body, CATALOG, max_future=timedelta(days=1), now=NOW)
    if plain is not None:
        assert as_compared(plain) == as_compared(vectorised)
    if tz is None:
        assert plain is None
