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
        return clipped.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(clipped).decode("ascii"), "base64"


def record(store: Store, letters: list[DeadLetter]) -> None:
    """Store dead letters in one transaction (an Arrow append)."""
    if not letters:
        return
    ids = store.allocate_ids("deadletters", len(letters))
    encoded = [_encode(d.payload) for d in letters]
    rows = pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "received_at": pa.array([d.received_at for d in letters], pa.timestamp("us", tz="UTC")),
            "source": pa.array([d.source for d in letters], pa.string()),
            "topic": pa.array([d.topic for d in letters], pa.string()),
            "payload": pa.array([p for p, _ in encoded], pa.string()),
            "payload_encoding": pa.array([e for _, e in encoded], pa.string()),
            "reason": pa.array([d.reason for d in letters], pa.string()),
            "field": pa.array([d.field for d in letters], pa.string()),
        }
    )
    with store.transaction() as tx:
        tx.append_table("deadletters", rows)


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
    where, params = [], []
    if source:
        where.append("source = ?")
        params.append(source)
    if topic:
        where.append("starts_with(topic, ?)")
        params.append(topic)
    if since:
        where.append("received_at >= ?")
        params.append(since)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    (total,) = store.query(f"SELECT count(*) FROM deadletters {clause}", params)[0]
    rows = store.query(
        "SELECT id, received_at, source, topic, payload, payload_encoding, reason, field "
        f"FROM deadletters {clause} ORDER BY id DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    keys = ("id", "receivedAt", "source", "topic", "payload", "payloadEncoding", "reason", "field")
    items = []
    for r in rows:
        item = dict(zip(keys, r, strict=True))
        item["receivedAt"] = iso_time(r[1])
        items.append(item)
    return {"count": int(total), "value": items}


def delete(store: Store, ids: list[int] | None = None, *, before: datetime | None = None) -> int:
    """Delete dead letters by id, or all received before a time; returns how many were deleted."""
    with store.transaction() as tx:
        if ids is not None:
            if not ids:
                return 0
            marks = ", ".join("?" for _ in ids)
            (n,) = tx.execute(f"SELECT count(*) FROM deadletters WHERE id IN ({marks})", ids)[0]
            tx.execute(f"DELETE FROM deadletters WHERE id IN ({marks})", ids)
            return int(n)
        params: list[Any] = [before] if before else []
        clause = "WHERE received_at < ?" if before else ""
        (n,) = tx.execute(f"SELECT count(*) FROM deadletters {clause}", params)[0]
        tx.execute(f"DELETE FROM deadletters {clause}", params)
        return int(n)
