"""What several hub processes on one PostgreSQL database share besides the tables: a message channel
(LISTEN/NOTIFY) and leases (session advisory locks), each on a connection of its own outside the pool."""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import psycopg

from cityhub.store.base import EventChannel, Lease

log = logging.getLogger(__name__)

Connect = Callable[[], psycopg.Connection[Any]]


class PgChannel(EventChannel):
    """NOTIFY on ``name`` through the pool; LISTEN on a dedicated connection, reopened after a loss."""

    def __init__(self, name: str, connect: Connect, pooled: Callable[[], AbstractContextManager[Any]]) -> None:
        self.name = name
        self._connect = connect
        self._pooled = pooled
        self._listener: psycopg.Connection[Any] | None = None
        self._closed = False

    def send(self, messages: Sequence[str]) -> None:
        if not messages:
            return
        with self._pooled() as con:
            # One statement for all: NOTIFYs of one transaction reach listeners together, in order.
            con.execute("SELECT pg_notify(%s, m) FROM unnest(%s::text[]) AS m", [self.name, list(messages)])

    def _listen(self) -> psycopg.Connection[Any]:
        if self._listener is None or self._listener.closed:
            con = self._connect()
            con.execute(f'LISTEN "{self.name}"')
            self._listener = con
        return self._listener

    def receive(self, timeout: float) -> list[str]:
        if self._closed:
            return []
        try:
            con = self._listen()
            got: list[str] = []
            for note in con.notifies(timeout=timeout, stop_after=1):
                got.append(note.payload)
            # Whatever else already arrived, without waiting.
            for note in con.notifies(timeout=0.0):
                got.append(note.payload)
            return got
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            if self._listener is not None:
                self._listener.close()
            self._listener = None
            if not self._closed:
                log.warning("the event channel's connection was lost (%s); reconnecting", str(exc).strip()[:200])
                time.sleep(min(timeout, 1.0))
            return []

    def close(self) -> None:
        self._closed = True
        if self._listener is not None:
            self._listener.close()


class PgLease(Lease):
    """A session advisory lock on ``name``'s 64-bit key, held on a dedicated connection: PostgreSQL frees it when
    that connection ends, so a killed holder frees it at once and another process can take it over."""

    def __init__(
        self, name: str, schema: str, connect: Connect, pooled: Callable[[], AbstractContextManager[Any]]
    ) -> None:
        # The key is per schema: hubs on other schemas of the same database lead independently.
        self.key = zlib.crc32(f"{schema}:{name}".encode()) | (0x4348 << 32)
        self._connect = connect
        self._pooled = pooled
        self._con: psycopg.Connection[Any] | None = None
        self._pid: int | None = None  # the server process of the session that last held it for us
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self._con is not None and self._alive():
                return True
            self._drop()
            try:
                con = self._connect()
                row = con.execute("SELECT pg_try_advisory_lock(%s)", [self.key]).fetchone()
            except psycopg.Error:
                return False
            if row and row[0]:
                self._con = con
                self._pid = con.info.backend_pid
                return True
            con.close()
            return False

    def _alive(self) -> bool:
        assert self._con is not None
        try:
            self._con.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def _drop(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def held(self) -> bool:
        with self._lock:
            if self._con is None:
                return False
            if self._alive():
                return True
            self._drop()
            return False

    def taken(self) -> bool:
        with self._pooled() as con:
            # A bigint advisory lock shows in pg_locks as (classid, objid) = (high, low 32 bits), objsubid 1.
            # Our own lost session may still hold it until the server notices: that is not another process.
            row = con.execute(
                """SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
                       AND classid::bigint = %s AND objid::bigint = %s AND pid IS DISTINCT FROM %s
                       AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))""",
                [self.key >> 32, self.key & 0xFFFFFFFF, self._pid],
            ).fetchone()
        return bool(row and row[0])

    def release(self) -> None:
        with self._lock:
            self._drop()
