"""Emulated Poly UC phone (VVX, Trio, CCX): auth, the 411 rule, one request at a time, envelopes.

The wire rules follow apiref/polyuc.md and seed 002:
- every request authenticates (no session): HTTP Basic and/or Digest (MD5, qop=auth). A 401
  offers the enabled schemes in separate `WWW-Authenticate` headers, as a real phone's web server
  does. `auth_modes` chooses which schemes are accepted ("basic", "digest" or both).
- a POST without `Content-Length` (and not chunked) gets 411 Length Required (curl without -d "").
- with `apps.restapi.enabled` at "0" every `/api` path answers 404, the REST handler being absent.
- one request at a time: a request arriving while another is processed gets HTTP 403.
- paths match case-insensitively; the Server header is that of a real phone.
- HTTPS, HTTP (`scheme="http"`), or both (`http_port=0` beside HTTPS; `avctl emulate polyuc --set
  http_port=0`).
- answers are `{"data": ..., "Status": "2000"}`; `status_as_number` sends `2000` instead of
  `"2000"` (both forms occur). `fail_next(code)` makes the next request answer that Status.
- credentials are checked from the headers before any body is read; a body over `max_body`
  (1 MiB, an assumption: the real limit is not published) answers Status 4009 ("input size limit
  exceeded") unread; a body that is not the JSON envelope answers Status 4000.
- lockout: the phone's web server locks its login after `lockout_after` failed logins within
  `lockout_window` seconds, for `lockout_seconds` (UC Software's `httpd.cfg.lockWebUI.*`
  parameters: 5 attempts, 60 s, 60 s by default). ASSUMPTION (no capture in the references): while
  locked, every request answers 401 with the usual challenges and a text body saying the login is
  locked, even with the right password. Time comes from `device.clock`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import secrets
import time
from typing import Any, ClassVar

from aiohttp import web

from avctl.auth.http import digest_response, parse_challenges
from avctl.emulator.core import Ctx, EmulatedDevice, Lockout, reply
from avctl.emulator.polyuc.handlers import UcHandlers
from avctl.emulator.polyuc.state import UcPhone, UcStatus
from avctl.spec.model import Action

FACTORY_PASSWORD = "456"
#: Status codes that newer firmware may carry on a matching HTTP status (apiref 4: not confirmed)
HTTP_FOR_STATUS = {"4400": 400, "4403": 403, "5500": 500}


class EmulatedPolyUC(UcHandlers, EmulatedDevice):
    family: ClassVar[str] = "polyuc"
    ignore_case: ClassVar[bool] = True
    default_password: ClassVar[str] = "789"  # seed 002's example password
    server_header: ClassVar[str] = "Polycom SoundPoint IP Telephone HTTPd"
    realm: ClassVar[str] = "PLCM_SPIP"
    default_max_body: ClassVar[int] = 1024 * 1024

    def __init__(
        self,
        name: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        model: str = "VVX 450",
        firmware: str = "6.4.3.5156",
        provisioned_firmware: str | None = None,
        auth_modes: tuple[str, ...] = ("basic", "digest"),
        processing_seconds: float = 0.0,
        nonce_seconds: float = 300.0,
        status_as_number: bool = False,
        http_port: int | None = None,
        connect_after: float = 0.0,
        lockout_after: int = 5,
        lockout_window: float = 60.0,
        lockout_seconds: float = 60.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, host, port, **kwargs)
        if http_port is not None and self.scheme == "https":
            # a real phone serves HTTP (80) beside HTTPS (443); 0 = any free port
            self.extra_ports["http"] = http_port
        self.auth_modes = auth_modes
        self.processing_seconds = processing_seconds
        self.nonce_seconds = nonce_seconds
        self.status_as_number = status_as_number
        self.phone = UcPhone(name=name, rng=self.random, model=str(model), firmware=str(firmware), ip=host,
                             connect_after=connect_after,
                             provisioned_firmware=None if provisioned_firmware is None else str(provisioned_firmware))
        prov = self.phone.config["device.prov.serverName"]
        if self.phone.provisioned_firmware and not prov.current:
            # a phone offered a build by its provisioning server is provisioned by one
            prov.value, prov.source = "prov.example.test", "device"
        self.nonces: dict[str, dict[str, Any]] = {}
        self.auth_failures = 0  # wrong password (a scheme that is not accepted does not count)
        self.lockout = Lockout(int(lockout_after), float(lockout_seconds), float(lockout_window))
        self.locked_refusals = 0
        self.busy_refusals = 0
        self.length_refusals = 0
        self.stuck_busy = False  # test switch: every request meets a phone busy with something else
        self.busy_next = 0  # test switch: the next N requests meet a busy phone (403, nothing done)
        self._processing = False
        self._forced: list[str] = []

    # -- test hooks --

    @property
    def rest_enabled(self) -> bool:
        return self.phone.rest_enabled

    @rest_enabled.setter
    def rest_enabled(self, on: bool) -> None:
        param = self.phone.config["apps.restapi.enabled"]
        param.value, param.source = ("1" if on else "0"), "web"

    def fail_next(self, code: str) -> None:
        """The next request that reaches a handler answers `{"Status": code}`."""
        self._forced.append(code)

    def expire_sessions(self) -> None:
        """No sessions on a phone; the nearest thing is forgetting every Digest nonce."""
        self.nonces.clear()

    def on_restart(self) -> None:
        self.nonces.clear()

    def on_factory_reset_done(self) -> None:
        self.password = FACTORY_PASSWORD

    def info(self) -> dict[str, Any]:
        info = {**super().info(), "model": self.phone.model, "auth": "+".join(self.auth_modes)}
        if "http" in self.extra_ports:
            info["http_address"] = f"{self.host}:{self.extra_ports['http']}"
        return info

    # -- answers in the phone's shape --

    def malformed_answer(self, reason: str) -> web.StreamResponse:
        return self._status_answer(UcStatus("4000"))

    def too_large_answer(self) -> web.StreamResponse:
        return self._status_answer(UcStatus("4009"))

    def crash_answer(self) -> web.StreamResponse:
        return self._status_answer(UcStatus("5500"))

    # -- the wire rules --

    def body_needed_for_auth(self, request: web.Request, action: Action | None) -> bool:
        return False  # Basic/Digest: the headers say it all

    async def authenticate(
        self, request: web.Request, action: Action | None, body: bytes
    ) -> web.StreamResponse | None:
        if request.method == "POST" and request.content_length is None and "chunked" not in (
            request.headers.get("Transfer-Encoding", "").lower()
        ):
            self.length_refusals += 1
            return web.Response(status=411, text="411 Length Required", content_type="text/html")
        if self.lockout.locked(self.clock()):
            self.locked_refusals += 1
            return self._demand_auth(locked=True)
        failures = self.auth_failures
        verdict = self._check_credentials(request)
        if self.auth_failures > failures and self.lockout.fail(self.clock()):
            return self._demand_auth(locked=True)
        if verdict is True:
            self.lockout.succeed()
        else:
            return self._demand_auth(stale=verdict == "stale")
        if not self.phone.rest_enabled and request.path.lower().startswith("/api/"):
            # "Received request is NOT for REST API handler": the web server has no such page
            return web.Response(status=404, text="404 Not Found", content_type="text/html")
        return None

    def _demand_auth(self, stale: bool = False, locked: bool = False) -> web.Response:
        text = "401 Unauthorized"
        if locked:
            left = self.lockout.remaining(self.clock())
            text += f": too many failed logins, login locked for {left} seconds"
        response = web.Response(status=401, text=text, content_type="text/html")
        if "digest" in self.auth_modes:
            nonce = secrets.token_hex(16)
            self.nonces[nonce] = {"issued": time.monotonic(), "nc": 0}
            opaque = "5ccc069c403ebaf9f0171e9517f40e41"
            response.headers.add(
                "WWW-Authenticate",
                f'Digest realm="{self.realm}", qop="auth", nonce="{nonce}", opaque="{opaque}", '
                f'algorithm="MD5"' + (", stale=TRUE" if stale else ""),
            )
        if "basic" in self.auth_modes:
            response.headers.add("WWW-Authenticate", f'Basic realm="{self.realm}"')
        return response

    def _check_credentials(self, request: web.Request) -> bool | str:
        header = request.headers.get("Authorization", "")
        scheme, _, rest = header.partition(" ")
        if scheme.lower() == "basic" and "basic" in self.auth_modes:
            try:
                user, _, password = base64.b64decode(rest.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            good = user == self.user and hmac.compare_digest(password.encode(), self.password.encode())
            self.auth_failures += not good
            return good
        if scheme.lower() == "digest" and "digest" in self.auth_modes:
            return self._check_digest(request, rest)
        return False

    def _check_digest(self, request: web.Request, rest: str) -> bool | str:
        params = parse_challenges([f"Digest {rest}"]).get("digest")
        if params is None:
            return False
        p = params.params
        if p.get("username") != self.user or p.get("realm") != self.realm or p.get("uri") != request.raw_path:
            self.auth_failures += p.get("username") != self.user
            return False
        if p.get("qop", "auth") != "auth" or p.get("algorithm", "MD5").upper() != "MD5":
            return False
        nonce = p.get("nonce", "")
        expected = digest_response(
            user=self.user, password=self.password, realm=self.realm, method=request.method,
            uri=p["uri"], nonce=nonce, nc=p.get("nc", ""), cnonce=p.get("cnonce", ""), qop=p.get("qop"),
        )
        if not hmac.compare_digest(expected.encode(), p.get("response", "").encode()):
            self.auth_failures += 1
            return False
        record = self.nonces.get(nonce)
        if record is None or time.monotonic() - record["issued"] > self.nonce_seconds:
            self.nonces.pop(nonce, None)
            return "stale"  # right password, old nonce: the client may retry with a fresh one
        try:
            nc = int(p.get("nc", "0"), 16)
        except ValueError:
            return False
        if p.get("qop") and nc <= record["nc"]:
            return "stale"  # a replayed request counter
        record["nc"] = nc
        return True

    async def dispatch(self, ctx: Ctx) -> web.StreamResponse:
        if self._processing or self.stuck_busy or self.busy_next:
            # the Poly doc: parallel processing is not allowed; a second request gets HTTP 403
            self.busy_next = max(0, self.busy_next - 1)
            self.busy_refusals += 1
            return web.Response(status=403, text="403 Forbidden", content_type="text/html")
        self._processing = True
        try:
            if self.processing_seconds:
                await asyncio.sleep(self.processing_seconds)
            if self._forced:
                raise UcStatus(self._forced.pop(0))
            return await super().dispatch(ctx)
        except UcStatus as status:
            return self._status_answer(status)
        finally:
            self._processing = False

    def _status_answer(self, status: UcStatus) -> web.Response:
        body: dict[str, Any] = {"Status": int(status.code) if self.status_as_number else status.code}
        if status.data is not None:
            body["data"] = status.data
        return reply(body, HTTP_FOR_STATUS.get(status.code, 200))

    # -- convenience for tests and demos --

    def inject_incoming_call(self, number: str, name: str = "", line: int = 1) -> str:
        """A call arrives and rings; returns its handle as v2 callStatus shows it (no 0x)."""
        return self.phone.incoming(number, name, line).hex


__all__ = ["EmulatedPolyUC"]
