"""Emulated Poly VideoOS system: login, sessions, XSRF, lockout, the 10 MB limit; state and handlers.

The login rules follow the real device (seed 000, apiref/videoos.md section 2):
- `POST /rest/session` (or `/rest/current/session`) with `{"user","password"}`, with or without a
  Content-Type header; success sets `session_id` (HttpOnly) and, on firmware 4.6.2+, `XSRF-TOKEN`.
- Every other `/rest/...` call needs the session cookie; on 4.6.2+ also `X-XSRF-TOKEN` equal to the
  session's token, else 403. An unknown or expired session answers 403 too, as real systems do
  (AVISPL's client for a Studio X30 logs in again only on a 403; tests/fidelity cites it).
- Wrong password: 400 `{"success":false,"reason":"SessionRequestInvalid"}`; after `lockout_after`
  failures in a row (within `lockout_window` seconds, when set) the account is locked for
  `lockout_seconds` of the device's clock: `SessionPortLockout`, even for the right password.
- Bodies over 10 MB (the spec's `max_body_bytes`) answer 413 unread; a login body is the only one
  read before the session is checked. A body that is not JSON (or nested too deeply, not UTF-8, a
  non-finite number) answers 400 `{"success":false,"reason":...}`.
- `/rest/current/...` is accepted for any `/rest/...` path.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any, ClassVar

from aiohttp import web

from avctl.emulator.core import BadBody, EmulatedDevice, Lockout, parse_json, reply
from avctl.emulator.videoos.common import fail
from avctl.emulator.videoos.handlers import VideoOSHandlers
from avctl.emulator.videoos.state import VideoOSState
from avctl.spec.model import Action

LOGIN_PATHS = ("/rest/session", "/rest/current/session")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


class EmulatedVideoOS(VideoOSHandlers, EmulatedDevice):
    family: ClassVar[str] = "videoos"
    server_header: ClassVar[str] = "Poly VideoOS"

    def __init__(
        self,
        name: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        firmware: str = "4.6.2",
        model: str | None = None,
        lockout_after: int = 5,
        lockout_seconds: float = 60.0,
        lockout_window: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, host, port, **kwargs)
        self.firmware = str(firmware)
        self.lockout = Lockout(int(lockout_after), float(lockout_seconds),
                               None if lockout_window is None else float(lockout_window))
        self.login_attempts = 0
        self.logins_accepted = 0  # sessions handed out (tests count re-logins by it)
        self.sessions: dict[str, dict[str, Any]] = {}
        self.state = VideoOSState(name=name, firmware=self.firmware, rng=self.random)
        if model is not None:
            self.state.model = str(model)

    @property
    def lockout_after(self) -> int:
        return self.lockout.after

    @lockout_after.setter
    def lockout_after(self, count: int) -> None:
        self.lockout.after = count

    @property
    def xsrf_required(self) -> bool:
        return _version(self.firmware) >= (4, 6, 2)

    def normalize_path(self, path: str) -> str:
        if path.startswith("/rest/current/") and path != "/rest/current/session":
            rest = path[len("/rest/current") :]
            # keep paths the spec itself names under /rest/current (devicemanagement, sessions, mode)
            if self.router.resolve("GET", path) == 404 and self.router.resolve("POST", path) == 404:
                return "/rest" + rest
        return path

    def expire_sessions(self) -> None:
        self.sessions.clear()

    def info(self) -> dict[str, Any]:
        return {**super().info(), "model": self.state.model, "firmware": self.firmware,
                "room_pin": self.state.room_pin}

    # -- answers in the device's shape --

    def malformed_answer(self, reason: str) -> web.StreamResponse:
        return reply(fail(reason), 400)

    def too_large_answer(self) -> web.StreamResponse:
        return reply(fail(f"payload larger than {self.max_body // (1024 * 1024)} MB"), 413)

    def crash_answer(self) -> web.StreamResponse:
        return reply(fail("internal error"), 500)

    # -- auth --

    def body_needed_for_auth(self, request: web.Request, action: Action | None) -> bool:
        return request.path in LOGIN_PATHS and request.method == "POST"

    async def authenticate(
        self, request: web.Request, action: Action | None, body: bytes
    ) -> web.StreamResponse | None:
        if request.path in LOGIN_PATHS:
            if request.method == "POST":
                return self._login(request, body)
            if request.method == "DELETE":
                return self._logout(request)
        session_id = request.cookies.get("session_id")
        session = self.sessions.get(session_id or "")
        ttl = self.faults.session_ttl
        if session is not None and ttl is not None and time.time() - session["created"] > ttl:
            del self.sessions[session_id or ""]
            session = None
        if session is None:
            return reply({"success": False, "reason": "SessionNoActiveSession"}, 403)
        if self.xsrf_required and request.headers.get("X-XSRF-TOKEN") != session["xsrf"]:
            return reply({"success": False, "reason": "XSRF token missing or wrong"}, 403)
        session["last"] = time.time()
        return None

    def _login(self, request: web.Request, body: bytes) -> web.StreamResponse:
        self.login_attempts += 1
        now = self.clock()
        peer = request.remote or "127.0.0.1"
        try:
            data = parse_json(body)  # real devices accept a body without Content-Type
        except BadBody:
            data = None
        if not isinstance(data, dict) or "user" not in data or "password" not in data:
            return reply(fail("SessionRequestInvalid"), 400)
        if self.lockout.locked(now):
            return reply(fail("SessionPortLockout"), 400)
        if data["user"] != self.user or data["password"] != self.password:
            locked = self.lockout.fail(now)
            return reply(fail("SessionPortLockout" if locked else "SessionRequestInvalid"), 400)
        failed = self.lockout.succeed()
        self.logins_accepted += 1
        session_id = secrets.token_urlsafe(36)
        xsrf = str(uuid.uuid4())
        created = int(self.state.uptime)  # real systems count sessions' creationTime from boot
        self.sessions[session_id] = {
            "xsrf": xsrf,
            "uptime_at_login": created,
            "created": time.time(),
            "last": time.time(),
            "location": peer,
        }
        answer = {
            "success": True,
            "loginStatus": {
                "loginResult": "NOLOCKOUT",
                "lastLoginClient": peer,
                "lastLoginTime": int(time.time() * 1000),
                "failedLogins": failed,
                "isPasswordAgeLimitReached": False,
            },
            "session": {
                "clientType": "WEB",
                "location": peer,
                "sessionId": session_id,
                "userId": self.user,
                "creationTime": created,
                "isAuthenticated": True,
                "role": "ADMIN",
                "isStale": False,
                "isNew": True,
                "isConnected": False,
            },
        }
        response = reply(answer)
        response.set_cookie("session_id", session_id, path="/", secure=True, httponly=True)
        if self.xsrf_required:
            response.set_cookie("XSRF-TOKEN", xsrf, path="/", secure=True)
        return response

    def _logout(self, request: web.Request) -> web.StreamResponse:
        session_id = request.cookies.get("session_id", "")
        if self.sessions.pop(session_id, None) is None:
            return reply({"success": False, "reason": "SessionNoActiveSession"}, 400)
        return reply({"success": True})
