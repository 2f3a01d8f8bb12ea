"""Shared helpers for the benchmarks: a CityHub server subprocess, memory/CPU probes, output."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(*args: Any) -> None:
    print(*args, flush=True)


def ensure_importable() -> None:
    """Make ``import cityhub`` work from a source checkout that is not pip-installed."""
    try:
        import cityhub  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(SRC))


def cityhub_cmd() -> list[str]:
    """The ``cityhub`` command: the venv's console script, else ``python -m cityhub.cli``."""
    script = Path(sys.executable).parent / "cityhub"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "cityhub.cli"]


def cityhub_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("_TYPER_STANDARD_TRACEBACK", "1")  # plain tracebacks in the server log
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_tmpdir(tag: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"cityhub-bench-{tag}-", dir="/tmp"))


def remove_tmpdir(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def create_admin_key(data_dir: Path) -> str:
    out = subprocess.run(
        [*cityhub_cmd(), "keys", "create", "--role", "admin", "--name", "bench", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=cityhub_env(),
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"cityhub keys create failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    lines = [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]
    if not lines:
        raise RuntimeError(f"cityhub keys create printed no key: {out.stderr}")
    return lines[-1]


# -- /proc probes ----------------------------------------------------------------------------------
def proc_status_kb(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None
    return None


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) and of its child processes (the hub's MQTT
    I/O process)."""
    return _own_cpu_s(pid) + sum(_own_cpu_s(c) for c in _children(pid))


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []


def _own_cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return 0.0


def system_busy_s() -> float:
    """CPU seconds all processes of the machine have been busy (from /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in parts[:8])
        return (user + nice + system + irq + softirq + steal) / _CLK_TCK
    except (OSError, ValueError):
        return 0.0


class MemoryMonitor(threading.Thread):
    """Polls VmRSS / VmHWM of a process every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True, name=f"rss-{pid}")
        self.pid = pid
        self.interval = interval
        self.max_rss_kb = 0
        self.hwm_kb = 0
        self._halt = threading.Event()

    def sample(self) -> None:
        rss = proc_status_kb(self.pid, "VmRSS")
        hwm = proc_status_kb(self.pid, "VmHWM")
        if rss is not None:
            self.max_rss_kb = max(self.max_rss_kb, rss)
        if hwm is not None:
            self.hwm_kb = max(self.hwm_kb, hwm)

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._halt.set()

    @property
    def hwm_mb(self) -> float:
        self.sample()
        return self.hwm_kb / 1024


@dataclass
class Phase:
    """Wall time, client CPU and server CPU of one benchmark step."""

    server_pid: int | None
    t0: float = field(default_factory=time.perf_counter)
    c0: float = field(default_factory=time.process_time)
    s0: float = 0.0
    b0: float = field(default_factory=system_busy_s)
    wall: float = 0.0
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    other_cpu: float = 0.0

    def __post_init__(self) -> None:
        self.s0 = proc_cpu_s(self.server_pid) if self.server_pid else 0.0

    def stop(self) -> Phase:
        self.wall = time.perf_counter() - self.t0
        self.client_cpu = time.process_time() - self.c0
        self.server_cpu = (proc_cpu_s(self.server_pid) - self.s0) if self.server_pid else 0.0
        busy = system_busy_s() - self.b0
        self.other_cpu = max(0.0, busy - self.server_cpu - self.client_cpu)
        return self

    def cpu_text(self) -> str:
        w = max(self.wall, 1e-9)
        return (
            f"server CPU {self.server_cpu:.1f}s ({self.server_cpu / w:.0%} of a core), "
            f"client CPU {self.client_cpu:.1f}s ({self.client_cpu / w:.0%}), "
            f"other processes {self.other_cpu:.1f}s"
        )


# -- server subprocess -----------------------------------------------------------------------------
class Server:
    def __init__(
        self, data_dir: Path, port: int, key: str | None, args: Sequence[str] = (), env: dict[str, str] | None = None
    ) -> None:
        self.args = list(args)
        self.env = env or {}
        self.data_dir = data_dir
        self.port = port
        self.key = key
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.monitor: MemoryMonitor | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-server-{port}.log"
        self._log_file: Any = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 90.0) -> float:
        """Start and wait for /healthz; returns the start-up time in seconds."""
        t0 = time.perf_counter()
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                *cityhub_cmd(),
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--log-level",
                "warning",
                *self.args,
            ],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**cityhub_env(), **self.env},
        )
        self.monitor = MemoryMonitor(self.proc.pid)
        self.monitor.start()
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    if c.get(self.base + "/healthz").status_code == 200:
                        return time.perf_counter() - t0
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"server did not answer /healthz within {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return "(no server log)"

    def stop(self, grace: float = 60.0) -> float | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the seconds it took to exit."""
        if self.proc is None:
            return None
        t0 = time.perf_counter()
        if self.monitor is not None:
            self.monitor.sample()
            self.monitor.stop()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log(f"  server {self.pid} did not exit {grace:.0f}s after SIGTERM; killing it")
                self.proc.kill()
                self.proc.wait(timeout=30)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return time.perf_counter() - t0

    def cleanup_log(self) -> None:
        with contextlib.suppress(OSError):
            self.log_path.unlink()


# -- reporting -------------------------------------------------------------------------------------
@dataclass
class Row:
    figure: str
    measured: str
    target: str = ""
    ok: bool | None = None  # None: no target


class Report:
    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.problems: list[str] = []

    def add(self, figure: str, measured: str, target: str = "", ok: bool | None = None) -> None:
        self.rows.append(Row(figure, measured, target, ok))

    def problem(self, text: str) -> None:
        self.problems.append(text)
        log(f"  PROBLEM: {text}")

    def print(self) -> None:
        heads = ("figure", "measured", "target", "result")
        cells = [
            (r.figure, r.measured, r.target, "-" if r.ok is None else ("PASS" if r.ok else "FAIL")) for r in self.rows
        ]
        widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(heads)]
        line = "+-" + "-+-".join("-" * w for w in widths) + "-+"
        log("")
        log(line)
        log("| " + " | ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)) + " |")
        log(line)
        for c in cells:
            log("| " + " | ".join(x.ljust(w) for x, w in zip(c, widths, strict=True)) + " |")
        log(line)
        if self.problems:
            log("\nProblems seen:")
            for p in self.problems:
                log(f"  - {short(p, 1500)}")


def percentile(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def short(text: str | bytes, n: int = 2000) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return text if len(text) <= n else text[:n] + f"... ({len(text)} chars)"
