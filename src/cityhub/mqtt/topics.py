"""Which SensorThings topics clients are subscribed to, learnt from the broker's own log.

The MQTT extension (SensorThings v1.1 §14.2) lets a client subscribe to topics the hub could never publish
blindly: ``v1.1/Observations?$select=result,phenomenonTime`` (any ``$select``), ``v1.1/Things(1)/name``,
``v1.1/FeaturesOfInterest(7)/Observations``. FROST-Server sees subscriptions because it embeds its broker;
CityHub uses an external one (Mosquitto), which tells nobody who subscribed to what, except in its log. With

    log_dest topic
    log_type subscribe
    log_type unsubscribe
    log_type notice

in ``mosquitto.conf``, Mosquitto publishes each SUBSCRIBE, UNSUBSCRIBE, connect and disconnect to
``$SYS/broker/log/M/subscribe``, ``…/M/unsubscribe`` and ``…/N``. The MQTT process of the hub subscribes to
those and keeps a :class:`SubscriptionWatch`: the filters clients hold now, so that it publishes a ``$select``,
property or feature topic exactly while someone listens. Until the first log line arrives (a broker not set up
so, or not yet heard from) the watch is *blind* and only the topics CITYHUB_MQTT_PUBLISH names are published.

Why parse the log rather than use a broker plugin: a plugin ties CityHub to one broker's C API and version, and
the log lines are stable across Mosquitto 1.6-2.0. What the log cannot say: subscriptions made while the hub was
not connected (they count from the next SUBSCRIBE), and whether a client that left without a clean session will
come back (its filters are kept, so what it missed the broker queues).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

SYS_LOG_TOPICS = ("$SYS/broker/log/M/subscribe", "$SYS/broker/log/M/unsubscribe", "$SYS/broker/log/N")
MAX_FILTERS = 100_000  # distinct filters tracked at most (one per $select variant and entity): memory stays bounded

_CONNECTED = re.compile(r"^New client connected from \S+ as (\S+) \(p\d+, c([01]),")
_GONE = re.compile(
    r"^(?:Client (\S+) (?:disconnected|closed its connection|has exceeded timeout, disconnecting)"
    r"|Socket error on client (\S+), disconnecting)"
)
_OBSERVATIONS = re.compile(r"^v1\.1/(?:(Datastreams|MultiDatastreams|FeaturesOfInterest)\((\d{1,18})\)/)?Observations$")
# Entity sets whose changes the hub announces: their collection, one entity, one property of one entity.
_ENTITY = re.compile(r"^v1\.1/([A-Za-z]+)(?:\((\d{1,18})\)(?:/([A-Za-z]+))?)?$")


@dataclass(frozen=True)
class Route:
    """Where a topic's messages come from. ``kind``: "observations" (new Observations: of one Datastream or
    FeatureOfInterest, or all) or "entity" (changes of an entity set, one entity, or one property of it).
    ``select``: the ``$select`` properties, or None for the whole entity."""

    kind: str
    parent: str | None = None  # "Datastreams" / "FeaturesOfInterest" / an entity set
    parent_id: int | None = None
    prop: str | None = None
    select: tuple[str, ...] | None = None


def parse(topic: str) -> Route | None:
    """The route of a SensorThings topic (``v1.1/…``, optionally ``?$select=a,b``); None for anything else,
    wildcards included (they match the plain topics the hub publishes anyway)."""
    path, sep, query = topic.partition("?")
    select: tuple[str, ...] | None = None
    if sep:
        if not query.startswith("$select=") or "&" in query:
            return None
        select = tuple(s.strip() for s in query[len("$select=") :].split(",") if s.strip())
        if not select:
            return None
    m = _OBSERVATIONS.match(path)
    if m:
        return Route("observations", m.group(1), int(m.group(2)) if m.group(2) else None, None, select)
    m = _ENTITY.match(path)
    if m:
        if m.group(3) and select:
            return None  # a property topic takes no $select
        return Route("entity", m.group(1), int(m.group(2)) if m.group(2) else None, m.group(3), select)
    return None


def is_query(topic: str) -> bool:
    """Whether ``topic`` is a SensorThings topic the MQTT process cannot serve alone, which the hub resolves in the
    store (:mod:`cityhub.mqtt.queries`): a resource path through a navigation property (``Things(1)/Locations``; a
    capitalised segment, as SensorThings names them), with a query other than ``$select`` (which :func:`parse`
    routes), or with a ``$select`` of a member of a JSON property (``$select=properties/kind``)."""
    if not topic.startswith("v1.1/") or "+" in topic or "#" in topic:
        return False
    route = parse(topic)
    if route is None:
        return True
    if route.select is not None and any("/" in name for name in route.select):
        return True  # a member of a JSON property ($select=properties/kind): shaped as a GET shapes it
    return route.kind == "entity" and route.prop is not None and route.prop[:1].isupper()


def filter_matches(flt: str, topic: str) -> bool:
    """MQTT topic-filter matching (``+`` one level, ``#`` the rest), as the broker does it."""
    f_levels, t_levels = flt.split("/"), topic.split("/")
    for i, f in enumerate(f_levels):
        if f == "#":
            return not topic.startswith("$") or i > 0
        if i >= len(t_levels):
            return False
        if f != "+" and f != t_levels[i]:
            return False
        if i == 0 and f in ("+", "#") and topic.startswith("$"):
            return False
    return len(f_levels) == len(t_levels)


class SubscriptionWatch:
    """The filters clients hold, kept from the broker's log lines (``feed``). Not thread-safe: the MQTT process
    feeds and reads it on its one network thread."""

    def __init__(self, own_client_id: str) -> None:
        self.own = own_client_id
        self.heard = False  # True once a log line arrived: the broker logs to topics, the watch sees
        self.by_client: dict[str, set[str]] = {}
        self.clean: dict[str, bool] = {}
        self.count: Counter[str] = Counter()
        self.version = 0  # changes whenever the set of filters does (callers cache what they derive from it)

    def feed(self, topic: str, payload: bytes) -> None:
        text = payload.decode("utf-8", "replace")
        _, _, line = text.partition(": ")  # "<unix time>: <message>"
        self.heard = True
        if topic.endswith("/M/subscribe"):
            parts = line.split(" ", 2)  # client id, QoS, filter (a filter may hold spaces; an id may not)
            if len(parts) == 3 and parts[0] != self.own:
                self._add(parts[0], parts[2])
        elif topic.endswith("/M/unsubscribe"):
            parts = line.split(" ", 1)
            if len(parts) == 2:
                self._remove(parts[0], parts[1])
        else:
            m = _CONNECTED.match(line)
            if m:
                client, clean = m.group(1), m.group(2) == "1"
                self.clean[client] = clean
                if clean:
                    self._drop(client)  # a clean start: whatever it held before is gone
                return
            m = _GONE.match(line)
            if m:
                client = m.group(1) or m.group(2)
                if self.clean.pop(client, True):
                    self._drop(client)

    def _add(self, client: str, flt: str) -> None:
        held = self.by_client.setdefault(client, set())
        if flt in held:
            return
        if len(self.count) >= MAX_FILTERS and flt not in self.count:
            return  # bounded: a filter beyond the limit is not watched (its plain topic still is published)
        held.add(flt)
        self.count[flt] += 1
        self.version += 1

    def _remove(self, client: str, flt: str) -> None:
        held = self.by_client.get(client)
        if held is None or flt not in held:
            return
        held.discard(flt)
        self._release(flt)

    def _drop(self, client: str) -> None:
        for flt in self.by_client.pop(client, set()):
            self._release(flt)

    def _release(self, flt: str) -> None:
        self.count[flt] -= 1
        if self.count[flt] <= 0:
            del self.count[flt]
        self.version += 1

    def filters(self) -> list[str]:
        return list(self.count)

    def wanted(self, topic: str) -> bool:
        """Whether a client holds a filter matching ``topic`` (always True while the watch is blind)."""
        if not self.heard:
            return True
        if topic in self.count:
            return True
        return any(("+" in f or "#" in f) and filter_matches(f, topic) for f in self.count)
