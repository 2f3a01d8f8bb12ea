"""JSON members a client sends (parameters, properties, object results, resultQuality) as the text the hub stores.

orjson reads up to 1,024 levels of nesting but writes only 254, and every response wraps a stored member in a
few levels of its own (``value``, the entity, ``$expand``-ed parents): a member nested as deep as a request may
carry would be stored and then break every read of it. Members are therefore held to ``MAX_DEPTH`` levels on
the way in, by every path.
"""

from __future__ import annotations

from typing import Any

import orjson

from cityhub.errors import bad_request

MAX_DEPTH = 64
TOO_DEEP = f"is nested more than {MAX_DEPTH} levels deep"
NOT_JSON = "is not JSON"


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether objects and arrays in ``value`` nest more than ``limit`` levels. Iterative (no recursion limit);
    a container reached again (a YAML alias) is walked again only when reached deeper, so shared ones cost
    little and one that holds itself is too deep."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest: dict[int, int] = {}  # ids stay unique: every container is alive inside ``value``
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            children: Any = v.values()
        elif isinstance(v, list):
            children = v
        else:
            continue
        if depth > limit:
            return True
        if deepest.get(id(v), 0) >= depth:
            continue
        deepest[id(v)] = depth
        stack.extend((c, depth + 1) for c in children)
    return False


def dump(value: Any, field: str) -> str:
    """``value`` as stored JSON text; a 400 naming ``field`` if it nests too deep to be read back."""
    if too_deep(value):
        raise bad_request(f"{field} {TOO_DEEP}", field=field)
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:  # e.g. an integer beyond 64 bits
        raise bad_request(f"{field} cannot be stored as JSON: {exc}", field=field) from None


NUL = "contains the NUL character (U+0000), which text values may not (PostgreSQL's text cannot hold it)"


def check_no_nul(value: str, field: str) -> None:
    """A 400 naming ``field`` if ``value`` holds U+0000. The same on every store, so that what one backend takes
    the other takes too; inside JSON members a NUL is written as the escape ``\\u0000`` and is fine."""
    if "\x00" in value:
        raise bad_request(f"{field} {NUL}", field=field)


def unreadable(text: str) -> str | None:
    """Why JSON text a client sent could not be read back by the hub (None if it can): orjson refuses some
    texts DuckDB's json_valid takes (NaN, 1e400, a trailing comma)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return NOT_JSON
    return TOO_DEEP if too_deep(value) else None
