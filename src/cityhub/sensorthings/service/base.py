"""What the service's parts share: the collaborators, and the methods one part calls on another."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cityhub import model
from cityhub.bus import EntityOp, EventBus
from cityhub.store.base import Store
from cityhub.store.transaction import Transaction

if TYPE_CHECKING:
    from cityhub.ingest.observations import DatastreamCatalog
    from cityhub.ingest.pipeline import IngestPipeline
    from cityhub.sensorthings.service.paths import Resource


class ServiceBase:
    store: Store
    pipeline: IngestPipeline
    catalog: DatastreamCatalog
    bus: EventBus
    max_top: int
    default_top: int
    max_response_entities: int
    max_future: timedelta

    def _announce(self, et: model.EntityType, entity_id: int, op: EntityOp = "created") -> None:
        # Entity changes go out on the bus (MQTT entity topics); Observations are published by the writer.
        self.bus.entity(et.plural, entity_id, op)

    # Implemented by the read, write and observation parts (see SensorThings' bases).
    def _fetch(self, base: str, et: model.EntityType, entity_id: int) -> dict[str, Any]:
        raise NotImplementedError

    def _resolve_id(self, res: Resource) -> int:
        raise NotImplementedError

    def _check_parents_exist(self, res: Resource) -> None:
        raise NotImplementedError

    def _create(
        self, tx: Transaction, et: model.EntityType, body: dict[str, Any], where: str,
        parent: tuple[model.EntityType, model.Nav, Any] | None,
    ) -> int:  # fmt: skip
        raise NotImplementedError

    async def create_observation(
        self, body: dict[str, Any], ds_id: int | None, base: str, *, device_thing: int | None = None
    ) -> dict[str, Any]:
        raise NotImplementedError

    def _create_observation_in_tx(self, tx: Transaction, body: dict[str, Any], ds_id: int, field: str) -> None:
        raise NotImplementedError

    def _update_observation(self, tx: Transaction, obs_id: int, body: dict[str, Any], values: dict[str, Any]) -> None:
        raise NotImplementedError
