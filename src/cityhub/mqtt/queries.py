"""Topics that name a query rather than a fixed place: the hub resolves them in the store.

SensorThings v1.1 §14.2 lets a client subscribe to any resource path it could GET: ``v1.1/Locations(1)/Things``
(over a many-to-many link), ``v1.1/Observations(7)/Datastream/Thing/Locations`` (several steps),
``v1.1/Datastreams(1)/Thing`` (one entity), and FROST-Server adds ``$filter`` (``v1.1/Observations?$filter=result
gt 4``). Whether a changed entity belongs to such a topic is a question for the store, so the MQTT process, which
learns the filters clients hold (:mod:`cityhub.mqtt.topics`), hands these over to the hub, and for each new or
changed entity of the topic's type the hub reads the topic's path with ``id eq <the entity>`` added to its
``$filter``: the entity goes to the topic, shaped by its ``$select``, exactly when that read finds it. The cost,
one read per such topic and change, is paid only while a client holds one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import orjson
import pyarrow as pa

from cityhub import model
from cityhub.errors import ProblemError
from cityhub.sensorthings.options import parse_options
from cityhub.sensorthings.service.paths import Resource, parse_path

if TYPE_CHECKING:
    from cityhub.sensorthings.service import SensorThings

log = logging.getLogger(__name__)

_OPTIONS = ("$select", "$filter")
_MAX_CACHED = 10_000  # parsed topics kept (one per distinct topic clients held); more are parsed again


@dataclass(frozen=True)
class _Query:
    resource: Resource
    filter: str | None
    select: tuple[str, ...] | None


class QueryTopics:
    """The query topics clients hold (``update``, from the MQTT process) and the messages each change makes."""

    def __init__(self, service: SensorThings, base: str, max_top: int, max_expand_depth: int) -> None:
        self.service = service
        self.base = base
        self.max_top = max_top
        self.max_expand_depth = max_expand_depth
        self.topics: tuple[str, ...] = ()
        self._parsed: dict[str, _Query | None] = {}

    def update(self, topics: Sequence[str]) -> None:
        self.topics = tuple(topics)

    def entity_messages(self, et: model.EntityType, entity_id: int, skip: Iterable[str]) -> list[tuple[str, bytes]]:
        """The messages of a new or changed entity for the query topics that hold it, ``skip`` (topics already
        published) left out."""
        done = set(skip)
        out = []
        for topic in self.topics:
            q = self._query(topic)
            if q is None or q.resource.et is not et or topic in done:
                continue
            out += [
                (topic, orjson.dumps(e)) for i, e in self._read(q, f"id eq {int(entity_id)}", topic) if i == entity_id
            ]
        return out

    def observation_messages(self, id_column: pa.ChunkedArray | pa.Array) -> list[tuple[str, bytes]]:
        """The messages of new Observations (the ids of a commit) for the query topics of Observations that hold
        them; nothing read while no such topic is held."""
        queries = [
            (t, q) for t in self.topics if (q := self._query(t)) is not None and q.resource.et is model.OBSERVATION
        ]
        if not queries or not len(id_column):
            return []
        ids = sorted(id_column.to_pylist())
        wanted = set(ids)
        out = []
        for start in range(0, len(ids), self.max_top):
            part = ids[start : start + self.max_top]
            within = f"id ge {int(part[0])} and id le {int(part[-1])}"
            for topic, q in queries:
                out += [(topic, orjson.dumps(e)) for i, e in self._read(q, within, topic) if i in wanted]
        return out

    def _read(self, q: _Query, restrict: str, topic: str) -> list[tuple[int, dict[str, Any]]]:
        """The entities ``q`` finds among those ``restrict`` ($filter text) names, with their ids, as the topic
        shows them (its ``$select``)."""
        raw: dict[str, str] = {}
        if q.resource.is_collection:  # else one entity (Datastreams(1)/Thing): the one the path leads to
            raw = {
                "$filter": restrict if q.filter is None else f"({q.filter}) and {restrict}",
                "$top": str(self.max_top),
            }
            if q.select is not None:  # read with the id, to match the entity; shown without it unless selected
                raw["$select"] = ",".join(q.select if "id" in q.select else ("id", *q.select))
        try:
            opts = parse_options(
                q.resource.et,
                raw,
                max_top=self.max_top,
                default_top=self.max_top,
                max_expand_depth=self.max_expand_depth,
            )
            found = self.service.read(q.resource, opts, self.base, "")
        except ProblemError as exc:  # a path whose parents are gone (404), a filter the store cannot evaluate
            log.debug("MQTT topic %s not resolved: %s", topic, exc.detail)
            return []
        if not isinstance(found, dict):
            return []
        entities: list[dict[str, Any]] = found.get("value", []) if q.resource.is_collection else [found]
        if q.select is None or "id" in q.select:
            return [(e["@iot.id"], e) for e in entities if "@iot.id" in e]
        # Read as the topic's $select shapes it (members of JSON properties included), with the id to match by.
        return [(e["@iot.id"], {k: v for k, v in e.items() if k != "@iot.id"}) for e in entities if "@iot.id" in e]

    def _query(self, topic: str) -> _Query | None:
        if topic in self._parsed:
            return self._parsed[topic]
        if len(self._parsed) >= _MAX_CACHED:
            self._parsed.clear()
        self._parsed[topic] = q = _parse(topic)
        return q


def _parse(topic: str) -> _Query | None:
    """A query topic's path and options; None for one that names nothing (an unknown set, an option other than
    ``$select`` and ``$filter``), which is then never published: as a GET of it would be refused."""
    path, _, query = topic[len("v1.1/") :].partition("?")
    options: dict[str, str] = {}
    for part in query.split("&") if query else ():
        key, sep, value = part.partition("=")
        if not sep or key not in _OPTIONS or key in options:
            return None
        options[key] = unquote(value)
    try:
        resource = parse_path(path)
        if resource.member is not None or resource.ref or resource.value:
            return None
        if not resource.is_collection and options:
            return None
        # Checked as a GET would check them, once: a topic that is refused is never published.
        parse_options(resource.et, options, max_top=1, default_top=1, max_expand_depth=0)
    except ProblemError:
        return None
    select_text = options.get("$select")
    names = tuple(s.strip() for s in select_text.split(",") if s.strip()) if select_text else None
    return _Query(resource, options.get("$filter"), names)
