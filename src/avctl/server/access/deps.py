"""FastAPI dependencies that authenticate and authorise every request (deny by default).

Every router of the API depends on `current_principal` (who asks: a browser session cookie, with
its CSRF token on state-changing methods, or an API token) or on ``require(permission)`` (who asks,
and may they). No endpoint except ``/healthz`` and the login works without one.

The app carries what they need: ``app.state.db`` (an `avctl.db.Database`) and
``app.state.access`` (an `AccessSettings`; the defaults when absent).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated, TypeVar
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request

from avctl.db import Database
from avctl.server.access import sessions, tokens
from avctl.server.access.settings import AccessSettings
from avctl.server.model import Principal

#: methods a browser may send cross-site without consequence; every other one needs the CSRF token
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def access_settings(request: Request) -> AccessSettings:
    settings = getattr(request.app.state, "access", None)
    return settings if isinstance(settings, AccessSettings) else AccessSettings()


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def _origin(text: str) -> str | None:
    """``scheme://host:port``, lower-cased, with the port always written; None if not an origin."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname or port is None:
        return None
    return f"{parts.scheme.lower()}://{parts.hostname.lower()}:{port}"


def check_origin(request: Request, settings: AccessSettings) -> None:
    """A browser names the page a request comes from; a state-changing one from elsewhere is refused."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    own = _origin(f"{request.url.scheme}://{request.headers.get('host', '')}")
    allowed = {own, *(_origin(o) for o in settings.trusted_origins)} - {None}
    if _origin(origin) not in allowed:
        raise HTTPException(status_code=403, detail="cross-origin request refused (Origin is not this server)")


def current_principal(request: Request) -> Principal:
    """The authenticated user of this request: 401 without a valid bearer token or session cookie;
    403 for a state-changing cookie request without its CSRF token or from another origin."""
    db = database(request)
    settings = access_settings(request)
    auth = request.headers.get("authorization")
    if auth is not None:
        # a browser never adds this header by itself: a bearer request needs no CSRF token
        scheme, _, value = auth.partition(" ")
        principal = tokens.authenticate(db, value.strip(), clock=settings.clock) \
            if scheme.lower() == "bearer" else None
        if principal is None:
            raise _unauthorized("invalid, expired or revoked token")
        return principal
    cookie = request.cookies.get(sessions.SESSION_COOKIE)
    if cookie is None:
        raise _unauthorized("not authenticated: log in, or send 'Authorization: Bearer TOKEN'")
    active = sessions.lookup(db, cookie, settings)
    if active is None:
        raise _unauthorized("session expired or ended: log in again")
    if request.method not in SAFE_METHODS:
        check_origin(request, settings)
        sent = request.headers.get(sessions.CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), active.csrf_token.encode()):
            raise HTTPException(status_code=403,
                                detail=f"CSRF token missing or wrong (send the {sessions.CSRF_HEADER} header)")
    request.state.csrf_token = active.csrf_token
    return active.principal


Guard = TypeVar("Guard", bound=Callable[..., Principal])
_GUARD = "__avctl_guard__"


def guard(check: Guard) -> Guard:
    """Marks a dependency that takes the principal and only refuses (403) or lets them on, without I/O.
    FastAPI parses a request's JSON body before it runs the dependencies: the API runs the guards
    itself for a body it could not parse, so that a refusal is not answered with the body's error."""
    setattr(check, _GUARD, True)
    return check


def is_guard(call: object) -> bool:
    return bool(getattr(call, _GUARD, False))


def require(permission: str) -> Callable[..., Principal]:
    """A dependency: the principal, if their role has `permission`; 403 otherwise."""

    @guard
    def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.can(permission):
            raise HTTPException(status_code=403, detail=f"your role ({principal.role}) may not {permission}")
        return principal

    return dependency
