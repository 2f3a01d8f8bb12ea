"""Named look-ups over stored Observations beyond the hot path of :class:`~cityhub.store.base.Store`."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime

import pyarrow as pa


class ObservationOps(abc.ABC):
    @abc.abstractmethod
    def ids_by_key(self, keys: Sequence[tuple[int, datetime]]) -> dict[tuple[int, datetime], int]:
        """The id of the stored Observation of each (Datastream id, phenomenonTime) key; keys with none are
        absent. Reads only the keys asked for, not the Datastreams' history."""

    @abc.abstractmethod
    def rows_by_id(self, ids: Sequence[int]) -> pa.Table:
        """The stored Observations with these ids (schema :data:`~cityhub.store.base.OBSERVATION_BATCH_SCHEMA`,
        ordered by id; ids not stored are absent): how another process's committed batch is read back."""
