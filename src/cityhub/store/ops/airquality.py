"""Named operations for the air-quality layer: the Datastreams it classifies into stations, and the derived
VN_AQI entities it finds or creates.

What makes a Datastream a pollutant stream (names, units) is the air-quality package's business, not the store's:
the store hands over every Datastream with the facts needed to decide, and creates the entities it is given.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa


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


@dataclass(frozen=True)
class HourRange:
    """UTC hours [start, end) of one Datastream (both on the hour)."""

    datastream_id: int
    start: datetime
    end: datetime


def merge_ranges(ranges: Sequence[HourRange]) -> list[tuple[int, int, int]]:
    """The ranges as (Datastream, first second, end second) in epoch seconds, overlapping or touching ranges of a
    Datastream merged: each stored hour then matches one range, so none is read twice."""
    keyed = sorted(
        (r.datastream_id, int(r.start.timestamp()), int(r.end.timestamp())) for r in ranges if r.end > r.start
    )
    out: list[tuple[int, int, int]] = []
    for ds, lo, hi in keyed:
        if out and out[-1][0] == ds and lo <= out[-1][2]:
            if hi > out[-1][2]:
                out[-1] = (ds, out[-1][1], hi)
        else:
            out.append((ds, lo, hi))
    return out


HOURLY_MEANS_SCHEMA = pa.schema(
    [("datastream_id", pa.int64()), ("time", pa.timestamp("us", tz="UTC")), ("value", pa.float64())]
)


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
    def hourly_means(self, ranges: Sequence[HourRange]) -> pa.Table:
        """The stored hourly means (of numeric results) of each Datastream over its own ranges, read in one go
        however many Datastreams: the live index recomputes many stations' differing windows at once. Ranges of a
        Datastream may overlap (each hour comes once). Columns as ``HOURLY_MEANS_SCHEMA``: datastream_id, time
        (hour start, UTC), value; ordered by datastream_id, time; hours without numeric results are absent."""

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
