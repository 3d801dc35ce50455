"""Managing users and API tokens on behalf of someone: who may, the change, and its audit row.

One implementation for the API's access routes and the dashboard's admin page, so both refuse the
same callers and record the same rows (never a password or a token).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from avctl.db import Database
from avctl.server.access import audit, tokens, users
from avctl.server.access.tokens import IssuedToken, TokenInfo
from avctl.server.access.users import AccessError, UserInfo
from avctl.server.model import Principal

Clock = Callable[[], float]


def check_user_admin(principal: Principal) -> None:
    """Users are managed by admins of every site: a user can be given any sites and role, so an admin
    limited to some sites who could manage users could make an admin of every site (or themselves one)."""
    if not principal.can("admin"):
        raise AccessError(f"your role ({principal.role}) may not admin", status=403)
    if principal.sites:
        raise AccessError("only an admin of every site manages users (yours is limited to "
                          f"{', '.join(sorted(principal.sites))})", status=403)


def check_session(principal: Principal) -> None:
    """Tokens are made from a browser session: a leaked token must not be able to mint its own successors."""
    if principal.via != "session":
        raise AccessError("tokens are created from a browser session or with 'avctl tokens create', not with "
                          "a token", status=403)


def add_user(db: Database, admin: Principal, name: str, password: str, role: str, sites: Iterable[str], *,
             clock: Clock = time.time) -> UserInfo:
    check_user_admin(admin)
    user = users.add(db, name, password, role, sites, clock=clock)
    audit.record(db, admin.audit_name, "users.add", {"user": user.name, "role": user.role,
                                                     "sites": list(user.sites)}, clock=clock)
    return user


def change_user(db: Database, admin: Principal, name: str, *, role: str | None = None,
                sites: Iterable[str] | None = None, password: str | None = None, disabled: bool | None = None,
                clock: Clock = time.time) -> UserInfo:
    """Change what is given; the audit row names what changed ("changed" for a password)."""
    check_user_admin(admin)
    site_list = list(sites) if sites is not None else None
    user = users.update(db, name, role=role, sites=site_list, password=password, disabled=disabled)
    changed: dict[str, object] = {k: v for k, v in (("role", role), ("sites", site_list),
                                                    ("disabled", disabled)) if v is not None}
    if password is not None:
        changed["password"] = "changed"
    audit.record(db, admin.audit_name, "users.set", {"user": name, **changed}, clock=clock)
    return user


def remove_user(db: Database, admin: Principal, name: str, *, clock: Clock = time.time) -> None:
    check_user_admin(admin)
    users.remove(db, name)
    audit.record(db, admin.audit_name, "users.remove", {"user": name}, clock=clock)


def create_token(db: Database, principal: Principal, name: str, expires_in: float | None, *,
                 clock: Clock = time.time) -> IssuedToken:
    """A token for the caller (by browser session only), valid `expires_in` seconds (None: until revoked)."""
    check_session(principal)
    now = clock()
    issued = tokens.create(db, principal.user, name, now + expires_in if expires_in is not None else None,
                           clock=clock)
    audit.record(db, principal.audit_name, "tokens.create", {"token": issued.info.id, "name": name}, clock=clock)
    return issued


def revoke_token(db: Database, principal: Principal, token_id: int, *, anyones: bool = False,
                 clock: Clock = time.time) -> TokenInfo:
    """Revoke one of the caller's tokens; with `anyones`, any user's (for an admin of every site)."""
    if anyones:
        check_user_admin(principal)
    revoked = tokens.revoke(db, token_id, user=None if anyones else principal.user, clock=clock)
    owner = {"owner": revoked.user} if revoked.user != principal.user else {}
    audit.record(db, principal.audit_name, "tokens.revoke", {"token": token_id, **owner}, clock=clock)
    return revoked
