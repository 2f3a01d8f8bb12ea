"""Things for map clients (``GET /api/v1/geo/things``): each Thing's first Location and its Datastreams."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any


class GeoOps(abc.ABC):
    @abc.abstractmethod
    def things(
        self, kind_hints: Sequence[str], observed_properties: Sequence[str]
    ) -> tuple[list[tuple[int, str, str | None, str | None]], list[tuple[Any, ...]]]:
        """(Things, Datastreams): Things as (id, name, properties JSON text, first Location JSON text) and their
        Datastreams as (id, thing id, name, unitOfMeasurement JSON text, ObservedProperty name, definition),
        both ordered by id. ``kind_hints`` keeps Things whose properties text contains one of them (a cheap
        pre-filter: the caller tests ``properties.kind`` exactly); ``observed_properties`` keeps Things with a
        Datastream whose ObservedProperty definition or name is one of them."""
