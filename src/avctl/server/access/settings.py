"""How long sessions live, how many failed logins are allowed, how cookies are sent."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class AccessSettings:
    """The access settings of one server (``app.state.access``); the defaults are the safe ones."""

    #: a browser session ends after this long without a request...
    session_idle: float = 3600.0
    #: ...and this long after the login, however busy
    session_absolute: float = 12 * 3600.0
    #: failed logins in `login_window` seconds that lock a user name (every client)
    login_user_failures: int = 5
    #: failed logins in `login_window` seconds that lock a client address (every user name): above
    #: the per-user limit, so one office behind a NAT does not lock itself out with one typo-prone user
    login_ip_failures: int = 20
    login_window: float = 900.0
    #: Secure cookies: None = when the request came over HTTPS; True behind a TLS-terminating proxy
    secure_cookies: bool | None = None
    #: origins besides the server's own (scheme://host[:port]) whose state-changing browser requests
    #: are accepted, e.g. the public address of a reverse proxy that rewrites the Host header
    trusted_origins: frozenset[str] = frozenset()
    #: injected in tests; everything access decides by time reads this clock
    clock: Callable[[], float] = field(default=time.time, compare=False)

    def __post_init__(self) -> None:
        for name in ("session_idle", "session_absolute", "login_window", "login_user_failures",
                     "login_ip_failures"):
            value = getattr(self, name)
            if not value > 0 or value == float("inf"):
                raise ValueError(f"access setting {name} must be a positive number, not {value!r}")
