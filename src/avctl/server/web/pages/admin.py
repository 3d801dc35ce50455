"""Admin: users (add, role and sites, disable/enable, new password) and API tokens (all users' for an
admin of every site, one's own otherwise; create one's own, shown once; revoke).

Every change goes through `avctl.server.access.manage`, as the API's does: the same refusals (a
site-limited admin manages no users; tokens are made from a browser session) and the same audit rows.
A change answers with a message and the ``admin-changed`` event, on which the lists refresh.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from avctl.server.access import manage, tokens, users
from avctl.server.access.deps import access_settings
from avctl.server.access.users import AccessError
from avctl.server.model import ROLES, Principal
from avctl.server.service import ServiceError
from avctl.server.web.cli_text import cli_command
from avctl.server.web.deps import Admin, Ctx
from avctl.server.web.posted import Posted
from avctl.server.web.render import render

router = APIRouter(include_in_schema=False)

#: token lifetimes offered (label, seconds; None: until revoked)
EXPIRIES: tuple[tuple[str, float | None], ...] = (
    ("30 days", 30 * 86400.0), ("90 days", 90 * 86400.0), ("1 year", 365 * 86400.0), ("never", None))
CHANGED = {"HX-Trigger": "admin-changed"}


def clock(request: Request) -> Callable[[], float]:
    return access_settings(request).clock


Clock = Annotated[Callable[[], float], Depends(clock)]


def refused(exc: AccessError) -> ServiceError:
    """An access refusal as a page error, with its status (403, 404, 409...)."""
    error = ServiceError(exc.message, hint=exc.hint)
    error.status = exc.status
    return error


def manages_users(principal: Principal) -> bool:
    try:
        manage.check_user_admin(principal)
    except AccessError:
        return False
    return True


def sites_of(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request, ctx: Ctx, admin: Admin, now: Clock) -> HTMLResponse:
    everyone = manages_users(admin)
    return render(request, "admin.html", admin, {
        "users": users.list_users(ctx.db) if everyone else None, "manages_users": everyone,
        "tokens": tokens.list_tokens(ctx.db, None if everyone else admin.user), "roles": ROLES,
        "expiries": EXPIRIES, "now": now(),
        "user_cli": cli_command("users", "add", "NAME", options=[("--role", "viewer"), ("--sites", "SITE"),
                                                                  ("--password", True)]),
        "token_cli": cli_command("tokens", "create", "NAME", options=[("--user", admin.user),
                                                                       ("--expires", "90d")]),
    })


def _done(request: Request, admin: Principal, message: str) -> HTMLResponse:
    return render(request, "admin_done.html", admin, {"message": message}, headers=CHANGED)


@router.post("/admin/users", response_class=HTMLResponse)
def add_user(request: Request, ctx: Ctx, admin: Admin, now: Clock, form: Posted) -> HTMLResponse:
    try:
        made = manage.add_user(ctx.db, admin, form.get("name", "").strip().lower(), form.get("password", ""),
                               form.get("role", ""), sites_of(form.get("sites", "")), clock=now)
    except AccessError as exc:
        raise refused(exc) from None
    return _done(request, admin, f"User {made.name} added ({made.role}"
                                 f"{', sites ' + ', '.join(made.sites) if made.sites else ''}).")


@router.post("/admin/users/{user}", response_class=HTMLResponse)
def change_user(request: Request, ctx: Ctx, admin: Admin, now: Clock, user: str, form: Posted) -> HTMLResponse:
    """Role and sites (the row's form), a new password, or disabled: what the form sends is changed."""
    disabled = {"disable": True, "enable": False}.get(form.get("status", ""))
    password = form.get("password") or None
    role = form.get("role") or None
    sites = sites_of(form["sites"]) if "sites" in form else None
    if role is None and sites is None and password is None and disabled is None:
        raise ServiceError("nothing to change", hint="send a role, sites, a password or a status")
    try:
        changed = manage.change_user(ctx.db, admin, user, role=role, sites=sites, password=password,
                                     disabled=disabled, clock=now)
    except AccessError as exc:
        raise refused(exc) from None
    what = ("disabled" if disabled else "enabled") if disabled is not None else \
        "given a new password" if password else "changed"
    return _done(request, admin, f"User {changed.name} {what}.")


@router.post("/admin/tokens", response_class=HTMLResponse)
def create_token(request: Request, ctx: Ctx, admin: Admin, now: Clock, form: Posted) -> HTMLResponse:
    lifetimes = {label: seconds for label, seconds in EXPIRIES}
    if form.get("expires", "") not in lifetimes:
        raise ServiceError("choose how long the token lasts", hint=", ".join(lifetimes))
    try:
        issued = manage.create_token(ctx.db, admin, form.get("name", "").strip(), lifetimes[form["expires"]],
                                     clock=now)
    except AccessError as exc:
        raise refused(exc) from None
    return render(request, "admin_token.html", admin, {"issued": issued}, headers=CHANGED)


@router.post("/admin/tokens/{token_id}/revoke", response_class=HTMLResponse)
def revoke_token(request: Request, ctx: Ctx, admin: Admin, now: Clock, token_id: int) -> HTMLResponse:
    try:
        revoked = manage.revoke_token(ctx.db, admin, token_id, anyones=manages_users(admin), clock=now)
    except AccessError as exc:
        raise refused(exc) from None
    return _done(request, admin, f"Token {revoked.name} of {revoked.user} revoked.")
