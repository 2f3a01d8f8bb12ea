"""Named operations for the air-quality layer: the Datastreams it classifies into stations, and the derived
VN_AQI entities it finds or creates.

What makes a Datastream a pollutant stream (names, units) is the air-quality package's business, not the store's:
the store hands over every Datastream with the facts needed to decide, and creates the entities it is given.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StationStream:
    """A Datastream with its Thing's name and its ObservedProperty (JSON members as stored text)."""

    datastream_id: int
    thing_id: int
    thing_name: str
    property_name: str
    property_definition: str
    unit_of_measurement: str | None
    properties: str | None


@dataclass
class DerivedEntities:
    observed_property_id: int
    sensor_id: int
    datastream_ids: list[int]  # one per Datastream asked for, in that order
    created: list[tuple[str, int]] = field(default_factory=list)  # (entity set, id) of each new entity


class AirQualityOps(abc.ABC):
    @abc.abstractmethod
    def station_streams(self) -> list[StationStream]:
        """Every Datastream, by id."""

    @abc.abstractmethod
    def ensure_derived(
        self,
        observed_property: Mapping[str, Any],
        sensor: Mapping[str, Any],
        datastreams: Sequence[Mapping[str, Any]],
    ) -> DerivedEntities:
        """In one transaction: find the ObservedProperty by its ``definition`` and the Sensor by its ``name``,
        creating those missing from the columns given, then create ``datastreams`` (columns less
        ``sensor_id`` and ``observed_property_id``, which are filled in)."""
