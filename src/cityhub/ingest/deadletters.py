"""The dead-letter table: every message the hub received but could not store, with the reason.

A device that sends garbage must not lose the good readings around it, and an operator must be able to see
what was refused and why (``GET /api/v1/deadletters``, ``cityhub deadletters``).
"""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from cityhub.store.base import Store
from cityhub.store.ops.deadletters import DEADLETTER_SCHEMA
from cityhub.timefmt import iso_time

MAX_PAYLOAD_BYTES = 64 * 1024  # a dead letter keeps enough of a payload to diagnose it, not a whole dump


@dataclasses.dataclass
class DeadLetter:
    source: str  # "mqtt", ...
    topic: str | None
    payload: bytes
    reason: str
    field: str | None = None
    received_at: datetime = dataclasses.field(default_factory=lambda: datetime.now(UTC))


def _encode(payload: bytes) -> tuple[str, str]:
    clipped = payload[:MAX_PAYLOAD_BYTES]
    try:
        text = clipped.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(clipped).decode("ascii"), "base64"
    if "\x00" in text:  # valid UTF-8, but PostgreSQL's text cannot hold a NUL: kept exactly, as base64
        return base64.b64encode(clipped).decode("ascii"), "base64"
    return text, "utf-8"


def record(store: Store, letters: list[DeadLetter]) -> None:
    """Store dead letters in one transaction."""
    if not letters:
        return
    encoded = [_encode(d.payload) for d in letters]
    store.deadletters.record(
        pa.table(
            {
                "received_at": pa.array([d.received_at for d in letters], pa.timestamp("us", tz="UTC")),
                "source": pa.array([d.source for d in letters], pa.string()),
                "topic": pa.array([d.topic for d in letters], pa.string()),
                "payload": pa.array([p for p, _ in encoded], pa.string()),
                "payload_encoding": pa.array([e for _, e in encoded], pa.string()),
                "reason": pa.array([d.reason for d in letters], pa.string()),
                "field": pa.array([d.field for d in letters], pa.string()),
            },
            schema=DEADLETTER_SCHEMA,
        )
    )


def query(
    store: Store,
    *,
    source: str | None = None,
    topic: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    """Newest first; ``topic`` matches a prefix."""
    page = store.deadletters.page(source=source, topic_prefix=topic, since=since, limit=limit, offset=offset)
    items = [
        {
            "id": d.id,
            "receivedAt": iso_time(d.received_at),
            "source": d.source,
            "topic": d.topic,
            "payload": d.payload,
            "payloadEncoding": d.payload_encoding,
            "reason": d.reason,
            "field": d.field,
        }
        for d in page.items
    ]
    return {"count": page.total, "value": items}


def delete(store: Store, ids: list[int] | None = None, *, before: datetime | None = None) -> int:
    """Delete dead letters by id, or all received before a time; returns how many were deleted."""
    if ids is not None:
        return store.deadletters.delete(ids)
    return store.deadletters.delete_before(before)
