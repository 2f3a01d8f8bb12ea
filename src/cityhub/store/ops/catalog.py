"""Named operations on the model catalogue: the facts about Datastreams, Things and their Locations that ingest,
the extensions and the simulator look up by id or name, and the default FeatureOfInterest of a Datastream
(SensorThings §8.2.7), found or made from its Thing's first Location.

"First" and "lowest id" pick one deterministically where the model allows several (two Datastreams with one
name, a Thing with two Locations): the oldest entity, which is the one clients saw first.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from cityhub.store.transaction import Transaction


@dataclass(frozen=True)
class DatastreamInfo:
    """What validating an Observation needs to know about its Datastream."""

    id: int
    observation_type: str
    unit_symbol: str | None
    thing_id: int
    # A MultiDatastream's number of values per result (one per unitOfMeasurements entry); None for a Datastream.
    components: int | None = None


def unit_symbol(unit_of_measurement: str | None) -> str | None:
    """The ``symbol`` of a stored unitOfMeasurement (JSON text); None when absent or not parseable, since a bad
    stored unit must not stop ingest for the whole catalogue."""
    try:
        uom = orjson.loads(unit_of_measurement) if unit_of_measurement else {}
    except orjson.JSONDecodeError:
        return None
    symbol = uom.get("symbol") if isinstance(uom, dict) else None
    return symbol if isinstance(symbol, str) else None


def components(unit_of_measurements: str | None) -> int:
    """How many values a MultiDatastream's result holds: the length of its stored unitOfMeasurements."""
    try:
        units = orjson.loads(unit_of_measurements) if unit_of_measurements else []
    except orjson.JSONDecodeError:
        return 0
    return len(units) if isinstance(units, list) else 0


class CatalogOps(abc.ABC):
    # -- Datastreams --------------------------------------------------------------------------------------
    @abc.abstractmethod
    def datastream_infos(self) -> list[DatastreamInfo]:
        """Every Datastream and MultiDatastream (one id space: schema.ID_SPACE), by id."""

    @abc.abstractmethod
    def datastream_ids(self, *, thing: int | None = None, observed_property: int | None = None) -> list[int]:
        """Ids (ascending) of the Datastreams of a Thing, of an ObservedProperty, of both, or all of them."""

    @abc.abstractmethod
    def datastream_ids_by_name(self, thing: int | None = None) -> dict[str, int]:
        """Name → lowest id of the Datastreams (of one Thing, or all)."""

    # -- Things, Sensors, ObservedProperties ----------------------------------------------------------------
    @abc.abstractmethod
    def thing_ids_by_name(self) -> dict[str, int]:
        """Name → lowest id of every Thing."""

    @abc.abstractmethod
    def sensor_id(self, name: str) -> int | None:
        """The lowest id of a Sensor with this name."""

    @abc.abstractmethod
    def observed_property_id(self, name: str, definition: str | None = None) -> int | None:
        """The lowest id of an ObservedProperty with this name (and this definition, when given)."""

    @abc.abstractmethod
    def first_locations(self, thing_ids: Sequence[int] | None = None) -> dict[int, str | None]:
        """Thing id → GeoJSON text of its first (lowest id) Location, for these Things (None: all); Things
        without a Location are absent."""

    # -- FeaturesOfInterest ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def existing_features(self, ids: Sequence[int]) -> set[int]:
        """Those of ``ids`` that are FeaturesOfInterest."""

    @abc.abstractmethod
    def location_features_in(
        self, tx: Transaction, datastream_ids: Sequence[int], made: list[int] | None = None
    ) -> dict[int, int | None]:
        """Datastream id → the FeatureOfInterest made from its Thing's first Location, created (with
        ``from_location_id``) when there is none yet, within ``tx`` (a deep insert's); None for a Datastream
        whose Thing has no Location or that does not exist. The features created are added to ``made`` (they are
        announced like any new entity)."""

    @abc.abstractmethod
    def location_features(self, datastream_ids: Sequence[int], made: list[int] | None = None) -> dict[int, int | None]:
        """:meth:`location_features_in` in a transaction of its own: serialised, so that two requests cannot
        create the same feature twice."""
