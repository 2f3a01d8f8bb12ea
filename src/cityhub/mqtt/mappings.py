"""Topic mappings: MQTT topics and payloads of devices that do not speak SensorThings, mapped to Datastreams.

A YAML file (``cityhub serve --mqtt-map mappings.yaml``)::

    mappings:
      # one value per message: a plain number, the time is when the hub received it
      - topic: hanoi/aq/+station/pm25          # +name: one topic level, captured; #name: the rest
        format: number
        datastream: "PM2.5 {station}"          # a Datastream name, {captures} filled in
      # JSON with paths to the values and the time; one message may carry several Observations
      - topic: hanoi/aq/+station/state
        format: json
        time: ts                               # dot path; ISO 8601 with offset, or epoch seconds/milliseconds
        values:
          - {value: pm25, datastream: "PM2.5 {station}"}
          - {value: data.pm10, datastream_id: "{...}"}   # or a Datastream id (template)
      # a CSV line, with its columns named here
      - topic: hanoi/water/+gauge/level
        format: csv
        columns: [time, level_cm]
        time: time
        value: level_cm
        datastream: "Water level {gauge}"

The first mapping whose topic matches wins. A payload that does not fit its mapping becomes a dead letter
naming the reason. Paths may start with ``$.`` (JSONPath style) and use numbers for list items.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import yaml

from cityhub import timefmt
from cityhub.errors import ProblemError

FORMATS = ("number", "json", "csv")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _bad(reason: str, field: str = "payload") -> ProblemError:
    return ProblemError(400, "Bad Request", reason, field=field)


@dataclass(frozen=True)
class Target:
    value: str | None  # path (json) or column (csv); None for the whole payload (number)
    datastream: str | None  # name template
    datastream_id: str | None  # id template

    def resolve(self, captures: dict[str, str], by_name: Callable[[str], int | None]) -> int:
        if self.datastream_id is not None:
            text = _fill(self.datastream_id, captures)
            if not text.isdigit() or int(text) >= 2**63:
                raise _bad(f"datastream_id {text!r} is not an id", "topic")
            return int(text)
        assert self.datastream is not None
        name = _fill(self.datastream, captures)
        ds_id = by_name(name)
        if ds_id is None:
            raise _bad(f"no Datastream is named {name!r}", "datastream")
        return ds_id


@dataclass(frozen=True)
class Mapping:
    topic: str
    levels: tuple[tuple[str, str | None], ...]  # (literal | "+" | "#", capture name)
    format: str
    targets: tuple[Target, ...]
    time: str | None
    columns: tuple[str, ...]
    delimiter: str

    @property
    def filter(self) -> str:
        return "/".join(lit for lit, _ in self.levels)

    def match(self, topic: str) -> dict[str, str] | None:
        parts = topic.split("/")
        captures: dict[str, str] = {}
        for i, (lit, name) in enumerate(self.levels):
            if lit == "#":
                if name:
                    captures[name] = "/".join(parts[i:])
                return captures
            if i >= len(parts):
                return None
            if lit == "+":
                if name:
                    captures[name] = parts[i]
            elif lit != parts[i]:
                return None
        return captures if len(parts) == len(self.levels) else None

    def bodies(
        self, payload: bytes, captures: dict[str, str], received_at: datetime, by_name: Callable[[str], int | None]
    ) -> list[tuple[dict[str, Any], int | None]]:
        try:
            text = payload.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise _bad("payload is not UTF-8 text") from None
        if self.format == "number":
            doc: Any = None
        elif self.format == "json":
            try:
                doc = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise _bad(f"payload is not JSON: {exc}") from None
        else:
            try:
                row = next(csv.reader(io.StringIO(text), delimiter=self.delimiter))
            except (StopIteration, csv.Error) as exc:
                raise _bad(f"payload is not a CSV line: {exc}") from None
            if len(row) != len(self.columns):
                raise _bad(f"CSV line has {len(row)} fields; the mapping names {len(self.columns)}")
            doc = dict(zip(self.columns, row, strict=True))
        when = received_at if self.time is None else _time(_get(doc, self.time, "time"))
        out: list[tuple[dict[str, Any], int | None]] = []
        for target in self.targets:
            raw = text if target.value is None else _get(doc, target.value, "value")
            # Text formats carry numbers; JSON keeps its types and the Datastream's observationType judges them.
            result = raw if self.format == "json" else _number(raw, target.value or "payload")
            ds_id = target.resolve(captures, by_name)
            out.append(({"phenomenonTime": timefmt.iso_time(when), "result": result}, ds_id))
        return out


class Mappings:
    def __init__(self, mappings: list[Mapping]) -> None:
        self.mappings = mappings
        self._cache: dict[str, tuple[Mapping, dict[str, str]] | None] = {}

    def filters(self) -> list[str]:
        return sorted({m.filter for m in self.mappings})

    def bodies(
        self, topic: str, payload: bytes, received_at: datetime, by_name: Callable[[str], int | None]
    ) -> list[tuple[dict[str, Any], int | None]]:
        hit: tuple[Mapping, dict[str, str]] | Literal[False] | None = self._cache.get(topic, False)
        if hit is False:
            hit = None
            for m in self.mappings:
                captures = m.match(topic)
                if captures is not None:
                    hit = (m, captures)
                    break
            if len(self._cache) < 100_000:
                self._cache[topic] = hit
        if hit is None:
            raise _bad(f"no mapping matches topic {topic!r}", "topic")
        mapping, captures = hit
        return mapping.bodies(payload, captures, received_at, by_name)


def _fill(template: str, captures: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in captures:
            raise _bad(f"the mapping uses {{{m.group(1)}}} but its topic captures no such level", "topic")
        return captures[m.group(1)]

    return _PLACEHOLDER.sub(sub, template)


def _get(doc: Any, path: str, what: str) -> Any:
    cur = doc
    keys = path[2:] if path.startswith("$.") else path
    for key in keys.split("."):
        if isinstance(cur, dict) and key in cur:
            cur = cur[key]
        elif isinstance(cur, list) and key.isdigit() and int(key) < len(cur):
            cur = cur[int(key)]
        else:
            raise _bad(f"payload has no {what} at {path!r}", what)
    if cur is None:
        raise _bad(f"payload has null at {path!r}", what)
    return cur


def _number(raw: Any, where: str) -> float | int:
    if isinstance(raw, bool):
        raise _bad(f"{where} is not a number", "result")
    if isinstance(raw, (int, float)):
        return raw
    try:
        return float(str(raw).strip())
    except ValueError:
        raise _bad(f"{where} is not a number: {str(raw)[:40]!r}", "result") from None


def _time(raw: Any) -> datetime:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        secs = raw / 1000 if raw > 1e11 else raw  # epoch milliseconds or seconds
        try:
            return datetime.fromtimestamp(secs, UTC)
        except (OverflowError, OSError, ValueError):
            raise _bad(f"time {raw!r} is out of range", "time") from None
    text = str(raw).strip()
    if text.replace(".", "", 1).isdigit():
        return _time(float(text))
    try:
        return timefmt.parse_iso(text)
    except timefmt.TimeFormatError as exc:
        if exc.reason == timefmt.NO_ZONE:
            raise _bad(f"time {text[:40]!r} has no time zone", "time") from None
        raise _bad(f"time {text[:40]!r} is not ISO 8601 or epoch seconds", "time") from None


# -- loading ---------------------------------------------------------------------------------------------
def parse_topic(pattern: str) -> tuple[tuple[str, str | None], ...]:
    levels: list[tuple[str, str | None]] = []
    parts = pattern.split("/")
    for i, part in enumerate(parts):
        if part.startswith("+"):
            levels.append(("+", part[1:] or None))
        elif part.startswith("#"):
            if i != len(parts) - 1:
                raise ValueError(f"topic {pattern!r}: # must be the last level")
            levels.append(("#", part[1:] or None))
        elif "+" in part or "#" in part:
            raise ValueError(f"topic {pattern!r}: wildcards must fill a whole level")
        else:
            levels.append((part, None))
    return tuple(levels)


def mapping_from_dict(d: dict[str, Any], where: str) -> Mapping:
    if not isinstance(d, dict):
        raise ValueError(f"{where}: must be a mapping")
    known = {"topic", "format", "time", "columns", "delimiter", "value", "datastream", "datastream_id", "values"}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}")
    topic = d.get("topic")
    if not isinstance(topic, str) or not topic:
        raise ValueError(f"{where}: topic is required")
    fmt = d.get("format", "number")
    if fmt not in FORMATS:
        raise ValueError(f"{where}: format must be one of {FORMATS}")
    columns = tuple(d.get("columns") or ())
    if fmt == "csv" and not columns:
        raise ValueError(f"{where}: a csv mapping needs columns")
    if fmt == "number" and ("time" in d or "values" in d):
        raise ValueError(f"{where}: a number payload has no time or values; use json or csv")
    entries = d.get("values") or [{k: d[k] for k in ("value", "datastream", "datastream_id") if k in d}]
    targets = []
    for k, e in enumerate(entries):
        if not isinstance(e, dict) or (e.get("datastream") is None) == (e.get("datastream_id") is None):
            raise ValueError(f"{where}.values[{k}]: give exactly one of datastream (name) or datastream_id")
        value = e.get("value")
        if fmt != "number" and not value:
            raise ValueError(f"{where}.values[{k}]: value (a path or column) is required for {fmt}")
        if fmt == "csv" and value not in columns:
            raise ValueError(f"{where}.values[{k}]: value {value!r} is not one of the columns")
        ds, ds_id = e.get("datastream"), e.get("datastream_id")
        targets.append(Target(value, None if ds is None else str(ds), None if ds_id is None else str(ds_id)))
    levels = parse_topic(topic)
    names = {n for _, n in levels if n}
    for t in targets:
        for ph in _PLACEHOLDER.findall(t.datastream or t.datastream_id or ""):
            if ph not in names:
                raise ValueError(f"{where}: {{{ph}}} is not captured by topic {topic!r}")
    time_key = d.get("time")
    if fmt == "csv" and time_key is not None and time_key not in columns:
        raise ValueError(f"{where}: time {time_key!r} is not one of the columns")
    return Mapping(topic, levels, fmt, tuple(targets), time_key, columns, str(d.get("delimiter", ",")))


def load_mappings(path: Path) -> Mappings:
    """Read a mappings file; ValueError says what is wrong and where."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not YAML: {exc}") from None
    items = doc.get("mappings") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a top-level 'mappings:' list")
    return Mappings([mapping_from_dict(d, f"{path}: mappings[{i}]") for i, d in enumerate(items)])
