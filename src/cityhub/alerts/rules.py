"""Alert rules: what an operator writes (YAML or JSON), validated with pydantic.

Five kinds, all evaluated on numeric Observations in phenomenon-time order (``stale`` on a timer):

- ``threshold``: ``value`` (or ``levels``) with ``op`` (>=, >, <=, <), optionally held ``for`` a duration or
  ``for_count`` consecutive Observations, cleared with ``hysteresis`` and ``clear_for``/``clear_count``;
- ``range``: outside the physical range [``min``, ``max``];
- ``rate``: a change faster than ``max_rate`` per ``per`` between consecutive Observations;
- ``stuck``: the same value ``min_count`` times in a row spanning at least ``duration``;
- ``stale``: no Observation for ``factor`` × the Datastream's usual interval (at least ``min_silence``).

A rule's ``scope`` selects Datastreams (all given keys must match); with ``index: VN_AQI`` the rule reads the
derived hourly (or daily) VN_AQI Datastream of each selected Thing and its subject is the Thing.
"""

from __future__ import annotations

import math
import re
import string
from typing import Annotated, Any, Literal

import shapely
import shapely.geometry
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from cityhub import jsontext
from cityhub.errors import ProblemError, bad_request

Kind = Literal["threshold", "range", "rate", "stuck", "stale"]
Op = Literal[">=", ">", "<=", "<"]
Severity = Literal["info", "warning", "critical"]
MAX_LEVELS = 8
MAX_ID = 2**53
_DURATION_TEXT = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*d)?\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m)?"
                            r"\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$", re.I)  # fmt: skip
_ISO = re.compile(
    r"^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$", re.I
)
MAX_DURATION_S = 10 * 366 * 86400
MESSAGE_FIELDS = ("subject", "value", "unit", "level", "rule", "threshold", "default", "hours")


def seconds(value: str | float | int) -> float:
    """A duration in seconds: a number of seconds, ISO 8601 (``PT2H``, ``P1D``) or ``2h``, ``90m``, ``1h30m``."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("a duration is a number of seconds or text such as PT2H or 30m")
    if isinstance(value, int | float):
        s = float(value)
    else:
        text = value.strip()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            return seconds(float(text))
        m = _ISO.match(text) or (_DURATION_TEXT.match(text) if text and not text.upper().startswith("P") else None)
        if m is None or not any(m.groups()):
            raise ValueError(f"{value!r} is not a duration (use PT2H, P1D, 30m, 1h30m or seconds)")
        d, h, mi, se = (float(g) if g else 0.0 for g in m.groups())
        s = d * 86400 + h * 3600 + mi * 60 + se
    if not math.isfinite(s) or s < 0 or s > MAX_DURATION_S:
        raise ValueError("a duration must be between 0 and 10 years")
    return s


def _duration(value: Any) -> Any:
    seconds(value)  # raises ValueError, which pydantic reports with the field
    return value


def _refs(value: Any, names_only: bool = False) -> Any:
    """One id or name, or a list of them (checked here so that an error names the field, not a union member)."""
    items = value if isinstance(value, list) else [value]
    if not 1 <= len(items) <= 10_000:
        raise ValueError("give 1 to 10,000 ids or names")
    for x in items:
        if isinstance(x, str):
            if not 1 <= len(x) <= 500:
                raise ValueError("a name has 1 to 500 characters")
        elif names_only or isinstance(x, bool) or not isinstance(x, int):
            raise ValueError("a name (text)" if names_only else "an id (integer) or a name (text)")
        elif not 1 <= x <= MAX_ID:
            raise ValueError(f"an id is between 1 and {MAX_ID}")
    return value


Duration = Annotated[str | float, BeforeValidator(_duration)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Refs = Annotated[int | str | list[int | str], BeforeValidator(_refs)]
Names = Annotated[str | list[str], BeforeValidator(lambda v: _refs(v, names_only=True))]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)


Title = dict[Literal["vi", "en"], Annotated[str, Field(max_length=300)]]


class LevelSpec(_Model):
    """One step of a multi-level threshold (e.g. flood alarm I, II, III)."""

    value: float
    name: str | None = Field(None, max_length=100)
    severity: Severity | None = None
    title: Title | None = Field(None, description="this level's title, per language (else the rule's)")


class ScopeSpec(_Model):
    """Which Datastreams a rule watches; every key given must match (an empty scope: all Datastreams)."""

    datastream: Refs | None = Field(None, description="id(s) or name(s)")
    thing: Refs | None = Field(None, description="id(s) or name(s) of Things")
    observed_property: Names | None = Field(None, description="ObservedProperty name(s) or definition(s), e.g. PM2.5")
    area: dict[str, Any] | None = Field(None, description="GeoJSON Polygon or MultiPolygon (or a Feature of one)")
    thing_properties: dict[str, str | int | float | bool] | None = Field(
        None, description="Thing properties that must equal these values, e.g. {stationCode: '74165'}"
    )
    unit: str | None = Field(None, max_length=50, description="only Datastreams with this unit symbol")
    include_derived: bool = Field(False, description="also CityHub's derived Datastreams (VN_AQI)")


class RuleSpec(_Model):
    """An alert rule (see the module documentation for the kinds)."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=4000)
    kind: Kind
    enabled: bool = True
    severity: Severity = "warning"
    scope: ScopeSpec = Field(default_factory=ScopeSpec)
    index: Literal["VN_AQI"] | None = Field(None, description="evaluate each scoped Thing's derived index")
    index_period: Literal["hour", "day"] = "hour"
    # threshold
    op: Op = ">="
    value: float | None = None
    levels: list[LevelSpec] | None = Field(None, min_length=1, max_length=MAX_LEVELS)
    hysteresis: float = Field(0.0, ge=0, description="how far back across a threshold a value must go to clear it")
    for_: Duration | None = Field(None, alias="for", description="the condition must hold this long (e.g. 2h)")
    for_count: int = Field(1, ge=1, le=100_000, description="... and over at least this many Observations")
    clear_for: Duration | None = None
    clear_count: int = Field(1, ge=1, le=100_000)
    max_gap: Duration = Field("PT1H", description="Observations further apart break a consecutive run")
    # range
    min: float | None = None
    max: float | None = None
    # rate of change
    max_rate: float | None = Field(None, gt=0)
    per: Duration = "PT1H"
    direction: Literal["rise", "fall", "both"] = "both"
    # stale
    factor: float = Field(3.0, gt=0, le=10_000)
    interval: Duration | None = Field(None, description="the usual interval (default: the Datastream's)")
    min_silence: Duration | None = None
    # stuck
    duration: Duration | None = None
    min_count: int = Field(3, ge=2, le=100_000)
    # presentation
    advice: Literal["school"] | None = Field(None, description="attach school guidance (VN_AQI rules)")
    message: str | None = Field(None, max_length=1000)
    title: Title | None = Field(
        None,
        description="what an operator reads first, per language (vi, en), with the message's placeholders and "
        "{hours}: e.g. 'Không khí kém kéo dài {hours} giờ ở {subject}'",
    )

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _problem_from(exc: ValidationError, prefix: str = "") -> ProblemError:
    errors = [{"field": prefix + ".".join(str(x) for x in e.get("loc", ())), "reason": e["msg"]} for e in exc.errors()]
    first: dict[str, Any] = errors[0] if errors else {"field": prefix.rstrip(".") or None, "reason": "invalid rule"}
    return bad_request(first["reason"], field=first["field"], errors=errors)


def check(spec: RuleSpec, prefix: str = "") -> RuleSpec:
    """Checks across fields that pydantic's per-field validation cannot make; raises a 400 with the field."""

    def fail(field: str, reason: str) -> ProblemError:
        return bad_request(reason, field=prefix + field)

    if spec.kind == "threshold":
        if (spec.value is None) == (spec.levels is None):
            raise fail("value", "a threshold rule needs either value or levels")
        vals = [lv.value for lv in spec.levels or []]
        if len(set(vals)) != len(vals):
            raise fail("levels", "levels must have distinct values")
    elif spec.value is not None or spec.levels is not None:
        raise fail("value", f"value and levels belong to threshold rules, not {spec.kind}")
    if spec.kind == "range":
        if spec.min is None and spec.max is None:
            raise fail("min", "a range rule needs min and/or max")
        if spec.min is not None and spec.max is not None and spec.min >= spec.max:
            raise fail("max", "max must be greater than min")
    if spec.kind == "rate" and spec.max_rate is None:
        raise fail("max_rate", "a rate rule needs max_rate")
    if spec.kind == "rate" and seconds(spec.per) <= 0:
        raise fail("per", "per must be a positive duration")
    if seconds(spec.max_gap) <= 0:
        raise fail("max_gap", "max_gap must be a positive duration")
    if spec.interval is not None and seconds(spec.interval) <= 0:
        raise fail("interval", "interval must be a positive duration")
    templates = [("message", spec.message)] if spec.message is not None else []
    templates += [(f"title.{lang}", text) for lang, text in (spec.title or {}).items()]
    for i, lv in enumerate(spec.levels or []):
        templates += [(f"levels.{i}.title.{lang}", text) for lang, text in (lv.title or {}).items()]
    for where, template in templates:
        try:
            fields = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise fail(where, f"not a valid template: {exc}") from None
        for _, name, fmt, conv in fields:
            if name is not None and (name not in MESSAGE_FIELDS or fmt or conv):
                raise fail(where, f"placeholders are {{{'}, {'.join(MESSAGE_FIELDS)}}} without format specs")
    if spec.scope.area is not None:
        try:
            area_shape(spec.scope.area)
        except ValueError as exc:
            raise fail("scope.area", str(exc)) from None
    return spec


def area_shape(geojson: dict[str, Any]) -> Any:
    """A valid polygonal shapely geometry from GeoJSON (a Polygon, MultiPolygon or a Feature of one)."""
    obj = geojson.get("geometry") if geojson.get("type") == "Feature" else geojson
    if not isinstance(obj, dict) or obj.get("type") not in ("Polygon", "MultiPolygon"):
        raise ValueError("area must be a GeoJSON Polygon or MultiPolygon")
    try:
        geom = shapely.geometry.shape(obj)
    except Exception as exc:  # shapely raises many kinds on malformed coordinates
        raise ValueError(f"area is not a valid polygon: {exc}") from None
    if geom.is_empty or not geom.is_valid or geom.area <= 0:
        raise ValueError("area is not a valid polygon (empty, self-intersecting or without area)")
    return geom


def parse_rule(body: Any, prefix: str = "") -> RuleSpec:
    """Validate a rule body (a dict from JSON or YAML); 400 problem with the field at fault."""
    if not isinstance(body, dict):
        raise bad_request("a rule is a JSON object", field=prefix.rstrip(".") or None)
    if jsontext.too_deep(body):  # stored as JSON text, which must be read back
        raise bad_request(f"the rule {jsontext.TOO_DEEP}", field=prefix.rstrip(".") or "body")
    try:
        spec = RuleSpec.model_validate(body)
    except ValidationError as exc:
        raise _problem_from(exc, prefix) from None
    return check(spec, prefix)


def parse_ruleset(text: str | bytes) -> tuple[str | None, list[RuleSpec]]:
    """A rule file: ``{name: ..., rules: [...]}`` (or a bare list of rules) in YAML or JSON."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise bad_request(f"not valid YAML: {str(exc).splitlines()[0]}", field="body") from None
    except RecursionError:  # PyYAML composes nested nodes recursively: a few hundred "[" are enough
        raise bad_request(f"the rule file {jsontext.TOO_DEEP}", field="body") from None
    if jsontext.too_deep(doc):
        raise bad_request(f"the rule file {jsontext.TOO_DEEP}", field="body")
    if isinstance(doc, list):
        doc = {"rules": doc}
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
        raise bad_request("a rule file is a mapping with a list of rules under 'rules'", field="rules")
    name = doc.get("name")
    if name is not None and not isinstance(name, str):
        raise bad_request("name must be text", field="name")
    specs = [parse_rule(r, f"rules.{i}.") for i, r in enumerate(doc["rules"])]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise bad_request("rule names must be unique within a rule set", field="rules")
    return name, specs
