"""Alerts: rules in YAML (`rules`), the engine that opens and resolves alerts and queues their
notifications (`engine`), and the dispatcher that sends them (`notify`, `payloads`).

The server wires them: ``load_rules(path)`` -> ``AlertEngine(db, rules).evaluate(views)`` after each
batch of observations and every 30 s over every device; ``Dispatcher(db, rules.channels).run()``.
"""

from avctl.server.alerts.engine import (
    AlertChanges,
    AlertEngine,
    AlertInfo,
)
from avctl.server.alerts.notify import Dispatcher
from avctl.server.alerts.rules import Rule, RulesError, RuleSet, load_rules, parse_rules

__all__ = [
    "AlertChanges",
    "AlertEngine",
    "AlertInfo",
    "Dispatcher",
    "Rule",
    "RuleSet",
    "RulesError",
    "load_rules",
    "parse_rules",
]
