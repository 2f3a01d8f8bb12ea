"""The core every domain and router shares: settings, store, event bus, ingest pipeline, SensorThings."""

from __future__ import annotations

from dataclasses import dataclass

from cityhub.auth.keys import KeyStore
from cityhub.bus import EventBus
from cityhub.config import Settings
from cityhub.ingest.observations import DatastreamCatalog
from cityhub.ingest.pipeline import IngestPipeline
from cityhub.ingest.writer import ObservationWriter
from cityhub.sensorthings.service import SensorThings
from cityhub.store import open_store
from cityhub.store.base import Store


@dataclass
class Core:
    settings: Settings
    store: Store
    bus: EventBus
    writer: ObservationWriter
    catalog: DatastreamCatalog
    pipeline: IngestPipeline
    sensorthings: SensorThings
    keys: KeyStore


def open_core(settings: Settings, store: Store | None = None) -> Core:
    store = store or open_store(settings)
    bus = EventBus()
    writer = ObservationWriter(
        store,
        bus,
        max_queued_rows=settings.max_queued_rows,
        checkpoint_interval_s=settings.checkpoint_interval_s,
        checkpoint_log_bytes=settings.checkpoint_wal_bytes,
    )
    catalog = DatastreamCatalog(store)

    def features_made(made: list[int]) -> None:
        for feature in made:  # a FeatureOfInterest made for an Observation is a new entity like any other
            bus.entity("FeaturesOfInterest", feature)

    catalog.features_made = features_made
    pipeline = IngestPipeline(store, catalog, writer, max_future=settings.max_future)
    st = SensorThings(
        store,
        pipeline,
        catalog,
        bus,
        max_top=settings.max_top,
        default_top=settings.default_top,
        max_response_entities=settings.max_response_entities,
        max_future=settings.max_future,
    )
    keys = KeyStore(settings.keys_path, settings.keys_check_interval_s)
    return Core(settings, store, bus, writer, catalog, pipeline, st, keys)
