"""The access routes: log in and out, who am I, one's own API tokens, and (admins) the users.

Handlers are plain functions: FastAPI runs them in its thread pool, so argon2 and the database
never block the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field

from avctl.db import Database
from avctl.server.access import manage, ratelimit, sessions, tokens, users
from avctl.server.access.deps import access_settings, check_origin, current_principal, database, guard, require
from avctl.server.access.settings import AccessSettings
from avctl.server.access.users import MAX_PASSWORD, AccessError
from avctl.server.model import PERMISSIONS, Principal

router = APIRouter(prefix="/api/v1")

Db = Annotated[Database, Depends(database)]
Settings = Annotated[AccessSettings, Depends(access_settings)]
Caller = Annotated[Principal, Depends(current_principal)]


def _fail(exc: AccessError) -> HTTPException:
    return HTTPException(status_code=exc.status, detail=f"{exc.message} ({exc.hint})" if exc.hint else exc.message)



@guard
def user_admin(principal: Annotated[Principal, Depends(require("admin"))]) -> Principal:
    """An admin of every site (`manage.check_user_admin`)."""
    try:
        manage.check_user_admin(principal)
    except AccessError as exc:
        raise _fail(exc) from None
    return principal


Admin = Annotated[Principal, Depends(user_admin)]


@guard
def session_user(principal: Caller) -> Principal:
    """A caller by browser session (`manage.check_session`)."""
    try:
        manage.check_session(principal)
    except AccessError as exc:
        raise _fail(exc) from None
    return principal


SessionUser = Annotated[Principal, Depends(session_user)]

#: the one answer to every failed login: which part was wrong is not said
BAD_LOGIN = "wrong user name or password"


class LoginBody(BaseModel):
    name: str = Field(max_length=200)
    password: str = Field(max_length=MAX_PASSWORD)


class TokenBody(BaseModel):
    name: str = Field(max_length=64)
    #: seconds from now; None: until revoked
    expires_in: float | None = Field(default=None, gt=0, le=10 * 365 * 86400)


class NewUserBody(BaseModel):
    name: str = Field(max_length=64)
    password: str = Field(max_length=MAX_PASSWORD)
    role: str
    sites: list[str] = Field(default_factory=list, max_length=1000)


class UserChangeBody(BaseModel):
    role: str | None = None
    sites: list[str] | None = Field(default=None, max_length=1000)
    password: str | None = Field(default=None, max_length=MAX_PASSWORD)
    disabled: bool | None = None


def _secure(request: Request, settings: AccessSettings) -> bool:
    return settings.secure_cookies if settings.secure_cookies is not None else request.url.scheme == "https"


def _me(principal: Principal, csrf_token: str | None) -> dict[str, Any]:
    return {"user": principal.user, "role": principal.role, "sites": sorted(principal.sites),
            "via": principal.via, "permissions": sorted(PERMISSIONS[principal.role]), "csrf_token": csrf_token}


# --- sessions ---------------------------------------------------------------------------------------


@router.post("/auth/login", tags=["auth"])
def login(body: LoginBody, request: Request, response: Response, db: Db, settings: Settings) -> dict[str, Any]:
    """Log in with a user name and password: a session cookie, and the CSRF token to send back."""
    check_origin(request, settings)  # no logging a victim's browser into someone else's account
    address = request.client.host if request.client else "unknown"
    name = body.name.strip().lower()
    attempt = ratelimit.begin(db, name, address, settings)
    if isinstance(attempt, int):  # refused before the password is looked at
        raise HTTPException(status_code=429, detail=f"too many failed logins; try again in {attempt} s",
                            headers={"Retry-After": str(attempt)})
    user = users.verify(db, name, body.password)
    if user is None:
        raise HTTPException(status_code=401, detail=BAD_LOGIN)
    ratelimit.succeeded(db, attempt)
    new = sessions.create(db, user, settings)
    secure = _secure(request, settings)
    response.set_cookie(sessions.SESSION_COOKIE, new.cookie, httponly=True, samesite="strict", secure=secure,
                        path="/")
    response.set_cookie(sessions.CSRF_COOKIE, new.csrf_token, httponly=False, samesite="strict", secure=secure,
                        path="/")
    return {**_me(user.principal("session"), new.csrf_token), "expires": new.expires}


@router.post("/auth/logout", status_code=204, tags=["auth"])
def logout(request: Request, response: Response, db: Db, principal: Caller) -> None:
    """End this browser session (a token request has none: nothing to end)."""
    cookie = request.cookies.get(sessions.SESSION_COOKIE)
    if principal.via == "session" and cookie:
        sessions.end(db, cookie)
    response.delete_cookie(sessions.SESSION_COOKIE, path="/")
    response.delete_cookie(sessions.CSRF_COOKIE, path="/")


@router.get("/auth/whoami", tags=["auth"])
def whoami(request: Request, principal: Caller) -> dict[str, Any]:
    return _me(principal, getattr(request.state, "csrf_token", None))


# --- one's own tokens -------------------------------------------------------------------------------


@router.post("/tokens", status_code=201, tags=["tokens"])
def create_token(body: TokenBody, db: Db, settings: Settings, principal: SessionUser) -> dict[str, Any]:
    """A new API token for the caller, shown in this answer only."""
    try:
        issued = manage.create_token(db, principal, body.name, body.expires_in, clock=settings.clock)
    except AccessError as exc:
        raise _fail(exc) from None
    return {**issued.info.as_dict(), "token": issued.secret, "note": "shown once: it is not stored and cannot "
                                                                    "be shown again"}


@router.get("/tokens", tags=["tokens"])
def list_tokens(db: Db, principal: Caller) -> list[dict[str, Any]]:
    return [t.as_dict() for t in tokens.list_tokens(db, principal.user)]


@router.delete("/tokens/{token_id}", status_code=204, tags=["tokens"])
def revoke_token(token_id: int, db: Db, settings: Settings, principal: Caller) -> None:
    try:
        manage.revoke_token(db, principal, token_id, clock=settings.clock)
    except AccessError as exc:
        raise _fail(exc) from None


# --- users (admins) ---------------------------------------------------------------------------------


@router.get("/users", tags=["users"])
def list_users(db: Db, _admin: Admin) -> list[dict[str, Any]]:
    return [u.as_dict() for u in users.list_users(db)]


@router.post("/users", status_code=201, tags=["users"])
def create_user(body: NewUserBody, db: Db, settings: Settings, admin: Admin) -> dict[str, Any]:
    try:
        user = manage.add_user(db, admin, body.name, body.password, body.role, body.sites, clock=settings.clock)
    except AccessError as exc:
        raise _fail(exc) from None
    return user.as_dict()


@router.patch("/users/{name}", tags=["users"])
def change_user(name: str, body: UserChangeBody, db: Db, settings: Settings, admin: Admin) -> dict[str, Any]:
    try:
        user = manage.change_user(db, admin, name, role=body.role, sites=body.sites, password=body.password,
                                  disabled=body.disabled, clock=settings.clock)
    except AccessError as exc:
        raise _fail(exc) from None
    return user.as_dict()


@router.delete("/users/{name}", status_code=204, tags=["users"])
def delete_user(name: str, db: Db, settings: Settings, admin: Admin) -> None:
    try:
        manage.remove_user(db, admin, name, clock=settings.clock)
    except AccessError as exc:
        raise _fail(exc) from None
