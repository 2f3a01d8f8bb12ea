"""The ``cityhub`` command: serve the hub, import files, inspect storage, manage API keys."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from cityhub.config import Settings
from cityhub.plugins import PLUGINS
from cityhub.sim.cli import simulate

if TYPE_CHECKING:
    from cityhub.store.base import Store

app = typer.Typer(help="CityHub: Hanoi's open smart-city data hub (OGC SensorThings API v1.1).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys with roles admin, operator, device.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
mqtt_app = typer.Typer(help="MQTT credentials and Mosquitto's password and ACL files.", no_args_is_help=True)
app.add_typer(mqtt_app, name="mqtt")
for plugin in PLUGINS:  # `cityhub rules list|apply|alerts` (cityhub.alerts.cli), and later domains' commands
    for name, sub in plugin.commands:
        app.add_typer(sub, name=name)
console = Console()

DataDir = Annotated[
    Path, typer.Option("--data-dir", help="where the DuckDB file and keys live", envvar="CITYHUB_DATA_DIR")
]
StoreUrl = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="a PostgreSQL/PostGIS database (postgresql://user@host:5432/db[?schema=name]) instead of the embedded "
        "DuckDB file under --data-dir",
        envvar="CITYHUB_STORE",
    ),
]
db_app = typer.Typer(help="The PostgreSQL store's schema: init, upgrade, status.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _settings(data_dir: Path, store: str | None, **extra: object) -> Settings:
    """Settings for a command: --store, when given, names the database (else CITYHUB_STORE, else embedded)."""
    if store:
        extra["store"] = store
    return Settings(data_dir=data_dir, **extra)


def _has_store(settings: Settings) -> bool:
    return bool(settings.store) or settings.db_path.exists()


def _open_existing(settings: Settings) -> Store | None:
    """The store, or None where its PostgreSQL schema was never initialised (as a missing DuckDB file)."""
    from cityhub.store import open_store
    from cityhub.store.postgres.migrate import SchemaError, current_version

    if settings.store:
        import psycopg

        from cityhub.store.postgres.store import split_url

        conninfo, schema = split_url(settings.store)
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as con:
            if current_version(con, schema) == 0:
                return None
    try:
        return open_store(settings, migrate_mode="check")
    except SchemaError as exc:
        console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(2) from None


def _environment(settings: Settings) -> dict[str, str]:
    """The CITYHUB_* variables that give another process the settings this command set."""
    out = {}
    for name in settings.model_fields_set:
        value = getattr(settings, name)
        if value is None:
            continue
        alias = Settings.model_fields[name].validation_alias
        var = alias if isinstance(alias, str) else f"CITYHUB_{name.upper()}"
        out[var] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def _where(settings: Settings) -> str:
    if settings.store:
        from cityhub.store.postgres.store import split_url

        return f"PostgreSQL schema {split_url(settings.store)[1]!r}"
    return str(settings.db_path)


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="HTTP port", min=1, max=65535)] = 8080,
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    data_dir: DataDir = Path("var"),
    store: StoreUrl = None,
    workers: Annotated[
        int, typer.Option(help="hub processes sharing the port (needs --store: the DuckDB file is one process's)")
    ] = 1,
    demo: Annotated[bool, typer.Option(help="run the simulated city: air, traffic, water sensors")] = False,
    log_level: Annotated[
        str, typer.Option(help="log level: debug, info (one line per request), warning, error")
    ] = "info",
    log_format: Annotated[
        str, typer.Option(help="log lines as text, or as json objects for a log collector", envvar="CITYHUB_LOG_FORMAT")
    ] = "text",
    mqtt: Annotated[
        str | None, typer.Option(help="MQTT broker to bridge, mqtt://[user:pass@]host:1883 or mqtts://host:8883")
    ] = None,
    mqtt_username: Annotated[str | None, typer.Option(help="MQTT user name")] = None,
    mqtt_password: Annotated[
        str | None, typer.Option(help="MQTT password (better: CITYHUB_MQTT_PASSWORD)", envvar="CITYHUB_MQTT_PASSWORD")
    ] = None,
    mqtt_client_id: Annotated[str | None, typer.Option(help="client id of the hub's persistent session")] = None,
    mqtt_ca: Annotated[Path | None, typer.Option(help="CA certificate file for TLS")] = None,
    mqtt_cert: Annotated[Path | None, typer.Option(help="client certificate file for TLS")] = None,
    mqtt_key: Annotated[Path | None, typer.Option(help="client key file for TLS")] = None,
    mqtt_insecure: Annotated[bool, typer.Option(help="TLS without verifying the broker's certificate")] = False,
    mqtt_map: Annotated[Path | None, typer.Option(help="YAML file mapping device topics to Datastreams")] = None,
) -> None:
    """Serve the API (SensorThings under /v1.1, docs at /docs) with embedded DuckDB storage, or on PostgreSQL with
    --store; with --mqtt, bridge an MQTT broker (SensorThings MQTT extension and topic mappings)."""
    import faulthandler
    import signal

    import uvicorn

    from cityhub.app import create_app

    faulthandler.enable()  # a crash in native code (Arrow, DuckDB) prints every thread's Python stack
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints every thread's stack to stderr

    from cityhub.logs import configure as configure_logs

    try:
        configure_logs(log_level, log_format)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    settings = _settings(data_dir, store, host=host, port=port)
    for name, value in {
        "mqtt_url": mqtt,
        "mqtt_username": mqtt_username,
        "mqtt_password": mqtt_password,
        "mqtt_client_id": mqtt_client_id,
        "mqtt_ca_file": mqtt_ca,
        "mqtt_cert_file": mqtt_cert,
        "mqtt_key_file": mqtt_key,
        "mqtt_mappings": mqtt_map,
    }.items():
        if value is not None:
            setattr(settings, name, value)
    settings.mqtt_tls_insecure = settings.mqtt_tls_insecure or mqtt_insecure
    if settings.mqtt_url:
        from cityhub.mqtt.bridge import check_settings

        try:
            check_settings(settings)
        except (ValueError, OSError) as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
    if workers > 1:
        if not settings.store:
            console.print(
                "[red]--workers needs --store postgresql://…: the embedded DuckDB file belongs to one process[/red]"
            )
            raise typer.Exit(2)
        # Each worker builds its app from the environment (uvicorn starts them by import string).
        os.environ.update(_environment(settings))
        os.environ["CITYHUB_SERVE_DEMO"] = "1" if demo else ""
        os.environ["CITYHUB_SERVE_LOG_LEVEL"], os.environ["CITYHUB_LOG_FORMAT"] = log_level, log_format
        console.print(f"CityHub on http://{host}:{port}, {workers} processes  (data: {_where(settings)})")
        uvicorn.run("cityhub.app:app_from_environment", factory=True, workers=workers, host=host, port=port,
                    log_level=log_level, log_config=None, access_log=False, timeout_graceful_shutdown=3)  # fmt: skip
        return
    serving = None if settings.store else _serving_file(settings)
    if serving is not None:
        other = _running_hub(settings)
        if other is not None:
            console.print(f"[red]{settings.data_dir} is already served by process {other['pid']} at {other['url']}: "
                          "one process owns an embedded store (stop that one, or give --data-dir another "
                          "directory)[/red]")  # fmt: skip
            raise typer.Exit(1)
    application = create_app(settings, demo=demo)
    url = f"http://{host}:{port}"
    console.print(f"CityHub on {url}  (API docs: /docs, data: {_where(settings)})")
    # uvicorn re-raises the SIGTERM it shut down on, after restoring the handler it found: this one lets the
    # finally below remove serving.json (Python's default handler would end the process on the spot).
    signal.signal(signal.SIGTERM, _exit_on_signal)
    terminated = False
    try:
        if serving is not None:  # how `cityhub info` and others find this hub while it holds the file
            serving.parent.mkdir(parents=True, exist_ok=True)
            serving.write_text(json.dumps({"pid": os.getpid(), "url": url}))
        # Live streams (server-sent events) never end by themselves: give open requests 3 s at shutdown, then close.
        # log_config=None: uvicorn's records go to the handler configured above (text or JSON), like ours.
        uvicorn.run(application, host=host, port=port, log_level=log_level, log_config=None, access_log=False,
                    timeout_graceful_shutdown=3)  # fmt: skip
    except _Terminated:
        terminated = True
    finally:
        if serving is not None:
            serving.unlink(missing_ok=True)
    if terminated:  # ended by SIGTERM, as a process manager expects
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)


class _Terminated(Exception):
    pass


def _exit_on_signal(signum: int, frame: object) -> None:
    raise _Terminated


def _serving_file(settings: Settings) -> Path:
    return settings.data_dir / "serving.json"


def _running_hub(settings: Settings) -> dict[str, object] | None:
    """The hub serving this embedded store (its pid and URL), if one runs: what it wrote in serving.json, while that
    process lives (a killed hub leaves the file behind)."""
    try:
        found = json.loads(_serving_file(settings).read_text())
        os.kill(int(found["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return found if isinstance(found, dict) and found.get("url") else None


@app.command("import")
def import_(
    files: Annotated[
        list[Path], typer.Argument(help="CSV, NDJSON or Parquet files of Observations", exists=True, dir_okay=False)
    ],
    data_dir: DataDir = Path("var"),
    store: StoreUrl = None,
    partial: Annotated[bool, typer.Option(help="store the good rows of a file that has bad ones")] = False,
    batch_rows: Annotated[int, typer.Option(help="rows per committed batch", min=1)] = 100_000,
) -> None:
    """Import Observations (columns as for POST /api/v1/ingest) into the store: into the embedded DuckDB file only
    while no server runs (it belongs to one process; use the HTTP bulk endpoint then), into PostgreSQL (--store)
    beside running servers."""
    from cityhub.fileimport import import_files

    code = import_files(files, _settings(data_dir, store), partial=partial, batch_rows=batch_rows, console=console)
    raise typer.Exit(code)


@app.command()
def info(
    data_dir: DataDir = Path("var"),
    store_url: StoreUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """What is stored: counts per entity set, observation time span, size on disk."""
    from cityhub.store import open_store
    from cityhub.store.base import StoreInUse

    settings = _settings(data_dir, store_url)
    if not _has_store(settings):
        console.print(f"no store at {settings.db_path}")
        raise typer.Exit(1)
    try:
        store = open_store(settings, migrate_mode="check")
    except StoreInUse as exc:
        data = _info_from_hub(settings, exc)  # a hub holds the file: ask it
    else:
        try:
            data = store.info()
        finally:
            store.close()
    if as_json:
        typer.echo(json.dumps(data, default=str, indent=2))
        return
    t = Table(title=f"CityHub store {data['path']}")
    t.add_column("entity set")
    t.add_column("count", justify="right")
    for k, v in data["counts"].items():
        t.add_row(k, f"{v:,}")
    console.print(t)
    console.print(f"observations from {data['observations_from']} to {data['observations_to']}")
    console.print(f"size on disk: {data['bytes_on_disk'] / 1e6:,.1f} MB")


def _info_from_hub(settings: Settings, in_use: Exception) -> dict[str, Any]:
    import httpx

    hub = _running_hub(settings)
    if hub is None:
        raise in_use  # held by a process that left no serving.json: main() says which, in one line
    key = os.environ.get("CITYHUB_KEY")
    try:
        resp = httpx.get(f"{hub['url']}/api/v1/info", headers={"Authorization": f"Bearer {key}"} if key else {},
                         timeout=30)  # fmt: skip
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        console.print(f"[red]{settings.db_path} is held by the hub at {hub['url']}, which did not answer: {exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"(from the hub serving it at {hub['url']})")
    data: dict[str, Any] = resp.json()
    return data


@app.command()
def aqi(
    input_file: Annotated[Path, typer.Argument(metavar="INPUT", help="CSV or Parquet: time, station, pollutants")],
    output: Annotated[Path, typer.Option("-o", "--output", help="CSV or Parquet (by extension)")],
    standard: Annotated[str, typer.Option(help="vn | us | us2012 | kr | us2012-stateair")] = "vn",
    period: Annotated[str, typer.Option(help="hour | day")] = "hour",
    units: Annotated[str, typer.Option(help="gases in ugm3 | ppm | ppb (PM always µg/m³)")] = "ugm3",
    tz: Annotated[str, typer.Option(help="offset of times without one, and of local days")] = "+07:00",
) -> None:
    """Air-quality index (VN_AQI, US EPA AQI, Korea CAI) per station and hour or local day."""
    import pyarrow as pa

    from cityhub.airquality.cli import run_aqi

    try:
        done = run_aqi(input_file, output, standard=standard, period=period, units=units, tz=tz)
    except (ValueError, OSError, ArithmeticError, pa.ArrowException) as exc:
        console.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(2) from None
    read = ", ".join(f"{p} ← {c!r}" if c != p else p for p, c in done.columns.items())
    console.print(f"{done.rows:,} rows written to {output} (pollutants read: {read})", markup=False)
    if done.waiting:
        console.print(f"{done.waiting:,} rows have no index: a particulate was measured but its sub-index needs more "
                      "hours (a NowCast 2 of the last 3, a day 18 of its 24); the missing column names it",
                      markup=False)  # fmt: skip
    if done.ignored:
        console.print(f"ignored columns (not time, station or a pollutant): {', '.join(done.ignored)}", markup=False)


@app.command()
def deadletters(
    url: Annotated[str, typer.Option(help="a running hub", envvar="CITYHUB_URL")] = "http://127.0.0.1:8080",
    key: Annotated[str | None, typer.Option(help="operator or admin API key", envvar="CITYHUB_KEY")] = None,
    data_dir: DataDir = Path("var"),
    store_url: StoreUrl = None,
    topic: Annotated[str | None, typer.Option(help="topic prefix")] = None,
    limit: Annotated[int, typer.Option(help="how many, newest first")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Messages the hub could not store, with the reason: from the running hub's API, or from the store
    file when no hub is running."""
    import httpx

    from cityhub.ingest import deadletters as dl

    params: dict[str, str | int] = {"limit": limit, **({"topic": topic} if topic else {})}
    try:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        resp = httpx.get(f"{url.rstrip('/')}/api/v1/deadletters", params=params, headers=headers, timeout=10)
        if resp.status_code != 200:
            console.print(f"[red]{resp.status_code}: {resp.json().get('detail', resp.text)}[/red]")
            raise typer.Exit(1)
        data = resp.json()
    except httpx.ConnectError:
        from cityhub.store import open_store

        settings = _settings(data_dir, store_url)
        if not _has_store(settings):
            console.print(f"no hub at {url} and no store at {settings.db_path}")
            raise typer.Exit(1) from None
        store = open_store(settings, migrate_mode="check")
        try:
            data = dl.query(store, topic=topic, limit=limit)
        finally:
            store.close()
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    t = Table(title=f"{data['count']:,} dead letters (newest {len(data['value'])})")
    for col in ("id", "received", "topic", "reason", "payload"):
        t.add_column(col, overflow="fold")
    for d in data["value"]:
        t.add_row(str(d["id"]), d["receivedAt"], d["topic"] or "", d["reason"], (d["payload"] or "")[:80])
    console.print(t)


app.command()(simulate)  # `cityhub simulate`: the simulated city against a running hub (cityhub.sim.cli)


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(help="StateAir CSV, aqi.in Parquet, Open-Meteo CSV or a CityHub export")],
    speed: Annotated[str, typer.Option(help="time compression, e.g. 600x (an hour in 6 s), or max")] = "600x",
    via: Annotated[str, typer.Option(help="http | mqtt")] = "http",
    url: Annotated[str, typer.Option(help="the running hub", envvar="CITYHUB_URL")] = "http://127.0.0.1:8080",
    key: Annotated[str | None, typer.Option(help="admin API key (creates entities)", envvar="CITYHUB_KEY")] = None,
    mqtt: Annotated[str, typer.Option(help="broker for --via mqtt")] = "mqtt://127.0.0.1:1883",
    limit: Annotated[int | None, typer.Option(help="replay only the first N rows (in time order)")] = None,
) -> None:
    """Play a recorded feed into a running hub as a live stream, creating Things and Datastreams as needed."""
    import uuid

    import httpx
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cityhub import replay as rp

    try:
        factor = rp.parse_speed(speed)
        if via not in ("http", "mqtt"):
            raise ValueError("--via must be http or mqtt")
        feed = rp.read_feed(file)
    except (ValueError, OSError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if limit is not None:
        feed.table = feed.table.slice(0, limit)
    n = feed.table.num_rows
    left = f"{feed.skipped:,} rows without a value skipped"
    if feed.derived:
        left += f"; {feed.derived:,} VN_AQI values left out: the hub derives its own from the pollutants"
    console.print(f"{feed.source}: {n:,} observations ({left})")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=120) as client:
        try:
            ids = rp.ensure_datastreams(client, feed)
            sink: rp.HttpSink | rp.MqttSink = (
                rp.HttpSink(client) if via == "http" else rp.MqttSink(mqtt, f"cityhub-replay-{uuid.uuid4().hex[:8]}")
            )
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as bar:
                task = bar.add_task("replaying", total=n)
                stats = rp.play(
                    feed,
                    ids,
                    sink,
                    factor,
                    progress=lambda done, t: bar.update(task, completed=done, description=f"at {t:%Y-%m-%d %H:%M}Z"),
                )
        except (httpx.HTTPError, RuntimeError, OSError) as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
    console.print(
        f"sent {stats.sent:,} in {stats.seconds:,.1f} s"
        + (
            f": stored {stats.stored:,}, duplicates {stats.duplicates:,}, rejected {stats.rejected:,}"
            if via == "http"
            else ""
        )
    )
    for reason, count in sorted(stats.reasons.items(), key=lambda x: -x[1])[:10]:
        console.print(f"  rejected {count:,}: {reason}")


@app.command()
def export(
    output: Annotated[Path, typer.Option("-o", "--output", help="CSV or Parquet (by extension)")],
    url: Annotated[str, typer.Option(help="the running hub", envvar="CITYHUB_URL")] = "http://127.0.0.1:8080",
    key: Annotated[str | None, typer.Option(help="API key, if anonymous reads are off", envvar="CITYHUB_KEY")] = None,
    datastreams: Annotated[str | None, typer.Option(help="comma-separated Datastream ids")] = None,
    things: Annotated[str | None, typer.Option(help="comma-separated Thing ids")] = None,
    start: Annotated[str | None, typer.Option(help="from, ISO 8601 with offset")] = None,
    end: Annotated[str | None, typer.Option(help="to (exclusive), ISO 8601 with offset")] = None,
) -> None:
    """Export Observations in CityHub's long format (what `cityhub replay` plays back)."""
    import httpx

    fmt = "parquet" if output.suffix.lower() == ".parquet" else "csv"
    params = {
        k: v
        for k, v in {"datastreams": datastreams, "things": things, "start": start, "end": end, "format": fmt}.items()
        if v
    }
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        r = httpx.get(f"{url.rstrip('/')}/api/v1/export", params=params, headers=headers, timeout=600)
    except httpx.HTTPError as exc:
        console.print(f"no hub at {url}: {exc}", style="red", markup=False)
        raise typer.Exit(1) from None
    if r.status_code != 200:
        console.print(f"[red]{r.status_code}: {r.json().get('detail', r.text)}[/red]")
        raise typer.Exit(1)
    output.write_bytes(r.content)
    console.print(f"{len(r.content):,} bytes written to {output}")


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="admin | operator | device")],
    name: Annotated[str, typer.Option(help="who or what holds the key")] = "",
    thing: Annotated[int | None, typer.Option(help="device keys: the Thing whose Datastreams it may write")] = None,
    data_dir: DataDir = Path("var"),
) -> None:
    """Create a key and print it (shown once; only its hash is stored)."""
    from cityhub.auth.keys import KeyStore

    try:
        key = KeyStore(Settings(data_dir=data_dir).keys_path).create(role, name or role, thing)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    typer.echo(key)


@keys_app.command("list")
def keys_list(data_dir: DataDir = Path("var")) -> None:
    """List keys (without secrets)."""
    from cityhub.auth.keys import KeyStore

    for k in KeyStore(Settings(data_dir=data_dir).keys_path).list():
        typer.echo(json.dumps(k))


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="the key's id, as `cityhub keys list` shows it")],
    data_dir: DataDir = Path("var"),
) -> None:
    """Revoke a key by its id (from `cityhub keys list`)."""
    from cityhub.auth.keys import KeyStore

    if not KeyStore(Settings(data_dir=data_dir).keys_path).revoke(key_id):
        console.print(f"no key {key_id}")
        raise typer.Exit(1)


@mqtt_app.command("credentials")
def mqtt_credentials(
    thing: Annotated[int | None, typer.Option(help="a device: the Thing whose Datastreams it may publish to")] = None,
    hub: Annotated[bool, typer.Option("--hub", help="the hub's own connection (CITYHUB_MQTT_USERNAME)")] = False,
    reader: Annotated[bool, typer.Option("--reader", help="a subscriber to what the hub republishes")] = False,
    username: Annotated[str | None, typer.Option(help="user name (default: made up from the role)")] = None,
    data_dir: DataDir = Path("var"),
) -> None:
    """Create an MQTT user and print its user name and password (shown once; only a Mosquitto hash is kept).
    Then regenerate the broker's files (`cityhub mqtt acl`) unless the hub keeps them (CITYHUB_MQTT_ACL_DIR)."""
    from cityhub.mqtt.acl import CredentialStore, credentials_path

    if (thing is not None) + hub + reader != 1:
        console.print("[red]give exactly one of --thing ID, --hub or --reader[/red]")
        raise typer.Exit(2)
    role = "hub" if hub else "reader" if reader else "device"
    try:
        user, password = CredentialStore(credentials_path(data_dir)).create(role, thing, username)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    typer.echo(f"username: {user}\npassword: {password}")


@mqtt_app.command("list")
def mqtt_list(data_dir: DataDir = Path("var")) -> None:
    """List MQTT users (without hashes)."""
    from cityhub.mqtt.acl import CredentialStore, credentials_path

    for u in CredentialStore(credentials_path(data_dir)).list():
        typer.echo(json.dumps(u))


@mqtt_app.command("revoke")
def mqtt_revoke(
    username: Annotated[str, typer.Argument(help="the MQTT user name to remove")], data_dir: DataDir = Path("var")
) -> None:
    """Revoke an MQTT user; it is refused once the broker's files are regenerated and reloaded."""
    from cityhub.mqtt.acl import CredentialStore, credentials_path

    if not CredentialStore(credentials_path(data_dir)).revoke(username):
        console.print(f"no MQTT user {username}")
        raise typer.Exit(1)


@mqtt_app.command("acl")
def mqtt_acl(
    output: Annotated[Path, typer.Option("-o", "--output", help="folder for mosquitto.passwd and mosquitto.acl")],
    data_dir: DataDir = Path("var"),
    mqtt_map: Annotated[
        Path | None, typer.Option(help="the hub's topic mappings (devices may publish to their mapped topics)")
    ] = None,
    reload_pid_file: Annotated[Path | None, typer.Option(help="Mosquitto's pid file: SIGHUP it to reload")] = None,
) -> None:
    """Write Mosquitto's password file and ACL from the MQTT credentials and the store's Datastreams. The ACL
    lists each device's Datastreams: run it again after Datastreams change (or let the hub do it:
    CITYHUB_MQTT_ACL_DIR). Anonymous reads follow CITYHUB_ANONYMOUS_READ. The hub must be stopped (the store
    is one process's), unless the hub keeps the files itself."""
    from cityhub.mqtt import acl
    from cityhub.mqtt.mappings import Mappings, load_mappings

    settings = Settings(data_dir=data_dir)
    mapping_file = mqtt_map or settings.mqtt_mappings
    try:
        mappings = load_mappings(mapping_file) if mapping_file else Mappings([])
        refs: list[acl.DatastreamRef] = []
        if _has_store(settings):
            store = _open_existing(settings)
            if store is not None:  # None: a database where no hub has run yet, so no Datastreams either
                try:
                    refs = acl.datastream_refs(store.catalog)
                finally:
                    store.close()
        creds = acl.CredentialStore(acl.credentials_path(data_dir)).active()
        passwd, text = acl.render(
            creds,
            refs,
            mappings,
            anonymous_read=settings.anonymous_read,
            private_prefix=settings.mqtt_private_prefix,
        )
        changed = acl.write_files(output, passwd, text)
        if changed and reload_pid_file is not None:
            acl.reload_broker(reload_pid_file)
    except (ValueError, OSError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    users = {r: sum(c.role == r for c in creds) for r in acl.ROLES}
    console.print(
        f"{output / acl.PASSWD_FILE}, {output / acl.ACL_FILE}: {users['hub']} hub, {users['device']} device and "
        f"{users['reader']} reader users; anonymous reads {'on' if settings.anonymous_read else 'off'}"
        + ("" if changed else " (unchanged)")
    )
    if not users["hub"]:
        console.print("[yellow]no hub user: create one with `cityhub mqtt credentials --hub`[/yellow]")


@db_app.command("init")
def db_init(store: Annotated[str, typer.Option("--store", help="postgresql://user@host:5432/db[?schema=name]",
                                               envvar="CITYHUB_STORE")]) -> None:  # fmt: skip
    """Create CityHub's tables (and PostGIS) in an empty database or schema; safe to run twice."""
    _db_upgrade(store, init=True)


@db_app.command("upgrade")
def db_upgrade(store: Annotated[str, typer.Option("--store", help="postgresql://user@host:5432/db[?schema=name]",
                                                  envvar="CITYHUB_STORE")]) -> None:  # fmt: skip
    """Apply the schema migrations the database lacks (none: nothing happens); refuses a schema newer than
    this code."""
    _db_upgrade(store, init=False)


@db_app.command("status")
def db_status(store: Annotated[str, typer.Option("--store", help="postgresql://user@host:5432/db[?schema=name]",
                                                 envvar="CITYHUB_STORE")]) -> None:  # fmt: skip
    """The database's schema version and this code's."""
    import psycopg

    from cityhub.store.postgres import migrate
    from cityhub.store.postgres.store import split_url

    conninfo, schema = _db_target(store)
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as con:
            version = migrate.current_version(con, schema)
    except psycopg.Error as exc:
        console.print(f"[red]cannot reach {split_url(store)[0].split('@')[-1]}: {str(exc).strip()}[/red]")
        raise typer.Exit(1) from None
    console.print(f"schema {schema!r}: version {version}; this code: version {migrate.CODE_VERSION}")
    raise typer.Exit(0 if version == migrate.CODE_VERSION else 1)


def _db_target(store: str) -> tuple[str, str]:
    from cityhub.store.postgres.store import split_url

    try:
        Settings(store=store)
        return split_url(store)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        console.print(f"--store: {reason}", style="red", markup=False)
        raise typer.Exit(2) from None
    except ValueError as exc:
        console.print(f"--store: {exc}", style="red", markup=False)
        raise typer.Exit(2) from None


def _db_upgrade(store: str, *, init: bool) -> None:
    import psycopg

    from cityhub.store.postgres import migrate

    conninfo, schema = _db_target(store)
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as con:
            before = migrate.current_version(con, schema)
            if not init and before == 0:
                console.print(f"no CityHub schema in {schema!r}: run `cityhub db init` first")
                raise typer.Exit(1)
            applied = migrate.upgrade(con, schema)
    except migrate.SchemaError as exc:
        console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(2) from None
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        console.print(f"{type(exc).__name__}: {first}", style="red", markup=False)
        raise typer.Exit(1) from None
    if applied:
        for m in applied:
            console.print(f"applied {m.version:04d}_{m.name}")
        console.print(f"schema {schema!r} is at version {applied[-1].version}")
    else:
        console.print(f"schema {schema!r} is at version {before}, this code's: nothing to do")


@app.command("copy")
def copy_(
    source: Annotated[str, typer.Option("--from", help="data directory (embedded DuckDB) or postgresql:// URL")],
    target: Annotated[str, typer.Option("--to", help="an empty data directory or postgresql:// URL (a new schema)")],
    batch_rows: Annotated[int, typer.Option(help="rows read and written at a time")] = 50_000,
) -> None:
    """Copy everything (every entity, Observation, alert, webhook, dead letter, with its id) from one store into
    an empty one, e.g. from the embedded file to PostgreSQL or back, then compare row counts and checksums of
    every table. Stop the hubs using them first. Exit 0 when every table matches."""
    from cityhub.transfer import copy_store

    raise typer.Exit(copy_store(source, target, batch_rows=batch_rows, console=console))


# -- the help screens ------------------------------------------------------------------------------------------
_TYPE_WORDS = {"int": "N", "float": "NUMBER", "str": "TEXT", "datetime": "TIME"}


def _metavar(param: Any) -> str:
    """What a value looks like in help: FILE, DIR, N, vn|us|kr, and nothing after a flag. Typer 0.29 prints the
    Python annotation instead (``<bool>`` after every flag, ``<list[Path]>``, ``{files}...`` in usage lines)."""
    if param.param_type_name == "option" and param.is_flag:
        return ""
    desc = param.type_descriptor
    if desc.choices:
        return "|".join(str(getattr(c, "value", c)) for c in desc.choices)
    if param.param_type_name == "argument":  # Typer appends "..." to a list in the usage line
        name = str(param.name or "value").upper()
        return name.removesuffix("S") if param.nargs != 1 else name
    if desc.is_path:
        info = desc.parameter_info
        return "DIR" if not info.file_okay else "FILE" if not info.dir_okay else "PATH"
    return _TYPE_WORDS.get(getattr(desc.annotation, "__name__", ""), "VALUE")


def command() -> Any:
    """The ``cityhub`` command as Typer builds it from ``app``, with readable value names in every help screen.

    Set on Typer's parameter objects (its own copy of click since 0.29, hence the pin in pyproject.toml): a
    metavar for each value, none after a flag (``--help`` included), no Python type beside an argument, and
    paragraphs filled to the terminal's width."""
    from typer._click import Context

    root = typer.main.get_command(app)
    todo: list[Any] = [root]  # Typer's command and parameter classes, whose help methods are replaced here
    while todo:
        cmd = todo.pop()
        param: Any
        for param in cmd.params:
            param.metavar = _metavar(param)
            if param.param_type_name == "argument":
                param.display_type_rich = lambda ctx: None
                # click's usage form: FILE... when required, [FILE] when not (Typer 0.29 writes {FILE}...).
                usage = param.metavar if param.required else f"[{param.metavar}]"
                param._usage_display_name = lambda u=usage + ("..." if param.nargs != 1 else ""): u
        # Markdown: a docstring's line breaks inside a paragraph are not kept (Rich mode keeps them, and the
        # command list showed "... or on PostgreSQL with" / "--store; ..." on two lines).
        cmd.rich_markup_mode = "markdown"
        help_option = cmd.get_help_option(Context(cmd, info_name=cmd.name))
        if help_option is not None:
            help_option.metavar = ""
        todo.extend(getattr(cmd, "commands", {}).values())
    return root


def main() -> None:
    """The console script (``cityhub``): a store that cannot be opened is one line to the user, not a traceback."""
    from cityhub.errors import ProblemError

    try:
        command()(prog_name="cityhub")
    except ProblemError as exc:  # StoreInUse, StoreUnavailable, SchemaError: what to do, in the detail
        console.print(f"[red]{exc.detail}[/red]")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
