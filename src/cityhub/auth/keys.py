"""API keys with roles.

Keys live in ``<data-dir>/keys.json`` rather than in the DuckDB file so that ``cityhub keys create`` works
while ``cityhub serve`` owns the database; the server re-reads the file when it changes. Only SHA-256
hashes are stored: keys are 256-bit random tokens, so a fast hash is enough (slow password hashes exist
to protect guessable secrets).
"""

from __future__ import annotations

import base64
import binascii
import builtins
import hashlib
import os
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

ROLES = ("admin", "operator", "device")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a role, and for device keys the Thing whose Datastreams it may write."""

    role: str  # admin | operator | device | anonymous
    name: str
    thing_id: int | None = None

    @property
    def can_read(self) -> bool:
        return self.role in ("admin", "operator", "device", "anonymous")

    @property
    def can_manage_model(self) -> bool:
        return self.role == "admin"

    @property
    def can_operate(self) -> bool:
        """Operations-centre work: dead letters, rules and alerts."""
        return self.role in ("admin", "operator")

    @property
    def can_write_observations(self) -> bool:
        return self.role in ("admin", "device")


ANONYMOUS = Principal("anonymous", "anonymous")


def key_of(authorization: str | None, x_api_key: str | None) -> str | None:
    """The API key a request presents: ``Authorization: Bearer <key>``; ``Authorization: Basic`` with the key as
    the password (any user name), which is what SensorThings clients written for FROST-Server send
    (frost_sta_client's ``AuthHandler(username, password)``); or ``X-API-Key``."""
    auth = (authorization or "").strip()
    scheme, _, credentials = auth.partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return (x_api_key or "").strip() or None


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# How stale the server's view of the key file may be. A stat per request cost ~6 % of a single POST's time, most
# of it the event loop losing the GIL to the writer thread around the system call, not the call itself.
KEYS_CHECK_INTERVAL_S = 0.1


class KeyStore:
    def __init__(self, path: Path, check_interval_s: float = KEYS_CHECK_INTERVAL_S) -> None:
        self.path = path
        self.check_interval_s = check_interval_s
        self._lock = threading.Lock()
        self._mtime: tuple[int, int, int] | None = None
        self._checked = -float("inf")  # time.monotonic() of the last stat
        self._by_hash: dict[str, dict] = {}

    def _load(self) -> list[dict]:
        if not self.path.exists():
            return []
        return orjson.loads(self.path.read_bytes())

    def _refresh(self, *, force: bool = False) -> None:
        # A key revoked by `cityhub keys revoke` in another process stops working within check_interval_s. The
        # file is replaced, never rewritten in place, so its inode changes too.
        now = time.monotonic()
        if not force and now - self._checked < self.check_interval_s:
            return
        self._checked = now
        try:
            st = self.path.stat()
            mtime: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_ino, st.st_size)
        except FileNotFoundError:
            mtime = None
        if mtime != self._mtime:
            self._by_hash = {k["hash"]: k for k in self._load() if not k.get("revoked")}
            self._mtime = mtime

    def create(self, role: str, name: str, thing_id: int | None = None) -> str:
        """Create a key and return it; it is shown once and only its hash is kept."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        if role == "device" and thing_id is None:
            raise ValueError("a device key needs the Thing whose Datastreams it writes (--thing)")
        key = f"ch_{secrets.token_urlsafe(32)}"
        with self._lock:
            keys = self._load()
            keys.append(
                {
                    "id": max((k["id"] for k in keys), default=0) + 1,
                    "name": name,
                    "role": role,
                    "thing_id": thing_id,
                    "hash": _hash(key),
                    "created_at": datetime.now(UTC).isoformat(),
                    "revoked": False,
                }
            )
            self._write(keys)
            return key

    def revoke(self, key_id: int) -> bool:
        with self._lock:
            keys = self._load()
            hit = False
            for k in keys:
                if k["id"] == key_id:
                    k["revoked"], hit = True, True
            self._write(keys)
            return hit

    def list(self) -> list[dict]:
        return [{k: v for k, v in key.items() if k != "hash"} for key in self._load()]

    def _write(self, keys: builtins.list[dict]) -> None:  # `list` here is KeyStore.list
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keys")
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(keys, option=orjson.OPT_INDENT_2))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
        self._checked = -float("inf")  # this instance's own change is seen at once

    def authenticate(self, key: str) -> Principal | None:
        digest = _hash(key)
        with self._lock:
            self._refresh()
            rec = self._by_hash.get(digest)
            if rec is None:  # perhaps created since the last look; guesses are throttled per address by the Guard
                self._refresh(force=True)
                rec = self._by_hash.get(digest)
        if rec is None:
            return None
        return Principal(rec["role"], rec["name"], rec.get("thing_id"))
