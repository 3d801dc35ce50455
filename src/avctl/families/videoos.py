"""Poly VideoOS (G7500, Studio X, G62): session login with cookies and the XSRF token.

Login is `POST /rest/session` with `{"user","password"}`; the device sets `session_id` and, from
firmware 4.6.2, `XSRF-TOKEN`, which every later call echoes as `X-XSRF-TOKEN`. Older firmware sets
no token (or sends it as an `X-XSRF-Token` header) and works with the cookie alone.

One session per device serves every call. A 401 or 403 on a call means the session expired: log
in again once, under a lock so concurrent calls share one re-login, and retry the call once. A
rejected login is final for the life of the device object: retrying would lock the account out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from http.cookies import CookieError, SimpleCookie
from typing import Any

from avctl.auth import Auth, Credentials, register_auth
from avctl.auth.session import SessionAuth
from avctl.errors import AccountLockedError, AuthenticationError, DeviceError, UsageError
from avctl.families import ConfigCall, ConfigRead, Family, by_action
from avctl.families.registry import FamilyPlugin, SpecResource
from avctl.request import Request, Response
from avctl.spec.model import Action, Spec

LOGIN_PATHS = ("/rest/session", "/rest/current/session")
EXPIRED = (401, 403)

#: reasons seen in `{"success":false,"reason":...}` login answers, and what they mean to a user
LOGIN_REASONS = {
    "SessionRequestInvalid": "user name or password rejected",
    "SessionPortLockout": "account locked out after too many failed logins",
    "SessionAlreadyActive": "a session is already active for this client",
    "SessionNoActiveSession": "no active session",
}


def _is_login(request: Request) -> bool:
    return request.method == "POST" and request.path in LOGIN_PATHS


def _is_logout(request: Request) -> bool:
    return request.method == "DELETE" and request.path in LOGIN_PATHS


class VideoOSSession(SessionAuth):
    def __init__(self, credentials: Credentials) -> None:
        super().__init__(credentials)
        self.cookies: dict[str, str] = {}
        self.xsrf: str | None = None

    @property
    def logged_in(self) -> bool:
        return "session_id" in self.cookies

    def logout_request(self) -> Request | None:
        return self.apply(Request("DELETE", "/rest/session")) if self.logged_in else None

    # -- the hooks of the session flow --

    def is_login(self, request: Request) -> bool:
        return _is_login(request)

    def is_expired(self, response: Response) -> bool:
        return response.status in EXPIRED

    def forget_session(self) -> None:
        self.cookies.clear()
        self.xsrf = None

    def observe(self, request: Request, response: Response) -> None:
        self._absorb(response)
        if _is_logout(request) and response.status < 300:
            self.forget_session()

    def login_request(self) -> Request:
        if self.credentials.password is None:
            raise UsageError(
                "no password for the VideoOS login",
                hint="give --password-env VAR or --password-file FILE, or set AVCTL_PASSWORD (a terminal is asked)",
            )
        body = json.dumps({"user": self.credentials.user or "admin", "password": self.credentials.password})
        return Request(
            "POST", "/rest/session", headers=(("Content-Type", "application/json"),), body=body.encode(),
            carries_secret="the login password",
        )

    def apply(self, request: Request) -> Request:
        headers: dict[str, str] = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.xsrf:
            headers["X-XSRF-TOKEN"] = self.xsrf
        return request.with_headers(**headers).with_secret("the session cookie") if headers else request

    def _absorb(self, response: Response) -> None:
        """Keep cookies and refresh the XSRF token from any response that sets them."""
        for raw in response.header_all("Set-Cookie"):
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(raw)
            except CookieError:
                continue
            for name, morsel in jar.items():
                if morsel.value == "" or morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = _header_safe(f"a cookie ({name})", morsel.value, response)
        token = self.cookies.get("XSRF-TOKEN") or response.header("X-XSRF-Token")
        if token:
            self.xsrf = _header_safe("an XSRF token", token, response)

    def absorb_login(self, response: Response) -> None:
        body = response.try_json()
        if response.status == 200 and isinstance(body, dict) and body.get("success", True):
            self._absorb(response)
            if "session_id" not in self.cookies:
                session: dict[str, Any] = body["session"] if isinstance(body.get("session"), dict) else {}
                if session.get("sessionId"):  # some firmware only returns it in the body
                    self.cookies["session_id"] = _header_safe(
                        "a session id", str(session["sessionId"]), response
                    )
            return
        if response.status not in (400, 401, 403):
            # not a verdict on the credentials (a 5xx or a wrong device): report, do not mark failed
            raise DeviceError(
                f"VideoOS login answered HTTP {response.status}",
                status=response.status,
                body=body,
                hint="is this a Poly VideoOS device on the right port?",
            )
        reason = body.get("reason") if isinstance(body, dict) else None
        meaning = LOGIN_REASONS.get(str(reason), "login rejected")
        message = f"VideoOS login as {self.credentials.user!r} failed: {meaning} (HTTP {response.status}"
        message += f", {reason})" if reason else ")"
        error_cls = AccountLockedError if reason == "SessionPortLockout" else AuthenticationError
        hint = (
            "wait for the lockout to expire before trying again"
            if error_cls is AccountLockedError
            else "check the password; avctl does not retry a rejected login, as devices lock accounts out"
        )
        raise error_cls(message, reason=reason, hint=hint)


#: RFC 6265 cookie-octets: what a cookie value may hold and still go back in a Cookie header
#: (no control characters, which would split the request, and no ';' ',' or space, which would
#: add cookies of the device's choosing)
_COOKIE_VALUE = re.compile(r'"?[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*"?')


def _header_safe(what: str, value: str, response: Response) -> str:
    """`value` if it can be echoed in a request header; a DeviceError otherwise (never shown: a secret)."""
    if _COOKIE_VALUE.fullmatch(value):
        return value
    raise DeviceError(
        f"VideoOS: the device sent {what} with control characters or other characters a cookie "
        "cannot carry; refused",
        status=response.status,
        hint="is this a Poly VideoOS device? avctl does not echo such values back",
    )


@register_auth("videoos_session")
def _videoos_auth(spec: Spec, credentials: Credentials) -> Auth:
    return VideoOSSession(credentials)


class VideoOS(Family):
    name = "videoos"

    def error(self, action: Action, response: Response) -> DeviceError:
        err = super().error(action, response)
        meaning = STATUS_MEANINGS.get(response.status)
        if meaning:
            err.meaning = meaning
            err.message += f" ({meaning})"
        return err

    def unwrap(self, action: Action, response: Response) -> Any:
        data = super().unwrap(action, response)
        if action.response == "text" and isinstance(data, str) and data.startswith('"'):
            # a word real systems send bare (/rest/cameras/contentstatus) the reference shows as a
            # JSON string: read both as the word (spec Notes)
            try:
                word = json.loads(data)
            except ValueError:
                return data
            return word if isinstance(word, str) else data
        return data

    # -- configuration variables: read by name, written as a list, answered per variable --

    def config_reads(self, spec: Spec, keys: Sequence[str], *, full: bool = False) -> list[ConfigCall]:
        return [ConfigCall("config_get", {"names": list(chunk)}, tuple(chunk)) for chunk in _chunks(keys)]

    def config_parse(self, call: ConfigCall, data: Any, into: ConfigRead) -> None:
        for var in _vars(data):
            name = var.get("name")
            if name in call.keys and var.get("result") == "NOERROR":
                into.values[name] = var.get("value")
                if var.get("isSecure"):
                    into.secrets.add(name)

    def config_writes(self, spec: Spec, changes: Mapping[str, Any], via: Mapping[str, str]) -> list[ConfigCall]:
        return [ConfigCall(action, {"vars": [{"name": k, "value": changes[k]} for k in keys]}, tuple(keys))
                for action, keys in by_action(changes, via).items()]

    def config_refused(self, call: ConfigCall, data: Any) -> dict[str, str]:
        return {str(v.get("name")): str(v.get("result")) for v in _vars(data)
                if v.get("name") in call.keys and v.get("result") != "NOERROR"}


#: variables per read: the reference shows lists of a few names; keep requests modest
CONFIG_BATCH = 50


def _chunks(keys: Sequence[str]) -> list[Sequence[str]]:
    return [keys[i:i + CONFIG_BATCH] for i in range(0, len(keys), CONFIG_BATCH)]


def _vars(data: Any) -> list[dict[str, Any]]:
    """The ``vars`` of a config answer; anything else in a hostile answer is ignored."""
    items = data.get("vars") if isinstance(data, dict) else None
    return [v for v in items if isinstance(v, dict)] if isinstance(items, list) else []


#: the reference's error table (seed 003, Diagnostics -> Error Codes)
STATUS_MEANINGS = {
    400: "request not recognised or cannot be executed",
    403: "authentication denied or PIN invalid (or blocked in partner/Teams provider mode)",
    404: "operation or source unavailable",
    405: "action not supported",
    415: "payload invalid or a required field missing",
    500: "unexpected device error",
    501: "no support for this action",
    507: "storage full",
}


#: the entry point `videoos = "avctl.families.videoos:plugin"` (pyproject.toml) names this
plugin = FamilyPlugin(
    "videoos", VideoOS, spec=SpecResource("avctl", "specs/videoos.md"),
    emulator="avctl.emulator.videoos:EmulatedVideoOS",
    description="Poly VideoOS video systems (G7500, Studio X)",
)
