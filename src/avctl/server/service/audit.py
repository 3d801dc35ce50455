"""The audit log as the service shows it: the filters of ``avctl audit``, in the principal's sites."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from avctl.db.models import AuditRow
from avctl.fleet.audit import AuditEntry
from avctl.server.context import ServerContext
from avctl.server.model import Principal
from avctl.server.service.devices import Page, in_scope
from avctl.server.service.errors import check


def glob_to_like(pattern: str) -> str:
    """A shell glob (``room-*``) as a LIKE pattern with ``\\`` as its escape (portable: no GLOB in PostgreSQL)."""
    out = []
    for ch in pattern:
        if ch in "\\%_":
            out.append("\\" + ch)
        elif ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)


def _entry(r: AuditRow) -> AuditEntry:
    try:
        params = json.loads(r.params)
    except ValueError:
        params = {}
    return AuditEntry(id=r.id, ts=r.ts, user=r.user, device=r.device, address=r.address, family=r.family,
                      action=r.action, params=params if isinstance(params, dict) else {}, outcome=r.outcome,
                      error_kind=r.error_kind, message=r.message, job_id=r.job_id)


def query_audit(ctx: ServerContext, principal: Principal, *, device: str | None = None,
                action: str | None = None, user: str | None = None, outcome: str | None = None,
                job_id: int | None = None, since: float | None = None, until: float | None = None,
                limit: int = 100, offset: int = 0) -> Page[AuditEntry]:
    """Newest first. ``device`` and ``action`` are shell globs; a scoped user sees their devices only."""
    check(principal, "read")
    q: Any = select(AuditRow)
    for col, pattern in ((AuditRow.device, device), (AuditRow.action, action)):
        if pattern and not any(ch in pattern for ch in "*?"):
            q = q.where(col == pattern)  # one device's trail: the index, where LIKE ... ESCAPE scans every row
        elif pattern:
            q = q.where(col.like(glob_to_like(pattern), escape="\\"))
    if user:
        q = q.where(AuditRow.user == user)
    if outcome:
        q = q.where(AuditRow.outcome == outcome)
    if job_id is not None:
        q = q.where(AuditRow.job_id == job_id)
    if since is not None:
        q = q.where(AuditRow.ts >= since)
    if until is not None:
        q = q.where(AuditRow.ts < until)
    if principal.sites:
        q = q.where(AuditRow.device.in_(sorted(d.name for d in in_scope(ctx, principal))))
    with ctx.db.session() as s:
        total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
        rows = s.scalars(q.order_by(AuditRow.id.desc()).limit(limit).offset(offset))
        return Page([_entry(r) for r in rows], int(total), limit, offset)
