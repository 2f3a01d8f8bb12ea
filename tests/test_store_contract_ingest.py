"""The store contract for the aggregates ingest and its neighbours use: the model catalogue, Observation look-ups,
dead letters, the air-quality layer's entities and exports. Run against every backend (``tests/store_backends.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pyarrow as pa
import pytest

from cityhub.store.base import OBSERVATION_BATCH_SCHEMA, Store, Transaction
from cityhub.store.ops.catalog import DatastreamInfo, unit_symbol
from cityhub.store.ops.deadletters import DEADLETTER_SCHEMA
from tests.store_backends import store  # noqa: F401 - the fixture

T0 = datetime(2026, 1, 15, tzinfo=UTC)
OM = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
POINT = '{"type": "Point", "coordinates": [105.85, 21.03]}'


def thing(tx: Transaction, name: str, *locations: str) -> int:
    thing_id = tx.insert("things", {"name": name, "description": "d"})
    for loc in locations:
        loc_id = tx.insert(
            "locations",
            {"name": f"at {name}", "description": "d", "encoding_type": "application/geo+json", "location": loc},
        )
        tx.store.entities.link(tx, "thing_locations", "thing_id", "location_id", thing_id, loc_id)
    return thing_id


def datastream(tx: Transaction, name: str, thing_id: int, sensor: int, prop: int, uom: str | None = None) -> int:
    return tx.insert(
        "datastreams",
        {
            "name": name,
            "description": "d",
            "unit_of_measurement": uom if uom is not None else '{"name": "x", "symbol": "µg/m³"}',
            "thing_id": thing_id,
            "observation_type": OM,
            "sensor_id": sensor,
            "observed_property_id": prop,
        },
    )


def model(store: Store) -> dict[str, int]:  # noqa: F811
    """Two Things (one with two Locations, one with none) and four Datastreams, two of them sharing a name."""
    with store.transaction() as tx:
        s1 = tx.insert("sensors", {"name": "S", "description": "d", "encoding_type": "text/html", "metadata": "m"})
        s2 = tx.insert("sensors", {"name": "S", "description": "d", "encoding_type": "text/html", "metadata": "m"})
        p1 = tx.insert("observed_properties", {"name": "PM2.5", "definition": "urn:pm25", "description": "d"})
        p2 = tx.insert("observed_properties", {"name": "PM2.5", "definition": "urn:other", "description": "d"})
        a = thing(tx, "A", POINT, '{"type": "Point", "coordinates": [1, 2]}')
        b = thing(tx, "B")
        tx.insert("things", {"name": "A", "description": "a second Thing of that name"})
        ids = {
            "s1": s1, "s2": s2, "p1": p1, "p2": p2, "a": a, "b": b,
            "a_pm": datastream(tx, "pm", a, s1, p1),
            "a_no2": datastream(tx, "no2", a, s1, p2, uom='"µg/m³"'),
            "b_pm": datastream(tx, "pm", b, s2, p1, uom='{"name": "ppb"}'),
            "b_pm_again": datastream(tx, "pm", b, s2, p2),
        }  # fmt: skip
    return ids


def observations(store: Store, ds: int, minutes: list[int]) -> list[int]:  # noqa: F811
    ids = store.allocate_ids("observations", len(minutes))
    batch = pa.Table.from_pylist(
        [
            {"id": int(i), "datastream_id": ds, "phenomenon_time": T0 + timedelta(minutes=m), "result_number": m}
            for i, m in zip(ids, minutes, strict=True)
        ],
        schema=OBSERVATION_BATCH_SCHEMA,
    )
    store.append_batch(batch, lambda r: None)
    return [int(i) for i in ids]


# -- catalogue ------------------------------------------------------------------------------------------------
def test_datastream_infos_parse_the_unit_symbol_and_tolerate_odd_units(store: Store) -> None:  # noqa: F811
    m = model(store)
    infos = store.catalog.datastream_infos()
    assert [i.id for i in infos] == sorted(i.id for i in infos)
    by_id = {i.id: i for i in infos}
    assert by_id[m["a_pm"]] == DatastreamInfo(m["a_pm"], OM, "µg/m³", m["a"])
    assert by_id[m["a_no2"]].unit_symbol is None  # not an object
    assert by_id[m["b_pm"]].unit_symbol is None  # no symbol
    assert unit_symbol("not JSON") is None and unit_symbol(None) is None


def test_datastream_ids_by_thing_property_both_or_all(store: Store) -> None:  # noqa: F811
    m = model(store)
    assert store.catalog.datastream_ids(thing=m["a"]) == [m["a_pm"], m["a_no2"]]
    assert store.catalog.datastream_ids(observed_property=m["p1"]) == [m["a_pm"], m["b_pm"]]
    assert store.catalog.datastream_ids(thing=m["b"], observed_property=m["p2"]) == [m["b_pm_again"]]
    assert store.catalog.datastream_ids() == [m["a_pm"], m["a_no2"], m["b_pm"], m["b_pm_again"]]
    assert store.catalog.datastream_ids(thing=10**9) == []


def test_names_resolve_to_the_lowest_id(store: Store) -> None:  # noqa: F811
    m = model(store)
    assert store.catalog.datastream_ids_by_name() == {"pm": m["a_pm"], "no2": m["a_no2"]}
    assert store.catalog.datastream_ids_by_name(m["b"]) == {"pm": m["b_pm"]}
    assert store.catalog.datastream_ids_by_name(10**9) == {}
    assert store.catalog.thing_ids_by_name() == {"A": m["a"], "B": m["b"]}
    assert store.catalog.sensor_id("S") == m["s1"]
    assert store.catalog.sensor_id("nope") is None
    assert store.catalog.observed_property_id("PM2.5") == m["p1"]
    assert store.catalog.observed_property_id("PM2.5", "urn:other") == m["p2"]
    assert store.catalog.observed_property_id("PM2.5", "urn:none") is None


def test_first_locations(store: Store) -> None:  # noqa: F811
    m = model(store)
    assert store.catalog.first_locations([m["a"], m["b"]]) == {m["a"]: POINT}  # B has none
    assert store.catalog.first_locations() == {m["a"]: POINT}
    assert store.catalog.first_locations([]) == {}


def test_location_features_are_made_once_and_reused(store: Store) -> None:  # noqa: F811
    m = model(store)
    asked = [m["a_pm"], m["a_no2"], m["b_pm"], 10**9]
    first = store.catalog.location_features(asked)
    assert first[m["a_pm"]] is not None and first[m["a_pm"]] == first[m["a_no2"]]  # one Thing, one feature
    assert first[m["b_pm"]] is None and first[10**9] is None  # no Location; no such Datastream
    ((name, feature, from_location),) = store.query("SELECT name, feature, from_location_id FROM features_of_interest")
    assert name == "at A" and orjson.loads(feature) == orjson.loads(POINT) and from_location is not None
    assert store.catalog.location_features([m["a_pm"]]) == {m["a_pm"]: first[m["a_pm"]]}
    assert store.catalog.location_features([]) == {}


def test_location_features_within_a_transaction_roll_back_with_it(store: Store) -> None:  # noqa: F811
    m = model(store)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        assert store.catalog.location_features_in(tx, [m["a_pm"]])[m["a_pm"]] is not None
        raise RuntimeError("the caller's deep insert fails")
    assert store.query("SELECT count(*) FROM features_of_interest") == [(0,)]
    with store.transaction() as tx:
        made = store.catalog.location_features_in(tx, [m["a_pm"]])
    assert store.catalog.existing_features([made[m["a_pm"]], 10**9]) == {made[m["a_pm"]]}
    assert store.catalog.existing_features([]) == set()


# -- Observation look-ups -------------------------------------------------------------------------------------
def test_observation_ids_by_key(store: Store) -> None:  # noqa: F811
    m = model(store)
    ids = observations(store, m["a_pm"], [0, 1, 2])
    observations(store, m["b_pm"], [0])
    ict = T0.astimezone(timezone(timedelta(hours=7)))  # the same instant, another zone
    keys = [(m["a_pm"], T0 + timedelta(minutes=2)), (m["a_pm"], ict), (m["a_pm"], T0 + timedelta(minutes=9))]
    assert store.observations.ids_by_key(keys) == {keys[0]: ids[2], keys[1]: ids[0]}
    assert store.observations.ids_by_key([]) == {}


# -- dead letters ---------------------------------------------------------------------------------------------
def letters(store: Store, rows: list[dict[str, Any]]) -> list[int]:  # noqa: F811
    base = {"payload_encoding": "utf-8", "reason": "r", "field": None, "payload": "p"}
    return store.deadletters.record(pa.Table.from_pylist([{**base, **r} for r in rows], DEADLETTER_SCHEMA)).tolist()


def test_dead_letters_record_page_and_filter(store: Store) -> None:  # noqa: F811
    ids = letters(
        store,
        [
            {"received_at": T0, "source": "mqtt", "topic": "hanoi/aq/x", "field": "result"},
            {"received_at": T0 + timedelta(hours=1), "source": "mqtt", "topic": "hanoi/water/y"},
            {"received_at": T0 + timedelta(hours=2), "source": "http", "topic": None, "payload_encoding": "base64"},
        ],
    )
    assert len(set(ids)) == 3
    page = store.deadletters.page()
    assert page.total == 3 and [d.id for d in page.items] == sorted(ids, reverse=True)
    oldest = page.items[-1]
    assert (oldest.source, oldest.topic, oldest.payload, oldest.field) == ("mqtt", "hanoi/aq/x", "p", "result")
    assert oldest.received_at == T0
    assert store.deadletters.page(source="mqtt").total == 2
    assert [d.id for d in store.deadletters.page(topic_prefix="hanoi/aq").items] == [ids[0]]
    assert [d.id for d in store.deadletters.page(since=T0 + timedelta(hours=1)).items] == [ids[2], ids[1]]
    two = store.deadletters.page(limit=1, offset=1)
    assert two.total == 3 and [d.id for d in two.items] == [ids[1]]
    assert store.deadletters.record(pa.Table.from_pylist([], DEADLETTER_SCHEMA)).tolist() == []


def test_dead_letters_delete(store: Store) -> None:  # noqa: F811
    rows = [{"received_at": T0 + timedelta(hours=h), "source": "mqtt", "topic": "t"} for h in range(4)]
    ids = letters(store, rows)
    assert store.deadletters.delete([ids[0], 10**9]) == 1
    assert store.deadletters.delete([]) == 0
    assert store.deadletters.delete_before(T0 + timedelta(hours=2)) == 1  # ids[1]; ids[0] is gone already
    assert [d.id for d in store.deadletters.page().items] == [ids[3], ids[2]]
    assert store.deadletters.delete_before(None) == 2
    assert store.deadletters.page().total == 0


# -- air quality ----------------------------------------------------------------------------------------------
def test_station_streams(store: Store) -> None:  # noqa: F811
    m = model(store)
    rows = store.airquality.station_streams()
    assert [r.datastream_id for r in rows] == [m["a_pm"], m["a_no2"], m["b_pm"], m["b_pm_again"]]
    first = rows[0]
    assert (first.thing_id, first.thing_name, first.property_name, first.property_definition) == (
        m["a"],
        "A",
        "PM2.5",
        "urn:pm25",
    )
    assert orjson.loads(first.unit_of_measurement or "")["symbol"] == "µg/m³" and first.properties is None


def test_ensure_derived_finds_or_creates(store: Store) -> None:  # noqa: F811
    m = model(store)
    prop = {"name": "VN_AQI", "definition": "urn:vn_aqi", "description": "d"}
    sensor = {"name": "CityHub VN_AQI", "description": "d", "encoding_type": "text/html", "metadata": "m"}

    def ds(name: str) -> dict[str, Any]:
        return {"name": name, "description": "d", "observation_type": OM, "thing_id": m["a"],
                "unit_of_measurement": '{"symbol": "VN_AQI"}', "properties": '{"period": "hour"}'}  # fmt: skip

    made = store.airquality.ensure_derived(prop, sensor, [ds("hourly"), ds("daily")])
    assert made.created == [
        ("ObservedProperties", made.observed_property_id),
        ("Sensors", made.sensor_id),
        ("Datastreams", made.datastream_ids[0]),
        ("Datastreams", made.datastream_ids[1]),
    ]
    p = store.dialect.placeholder
    stored = store.query(
        f"SELECT name, sensor_id, observed_property_id, thing_id FROM datastreams WHERE id IN ({p}, {p}) ORDER BY id",  # noqa: S608
        made.datastream_ids,
    )
    assert stored == [
        ("hourly", made.sensor_id, made.observed_property_id, m["a"]),
        ("daily", made.sensor_id, made.observed_property_id, m["a"]),
    ]
    again = store.airquality.ensure_derived(prop, sensor, [ds("again")])
    assert (again.observed_property_id, again.sensor_id) == (made.observed_property_id, made.sensor_id)
    assert again.created == [("Datastreams", again.datastream_ids[0])]
    assert store.airquality.ensure_derived(prop, sensor, []).created == []


# -- export ---------------------------------------------------------------------------------------------------
def test_export_observations_filters_and_orders(store: Store) -> None:  # noqa: F811
    m = model(store)
    observations(store, m["b_pm"], [5, 0])
    observations(store, m["a_pm"], [0, 1, 2])
    with store.transaction() as tx:
        oid = int(store.allocate_ids("observations", 1)[0])
        text_row: dict[str, Any] = {f.name: None for f in OBSERVATION_BATCH_SCHEMA}
        text_row.update(id=oid, datastream_id=m["a_no2"], phenomenon_time=T0, result_string="text")
        store.append_observations(tx, pa.Table.from_pylist([text_row], schema=OBSERVATION_BATCH_SCHEMA))
    every = store.export.observations(limit=100)
    assert every.column_names == [
        "thing_id", "thing", "datastream", "observed_property", "uom", "time", "result", "result_text"
    ]  # fmt: skip
    assert every.num_rows == 6
    got = [(r["thing"], r["datastream"], r["time"]) for r in every.to_pylist()]
    assert got[:3] == [("A", "pm", T0 + timedelta(minutes=k)) for k in range(3)]  # by Datastream id, then time
    assert got[4:] == [("B", "pm", T0), ("B", "pm", T0 + timedelta(minutes=5))]
    text = every.to_pylist()[3]
    assert text["result"] is None and text["result_text"] == "text" and text["observed_property"] == "PM2.5"
    assert store.export.observations(datastreams=[m["b_pm"]], limit=100).num_rows == 2
    assert store.export.observations(things=[m["a"]], limit=100).num_rows == 4
    window = store.export.observations(start=T0 + timedelta(minutes=1), end=T0 + timedelta(minutes=5), limit=100)
    assert window.column("time").to_pylist() == [T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]
    assert store.export.observations(limit=2).num_rows == 2
