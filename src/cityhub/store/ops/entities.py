"""Named writes of the SensorThings entity model: links, updates, cascading deletes, Observation edits.

Table and column names come from :mod:`cityhub.model` (the entity model describes the schema);
what the SQL does with them is the backend's. Every operation runs inside a transaction the caller holds, so a
deep insert or a PATCH touching several tables commits or rolls back as one.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cityhub.store.transaction import Transaction

# What deleting an entity takes with it, beyond its own row (SensorThings §10.4: integrity of the model).
LINKS_OF = {
    "Things": [("thing_locations", "thing_id")],
    "Locations": [("thing_locations", "location_id"), ("historical_location_locations", "location_id")],
    "HistoricalLocations": [("historical_location_locations", "historical_location_id")],
    "MultiDatastreams": [("multi_datastream_observed_properties", "multi_datastream_id")],
    "ObservedProperties": [("multi_datastream_observed_properties", "observed_property_id")],
}
TABLE_OF = {
    "Things": "things",
    "Locations": "locations",
    "HistoricalLocations": "historical_locations",
    "Datastreams": "datastreams",
    "MultiDatastreams": "multi_datastreams",
    "Sensors": "sensors",
    "ObservedProperties": "observed_properties",
    "Observations": "observations",
    "FeaturesOfInterest": "features_of_interest",
    "Actuators": "actuators",
    "TaskingCapabilities": "tasking_capabilities",
    "Tasks": "tasks",
}


class EntityOps(abc.ABC):
    @abc.abstractmethod
    def exists(self, tx: Transaction, table: str, entity_id: int) -> bool: ...

    @abc.abstractmethod
    def columns_of(self, table: str, entity_id: int, columns: Sequence[str]) -> tuple[Any, ...] | None:
        """Some columns of one committed row (the foreign keys of an entity, for its parents' MQTT topics)."""

    @abc.abstractmethod
    def update(self, tx: Transaction, table: str, entity_id: int, values: dict[str, Any]) -> None:
        """Set columns of one row."""

    @abc.abstractmethod
    def link(
        self,
        tx: Transaction,
        link_table: str,
        this_col: str,
        other_col: str,
        this_id: int,
        other_id: int,
        rank: tuple[str, str] | None = None,
    ) -> None:
        """Add a many-to-many link (a no-op when it exists). With ``rank`` (position column, owner column; see
        ``model.Nav.rank``) the link is appended after the owner's others, even when it exists already."""

    @abc.abstractmethod
    def ranked_links(
        self, tx: Transaction, link_table: str, owner_col: str, other_col: str, rank_col: str, owner_id: int
    ) -> list[int]:
        """The entities one owner links to, in the order of the position column, as this transaction sees them."""

    @abc.abstractmethod
    def columns_in_tx(
        self, tx: Transaction, table: str, entity_id: int, columns: Sequence[str]
    ) -> tuple[Any, ...] | None:
        """Some columns of one row as this transaction sees it."""

    @abc.abstractmethod
    def unlink(
        self,
        tx: Transaction,
        link_table: str,
        this_col: str,
        this_id: int,
        other_col: str | None = None,
        other_id: int | None = None,
    ) -> None:
        """Remove one link, or every link of ``this_id`` when no other side is named."""  # fmt: skip

    @abc.abstractmethod
    def add_historical_location(self, tx: Transaction, thing_id: int, time: datetime) -> int:
        """A new HistoricalLocation of the Thing's current Locations (SensorThings §8.2.3); its id."""

    @abc.abstractmethod
    def adopt_historical_location(self, tx: Transaction, hl_id: int) -> int | None:
        """If HistoricalLocation ``hl_id`` is its Thing's latest (no other one is later), make its Locations the
        Thing's current Locations (SensorThings §8.2.3: a posted HistoricalLocation moves the Thing) and return
        the Thing's id; else None."""

    @abc.abstractmethod
    def delete(self, tx: Transaction, entity_set: str, entity_id: int) -> None:
        """Delete an entity with what SensorThings deletes with it (a Thing's Datastreams and
        HistoricalLocations, a Datastream's Observations, …), keeping the roll-ups right."""

    @abc.abstractmethod
    def datastream_in_tx(self, tx: Transaction, ds_id: int) -> tuple[str, str | None, int] | None:
        """(observationType, unitOfMeasurement JSON, Thing id) of a Datastream, or (OM_ComplexObservation,
        unitOfMeasurements JSON, Thing id) of a MultiDatastream, as this transaction sees it (deep insert)."""

    @abc.abstractmethod
    def observation_key(self, tx: Transaction, obs_id: int) -> tuple[int, datetime] | None:
        """(Datastream id, phenomenonTime) of an Observation."""

    @abc.abstractmethod
    def observation_like(self, tx: Transaction, obs_id: int, values: dict[str, Any]) -> int | None:
        """The id of another Observation whose duplicate key (``schema.DUPLICATE_KEY``) is the one Observation
        ``obs_id`` would have with ``values`` (stored columns) changed; None if there is none."""

    @abc.abstractmethod
    def update_observation(self, tx: Transaction, obs_id: int, values: dict[str, Any]) -> None:
        """Change an Observation's columns (its phenomenonTime included) and refresh the roll-ups of the hours
        it left and entered."""
