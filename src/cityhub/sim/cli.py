"""``cityhub simulate``: feed the simulated Hanoi into a running hub, over HTTP or MQTT.

Entities are created through the public SensorThings API where missing (found by name; an admin key is needed
the first time). Readings go to ``POST /api/v1/ingest`` (NDJSON, ``partial=true``) or, with ``--via mqtt``, are
published one by one as SensorThings Observations to ``v1.1/Datastreams(<id>)/Observations`` at QoS 1.
"""

from __future__ import annotations

import re
import signal
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

import typer

from cityhub.timefmt import TimeFormatError, iso_time, parse_iso

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """ "90s", "5m", "2h", "1d", or a number of seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text.lower())
    if not m:
        raise typer.BadParameter(f"{text!r} is not a duration such as 90s, 5m, 2h or 1d")
    return timedelta(seconds=float(m.group(1)) * UNITS[m.group(2) or "s"])


def parse_speed(text: str) -> float:
    """ "60x" or "60": simulated seconds per wall-clock second."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*x?\s*", text.lower())
    if not m or float(m.group(1)) <= 0:
        raise typer.BadParameter(f"{text!r} is not a speed such as 1x or 60x")
    return float(m.group(1))


def parse_start(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return parse_iso(text, assume=UTC)  # a start on the command line may omit the zone: UTC
    except TimeFormatError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 date or time") from None


@dataclass
class Totals:
    sent: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    left_to_demo: int = 0  # readings at times the hub's own demo city feeds (not sent)


class HttpSink:
    """Readings as NDJSON bodies to POST /api/v1/ingest?partial=true."""

    def __init__(self, client: Any, totals: Totals) -> None:
        self.client, self.totals = client, totals

    def send(self, rows: list[tuple[int, datetime, float]]) -> None:
        import orjson

        for k in range(0, len(rows), 20_000):
            body = b"\n".join(
                orjson.dumps({"datastream": ds, "phenomenonTime": iso_time(t), "result": v})
                for ds, t, v in rows[k : k + 20_000]
            )
            r = self.client.post(
                "/api/v1/ingest", params={"partial": "true"}, content=body,
                headers={"Content-Type": "application/x-ndjson"},
            )  # fmt: skip
            if r.status_code not in (200, 207):  # 207: some rows refused (counted below), the rest stored
                raise RuntimeError(f"ingest failed: {r.status_code} {r.text[:500]}")
            out = r.json()
            self.totals.stored += out["stored"]
            self.totals.duplicates += out["duplicates"]
            self.totals.rejected += out["rejected"]

    def close(self) -> None:
        pass


class MqttSink:
    """Readings as SensorThings Observations to v1.1/Datastreams(<id>)/Observations, QoS 1 (paho-mqtt 2)."""

    def __init__(self, url: str, client_id: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        u = urlsplit(url)
        if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise typer.BadParameter(f"{url!r}: use mqtt://host:1883 or mqtts://host:8883")
        tls = u.scheme in ("mqtts", "ssl")
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id)
        if u.username:
            self.client.username_pw_set(unquote(u.username), unquote(u.password or ""))
        if tls:
            self.client.tls_set_context(ssl.create_default_context())
        self.client.connect(u.hostname or "127.0.0.1", u.port or (8883 if tls else 1883))
        self.client.loop_start()

    def send(self, rows: list[tuple[int, datetime, float]]) -> None:
        import orjson

        infos = [
            self.client.publish(
                f"v1.1/Datastreams({ds})/Observations",
                orjson.dumps({"phenomenonTime": iso_time(t), "result": v}),
                qos=1,
            )
            for ds, t, v in rows
        ]
        for info in infos:  # at-least-once: wait for the broker's PUBACKs before the next tick
            info.wait_for_publish(timeout=30)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class DemoHub(RuntimeError):
    """The hub runs the demo city over the whole period asked for."""


def _demo_since(client: Any) -> datetime | None:
    """From when the hub's own demo city feeds the simulated Datastreams (None: the hub runs no demo)."""
    r = client.get("/api")
    demo = r.json().get("demo") if r.status_code == 200 else None
    return datetime.fromisoformat(demo["since"].replace("Z", "+00:00")) if demo else None


def run_simulate(
    *,
    url: str,
    key: str | None,
    seed: int,
    start: datetime | None,
    speed: float,
    duration: timedelta | None,
    backfill: timedelta,
    faults: bool,
    via: str,
    mqtt_url: str,
    kinds: list[str],
    tick_s: float = 1.0,
    echo: Any = print,
) -> Totals:
    """Run the simulator against a hub; returns what was sent and what the hub said about it (HTTP)."""
    import httpx

    from cityhub.sim.entities import HttpBackend, provision
    from cityhub.sim.faults import FaultConfig
    from cityhub.sim.generator import Simulator

    sim_start = start or datetime.now(UTC)
    sim = Simulator(seed, start=sim_start - backfill, faults=FaultConfig() if faults else None, kinds=kinds)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    totals = Totals()
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=60) as client:
        demo_since = _demo_since(client)
        if demo_since is not None and sim.start >= demo_since:
            raise DemoHub(
                f"{url} runs the demo city (serve --demo), which feeds these Datastreams itself from "
                f"{demo_since:%Y-%m-%d %H:%M}Z on: simulate a past period instead (e.g. --start 2017-01-10 --speed "
                "60x), or run against a hub without --demo"
            )
        previous = signal.signal(signal.SIGTERM, stop)
        ids = provision(HttpBackend(client), sim.sensors())
        echo(f"{len(ids)} Datastreams on {url}; simulating from {sim.start:%Y-%m-%d %H:%M}Z at {speed:g}x")
        sink: HttpSink | MqttSink = (
            HttpSink(client, totals) if via == "http" else MqttSink(mqtt_url, f"cityhub-sim-{seed}")
        )
        wall0 = time.monotonic()
        reported = wall0
        try:
            while True:
                elapsed = time.monotonic() - wall0
                now = sim_start + timedelta(seconds=elapsed * speed)
                due = sim.step(now)
                if demo_since is not None:  # the demo's own hours: its readings are there already
                    kept = [r for r in due if r.time < demo_since]
                    totals.left_to_demo += len(due) - len(kept)
                    due = kept
                if due:
                    sink.send([(ids[r.key], r.time, r.value) for r in due])
                    totals.sent += len(due)
                    for r in due:
                        for f in filter(None, r.fault.split("+")):
                            totals.faults[f] = totals.faults.get(f, 0) + 1
                if time.monotonic() - reported >= 10:
                    reported = time.monotonic()
                    echo(f"{now:%Y-%m-%d %H:%M}Z  sent {totals.sent:,}  stored {totals.stored:,}")
                if stopping or (duration is not None and elapsed >= duration.total_seconds()):
                    break
                time.sleep(max(0.0, min(tick_s, duration.total_seconds() - elapsed) if duration else tick_s))
        except KeyboardInterrupt:
            pass
        finally:
            sink.close()
            signal.signal(signal.SIGTERM, previous)
    return totals


def simulate(
    url: Annotated[
        str, typer.Option(help="the hub's base URL (entities are created through its API)", envvar="CITYHUB_URL")
    ] = "http://127.0.0.1:8080",
    key: Annotated[
        str | None, typer.Option(help="API key sent as Bearer; admin to create the entities", envvar="CITYHUB_KEY")
    ] = None,
    seed: Annotated[int, typer.Option(help="random seed: the same seed and start give the same stream")] = 7,
    start: Annotated[
        str | None, typer.Option(help="simulated time to begin at, ISO 8601 (UTC if no zone), e.g. 2017-01-10")
    ] = None,
    speed: Annotated[str, typer.Option(help="time compression: simulated per wall-clock time, e.g. 60x")] = "1x",
    duration: Annotated[str | None, typer.Option(help="stop after this wall-clock time (90s, 5m, 2h)")] = None,
    backfill: Annotated[str, typer.Option(help="first send this much history before --start (e.g. 48h)")] = "0h",
    faults: Annotated[bool, typer.Option("--faults/--no-faults", help="inject gaps, spikes, late messages…")] = True,
    via: Annotated[str, typer.Option(help="http (bulk ingest) or mqtt (one Observation per message)")] = "http",
    mqtt: Annotated[str, typer.Option(help="broker for --via mqtt")] = "mqtt://127.0.0.1:1883",
    kinds: Annotated[str, typer.Option(help="comma-separated subset of air,traffic,water")] = "air,traffic,water",
) -> None:
    """Simulate Hanoi's sensors (air quality, traffic, Red River and Tô Lịch levels) against a running hub.

    Note: the hub refuses readings more than a day ahead of its clock, so with --speed above 1x give a --start in
    the past (e.g. --start 2017-01-10 --speed 60x replays a hazardous January at an hour a minute).
    """
    import httpx
    from rich.console import Console

    console = Console()
    if via not in ("http", "mqtt"):
        raise typer.BadParameter("--via must be http or mqtt")
    chosen = [k.strip() for k in kinds.split(",") if k.strip()]
    if not chosen or set(chosen) - {"air", "traffic", "water"}:
        raise typer.BadParameter("--kinds takes air, traffic and/or water")
    try:
        totals = run_simulate(
            url=url, key=key, seed=seed, start=parse_start(start), speed=parse_speed(speed),
            duration=parse_duration(duration) if duration else None, backfill=parse_duration(backfill),
            faults=faults, via=via, mqtt_url=mqtt, kinds=chosen, echo=console.print,
        )  # fmt: skip
    except httpx.HTTPError as exc:
        console.print(f"no hub at {url}: {exc}", style="red", markup=False)
        raise typer.Exit(1) from None
    except (OSError, RuntimeError) as exc:
        console.print(str(exc), style="red", markup=False)
        raise typer.Exit(1) from None
    faults_text = ", ".join(f"{k} {v:,}" for k, v in sorted(totals.faults.items())) or "none"
    if totals.left_to_demo:
        console.print(f"{totals.left_to_demo:,} readings not sent: the hub's demo city feeds those hours itself")
    if via == "http":
        console.print(
            f"sent {totals.sent:,} readings: stored {totals.stored:,}, duplicates {totals.duplicates:,}, "
            f"rejected {totals.rejected:,}; faults injected: {faults_text}"
        )
    else:
        console.print(f"published {totals.sent:,} Observations; faults injected: {faults_text}")
