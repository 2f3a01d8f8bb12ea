"""What an alert says: its message and details, the event payload every channel carries (SSE, MQTT, webhooks,
the stored event), and its publication once committed."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

import orjson

from cityhub.airquality.indices import IndexResult, advice_of, category_of
from cityhub.airquality.school import school_guidance
from cityhub.airquality.tables import INDEX_NAMES
from cityhub.alerts.evaluate import RuleParams, Transition
from cityhub.alerts.notify import Broadcaster, sse_message
from cityhub.alerts.records import Alert, dt_of, iso
from cityhub.bus import ALERTS, AlertEvent, EventBus


class _Safe(dict):
    """Template values where an unknown ``{name}`` stays as written rather than failing the message."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def school_advice(value: float) -> dict[str, Any]:
    """School guidance (cityhub.airquality.school) for a VN_AQI value."""
    v = round(value)
    res = IndexResult("vn", INDEX_NAMES["vn"], "hour", v, category_of("vn", v), None, advice=advice_of("vn", v))
    return school_guidance(res)


def alert_details(p: RuleParams, level: int, value: float) -> dict[str, Any]:
    """The rule's terms at ``level``, so an alert can be read without its rule (which may change later)."""
    d: dict[str, Any] = {}
    if p.spec.index:  # the value is an hourly (or daily) index: its trigger time starts that period
        d["period"] = p.spec.index_period
    if p.kind == "threshold":
        d.update(op=p.spec.op, threshold=p.threshold(level), hysteresis=p.hysteresis)
    elif p.kind == "range":
        d.update(min=p.spec.min, max=p.spec.max)
    elif p.kind == "rate":
        d.update(maxRate=p.rate_max, per=p.spec.per, direction=p.spec.direction)
    elif p.kind == "stuck":
        d.update(minCount=p.stuck_min, duration=p.spec.duration)
    if p.spec.advice == "school":
        d["guidance"] = school_advice(value)
    return d


def alert_message(p: RuleParams, alert: Alert, tr: Transition) -> str:
    """The alert's one-line text: the rule's template when it has one, else a sentence per rule kind."""
    unit = alert.details.get("unit") or ""
    unit = f" {unit}" if unit and p.kind != "stale" else ""
    who = alert.subject_name or f"{alert.subject_type} {alert.subject_id}"
    v = f"{tr.value:g}"
    if p.spec.index:
        unit, v = "", f"{p.spec.index} {v}"
    if p.kind == "threshold":
        lvl = f" ({alert.level_name})" if alert.level_name else ""
        text = f"{who}: {v}{unit} {p.spec.op} {p.threshold(alert.level):g}{unit}{lvl}"
        held = [f"{p.spec.for_}"] if p.spec.for_ else []
        if p.for_count > 1:
            what = {"hour": "hours", "day": "days"}[p.spec.index_period] if p.spec.index else "Observations"
            held.append(f"{p.for_count} consecutive {what}")
        if held:
            text += " for " + " and ".join(held)
    elif p.kind == "range":
        text = f"{who}: {v}{unit} outside the physical range [{p.spec.min}, {p.spec.max}]"
    elif p.kind == "rate":
        text = f"{who}: {v}{unit}, changing faster than {p.rate_max:g}{unit} per {p.spec.per}"
    elif p.kind == "stuck":
        text = f"{who}: {v}{unit} repeated since {iso(dt_of(tr.since))}"
    else:
        text = f"{who}: no data for {tr.value / 60:.0f} min"
    if p.spec.message:
        with contextlib.suppress(ValueError, IndexError, AttributeError, KeyError):  # bad template: default text
            text = p.spec.message.format_map(_values(p, alert, tr, text))
    return text


def _values(p: RuleParams, alert: Alert, tr: Transition, default: str) -> _Safe:
    """What a message or title template may name (rules.MESSAGE_FIELDS)."""
    unit = alert.details.get("unit") or ""
    v = f"{tr.value:g}"
    if p.spec.index:
        unit = ""
    who = alert.subject_name or f"{alert.subject_type} {alert.subject_id}"
    hours = p.for_count if p.spec.index and p.spec.index_period == "hour" else (p.for_us or 0) / 3.6e9
    t = p.threshold(alert.level)
    return _Safe(subject=who, value=v, unit=unit, level=alert.level_name or alert.level, rule=p.name,
                 threshold="" if t is None else f"{t:g}", default=default, hours=f"{hours:g}")  # fmt: skip


def alert_title(p: RuleParams, alert: Alert, tr: Transition) -> dict[str, str] | None:
    """The alert's title in each language the rule (or its level) gives one, for people: "Không khí kém kéo dài 2 giờ
    ở Tứ Liên — khuyến cáo hạn chế hoạt động ngoài trời", where the message says "VN_AQI 113 >= 101 ..."."""
    templates = p.title(alert.level)
    if not templates:
        return None
    values = _values(p, alert, tr, alert.message or "")
    out = {}
    for lang, template in templates.items():
        with contextlib.suppress(ValueError, IndexError, AttributeError, KeyError):
            out[lang] = template.format_map(values)
    return out or None


def event_payload(
    event_id: int,
    kind: str,
    actor: str,
    now: datetime,
    alert: Alert,
    trigger: dict[str, Any] | None,
    note: str | None,
) -> dict[str, Any]:
    """The event as every channel carries it (SSE data, MQTT message, webhook body, stored payload)."""
    payload = {"id": event_id, "event": kind, "time": iso(now), "actor": actor, "alert": alert.to_json()}
    if trigger:
        payload["trigger"] = trigger
    if note:
        payload["note"] = note
    return payload


def event_row(
    payload: dict[str, Any], alert: Alert, now: datetime, phen_us: int | None, value: float | None
) -> dict[str, Any]:
    """The stored event (EVENT_SCHEMA) of a payload."""
    text = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return {"id": payload["id"], "alert_id": alert.id, "time": now, "kind": payload["event"], "state": alert.state,
            "level": alert.level, "actor": payload["actor"], "phenomenon_time": dt_of(phen_us), "value": value,
            "payload": text}  # fmt: skip


def event_json(row: dict[str, Any]) -> dict[str, Any]:
    """A stored event in an alert's history (GET /alerts/{id})."""
    p = row["payload"]
    return {"id": row["id"], "event": row["kind"], "time": iso(row["time"]), "state": row["state"],
            "level": row["level"], "actor": row["actor"], "phenomenonTime": iso(row["phenomenon_time"]),
            "value": row["value"], **({"note": orjson.loads(p).get("note")} if p else {})}  # fmt: skip


class Publisher:
    """Hands committed events to the SSE stream and, through the bus, to MQTT (webhooks have their outbox)."""

    def __init__(self, broadcaster: Broadcaster, bus: EventBus | None) -> None:
        self.broadcaster = broadcaster
        self.bus = bus

    def publish(self, events: list[dict[str, Any]]) -> None:
        framed = []
        for e in events:
            payload = orjson.dumps(e, option=orjson.OPT_SERIALIZE_NUMPY)
            framed.append(sse_message(e["id"], payload))
            if self.bus is not None:  # MQTT republishes them; SSE, webhooks and the store have them anyway
                a = e["alert"]
                self.bus.publish(ALERTS, AlertEvent(a["rule"]["id"], a["subject"]["type"], a["subject"]["id"], payload))
        self.broadcaster.publish(*framed)  # one hand-over for the whole batch of events
