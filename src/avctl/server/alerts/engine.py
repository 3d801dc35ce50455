"""The alert engine: rules x devices -> alerts opened and resolved, with their notifications queued.

`AlertEngine.evaluate(views)` runs after each batch of observations and periodically over every
device (so "offline for 5m" fires on time while a device's polls back off). In ONE transaction it

* opens an alert when a rule's condition has held for its ``for`` time (a state test counts from
  the device's ``since``; for ``not STATE`` and reading tests, when it began to hold is kept in
  ``alert_pending``, so a restart does not reset the wait),
* resolves an open alert when its condition no longer holds, the device left the scope, the
  device left the inventory (`evaluate(..., every_device=True)`) or the rule was removed,
* writes the outbox rows (``notifications``, one per channel of the rule per event).

A firing condition never opens a second alert: open alerts are looked up first, and the database's
unique partial index catches a concurrent writer (the pass is then run again on fresh rows).
Acknowledged alerts still resolve. A silenced alert (``silenced_until`` > now) still resolves but
its notifications are written in state ``silenced`` (recorded, never sent); the dispatcher also
checks the silence when it sends. An alert resolved because its rule was removed notifies no one
(its channels may be gone with it).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from avctl.db import Database
from avctl.db.models import Alert, AlertPending, Notification
from avctl.redact import printable
from avctl.server.alerts.rules import Rule, RuleSet, as_entry
from avctl.server.model import DeviceView

#: device-supplied values kept on an alert (and shown in messages) are capped to this
MAX_VALUE_CHARS = 200
#: the longest silence: longer is forgetting, not silencing
MAX_LIST_LIMIT = 1000
#: devices whose scope matches are cached (a bigger fleet only recomputes more often)
MAX_SCOPE_CACHE = 100_000


@dataclass(frozen=True)
class AlertInfo:
    """An alert as the service shows it (plain values, JSON-ready with `as_dict`)."""

    id: int
    rule: str
    device: str
    site: str | None
    severity: str
    state: str
    opened: float
    resolved: float | None
    message: str
    value: Any
    acked_by: str | None
    acked_at: float | None
    silenced_until: float | None
    silenced_by: str | None

    @classmethod
    def of(cls, a: Alert) -> AlertInfo:
        return cls(id=a.id, rule=a.rule, device=a.device, site=a.site, severity=a.severity, state=a.state,
                   opened=a.opened, resolved=a.resolved, message=a.message,
                   value=json.loads(a.value) if a.value is not None else None, acked_by=a.acked_by,
                   acked_at=a.acked_at, silenced_until=a.silenced_until, silenced_by=a.silenced_by)

    def silenced(self, now: float) -> bool:
        return self.silenced_until is not None and self.silenced_until > now

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class AlertChanges:
    """What one evaluation changed."""

    opened: list[AlertInfo] = field(default_factory=list)
    resolved: list[AlertInfo] = field(default_factory=list)
    #: outbox rows written (pending ones only: silenced ones are recorded, not counted)
    queued: int = 0

    def __bool__(self) -> bool:
        return bool(self.opened or self.resolved)


def capped_value(value: Any) -> Any:
    """A device-supplied value as it may be stored and shown: text made printable and capped."""
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = printable(value if isinstance(value, str) else json.dumps(value, default=str))
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _message(rule: Rule, view: DeviceView, value: Any) -> str:
    cond = rule.condition
    held = f" for {_span(cond.hold)}" if cond.hold else ""
    if cond.is_state:
        why = f": {capped_value(view.error)}" if view.error and view.state != "online" else ""
        return f"{view.name} is {view.state}{held}{why} (rule {rule.name}: {cond.text})"
    return f"{view.name}: {cond.reading} is {json.dumps(capped_value(value))}{held} (rule {rule.name}: {cond.text})"


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


class AlertEngine:
    """Evaluates a rule set against devices and keeps the ``alerts`` table and its outbox."""

    def __init__(self, db: Database, rules: RuleSet, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.rules = rules
        self.clock = clock
        self._scope_cache: dict[tuple[Any, ...], tuple[bool, ...]] = {}
        # the batch path and the periodic pass may run in two threads: one evaluation at a time
        self._lock = threading.Lock()

    def set_rules(self, rules: RuleSet) -> None:
        """Use a reloaded rules file from the next evaluation on (alerts of removed rules resolve then)."""
        with self._lock:
            self.rules = rules
            self._scope_cache.clear()

    def evaluate(self, views: Sequence[DeviceView], *, every_device: bool = False) -> AlertChanges:
        """Apply the rules to `views`. ``every_device=True``: `views` is the whole inventory, and the
        alerts of devices not in it are resolved (the device left the inventory). Blocking: call it
        through ``asyncio.to_thread`` from the event loop."""
        with self._lock:
            try:
                return self._evaluate(views, every_device)
            except IntegrityError:
                # another writer opened one of these alerts between our read and our insert: the
                # transaction was rolled back whole; run again on what is now in the database
                return self._evaluate(views, every_device)

    def _evaluate(self, views: Sequence[DeviceView], every_device: bool) -> AlertChanges:
        now = self.clock()
        rules = self.rules
        changes = AlertChanges()
        with self.db.session() as s:
            open_alerts = {(a.rule, a.device): a for a in s.scalars(select(Alert).where(Alert.state == "open"))}
            pending = {(p.rule, p.device): p for p in s.scalars(select(AlertPending))}
            for view in views:
                for rule, in_scope in zip(rules.rules, self._scopes(rules, view), strict=True):
                    self._apply(s, rule, view, in_scope, now, open_alerts, pending, changes)
            names = {r.name for r in rules.rules}
            devices = {v.name for v in views}
            for (rule_name, device), alert in open_alerts.items():
                if rule_name not in names:
                    self._resolve(s, alert, None, now, "the rule was removed", changes)
                elif every_device and device not in devices:
                    self._resolve(s, alert, rules.rule(rule_name), now, "the device left the inventory", changes)
            for key, row in pending.items():
                if key[0] not in names or (every_device and key[1] not in devices):
                    s.delete(row)
        return changes

    def _scopes(self, rules: RuleSet, view: DeviceView) -> tuple[bool, ...]:
        """Whether the device is in each rule's scope. Cached by the device's inventory facts (they
        rarely change, and matching globs for every rule and device every 30 s costs)."""
        key = (view.name, view.family, view.site, view.room, view.tags, view.address)
        hit = self._scope_cache.get(key)
        if hit is None:
            if len(self._scope_cache) >= MAX_SCOPE_CACHE:
                self._scope_cache.clear()
            entry = as_entry(view)
            hit = self._scope_cache[key] = tuple(not r.scope or r.scope.matches(entry) for r in rules.rules)
        return hit

    def _apply(self, s: Session, rule: Rule, view: DeviceView, in_scope: bool, now: float,
               open_alerts: dict[tuple[str, str], Alert], pending: dict[tuple[str, str], AlertPending],
               changes: AlertChanges) -> None:
        key = (rule.name, view.name)
        holds, value = rule.condition.evaluate(view) if in_scope else (False, None)
        if holds is None:
            return
        if not holds:
            if key in pending:
                s.delete(pending.pop(key))
            if key in open_alerts:
                self._resolve(s, open_alerts.pop(key), rule, now, None, changes)
            return
        cond = rule.condition
        if cond.is_state and not cond.negate:
            # "offline for 5m" has held exactly since the device entered that state
            since = min(view.since, now)
        else:
            # "not online" spans several states (offline, then error...), a reading has no `since`:
            # kept in the database from the evaluation that first saw it hold
            row = pending.get(key)
            if row is None:
                row = pending[key] = AlertPending(rule=rule.name, device=view.name,
                                                  since=min(view.since, now) if cond.is_state else now)
                s.add(row)
            since = row.since
        if key in open_alerts or now - since < cond.hold:
            return
        alert = Alert(rule=rule.name, device=view.name, site=view.site, severity=rule.severity, state="open",
                      opened=now, message=_message(rule, view, value),
                      value=json.dumps(capped_value(value)))
        s.add(alert)
        s.flush()  # the id for the outbox rows; a duplicate open alert fails here (IntegrityError)
        open_alerts[key] = alert
        changes.queued += _queue(s, alert, "opened", rule.notify, now)
        changes.opened.append(AlertInfo.of(alert))

    def _resolve(self, s: Session, alert: Alert, rule: Rule | None, now: float, why: str | None,
                 changes: AlertChanges) -> None:
        alert.state = "resolved"
        alert.resolved = now
        if why:
            alert.message = f"{alert.message}; resolved: {why}"
        s.flush()
        if rule is not None:
            changes.queued += _queue(s, alert, "resolved", rule.notify, now)
        changes.resolved.append(AlertInfo.of(alert))


def _queue(s: Session, alert: Alert, event: str, channels: Collection[str], now: float) -> int:
    """Outbox rows for one alert event, in the caller's transaction. Returns the pending ones."""
    silenced = alert.silenced_until is not None and alert.silenced_until > now
    state = "silenced" if silenced else "pending"
    for channel in channels:
        s.add(Notification(alert_id=alert.id, event=event, channel=channel, state=state, attempts=0,
                           created=now, next_attempt=now))
    return 0 if silenced else len(channels)
