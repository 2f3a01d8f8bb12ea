"""Benchmark: sustained MQTT ingestion through real Mosquitto, one Observation per message.

For QoS 0 and QoS 1 in turn, ``mosquitto_pub -l`` processes (one per Datastream topic, fed at a paced rate)
publish N messages to ``v1.1/Datastreams(<id>)/Observations`` of a real ``cityhub serve --mqtt``. The
figures are the sustained rate, how many were stored (zero loss = all of them, each once), and the
end-to-end latency from publish to stored: a probe Datastream gets one message every 20 ms from a paho
client, and the hub's own announcement of the stored Observation (published after the commit) on
``v1.1/Datastreams(<probe>)/Observations`` stops the clock; each probe is then read back over HTTP.

By default the benchmark starts its own Mosquitto (``mosquitto -c``, a free port) with
``max_queued_messages 1000000``, as a deployment that must not drop QoS 0 messages during a pause of its
subscriber should (Mosquitto's default of 1,000 queued messages is 50 ms at 20,000/s). ``--broker
mqtt://127.0.0.1:1883`` uses a running broker instead.

    .venv/bin/python -m bench.mqtt [--messages 1000000] [--rate0 20000] [--rate1 5000]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson

from bench._util import (
    Phase,
    Report,
    Server,
    create_admin_key,
    ensure_importable,
    free_port,
    log,
    make_tmpdir,
    percentile,
    remove_tmpdir,
)

ensure_importable()

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

TOPICS = 20  # Datastreams the load is spread over (one mosquitto_pub each)
PROBE_EVERY_S = 0.02
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def start_broker(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 1000000\nmax_inflight_messages 0\n"
        # As the README advises: the hub learns subscriptions ($select, feature topics) from this log.
        "log_dest topic\nlog_type subscribe\nlog_type unsubscribe\nlog_type notice\n"
    )
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    time.sleep(0.5)
    if proc.poll() is not None:
        raise RuntimeError("mosquitto did not start")
    return proc, port


def station(name: str, unit: str = "km/h") -> dict:
    return {
        "name": name,
        "description": "benchmark detector",
        "Locations": [
            {
                "name": name,
                "description": "Hà Nội",
                "encodingType": "application/geo+json",
                "location": {"type": "Point", "coordinates": [105.85, 21.03]},
            }
        ],
        "Datastreams": [
            {
                "name": f"Speed {name}",
                "description": "traffic speed",
                "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
                "unitOfMeasurement": {"name": "kilometre per hour", "symbol": unit, "definition": "km/h"},
                "Sensor": {
                    "name": "loop",
                    "description": "loop detector",
                    "encodingType": "text/html",
                    "metadata": "-",
                },
                "ObservedProperty": {
                    "name": "Speed",
                    "definition": "https://cityhub.hanoi/def/speed",
                    "description": "-",
                },
            }
        ],
    }


class Probe(threading.Thread):
    """Publishes to the probe Datastream every 20 ms and times the hub's announcement of each."""

    def __init__(self, host: str, port: int, ds: int, qos: int, offset: int) -> None:
        super().__init__(daemon=True)
        self.ds, self.qos, self.offset = ds, qos, offset
        self.sent: dict[int, float] = {}
        self.latency: dict[int, float] = {}
        self.ids: dict[int, int] = {}
        self.halt = threading.Event()
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
        )
        self.c.on_message = self._on_message
        self.c.connect(host, port)
        self.c.subscribe(f"v1.1/Datastreams({ds})/Observations", qos=0)
        self.c.loop_start()
        time.sleep(0.3)

    def _on_message(self, c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        body = orjson.loads(m.payload)
        if "@iot.id" not in body:
            return  # our own publication, as the broker relays it to every subscriber
        k = int(body["result"])
        if k in self.sent and k not in self.latency:
            self.latency[k] = now - self.sent[k]
            self.ids[k] = body["@iot.id"]

    def run(self) -> None:
        k = 0
        while not self.halt.wait(PROBE_EVERY_S):
            t = (T0 + timedelta(seconds=self.offset + k)).isoformat()
            self.sent[k] = time.perf_counter()
            self.c.publish(
                f"v1.1/Datastreams({self.ds})/Observations",
                orjson.dumps({"phenomenonTime": t, "result": k}),
                qos=self.qos,
            )
            k += 1

    def stop(self) -> None:
        self.halt.set()
        self.join()
        time.sleep(1.0)
        self.c.disconnect()
        self.c.loop_stop()


def count(http: httpx.Client, ds: int) -> int:
    return http.get(f"/v1.1/Datastreams({ds})/Observations?$count=true&$top=0").json()["@iot.count"]


def run_phase(
    report: Report,
    server: Server,
    http: httpx.Client,
    host: str,
    port: int,
    ds_ids: list[int],
    probe_ds: int,
    qos: int,
    n: int,
    rate: int,
    offset: int,
) -> None:
    per = n // len(ds_ids)
    n = per * len(ds_ids)
    log(f"QoS {qos}: {n:,} messages at {rate:,}/s over {len(ds_ids)} topics")
    before = {d: count(http, d) for d in ds_ids}
    pubs = [
        subprocess.Popen(
            [
                "mosquitto_pub",
                "-h",
                host,
                "-p",
                str(port),
                "-q",
                str(qos),
                "-t",
                f"v1.1/Datastreams({d})/Observations",
                "-l",
            ],
            stdin=subprocess.PIPE,
        )
        for d in ds_ids
    ]
    probe = Probe(host, port, probe_ds, qos, offset)
    probe.start()
    phase = Phase(server.pid)
    chunk_s = 0.01
    per_chunk = max(1, int(rate * chunk_s / len(ds_ids)))
    sent = 0
    t_start = time.perf_counter()
    while sent < per:
        k = min(per_chunk, per - sent)
        for p in pubs:
            lines = b"".join(
                b'{"phenomenonTime":"%s","result":%d.5}\n'
                % ((T0 + timedelta(seconds=offset + sent + i)).strftime("%Y-%m-%dT%H:%M:%SZ").encode(), (sent + i) % 97)
                for i in range(k)
            )
            assert p.stdin is not None
            p.stdin.write(lines)
            p.stdin.flush()
        sent += k
        delay = t_start + sent * len(ds_ids) / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    for p in pubs:
        assert p.stdin is not None
        p.stdin.close()
    for p in pubs:
        p.wait()
    publish_s = time.perf_counter() - t_start
    # Wait until every message is stored (or nothing more arrives for 10 s).
    last, last_change = -1, time.monotonic()
    while True:
        got = sum(count(http, d) - before[d] for d in ds_ids)
        if got >= n or time.monotonic() - last_change > 10:
            break
        if got != last:
            last, last_change = got, time.monotonic()
        time.sleep(0.2)
    phase.stop()
    probe.stop()  # after the drain: probes stuck in a backlog are late, not lost
    drain_s = phase.wall - publish_s
    lat = [v * 1000 for v in probe.latency.values()]
    lost_probes = len(probe.sent) - len(probe.latency)
    readable = sum(http.get(f"/v1.1/Observations({oid})").status_code == 200 for oid in list(probe.ids.values())[:200])
    sustained = got / max(phase.wall, 1e-9)
    log(f"  stored {got:,}/{n:,} in {phase.wall:.1f}s (published in {publish_s:.1f}s, drained {drain_s:.1f}s later)")
    log(f"  {phase.cpu_text()}")
    log(
        f"  probes {len(probe.sent)}: announced {len(probe.latency)}, latency p50 {percentile(lat, 0.5):.1f} ms, "
        f"p99 {percentile(lat, 0.99):.1f} ms, max {max(lat or [0]):.1f} ms; {readable} of the first 200 read back"
    )
    health = http.get("/healthz").json()["mqtt"]
    target = 20_000 if qos == 0 else 5_000
    report.add(
        f"QoS {qos}: sustained ingestion, {n:,} messages offered at {rate:,}/s",
        f"{sustained:,.0f} msg/s; stored {got:,} of {n:,} (lost {n - got:,})",
        f">= {target:,}/s, zero loss",
        sustained >= target and got == n,
    )
    report.add(
        f"QoS {qos}: publish → stored latency (probe every 20 ms)",
        f"p50 {percentile(lat, 0.5):.1f} ms, p99 {percentile(lat, 0.99):.1f} ms "
        f"({len(lat)} probes, {lost_probes} not announced)",
    )
    report.add(
        f"QoS {qos}: CPU of the hub (with its MQTT process)",
        f"{phase.server_cpu / phase.wall:.0%} of a core; other processes {phase.other_cpu / phase.wall:.0%}; "
        f"dead letters {health['dead_letters']}",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--rate0", type=int, default=24_000, help="offered QoS 0 rate, messages/s")
    ap.add_argument("--rate1", type=int, default=6_000, help="offered QoS 1 rate, messages/s")
    ap.add_argument("--broker", default=None, help="mqtt://host:port of a running broker (default: start one)")
    ap.add_argument(
        "--publish", default="datastreams,observations,entities", help="CITYHUB_MQTT_PUBLISH of the hub (its default)"
    )
    ap.add_argument("--qos", default="0,1", help="which phases to run")
    args = ap.parse_args()
    if not shutil.which("mosquitto_pub") or (args.broker is None and not shutil.which("mosquitto")):
        raise SystemExit("needs mosquitto and mosquitto_pub (apt-get install mosquitto mosquitto-clients)")
    tmp = make_tmpdir("mqtt")
    broker = None
    server = None
    report = Report()
    try:
        if args.broker:
            host, port = args.broker.removeprefix("mqtt://").split(":")
            bport = int(port)
        else:
            broker, bport = start_broker(tmp)
            host = "127.0.0.1"
        data_dir = tmp / "var"
        key = create_admin_key(data_dir)
        server = Server(
            data_dir,
            free_port(),
            key,
            args=("--mqtt", f"mqtt://{host}:{bport}", "--mqtt-client-id", f"bench-{uuid.uuid4().hex[:6]}"),
            env={"CITYHUB_MQTT_PUBLISH": args.publish},
        )
        server.start()
        with httpx.Client(base_url=server.base, headers=server.headers, timeout=60) as http:
            ids = []
            for i in range(TOPICS + 1):
                thing = http.post("/v1.1/Things", json=station(f"Detector {i}")).json()["@iot.id"]
                ids.append(http.get(f"/v1.1/Things({thing})/Datastreams").json()["value"][0]["@iot.id"])
            probe_ds, ds_ids = ids[0], ids[1:]
            deadline = time.monotonic() + 10
            while not http.get("/healthz").json()["mqtt"]["connected"] and time.monotonic() < deadline:
                time.sleep(0.1)
            log(f"hub {server.base} (pid {server.pid}), broker {host}:{bport}, publishing {args.publish!r}")
            if "0" in args.qos:
                run_phase(report, server, http, host, bport, ds_ids, probe_ds, 0, args.messages, args.rate0, 0)
            if "1" in args.qos:
                run_phase(report, server, http, host, bport, ds_ids, probe_ds, 1, args.messages, args.rate1, 10_000_000)
            assert server.monitor is not None
            report.add("hub peak RSS", f"{server.monitor.hwm_mb:,.0f} MB")
    finally:
        if server is not None:
            server.stop()
        if broker is not None:
            broker.terminate()
            broker.wait(10)
        remove_tmpdir(tmp)
    report.print()


if __name__ == "__main__":
    main()
