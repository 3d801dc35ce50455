"""Session login: log in once, re-login once on an expired session, never retry a rejected login.

Devices with sessions (VideoOS cookies, Solstice bearer tokens) share one flow; a family subclasses
`SessionAuth` and supplies the hooks:

- `login_request()`: the request that logs in (marked with the secret it carries);
- `absorb_login(response)`: keep the session from the answer, or raise: an `AuthenticationError`
  is a verdict on the credentials and is remembered (this object never sends them again); any
  other error (a 5xx, a wrong device) is reported without that verdict;
- `apply(request)`: the request with the session added;
- `is_expired(response)`: whether an answer to a call says the session is gone;
- `session_usable()`, `forget_session()`, and optionally `is_login(request)` (an explicit login
  action the user asked for: sent as asked) and `observe(request, response)` (a call's answer may
  refresh the session, e.g. new cookies).

One login serves every call of the object. Concurrent calls share one login and one re-login: both
happen under a lock, and a call whose session was already replaced by another call's re-login does
not log in again. A call is retried at most once after a re-login; a second expired answer is
reported as it is, so a device cannot drive a loop of logins.
"""

from __future__ import annotations

import asyncio

from avctl.auth import Auth, Credentials, Flow
from avctl.errors import AuthenticationError
from avctl.request import Request, Response


class SessionAuth(Auth):
    #: what an explicit login request carries (for the cleartext check)
    login_secret = "the login password"

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        #: the rejected login, raised again for every later call
        self.failed: AuthenticationError | None = None
        #: bumped on every successful login: a call knows whether its session was replaced
        self.generation = 0
        self._lock = asyncio.Lock()

    # -- hooks --

    def login_request(self) -> Request:
        raise NotImplementedError

    def absorb_login(self, response: Response) -> None:
        raise NotImplementedError

    def apply(self, request: Request) -> Request:
        raise NotImplementedError

    def is_expired(self, response: Response) -> bool:
        raise NotImplementedError

    def session_usable(self) -> bool:
        return self.logged_in

    def forget_session(self) -> None:
        raise NotImplementedError

    def closed(self) -> None:
        self.forget_session()

    def is_login(self, request: Request) -> bool:
        return False

    def observe(self, request: Request, response: Response) -> None:
        """See every answer to a call (refresh cookies, end the session on a logout)."""

    # -- the flow --

    def _check(self) -> None:
        if self.failed is not None:
            raise self.failed

    def _logged_in_by(self, response: Response) -> None:
        try:
            self.absorb_login(response)
        except AuthenticationError as exc:
            self.failed = exc
            raise
        self.generation += 1

    async def flow(self, request: Request) -> Flow:
        if self.is_login(request):
            self.observe(request, (yield request.with_secret(self.login_secret)))
            return
        self._check()
        if not self.session_usable():
            async with self._lock:
                self._check()
                if not self.session_usable():
                    self._logged_in_by((yield self.login_request()))
        generation = self.generation
        response = yield self.apply(request)
        self.observe(request, response)
        if not self.is_expired(response):
            return
        async with self._lock:
            self._check()
            if self.generation == generation:  # nobody logged in again meanwhile
                self.forget_session()
                self._logged_in_by((yield self.login_request()))
        response = yield self.apply(request)
        self.observe(request, response)


__all__ = ["SessionAuth"]
