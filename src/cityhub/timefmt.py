"""Times as CityHub reads and writes them.

Reading: ISO 8601 with a zone (``Z``, ``z`` or an offset), because a time without one is ambiguous in a
city at UTC+7. Writing: UTC with a ``Z``, microseconds only when there are any. Every parser and
formatter of the hub is here, so the single-row and vectorised paths and every response agree.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from typing import Any

import numpy as np
import pyarrow as pa

from cityhub.errors import bad_request

# What a zone must look like at the end of the text. fromisoformat also takes "+07:00:00" and the basic
# "+0700"; the pattern is shared with the vectorised SQL check so both paths refuse the same texts.
ZONE = r"(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$"
_ZONE_RE = re.compile(ZONE)
NOT_ISO = "is not an ISO 8601 time"
NO_ZONE = "has no time zone"


class TimeFormatError(ValueError):
    """A text that is not a usable time; ``reason`` is ``NOT_ISO`` or ``NO_ZONE``."""

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
        raise TimeFormatError(NOT_ISO) from None
    if ts.tzinfo is None and assume is not None:
        ts = ts.replace(tzinfo=assume)
    elif ts.tzinfo is None or not _ZONE_RE.search(text):
        raise TimeFormatError(NO_ZONE)
    return ts.astimezone(UTC)


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
    text = ts.strftime("%Y-%m-%dT%H:%M:%S")
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
