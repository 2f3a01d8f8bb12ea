"""Named operations for exports in CityHub's long format (one row per Observation, with its model's names)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime

import pyarrow as pa


class ExportOps(abc.ABC):
    @abc.abstractmethod
    def observations(
        self,
        *,
        datastreams: Sequence[int] = (),
        things: Sequence[int] = (),
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int,
    ) -> pa.Table:
        """Observations of these Datastreams and Things (empty: no restriction) with phenomenonTime in
        [start, end), ordered by Datastream id and time, at most ``limit``. Columns: thing_id, thing,
        datastream, observed_property, uom (unitOfMeasurement JSON text), time, result (numbers),
        result_text (other results)."""
