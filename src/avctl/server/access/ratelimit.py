"""The login rate limit: failed logins per user name and per client address, in the database.

A locked name or address is refused before its password is checked, so a locked account cannot be
brute-forced by someone who keeps trying, and the refusal says when to come back (Retry-After).
Each attempt is counted as failed *before* its password is checked and forgiven if it succeeds:
otherwise forty attempts sent at once would all pass the check while the first is still hashing.
Kept in the database: a restart does not reset it.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from sqlalchemy import delete, select

from avctl.db import Database
from avctl.db.models import LoginAttempt
from avctl.server.access.settings import AccessSettings

#: makes check-and-count one step among the server's threads (one server process per database)
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Attempt:
    """A login under way, counted as failed until `succeeded` forgives it."""

    name: str
    address_row: int


def user_key(name: str) -> str:
    return f"user:{name.strip().lower()[:180]}"


def ip_key(address: str) -> str:
    return f"ip:{address[:180]}"


def begin(db: Database, name: str, address: str, settings: AccessSettings) -> Attempt | int:
    """Count a login for `name` from `address`; or, if either is locked, the seconds to wait."""
    now = settings.clock()
    since = now - settings.login_window
    worst = 0.0
    with _LOCK, db.session() as s:
        for key, limit in ((user_key(name), settings.login_user_failures),
                           (ip_key(address), settings.login_ip_failures)):
            # locked while `limit` failures are in the window: until the limit-th newest ages out
            times = s.scalars(select(LoginAttempt.ts).where(LoginAttempt.key == key, LoginAttempt.ts > since)
                              .order_by(LoginAttempt.ts.desc()).limit(limit)).all()
            if len(times) >= limit:
                worst = max(worst, times[-1] + settings.login_window - now)
        if worst > 0:
            return max(1, math.ceil(worst))
        # what has left the window counts for nothing: the table stays as small as the attack is fast
        s.execute(delete(LoginAttempt).where(LoginAttempt.ts <= since))
        by_address = LoginAttempt(key=ip_key(address), ts=now)
        s.add_all([LoginAttempt(key=user_key(name), ts=now), by_address])
        s.flush()
        return Attempt(name, by_address.id)


def succeeded(db: Database, attempt: Attempt) -> None:
    """A good login forgets the name's failures and this attempt (the address's other failures
    stay: it may be guessing other names)."""
    with db.session() as s:
        s.execute(delete(LoginAttempt).where((LoginAttempt.key == user_key(attempt.name))
                                             | (LoginAttempt.id == attempt.address_row)))
