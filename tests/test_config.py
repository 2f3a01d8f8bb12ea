"""Settings: ``CITYHUB_*`` environment variables, keyword arguments over them, refused bad values."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from cityhub.config import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("CITYHUB_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = Settings()
    assert (s.data_dir, s.host, s.port, s.anonymous_read) == (Path("var"), "127.0.0.1", 8080, True)
    assert (s.max_future, s.max_top, s.default_top, s.day_offset_minutes) == (timedelta(days=1), 10_000, 100, 420)
    assert s.max_body_bytes == 4 * 1024 * 1024 * 1024 and s.public_url is None
    assert (s.mqtt_url, s.mqtt_username, s.mqtt_password, s.mqtt_client_id) == (None, None, None, "cityhub")
    assert (s.mqtt_ca_file, s.mqtt_cert_file, s.mqtt_key_file, s.mqtt_mappings) == (None, None, None, None)
    assert not s.mqtt_tls_insecure and (s.mqtt_publish, s.mqtt_publish_qos) == ("datastreams,observations,entities", 0)
    assert (s.tile_url, s.tile_attribution) == ("", "")
    assert (s.base_url, s.db_path, s.keys_path) == ("http://127.0.0.1:8080", Path("var/cityhub.duckdb"),
                                                     Path("var/keys.json"))  # fmt: skip


def test_environment_variables_map_to_fields(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "CITYHUB_DATA_DIR": str(tmp_path),
        "CITYHUB_HOST": "0.0.0.0",
        "CITYHUB_PORT": "9000",
        "CITYHUB_ANONYMOUS_READ": "false",
        "CITYHUB_MAX_FUTURE_S": "90.5",
        "CITYHUB_DAY_OFFSET_MIN": "0",
        "CITYHUB_MAX_BODY_BYTES": "1024",
        "CITYHUB_PUBLIC_URL": "https://hub.example/",
        "CITYHUB_MQTT": "mqtts://broker:8883",
        "CITYHUB_MQTT_USERNAME": "hub",
        "CITYHUB_MQTT_PASSWORD": "secret",
        "CITYHUB_MQTT_CLIENT_ID": "hub-1",
        "CITYHUB_MQTT_CA": "/etc/ca.pem",
        "CITYHUB_MQTT_CERT": "/etc/cert.pem",
        "CITYHUB_MQTT_KEY": "/etc/key.pem",
        "CITYHUB_MQTT_TLS_INSECURE": "1",
        "CITYHUB_MQTT_MAPPINGS": "/etc/map.yaml",
        "CITYHUB_MQTT_PUBLISH": "none",
        "CITYHUB_MQTT_PUBLISH_QOS": "1",
        "CITYHUB_TILE_URL": "https://tiles/{z}/{x}/{y}.png",
        "CITYHUB_TILE_ATTRIBUTION": "© tiles",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = Settings()
    assert (s.data_dir, s.host, s.port, s.anonymous_read) == (tmp_path, "0.0.0.0", 9000, False)
    assert s.max_future == timedelta(seconds=90.5)  # CITYHUB_MAX_FUTURE_S, in seconds
    assert s.day_offset_minutes == 0  # CITYHUB_DAY_OFFSET_MIN
    assert s.max_body_bytes == 1024 and s.base_url == "https://hub.example"
    assert s.mqtt_url == "mqtts://broker:8883"  # CITYHUB_MQTT
    assert (s.mqtt_username, s.mqtt_password, s.mqtt_client_id) == ("hub", "secret", "hub-1")
    assert s.mqtt_ca_file == Path("/etc/ca.pem")  # CITYHUB_MQTT_CA
    assert s.mqtt_cert_file == Path("/etc/cert.pem")  # CITYHUB_MQTT_CERT
    assert s.mqtt_key_file == Path("/etc/key.pem")  # CITYHUB_MQTT_KEY
    assert s.mqtt_tls_insecure and s.mqtt_mappings == Path("/etc/map.yaml")
    assert (s.mqtt_publish, s.mqtt_publish_qos) == ("none", 1)
    assert (s.tile_url, s.tile_attribution) == ("https://tiles/{z}/{x}/{y}.png", "© tiles")
    assert s.db_path == tmp_path / "cityhub.duckdb" and s.keys_path == tmp_path / "keys.json"


def test_only_the_documented_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # The field names of renamed variables, and fields that have no variable, are not read from the environment.
    for name in ("CITYHUB_MQTT_URL", "MQTT_URL", "CITYHUB_MQTT_CA_FILE", "CITYHUB_MAX_FUTURE",
                 "CITYHUB_DAY_OFFSET_MINUTES", "CITYHUB_MAX_TOP", "CITYHUB_DEFAULT_TOP"):  # fmt: skip
        monkeypatch.setenv(name, "7")
    s = Settings()
    assert s.mqtt_url is None and s.mqtt_ca_file is None and s.max_future == timedelta(days=1)
    assert (s.day_offset_minutes, s.max_top, s.default_top) == (420, 10_000, 100)
    monkeypatch.setenv("CITYHUB_MQTT_CA", "")  # empty: no file (not the current directory)
    assert Settings().mqtt_ca_file is None


def test_keyword_arguments_override_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CITYHUB_DATA_DIR", "/from/env")
    monkeypatch.setenv("CITYHUB_PORT", "9000")
    monkeypatch.setenv("CITYHUB_MQTT", "mqtt://env:1883")
    monkeypatch.setenv("CITYHUB_MAX_FUTURE_S", "60")
    s = Settings(data_dir=tmp_path, mqtt_url="mqtt://kw:1883", max_future=timedelta(hours=2), max_top=50)
    assert (s.data_dir, s.port, s.mqtt_url) == (tmp_path, 9000, "mqtt://kw:1883")
    assert (s.max_future, s.max_top) == (timedelta(hours=2), 50)
    # Attributes set afterwards (what `cityhub serve` does with its flags) are validated as well.
    s.mqtt_ca_file = "/etc/ca.pem"  # type: ignore[assignment]
    s.port = 8081
    assert s.mqtt_ca_file == Path("/etc/ca.pem") and s.base_url == "http://127.0.0.1:8081"
    with pytest.raises(ValidationError, match="port"):
        s.port = "abc"  # type: ignore[assignment]
    with pytest.raises(ValidationError, match="no_such_setting"):
        Settings(no_such_setting=1)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("CITYHUB_PORT", "abc", "port"),
        ("CITYHUB_ANONYMOUS_READ", "maybe", "anonymous_read"),
        ("CITYHUB_MAX_FUTURE_S", "soon", "CITYHUB_MAX_FUTURE_S"),
        ("CITYHUB_DAY_OFFSET_MIN", "7h", "CITYHUB_DAY_OFFSET_MIN"),
        ("CITYHUB_MQTT_PUBLISH_QOS", "one", "mqtt_publish_qos"),
    ],
)
def test_a_bad_value_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch, name: str, value: str, named: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as err:
        Settings()
    (e,) = err.value.errors()
    assert e["loc"] == (named,) and e["input"] == value
    assert named in str(err.value) and value in str(err.value)
