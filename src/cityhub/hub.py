"""Composition of one serving process: the core, then the domains, and their ordered shutdown."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from cityhub.airquality.live import AirQuality
from cityhub.alerts.engine import AlertEngine
from cityhub.alerts.notify import Webhooks
from cityhub.bus import ALERTS, ENTITIES, EntityChanged, Event
from cityhub.cluster import Cluster
from cityhub.config import Settings
from cityhub.core import Core, open_core
from cityhub.domain import Domain
from cityhub.mqtt.bridge import MqttBridge
from cityhub.store.base import Store

log = logging.getLogger("cityhub")


@dataclass
class Hub(Core):
    """Everything one serving process shares between requests: the core and the domains plugged into it."""

    airquality: AirQuality = field(default=None)  # type: ignore[assignment]
    alerts: AlertEngine = field(default=None)  # type: ignore[assignment]
    mqtt: MqttBridge | None = None
    cluster: Cluster = field(default=None)  # type: ignore[assignment]
    domains: list[Domain] = field(default_factory=list)
    _closed: bool = False

    def close(self) -> None:
        """Stop in the order data flows, each step finishing before the next, with no time limits: the entry
        points stop taking data (MQTT ingest), the writer commits what it holds, the domains finish the work
        those commits caused (air quality writes its last indices through the writer, the alert engine
        evaluates them), then the writer stops and the store is closed."""
        if self._closed:
            return
        self._closed = True
        if self.mqtt is not None:
            self.mqtt.stop_ingest()
        self.writer.drain()
        for domain in reversed(self.domains):
            try:
                domain.stop()
            except Exception:
                log.exception("stopping %s failed", domain.name)
        if self.cluster is not None:
            self.cluster.stop()
        try:
            self.writer.close()
        finally:
            self.store.close()


def open_hub(settings: Settings, store: Store | None = None) -> Hub:
    core = open_core(settings, store)
    hub = Hub(**{f: getattr(core, f) for f in core.__dataclass_fields__})
    # Air quality writes derived indices that the alert engine evaluates and MQTT announces: the order of
    # start (and the reverse order of stop) follows that flow.
    hub.airquality = AirQuality(core, day_offset_minutes=settings.day_offset_minutes)
    # The allow list is read at each check, so a changed setting applies to the next delivery attempt.
    webhooks = Webhooks(core.store, allow_hosts=lambda: settings.webhook_allow_hosts)
    hub.alerts = AlertEngine(core.store, core.catalog, bus=core.bus, webhooks=webhooks)
    domains: list[Domain] = [hub.alerts, hub.airquality]
    if settings.mqtt_url:
        hub.mqtt = MqttBridge(core)
        domains.insert(0, hub.mqtt)
    # Work done once for the whole hub: by the leading process where several share the store (cityhub.cluster).
    leader_only: list[Domain] = [hub.alerts, hub.airquality]
    hub.cluster = cluster = Cluster(core.store, core.bus)
    if hub.mqtt is not None and cluster.shared:
        # One MQTT session per client id: the leader bridges the broker for every process.
        hub.mqtt.republish_remote = True
        leader_only.insert(0, hub.mqtt)
    for domain in domains:
        for subject, handler in domain.subscriptions():
            core.bus.subscribe(subject, cluster.leader_only(handler) if domain in leader_only else handler)
    if cluster.shared:
        core.bus.subscribe(ENTITIES, _reload_catalog(core))
        core.bus.subscribe(ALERTS, hub.alerts.on_remote_alert)
        hub.alerts.on_change = lambda: cluster.say("alerts")
        cluster.on_note("alerts", hub.alerts.reload)
    cluster.start()
    for domain in domains:
        if domain in leader_only and not cluster.is_leader:
            if domain is hub.alerts:
                hub.alerts.follow()
            cluster.when_leading(lambda d=domain: _start(hub, d))  # type: ignore[misc]
        else:
            _start(hub, domain)
    return hub


def _start(hub: Hub, domain: Domain) -> None:
    domain.start()
    hub.domains.append(domain)


def _reload_catalog(core: Core) -> Callable[[Event], None]:
    """Bus handler: the model changed in another process, so the Datastream catalogue is read again."""

    def handle(event: Event) -> None:
        if isinstance(event, EntityChanged) and event.remote:
            core.catalog.entity_changed(event.entity_set, event.op)

    return handle
