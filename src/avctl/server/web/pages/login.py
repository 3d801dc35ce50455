"""The sign-in page. The form posts to the API's login (``/api/v1/auth/login``, rate-limited, one
session cookie and a CSRF cookie) from app.js; signing out is the API's logout."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from avctl.server.access import sessions
from avctl.server.access.deps import access_settings, database
from avctl.server.web.render import render

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this server only (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> Response:
    target = safe_next(next)
    cookie = request.cookies.get(sessions.SESSION_COOKIE)
    if cookie and sessions.lookup(database(request), cookie, access_settings(request)) is not None:
        return RedirectResponse(target, status_code=303)
    return render(request, "login.html", None, {"next": target})
