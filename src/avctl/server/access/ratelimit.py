"""The login rate limit: failed logins per user name and per client address, in the database.

A locked name or address is refused before its password is checked, so a locked account cannot be
brute-forced by someone who keeps trying, and the refusal says when to come back (Retry-After).
Kept in the database: a restart does not reset it.
"""

from __future__ import annotations

import math

from sqlalchemy import delete, select

from avctl.db import Database
from avctl.db.models import LoginAttempt
from avctl.server.access.settings import AccessSettings


def user_key(name: str) -> str:
    return f"user:{name.strip().lower()[:180]}"


def ip_key(address: str) -> str:
    return f"ip:{address[:180]}"


def retry_after(db: Database, name: str, address: str, settings: AccessSettings) -> int | None:
    """Seconds until a login for `name` from `address` may be tried again; None: go ahead."""
    now = settings.clock()
    since = now - settings.login_window
    worst = 0.0
    with db.session() as s:
        for key, limit in ((user_key(name), settings.login_user_failures),
                           (ip_key(address), settings.login_ip_failures)):
            # locked while `limit` failures are in the window: until the limit-th newest ages out
            times = s.scalars(select(LoginAttempt.ts).where(LoginAttempt.key == key, LoginAttempt.ts > since)
                              .order_by(LoginAttempt.ts.desc()).limit(limit)).all()
            if len(times) >= limit:
                worst = max(worst, times[-1] + settings.login_window - now)
    return max(1, math.ceil(worst)) if worst > 0 else None


def record_failure(db: Database, name: str, address: str, settings: AccessSettings) -> None:
    now = settings.clock()
    with db.session() as s:
        # what has left the window counts for nothing: the table stays as small as the attack is fast
        s.execute(delete(LoginAttempt).where(LoginAttempt.ts <= now - settings.login_window))
        s.add_all([LoginAttempt(key=user_key(name), ts=now), LoginAttempt(key=ip_key(address), ts=now)])


def clear_user(db: Database, name: str) -> None:
    """A good login forgets the name's failures (the address's stay: it may be guessing others)."""
    with db.session() as s:
        s.execute(delete(LoginAttempt).where(LoginAttempt.key == user_key(name)))
