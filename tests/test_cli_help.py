"""The command line's help screens read as a user expects: a value name after each option that takes one (FILE,
N, TEXT), nothing after a flag, no Python annotations, and a description for every option and argument."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cityhub.cli import command
from tests.servers import CITYHUB, free_port


def _commands(cmd: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = [(path, cmd)]
    for name, sub in getattr(cmd, "commands", {}).items():
        out += _commands(sub, (*path, name))
    return out


COMMANDS = _commands(command())


def test_every_command_is_walked() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"serve", "import", "info", "aqi", "export", "replay", "simulate", "copy", "keys create", "db init",
            "rules apply"} <= names  # fmt: skip


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) or "cityhub" for p, _ in COMMANDS])
def test_every_option_and_argument_is_described_and_named(path: tuple[str, ...], cmd: Any) -> None:
    assert (cmd.help or "").strip(), f"cityhub {' '.join(path)} has no description"
    for param in cmd.params:
        where = f"cityhub {' '.join(path)} {param.opts[0] if param.opts else param.name}"
        assert (param.help or "").strip(), f"{where}: no description"
        if param.param_type_name == "option" and param.is_flag:
            assert param.metavar == "", where
        else:
            assert param.metavar and "<" not in param.metavar and "{" not in param.metavar, (where, param.metavar)


@pytest.mark.parametrize("args", [["--help"], ["import", "--help"], ["aqi", "--help"], ["keys", "create", "--help"]])
def test_help_screens_as_printed(args: list[str]) -> None:
    out = subprocess.run([CITYHUB, *args], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COLUMNS": "120", "NO_COLOR": "1"})  # fmt: skip
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "<bool>" not in text and "<list" not in text and "<int>" not in text and "<path>" not in text, text
    assert "Traceback" not in text and "{" not in text.split("Usage:")[1].splitlines()[0], text
    if args == ["import", "--help"]:
        assert "Usage: cityhub import [OPTIONS] FILE..." in text and "--batch-rows" in text
        assert "CSV, NDJSON or Parquet files of Observations" in text


def test_the_test_run_says_first_what_it_will_skip(tmp_path: Path) -> None:
    from tests.conftest import missing_prerequisites

    said = missing_prerequisites(chromium=tmp_path / "chromium", pg_port=free_port())
    assert any("chromium is missing (apt-get install chromium)" in m for m in said), said
    assert any(m.startswith("PostgreSQL tests: nothing listens on") for m in said), said
    # The header of a run: shown before the first test (here with nothing missing, or with what is).
    out = subprocess.run([sys.executable, "-m", "pytest", "--co", "tests/test_cli_help.py"], capture_output=True,
                         text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    header = out.stdout.split("collected")[0]
    assert "store: " in header and all(m in header for m in missing_prerequisites()), header


def test_make_run_takes_a_port_and_a_data_directory() -> None:
    """`make run PORT=8090 DATA=/srv/cityhub` (dry run: the command make would run)."""
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(["make", "-n", "run", "PORT=8090", "DATA=/srv/cityhub"], capture_output=True, text=True,
                         timeout=60, cwd=root)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "cityhub serve --demo --port 8090 --data-dir /srv/cityhub" in out.stdout, out.stdout
    default = subprocess.run(["make", "-n", "run"], capture_output=True, text=True, timeout=60, cwd=root)
    assert "cityhub serve --demo --port 8080 --data-dir var" in default.stdout, default.stdout
