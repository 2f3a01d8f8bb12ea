"""Commands run beside a hub that owns the embedded store: they ask it over HTTP or say in one line what to do,
never a DuckDB lock traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.servers import CITYHUB, free_port, start_server, stop_server


def cityhub(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CITYHUB, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "160", "CITYHUB_STORE": ""})  # fmt: skip


pytestmark = pytest.mark.duckdb_only  # one process per store is the embedded store's rule


@pytest.fixture
def served(tmp_path: Path) -> tuple[Path, int, subprocess.Popen[bytes]]:
    data = tmp_path / "var"
    port = free_port()
    proc = start_server(data, port, env={"CITYHUB_STORE": ""})
    return data, port, proc


def test_commands_beside_a_running_hub(served: tuple[Path, int, subprocess.Popen[bytes]], tmp_path: Path) -> None:
    data, port, proc = served
    try:
        hub = json.loads((data / "serving.json").read_text())
        assert hub == {"pid": proc.pid, "url": f"http://127.0.0.1:{port}"}
        info = cityhub("info", "--data-dir", str(data))
        assert info.returncode == 0, info.stdout + info.stderr
        assert f"from the hub serving it at http://127.0.0.1:{port}" in info.stdout and "observations" in info.stdout
        as_json = cityhub("info", "--data-dir", str(data), "--json")
        assert as_json.returncode == 0 and "counts" in json.loads(as_json.stdout.split("\n", 1)[1])
        csv = tmp_path / "obs.csv"
        csv.write_text("datastream,phenomenonTime,result\n1,2026-01-01T00:00:00Z,1\n")
        imported = cityhub("import", str(csv), "--data-dir", str(data))
        assert imported.returncode == 1, imported.stdout + imported.stderr
        said = imported.stdout + imported.stderr
        assert "Traceback" not in said and f"in use by process {proc.pid}" in said and "HTTP API" in said, said
        second = cityhub("serve", "--data-dir", str(data), "--port", str(free_port()))
        assert second.returncode == 1 and "Traceback" not in second.stdout + second.stderr
        assert f"already served by process {proc.pid}" in second.stdout, second.stdout
    finally:
        stop_server(proc)
    assert proc.returncode == -signal.SIGTERM  # uvicorn's graceful stop, then the signal's own end
    assert not (data / "serving.json").exists()
    alone = cityhub("info", "--data-dir", str(data))
    assert alone.returncode == 0 and "from the hub" not in alone.stdout, alone.stdout + alone.stderr


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_one_access_log_line_per_request(tmp_path: Path, fmt: str) -> None:
    data = tmp_path / "var"
    port = free_port()
    proc = start_server(data, port, "--log-level", "info", "--log-format", fmt, env={"CITYHUB_STORE": ""})
    try:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/v1.1/Things", params={"$top": "1"}).status_code == 200
        assert httpx.post(f"{base}/v1.1/Things", json={}).status_code == 401
    finally:
        stop_server(proc)
    lines = (data / "server.log").read_text().splitlines()
    if fmt == "json":
        records = [json.loads(line) for line in lines if line.startswith("{")]
        access = [r for r in records if r["logger"] == "cityhub.access"]
        mine = [r for r in access if r["path"] != "/healthz"]  # start_server polls /healthz
        assert [(r["method"], r["path"], r["status"]) for r in mine] == [
            ("GET", "/v1.1/Things?%24top=1", 200), ("POST", "/v1.1/Things", 401)]  # fmt: skip
        assert all(isinstance(r["ms"], float) and r["time"].endswith("Z") for r in mine)
        assert any(r["logger"].startswith("uvicorn") for r in records)  # the server's own lines are JSON too
        assert all(line.startswith("{") for line in lines if "cityhub.access" in line or "uvicorn" in line)
    else:
        assert any(" cityhub.access: POST /v1.1/Things 401 " in line and line.endswith(" ms") for line in lines), lines


DEAD = "http://127.0.0.1:9"  # nothing listens there
ERROR_PATHS = [
    (["import", "nothere.csv"], 2, "does not exist"),
    (["import", "wrong_columns.csv"], 2, "wrong_columns.csv: unknown column(s) ['a', 'b']"),
    (["import", "no_result.csv"], 2, "column 'result' is required"),
    (["import", "obs.csv", "--batch-rows", "0"], 2, "--batch-rows"),
    (["aqi", "nothere.csv", "-o", "x.csv"], 2, "No such file or directory"),
    (["aqi", "wrong_columns.csv", "-o", "x.csv"], 2, "no column(s) named station, time"),
    (["export", "-o", "out.csv", "--url", DEAD], 1, f"no hub at {DEAD}"),
    (["replay", "wrong_columns.csv", "--url", DEAD], 2, "not a recognised feed"),
    (["replay", "nothere.csv"], 2, "No such file or directory"),
    (["simulate", "--speed", "fast"], 2, "'fast' is not a speed"),
    (["simulate", "--url", DEAD, "--duration", "1s"], 1, f"no hub at {DEAD}"),
    (["rules", "list", "--url", DEAD], 1, f"no hub at {DEAD}"),
    (["rules", "apply", "nothere.yaml", "--url", DEAD], 2, "nothere.yaml: No such file or directory"),
    (["rules", "apply", "--url", DEAD], 2, "give a FILE or --builtin NAME"),
    (["keys", "revoke", "999"], 1, "no key 999"),
    (["keys", "create", "--role", "king"], 2, "role must be one of"),
    (["mqtt", "revoke", "nobody"], 1, "no MQTT user nobody"),
    (["db", "status", "--store", "sqlite:///x"], 2, "--store: a postgresql:// URL"),
    (["db", "init", "--store", "postgresql://nobody@127.0.0.1:9/x"], 1, "OperationalError: connection failed"),
    (["serve", "--port", "99999"], 2, "less than or equal to 65535"),
    (["serve", "--workers", "2"], 2, "--workers needs --store"),
    (["serve", "--log-format", "xml"], 2, "--log-format must be text or json"),
]


@pytest.mark.parametrize("args,code,said", ERROR_PATHS, ids=[" ".join(a[:2]) + f" {i}" for i, (a, _, _) in
                                                             enumerate(ERROR_PATHS)])  # fmt: skip
def test_each_command_refuses_bad_input_in_one_message(tmp_path: Path, args: list[str], code: int, said: str) -> None:
    """Each command's error paths: the exit code, a message naming what is wrong, and never a traceback."""
    (tmp_path / "wrong_columns.csv").write_text("a,b\n1,2\n")
    (tmp_path / "no_result.csv").write_text("datastream,phenomenonTime\n1,2026-01-01T00:00:00Z\n")
    (tmp_path / "obs.csv").write_text("datastream,phenomenonTime,result\n1,2026-01-01T00:00:00Z,1\n")
    env = {**os.environ, "COLUMNS": "400", "CITYHUB_STORE": "", "CITYHUB_DATA_DIR": str(tmp_path / "v"),
           "CITYHUB_URL": DEAD}  # fmt: skip
    out = subprocess.run([CITYHUB, *args], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    text = out.stdout + out.stderr
    assert out.returncode == code, text
    assert said in text and "Traceback" not in text, text
