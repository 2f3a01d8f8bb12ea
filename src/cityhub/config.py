"""Settings: command-line flags override ``CITYHUB_*`` environment variables override defaults.

A field reads ``CITYHUB_<FIELD NAME>`` unless it names another variable (``validation_alias``); a value that does
not parse (``CITYHUB_PORT=abc``) is refused at start-up: a validation error naming the field (``port``; the
variable for a renamed one, ``CITYHUB_MAX_FUTURE_S``), the value and the reason. Keyword arguments
(``Settings(data_dir=...)``, by field name) override the environment, and an attribute set afterwards is validated
too.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

# Fields without an environment variable: set in code (or by keyword) only.
_NOT_FROM_ENV = frozenset({"max_top", "default_top"})


class _Environment(EnvSettingsSource):
    """One variable a field: its ``validation_alias`` if it has one (only that: not also ``CITYHUB_<FIELD NAME>``),
    else ``CITYHUB_<FIELD NAME>``; none for the fields in ``_NOT_FROM_ENV``."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name in _NOT_FROM_ENV:
            return None, field_name, False
        alias = field.validation_alias if isinstance(field.validation_alias, str) else None
        name = alias or f"{self.env_prefix}{field_name}"
        value = self.env_vars.get(name if self.case_sensitive else name.lower())
        return value, alias or field_name, False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CITYHUB_",
        validate_assignment=True,  # `cityhub serve` sets its flags' values as attributes
        extra="forbid",
    )

    data_dir: Path = Path("var")
    # Where the data lives: empty for the embedded DuckDB file under data_dir, or a PostgreSQL/PostGIS database
    # (postgresql://user@host:5432/db, optionally ?schema=name) that several hub processes can share.
    store: str = ""
    # PostgreSQL: connections this process may open, a statement's longest run (cancelled past it, answered 503),
    # and how long a request waits for a free connection before it is answered 503.
    pg_pool_size: int = 16
    pg_statement_timeout_s: float = 30.0
    pg_pool_timeout_s: float = 10.0
    host: str = "127.0.0.1"
    port: int = 8080
    # Anonymous clients may read (citizens through the public API); set false for a closed deployment.
    anonymous_read: bool = True
    # Observations stamped further ahead than this are refused as clock errors (the variable is in seconds).
    max_future: timedelta = Field(timedelta(seconds=86400), validation_alias="CITYHUB_MAX_FUTURE_S")
    max_top: int = 10_000
    default_top: int = 100
    # Local days for aggregates: Hanoi is UTC+7 all year (no daylight saving).
    day_offset_minutes: int = Field(420, validation_alias="CITYHUB_DAY_OFFSET_MIN")
    # Bulk bodies over this many bytes are refused with a 413 before they are read (bulk bodies stream: memory does
    # not grow with their size).
    max_body_bytes: int = 4 * 1024 * 1024 * 1024
    # SensorThings Part 2 Tasking Core (Actuators, TaskingCapabilities, Tasks) at /v1.1: off by default, as in
    # FROST-Server, since the OGC suite of Part 1 refuses other entity sets in the service root.
    tasking: bool = False
    # Base of @iot.selfLink in messages published outside a request (MQTT); default http://host:port.
    public_url: str | None = None
    # MQTT bridge (off unless a broker URL is given): mqtt://host:1883 or mqtts://host:8883, with
    # optional user:password@ in the URL or the settings below.
    mqtt_url: str | None = Field(None, validation_alias="CITYHUB_MQTT")
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    # The broker keeps this client's session (subscriptions, queued QoS 1 messages) while the hub is down.
    mqtt_client_id: str = "cityhub"
    mqtt_ca_file: Path | None = Field(None, validation_alias="CITYHUB_MQTT_CA")
    mqtt_cert_file: Path | None = Field(None, validation_alias="CITYHUB_MQTT_CERT")
    mqtt_key_file: Path | None = Field(None, validation_alias="CITYHUB_MQTT_KEY")
    mqtt_tls_insecure: bool = False
    # YAML file mapping device topics and payload formats to Datastreams.
    mqtt_mappings: Path | None = None
    # What the hub publishes for MQTT subscribers: "datastreams" (each new Observation on
    # v1.1/Datastreams(<id>)/Observations), "observations" (also on the v1.1/Observations firehose, one more
    # message each), "entities" (created/updated entities), or "none".
    mqtt_publish: str = "datastreams,observations,entities"
    # QoS of what the hub publishes.
    mqtt_publish_qos: int = 0
    # The dashboard's basemap: an XYZ tile URL template ({z}/{x}/{y}) and its attribution; empty = a plain
    # background (no network needed; the data layers are drawn either way).
    tile_url: str = ""
    tile_attribution: str = ""
    # Without tiles the dashboard draws Hà Nội's wards and main roads from this folder (the project's reference
    # data, ../shared/data/geo beside the checkout; read at run time, never copied into the repository).
    geo_dir: Path = Path(__file__).resolve().parents[3] / "shared" / "data" / "geo"
    # -- limits: what one request, client or connection may cost ------------------------------------------------
    # The embedded store's memory for cached data and indexes (DuckDB syntax, e.g. "2GB"; empty: DuckDB's default,
    # 80 % of the machine). Past it DuckDB works from the file.
    duckdb_memory_limit: str = "1GB"
    # $expand: levels of nesting, and entities in one response (the top level and everything expanded in it).
    max_expand_depth: int = 5
    max_response_entities: int = 100_000
    # JSON bodies (entities, rules, webhooks, queries) are small: a tighter limit than bulk ingest's.
    max_json_body_bytes: int = 16 * 1024 * 1024
    # Rows waiting for the Observation writer; past this, writes are answered 503 with Retry-After.
    max_queued_rows: int = 1_000_000
    # Requests per client address without a key, and failed key checks per address (the `limits` syntax;
    # empty: no limit). Clients with a key are limited by `rate_limit_keyed` per key.
    rate_limit_anonymous: str = "100/second"
    rate_limit_keyed: str = ""
    rate_limit_auth_failures: str = "30/minute"
    # The key file (`cityhub keys`) is looked at again at most this often: a revoked key is refused within this many
    # seconds (a new key works at once). 0: on every request, one system call each.
    keys_check_interval_s: float = Field(0.1, ge=0)
    # Live streams (server-sent events): connections at once, and events buffered for one slow reader before
    # it is dropped with a reason.
    max_stream_clients: int = 100
    stream_buffer_events: int = 1000
    # DuckDB: checkpoint the write-ahead log into the database file every this many seconds, or sooner once the
    # log passes this size.
    checkpoint_interval_s: float = 300.0
    checkpoint_wal_bytes: int = 64 * 1024 * 1024
    # Webhook targets that resolve to loopback, private, link-local or other non-public addresses are refused
    # unless their host is listed here (comma-separated names or addresses, e.g. "127.0.0.1,alerts.internal").
    webhook_allow_hosts: str = ""
    # -- MQTT hardening ------------------------------------------------------------------------------------------
    # Store an MQTT Observation only for a Datastream that some device credential (`cityhub mqtt credentials`) may
    # write: the hub's check behind the broker's ACL, which alone knows who published. Off for an open test broker.
    mqtt_authorize: bool = False
    # With anonymous_read false the hub republishes (Observations, entities, alerts) only under this topic prefix
    # (e.g. "private/"), which the generated ACL lets only the hub and reader credentials read; empty: not at all.
    mqtt_private_prefix: str = ""
    # A folder where the hub keeps the broker's password and ACL files (mosquitto.passwd, mosquitto.acl) current
    # after entity and credential changes, and the broker's pid file, signalled (SIGHUP) to reload them; "": none.
    mqtt_acl_dir: str = ""
    mqtt_broker_pid_file: str = ""
    # Republication messages waiting for the MQTT process; beyond this new ones are dropped and counted
    # (/healthz mqtt.publish_dropped), so a burst cannot grow the hub's or the MQTT process's memory.
    mqtt_publish_queue: int = 100_000
    # The MQTT process is restarted after this delay when it dies, doubling up to mqtt_restart_max_s.
    mqtt_restart_delay_s: float = 1.0
    mqtt_restart_max_s: float = 30.0

    def __init__(self, **values: Any) -> None:
        # A keyword argument by field name (mqtt_url=...) stands for the field's variable (CITYHUB_MQTT), so that it
        # overrides the environment (pydantic-settings before 2.12 would let the variable win over populate_by_name).
        for name, field in type(self).model_fields.items():
            if isinstance(field.validation_alias, str) and name in values:
                values[field.validation_alias] = values.pop(name)
        super().__init__(**values)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _Environment(settings_cls)  # no .env file, no secrets directory

    @field_validator("max_future", mode="before")
    @classmethod
    def _seconds(cls, v: Any) -> Any:
        """A number (``CITYHUB_MAX_FUTURE_S=3600``) is seconds; a timedelta or an ISO 8601 duration passes."""
        if isinstance(v, str):
            try:
                return timedelta(seconds=float(v))
            except (ValueError, OverflowError):
                return v
        return v

    @field_validator("mqtt_ca_file", "mqtt_cert_file", "mqtt_key_file", "mqtt_mappings", mode="before")
    @classmethod
    def _no_path(cls, v: Any) -> Any:
        """An empty variable is no file (not the current directory)."""
        return None if v == "" else v

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @field_validator("store")
    @classmethod
    def _store_url(cls, v: str) -> str:
        v = v.strip()
        if v and not v.startswith(("postgresql://", "postgres://")):
            raise ValueError("a postgresql:// URL (postgresql://user@host:5432/db), or empty for the embedded store")
        return v

    @property
    def db_path(self) -> Path:
        return self.data_dir / "cityhub.duckdb"

    @property
    def keys_path(self) -> Path:
        return self.data_dir / "keys.json"
