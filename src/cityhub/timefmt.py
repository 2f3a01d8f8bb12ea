"""Times as CityHub writes them: ISO 8601 in UTC with a ``Z``, microseconds only when there are any."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_time(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    ts = ts.astimezone(UTC)
    text = ts.strftime("%Y-%m-%dT%H:%M:%S")
    if ts.microsecond:
        text += f".{ts.microsecond:06d}".rstrip("0")
    return text + "Z"
