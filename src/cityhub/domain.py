"""How a domain (air quality, alerts, MQTT; later traffic, transit, water, drones) plugs into the hub.

A domain is an object with a name and a life cycle. The hub builds the core (store, bus, ingest pipeline,
SensorThings service), then, in order, asks each domain for its event ``subscriptions`` and ``start``s it;
on shutdown it ``stop``s them in the reverse order, after the entry points stopped taking data and before
the writer and the store are closed, so a domain may still write through the pipeline while it finishes.
Routers and CLI commands of a domain are listed in :mod:`cityhub.plugins`, in the spirit of datasette's
hooks, since they sit above the API layer that the domain itself must not import.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from cityhub.bus import Handler


@runtime_checkable
class Domain(Protocol):
    name: str

    def subscriptions(self) -> Iterable[tuple[str, Handler]]:
        """(subject, handler) pairs the hub subscribes on the event bus before ``start``."""
        ...

    def start(self) -> None:
        """Start background work (threads, connections)."""
        ...

    def stop(self) -> None:
        """Finish or persist background work and stop; must not return while a thread still writes."""
        ...
