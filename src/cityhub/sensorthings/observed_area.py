"""Each Datastream's observedArea, kept as its Observations are committed (SensorThings §8.2.4).

The area is the convex hull of the geometries of the FeaturesOfInterest the Datastream's Observations have had
(store/ops/geo.py says why a hull). A commit adds (Datastream, FeatureOfInterest) pairs; almost always they are
pairs seen before (a station reports on its one feature), so each process remembers the pairs it recorded and
goes to the store only with a new one: a fixed station costs one set look-up per commit, a mobile sensor one
upsert of its new pairs. Run on the bus before the commit's requests are answered (the writer publishes first),
so a client that POSTed an Observation reads its Datastream's new area at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cityhub.store.base import Store

log = logging.getLogger(__name__)

MAX_KNOWN = 1_000_000  # pairs remembered per process; past it the memory starts again (the store still knows)


class ObservedAreas:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._known: set[tuple[int, int]] = set()
        self._lock = threading.Lock()

    def on_commit(self, batch: pa.Table) -> None:
        """Bus handler for committed Observations (this process's own)."""
        foi = batch.column("feature_of_interest_id")
        ds = batch.column("datastream_id")
        if foi.null_count:
            keep = pc.is_valid(foi)
            foi, ds = pc.filter(foi, keep), pc.filter(ds, keep)
        if not len(foi):
            return
        a, b = ds.to_numpy(), foi.to_numpy()
        if (a == a[0]).all() and (b == b[0]).all():  # one station's commit: one pair
            self.add([(int(a[0]), int(b[0]))])
        else:
            self.add(map(tuple, np.unique(np.column_stack((a, b)), axis=0).tolist()))

    def add(self, pairs: Iterable[tuple[int, int]]) -> None:
        with self._lock:
            new = [p for p in pairs if p not in self._known]
        if not new:
            return
        self.store.geo.extend_observed_areas(new)
        with self._lock:
            if len(self._known) + len(new) > MAX_KNOWN:
                self._known.clear()
            self._known.update(new)
