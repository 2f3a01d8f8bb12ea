"""SensorThings semantics over a Store, behind ``/v1.1``; the HTTP layer (:mod:`cityhub.api.sensorthings`) only
maps requests to these calls.

- ``paths``: resource paths and the condition selecting what a path addresses;
- ``serialize``: rows to entity JSON, links, the dataArray format;
- ``validate``: checks of bodies that need no database;
- ``read``: a path with query options, nested ``$expand``;
- ``write``: deep insert, PATCH, ``$ref``, delete (the store's named entity operations);
- ``observations``: Observations through the API, handed to the one ingest pipeline.
"""

from __future__ import annotations

from datetime import timedelta

from cityhub.bus import OBSERVATIONS, EventBus, on_observations
from cityhub.ingest import observations as obsin
from cityhub.ingest.pipeline import IngestPipeline
from cityhub.sensorthings.filter.query import chain_where
from cityhub.sensorthings.observed_area import ObservedAreas
from cityhub.sensorthings.service.observations import ObservationMixin
from cityhub.sensorthings.service.paths import Resource, Step, parse_path
from cityhub.sensorthings.service.read import ReadMixin
from cityhub.sensorthings.service.serialize import row_to_dict, self_link, shape
from cityhub.sensorthings.service.write import WriteMixin
from cityhub.store.base import Store
from cityhub.timefmt import parse_interval, parse_time


class SensorThings(ReadMixin, WriteMixin, ObservationMixin):
    """The service behind ``/v1.1``."""

    def __init__(
        self,
        store: Store,
        pipeline: IngestPipeline,
        catalog: obsin.DatastreamCatalog,
        bus: EventBus,
        *,
        max_top: int = 10_000,
        default_top: int = 100,
        max_response_entities: int = 100_000,
        max_future: timedelta = timedelta(days=1),
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.bus = bus
        self.catalog = catalog
        self.max_top = max_top
        self.default_top = default_top
        self.max_response_entities = max_response_entities
        self.max_future = max_future
        # Each process keeps the observedAreas of what it commits (another process's commits are its own to keep).
        self.observed_areas = ObservedAreas(store)
        bus.subscribe(OBSERVATIONS, on_observations(self.observed_areas.on_commit, remote=False))


__all__ = [
    "Resource",
    "SensorThings",
    "Step",
    "chain_where",
    "parse_interval",
    "parse_path",
    "parse_time",
    "row_to_dict",
    "self_link",
    "shape",
]
