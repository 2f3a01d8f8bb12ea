"""Who may do what on the broker: MQTT credentials, and the Mosquitto password and ACL files made from them.

API keys (:mod:`cityhub.auth.keys`) are stored as SHA-256 hashes, which Mosquitto cannot check, so MQTT has
credentials of its own, in ``<data-dir>/mqtt_users.json``: a user name, a role and, for devices, the Thing.
The password is shown once (``cityhub mqtt credentials``) and only its Mosquitto hash is kept
(``mosquitto_passwd``'s PBKDF2-SHA512 ``$7$`` format), so the password file can be written at any time.

Roles: ``hub`` (the hub's own connection: reads what devices publish, publishes what it stores), ``device``
(publishes only to the Observations topics of its own Thing's Datastreams, listed one by one, and to the mapped
device topics that resolve to them) and ``reader`` (reads what the hub republishes). Anonymous clients may read
``v1.1/#`` only when ``anonymous_read`` is true; they never write.

Mosquitto applies the ACL per client; the hub cannot: an MQTT 3.1.1 or 5 PUBLISH carries no user name or client
id of its publisher to the subscriber. So the hub checks what it can (``mqtt_authorize``): that some device
credential may write the Datastream at all, which catches a stale ACL file or a broker run without one.

The ACL lists Datastream ids, so it must be regenerated when Datastreams or credentials change: by
``cityhub mqtt acl`` and a SIGHUP to Mosquitto, or by the hub itself when ``mqtt_acl_dir`` is set.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import hmac
import os
import re
import secrets
import signal
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from cityhub.mqtt.mappings import _PLACEHOLDER, Mappings

ROLES = ("hub", "device", "reader")
PASSWD_FILE = "mosquitto.passwd"
ACL_FILE = "mosquitto.acl"
ALERTS_TOPIC = "cityhub/alerts/#"
# Mosquitto's own default is 101 rounds; the passwords are 192-bit random tokens, so rounds add no safety and
# cost CPU on every CONNECT. A few more than the default, still cheap.
PBKDF2_ROUNDS = 1000
_USERNAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def mosquitto_hash(password: str, rounds: int = PBKDF2_ROUNDS, salt: bytes | None = None) -> str:
    """A ``$7$`` password hash as ``mosquitto_passwd`` writes it: PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte key."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, rounds, 64)
    return f"$7${rounds}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def check_password(password: str, hashed: str) -> bool:
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    salt, key = base64.b64decode(parts[3]), base64.b64decode(parts[4])
    return hmac.compare_digest(hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]), len(key)), key)


def credentials_path(data_dir: Path) -> Path:
    return data_dir / "mqtt_users.json"


@dataclass(frozen=True)
class Credential:
    username: str
    role: str
    thing_id: int | None
    hash: str


class CredentialStore:
    """``<data-dir>/mqtt_users.json``, written atomically; readers notice changes by its modification time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._mtime: int | None = -1
        self._active: builtins.list[Credential] = []

    def _load(self) -> builtins.list[dict[str, Any]]:
        if not self.path.exists():
            return []
        data: builtins.list[dict[str, Any]] = orjson.loads(self.path.read_bytes())
        return data

    def create(self, role: str, thing_id: int | None = None, username: str | None = None) -> tuple[str, str]:
        """Create a credential; returns (user name, password). The password is not kept, only its hash."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        if role == "device" and thing_id is None:
            raise ValueError("a device credential needs the Thing whose Datastreams it writes (--thing)")
        if role != "device" and thing_id is not None:
            raise ValueError("only device credentials belong to a Thing")
        if username is None:
            tag = f"{role}-{thing_id}" if thing_id is not None else role
            username = "cityhub" if role == "hub" else f"{tag}-{secrets.token_hex(3)}"
        if not _USERNAME.match(username):
            raise ValueError("user name: 1 to 64 letters, digits, '.', '_' or '-'")
        password = secrets.token_urlsafe(24)
        with self._lock:
            users = self._load()
            if any(u["username"] == username and not u.get("revoked") for u in users):
                raise ValueError(f"user {username!r} exists; revoke it first (cityhub mqtt revoke {username})")
            users.append(
                {
                    "username": username,
                    "role": role,
                    "thing_id": thing_id,
                    "hash": mosquitto_hash(password),
                    "created_at": datetime.now(UTC).isoformat(),
                    "revoked": False,
                }
            )
            self._write(users)
        return username, password

    def revoke(self, username: str) -> bool:
        with self._lock:
            users = self._load()
            hit = False
            for u in users:
                if u["username"] == username and not u.get("revoked"):
                    u["revoked"], hit = True, True
            if hit:
                self._write(users)
            return hit

    def list(self) -> builtins.list[dict[str, Any]]:  # `list` here is this method
        return [{k: v for k, v in u.items() if k != "hash"} for u in self._load()]

    def active(self) -> builtins.list[Credential]:
        """The credentials not revoked; re-read only when the file changed."""
        with self._lock:
            try:
                mtime: int | None = self.path.stat().st_mtime_ns
            except FileNotFoundError:
                mtime = None
            if mtime != self._mtime:
                self._active = [
                    Credential(u["username"], u["role"], u.get("thing_id"), u["hash"])
                    for u in self._load()
                    if not u.get("revoked")
                ]
                self._mtime = mtime
            return self._active

    def device_things(self) -> frozenset[int]:
        return frozenset(c.thing_id for c in self.active() if c.role == "device" and c.thing_id is not None)

    def _write(self, users: builtins.list[dict[str, Any]]) -> None:
        write_private(self.path, orjson.dumps(users, option=orjson.OPT_INDENT_2))


def write_private(path: Path, data: bytes) -> None:
    """Atomically, readable by the owner only (hashes, ACLs): a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


@dataclass(frozen=True)
class DatastreamRef:
    id: int
    thing_id: int
    name: str | None  # None when another Datastream with a lower id has the name (mappings resolve to that one)


def datastream_refs(catalog: Any) -> list[DatastreamRef]:
    """What the ACL needs from the store's catalogue (:class:`cityhub.store.ops.catalog.CatalogOps`)."""
    names = {ds: name for name, ds in catalog.datastream_ids_by_name().items()}
    return [DatastreamRef(i.id, i.thing_id, names.get(i.id)) for i in catalog.datastream_infos()]


def datastream_topic(ds_id: int, prefix: str = "") -> str:
    return f"{prefix}v1.1/Datastreams({ds_id})/Observations"


def mapped_topics(mappings: Mappings, mine: list[DatastreamRef], everyone: dict[str, int]) -> list[str]:
    """The mapped device topics whose every target is a Datastream of ``mine`` (one Thing's).

    A mapping's topic is recovered from the Datastream it names: the name (or id) template, with its captures
    as regular expression groups, is matched against each Datastream; the captures fill the topic's levels.
    Levels not captured by the template stay wildcards (they cannot change which Datastream is written).
    """
    own = {d.id for d in mine}
    out: set[str] = set()
    for m in mappings.mappings:
        for target in m.targets:
            template = target.datastream if target.datastream is not None else target.datastream_id
            assert template is not None
            pattern = _template_regex(template)
            for d in mine:
                text = d.name if target.datastream is not None else str(d.id)
                hit = pattern.fullmatch(text) if text is not None else None
                if hit is None:
                    continue
                captures = hit.groupdict()
                if any(re.search(r"[+#\x00]", v) for v in captures.values()):
                    continue
                if any("/" in captures.get(n or "", "") for lit, n in m.levels if lit == "+"):
                    continue
                if not all(_target_id(t, captures, everyone) in own for t in m.targets):
                    continue  # one message writes every target: all must be this Thing's
                out.add("/".join(captures.get(n, lit) if n and lit in "+#" else lit for lit, n in m.levels))
    return sorted(out)


def _template_regex(template: str) -> re.Pattern[str]:
    parts: list[str] = []
    seen: set[str] = set()
    last = 0
    for ph in _PLACEHOLDER.finditer(template):
        parts.append(re.escape(template[last : ph.start()]))
        name = ph.group(1)
        parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>.+?)")
        seen.add(name)
        last = ph.end()
    parts.append(re.escape(template[last:]))
    return re.compile("".join(parts))


def _target_id(target: Any, captures: dict[str, str], everyone: dict[str, int]) -> int | None:
    names = set(_PLACEHOLDER.findall(target.datastream or target.datastream_id or ""))
    if not names <= captures.keys():
        return None
    text = _PLACEHOLDER.sub(lambda p: captures[p.group(1)], target.datastream or target.datastream_id)
    if target.datastream is not None:
        return everyone.get(text)
    return int(text) if text.isdigit() else None


def render(
    credentials: Iterable[Credential],
    datastreams: list[DatastreamRef],
    mappings: Mappings,
    *,
    anonymous_read: bool,
    private_prefix: str = "",
) -> tuple[str, str]:
    """(password file, ACL file) for Mosquitto."""
    creds = sorted(credentials, key=lambda c: (ROLES.index(c.role), c.username))
    passwd = "".join(f"{c.username}:{c.hash}\n" for c in creds)
    by_thing: dict[int, list[DatastreamRef]] = {}
    for d in sorted(datastreams, key=lambda d: d.id):
        by_thing.setdefault(d.thing_id, []).append(d)
    everyone = {d.name: d.id for d in datastreams if d.name is not None}
    lines = [
        "# Written by CityHub (`cityhub mqtt acl`, or the hub with CITYHUB_MQTT_ACL_DIR): do not edit.",
        "# It lists Datastream ids: regenerate it, and SIGHUP Mosquitto, after Datastreams or credentials change.",
        f"# Generated {datetime.now(UTC).isoformat(timespec='seconds')}.",
        "",
        "# Anonymous clients (rules before the first `user` line)",
    ]
    if anonymous_read:
        lines.append("topic read v1.1/#")
    else:
        lines.append("# none: anonymous_read is false")
    readable = ["v1.1/#"] if anonymous_read else ([f"{private_prefix}#"] if private_prefix else [])
    for c in creds:
        lines += ["", f"user {c.username}"]
        if c.role == "hub":
            # $SYS/broker/log: who subscribed to what, for the $select and feature topics (cityhub.mqtt.topics).
            lines += ["topic readwrite v1.1/#", "topic write cityhub/#", "topic read $SYS/broker/log/#"]
            lines += [f"topic readwrite {f}" for f in mappings.filters()]
            if private_prefix:
                lines.append(f"topic write {private_prefix}#")
        elif c.role == "reader":
            lines += [f"topic read {t}" for t in (*readable, ALERTS_TOPIC)]
        else:
            mine = by_thing.get(c.thing_id or -1, [])
            lines += [f"topic write {datastream_topic(d.id)}" for d in mine]
            lines += [f"topic write {t}" for t in mapped_topics(mappings, mine, everyone)]
            if not mine:
                lines.append(f"# Thing {c.thing_id} has no Datastreams (yet)")
    return passwd, "\n".join(lines) + "\n"


def write_files(directory: Path, passwd: str, acl: str) -> bool:
    """Write both files; False when they were already current (so the broker need not reload)."""
    changed = False
    for name, text in ((PASSWD_FILE, passwd), (ACL_FILE, acl)):
        path = directory / name
        try:
            if _strip_stamp(path.read_text()) == _strip_stamp(text):
                continue
        except (FileNotFoundError, UnicodeDecodeError):
            pass
        write_private(path, text.encode())
        changed = True
    return changed


def _strip_stamp(acl: str) -> str:
    return "\n".join(line for line in acl.splitlines() if not line.startswith("# Generated "))


def reload_broker(pid_file: Path) -> None:
    """SIGHUP: Mosquitto re-reads its password and ACL files (and drops no connections)."""
    pid = int(pid_file.read_text().strip())
    os.kill(pid, signal.SIGHUP)


class AclKeeper:
    """Keeps the files in ``mqtt_acl_dir`` current from the hub: after entity changes (a nudge) and credential
    changes (the credential file is polled, since ``cityhub mqtt credentials`` runs in another process)."""

    POLL_S = 2.0

    def __init__(
        self,
        directory: Path,
        credentials: CredentialStore,
        catalog: Any,
        mappings: Mappings,
        *,
        anonymous_read: bool,
        private_prefix: str,
        pid_file: Path | None,
    ) -> None:
        self.directory = directory
        self.credentials = credentials
        self.catalog = catalog
        self.mappings = mappings
        self.anonymous_read = anonymous_read
        self.private_prefix = private_prefix
        self.pid_file = pid_file
        self.writes = 0
        self.last_error: str | None = None
        self._nudge = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mqtt-acl", daemon=True)

    def nudge(self) -> None:
        self._nudge.set()

    def start(self) -> None:
        self.refresh()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._nudge.set()
        if self._thread.is_alive():
            self._thread.join()

    def refresh(self) -> bool:
        passwd, acl = render(
            self.credentials.active(),
            datastream_refs(self.catalog),
            self.mappings,
            anonymous_read=self.anonymous_read,
            private_prefix=self.private_prefix,
        )
        if not write_files(self.directory, passwd, acl):
            return False
        self.writes += 1
        if self.pid_file is not None and self.pid_file.exists():
            reload_broker(self.pid_file)
        return True

    def _run(self) -> None:
        seen = self._cred_mtime()
        while not self._stop.is_set():
            self._nudge.wait(self.POLL_S)
            if self._stop.is_set():
                return
            mtime = self._cred_mtime()
            if not self._nudge.is_set() and mtime == seen:
                continue
            self._nudge.clear()
            seen = mtime
            self._stop.wait(0.05)  # entity changes come in bursts (a deep insert): one rewrite for the burst
            try:
                self.refresh()
                self.last_error = None
            except (OSError, ValueError) as exc:
                self.last_error = f"ACL files: {type(exc).__name__}: {exc}"

    def _cred_mtime(self) -> int | None:
        try:
            return self.credentials.path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
