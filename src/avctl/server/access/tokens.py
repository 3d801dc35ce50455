"""API tokens: 256 random bits behind a recognisable prefix, stored as their sha256, shown once.

A token is looked up by its hash: the secret itself is never compared byte by byte, so the time a
lookup takes says nothing about how much of a guess was right, and a stolen database holds no
usable token. A slow hash would add nothing to 256 random bits.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from avctl.db import Database
from avctl.db.models import ApiToken, User
from avctl.redact import REDACTOR
from avctl.server.access.users import AccessError, info
from avctl.server.model import Principal

PREFIX = "avctl_"
#: how a token looks (prefix + 43 url-safe base64 characters); anything else is refused unread
TOKEN_RE = re.compile(re.escape(PREFIX) + r"[A-Za-z0-9_-]{43}")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ @-]{0,63}")
#: `last_used` is written at most this often per token, so a busy script does not write per request
LAST_USED_EVERY = 60.0


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    user: str
    #: the first characters of the token, to tell tokens apart (not enough to use one)
    prefix: str
    created: float
    expires: float | None
    last_used: float | None
    revoked: float | None

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "user": self.user, "prefix": self.prefix,
                "created": self.created, "expires": self.expires, "last_used": self.last_used,
                "revoked": self.revoked}


@dataclass(frozen=True)
class IssuedToken:
    """A token just made: `secret` exists only here (it is not stored) and is shown once."""

    info: TokenInfo
    secret: str


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _info(row: ApiToken, user: str) -> TokenInfo:
    return TokenInfo(id=row.id, name=row.name, user=user, prefix=row.prefix, created=row.created,
                     expires=row.expires, last_used=row.last_used, revoked=row.revoked)


def create(db: Database, user: str, name: str, expires: float | None = None, *,
           clock: Callable[[], float] = time.time) -> IssuedToken:
    """A new token for `user`, valid until `expires` (epoch seconds; None: until revoked)."""
    now = clock()
    if not NAME_RE.fullmatch(name):
        raise AccessError(f"{name!r} is not a usable token name",
                          hint="1-64 characters: letters, digits, space and . _ @ -")
    if expires is not None and expires <= now:
        raise AccessError("the expiry is in the past")
    secret = PREFIX + secrets.token_urlsafe(32)
    REDACTOR.add(secret)
    with db.session() as s:
        owner = s.scalar(select(User).where(User.name == user))
        if owner is None:
            raise AccessError(f"no user {user!r}", status=404, hint="'avctl users list' shows the users")
        taken = s.scalar(select(ApiToken.id).where(ApiToken.user_id == owner.id, ApiToken.name == name,
                                                   ApiToken.revoked.is_(None)))
        if taken is not None:
            raise AccessError(f"{user} already has a token named {name!r}", status=409,
                              hint="revoke it first, or choose another name")
        row = ApiToken(name=name, user_id=owner.id, token_hash=digest(secret), prefix=secret[:12],
                       created=now, expires=expires, last_used=None, revoked=None)
        s.add(row)
        s.flush()
        return IssuedToken(_info(row, owner.name), secret)


def list_tokens(db: Database, user: str | None = None, *, include_revoked: bool = False) -> list[TokenInfo]:
    with db.session() as s:
        q = select(ApiToken, User.name).join(User, User.id == ApiToken.user_id).order_by(ApiToken.id)
        if user is not None:
            q = q.where(User.name == user)
        if not include_revoked:
            q = q.where(ApiToken.revoked.is_(None))
        return [_info(row, owner) for row, owner in s.execute(q)]


def revoke(db: Database, token_id: int, *, user: str | None = None,
           clock: Callable[[], float] = time.time) -> TokenInfo:
    """Revoke token `token_id` (only among `user`'s own when given); 404 if there is none."""
    with db.session() as s:
        q = select(ApiToken, User.name).join(User, User.id == ApiToken.user_id).where(
            ApiToken.id == token_id, ApiToken.revoked.is_(None))
        if user is not None:
            q = q.where(User.name == user)
        found = s.execute(q).first()
        if found is None:
            raise AccessError(f"no active token {token_id}", status=404,
                              hint="'avctl tokens list' shows the tokens and their ids")
        row, owner = found
        row.revoked = clock()
        return _info(row, owner)


def authenticate(db: Database, token: str, *, clock: Callable[[], float] = time.time) -> Principal | None:
    """Who `token` belongs to; None if it is malformed, unknown, expired, revoked or its user disabled."""
    if not TOKEN_RE.fullmatch(token):
        return None
    wanted = digest(token)
    now = clock()
    with db.session() as s:
        found = s.execute(select(ApiToken, User).join(User, User.id == ApiToken.user_id)
                          .where(ApiToken.token_hash == wanted)).first()
        if found is None:
            return None
        row, owner = found
        if not hmac.compare_digest(row.token_hash, wanted):  # pragma: no cover - the lookup matched it
            return None
        if row.revoked is not None or (row.expires is not None and now >= row.expires) or owner.disabled:
            return None
        if row.last_used is None or now - row.last_used >= LAST_USED_EVERY:
            row.last_used = now
        return info(owner).principal("token")
