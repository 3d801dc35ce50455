"""Mersive Solstice pods: OAuth2 bearer tokens for the v2 API, the admin password for legacy v1.

v2 (`/v2/*`, HTTPS 5443): `POST /v2/token` with the form `grant_type=password&username=admin&
password=...` answers `{"access_token": <JWT>, "token_type": "jwt"}`; every other call carries
`Authorization: Bearer <JWT>`. One token per pod serves every call until it expires: its `exp` claim
is read without verifying the signature (the HS256 key is the pod's, and avctl only needs the
time). A token past its `exp`, or a call answered 401 `invalid_token`, makes avctl fetch one new
token, once, under a lock so concurrent calls share it. A refused token request is final for the
life of the device object: pods, like every device here, may lock accounts out.

v1 (`/api/*`): no session. The admin password rides along as `?password=` on GET and as a
`"password"` field of a JSON POST body; nothing is added when no password is set. The spec sends v1
over HTTPS 443 (pods serve it there once an admin password is set); plain HTTP (port 80) is a
mapping the user asks for (`schemes={"https": "http"}`), and `Device` refuses to put a password on
it without `allow_cleartext`. A wrong v1 password is not an error on the pod: it ignores the command
and answers with nothing, so the password is proved by a v1 read before the first command
(`SolsticeV1Password`).

Errors come as `{"errors": [{"error": code, "description": text}]}` (token errors as `{"error":
text}`); both become `DeviceError`s carrying the code and the description.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from avctl.auth import Auth, Credentials, Flow, register_auth
from avctl.auth.session import SessionAuth
from avctl.errors import AccountLockedError, AuthenticationError, DeviceError, UsageError, ValidationError
from avctl.families import ConfigCall, ConfigRead, Family, by_action
from avctl.families.registry import FamilyPlugin, SpecResource
from avctl.request import Request, Response
from avctl.spec.model import Action, Spec

TOKEN_PATH = "/v2/token"
#: a token this close to its `exp` is replaced before use (clock skew, time on the wire)
EXPIRY_MARGIN = 5.0
V1_AUTH = "solstice_v1_password"
V2_AUTH = "solstice_oauth2"
#: the v1 read that proves the admin password (a pod answers nothing to a wrong one)
V1_VERIFY_PATH = "/api/config"

#: config patches that may take the pod off the network: the key and the action that allows it
NETWORK_GUARDS = {
    "config_update": ("connection", "network_config_update"),
    "v1_config_update": ("m_networkCuration", "v1_network_config_update"),
}

#: what each v2 error code means to a user (seed 004, Errors schema)
ERROR_MEANINGS = {
    "invalid_request": "the pod refused the request as malformed or not allowed",
    "not_found": "no such object on the pod",
    "resource_conflict": "conflicts with the pod's current state",
    "path_failed": "the configuration path could not be read or written",
    "internal": "the pod reported an internal error",
    "not_licensed": "the pod's licence does not include this feature",
    "invalid_token": "the bearer token was refused",
}

CALENDAR_SINGLE_WRITES = {"calendar_add", "calendar_meeting_update", "calendar_meeting_delete",
                          "v1_calendar_add", "v1_calendar_delete"}


#: a token longer than this is not read for its expiry (a pod's is ~300 characters)
MAX_TOKEN_CHARS = 8192


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The claims of a compact JWT (``header.claims.signature``, base64url JSON objects), checking
    nothing else; None if it is not one.

    Without the pod's key a JWT library checks nothing more than this either, and PyJWT imports
    `cryptography` when it is installed: 9.4 MB of the poller's memory for one time per pod. The
    tests check this against PyJWT's unverified decode on valid and malformed tokens."""
    if len(token) > MAX_TOKEN_CHARS:
        return None
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header, claims = (json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in parts[:2])
    except (ValueError, RecursionError):  # bad base64 or UTF-8 (ValueErrors), JSON nested too deep
        return None
    return claims if isinstance(header, dict) and isinstance(claims, dict) else None


#: a token `exp` outside these seconds since the epoch (1970..9999) is not a time: ignored
EXP_RANGE = (0.0, 253402300799.0)


def token_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT, unverified (only the time is needed), or None if it has none.

    A claim that is not a plausible time (a string, NaN, 1e30, a 400-digit number) counts as none:
    the token is then used until the pod refuses it (401), which fetches a new one once.
    """
    claims = unverified_claims(token)
    exp = claims.get("exp") if claims is not None else None
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        return None
    try:
        value = float(exp)
    except OverflowError:
        return None
    return value if EXP_RANGE[0] <= value <= EXP_RANGE[1] else None  # NaN fails both tests


#: RFC 6750 b64token: what may follow "Bearer " in an Authorization header
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def _error_entries(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        return [e for e in body["errors"] if isinstance(e, dict)]
    return []


class SolsticeToken(SessionAuth):
    """OAuth2 password grant with one cached token per pod (per device object)."""

    login_secret = "the admin password (token request)"

    def __init__(self, credentials: Credentials, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(credentials)
        self.clock = clock
        self.token: str | None = None
        self.expires_at: float | None = None
        #: how many token requests went out (diagnostics and tests)
        self.fetched = 0

    @property
    def logged_in(self) -> bool:
        return self.token is not None

    # -- the hooks of the session flow --

    def session_usable(self) -> bool:
        if self.token is None:
            return False
        return self.expires_at is None or self.clock() < self.expires_at - EXPIRY_MARGIN

    def is_login(self, request: Request) -> bool:
        return request.method == "POST" and request.path == TOKEN_PATH

    def forget_session(self) -> None:
        self.token = None

    def apply(self, request: Request) -> Request:
        return request.with_headers(Authorization=f"Bearer {self.token}").with_secret("a bearer token")

    def is_expired(self, response: Response) -> bool:
        if response.status != 401:
            return False
        entries = _error_entries(response.try_json())
        # a 401 without the documented body is treated as a refused token too
        return not entries or any(e.get("error") == "invalid_token" for e in entries)

    def login_request(self) -> Request:
        if self.credentials.password is None:
            raise UsageError(
                "no password for the Solstice token request",
                hint="give the pod's admin password (an empty one when the pod has none)",
            )
        body = urlencode(
            {"grant_type": "password", "username": self.credentials.user or "admin",
             "password": self.credentials.password}
        ).encode()
        self.fetched += 1
        return Request(
            "POST",
            TOKEN_PATH,
            headers=(("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json")),
            body=body,
            carries_secret=self.login_secret,
        )

    def absorb_login(self, response: Response) -> None:
        body = response.try_json()
        token = body.get("access_token") if isinstance(body, dict) else None
        if response.status == 200 and isinstance(token, str) and token:
            if not _BEARER_TOKEN.fullmatch(token):
                # it goes into the Authorization header: a line break would split the request
                raise DeviceError(
                    "Solstice token request: the pod sent an access token with characters a bearer "
                    "token cannot carry (control characters, spaces); refused",
                    status=response.status,
                    hint="is this a Solstice pod with the OpenControl v2 API on this port (5443)?",
                )
            self.token = token
            self.expires_at = token_expiry(token)
            return
        if response.status in (400, 401) and isinstance(body, dict) and "error" in body:
            reason = str(body["error"])
            if reason == "account_locked":
                raise AccountLockedError(
                    f"Solstice token request as {self.credentials.user or 'admin'!r} refused: {reason} (the "
                    f"pod locked the account after too many failed logins; HTTP {response.status})",
                    reason=reason,
                    hint="wait for the lockout to expire before trying again, then check the password",
                )
            raise AuthenticationError(
                f"Solstice token request as {self.credentials.user or 'admin'!r} refused: {reason} "
                f"(HTTP {response.status})",
                reason=reason,
                hint="check the pod's admin password; avctl does not retry a refused login",
            )
        # not a verdict on the password (5xx, a proxy, a wrong port): report, do not mark failed
        raise DeviceError(
            f"Solstice token request answered HTTP {response.status}",
            status=response.status,
            body=body,
            hint="is this a Solstice pod with the OpenControl v2 API on this port (5443)?",
        )


class SolsticeV1Password(Auth):
    """Legacy v1: the admin password as a query parameter (GET) or JSON body field (POST).

    A pod ignores a v1 command sent with a wrong password and answers an empty 200, which reads
    like success. So the password is proved before the first state-changing command of a device
    object: one v1 read of `/api/config` (a pod that accepts the password answers its config
    record; one that does not answers nothing). Any v1 read answered with nothing is the same
    verdict. A rejected password is remembered and never sent again by this object.
    """

    def __init__(self, spec: Spec, credentials: Credentials) -> None:
        self.spec = spec
        self.credentials = credentials
        self.verified = False
        self.failed: AuthenticationError | None = None

    async def flow(self, request: Request) -> Flow:
        if self.failed is not None:
            raise self.failed
        action = self.spec.actions.get(request.action_id)
        if not self.verified and action is not None and action.kind == "action":
            probe = Request("GET", V1_VERIFY_PATH, scheme=request.scheme, port=request.port)
            self._check_probe((yield self.apply(probe)))
        response = yield self.apply(request)
        if action is not None and action.kind == "query" and action.response == "json" and response.status == 200:
            self._verdict(bool(response.body.strip()), action.id)

    def _check_probe(self, response: Response) -> None:
        what = f"the v1 password check (GET {V1_VERIFY_PATH})"
        if response.status != 200:
            # no verdict on the password, but the command must not go out unverified
            raise DeviceError(
                f"{what} answered HTTP {response.status}; the command was not sent",
                status=response.status,
                hint="is the Solstice v1 API enabled and reachable on this scheme and port?",
            )
        self._verdict(bool(response.body.strip()), what)

    def _verdict(self, answered: bool, what: str) -> None:
        """A 200 v1 read with a record proves the password; an empty one rejects it, for good."""
        if answered:
            self.verified = True
            return
        self.failed = AuthenticationError(
            f"{what}: the pod answered with nothing: it ignores v1 commands with a wrong admin password",
            reason="ignored",
            hint="check the pod's admin password; avctl does not send a rejected password again",
        )
        raise self.failed

    def apply(self, request: Request) -> Request:
        password = self.credentials.password
        if not password:
            return request  # a pod without an admin password takes no password parameter
        request = request.with_secret("the admin password (v1 'password' field)")
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if request.method != "GET" and content_type == "application/json" and request.body:
            try:
                data = json.loads(request.body)
            except ValueError:
                data = None
            if isinstance(data, dict):
                data["password"] = password
                return replace(request, body=json.dumps(data).encode())
        # GET, body-less commands and multipart uploads: the query string
        return request.with_query(password=password)


@register_auth(V2_AUTH)
def _oauth2(spec: Spec, credentials: Credentials) -> Auth:
    return SolsticeToken(credentials)


@register_auth(V1_AUTH)
def _v1(spec: Spec, credentials: Credentials) -> Auth:
    return SolsticeV1Password(spec, credentials)


def with_v1_endpoint(spec: Spec, scheme: str = "https", port: int | None = None) -> Spec:
    """A copy of `spec` whose v1 actions use `scheme` on `port` (default 443 for https, 80 for http).

    The built-in spec already sends v1 over HTTPS 443; `Device(..., ports=..., schemes=...)` does
    the same per device without a new spec. A password on http is refused without `allow_cleartext`.
    v2 actions keep the device's own address and port.
    """
    if scheme not in ("http", "https"):
        raise UsageError(f"scheme must be http or https, not {scheme!r}")
    port = port or (443 if scheme == "https" else 80)
    actions = {
        a.id: replace(a, scheme=scheme, port=port) if a.auth == V1_AUTH else a for a in spec.actions.values()
    }
    return replace(spec, actions=actions)


#: v1 configuration keys are kept under this prefix in snapshots (read-only for desired state)
V1_PREFIX = "v1."
#: clocks: they change on every read (a snapshot holding them would never deduplicate)
VOLATILE = ("display.clock.current_time", "v1.m_systemCuration.dateTime")
#: v1 facts that grant access: the screen key of the moment (its name says nothing of a secret)
V1_SECRETS = ("v1.m_authenticationCuration.sessionKey",)
#: the shapes v2 gives a secret: {secret_salt, secret_hash} when read, {secret} when written
_SECRET_FIELDS = frozenset({"secret", "secret_salt", "secret_hash"})
#: how deep a configuration tree is followed (a hostile pod cannot make avctl recurse without end)
MAX_CONFIG_DEPTH = 12


def _flatten(tree: Any, prefix: str, into: ConfigRead, depth: int = 0) -> None:
    """Leaves of `tree` as dotted keys; a secret object is one key whose value is not kept."""
    if not isinstance(tree, dict):
        return
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and value and set(value) <= _SECRET_FIELDS:
            into.values[key] = None
            into.secrets.add(key)
        elif isinstance(value, dict) and value and depth < MAX_CONFIG_DEPTH:
            _flatten(value, key + ".", into, depth + 1)
        else:
            into.values[key] = value


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys -> the nested patch PATCH /v2/config takes (a deep merge on the pod)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


class Solstice(Family):
    name = "solstice"

    def wrap(self, action: Action, request: Request) -> Request:
        guard = NETWORK_GUARDS.get(action.id)
        if guard is not None and request.body:
            key, alternative = guard
            data = json.loads(request.body)
            if isinstance(data, dict) and key in data:
                raise ValidationError(
                    f"the patch changes {key}, which can take the pod off the network",
                    action=action.id,
                    param="config",
                    hint=f"use {alternative} (asks for confirmation; v2 also takes rollback_timeout_seconds)",
                )
        if action.id == "config_section_get":
            # the key may name a deeper branch (display/digital_signage): slashes are separators
            request = replace(request, path=request.path.replace("%2F", "/"))
        return request

    def unwrap(self, action: Action, response: Response) -> Any:
        if action.id == "screen_key_verify" and response.status in (200, 404):
            return {"valid": response.status == 200}
        return super().unwrap(action, response)

    # -- configuration: the v2 tree, flattened to dotted keys; v1's record adds a few facts --

    def config_reads(self, spec: Spec, keys: Sequence[str], *, full: bool = False) -> list[ConfigCall]:
        calls = [ConfigCall("config_get")]  # the pod answers its whole tree: one request whatever the keys
        if full and spec.has_action("v1_config_get"):
            calls.append(ConfigCall("v1_config_get", optional=True))
        return calls

    def config_parse(self, call: ConfigCall, data: Any, into: ConfigRead) -> None:
        if call.action == "v1_config_get":
            _flatten(data, V1_PREFIX, into)
            into.secrets.update(k for k in V1_SECRETS if k in into.values)
        else:
            _flatten(data, "", into)
        for key in VOLATILE:
            into.values.pop(key, None)

    def config_writes(self, spec: Spec, changes: Mapping[str, Any], via: Mapping[str, str]) -> list[ConfigCall]:
        return [ConfigCall(action, {"config": _nest({k: changes[k] for k in keys})}, tuple(keys))
                for action, keys in by_action(changes, via).items()]

    def error(self, action: Action, response: Response) -> DeviceError:
        body = response.try_json()
        entries = _error_entries(body)
        if entries:
            first = entries[0]
            code = str(first.get("error", "")) or None
            description = str(first.get("description", "")) or None
            text = f"{action.id}: pod answered HTTP {response.status}"
            if code:
                text += f": {code}"
            if description:
                text += f": {description}"
            hint = None
            if action.id in CALENDAR_SINGLE_WRITES and code == "invalid_request":
                hint = ("a '3rd Party Only' calendar accepts only the set-all write: use "
                        + ("v1_calendar_set" if action.id.startswith("v1_") else "calendar_set"))
            elif code == "invalid_token":
                hint = "the pod refused a freshly fetched token; check the pod's clock and licence"
            return DeviceError(
                text,
                status=response.status,
                body=body,
                code=code,
                meaning=description or ERROR_MEANINGS.get(code or ""),
                hint=hint,
            )
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return DeviceError(
                f"{action.id}: pod answered HTTP {response.status}: {body['error']}",
                status=response.status,
                body=body,
                code=body["error"],
            )
        err = super().error(action, response)
        if response.status == 404 and action.id.startswith("camera"):
            err.meaning = "no such camera attached"
        return err

    def result_info(self, action: Action, data: Any) -> dict[str, Any]:
        """reboot_required / restart_required from Success and PatchSuccess answers (v2), and from
        the camelCase rebootRequired / restartRequired of a v1 config POST's answer."""
        if not isinstance(data, dict):
            return {}
        info: dict[str, Any] = {}
        for flag, v1_flag in (("reboot_required", "rebootRequired"), ("restart_required", "restartRequired")):
            for key in (flag, v1_flag):
                if key in data:
                    info[flag] = bool(data[key])
        if info.get("reboot_required"):
            info["apply_with"] = "v1_control_reboot"
        elif info.get("restart_required"):
            info["apply_with"] = "v1_control_restart"
        if "device_id" in data and action.id in ("config_update", "network_config_update"):
            info["device_id"] = data["device_id"]
        return info


__all__ = ["Solstice", "SolsticeToken", "SolsticeV1Password", "token_expiry", "with_v1_endpoint"]


#: the entry point `solstice = "avctl.families.solstice:plugin"` (pyproject.toml) names this
plugin = FamilyPlugin(
    "solstice", Solstice, spec=SpecResource("avctl", "specs/solstice.md"),
    emulator="avctl.emulator.solstice:EmulatedSolstice",
    description="Mersive Solstice pods",
)
