"""Alerts: rules on live data (thresholds with levels and durations, ranges, rates, stuck values, silence), the
alert lifecycle with its history, and notifications (SSE, MQTT, signed webhooks).

:mod:`~cityhub.alerts.engine` evaluates (threads, queue, evaluation loop), :mod:`~cityhub.alerts.lifecycle` opens,
acknowledges and resolves alerts, :mod:`~cityhub.alerts.messages` says what an event carries,
:mod:`~cityhub.alerts.admin` manages rules and rule sets; what they store goes through ``store.alerts`` and
``store.webhooks`` (:mod:`cityhub.store.ops`)."""

from cityhub.alerts.engine import AlertEngine
from cityhub.alerts.rules import RuleSpec, parse_rule, parse_ruleset

__all__ = ["AlertEngine", "RuleSpec", "parse_rule", "parse_ruleset"]
