"""SensorThings Part 2, Tasking Core (issue 13, point 6): Actuators, TaskingCapabilities and Tasks, so an operator
can tell a device what to do (here a variable message sign on Đại lộ Thăng Long), checked against the capability's
parameters, and the device hears its Tasks over MQTT. Served with CITYHUB_TASKING (off by default, as the OGC suite
of Part 1 refuses other entity sets in the service root). Both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from cityhub.app import create_app
from cityhub.config import Settings
from tests.test_mqtt import (  # noqa: F401
    Subscriber,
    admin,
    broker,
    client_id,
    hub_settings,
    mqtt_connected,
    publish_all,
    publisher,
    wait_for,
)

SIGN_PARAMETERS = {
    "type": "DataRecord",
    "field": [
        {"name": "message", "label": "Text shown", "type": "Text"},
        {"name": "brightness", "label": "Brightness", "type": "Quantity", "uom": {"code": "%"}},
        {"name": "mode", "label": "Mode", "type": "Category",
         "constraint": {"type": "AllowedTokens", "value": ["on", "off", "blink"]}},
    ],
}  # fmt: skip


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The conftest's settings with tasking on."""
    return settings.model_copy(update={"tasking": True})


def test_tasking_is_off_unless_enabled(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path / "var"))) as client:
        root = client.get("/v1.1").json()
        assert not {"Actuators", "TaskingCapabilities", "Tasks"} & {e["name"] for e in root["value"]}
        assert not any("iot_tasking" in c for c in root["serverSettings"]["conformance"])
        r = client.get("/v1.1/Tasks")
        assert r.status_code == 404 and "CITYHUB_TASKING" in r.json()["detail"]
        assert client.get("/v1.1/Things(1)/TaskingCapabilities").status_code == 404


def _sign(client: TestClient) -> tuple[int, int]:
    """A Thing with one TaskingCapability of its Actuator (deep insert); (Thing id, TaskingCapability id)."""
    body = {
        "name": "Biển báo điện tử VMS-07", "description": "variable message sign, Đại lộ Thăng Long km 7",
        "TaskingCapabilities": [{
            "name": "Show a message", "description": "text, brightness and mode of the sign",
            "taskingParameters": SIGN_PARAMETERS,
            "Actuator": {"name": "LED panel", "description": "full-matrix LED panel", "encodingType": "text/html",
                         "metadata": "https://example.org/vms-07"},
        }],
    }  # fmt: skip
    r = client.post("/v1.1/Things", json=body)
    assert r.status_code == 201, r.text
    thing = r.json()["@iot.id"]
    caps = client.get(f"/v1.1/Things({thing})/TaskingCapabilities").json()["value"]
    assert len(caps) == 1 and caps[0]["taskingParameters"] == SIGN_PARAMETERS
    return thing, caps[0]["@iot.id"]


def test_tasks_are_created_checked_and_read(client: TestClient) -> None:
    thing, cap = _sign(client)
    before = datetime.now(UTC)
    params = {"message": "Ùn tắc phía trước, đi chậm", "brightness": 80, "mode": "blink"}
    r = client.post(f"/v1.1/TaskingCapabilities({cap})/Tasks", json={"taskingParameters": params})
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["taskingParameters"] == params
    created = datetime.fromisoformat(task["creationTime"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= created <= datetime.now(UTC) + timedelta(seconds=1)
    assert client.get(f"/v1.1/Tasks({task['@iot.id']})/TaskingCapability").json()["@iot.id"] == cap
    actuator = client.get(f"/v1.1/TaskingCapabilities({cap})/Actuator").json()
    assert actuator["name"] == "LED panel"
    assert [c["@iot.id"] for c in client.get(f"/v1.1/Actuators({actuator['@iot.id']})/TaskingCapabilities").json()[
        "value"]] == [cap]  # fmt: skip
    listed = client.get(f"/v1.1/Things({thing})", params={"$expand": "TaskingCapabilities($expand=Tasks)"}).json()
    assert [t["@iot.id"] for t in listed["TaskingCapabilities"][0]["Tasks"]] == [task["@iot.id"]]
    found = client.get("/v1.1/Tasks", params={"$filter": f"TaskingCapability/Thing/id eq {thing}"}).json()["value"]
    assert [t["@iot.id"] for t in found] == [task["@iot.id"]]
    root = client.get("/v1.1").json()
    assert {"Actuators", "TaskingCapabilities", "Tasks"} <= {e["name"] for e in root["value"]}
    assert "http://www.opengis.net/spec/iot_tasking/1.0/req/tasking-core" in root["serverSettings"]["conformance"]


def test_bad_tasks_and_capabilities_name_the_field(client: TestClient) -> None:
    thing, cap = _sign(client)
    url = f"/v1.1/TaskingCapabilities({cap})/Tasks"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"taskingParameters": {"volume": 3}}, "taskingParameters.volume"),
        ({"taskingParameters": {"brightness": "high"}}, "taskingParameters.brightness"),
        ({"taskingParameters": {"brightness": True}}, "taskingParameters.brightness"),
        ({"taskingParameters": {"mode": "dance"}}, "taskingParameters.mode"),
        ({"taskingParameters": ["on"]}, "taskingParameters"),
        ({}, "taskingParameters"),
        ({"taskingParameters": {"mode": "on"}, "creationTime": "2026-01-01T00:00:00Z"}, "creationTime"),
    ]
    for body, field in cases:
        r = client.post(url, json=body)
        assert r.status_code == 400 and r.json()["field"] == field, (body, r.text)
    assert client.post("/v1.1/Tasks", json={"taskingParameters": {"mode": "on"}}).json()["field"] == "TaskingCapability"
    actuator = client.get(f"/v1.1/TaskingCapabilities({cap})/Actuator").json()["@iot.id"]
    bad = {"name": "x", "description": "d", "taskingParameters": {"type": "Quantity"}, "Thing": {"@iot.id": thing},
           "Actuator": {"@iot.id": actuator}}  # fmt: skip
    r = client.post("/v1.1/TaskingCapabilities", json=bad)
    assert r.status_code == 400 and r.json()["field"] == "taskingParameters"
    assert client.get("/v1.1/Tasks").json()["value"] == []  # nothing refused was stored


def test_deleting_the_thing_or_actuator_takes_capabilities_and_tasks(client: TestClient) -> None:
    thing, cap = _sign(client)
    assert client.post(f"/v1.1/TaskingCapabilities({cap})/Tasks", json={"taskingParameters": {"mode": "off"}})
    actuator = client.get(f"/v1.1/TaskingCapabilities({cap})/Actuator").json()["@iot.id"]
    assert client.delete(f"/v1.1/Things({thing})").status_code == 200
    assert client.get("/v1.1/TaskingCapabilities").json()["value"] == []
    assert client.get("/v1.1/Tasks").json()["value"] == []
    assert client.get(f"/v1.1/Actuators({actuator})").status_code == 200  # an Actuator outlives one Thing's use
    _, cap = _sign(client)
    other = client.get(f"/v1.1/TaskingCapabilities({cap})/Actuator").json()["@iot.id"]
    assert client.delete(f"/v1.1/Actuators({other})").status_code == 200
    assert client.get(f"/v1.1/TaskingCapabilities({cap})").status_code == 404


def test_a_device_hears_its_tasks_over_mqtt(tmp_path: Path, broker: str, client_id: str) -> None:  # noqa: F811
    settings = hub_settings(tmp_path, broker, client_id, tasking=True)
    with TestClient(create_app(settings)) as client:
        client.headers.update(admin(settings))
        wait_for(lambda: mqtt_connected(client), what="the bridge to connect")
        _, cap = _sign(client)
        device = Subscriber(f"v1.1/TaskingCapabilities({cap})/Tasks")
        try:
            r = client.post(f"/v1.1/TaskingCapabilities({cap})/Tasks",
                            json={"taskingParameters": {"message": "Đường trơn", "mode": "on"}})  # fmt: skip
            assert r.status_code == 201
            got = wait_for(lambda: device.messages, what="the Task on its capability's topic")
            assert got[0][1]["@iot.id"] == r.json()["@iot.id"]
            assert got[0][1]["taskingParameters"] == {"message": "Đường trơn", "mode": "on"}
        finally:
            device.close()


def test_an_operator_sends_tasks_over_mqtt(tmp_path: Path, broker: str, client_id: str) -> None:  # noqa: F811
    """Tasks published as they would be POSTed, to a TaskingCapability's Tasks or to v1.1/Tasks naming it, are
    created, checked against the capability and delivered to the device; a refused one is a dead letter naming the
    parameter, and the others are not held up by it."""
    settings = hub_settings(tmp_path, broker, client_id, tasking=True)
    with TestClient(create_app(settings)) as client:
        client.headers.update(admin(settings))
        wait_for(lambda: mqtt_connected(client), what="the bridge to connect")
        _, cap = _sign(client)
        device = Subscriber(f"v1.1/TaskingCapabilities({cap})/Tasks")
        operator = publisher()
        try:
            publish_all(operator, [
                (f"v1.1/TaskingCapabilities({cap})/Tasks",
                 orjson.dumps({"taskingParameters": {"message": "Ùn tắc, đi chậm", "mode": "blink"}})),
                (f"v1.1/TaskingCapabilities({cap})/Tasks",
                 orjson.dumps({"taskingParameters": {"message": "x", "mode": "flash"}})),
                ("v1.1/Tasks",
                 orjson.dumps({"taskingParameters": {"mode": "off"}, "TaskingCapability": {"@iot.id": cap}})),
            ])  # fmt: skip
            tasks = wait_for(
                lambda: (
                    (v := client.get(f"/v1.1/TaskingCapabilities({cap})/Tasks?$orderby=id").json()["value"])
                    and len(v) == 2
                    and v
                ),
                what="the two valid Tasks",
            )
            assert [t["taskingParameters"] for t in tasks] == [
                {"message": "Ùn tắc, đi chậm", "mode": "blink"},
                {"mode": "off"},
            ]
            assert all(t["creationTime"] for t in tasks)
            # The topic also carries what the operator sent; the hub's announcements are the entities, with ids.
            created = lambda: [m[1] for m in device.messages if "@iot.id" in m[1]]  # noqa: E731
            heard = wait_for(lambda: len(created()) >= 2 and created(), what="the device to hear both Tasks")
            assert sorted(m["@iot.id"] for m in heard) == sorted(t["@iot.id"] for t in tasks)
            dead = wait_for(lambda: client.get("/api/v1/deadletters").json()["value"], what="the dead letter")
            assert len(dead) == 1 and "mode must be one of" in dead[0]["reason"], dead
            assert dead[0]["field"] == "taskingParameters.mode"
        finally:
            device.close()
            operator.disconnect()
