"""Settings: command-line flags override ``CITYHUB_*`` environment variables override defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path


def _env_bool(name: str, default: bool) -> bool:
    v = os.environ.get(name)
    if v is None:
        return default
    return v.strip().lower() in ("1", "true", "yes", "on")


def _env_path(name: str) -> Path | None:
    v = os.environ.get(name)
    return Path(v) if v else None


@dataclass
class Settings:
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get("CITYHUB_DATA_DIR", "var")))
    host: str = field(default_factory=lambda: os.environ.get("CITYHUB_HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: int(os.environ.get("CITYHUB_PORT", "8080")))
    # Anonymous clients may read (citizens through the public API); set false for a closed deployment.
    anonymous_read: bool = field(default_factory=lambda: _env_bool("CITYHUB_ANONYMOUS_READ", True))
    # Observations stamped further ahead than this are refused as clock errors.
    max_future: timedelta = field(
        default_factory=lambda: timedelta(seconds=float(os.environ.get("CITYHUB_MAX_FUTURE_S", "86400")))
    )
    max_top: int = 10_000
    default_top: int = 100
    # Local days for aggregates: Hanoi is UTC+7 all year (no daylight saving).
    day_offset_minutes: int = field(default_factory=lambda: int(os.environ.get("CITYHUB_DAY_OFFSET_MIN", "420")))
    # Request bodies over this many bytes are refused with a 413 before they are read.
    max_body_bytes: int = field(
        default_factory=lambda: int(os.environ.get("CITYHUB_MAX_BODY_BYTES", str(256 * 1024 * 1024)))
    )
    # Base of @iot.selfLink in messages published outside a request (MQTT); default http://host:port.
    public_url: str | None = field(default_factory=lambda: os.environ.get("CITYHUB_PUBLIC_URL"))
    # MQTT bridge (off unless a broker URL is given): mqtt://host:1883 or mqtts://host:8883, with
    # optional user:password@ in the URL or the settings below.
    mqtt_url: str | None = field(default_factory=lambda: os.environ.get("CITYHUB_MQTT"))
    mqtt_username: str | None = field(default_factory=lambda: os.environ.get("CITYHUB_MQTT_USERNAME"))
    mqtt_password: str | None = field(default_factory=lambda: os.environ.get("CITYHUB_MQTT_PASSWORD"))
    # The broker keeps this client's session (subscriptions, queued QoS 1 messages) while the hub is down.
    mqtt_client_id: str = field(default_factory=lambda: os.environ.get("CITYHUB_MQTT_CLIENT_ID", "cityhub"))
    mqtt_ca_file: Path | None = field(default_factory=lambda: _env_path("CITYHUB_MQTT_CA"))
    mqtt_cert_file: Path | None = field(default_factory=lambda: _env_path("CITYHUB_MQTT_CERT"))
    mqtt_key_file: Path | None = field(default_factory=lambda: _env_path("CITYHUB_MQTT_KEY"))
    mqtt_tls_insecure: bool = field(default_factory=lambda: _env_bool("CITYHUB_MQTT_TLS_INSECURE", False))
    # YAML file mapping device topics and payload formats to Datastreams.
    mqtt_mappings: Path | None = field(default_factory=lambda: _env_path("CITYHUB_MQTT_MAPPINGS"))
    # What the hub publishes for MQTT subscribers: "datastreams" (each new Observation on
    # v1.1/Datastreams(<id>)/Observations), "observations" (also on the v1.1/Observations firehose, one more
    # message each), "entities" (created/updated entities), or "none".
    mqtt_publish: str = field(default_factory=lambda: os.environ.get("CITYHUB_MQTT_PUBLISH", "datastreams,entities"))
    # QoS of what the hub publishes.
    mqtt_publish_qos: int = field(default_factory=lambda: int(os.environ.get("CITYHUB_MQTT_PUBLISH_QOS", "0")))
    # The dashboard's basemap: an XYZ tile URL template ({z}/{x}/{y}) and its attribution; empty = a plain
    # background (no network needed; the data layers are drawn either way).
    tile_url: str = field(default_factory=lambda: os.environ.get("CITYHUB_TILE_URL", ""))
    tile_attribution: str = field(default_factory=lambda: os.environ.get("CITYHUB_TILE_ATTRIBUTION", ""))

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def db_path(self) -> Path:
        return self.data_dir / "cityhub.duckdb"

    @property
    def keys_path(self) -> Path:
        return self.data_dir / "keys.json"
