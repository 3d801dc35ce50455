"""Browser sessions: a random id in an HttpOnly cookie (stored as its sha256), a CSRF token each,
an idle and an absolute expiry."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select

from avctl.db import Database
from avctl.db.models import User, WebSession
from avctl.server.access.settings import AccessSettings
from avctl.server.access.users import UserInfo, info
from avctl.server.model import Principal

SESSION_COOKIE = "avctl_session"
#: readable by the dashboard's JavaScript, which sends it back in the X-CSRF-Token header
CSRF_COOKIE = "avctl_csrf"
CSRF_HEADER = "X-CSRF-Token"
#: `last_seen` is written at most this often (or a tenth of the idle time, if shorter)
LAST_SEEN_EVERY = 60.0


@dataclass(frozen=True)
class NewSession:
    #: the cookie's value: exists only here and in the browser
    cookie: str
    csrf_token: str
    expires: float


@dataclass(frozen=True)
class ActiveSession:
    principal: Principal
    csrf_token: str


def digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def create(db: Database, user: UserInfo, settings: AccessSettings) -> NewSession:
    now = settings.clock()
    new = NewSession(cookie=secrets.token_urlsafe(32), csrf_token=secrets.token_urlsafe(32),
                     expires=now + settings.session_absolute)
    with db.session() as s:
        # the user's ended sessions go when they log in again: the table does not grow without end
        s.execute(delete(WebSession).where(WebSession.user_id == user.id, WebSession.expires <= now))
        s.add(WebSession(id_hash=digest(new.cookie), user_id=user.id, csrf_token=new.csrf_token, created=now,
                         expires=new.expires, last_seen=now))
    return new


def lookup(db: Database, cookie: str, settings: AccessSettings) -> ActiveSession | None:
    """The live session of this cookie; None if unknown, idle too long, too old or its user disabled."""
    if not cookie or len(cookie) > 100:
        return None
    now = settings.clock()
    with db.session() as s:
        found = s.execute(select(WebSession, User).join(User, User.id == WebSession.user_id)
                          .where(WebSession.id_hash == digest(cookie))).first()
        if found is None:
            return None
        row, user = found
        if now >= row.expires or now - row.last_seen >= settings.session_idle or user.disabled:
            s.delete(row)
            return None
        if now - row.last_seen >= min(LAST_SEEN_EVERY, settings.session_idle / 10):
            row.last_seen = now
        return ActiveSession(info(user).principal("session"), row.csrf_token)


def end(db: Database, cookie: str) -> None:
    with db.session() as s:
        s.execute(delete(WebSession).where(WebSession.id_hash == digest(cookie)))


def purge(db: Database, settings: AccessSettings) -> int:
    """Delete every ended session (for the server's housekeeping); how many went."""
    now = settings.clock()
    with db.session() as s:
        result = s.execute(delete(WebSession).where(
            (WebSession.expires <= now) | (WebSession.last_seen <= now - settings.session_idle)))
        return int(getattr(result, "rowcount", 0) or 0)
