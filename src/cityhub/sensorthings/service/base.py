"""What the service's parts share: the collaborators, and the methods one part calls on another."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cityhub import model
from cityhub.bus import EntityOp, EventBus
from cityhub.sensorthings.observed_area import ObservedAreas
from cityhub.store.base import Store
from cityhub.store.transaction import Transaction

if TYPE_CHECKING:
    from cityhub.ingest.observations import DatastreamCatalog
    from cityhub.ingest.pipeline import IngestPipeline
    from cityhub.sensorthings.service.paths import Resource


class _Current(threading.local):
    """The transaction this thread's service calls run in (a ``$batch`` change set, or one call's own), and
    what waits for its commit."""

    tx: Transaction | None = None
    after: list[Callable[[], None]]
    moved: set[int]  # Things whose Locations this transaction changed: each gets a HistoricalLocation


class ServiceBase:
    store: Store
    pipeline: IngestPipeline
    catalog: DatastreamCatalog
    bus: EventBus
    max_top: int
    default_top: int
    max_response_entities: int
    max_future: timedelta
    observed_areas: ObservedAreas

    _current = _Current()

    @contextmanager
    def change_set(self) -> Iterator[Transaction]:
        """Run the service calls made in this block, on this thread, in one transaction (a ``$batch`` change set,
        SensorThings v1.1 §11.2): they commit together or, when one raises, none does."""
        if self._current.tx is not None:
            raise RuntimeError("a change set runs in no other transaction")
        with self._tx() as tx:
            yield tx

    @contextmanager
    def _tx(self) -> Iterator[Transaction]:
        """The transaction of this thread's change set when one runs, else a new one. Events and cache changes
        (``_after_commit``) wait for the commit, and are dropped with a rollback."""
        current = self._current
        if current.tx is not None:
            yield current.tx
            return
        after: list[Callable[[], None]] = []
        with self.store.transaction() as tx:
            current.tx, current.after, current.moved = tx, after, set()
            try:
                yield tx
                self._record_moves(tx, current.moved)
            finally:
                current.tx = None
        for fn in after:
            fn()

    def _record_moves(self, tx: Transaction, moved: set[int]) -> None:
        """One HistoricalLocation per Thing whose Locations changed, however they were linked (deep insert from
        either side, PATCH, $ref, a change set), of the Locations it has at the end (SensorThings §8.2.3)."""
        now = datetime.now(UTC)
        for thing_id in sorted(moved):
            hl = self.store.entities.add_historical_location(tx, thing_id, now)
            self._announce(model.HISTORICAL_LOCATION, hl)
        moved.clear()

    def _moved(self, thing_id: int) -> None:
        if self._current.tx is not None:
            self._current.moved.add(thing_id)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        # Inside a change set reads go through its transaction: they must see what it wrote and not yet committed.
        if self._current.tx is not None:
            return self._current.tx.execute(sql, params)
        return self.store.query(sql, params)

    def _after_commit(self, fn: Callable[[], None]) -> None:
        if self._current.tx is not None:
            self._current.after.append(fn)
        else:
            fn()

    def _announce(
        self, et: model.EntityType, entity_id: int, op: EntityOp = "created", fields: tuple[str, ...] | None = None
    ) -> None:
        # Entity changes go out on the bus (MQTT entity topics); Observations are published by the writer.
        self._after_commit(lambda: self.bus.entity(et.plural, entity_id, op, fields))

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

    def _create_observation_in_tx(self, tx: Transaction, body: dict[str, Any], ds_id: int, field: str) -> int:
        raise NotImplementedError

    def _update_observation(self, tx: Transaction, obs_id: int, body: dict[str, Any], values: dict[str, Any]) -> None:
        raise NotImplementedError
