"""Poly UC phones (VVX, Trio, CCX): HTTP Basic/Digest, `{"data": ...}` envelopes, `Status` codes.

What the spec cannot say lives here:
- auth: no session. Over HTTPS, Basic is sent up front with every request; a phone whose 401
  offers only Digest gets Digest (MD5, qop=auth) from then on. Over plain HTTP nothing is sent
  before the phone asks: the first request goes without credentials, the phone's 401 challenge is
  remembered per device, and every later request answers it directly (no new 401 round trip).
  Digest is preferred when offered and is allowed on HTTP without opt-in: it carries a hash bound
  to a nonce, not the password (a decision: an eavesdropper can still try to guess a weak password
  offline from it). Basic on HTTP carries the password itself and goes only with the user's opt-in
  (`allow_cleartext`; `Device` refuses it otherwise). A 401 that still offers the scheme just used
  is a verdict on the password: reported, remembered, never retried (phones lock accounts out).
- envelope: parameters go inside `{"data": ...}`; scalars are strings on the wire; call handles
  are normalised; answers `{"Status": "2000", "data": ...}` are unwrapped and every other Status
  becomes a `DeviceError` with the code and its meaning (Status may be a string or a number).
- the phone answers one request at a time: a 403 without a Status (or Status 4001) is `DeviceBusy`,
  retried by `Device.call` a bounded number of times with backoff.
- a disabled REST API (`apps.restapi.enabled`) shows as 404 for every `/api` path: `ApiDisabled`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from avctl.auth import Auth, Credentials, Flow, register_auth
from avctl.auth.http import BASIC_SECRET, Challenge, basic_authorization, digest_authorization, parse_challenges
from avctl.errors import AccountLockedError, ApiDisabled, AuthenticationError, DeviceBusy, DeviceError, UsageError
from avctl.families import ConfigCall, ConfigRead, Family, by_action
from avctl.families.registry import FamilyPlugin, SpecResource
from avctl.request import Request, Response
from avctl.retry import RetryPolicy
from avctl.spec.model import Action, Spec

SUCCESS = "2000"
BUSY = "4001"

#: Status codes (apiref/polyuc.md section 2: POSH, EVZ, ITEST)
STATUS_MEANINGS = {
    "2000": "success",
    "4000": "invalid input parameters",
    "4001": "device busy",
    "4002": "line not registered",
    "4003": "operation not allowed",
    "4004": "operation not supported",
    "4005": "line does not exist",
    "4006": "URLs not configured",
    "4007": "call does not exist",
    "4008": "configuration export failed",
    "4009": "input size limit exceeded",
    "4010": "default password not allowed",
    "4011": "contact not found",
    "4400": "bad request",
    "4403": "forbidden",
    "5000": "failed to process request",
    "5500": "internal server error",
}

STATUS_HINTS = {
    "4000": "check the parameter names and values against 'avctl actions polyuc'",
    "4002": "the line must be registered to its call server (see line_info)",
    "4005": "the phone has no such line (see line_info)",
    "4006": "set the provisioning server first (device.prov.serverName)",
    "4007": "read the active calls and their handles with call_status",
    "4009": "send fewer parameters per request (about 20 for config_set)",
    "4010": "change the phone's default admin password first",
}

ENABLE_HINT = (
    "enable it in the phone's web UI (Settings > Applications > REST API) or with the configuration "
    'parameter apps.restapi.enabled="1"'
)

#: parameters per config request: the phone refuses large ones (Status 4009); companions need room
CONFIG_BATCH = 15

HANDLE_RE = re.compile(r"^(?:0[xX])?([0-9a-fA-F]{1,16})$")


def _param_chunks(keys: Sequence[str]) -> list[Sequence[str]]:
    return [keys[i:i + CONFIG_BATCH] for i in range(0, len(keys), CONFIG_BATCH)]


# --- call handles ------------------------------------------------------------------------------


def handle_digits(ref: str | int) -> str:
    """The hex digits of a call handle given as "0x2341880", "2341880" or 2341880 (seed 002).

    An integer is the handle's hex digits read as a number, as the FAQ's `{"Ref": 2341880}` shows,
    not the handle's numeric value.
    """
    m = HANDLE_RE.match(str(ref).strip())
    if m is None or isinstance(ref, bool):
        raise ValueError(f"not a call handle: {ref!r}")
    return m.group(1).lower()


def normalize_handle(ref: str | int) -> str:
    """The form v1 callStatus reports and most clients send back: "0x" + lower-case hex digits."""
    return "0x" + handle_digits(ref)


# --- the envelope ------------------------------------------------------------------------------


def _wire_scalar(value: Any) -> Any:
    """Scalars inside `data` are strings on the phone (`"Line": "1"`, `"X": "70"`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return [_wire_scalar(v) for v in value]
    if isinstance(value, dict):
        return {k: _wire_scalar(v) for k, v in value.items()}
    return value


def status_of(body: Any) -> str | None:
    """The `Status` of an answer as a string ("2000"), whether sent as a string or a number."""
    if not isinstance(body, dict) or "Status" not in body:
        return None
    raw = body["Status"]
    if isinstance(raw, bool):
        return str(raw)
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw).strip()


# --- auth ----------------------------------------------------------------------------------------


class UcAuth(Auth):
    """Basic up front on HTTPS; on HTTP the phone's challenge first; a rejected password is final."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self.scheme = "basic"
        self.challenge: Challenge | None = None
        self.nc = 0
        self.failed: AuthenticationError | None = None
        #: the phone has said which scheme it wants (its 401 challenge, remembered for this device)
        self.asked = False

    async def flow(self, request: Request) -> Flow:
        if self.failed is not None:
            raise self.failed
        if self.credentials.password is None:
            raise UsageError(
                "no password for the Poly UC phone",
                hint="give --password-env VAR or --password-file FILE, or set AVCTL_PASSWORD (a terminal is asked)",
            )
        if not self.asked and self.over_http(request):
            # plain HTTP: no credentials before the phone asks for them
            response = yield request
            if response.status != 401:
                return
            self._remember(response)
        used = self.scheme
        response = yield self._authorize(request)
        if response.status != 401:
            return
        offered = parse_challenges(response.header_all("WWW-Authenticate"))
        digest = offered.get("digest")
        if used == "basic" and "basic" not in offered and digest is not None:
            # the phone wants Digest: Basic was never judged, so this is not a retry of a password
            self.scheme, self.challenge, self.nc = "digest", digest, 0
            response = yield self._authorize(request)
        elif used == "digest" and digest is not None and digest.stale:
            # the nonce expired (or the phone restarted): same password, fresh nonce
            self.challenge, self.nc = digest, 0
            response = yield self._authorize(request)
        if response.status == 401:
            self._fail(response)

    def _remember(self, response: Response) -> None:
        """Keep the phone's challenge: Digest when offered (no password on the wire), else Basic."""
        offered = parse_challenges(response.header_all("WWW-Authenticate"))
        if "digest" in offered:
            self.scheme, self.challenge, self.nc = "digest", offered["digest"], 0
        elif "basic" not in offered:
            raise DeviceError(
                "the phone answered 401 without a Basic or Digest challenge",
                status=401,
                hint="is this a Poly UC phone with its REST API enabled?",
            )
        self.asked = True

    def _fail(self, response: Response) -> None:
        scheme = "Digest" if self.scheme == "digest" else "Basic"
        # a locked web login says so in the 401's text (the right password is refused too, for a while)
        if b"locked" in response.body[:512].lower():
            self.failed = AccountLockedError(
                f"phone locked the login of user {self.credentials.user!r} after too many failed attempts "
                f"(HTTP 401, {scheme} auth)",
                reason="locked",
                hint="wait for the lockout to expire (the phone's lockWebUI settings), then check the password",
            )
            raise self.failed
        self.failed = AuthenticationError(
            f"phone rejected user {self.credentials.user!r} (HTTP 401, {scheme} auth)",
            reason="401",
            hint=(
                "check the admin password; avctl does not retry a rejected login (phones lock accounts "
                f"out). If the password is right, the REST API may be disabled: {ENABLE_HINT}"
            ),
        )
        raise self.failed

    def _authorize(self, request: Request) -> Request:
        user = self.credentials.user or "Polycom"
        password = self.credentials.password or ""
        if self.scheme == "basic" or self.challenge is None:
            return request.with_headers(Authorization=basic_authorization(user, password)).with_secret(BASIC_SECRET)
        self.nc += 1
        header = digest_authorization(request, self.challenge, user, password, self.nc)
        return request.with_headers(Authorization=header)


@register_auth("http_basic_digest")
def _uc_auth(spec: Spec, credentials: Credentials) -> Auth:
    return UcAuth(credentials)


# --- the family -----------------------------------------------------------------------------------


class PolyUC(Family):
    name = "polyuc"
    #: the factory admin password (apiref/polyuc.md: EYE, POSH, ITEST; Status 4010 refuses it)
    default_passwords = ("", "456")
    #: a phone answers busy while it handles another request: worth a few retries by default
    retry = RetryPolicy(attempts=5, backoff=0.25, busy_only=True)

    def wrap(self, action: Action, request: Request) -> Request:
        query = tuple(
            (k, handle_digits(v)) if k == "handle" and HANDLE_RE.match(v) else (k, v) for k, v in request.query
        )
        if query != request.query:
            request = replace(request, query=query)  # v2 callStatus takes the handle without 0x
        if action.body not in ("json", "value") or not request.body:
            return request
        inner = json.loads(request.body)
        if action.body == "json" and isinstance(inner, dict):
            inner = {
                k: normalize_handle(v) if k == "Ref" else _wire_scalar(v) for k, v in inner.items()
            }
        return replace(request, body=json.dumps({"data": inner}).encode())

    def unwrap(self, action: Action, response: Response) -> Any:
        body = response.try_json()
        code = status_of(body)
        if code is not None and code != SUCCESS:
            raise self.status_error(action, response, code, body)
        if code is None:
            if response.status == 404:
                raise ApiDisabled(
                    f"{action.id}: the phone's REST API appears to be disabled "
                    f"(HTTP 404 for {action.method} {action.path})",
                    status=404,
                    body=body,
                    hint=ENABLE_HINT + "; firmware older than UC Software 5.8 has no REST API",
                )
            if response.status == 403:
                raise DeviceBusy(
                    f"{action.id}: the phone is busy with another request (HTTP 403)",
                    status=403,
                    body=body,
                    hint="phones process one request at a time; if this persists, the REST API may be "
                    f"disabled: {ENABLE_HINT}",
                )
            if response.status == 411:
                raise DeviceError(
                    f"{action.id}: the phone wants a Content-Length (HTTP 411 Length Required)",
                    status=411,
                    body=body,
                    hint='send an empty body with Content-Length: 0 (curl: -d "")',
                )
        if response.status not in action.success:
            raise self.error(action, response)
        if isinstance(body, dict) and code is not None:
            return body.get("data")
        return body

    # -- configuration parameters: read and written by name, about 20 per request (Status 4009) --

    def config_reads(self, spec: Spec, keys: Sequence[str], *, full: bool = False) -> list[ConfigCall]:
        return [ConfigCall("config_get", {"names": list(chunk)}, tuple(chunk)) for chunk in _param_chunks(keys)]

    def config_parse(self, call: ConfigCall, data: Any, into: ConfigRead) -> None:
        if not isinstance(data, dict):
            return
        for name in call.keys:
            item = data.get(name)
            if isinstance(item, dict) and "Value" in item:
                into.values[name] = item["Value"]

    def config_writes(self, spec: Spec, changes: Mapping[str, Any], via: Mapping[str, str]) -> list[ConfigCall]:
        calls = []
        for action, keys in by_action(changes, via).items():
            for chunk in _param_chunks(keys):
                values = {k: changes[k] for k in chunk}
                for key in chunk:
                    # a device.* parameter takes effect only with device.set and its own .set at "1" (seed 002)
                    if key.startswith("device.") and key != "device.set" and not key.endswith(".set"):
                        values.setdefault("device.set", "1")
                        values.setdefault(f"{key}.set", "1")
                calls.append(ConfigCall(action, {"values": values}, tuple(chunk)))
        return calls

    def status_error(self, action: Action, response: Response, code: str, body: Any) -> DeviceError:
        meaning = STATUS_MEANINGS.get(code, "unknown status")
        message = f"{action.id}: phone answered Status {code} ({meaning})"
        detail = body.get("data") if isinstance(body, dict) else None
        if detail:
            shown = json.dumps(detail)
            message += f": {shown[:120] + '...' if len(shown) > 120 else shown}"
        hint = STATUS_HINTS.get(code)
        if code == BUSY:
            return DeviceBusy(message, status=response.status, body=body, code=code, meaning=meaning)
        return DeviceError(
            message,
            status=response.status,
            body=body,
            code=code,
            meaning=meaning,
            hint=hint,
        )


__all__ = [
    "STATUS_MEANINGS",
    "PolyUC",
    "UcAuth",
    "handle_digits",
    "normalize_handle",
    "status_of",
]


#: the entry point `polyuc = "avctl.families.polyuc:plugin"` (pyproject.toml) names this
plugin = FamilyPlugin(
    "polyuc", PolyUC, spec=SpecResource("avctl", "specs/polyuc.md"),
    emulator="avctl.emulator.polyuc:EmulatedPolyUC",
    description="Poly UC phones (VVX, Trio, CCX)",
)
