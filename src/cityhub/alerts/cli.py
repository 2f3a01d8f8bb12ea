"""``cityhub rules``: alert rules of a running hub, through its API (an operator or admin key to change them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

rules_app = typer.Typer(help="Alert rules and alerts of a running hub (YAML rule files, built-in sets).",
                        no_args_is_help=True)  # fmt: skip
console = Console()
Url = Annotated[str, typer.Option(help="a running hub", envvar="CITYHUB_URL")]
Key = Annotated[str | None, typer.Option(help="operator or admin API key", envvar="CITYHUB_KEY")]
URL = "http://127.0.0.1:8080"


def _call(method: str, url: str, path: str, key: str | None, **kw: Any) -> Any:
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        resp = httpx.request(method, f"{url.rstrip('/')}{path}", headers={**headers, **kw.pop("headers", {})},
                             timeout=30, **kw)  # fmt: skip
    except httpx.HTTPError as exc:
        console.print(f"[red]no hub at {url}: {exc}[/red]")
        raise typer.Exit(1) from None
    if resp.status_code >= 400:
        body = resp.json() if resp.headers.get("content-type", "").endswith("json") else {"detail": resp.text}
        field = f" (field {body['field']})" if body.get("field") else ""
        console.print(f"[red]{resp.status_code}: {body.get('detail')}{field}[/red]")
        raise typer.Exit(1)
    return resp.json()


@rules_app.command("list")
def rules_list(
    url: Url = URL,
    key: Key = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """The hub's rules, with the subjects each watches and its active alerts."""
    rules = _call("GET", url, "/api/v1/rules", key)["value"]
    if as_json:
        typer.echo(json.dumps(rules, indent=2, ensure_ascii=False))
        return
    t = Table(title=f"{len(rules)} rules")
    for col in ("id", "set", "name", "kind", "on", "subjects", "active"):
        t.add_column(col, overflow="fold")
    for r in rules:
        t.add_row(str(r["id"]), r["ruleset"] or "", r["name"], r["kind"], "yes" if r["enabled"] else "no",
                  str(r["subjects"]), str(r["activeAlerts"]))  # fmt: skip
    console.print(t)


@rules_app.command("apply")
def rules_apply(
    file: Annotated[Path | None, typer.Argument(help="a YAML (or JSON) rule file: {name: ..., rules: [...]}")] = None,
    builtin: Annotated[str | None, typer.Option(help="install a built-in set: hanoi_air, red_river, ...")] = None,
    name: Annotated[
        str | None, typer.Option(help="the rule set's name (default: the file's `name`, or its stem)")
    ] = None,
    url: Url = URL,
    key: Key = None,
) -> None:
    """Make a rule set on the hub match a file (create, update, delete by rule name; idempotent), or install a
    built-in set (missing rules only)."""
    if (file is None) == (builtin is None):
        console.print("[red]give a FILE or --builtin NAME[/red]")
        raise typer.Exit(2)
    if builtin is not None:
        out = _call("POST", url, f"/api/v1/rulesets/builtin/{builtin}", key)
    else:
        assert file is not None
        import yaml

        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            console.print(f"{file}: {exc.strerror if isinstance(exc, OSError) else exc}", style="red", markup=False)
            raise typer.Exit(2) from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            console.print(f"[red]{file}: not YAML: {exc}[/red]")
            raise typer.Exit(2) from None
        set_name = name or (doc.get("name") if isinstance(doc, dict) else None) or file.stem
        out = _call("PUT", url, f"/api/v1/rulesets/{set_name}", key, content=text.encode(),
                    headers={"Content-Type": "application/yaml"})  # fmt: skip
    summary = ", ".join(f"{len(out[k])} {k}" for k in ("created", "updated", "unchanged", "deleted"))
    console.print(f"rule set {out['ruleset']}: {summary}")


@rules_app.command("alerts")
def rules_alerts(
    state: Annotated[str, typer.Option(help="open | acknowledged | resolved | active")] = "active",
    limit: Annotated[int, typer.Option(help="how many, newest first")] = 50,
    url: Url = URL,
    key: Key = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Alerts, newest first."""
    data = _call("GET", url, "/api/v1/alerts", key, params={"state": state, "limit": limit})
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    t = Table(title=f"{data['count']:,} {state} alerts (newest {len(data['value'])})")
    for col in ("id", "state", "severity", "rule", "message", "since"):
        t.add_column(col, overflow="fold")
    for a in data["value"]:
        t.add_row(str(a["id"]), a["state"], a["severity"], a["rule"]["name"], a["message"], a["since"] or "")
    console.print(t)
