"""Times as CityHub reads and writes them.

Reading: ISO 8601 with a zone (``Z``, ``z`` or an offset), because a time without one is ambiguous in a
city at UTC+7. Writing: UTC with a ``Z``, microseconds only when there are any. Every parser and
formatter of the hub is here, so the single-row and vectorised paths and every response agree.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from cityhub.errors import bad_request

# What a zone must look like at the end of the text. fromisoformat also takes "+07:00:00" and the basic
# "+0700"; the pattern is shared with the vectorised SQL check so both paths refuse the same texts.
ZONE = r"(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$"
_ZONE_RE = re.compile(ZONE)
_YEAR_RE = re.compile(r"(\d{4,})-")
NOT_ISO = "is not an ISO 8601 time"
NO_ZONE = "has no time zone"

# The instants the hub accepts anywhere, inclusive. Python's datetime ends at 0001-01-01 and 9999-12-31 in
# *local* time, so an instant at either end breaks as soon as it is shown at an offset (up to ±23:59), bucketed
# into local days or windowed by the air-quality indices (23 hours back): a day of margin at the start, and at
# the end the close of year 9998 (a round date, more than a day short), keep every such conversion
# representable. DuckDB (some 290,000 years either side of 1970) and PostgreSQL (4713 BC-294276 AD) hold far
# more, so nothing the hub stores is beyond reading back. Single Observations (parse_iso), the vectorised check
# (store/duckdb/validation.py) and the fast paths (ingest/small.py, ingest/plain.py) all read these names.
TIME_MIN = datetime(1, 1, 2, tzinfo=UTC)
TIME_MAX = datetime(9998, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
OUT_OF_RANGE = "is outside the range this hub can store (0001-01-02 … 9998-12-31)"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TIME_MIN_US = (TIME_MIN - _EPOCH) // timedelta(microseconds=1)
TIME_MAX_US = (TIME_MAX - _EPOCH) // timedelta(microseconds=1)


class TimeFormatError(ValueError):
    """A text that is not a usable time; ``reason`` is ``NOT_ISO``, ``NO_ZONE`` or ``OUT_OF_RANGE``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def has_zone(text: str) -> bool:
    return _ZONE_RE.search(text.strip()) is not None


def parse_iso(text: str, *, assume: tzinfo | None = None) -> datetime:
    """The instant ``text`` names, in UTC. Without ``assume`` a zone is required; with it, a text without
    one is read in that zone (command-line conveniences only). Raises TimeFormatError."""
    text = text.strip()
    try:
        ts = datetime.fromisoformat(text.replace("z", "Z"))  # fromisoformat rejects a lowercase z
    except ValueError:
        ts = _beyond_python(text)
    if ts.tzinfo is None and assume is not None:
        ts = ts.replace(tzinfo=assume)
    elif ts.tzinfo is None or not _ZONE_RE.search(text):
        raise TimeFormatError(NO_ZONE)
    return to_utc(ts)


def _beyond_python(text: str) -> datetime:
    """Why ``text``, which fromisoformat refused, is no time: a well-formed one in year 0 or after 9999 (which
    DuckDB reads, and the vectorised check calls out of range) is OUT_OF_RANGE, or NO_ZONE without a zone."""
    m = _YEAR_RE.match(text)
    if m is None or 1 <= int(m.group(1)) <= 9999:
        raise TimeFormatError(NOT_ISO)
    try:  # 2000 is a leap year, as year 0 is
        ts = datetime.fromisoformat("2000" + text[m.end(1) :].replace("z", "Z"))
    except ValueError:
        raise TimeFormatError(NOT_ISO) from None
    raise TimeFormatError(NO_ZONE if ts.tzinfo is None or not _ZONE_RE.search(text) else OUT_OF_RANGE)


def to_utc(ts: datetime) -> datetime:
    """An aware ``ts`` in UTC; TimeFormatError(OUT_OF_RANGE) outside TIME_MIN … TIME_MAX, including where the
    UTC instant is beyond what Python can hold (0001-01-01T00:00:00+14:00)."""
    try:
        utc = ts.astimezone(UTC)
    except OverflowError:
        raise TimeFormatError(OUT_OF_RANGE) from None
    if not TIME_MIN <= utc <= TIME_MAX:
        raise TimeFormatError(OUT_OF_RANGE)
    return utc


def check_time(value: datetime | None, field: str) -> datetime | None:
    """A time the web framework has already parsed (a ``datetime`` query parameter) held to the rules of
    ``parse_time``: a zone, and the storable range; in UTC, or a 400 naming ``field``."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise bad_request(f"{field} needs a time zone", field=field)
    try:
        return to_utc(value)
    except TimeFormatError as exc:
        raise bad_request(f"{field} {exc.reason}", field=field) from None


def parse_time(value: Any, field: str) -> datetime:
    """A client's time (body member or query parameter) in UTC; a 400 naming ``field`` otherwise."""
    if not isinstance(value, str):
        raise bad_request("must be an ISO 8601 time string", field=field)
    if not has_zone(value):  # checked first: the hint is what a client without a zone needs
        raise bad_request(f"{value!r} has no time zone; add Z or an offset such as +07:00", field=field)
    try:
        return parse_iso(value)
    except TimeFormatError as exc:
        raise bad_request(f"{value!r} {exc.reason}", field=field) from None


def parse_interval(value: Any, field: str) -> tuple[datetime, datetime | None]:
    """``start/end`` or a single time (end None)."""
    if isinstance(value, str) and "/" in value:
        a, b = value.split("/", 1)
        start, end = parse_time(a, field), parse_time(b, field)
        if end < start:
            raise bad_request("interval ends before it starts", field=field)
        return start, end
    return parse_time(value, field), None


def iso_time(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    ts = ts.astimezone(UTC)
    # Not strftime: glibc writes year 1 as "1", which no ISO 8601 reader (this hub's included) accepts.
    text = ts.replace(tzinfo=None, microsecond=0).isoformat()
    if ts.microsecond:
        text += f".{ts.microsecond:06d}".rstrip("0")
    return text + "Z"


def iso_array(ts: pa.Array | pa.ChunkedArray) -> list[Any]:
    """``iso_time`` of a whole timestamp column, vectorised."""
    arr = ts.cast(pa.timestamp("us", tz="UTC"))
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    mask = arr.is_null().to_numpy(zero_copy_only=False)
    us = arr.cast(pa.int64()).fill_null(0).to_numpy().astype("datetime64[us]")
    micros = us.astype(np.int64) % 1_000_000
    text = np.datetime_as_string(us, unit="s")
    if micros.any():
        # iso_time trims trailing zeros of the fraction; numpy only has fixed units, so trim by hand.
        frac = np.char.rstrip(np.char.zfill(micros.astype(str), 6), "0")
        text = np.where(micros != 0, np.char.add(np.char.add(text, "."), frac), text)
    out = [t + "Z" for t in text.tolist()]
    if mask.any():
        for i in np.flatnonzero(mask):
            out[i] = None
    return out


# With these options orjson writes a numpy datetime64 value of whole seconds exactly as iso_time does.
ORJSON_TIMES = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z


def iso_numpy(ts: pa.Array | pa.ChunkedArray) -> np.ndarray[Any, Any] | list[Any]:
    """``iso_array`` of a column for ``orjson.dumps(..., option=ORJSON_TIMES)``: a datetime64 array when every value
    is present and a whole second (orjson formats them in C: 720,000 hourly buckets in 30 ms, not 250 ms as
    strings), else ``iso_array``'s strings (orjson would write a fraction as six digits; iso_time trims it)."""
    arr = ts.cast(pa.timestamp("us", tz="UTC"))
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count:
        return iso_array(arr)
    us = arr.cast(pa.int64()).to_numpy()
    if (us % 1_000_000).any():
        return iso_array(arr)
    out: np.ndarray[Any, Any] = us.astype("datetime64[us]")
    return out
