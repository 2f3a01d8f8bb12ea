"""Alerts through a real `cityhub serve`: the SSE stream (events, keep-alives, Last-Event-ID replay, a clean
shutdown with a stream open), an open alert surviving kill -9, and MQTT publication on cityhub/alerts/#."""

from __future__ import annotations

import queue
import signal
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from cityhub.app import create_app
from cityhub.auth.keys import KeyStore
from cityhub.config import Settings
from tests.conftest import require_service
from tests.servers import free_port, start_server, stop_server
from tests.test_alerts import add_rule, alerts, gauge_body, hours, ingest, make_gauge, wait_for
from tests.test_mqtt import BROKER, drop_session


class SSE:
    """Reads an SSE stream in a thread: events (id, JSON) and comment lines."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.events: queue.Queue[tuple[int, dict[str, Any]]] = queue.Queue()
        self.comments: list[str] = []
        self.ended = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(30, read=None))
        self._thread = threading.Thread(target=self._read, args=(url, headers), daemon=True)
        self._thread.start()

    def _read(self, url: str, headers: dict[str, str]) -> None:
        try:
            with self._client.stream("GET", url, headers=headers) as r:
                assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
                eid, data = None, None
                for line in r.iter_lines():
                    if line.startswith(":"):
                        self.comments.append(line)
                    elif line.startswith("id: "):
                        eid = int(line[4:])
                    elif line.startswith("data: "):
                        data = orjson.loads(line[6:])
                    elif line == "" and data is not None:
                        self.events.put((eid, data))
                        eid, data = None, None
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()

    def next(self, timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        self._client.close()


def test_sse_stream_and_restart_after_kill(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    key = KeyStore(data_dir / "keys.json").create("admin", "ops")
    headers = {"Authorization": f"Bearer {key}"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(data_dir, port)
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
            thing = c.post("/v1.1/Things", json=gauge_body("Hà Nội")).json()["@iot.id"]
            ds = c.get(f"/v1.1/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]
            rid = c.post("/api/v1/rules", json={"name": "high", "kind": "threshold", "value": 100, "hysteresis": 10,
                                                "scope": {"datastream": ds}}).json()["id"]  # fmt: skip
            stream = SSE(f"{base}/api/v1/alerts/stream?keepalive=0.3", {})  # anonymous read
            wait_for(lambda: stream.comments, what="the stream to open")
            t_sent = time.time()
            body = f"datastream,phenomenonTime,result\n{ds},2026-01-01T00:00:00Z,150\n"
            assert c.post("/api/v1/ingest", content=body, headers={"Content-Type": "text/csv"}).status_code == 200
            eid, ev = stream.next()
            assert ev["event"] == "opened" and ev["id"] == eid
            assert ev["alert"]["rule"] == {"id": rid, "name": "high"} and ev["alert"]["value"] == 150
            assert ev["trigger"]["phenomenonTime"] == "2026-01-01T00:00:00Z"
            committed = datetime.fromisoformat(ev["trigger"]["committedAt"]).timestamp()
            assert t_sent - 1 < committed < time.time()
            wait_for(lambda: any("keep-alive" in x for x in stream.comments), what="a keep-alive comment")
            aid = ev["alert"]["id"]
            assert c.post(f"/api/v1/alerts/{aid}/acknowledge").status_code == 200
            eid2, ev2 = stream.next()
            assert (ev2["event"], ev2["actor"], ev2["alert"]["state"]) == ("acknowledged", "ops", "acknowledged")
            # A client that reconnects with Last-Event-ID gets what it missed, then live events.
            late = SSE(f"{base}/api/v1/alerts/stream", {"Last-Event-ID": str(eid)})
            assert late.next()[0] == eid2
            late.close()
        # kill -9 with the alert open: nothing lost, nothing raised twice.
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        stream.ended.wait(10)
        stream.close()
        proc = start_server(data_dir, port)
        with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
            (a,) = c.get("/api/v1/alerts", params={"state": "active"}).json()["value"]
            assert (a["id"], a["state"], a["acknowledgedBy"]) == (aid, "acknowledged", "ops")
            stream = SSE(f"{base}/api/v1/alerts/stream?keepalive=0.3", headers)
            wait_for(lambda: stream.comments, what="the stream to open")
            body = f"datastream,phenomenonTime,result\n{ds},2026-01-01T00:00:00Z,150\n{ds},2026-01-01T01:00:00Z,160\n"
            assert c.post("/api/v1/ingest", content=body, headers={"Content-Type": "text/csv"}).json()["stored"] == 1
            body = f"datastream,phenomenonTime,result\n{ds},2026-01-01T02:00:00Z,80\n"
            c.post("/api/v1/ingest", content=body, headers={"Content-Type": "text/csv"})
            _, ev = stream.next()
            assert (ev["event"], ev["alert"]["id"]) == ("resolved", aid)  # the first event after the restart
            assert c.get("/api/v1/alerts").json()["count"] == 1
        # SIGTERM with a stream open: the server ends the stream and exits cleanly.
        stop_server(proc)
        # uvicorn re-raises the SIGTERM it handled once shut down: -15 after a graceful stop, -9 had it hung
        assert proc.returncode in (0, -signal.SIGTERM)
        assert stream.ended.wait(5)
        stream.close()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_alerts_are_published_on_mqtt(tmp_path: Path) -> None:
    require_service(*BROKER, "Mosquitto")
    cid = f"cityhub-test-{uuid.uuid4().hex[:10]}"
    settings = Settings(data_dir=tmp_path / "var", mqtt_url=f"mqtt://{BROKER[0]}:{BROKER[1]}", mqtt_client_id=cid)
    key = KeyStore(settings.keys_path).create("admin", "ops")
    got: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
    subscribed = threading.Event()
    sub.on_message = lambda c, u, m: got.put((m.topic, orjson.loads(m.payload)))
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect(*BROKER)
    sub.subscribe("cityhub/alerts/#", qos=1)
    sub.loop_start()
    try:
        assert subscribed.wait(5)
        with TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"}) as client:
            wait_for(lambda: client.get("/healthz").json()["mqtt"]["connected"], what="the bridge")
            _, ds = make_gauge(client)
            rid = add_rule(client, kind="threshold", value=100, scope={"datastream": ds})
            ingest(client, ds, hours([150, 50]))
            topic, ev = got.get(timeout=10)
            assert topic == f"cityhub/alerts/{rid}/datastream/{ds}"
            assert ev["event"] == "opened" and ev["alert"]["subject"]["id"] == ds
            topic2, ev2 = got.get(timeout=10)
            assert topic2 == topic and ev2["event"] == "resolved"
            assert [a["state"] for a in alerts(client)] == ["resolved"]
    finally:
        sub.disconnect()
        sub.loop_stop()
        drop_session(cid)  # the hub's persistent session
