"""Local users of the server: argon2id password hashes, a role, an optional list of sites.

Passwords are never stored, logged or returned: only their argon2id hash, re-hashed on the next
good login when the hasher's parameters change.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from avctl.db import Database
from avctl.db.models import ApiToken, User, WebSession
from avctl.errors import UsageError
from avctl.redact import REDACTOR
from avctl.server.model import ROLES, Principal, Role

#: argon2id with the library's (RFC 9106 "low memory") parameters
HASHER = PasswordHasher()
#: verified against for unknown names, so a wrong name costs the same time as a wrong password
#: (made on first use: hashing costs a third of a second, too much for every `avctl` start)
_DUMMY_HASH: str | None = None

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
SITE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,127}")
MIN_PASSWORD = 12
#: argon2 hashes any length, but a megabyte password is a denial of service, not a password
MAX_PASSWORD = 1024


class AccessError(UsageError):
    """A user or token operation that cannot be done as asked; `status` is its HTTP status."""

    kind = "access"

    def __init__(self, message: str, *, status: int = 400, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


@dataclass(frozen=True)
class UserInfo:
    id: int
    name: str
    role: Role
    sites: tuple[str, ...]
    created: float
    disabled: bool

    def principal(self, via: str) -> Principal:
        return Principal(user_id=self.id, user=self.name, role=self.role, sites=frozenset(self.sites), via=via)

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "role": self.role, "sites": list(self.sites),
                "created": self.created, "disabled": self.disabled}


def info(row: User) -> UserInfo:
    return UserInfo(id=row.id, name=row.name, role=cast(Role, row.role), sites=tuple(json.loads(row.sites)),
                    created=row.created, disabled=bool(row.disabled))


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise AccessError(f"{name!r} is not a usable user name",
                          hint="1-64 characters: lower-case letters, digits and . _ @ -, starting with a "
                               "letter or digit")
    return name


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise AccessError(f"{role!r} is not a role", hint=f"roles: {', '.join(ROLES)}")
    return role


def check_sites(sites: Iterable[str]) -> tuple[str, ...]:
    out = sorted({s.strip() for s in sites if s.strip()})
    for site in out:
        if not SITE_RE.fullmatch(site):
            raise AccessError(f"{site!r} is not a usable site name",
                              hint="letters, digits, space and . _ -; up to 128 characters")
    return tuple(out)


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccessError(f"the password is too short (at least {MIN_PASSWORD} characters)",
                          hint="a passphrase of a few words is easy to type and hard to guess")
    if len(password) > MAX_PASSWORD:
        raise AccessError(f"the password is too long (at most {MAX_PASSWORD} characters)")
    REDACTOR.add(password)
    return password


def _row(s: Session, name: str) -> User:
    row = s.scalar(select(User).where(User.name == name))
    if row is None:
        raise AccessError(f"no user {name!r}", status=404, hint="'avctl users list' shows the users")
    return row


def _keep_an_admin(s: Session, row: User) -> None:
    """Refuse a change that would leave no enabled admin (nobody could manage users on the web)."""
    others = s.scalar(select(func.count()).select_from(User).where(
        User.role == "admin", User.disabled.is_(False), User.id != row.id))
    if row.role == "admin" and not row.disabled and not others:
        raise AccessError(f"{row.name} is the last enabled admin", status=409,
                          hint="make another user admin first")


def _end_sessions(s: Session, user_id: int) -> None:
    s.execute(delete(WebSession).where(WebSession.user_id == user_id))


def add(db: Database, name: str, password: str, role: str, sites: Iterable[str] = (), *,
        clock: Callable[[], float] = time.time) -> UserInfo:
    row = User(name=check_name(name), password_hash=HASHER.hash(check_password(password)),
               role=check_role(role), sites=json.dumps(list(check_sites(sites))), created=clock(),
               disabled=False)
    with db.session() as s:
        if s.scalar(select(User.id).where(User.name == name)) is not None:
            raise AccessError(f"user {name!r} exists", status=409,
                              hint="'avctl users set' changes a user's role, sites or password")
        s.add(row)
        s.flush()
        return info(row)


def get(db: Database, name: str) -> UserInfo:
    with db.session() as s:
        return info(_row(s, name))


def list_users(db: Database) -> list[UserInfo]:
    with db.session() as s:
        return [info(r) for r in s.scalars(select(User).order_by(User.name))]


def update(db: Database, name: str, *, role: str | None = None, sites: Iterable[str] | None = None,
           password: str | None = None, disabled: bool | None = None) -> UserInfo:
    """Change what is given. A new password or disabling ends the user's browser sessions."""
    new_role = check_role(role) if role is not None else None
    new_sites = check_sites(sites) if sites is not None else None
    new_hash = HASHER.hash(check_password(password)) if password is not None else None
    with db.session() as s:
        row = _row(s, name)
        if (new_role is not None and new_role != "admin") or disabled:
            _keep_an_admin(s, row)
        if new_role is not None:
            row.role = new_role
        if new_sites is not None:
            row.sites = json.dumps(list(new_sites))
        if new_hash is not None:
            row.password_hash = new_hash
            _end_sessions(s, row.id)
        if disabled is not None:
            row.disabled = disabled
            if disabled:
                _end_sessions(s, row.id)
        return info(row)


def remove(db: Database, name: str) -> None:
    """Remove the user, their browser sessions and their API tokens."""
    with db.session() as s:
        row = _row(s, name)
        _keep_an_admin(s, row)
        _end_sessions(s, row.id)
        s.execute(delete(ApiToken).where(ApiToken.user_id == row.id))
        s.delete(row)


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = HASHER.hash("avctl: no such user")
    return _DUMMY_HASH


def verify(db: Database, name: str, password: str) -> UserInfo | None:
    """The user, if `name` exists, is enabled and `password` is theirs; None otherwise (no reason
    given: the caller answers every failure the same way)."""
    with db.session() as s:
        row = s.scalar(select(User).where(User.name == name)) if NAME_RE.fullmatch(name) else None
        try:
            HASHER.verify(row.password_hash if row is not None else _dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None or row.disabled:
            return None
        if HASHER.check_needs_rehash(row.password_hash):
            row.password_hash = HASHER.hash(password)
        return info(row)
