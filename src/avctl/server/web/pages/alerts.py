"""Alerts: open and past alerts of the user's sites, acknowledge, silence for a while, unsilence.

The table refreshes itself when alerts change (``sse:alerts``); each change answers with its row,
so the user who made it sees it at once, and the others at the next change notice.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from avctl.errors import UsageError
from avctl.server import service
from avctl.server.config import parse_duration
from avctl.server.service.alerts import MAX_SILENCE, SEVERITIES
from avctl.server.web.deps import AlertHandler, Ctx, Reader
from avctl.server.web.posted import Posted
from avctl.server.web.render import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
#: the silences offered (label, seconds); "custom" takes a duration such as 90m or 3d
SILENCES = (("1 h", 3600), ("8 h", 8 * 3600), ("24 h", 86400), ("7 d", 7 * 86400))
STATE_CHOICES = ("open", "resolved", "all")


@router.get("/alerts", response_class=HTMLResponse)
def alerts_page(
    request: Request, ctx: Ctx, user: Reader,
    state: str = "open", severity: str = "", device: str = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    if state not in STATE_CHOICES:
        raise UsageError(f"unknown alert state {state!r}", hint="open, resolved or all")
    found = service.list_alerts(ctx, user, state=None if state == "all" else state, severity=severity or None,
                                device=device.strip() or None, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    filters = {"state": state, "severity": severity, "device": device.strip()}
    kept = {k: v for k, v in filters.items() if v}
    return render(request, "alerts.html", user, {
        "alerts": found.items, "total": found.total, "page": page,
        "pages": max(1, -(-found.total // PAGE_SIZE)), "filters": filters,
        "page_link": lambda n: "/alerts?" + urlencode({**kept, "page": n}), "here": here(request),
        "states": STATE_CHOICES, "severities": SEVERITIES, "silences": SILENCES, "now": ctx.clock(),
    })


def here(request: Request) -> str:
    """This page's own address, for its live fragment to fetch again."""
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def _row(request: Request, ctx: Ctx, user: AlertHandler, alert: service.AlertInfo) -> HTMLResponse:
    return render(request, "alerts_row.html", user, {"a": alert, "silences": SILENCES, "now": ctx.clock()})


@router.post("/alerts/{alert_id}/ack", response_class=HTMLResponse)
def ack(request: Request, ctx: Ctx, user: AlertHandler, alert_id: int) -> HTMLResponse:
    return _row(request, ctx, user, service.ack_alert(ctx, user, alert_id))


def silence_seconds(choice: str, custom: str) -> float:
    """The chosen silence: one of `SILENCES` (seconds) or, for "custom", a duration (90m, 3d, 2w)."""
    if choice == "custom":
        seconds = parse_duration(custom.strip()[:32], "custom silence")
    elif choice in {str(s) for _, s in SILENCES}:
        seconds = float(choice)
    else:
        raise UsageError(f"unknown silence {choice[:32]!r}", hint="1 h, 8 h, 24 h, 7 d or custom")
    if not 0 < seconds <= MAX_SILENCE:
        raise UsageError(f"a silence lasts up to {MAX_SILENCE / 86400:g} days", hint="e.g. 90m, 8h, 3d")
    return seconds


@router.post("/alerts/{alert_id}/silence", response_class=HTMLResponse)
def silence(request: Request, ctx: Ctx, user: AlertHandler, alert_id: int, form: Posted) -> HTMLResponse:
    seconds = silence_seconds(form.get("duration", ""), form.get("custom", ""))
    return _row(request, ctx, user, service.silence_alert(ctx, user, alert_id, seconds=seconds))


@router.post("/alerts/{alert_id}/unsilence", response_class=HTMLResponse)
def unsilence(request: Request, ctx: Ctx, user: AlertHandler, alert_id: int) -> HTMLResponse:
    return _row(request, ctx, user, service.silence_alert(ctx, user, alert_id, seconds=0))
