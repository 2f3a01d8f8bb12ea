"""Alert rules on live data, in process: every rule kind with its edge cases (exactly at the threshold, gaps,
out-of-order data, duplicates), hysteresis, the lifecycle API, scopes, restart with an open alert, webhooks."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
from fastapi.testclient import TestClient

from cityhub.alerts.builtin import builtin_names, read_builtin
from cityhub.alerts.rules import parse_rule, seconds
from cityhub.app import create_app
from cityhub.auth.keys import KeyStore
from cityhub.config import Settings
from cityhub.errors import ProblemError
from tests.conftest import OM_MEASUREMENT, station_body

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CM = {"name": "centimetre", "symbol": "cm", "definition": "http://qudt.org/vocab/unit/CentiM"}


# -- helpers -------------------------------------------------------------------------------------------------------
def gauge_body(name: str, code: str | None = None, lon: float = 105.86, lat: float = 21.044, interval: str = "PT1H",
               unit: dict | None = None) -> dict:  # fmt: skip
    return {
        "name": f"Trạm thủy văn {name}",
        "description": "water gauge",
        "properties": {"stationCode": code} if code else {},
        "Locations": [{"name": name, "description": name, "encodingType": "application/geo+json",
                       "location": {"type": "Point", "coordinates": [lon, lat]}}],
        "Datastreams": [{
            "name": f"Water level {name}",
            "description": "level above the gauge datum",
            "observationType": OM_MEASUREMENT,
            "unitOfMeasurement": unit or CM,
            "properties": {"interval": interval},
            "Sensor": {"name": "gauge", "description": "g", "encodingType": "text/html", "metadata": "m"},
            "ObservedProperty": {"name": "Water level", "definition": "https://cityhub.hanoi/def/WaterLevel",
                                 "description": "water level"},
        }],
    }  # fmt: skip


def make_gauge(client: TestClient, name: str = "Hà Nội", **kw: Any) -> tuple[int, int]:
    r = client.post("/v1.1/Things", json=gauge_body(name, **kw))
    assert r.status_code == 201, r.text
    thing = r.json()["@iot.id"]
    return thing, client.get(f"/v1.1/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def ingest(client: TestClient, ds: int, points: list[tuple[datetime, float]], settle: bool = True) -> dict:
    body = "datastream,phenomenonTime,result\n" + "".join(f"{ds},{iso(t)},{v}\n" for t, v in points)
    r = client.post("/api/v1/ingest?partial=true", content=body, headers={"Content-Type": "text/csv"})
    assert r.status_code in (200, 207), r.text
    if settle:
        assert client.app.state.hub.alerts.wait_idle()
    return r.json()


def hours(values: list[float], start: datetime = T0, step: timedelta = timedelta(hours=1)) -> list[tuple]:
    return [(start + i * step, v) for i, v in enumerate(values)]


def add_rule(client: TestClient, **body: Any) -> int:
    body.setdefault("name", f"rule {time.monotonic_ns()}")
    r = client.post("/api/v1/rules", json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def alerts(client: TestClient, **params: Any) -> list[dict]:
    r = client.get("/api/v1/alerts", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    return sorted(r.json()["value"], key=lambda a: a["id"])


def events(client: TestClient, alert_id: int) -> list[str]:
    return [e["event"] for e in client.get(f"/api/v1/alerts/{alert_id}").json()["events"]]


def wait_for(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# -- validation and access -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "kind": "threshold"}, "value"),
        ({"name": "x", "kind": "threshold", "value": 1, "levels": [{"value": 2}]}, "value"),
        ({"name": "x", "kind": "threshold", "value": 1, "for": "two hours"}, "for"),
        ({"name": "x", "kind": "threshold", "value": 1, "max_gap": "PT0S"}, "max_gap"),
        ({"name": "x", "kind": "threshold", "levels": [{"value": 2}, {"value": 2}]}, "levels"),
        ({"name": "x", "kind": "threshold", "value": 1, "colour": "red"}, "colour"),
        ({"name": "x", "kind": "range", "min": 5, "max": 1}, "max"),
        ({"name": "x", "kind": "rate"}, "max_rate"),
        ({"name": "x", "kind": "bogus"}, "kind"),
        ({"name": "x", "kind": "stale", "value": 3}, "value"),
        ({"name": "x", "kind": "stale", "scope": {"area": {"type": "Point", "coordinates": [1, 2]}}}, "scope.area"),
        ({"name": "x", "kind": "stale", "scope": {"datastream": 0}}, "scope.datastream"),
        ({"name": "x", "kind": "stale", "message": "{value:>999999999}"}, "message"),
        ({"name": "", "kind": "stale"}, "name"),
    ],
)
def test_rule_bodies_are_validated_with_the_field(client: TestClient, body: dict, field: str) -> None:
    r = client.post("/api/v1/rules", json=body)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"].startswith(field), r.json()


def test_durations() -> None:
    assert seconds("PT2H") == seconds("2h") == seconds(7200) == seconds("7200") == 7200
    assert seconds("P1DT30M") == seconds("1d30m") == 88200
    for bad in ("", "P", "2 weeks", "-5", True):
        with pytest.raises(ValueError):
            seconds(bad)  # type: ignore[arg-type]
    with pytest.raises(ProblemError) as exc:
        parse_rule({"name": "x", "kind": "threshold", "value": 1, "clear_for": "soon"})
    assert exc.value.field == "clear_for"


def test_who_may_read_and_change_rules(app_client: TestClient, settings: Settings) -> None:
    body = {"name": "x", "kind": "threshold", "value": 1}
    assert app_client.post("/api/v1/rules", json=body).status_code == 401
    keys = KeyStore(settings.keys_path)
    device = keys.create("device", "a device", thing_id=1)
    r = app_client.post("/api/v1/rules", json=body, headers={"Authorization": f"Bearer {device}"})
    assert r.status_code == 403 and r.json()["field"] == "authorization"
    operator = keys.create("operator", "duty officer")
    r = app_client.post("/api/v1/rules", json=body, headers={"Authorization": f"Bearer {operator}"})
    assert r.status_code == 201 and r.json()["createdBy"] == "duty officer"
    assert app_client.get("/api/v1/rules").json()["value"][0]["name"] == "x"  # anyone may read
    assert app_client.get("/api/v1/webhooks").status_code == 401  # webhooks hold secrets


# -- rule kinds ------------------------------------------------------------------------------------------------------
def test_threshold_exactly_at_the_threshold(client: TestClient) -> None:
    _, ds = make_gauge(client)
    ge = add_rule(client, kind="threshold", op=">=", value=100, scope={"datastream": ds})
    gt = add_rule(client, kind="threshold", op=">", value=100, scope={"datastream": ds})
    le = add_rule(client, kind="threshold", op="<=", value=20, scope={"datastream": ds})
    ingest(client, ds, hours([50, 100, 100, 60, 20]))
    assert [(a["triggerTime"], a["value"]) for a in alerts(client, rule=ge)] == [("2026-01-01T01:00:00Z", 100.0)]
    assert alerts(client, rule=ge)[0]["state"] == "resolved"  # 60 < 100 (no hysteresis)
    assert alerts(client, rule=gt) == []
    assert [a["triggerTime"] for a in alerts(client, rule=le)] == ["2026-01-01T04:00:00Z"]


def test_hysteresis_one_alert_for_a_value_hovering_at_the_threshold(client: TestClient) -> None:
    _, ds = make_gauge(client)
    rid = add_rule(client, kind="threshold", value=100, hysteresis=5, scope={"datastream": ds})
    plain = add_rule(client, kind="threshold", value=100, scope={"datastream": ds})
    ingest(client, ds, hours([99, 101, 99, 100, 96, 102, 95.5, 101, 94.9, 99, 99]))
    got = alerts(client, rule=rid)
    assert len(got) == 1 and got[0]["state"] == "resolved"
    assert events(client, got[0]["id"]) == ["opened", "resolved"]
    assert got[0]["details"]["resolvedValue"] == 94.9  # cleared by the first value below 100 − 5
    assert len(alerts(client, rule=plain)) == 4  # without hysteresis it flaps
    # clear_count: two consecutive values below the band before it clears
    slow = add_rule(client, kind="threshold", value=100, hysteresis=5, clear_count=2, scope={"datastream": ds})
    ingest(client, ds, hours([120, 90, 110, 90, 90, 101], start=T0 + timedelta(hours=20)))
    got = alerts(client, rule=slow)
    assert [(a["state"], a["triggerTime"], a["resolvedAt"] is not None) for a in got] == [
        ("resolved", "2026-01-01T20:00:00Z", True),
        ("open", "2026-01-02T01:00:00Z", False),
    ]


def test_out_of_order_and_duplicates(client: TestClient) -> None:
    _, ds = make_gauge(client)
    rid = add_rule(client, kind="threshold", value=201, for_count=2, max_gap="PT1H", scope={"datastream": ds})
    h = lambda k: T0 + timedelta(hours=k)  # noqa: E731
    # 00:00 breach, 01:00 missing, 02:00 breach: the gap breaks the run.
    ingest(client, ds, [(h(0), 250), (h(2), 250)])
    assert alerts(client, rule=rid) == []
    # A body out of order is sorted: 03:00 then 04:00; the run 02:00–03:00 opens at 03:00, 04:00 clears it.
    ingest(client, ds, [(h(4), 150), (h(3), 210)])
    got = alerts(client, rule=rid)
    assert [(a["triggerTime"], a["since"], a["state"]) for a in got] == [
        ("2026-01-01T03:00:00Z", "2026-01-01T02:00:00Z", "resolved")
    ]
    # Late data (older than what was evaluated) cannot raise anything: 01:00 would have made 00:00–02:00 a run.
    ingest(client, ds, [(h(1), 300)])
    assert len(alerts(client, rule=rid)) == 1
    assert client.get("/api/v1/alerts/status").json()["late"] >= 1
    # Duplicates are stored once, so they never count twice towards a run.
    assert ingest(client, ds, [(h(5), 260)])["stored"] == 1
    assert ingest(client, ds, [(h(5), 260)])["duplicates"] == 1
    assert len(alerts(client, rule=rid)) == 1
    ingest(client, ds, [(h(6), 260)])
    assert len(alerts(client, rule=rid)) == 2


def test_for_a_duration(client: TestClient) -> None:
    _, ds = make_gauge(client)
    rid = add_rule(client, kind="threshold", value=10, scope={"datastream": ds}, **{"for": "PT2H"})
    # Instant Observations hourly: 2 h are spanned by the third one; exactly 2 h is enough.
    ingest(client, ds, hours([11, 12, 13, 14]))
    assert [a["triggerTime"] for a in alerts(client, rule=rid)] == ["2026-01-01T02:00:00Z"]


def test_levels_escalate_and_clear(client: TestClient) -> None:
    _, ds = make_gauge(client, code="74165")
    set_name, specs = read_builtin("red_river")
    out = client.app.state.hub.alerts.apply_ruleset(set_name, specs, "test")
    hanoi = out["created"][0]
    assert client.get(f"/api/v1/rules/{hanoi}").json()["subjects"] == 1
    levels = [900, 950, 1000, 1049, 1050, 1160, 1145, 1139, 1139, 1000, 945, 939, 939]
    ingest(client, ds, hours(levels, step=timedelta(hours=6)))
    (a,) = alerts(client, rule=hanoi)
    assert events(client, a["id"]) == ["opened", "escalated", "escalated", "deescalated", "deescalated", "resolved"]
    hist = client.get(f"/api/v1/alerts/{a['id']}").json()["events"]
    assert [e["level"] for e in hist] == [1, 2, 3, 2, 1, 1]
    # 1145 is inside the 10 cm band; each step down needs two readings under it (1139, 1139; 1000, 945; 939, 939)
    assert [e["value"] for e in hist] == [950, 1050, 1160, 1139, 945, 939]
    assert a["state"] == "resolved" and a["severity"] == "warning"
    # The title follows the level: the last one written was for alarm I (950 cm), on the way down at 945.
    assert a["details"]["title"]["en"] == "Red River at Hà Nội (Long Biên): alarm I (9.50 m), water level 945 cm"


def test_titles_are_checked_like_messages(client: TestClient) -> None:
    base = {"name": "t", "kind": "threshold", "value": 1}
    for body, field in (
        ({**base, "title": {"vi": "{nope} ở {subject}"}}, "title.vi"),
        ({**base, "title": {"fr": "x"}}, "title.fr.[key]"),  # pydantic names the key at fault
        (
            {"name": "t", "kind": "threshold", "levels": [{"value": 1, "title": {"en": "{value:.1f}"}}]},
            "levels.0.title.en",
        ),
    ):
        r = client.post("/api/v1/rules", json=body)
        assert r.status_code == 400 and r.json()["field"] == field, r.json()


def test_range_rate_and_stuck(client: TestClient) -> None:
    _, ds = make_gauge(client)
    rng = add_rule(client, kind="range", min=0, max=2000, scope={"datastream": ds})
    rate = add_rule(client, kind="rate", max_rate=100, per="PT1H", direction="rise", scope={"datastream": ds})
    stuck = add_rule(client, kind="stuck", min_count=3, duration="PT2H", scope={"datastream": ds})
    ingest(client, ds, hours([0, -1, 2000, 2001, 500, 550, 700, 700, 700, 700, 650]))
    assert [(a["value"], a["state"]) for a in alerts(client, rule=rng)] == [(-1.0, "resolved"), (2001.0, "resolved")]
    # rises ≥ 100 per hour: −1 → 2000 and 550 → 700; each cleared by the next, slower, change
    assert [a["value"] for a in alerts(client, rule=rate)] == [2000.0, 700.0]
    # a gap longer than max_gap gives no rate at all
    ingest(client, ds, [(T0 + timedelta(hours=14), 2000)])
    assert len(alerts(client, rule=rate)) == 2
    (s,) = alerts(client, rule=stuck)  # 700 three times over 2 h (06:00–08:00), cleared by 650
    assert (s["since"], s["triggerTime"], s["state"]) == ("2026-01-01T06:00:00Z", "2026-01-01T08:00:00Z", "resolved")


def test_stale_sensor(client: TestClient) -> None:
    _, ds = make_gauge(client, interval="PT5M")
    _, quiet = make_gauge(client, name="Sơn Tây", interval="PT5M")
    rid = add_rule(client, kind="stale", factor=3, scope={"observed_property": "Water level"})
    engine = client.app.state.hub.alerts
    now = datetime.now(UTC).replace(microsecond=0)
    ingest(client, ds, [(now - timedelta(minutes=2), 10)])
    engine.clock = lambda: (now + timedelta(minutes=12)).timestamp()
    engine.check_stale()
    assert alerts(client, rule=rid) == []  # 14 min < 3 × 5 min; `quiet` never reported: not "gone" silent
    engine.clock = lambda: (now + timedelta(minutes=16)).timestamp()  # (silence counts from the hub's start at most)
    engine.check_stale()
    (a,) = alerts(client, rule=rid)
    assert a["subject"] == {"type": "datastream", "id": ds, "name": "Water level Hà Nội"} and a["state"] == "open"
    engine.check_stale()
    assert len(alerts(client, rule=rid)) == 1  # one open alert per rule and subject
    ingest(client, ds, [(now + timedelta(minutes=15), 11)])
    engine.check_stale()
    assert [x["state"] for x in alerts(client, rule=rid)] == ["resolved"]
    assert quiet not in {x["subject"]["id"] for x in alerts(client)}


def test_scopes(client: TestClient) -> None:
    t1, ds1 = make_gauge(client, "Hà Nội", code="74165", lon=105.86, lat=21.044)
    _, ds2 = make_gauge(client, "Sơn Tây", code="74162", lon=105.504, lat=21.157)
    _, ds3 = make_gauge(client, "Tô Lịch", lon=105.80, lat=21.03, unit={"name": "metre", "symbol": "m"})
    box = {"type": "Polygon", "coordinates": [[[105.7, 20.9], [106.0, 20.9], [106.0, 21.1], [105.7, 21.1],
                                               [105.7, 20.9]]]}  # fmt: skip
    cases = {
        "ds": ({"datastream": ds2}, {ds2}),
        "ds by name": ({"datastream": ["Water level Tô Lịch"]}, {ds3}),
        "thing": ({"thing": [t1, "Trạm thủy văn Sơn Tây"]}, {ds1, ds2}),
        "property": ({"observed_property": "https://cityhub.hanoi/def/WaterLevel"}, {ds1, ds2, ds3}),
        "area": ({"area": box}, {ds1, ds3}),
        "area feature": ({"area": {"type": "Feature", "geometry": box, "properties": {}}, "unit": "cm"}, {ds1}),
        "station code": ({"thing_properties": {"stationCode": "74162"}}, {ds2}),
        "everything": ({}, {ds1, ds2, ds3}),
        "nothing": ({"thing": 999}, set()),
    }
    engine = client.app.state.hub.alerts
    for label, (scope, expected) in cases.items():
        rid = add_rule(client, name=label, kind="stale", scope=scope)
        assert client.get(f"/api/v1/rules/{rid}").json()["subjects"] == len(expected), label
        assert set(engine.resolved[rid].subjects.tolist()) == expected, label
    # Scopes follow the model: a new gauge inside the area joins the area rule.
    _, ds4 = make_gauge(client, "Long Biên 2", lon=105.87, lat=21.05)
    engine.list_rules()
    area_rule = next(r for r in engine.rules.values() if r.name == "area")
    assert ds4 in set(engine.resolved[area_rule.id].subjects.tolist())


def test_lifecycle_acknowledge_resolve_history(client: TestClient, settings: Settings) -> None:
    _, ds = make_gauge(client)
    rid = add_rule(client, kind="threshold", value=100, hysteresis=10, scope={"datastream": ds})
    ingest(client, ds, hours([120, 130]))
    (a,) = alerts(client, state="open")
    operator = KeyStore(settings.keys_path).create("operator", "Nguyễn Văn An")
    op = {"Authorization": f"Bearer {operator}"}
    r = client.post(f"/api/v1/alerts/{a['id']}/acknowledge", json={"note": "team sent"}, headers=op)
    assert r.status_code == 200 and r.json()["acknowledgedBy"] == "Nguyễn Văn An"
    assert client.post(f"/api/v1/alerts/{a['id']}/acknowledge", headers=op).status_code == 409
    assert alerts(client, state="open") == [] and len(alerts(client, state="acknowledged")) == 1
    assert len(alerts(client, state="active", rule=rid, subject=ds)) == 1
    # Resolved by hand while the value is still high: no new alert until the condition has cleared.
    r = client.post(f"/api/v1/alerts/{a['id']}/resolve", json={"note": "false alarm"}, headers=op)
    assert r.status_code == 200 and r.json()["resolvedBy"] == "Nguyễn Văn An"
    assert client.post(f"/api/v1/alerts/{a['id']}/resolve", headers=op).status_code == 409
    ingest(client, ds, hours([140, 150], start=T0 + timedelta(hours=2)))
    assert alerts(client, state="active") == []
    ingest(client, ds, hours([80, 125], start=T0 + timedelta(hours=4)))
    new = alerts(client, state="open")
    assert len(new) == 1 and new[0]["id"] != a["id"]
    full = client.get(f"/api/v1/alerts/{a['id']}").json()
    assert [(e["event"], e["actor"], e.get("note")) for e in full["events"]] == [
        ("opened", "cityhub", None),
        ("acknowledged", "Nguyễn Văn An", "team sent"),
        ("resolved", "Nguyễn Văn An", "false alarm"),
    ]
    assert len(alerts(client, rule=rid)) == 2 and alerts(client, subject=ds + 1000) == []
    assert len(alerts(client, since=iso(datetime.now(UTC) - timedelta(minutes=5)))) == 2
    assert alerts(client, since=iso(datetime.now(UTC) + timedelta(minutes=5))) == []
    assert client.get("/api/v1/alerts", params={"since": "yesterday"}).json()["field"] == "since"
    assert client.get("/api/v1/alerts/999999").status_code == 404
    assert client.post("/api/v1/alerts/999999/acknowledge").status_code == 404
    # Disabling the rule resolves its active alerts; deleting keeps the history.
    r = client.patch(f"/api/v1/rules/{rid}", json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert alerts(client, state="active") == []
    assert client.patch(f"/api/v1/rules/{rid}", json={"hysteresis": -1}).json()["field"] == "hysteresis"
    assert client.delete(f"/api/v1/rules/{rid}").status_code == 200
    assert client.get(f"/api/v1/rules/{rid}").status_code == 404
    assert len(alerts(client, rule=rid)) == 2


def test_restart_in_the_middle_of_an_open_alert(settings: Settings, admin_key: str) -> None:
    headers = {"Authorization": f"Bearer {admin_key}"}
    with TestClient(create_app(settings), headers=headers) as client:
        _, ds = make_gauge(client)
        now_open = add_rule(client, name="open", kind="threshold", value=100, hysteresis=10, scope={"datastream": ds})
        pending = add_rule(client, name="pending", kind="threshold", value=100, for_count=3, scope={"datastream": ds})
        ingest(client, ds, hours([120, 125]))
        (a,) = alerts(client, state="open")
        assert a["rule"]["id"] == now_open
    with TestClient(create_app(settings), headers=headers) as client:
        ingest(client, ds, hours([120, 125], start=T0))  # the same data again: duplicates, nothing new
        # One body right after the start: evaluation resumes from the stored positions, no row is taken for late.
        ingest(client, ds, hours([130, 135, 85, 80], start=T0 + timedelta(hours=2)))
        got = alerts(client)
        # No second alert for the open rule; the pending run (2 of 3) survived the restart and completed at 02:00.
        assert [(x["rule"]["id"], x["triggerTime"], x["details"]["resolvedValue"]) for x in got] == [
            (now_open, "2026-01-01T00:00:00Z", 85.0),
            (pending, "2026-01-01T02:00:00Z", 85.0),
        ]
        assert events(client, a["id"]) == ["opened", "resolved"]
        status = client.get("/api/v1/alerts/status").json()
        assert status["activeAlerts"] == 0 and status["late"] == 0


def test_vn_aqi_index_rule_on_the_station(client: TestClient) -> None:
    thing = client.post("/v1.1/Things", json=station_body()).json()["@iot.id"]
    ds = client.get(f"/v1.1/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]
    set_name, specs = read_builtin("hanoi_air")
    out = client.app.state.hub.alerts.apply_ruleset(set_name, specs, "test")
    advisory = out["created"][0]
    # PM2.5 hourly means of 200 µg/m³: NowCast 200 → VN_AQI 250 (Very bad) from 01:00 (2 of the last 3 hours).
    ingest(client, ds, hours([200.0] * 4))
    got = wait_for(lambda: alerts(client, rule=advisory), what="an advisory")
    (a,) = got
    assert a["subject"] == {"type": "thing", "id": thing, "name": "Trạm Hoàn Kiếm"}
    assert a["severity"] == "critical" and a["levelName"] == "Rất xấu / Very bad"
    assert (a["since"], a["triggerTime"]) == ("2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z")
    assert a["details"]["guidance"]["level"] == "suspend_outdoor" and a["details"]["period"] == "hour"
    # A title for people, per language, beside the rule's terms in the message.
    assert a["details"]["title"] == {
        "vi": "Không khí rất xấu 2 giờ liền ở Trạm Hoàn Kiếm — hạn chế ra ngoài; trường học dừng hoạt động ngoài trời",
        "en": "Very bad air for 2 hours at Trạm Hoàn Kiếm: limit time outdoors; schools suspend outdoor activity",
    }
    guidance = [x for x in alerts(client) if x["rule"]["id"] != advisory]
    assert [x["levelName"] for x in guidance] == ["suspend_outdoor"]
    assert guidance[0]["details"]["title"]["vi"] == (
        "Không khí rất xấu kéo dài 2 giờ ở Trạm Hoàn Kiếm — tạm dừng hoạt động ngoài trời"
    )


# -- webhooks --------------------------------------------------------------------------------------------------------
class _Receiver(BaseHTTPRequestHandler):
    fail_first = 2
    gate: threading.Event | None = None  # set: answer only once it is set (a receiver that hangs)
    got: ClassVar[list[tuple[dict[str, str], bytes, int]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.gate is not None:
            self.gate.wait(60)
        status = 500 if len(self.got) < self.fail_first else 204
        type(self).got.append((dict(self.headers), body, status))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"got": [], "fail_first": 2, "gate": None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    server.shutdown()
    server.server_close()


@pytest.fixture
def hook_client(tmp_path: Path) -> Iterator[TestClient]:
    """An admin client whose hub may POST to the receivers here: webhook targets on 127.0.0.1 are refused unless
    the allow list names it."""
    settings = Settings(data_dir=tmp_path / "var", webhook_allow_hosts="127.0.0.1")
    key = KeyStore(settings.keys_path).create("admin", "test admin")
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def test_webhook_fails_twice_then_succeeds(hook_client: TestClient, receiver: tuple[str, type[_Receiver]]) -> None:
    client = hook_client
    url, handler = receiver
    hooks = client.app.state.hub.alerts.webhooks
    hooks.base_delay_s = 0.2
    r = client.post("/api/v1/webhooks", json={"url": url, "secret": "s3cret-key", "filter": {"events": ["opened"]}})
    assert r.status_code == 201 and "s3cret" not in r.text
    wid = r.json()["id"]
    _, ds = make_gauge(client)
    add_rule(client, kind="threshold", value=100, scope={"datastream": ds})
    ingest(client, ds, hours([150, 50]))  # opened, then resolved (filtered out)
    wait_for(lambda: len(handler.got) == 3, what="three attempts")
    time.sleep(0.3)
    assert [s for _, _, s in handler.got] == [500, 500, 204]
    headers, body, _ = handler.got[-1]
    assert headers["X-CityHub-Signature"] == "sha256=" + hmac.new(b"s3cret-key", body, hashlib.sha256).hexdigest()
    assert headers["X-CityHub-Event"] == "opened"
    event = orjson.loads(body)
    assert event["event"] == "opened" and event["alert"]["value"] == 150
    assert len({b for _, b, _ in handler.got}) == 1  # the same body every time
    (d,) = wait_for(lambda: [x for x in client.get(f"/api/v1/webhooks/{wid}/deliveries").json()["value"]
                             if x["status"] == "delivered"], what="the delivery log")  # fmt: skip
    assert d["attempts"] == 3 and [e["status"] for e in d["log"]] == ["5xx", "5xx", "2xx"]  # the class only
    assert [e["outcome"] for e in d["log"]] == ["failed: HTTP 5xx", "failed: HTTP 5xx", "delivered: HTTP 2xx"]
    gaps = [datetime.fromisoformat(e["at"]) for e in d["log"]]
    assert (gaps[2] - gaps[1]) > (gaps[1] - gaps[0]) * 1.5  # exponential back-off
    assert client.delete(f"/api/v1/webhooks/{wid}").status_code == 200
    assert client.get(f"/api/v1/webhooks/{wid}/deliveries").status_code == 404
    bad = client.post("/api/v1/webhooks", json={"url": "ftp://x", "secret": "12345678"})
    assert bad.status_code == 400 and bad.json()["field"] == "url"


def test_a_slow_webhook_never_blocks_ingestion(hook_client: TestClient, receiver: tuple[str, type[_Receiver]]) -> None:
    client = hook_client
    url, handler = receiver
    handler.gate, handler.fail_first = threading.Event(), 0
    assert client.post("/api/v1/webhooks", json={"url": url, "secret": "12345678"}).status_code == 201
    _, ds = make_gauge(client)
    rid = add_rule(client, kind="threshold", value=100, scope={"datastream": ds})
    try:
        for k in range(10):  # 10 alerts opened and resolved: 20 deliveries queued behind a receiver that hangs
            ingest(client, ds, hours([150, 50], start=T0 + timedelta(hours=2 * k)))
        # Ingested and evaluated (ingest waits for the engine) while the receiver has answered nothing.
        assert len(alerts(client, rule=rid)) == 10
        assert handler.got == []
    finally:
        handler.gate.set()


def test_rule_files_and_builtin_sets(client: TestClient) -> None:
    text = """
name: ops
rules:
  - {name: high, kind: threshold, value: 10}
  - {name: silent, kind: stale, factor: 4}
"""
    r = client.put("/api/v1/rulesets/ops", content=text, headers={"Content-Type": "application/yaml"})
    assert r.status_code == 200 and len(r.json()["created"]) == 2
    again = client.put("/api/v1/rulesets/ops", content=text).json()
    assert again["created"] == [] and len(again["unchanged"]) == 2
    changed = client.put(
        "/api/v1/rulesets/ops", content=text.replace("value: 10", "value: 12").split("  - {name: s")[0]
    )
    assert len(changed.json()["updated"]) == 1 and len(changed.json()["deleted"]) == 1
    bad = client.put("/api/v1/rulesets/ops", content="rules: [{name: x, kind: threshold, value: 1, for: soon}]")
    assert bad.status_code == 400 and bad.json()["field"] == "rules.0.for"
    assert client.put("/api/v1/rulesets/ops", content="rules: [").json()["field"] == "body"
    assert set(builtin_names()) >= {"hanoi_air", "red_river", "silent_sensors"}
    for name in builtin_names():
        assert read_builtin(name)[1]
    r = client.post("/api/v1/rulesets/builtin/red_river")
    assert len(r.json()["created"]) == 2
    assert client.post("/api/v1/rulesets/builtin/red_river").json()["unchanged"] == r.json()["created"]
    assert client.post("/api/v1/rulesets/builtin/nope").status_code == 404
    assert {x["name"] for x in client.get("/api/v1/rulesets").json()["value"]} == {"ops", "red_river"}
