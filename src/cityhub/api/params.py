"""Query parameters shared by the extension endpoints, parsed with errors that name the parameter."""

from __future__ import annotations

from datetime import datetime

from cityhub.errors import bad_request
from cityhub.timefmt import parse_time


def time_param(text: str | None, field: str) -> datetime | None:
    """An optional ISO 8601 time that must carry its offset (a time without one is ambiguous at UTC+7)."""
    return None if text is None else parse_time(text, field)


def ids_param(text: str | None, field: str) -> list[int]:
    """A comma-separated list of entity ids."""
    if not text:
        return []
    try:
        ids = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise bad_request(f"{field} must be a comma-separated list of ids", field=field) from None
    if any(not 0 <= i < 2**63 for i in ids):
        raise bad_request(f"{field}: id out of range", field=field)
    return ids
