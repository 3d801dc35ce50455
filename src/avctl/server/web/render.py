"""Rendering pages: one Jinja2 environment (autoescaped: device text is always text), the filters
every page uses, the navigation each role sees, and error pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from avctl.durations import human_duration
from avctl.server.model import Principal
from avctl.version import __version__

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

#: (label, path, permission): the pages in the navigation, each shown to roles with the permission
NAV = (
    ("Overview", "/", "read"),
    ("Sites", "/sites", "read"),
    ("Devices", "/devices", "read"),
    ("Jobs", "/jobs", "read"),
    ("Alerts", "/alerts", "read"),
    ("Configuration", "/config", "read"),
    ("Audit", "/audit", "read"),
    ("Admin", "/admin", "admin"),
)


def is_htmx(request: Request) -> bool:
    """A partial request from htmx (it wants a fragment, not a whole page)."""
    return request.headers.get("hx-request") == "true"


def when(ts: float | None) -> Markup:
    """A moment as ``<time>``: ISO 8601 in UTC for machines, made local by app.js for people."""
    if ts is None:
        return Markup("<span class=muted>never</span>")
    moment = dt.datetime.fromtimestamp(ts, dt.UTC)
    return Markup('<time datetime="{}">{}</time>').format(moment.isoformat(timespec="seconds"),
                                                           moment.strftime("%Y-%m-%d %H:%M:%S UTC"))


def nav_for(principal: Principal | None) -> list[tuple[str, str]]:
    return [(label, path) for label, path, perm in NAV if principal is not None and principal.can(perm)]


TEMPLATES.env.filters["when"] = when
TEMPLATES.env.filters["duration"] = human_duration


def render(request: Request, template: str, principal: Principal | None, context: Mapping[str, Any] | None = None,
           *, status: int = 200, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    """`template` with what every page has: who is signed in, what they may do, the navigation."""
    values = {"principal": principal, "can": principal.can if principal else (lambda _p: False),
              "nav": nav_for(principal), "version": __version__, "path": request.url.path,
              "htmx": is_htmx(request), **(context or {})}
    return TEMPLATES.TemplateResponse(request, template, values, status_code=status,
                                      headers=dict(headers) if headers else None)


def render_error(request: Request, status: int, message: str, hint: str | None = None) -> HTMLResponse:
    """An error as a page (or, for htmx, a fragment for the page's message area)."""
    principal = getattr(request.state, "principal", None)
    template = "_error.html" if is_htmx(request) else "error.html"
    return render(request, template, principal if isinstance(principal, Principal) else None,
                  {"status": status, "message": message, "hint": hint}, status=status)
