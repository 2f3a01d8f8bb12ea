"""Alerts: rules on live data (thresholds with levels and durations, ranges, rates, stuck values, silence), the
alert lifecycle with its history, and notifications (SSE, MQTT, signed webhooks). See :mod:`cityhub.alerts.engine`."""

from cityhub.alerts.engine import AlertEngine
from cityhub.alerts.rules import RuleSpec, parse_rule, parse_ruleset

__all__ = ["AlertEngine", "RuleSpec", "parse_rule", "parse_ruleset"]
