"""Alerts as the service shows them: list, acknowledge, silence (the alert engine opens and resolves).

Acknowledging and silencing write the alert and its audit row in one transaction: the change is
never made without its record.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from avctl.db.models import Alert, AuditRow
from avctl.errors import UsageError
from avctl.fleet.inventory import DeviceEntry, Selection
from avctl.server.alerts.engine import AlertInfo
from avctl.server.context import ServerContext
from avctl.server.model import Principal
from avctl.server.service.devices import Page, in_scope
from avctl.server.service.errors import NotFound, check

ALERT_STATES = ("open", "resolved")
SEVERITIES = ("info", "warning", "critical")
#: the longest silence (a forgotten silence should not hide a device for ever)
MAX_SILENCE = 90 * 86400.0


def _scoped(q: Any, principal: Principal) -> Any:
    return q.where(Alert.site.in_(sorted(principal.sites))) if principal.sites else q


def list_alerts(ctx: ServerContext, principal: Principal, *, state: str | None = "open",
                severity: str | None = None, device: str | None = None, limit: int = 100,
                offset: int = 0) -> Page[AlertInfo]:
    """Alerts of the principal's sites, newest first."""
    check(principal, "read")
    if state is not None and state not in ALERT_STATES:
        raise UsageError(f"unknown alert state {state!r}", hint="open or resolved")
    if severity is not None and severity not in SEVERITIES:
        raise UsageError(f"unknown severity {severity!r}", hint=", ".join(SEVERITIES))
    q = _scoped(select(Alert), principal)
    if state is not None:
        q = q.where(Alert.state == state)
    if severity is not None:
        q = q.where(Alert.severity == severity)
    if device is not None:
        q = q.where(Alert.device == device)
    with ctx.db.session() as s:
        total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
        rows = s.scalars(q.order_by(Alert.opened.desc(), Alert.id.desc()).limit(limit).offset(offset))
        return Page([AlertInfo.of(a) for a in rows], int(total), limit, offset)


def open_counts(ctx: ServerContext, principal: Principal) -> dict[str, int]:
    """Open alerts per severity, in the principal's sites (for metrics)."""
    q = _scoped(select(Alert.severity, func.count()).where(Alert.state == "open"), principal)
    with ctx.db.session() as s:
        return {str(sev): int(n) for sev, n in s.execute(q.group_by(Alert.severity))}


def _alert(s: Session, principal: Principal, alert_id: int) -> Alert:
    a = s.get(Alert, alert_id)
    if a is None or not principal.sees_site(a.site):
        raise NotFound(f"no alert {alert_id}")
    return a


def _audit(s: Session, ctx: ServerContext, principal: Principal, a: Alert, action: str,
           params: dict[str, Any]) -> None:
    s.add(AuditRow(ts=ctx.clock(), user=principal.audit_name, device=a.device, address=None, family=None,
                   action=action, params=json.dumps(params, sort_keys=True), outcome="ok", error_kind=None,
                   message=None, job_id=None))


def ack_alert(ctx: ServerContext, principal: Principal, alert_id: int) -> AlertInfo:
    """Acknowledge: someone is on it (notifications of the alert's resolution still go out)."""
    check(principal, "alerts")
    with ctx.db.session() as s:
        a = _alert(s, principal, alert_id)
        a.acked_by, a.acked_at = principal.audit_name, ctx.clock()
        _audit(s, ctx, principal, a, "alert_ack", {"alert": a.id, "rule": a.rule})
        info = AlertInfo.of(a)
    ctx.changes.publish("alerts")
    return info


def silence_alert(ctx: ServerContext, principal: Principal, alert_id: int, *, seconds: float) -> AlertInfo:
    """Silence for `seconds` from now (0 ends a silence): no notifications until then."""
    check(principal, "alerts")
    if not 0 <= seconds <= MAX_SILENCE:
        raise UsageError(f"a silence lasts 0 to {MAX_SILENCE:g} seconds, not {seconds:g}",
                         hint="0 ends a silence")
    now = ctx.clock()
    with ctx.db.session() as s:
        a = _alert(s, principal, alert_id)
        a.silenced_until = now + seconds if seconds else None
        a.silenced_by = principal.audit_name if seconds else None
        _audit(s, ctx, principal, a, "alert_silence" if seconds else "alert_unsilence",
               {"alert": a.id, "rule": a.rule, "until": a.silenced_until})
        info = AlertInfo.of(a)
    ctx.changes.publish("alerts")
    return info


def _applies(rule: dict[str, Any], devices: list[DeviceEntry]) -> bool:
    scope = str(rule.get("scope") or "all")
    if scope == "all":
        return True
    try:
        chosen = Selection.parse(scope)
    except UsageError:  # unreadable here: shown to unscoped users only
        return False
    return any(chosen.matches(d) for d in devices)


def list_rules(ctx: ServerContext, principal: Principal) -> list[dict[str, Any]]:
    """The rules in force; a user limited to sites sees those that can fire for their devices
    (a rule scoped to another site would name it, its rooms or its devices)."""
    check(principal, "read")
    rules = ctx.rules()
    if not principal.sites:
        return rules
    mine = in_scope(ctx, principal)
    return [r for r in rules if _applies(r, mine)]
