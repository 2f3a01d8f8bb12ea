"""Composition of one serving process: the core, then the domains, and their ordered shutdown."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from cityhub.airquality.live import AirQuality
from cityhub.alerts.engine import AlertEngine
from cityhub.alerts.notify import Webhooks
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
    for domain in domains:
        for subject, handler in domain.subscriptions():
            core.bus.subscribe(subject, handler)
    for domain in domains:
        domain.start()
        hub.domains.append(domain)
    return hub
