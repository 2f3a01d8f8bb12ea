"""The store contract for the alerts aggregates (``store.alerts``, ``store.webhooks``), run against every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import pytest

from cityhub.store.base import Store
from cityhub.store.ops.alerts import (
    ALERT_COLUMNS,
    ALERT_SCHEMA,
    EVENT_COLUMNS,
    EVENT_SCHEMA,
    STATE_SCHEMA,
    AlertQuery,
    RuleRecord,
)
from cityhub.store.ops.webhooks import DELIVERY_COLUMNS, DELIVERY_SCHEMA, WebhookRecord
from tests.store_backends import store  # noqa: F401 - the fixture

T0 = datetime(2026, 1, 15, 8, tzinfo=UTC)


def new_id(s: Store, table: str) -> int:
    return int(s.allocate_ids(table, 1)[0])


def alert_row(s: Store, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in ALERT_COLUMNS}
    row.update(id=new_id(s, "alerts"), rule_id=1, rule_name="r", subject_type="datastream", subject_id=10,
               subject_name="PM2.5 at X", state="open", level=1, level_name="high", severity="warning",
               opened_at=T0, updated_at=T0, trigger_time=T0, since=T0, value=55.5, message="m",
               details='{"kind": "threshold"}')  # fmt: skip
    row.update(over)
    return row


def event_row(s: Store, alert: dict[str, Any], kind: str, at: datetime, note: str | None = None) -> dict[str, Any]:
    eid = new_id(s, "alert_events")
    payload = {"id": eid, "event": kind, "alert": {"id": alert["id"]}, **({"note": note} if note else {})}
    return {"id": eid, "alert_id": alert["id"], "time": at, "kind": kind, "state": alert["state"],
            "level": alert["level"], "actor": "cityhub", "phenomenon_time": at, "value": alert["value"],
            "payload": orjson.dumps(payload).decode()}  # fmt: skip


def save(s: Store, alerts: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
    with s.transaction(fold_derived=False) as tx:
        s.alerts.save_alerts(
            tx, pa.Table.from_pylist(alerts, schema=ALERT_SCHEMA), pa.Table.from_pylist(events, schema=EVENT_SCHEMA)
        )


def state_rows(states: dict[int, str]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"state_key": k, "rule_id": k >> 32, "subject_id": k & 0xFFFFFFFF, "state": v} for k, v in states.items()],
        schema=STATE_SCHEMA,
    )


# -- rules ------------------------------------------------------------------------------------------------------------
def test_rules_round_trip(store: Store) -> None:  # noqa: F811
    a = RuleRecord(new_id(store, "alert_rules"), "pm25 high", None, True, '{"name": "pm25 high"}', T0, T0, "ops")
    b = RuleRecord(new_id(store, "alert_rules"), "flood", "official", False, '{"name": "flood"}', T0, T0, None)
    store.alerts.insert_rule(b)
    store.alerts.insert_rule(a)
    assert store.alerts.load_rules() == sorted([a, b])  # by id
    later = T0 + timedelta(hours=1)
    store.alerts.update_rule(a.id, "pm25 very high", False, '{"name": "pm25 very high"}', later)
    got = {r.id: r for r in store.alerts.load_rules()}
    assert got[a.id] == a._replace(name="pm25 very high", enabled=False, spec='{"name": "pm25 very high"}',
                                   updated_at=later)  # fmt: skip
    assert got[b.id] == b
    store.alerts.delete_rule(b.id)
    assert [r.id for r in store.alerts.load_rules()] == [a.id]


# -- alerts and events ------------------------------------------------------------------------------------------------
def test_alert_with_events_round_trip_and_replace(store: Store) -> None:  # noqa: F811
    alert = alert_row(store)
    opened = event_row(store, alert, "opened", T0)
    save(store, [alert], [opened])
    assert store.alerts.get_alert(alert["id"]) == alert
    assert store.alerts.active_alerts() == [alert]
    # A changed alert is written whole and replaces the stored one; its events accumulate.
    later = T0 + timedelta(minutes=5)
    resolved = {**alert, "state": "resolved", "resolved_at": later, "resolved_by": "an operator", "updated_at": later}
    closing = event_row(store, resolved, "resolved", later, note="checked on site")
    save(store, [resolved], [closing])
    assert store.alerts.get_alert(alert["id"]) == resolved
    assert store.alerts.active_alerts() == []
    assert store.alerts.query_alerts(AlertQuery())[0] == 1
    events = store.alerts.alert_events(alert["id"])
    assert [e["id"] for e in events] == [opened["id"], closing["id"]]
    assert events[1] == {c: closing[c] for c in EVENT_COLUMNS}
    assert store.alerts.get_alert(new_id(store, "alerts")) is None
    assert store.alerts.alert_events(alert["id"] + 1000) == []


def test_events_after_pages_oldest_first(store: Store) -> None:  # noqa: F811
    alert = alert_row(store)
    events = [event_row(store, alert, k, T0 + timedelta(minutes=i)) for i, k in enumerate(("opened", "escalated",
                                                                                          "acknowledged"))]  # fmt: skip
    save(store, [alert], events)
    ids = [e["id"] for e in events]
    assert [i for i, _ in store.alerts.events_after(0, 10)] == ids
    assert store.alerts.events_after(ids[0], 1) == [(ids[1], events[1]["payload"])]
    assert store.alerts.events_after(ids[-1], 10) == []


def test_empty_tables_write_nothing(store: Store) -> None:  # noqa: F811
    save(store, [], [])
    with store.transaction(fold_derived=False) as tx:
        store.alerts.save_states(tx, [], state_rows({}))
        store.webhooks.add_deliveries(tx, pa.Table.from_pylist([], schema=DELIVERY_SCHEMA))
    assert store.alerts.query_alerts(AlertQuery()) == (0, [])
    assert store.alerts.load_states() == []


def test_alert_history_filters(store: Store) -> None:  # noqa: F811
    h = timedelta(hours=1)
    rows = [
        alert_row(store, rule_id=1, subject_id=10, state="open", severity="warning", opened_at=T0, updated_at=T0),
        alert_row(store, rule_id=1, subject_id=11, state="acknowledged", severity="critical", opened_at=T0 + h,
                  updated_at=T0 + 3 * h),
        alert_row(store, rule_id=2, subject_id=10, state="resolved", severity="warning", opened_at=T0 + 2 * h,
                  updated_at=T0 + 2 * h),
        alert_row(store, rule_id=3, subject_type="thing", subject_id=7, state="open", severity="info",
                  opened_at=T0 + 2 * h, updated_at=T0 + 4 * h),
    ]  # fmt: skip
    save(store, rows, [])
    ids = [r["id"] for r in rows]

    def found(**kw: Any) -> list[int]:
        total, page = store.alerts.query_alerts(AlertQuery(**kw))
        if "limit" not in kw and "offset" not in kw:
            assert total == len(page)
        return [r["id"] for r in page]

    # Newest opened first; equal opening times by id, highest first.
    assert found() == [ids[3], ids[2], ids[1], ids[0]]
    assert found(state="active") == [ids[3], ids[1], ids[0]]
    assert found(state="resolved") == [ids[2]]
    assert found(rule_id=1) == [ids[1], ids[0]]
    assert found(subject_id=10) == [ids[2], ids[0]]
    assert found(subject_type="thing") == [ids[3]]
    assert found(severity="warning") == [ids[2], ids[0]]
    assert found(updated_since=T0 + 2 * h) == [ids[3], ids[2], ids[1]]  # inclusive
    assert found(state="active", rule_id=1, severity="critical") == [ids[1]]
    assert found(rule_id=99) == []
    total, page = store.alerts.query_alerts(AlertQuery(limit=2, offset=1))
    assert total == 4 and [r["id"] for r in page] == [ids[2], ids[1]]
    assert page[0] == rows[2]


# -- evaluation state -------------------------------------------------------------------------------------------------
def test_states_round_trip(store: Store) -> None:  # noqa: F811
    k1, k2, k3 = (1 << 32) | 10, (1 << 32) | 11, (2 << 32) | 10
    with store.transaction(fold_derived=False) as tx:
        store.alerts.save_states(tx, [k1, k2, k3], state_rows({k1: '{"level": 1}', k2: '{"level": 0}', k3: "{}"}))
    assert sorted(store.alerts.load_states()) == [(k1, '{"level": 1}'), (k2, '{"level": 0}'), (k3, "{}")]
    # Keys listed without a row are deleted (a state gone quiet), listed with one replaced; others stay.
    with store.transaction(fold_derived=False) as tx:
        store.alerts.save_states(tx, [k1, k2], state_rows({k2: '{"level": 2}'}))
    assert sorted(store.alerts.load_states()) == [(k2, '{"level": 2}'), (k3, "{}")]
    p = store.dialect.placeholder
    rows = store.query(f"SELECT rule_id, subject_id FROM alert_state WHERE state_key = {p}", [k2])  # noqa: S608
    assert rows == [(1, 11)]


def test_a_failed_commit_keeps_nothing(store: Store) -> None:  # noqa: F811
    alert = alert_row(store)
    key = (1 << 32) | 10
    with pytest.raises(RuntimeError), store.transaction(fold_derived=False) as tx:
        store.alerts.save_alerts(
            tx,
            pa.Table.from_pylist([alert], schema=ALERT_SCHEMA),
            pa.Table.from_pylist([event_row(store, alert, "opened", T0)], schema=EVENT_SCHEMA),
        )
        store.alerts.save_states(tx, [key], state_rows({key: "{}"}))
        raise RuntimeError("the webhook rows could not be built")
    assert store.alerts.active_alerts() == []
    assert store.alerts.events_after(0, 10) == []
    assert store.alerts.load_states() == []


# -- the model, for rule scopes ---------------------------------------------------------------------------------------
def test_model_rows(store: Store) -> None:  # noqa: F811
    point_b = '{"type": "Point", "coordinates": [105.9, 21.1]}'
    point_a = '{"type": "Point", "coordinates": [105.8, 21.0]}'
    with store.transaction() as tx:
        station = tx.insert("things", {"name": "station", "description": "d", "properties": '{"district": "Ba Dinh"}'})
        bare = tx.insert("things", {"name": "bare", "description": "d"})
        for loc in (point_b, point_a):
            lid = tx.insert("locations", {"name": "l", "description": "d", "encoding_type": "application/geo+json",
                                          "location": loc})  # fmt: skip
            store.entities.link(tx, "thing_locations", "thing_id", "location_id", station, lid)
        sensor = tx.insert("sensors", {"name": "s", "description": "d", "encoding_type": "text/html", "metadata": "m"})
        pm = tx.insert("observed_properties", {"name": "PM2.5", "definition": "http://x/pm25", "description": "d"})
        aqi = tx.insert("observed_properties", {"name": "VN_AQI", "definition": "http://x/aqi", "description": "d"})
        ds = [
            tx.insert("datastreams", {"name": f"ds{i}", "description": "d", "unit_of_measurement": '{"symbol": "x"}',
                                      "observation_type": "OM_Measurement", "thing_id": station, "sensor_id": sensor,
                                      "observed_property_id": op, "properties": '{"interval": "PT1H"}' if i else None})
            for i, op in enumerate((pm, aqi))
        ]  # fmt: skip
    model = store.alerts.model_rows()
    assert [r[0] for r in model.datastreams] == ds
    d0, d1 = model.datastreams
    assert (d0[1], d0[2], d0[4], d0[5]) == (station, "ds0", pm, None)
    assert orjson.loads(d0[3]) == {"symbol": "x"} and orjson.loads(d1[5]) == {"interval": "PT1H"}
    things = {r[0]: r for r in model.things}
    assert set(things) == {station, bare}
    assert things[station][1] == "station" and orjson.loads(things[station][2]) == {"district": "Ba Dinh"}
    assert orjson.loads(things[station][3]) == orjson.loads(min(point_a, point_b))  # the least, as text
    assert things[bare][2:] == (None, None)
    assert sorted(model.observed_properties) == sorted(
        [(pm, "PM2.5", "http://x/pm25"), (aqi, "VN_AQI", "http://x/aqi")]
    )


# -- webhooks and their outbox ----------------------------------------------------------------------------------------
def deliveries(s: Store, hook: int, n: int) -> pa.Table:
    ids = s.allocate_ids("webhook_deliveries", n)
    return pa.Table.from_pylist(
        [{"id": int(d), "webhook_id": hook, "event_id": 100 + i, "alert_id": 7, "event": "opened",
          "status": "pending", "attempts": 0, "created_at": T0, "next_attempt_at": T0,
          "payload": f'{{"id": {100 + i}}}', "log": "[]"} for i, d in enumerate(ids.tolist())],
        schema=DELIVERY_SCHEMA,
    )  # fmt: skip


def test_webhooks_round_trip(store: Store) -> None:  # noqa: F811
    a = WebhookRecord(new_id(store, "webhooks"), "https://a.example/hook", "s3cret", '{"severities": ["critical"]}',
                      "duty phone", T0, "ops")  # fmt: skip
    b = WebhookRecord(new_id(store, "webhooks"), "https://b.example/hook", "other", None, None, T0, None)
    store.webhooks.insert_webhook(b)
    store.webhooks.insert_webhook(a)
    assert store.webhooks.load_webhooks() == sorted([a, b])
    with store.transaction(fold_derived=False) as tx:
        store.webhooks.add_deliveries(tx, deliveries(store, a.id, 2))
        store.webhooks.add_deliveries(tx, deliveries(store, b.id, 1))
    assert len(store.webhooks.pending_deliveries()) == 3
    store.webhooks.delete_webhook(a.id)
    assert store.webhooks.load_webhooks() == [b]
    assert [d.webhook_id for d in store.webhooks.pending_deliveries()] == [b.id]
    assert store.webhooks.deliveries(a.id, None, 10, 0) == []


def test_deliveries_attempts_and_log(store: Store) -> None:  # noqa: F811
    hook = new_id(store, "webhooks")
    store.webhooks.insert_webhook(WebhookRecord(hook, "https://a.example/hook", "s", None, None, T0, None))
    rows = deliveries(store, hook, 3)
    with store.transaction(fold_derived=False) as tx:
        store.webhooks.add_deliveries(tx, rows)
    first, second, third = rows.column("id").to_pylist()
    pending = store.webhooks.pending_deliveries()
    assert [d.id for d in pending] == [first, second, third]
    assert pending[0] == (first, hook, '{"id": 100}', 0, T0, "opened", "[]")

    retry_at = T0 + timedelta(seconds=2)
    log1 = '[{"attempt": 1, "status": 500, "error": "HTTP 500"}]'
    store.webhooks.record_attempt(second, status="pending", attempts=1, next_attempt_at=retry_at, delivered_at=None,
                                  last_status=500, last_error="HTTP 500", log=log1)  # fmt: skip
    store.webhooks.record_attempt(first, status="delivered", attempts=1, next_attempt_at=None, delivered_at=T0,
                                  last_status=204, last_error=None, log="[]")  # fmt: skip
    store.webhooks.record_attempt(third, status="failed", attempts=8, next_attempt_at=None, delivered_at=None,
                                  last_status=None, last_error="ConnectError: refused", log="[]")  # fmt: skip
    pending = store.webhooks.pending_deliveries()
    assert [(d.id, d.attempts, d.next_attempt_at, d.log) for d in pending] == [(second, 1, retry_at, log1)]

    everything = store.webhooks.deliveries(hook, None, 10, 0)
    assert [d["id"] for d in everything] == [third, second, first]  # newest first
    assert set(everything[0]) == set(DELIVERY_COLUMNS)
    assert everything[1] == {"id": second, "event_id": 101, "alert_id": 7, "event": "opened", "status": "pending",
                             "attempts": 1, "created_at": T0, "next_attempt_at": retry_at, "delivered_at": None,
                             "last_status": 500, "last_error": "HTTP 500", "log": log1}  # fmt: skip
    assert [d["id"] for d in store.webhooks.deliveries(hook, "delivered", 10, 0)] == [first]
    assert [d["id"] for d in store.webhooks.deliveries(hook, "failed", 10, 0)] == [third]
    assert [d["id"] for d in store.webhooks.deliveries(hook, None, 1, 1)] == [second]
