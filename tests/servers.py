"""A real `cityhub serve` in a subprocess, for tests that need one (kill -9, MQTT sessions, fuzzing)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

CITYHUB = str(Path(sys.executable).with_name("cityhub"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, port: int, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a real `cityhub serve` on ``port`` and wait until it answers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = open(data_dir / "server.log", "ab")  # noqa: SIM115 - the server process owns it
    proc = subprocess.Popen(
        [CITYHUB, "serve", "--port", str(port), "--data-dir", str(data_dir), "--log-level", "warning", *extra],
        stdout=log,
        stderr=log,
        env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {(data_dir / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start in 30 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
