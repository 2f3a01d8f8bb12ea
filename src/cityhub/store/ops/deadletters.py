"""Named operations on the dead-letter aggregate: messages the hub received but could not store.

Letters are written as Arrow tables (:data:`DEADLETTER_SCHEMA`, no ``id``: the store allocates them, since nothing
else refers to a letter before it is written) and read back as :class:`StoredDeadLetter` rows, newest first.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa

# The columns of table ``deadletters`` less ``id``, in this order.
DEADLETTER_SCHEMA = pa.schema(
    [
        ("received_at", pa.timestamp("us", tz="UTC")),
        ("source", pa.string()),
        ("topic", pa.string()),
        ("payload", pa.string()),
        ("payload_encoding", pa.string()),
        ("reason", pa.string()),
        ("field", pa.string()),
    ]
)


@dataclass(frozen=True)
class StoredDeadLetter:
    id: int
    received_at: datetime
    source: str
    topic: str | None
    payload: str | None
    payload_encoding: str
    reason: str
    field: str | None


@dataclass(frozen=True)
class DeadLetterPage:
    total: int  # letters matching the filters, whatever the page
    items: list[StoredDeadLetter]


class DeadLetterOps(abc.ABC):
    @abc.abstractmethod
    def record(self, rows: pa.Table) -> np.ndarray:
        """Store letters (schema :data:`DEADLETTER_SCHEMA`) in one transaction; returns their new ids."""

    @abc.abstractmethod
    def page(
        self,
        *,
        source: str | None = None,
        topic_prefix: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> DeadLetterPage:
        """Letters matching every filter given (``since`` inclusive), newest (highest id) first."""

    @abc.abstractmethod
    def delete(self, ids: Sequence[int]) -> int:
        """Delete these letters; returns how many existed."""

    @abc.abstractmethod
    def delete_before(self, before: datetime | None) -> int:
        """Delete the letters received before ``before`` (all of them for None); returns how many."""
