"""Built-in rule sets, shipped as commented YAML files in ``cityhub/alerts/rulesets``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cityhub.alerts.rules import RuleSpec, parse_ruleset

RULESETS = Path(__file__).with_name("rulesets")
DEFAULT = ("hanoi_air", "red_river", "silent_sensors")  # enabled in the demo city


def builtin_names() -> list[str]:
    return sorted(p.stem for p in RULESETS.glob("*.yaml"))


def read_builtin(name: str) -> tuple[str, list[RuleSpec]]:
    path = RULESETS / f"{name}.yaml"
    if name not in builtin_names():
        raise KeyError(f"no built-in rule set {name!r} (there are {', '.join(builtin_names())})")
    set_name, specs = parse_ruleset(path.read_text(encoding="utf-8"))
    return set_name or name, specs


def load_builtin(hub: Any, names: tuple[str, ...] = DEFAULT, who: str = "cityhub") -> list[dict[str, Any]]:
    """Install the built-in rule sets, idempotently: missing rules are created; rules already there are left as
    they are, so an operator's changes (a rule disabled, a level tuned) survive a restart."""
    out = []
    for name in names:
        set_name, specs = read_builtin(name)
        out.append(hub.alerts.apply_ruleset(set_name, specs, who, prune=False, update=False))
    return out
