"""The store contract: what every backend must do, run against each one (``tests/store_backends.py``).

Observations here; each aggregate's named operations in ``test_store_contract_<aggregate>.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from cityhub.store.base import OBSERVATION_BATCH_SCHEMA, Store
from tests.store_backends import store  # noqa: F401 - the fixture

T0 = datetime(2026, 1, 15, tzinfo=UTC)


def make_model(store: Store) -> int:  # noqa: F811
    with store.transaction() as tx:
        thing = tx.insert("things", {"name": "t", "description": "d"})
        sensor = tx.insert("sensors", {"name": "s", "description": "d", "encoding_type": "text/html", "metadata": "m"})
        prop = tx.insert("observed_properties", {"name": "p", "definition": "d", "description": "d"})
        return tx.insert(
            "datastreams",
            {
                "name": "ds",
                "description": "d",
                "unit_of_measurement": '{"symbol": "x"}',
                "thing_id": thing,
                "observation_type": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
                "sensor_id": sensor,
                "observed_property_id": prop,
            },
        )


def rows(store: Store, ds: int, minutes: list[int], values: list[float]) -> pa.Table:  # noqa: F811
    ids = store.allocate_ids("observations", len(minutes))
    return pa.Table.from_pylist(
        [
            {"id": int(i), "datastream_id": ds, "phenomenon_time": T0 + timedelta(minutes=m), "result_number": v}
            for i, m, v in zip(ids, minutes, values, strict=True)
        ],
        schema=OBSERVATION_BATCH_SCHEMA,
    )


def test_append_skips_duplicates_and_reports_conflicts(store: Store) -> None:  # noqa: F811
    ds = make_model(store)
    first = rows(store, ds, [0, 1, 2], [1.0, 2.0, 3.0])
    res = store.append_batch(first, lambda r: None)
    assert sorted(res.inserted.tolist()) == first.column("id").to_pylist()
    again = rows(store, ds, [1, 2, 3], [2.0, 9.0, 4.0])  # same, conflicting, new
    ids = again.column("id").to_pylist()
    res = store.append_batch(again, lambda r: None)
    assert res.inserted.tolist() == [ids[2]]
    assert set(res.duplicate_of) == {ids[0], ids[1]} and res.conflicting == {ids[1]}
    store.flush_derived()
    latest = store.latest([ds]).to_pylist()[0]
    assert latest["result_number"] == 4.0 and latest["count"] == 4


def keyed(store: Store, ds: int, specs: list[tuple[int, int | None, str | None, float]]) -> pa.Table:  # noqa: F811
    """Rows at one minute each: (minute, resultTime in minutes or None, parameters JSON text or None, result)."""
    ids = store.allocate_ids("observations", len(specs))
    return pa.Table.from_pylist(
        [
            {"id": int(i), "datastream_id": ds, "phenomenon_time": T0 + timedelta(minutes=m),
             "result_time": None if rt is None else T0 + timedelta(minutes=rt), "parameters": params,
             "result_number": v}
            for i, (m, rt, params, v) in zip(ids, specs, strict=True)
        ],
        schema=OBSERVATION_BATCH_SCHEMA,
    )  # fmt: skip


def test_duplicate_key_is_time_result_time_feature_and_parameters(store: Store) -> None:  # noqa: F811
    """Observations of one Datastream and phenomenonTime that differ in resultTime, FeatureOfInterest or parameters
    are all kept (issue 13, point 2); an identical re-send stores once; one differing only in its result is a
    conflict. Through both append paths (a transaction's, and the bulk writer's optimistic one)."""
    ds = make_model(store)
    first = keyed(store, ds, [(0, None, None, 1.0), (0, 5, None, 2.0), (0, 10, None, 3.0), (0, None, '{"run":1}', 4.0),
                              (0, None, '{"run":2}', 5.0), (0, 5, None, 2.0), (1, None, None, 6.0)])  # fmt: skip
    ids = first.column("id").to_pylist()
    res = store.append_batch(first, lambda r: None)
    assert sorted(res.inserted.tolist()) == ids[:5] + ids[6:]
    assert res.duplicate_of == {ids[5]: ids[1]} and res.conflicting == set()  # the same row twice in one batch
    with store.transaction() as tx:
        again = keyed(store, ds, [(0, 5, None, 2.0), (0, 10, None, 9.0), (0, None, '{"run":2}', 5.0),
                                  (0, 20, None, 7.0), (0, None, '{"run":3}', 8.0)])  # fmt: skip
        agains = again.column("id").to_pylist()
        res = store.append_observations(tx, again)
    assert sorted(res.inserted.tolist()) == agains[3:]
    assert res.duplicate_of == {agains[0]: ids[1], agains[1]: ids[2], agains[2]: ids[4]}
    assert res.conflicting == {agains[1]}  # same key, another result
    at_zero = [r for r in store.query("SELECT result_number, variant FROM observations") if r[0] != 6.0]
    assert sorted(r[0] for r in at_zero) == [1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 8.0]
    assert sorted(r[1] for r in at_zero) == list(range(7))  # one variant each
    store.flush_derived()
    agg = store.aggregate([ds], "sum", "hour", None, None, 0).to_pylist()
    assert [(a["value"], a["count"]) for a in agg] == [(36.0, 8)]


def test_replace_updates_in_place_and_keeps_roll_ups_right(store: Store) -> None:  # noqa: F811
    ds = make_model(store)
    store.append_batch(rows(store, ds, [0, 60], [10.0, 20.0]), lambda r: None)
    stored = {r[0]: r[1] for r in store.query("SELECT phenomenon_time, id FROM observations")}
    new = rows(store, ds, [60, 120], [25.0, 30.0])  # one replaces, one is new
    res = store.replace_batch(new)
    new_ids = new.column("id").to_pylist()
    assert res.replaced == {new_ids[0]: stored[T0 + timedelta(minutes=60)]}
    assert res.inserted.tolist() == [new_ids[1]]
    by_time = {r[0]: (r[1], r[2]) for r in store.query("SELECT phenomenon_time, id, result_number FROM observations")}
    assert by_time[T0 + timedelta(minutes=60)] == (stored[T0 + timedelta(minutes=60)], 25.0)
    assert len(by_time) == 3
    agg = store.aggregate([ds], "sum", "hour", None, None, 0).to_pylist()
    assert [(a["value"], a["count"]) for a in agg] == [(10.0, 1), (25.0, 1), (30.0, 1)]
    latest = store.latest([ds]).to_pylist()[0]
    assert latest["result_number"] == 30.0 and latest["count"] == 3


def test_ids_are_unique_across_threads(store: Store) -> None:  # noqa: F811
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        blocks = list(pool.map(lambda _: store.allocate_ids("observations", 100), range(16)))
    ids = np.concatenate(blocks)
    assert len(np.unique(ids)) == ids.size == 1600


def test_geo_things_with_first_location_and_filters(store: Store) -> None:  # noqa: F811
    ds = make_model(store)
    with store.transaction() as tx:
        loc = tx.insert(
            "locations",
            {"name": "l", "description": "d", "encoding_type": "application/geo+json",
             "location": '{"type": "Point", "coordinates": [105.8, 21.0]}'},
        )  # fmt: skip
        store.entities.link(tx, "thing_locations", "thing_id", "location_id", 1, loc)
        store.entities.update(tx, "things", 1, {"properties": '{"kind": "water gauge"}'})
        tx.insert("things", {"name": "other", "description": "d"})
    things, streams = store.geo.things([], [])
    assert [(t[0], t[1]) for t in things] == [(1, "t"), (2, "other")]
    assert things[0][3] is not None and "105.8" in things[0][3] and things[1][3] is None
    assert [(s[0], s[1], s[4]) for s in streams] == [(ds, 1, "p")]
    assert [t[0] for t in store.geo.things(["water gauge"], [])[0]] == [1]
    assert [t[0] for t in store.geo.things([], ["d"])[0]] == [1]  # by ObservedProperty definition
    assert store.geo.things([], ["nothing"]) == ([], [])
