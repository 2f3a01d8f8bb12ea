"""The DuckDB store below the API: deferred roll-ups survive a crash, duplicates take the careful path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from cityhub.store.base import OBSERVATION_BATCH_SCHEMA
from cityhub.store.duckdb import DuckDBStore

pytestmark = pytest.mark.duckdb_only


def make_store(path: Path) -> DuckDBStore:
    store = DuckDBStore(path)
    with store.transaction() as tx:
        thing = tx.insert("things", {"name": "t", "description": "d"})
        sensor = tx.insert("sensors", {"name": "s", "description": "d", "encoding_type": "text/html", "metadata": "m"})
        prop = tx.insert("observed_properties", {"name": "p", "definition": "d", "description": "d"})
        for _ in range(2):
            tx.insert(
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
    return store


def batch(store: DuckDBStore, minutes: range, ds: int = 1, value: float = 1.0) -> pa.Table:
    n = len(minutes)
    ids = store.allocate_ids("observations", n)
    times = pa.array([1_767_225_600_000_000 + m * 60_000_000 for m in minutes], pa.timestamp("us", tz="UTC"))
    cols = {
        "id": pa.array(ids),
        "datastream_id": pa.array([ds] * n, pa.int64()),
        "phenomenon_time": times,
        "result_number": pa.array(np.full(n, value)),
    }
    return pa.table({f.name: cols.get(f.name, pa.nulls(n, f.type)) for f in OBSERVATION_BATCH_SCHEMA})


def test_deferred_rollups_are_recovered_after_a_crash(tmp_path: Path) -> None:
    store = make_store(tmp_path / "db.duckdb")
    store.append_batch(batch(store, range(0, 120)), lambda r: None)
    store.append_batch(batch(store, range(120, 180), value=3.0), lambda r: None)
    assert store.pending_derived() == 180
    store._con.close()  # a crash: no flush, no checkpoint

    store = DuckDBStore(tmp_path / "db.duckdb")
    latest = store.latest([1]).to_pylist()[0]
    assert latest["count"] == 180
    assert latest["result_number"] == 3.0
    hours = store.aggregate([1], "avg", "hour", None, None, 420).to_pylist()
    assert [(h["value"], h["count"]) for h in hours] == [(1.0, 60), (1.0, 60), (3.0, 60)]
    store.close()


def test_duplicate_in_a_batch_falls_back_and_reports(tmp_path: Path) -> None:
    store = make_store(tmp_path / "db.duckdb")
    first = batch(store, range(0, 10))
    store.append_batch(first, lambda r: None)
    again = pa.concat_tables([batch(store, range(5, 15)), batch(store, range(14, 16), value=2.0)])
    result = store.append_batch(again, lambda r: None)
    assert result.inserted.size == 5 + 1  # minutes 10..14 and 15
    assert len(result.duplicate_of) == 5 + 1  # minutes 5..9 repeat stored rows, 14 repeats the same batch
    assert len(result.conflicting) == 1  # minute 14 with another result
    assert store.latest([1]).to_pylist()[0]["count"] == 16
    store.close()


def test_the_log_can_be_checkpointed_after_roll_ups_are_updated(tmp_path: Path) -> None:
    """A CHECKPOINT fails while any connection holds a read whose result it has not fetched in full, once a later
    commit has updated rows (the roll-ups' upserts do, from the second flush on): the store's start-up read its
    ids with fetchone on the main connection, so the log was checkpointed once or twice and then never again."""

    def append_flush_checkpoint(store: DuckDBStore, first: int) -> None:
        for k in range(3):
            store.append_batch(batch(store, range(first + 100 * k, first + 100 * (k + 1))), lambda r: None)
            store.flush_derived()  # from the second on, an upsert that updates the Datastream's latest value
            assert store.log_bytes() > 0
            store.checkpoint()
            assert store.log_bytes() == 0

    store = make_store(tmp_path / "db.duckdb")
    append_flush_checkpoint(store, 0)
    store.append_batch(batch(store, range(300, 400)), lambda r: None)
    store._con.close()  # a crash with roll-ups pending: the next start recovers them on the main connection
    store = DuckDBStore(tmp_path / "db.duckdb")
    append_flush_checkpoint(store, 400)
    assert store.latest([1]).to_pylist()[0]["count"] == 700
    store.close()


def test_close_releases_the_file_even_when_folding_the_roll_ups_fails(tmp_path: Path) -> None:
    """Issue 11: after a 19 M-row ingest `store.close()` raised and the file was still locked when the hub restarted.
    The connection is now closed whatever happens before it."""
    path = tmp_path / "x.duckdb"
    store = DuckDBStore(path)

    def fail() -> None:
        raise RuntimeError("out of memory while folding")

    store.flush_derived = fail  # type: ignore[method-assign]
    store.close()
    again = DuckDBStore(path)  # the same file opens at once
    again.close()


def test_a_file_from_before_the_variant_key_is_upgraded_in_place(tmp_path: Path) -> None:
    """A file made when the duplicate key was (Datastream, phenomenonTime) opens with the new key: its rows kept,
    each variant 0, and a second Observation at one time (another resultTime) stored beside the first."""
    import duckdb

    path = tmp_path / "old.duckdb"
    make_store(path).close()
    con = duckdb.connect(str(path))
    con.execute("DROP TABLE observations")
    con.execute(
        """CREATE TABLE observations (id BIGINT NOT NULL, datastream_id BIGINT NOT NULL,
           phenomenon_time TIMESTAMPTZ NOT NULL, phenomenon_time_end TIMESTAMPTZ, result_time TIMESTAMPTZ,
           result_number DOUBLE PRECISION, result_string VARCHAR, result_json VARCHAR, result_quality JSON,
           valid_time_start TIMESTAMPTZ, valid_time_end TIMESTAMPTZ, parameters JSON, feature_of_interest_id BIGINT,
           PRIMARY KEY (datastream_id, phenomenon_time))"""
    )
    con.execute("INSERT INTO observations (id, datastream_id, phenomenon_time, result_number) "
                "VALUES (1, 1, '2026-01-01 00:00:00+00', 7.5)")  # fmt: skip
    con.close()
    store = DuckDBStore(path)
    assert store.query("SELECT id, result_number, variant FROM observations") == [(1, 7.5, 0)]
    row = batch(store, range(1), value=8.0).to_pylist()[0]
    row["result_time"] = row["phenomenon_time"]
    res = store.append_batch(pa.Table.from_pylist([row], schema=OBSERVATION_BATCH_SCHEMA), lambda r: None)
    assert len(res.inserted) == 1 and not res.duplicate_of
    assert sorted(store.query("SELECT result_number, variant FROM observations")) == [(7.5, 0), (8.0, 1)]
    store.close()


def test_a_file_from_before_the_observed_property_rank_is_upgraded_in_place(tmp_path: Path) -> None:
    """A file made when a MultiDatastream's ObservedProperties were keyed by (MultiDatastream, ObservedProperty) opens
    with each link at the position it was read back in (by ObservedProperty id), and a link appended after them may
    repeat an ObservedProperty."""
    import duckdb

    path = tmp_path / "old.duckdb"
    make_store(path).close()
    con = duckdb.connect(str(path))
    con.execute("DROP TABLE multi_datastream_observed_properties")
    con.execute(
        """CREATE TABLE multi_datastream_observed_properties (multi_datastream_id BIGINT NOT NULL,
           observed_property_id BIGINT NOT NULL, PRIMARY KEY (multi_datastream_id, observed_property_id))"""
    )
    con.execute("INSERT INTO multi_datastream_observed_properties VALUES (5, 9), (5, 4), (6, 9)")
    con.close()
    store = DuckDBStore(path)
    rows = store.query(
        "SELECT multi_datastream_id, observed_property_id, rank FROM multi_datastream_observed_properties "
        "ORDER BY multi_datastream_id, rank"
    )
    assert rows == [(5, 4, 0), (5, 9, 1), (6, 9, 0)]
    link = ("multi_datastream_observed_properties", "multi_datastream_id", "observed_property_id")
    with store.transaction() as tx:
        store.entities.link(tx, *link, 5, 4, ("rank", "multi_datastream_id"))
        assert store.entities.ranked_links(tx, link[0], link[1], link[2], "rank", 5) == [4, 9, 4]
    store.close()
