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
    max_body_bytes: int = 256 * 1024 * 1024

    @property
    def db_path(self) -> Path:
        return self.data_dir / "cityhub.duckdb"

    @property
    def keys_path(self) -> Path:
        return self.data_dir / "keys.json"
