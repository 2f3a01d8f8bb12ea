"""Every shell block of the README runs as written, in order, against a real ``cityhub serve --demo``, as a user
would type them in a second terminal while ``make run`` serves (a block's exported variables, such as ``KEY``,
carry to the next). A block is skipped only where the README says why beside it (``<!-- readme-test: skip: ... -->``)
or where it needs ``../shared/data`` and that is absent. ``curl`` fails on an HTTP error here (``--fail-with-body``),
and a ``# {...}`` comment under a command is the JSON the block must print."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port, start_server, stop_server

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
pytestmark = pytest.mark.duckdb_only  # the README's commands are those of `make run`: the embedded store


@dataclass
class Block:
    line: int  # of the opening fence, 1-based
    code: str
    mark: str  # the readme-test comment before the fence, or ""


def blocks(text: str) -> list[Block]:
    out: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^(\s*)```(sh|bash|shell)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        indent = len(fence.group(1))
        start = i
        body = []
        i += 1
        while not re.match(r"^\s*```\s*$", lines[i]):
            body.append(lines[i][indent:])
            i += 1
        before = next((lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        mark = re.match(r"^<!-- readme-test: (.*?) -->$", before)
        out.append(Block(start + 1, "\n".join(body), mark.group(1) if mark else ""))
        i += 1
    return out


BLOCKS = blocks((ROOT / "README.md").read_text(encoding="utf-8"))


def test_the_readme_parser_sees_every_block() -> None:
    assert len(BLOCKS) >= 12
    skipped = [b for b in BLOCKS if b.mark.startswith("skip")]
    assert all(re.match(r"^skip: \S", b.mark) for b in skipped), "a skip says why"
    assert len(skipped) * 3 <= len(BLOCKS) * 2  # most run


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data = tmp_path_factory.mktemp("readme") / "var"
    port = free_port()
    proc = start_server(data, port, "--demo", env={"CITYHUB_STORE": ""})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90  # the demo creates its Things, then backfills 48 hours
        while len(httpx.get(f"{base}/api/v1/aqi/stations", timeout=10).json()["value"]) < 15:
            assert time.monotonic() < deadline, (data / "server.log").read_text()[-2000:]
            time.sleep(0.5)
        yield base, data
    finally:
        stop_server(proc)


def _json_lines(text: str) -> list[object]:
    found = []
    for line in text.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def test_every_readme_command_runs_as_written(demo: tuple[str, Path], tmp_path: Path) -> None:
    base, data = demo
    port = base.rsplit(":", 1)[1]
    work = tmp_path / "cityhub"  # a checkout's root as the user sees it: .venv here, ../shared beside it
    work.mkdir()
    (work / ".venv").symlink_to(ROOT / ".venv")
    if SHARED.exists():
        (tmp_path / "shared").symlink_to(SHARED)
    state = tmp_path / "exported.sh"
    state.write_text("")
    env = {**os.environ, "CITYHUB_DATA_DIR": str(data), "CITYHUB_URL": base, "CITYHUB_STORE": "",
           "CITYHUB_KEY": "", "COLUMNS": "120"}  # fmt: skip
    ran, skipped = [], []
    for block in BLOCKS:
        if block.mark.startswith("skip"):
            skipped.append(block.line)
            continue
        if "needs ../shared/data" in block.mark and not SHARED.exists():
            skipped.append(block.line)
            continue
        code = block.code.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
        script = (
            "set -euo pipefail\n"
            'curl() { command curl --fail-with-body "$@"; }\n'
            f". {state}\n{code}\nexport -p > {state}\n"
        )
        out = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=300)
        said = (f"README.md line {block.line}:\n{block.code}\n--- stdout\n{out.stdout[-3000:]}\n"
                f"--- stderr\n{out.stderr[-3000:]}")  # fmt: skip
        assert out.returncode == 0, said
        assert "Traceback" not in out.stdout + out.stderr, said
        printed = _json_lines(out.stdout)
        for expected in re.findall(r"^# (\{.*\})$", block.code, flags=re.M):
            assert json.loads(expected) in printed, said
        ran.append(block.line)
    assert len(ran) >= 7, (ran, skipped)
