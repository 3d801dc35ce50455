"""Emulated Mersive Solstice pod: OpenControl v2 with HS256 JWT tokens, legacy v1, Active Routing.

One pod answers on three sockets, as a real one does:
- v2 over HTTPS on its main address (the real port is 5443: give each pod its own 127.x.y.z to
  serve clients that hard-code the port, like the seed 004 samples);
- v1 over plain HTTP (port 80 on a real pod) and over HTTPS (443). When the pod listens on 5443
  the v1 sockets try 80 and 443 on the same address and fall back to free ports when the process
  may not bind them; `v1_http_port` / `v1_https_port` say where they ended up.
  `v1_http_port="off"` closes plain HTTP (a firewalled port 80).

Auth rules (seed 004, apiref/solstice.md):
- `POST /v2/token`, form `grant_type=password&username=admin&password=...` (also accepted in the
  query string) -> `{"access_token": <JWT HS256, claim exp>, "token_type": "jwt"}`; an empty
  username is accepted as the pod's one user (production clients send it so: spec Notes); another
  user or a wrong password -> 401 `{"error": "invalid_grant"}`, a malformed request -> 400.
- Every other `/v2` call needs `Authorization: Bearer <token>`, else 401
  `{"errors": [{"error": "invalid_token", ...}]}`. `POST /v2/info/screen_key` also works without
  a token (the seed's own sample sends none), never with a bad one.
- v1: with an admin password set, the password must come as `?password=`, a JSON body field, a
  URL-encoded form field or a multipart field; otherwise the command is ignored and the answer is
  empty (as the real pod). An accepted config POST answers `{"rebootRequired", "restartRequired"}`,
  a splash reset `{"result": "Success"}` (spec Notes).

Bodies: over the spec's `max_body_bytes` (50 MiB) answer 413 `{"errors":[{"error":"invalid_request",
...}]}` unread; a v2 call's bearer token is checked before its body is read (a v1 call's password
may be in the body, so that one is read first). A body that is not JSON (or too deeply nested, not
UTF-8, a non-finite number) answers 400 invalid_request in the Errors shape.

Lockout: `lockout_after` refused token requests within `lockout_window` seconds lock the admin
login for `lockout_seconds` of `device.clock` (5, 60 s, 60 s by default). ASSUMPTION (neither
seed 004 nor the references document a pod lockout): while locked, every token request, even with
the right password, answers 401 TokenError `{"error": "account_locked", "error_description": ...}`;
tokens issued before keep working, and v1 calls (which a pod ignores on a wrong password) do not
count.

Fault switches beyond the core ones (`faults.latency/error_rate/drop_rate/reboot_seconds`):
`expire_sessions()` revokes every token (next call: 401 invalid_token), `token_lifetime` sets the
`exp` of new tokens, `refuse_tokens = True` answers every bearer call 401 invalid_token.
"""

from __future__ import annotations

import email.parser
import email.policy
import secrets
import socket
import time
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote

import jwt
from aiohttp import web

from avctl.emulator.core import (
    BadBody,
    Ctx,
    EmulatedDevice,
    HTTPError,
    Lockout,
    parse_json,
    reply,
    reply_bytes,
)
from avctl.emulator.solstice.state import (
    ASPECTS,
    SPLASH_SLOTS,
    SolsticeState,
    is_third_party,
    schema_errors,
)
from avctl.spec.model import Action

V2_PORT = 5443
JPEG_MAGIC = b"\xff\xd8\xff"
SUCCESS = "success!"


def errors(status: int, code: str, description: str) -> HTTPError:
    """The v2 Errors shape."""
    return HTTPError(status, {"errors": [{"error": code, "description": description}]})


def success(state: SolsticeState) -> web.Response:
    return reply({"message": SUCCESS, "reboot_required": state.reboot_required,
                  "restart_required": state.restart_required})


def _multipart_fields(content_type: str, body: bytes) -> dict[str, bytes]:
    """Fields of a multipart/form-data body (already read by the server) by name."""
    raw = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    fields: dict[str, bytes] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload
    return fields


def _v1_fields(content_type: str, body: bytes) -> dict[str, bytes]:
    """The named fields of a v1 POST, whichever way the client encoded them: multipart (the guide's
    Postman steps), a URL-encoded form (its curl transcripts) or a JSON object (AVI-SPL's adapter
    posts `{"file": "reset default", "password": ...}`)."""
    if content_type.startswith("multipart/"):
        return _multipart_fields(content_type, body)
    if content_type.startswith("application/x-www-form-urlencoded"):
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return {name: values[-1].encode() for name, values in form.items()}
    try:
        data = parse_json(body)
    except BadBody:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): v.encode() for k, v in data.items() if isinstance(v, str)}


def _v1_port(host: str, wanted: int | str | None, default: int) -> int:
    """The port for a v1 socket: as asked, else `default` if this process may bind it, else any."""
    if wanted == "off":
        return 0
    if wanted is not None:
        return int(wanted)
    if not default:
        return 0
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, default))
        except OSError:
            return 0  # ports below 1024 need privileges: take a free one (see info())
    return default


class EmulatedSolstice(EmulatedDevice):
    family: ClassVar[str] = "solstice"
    server_header: ClassVar[str] = "Solstice"

    def __init__(
        self,
        name: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        v1_http_port: int | str | None = None,
        v1_https_port: int | str | None = None,
        token_lifetime: float | str = 3600.0,
        firmware: str = "5.5.3.14",
        model: str = "Solstice Pod",
        update_to: str | None = "5.5.4.2",
        lockout_after: int = 5,
        lockout_window: float = 60.0,
        lockout_seconds: float = 60.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("scheme", "https")
        super().__init__(name, host, port, **kwargs)
        # `avctl emulate solstice --set token_lifetime=60` hands values over as text
        self.token_lifetime = float(token_lifetime)
        self.refuse_tokens = False
        self.lockout = Lockout(int(lockout_after), float(lockout_seconds), float(lockout_window))
        self.jwt_key = secrets.token_bytes(32)
        self.tokens_issued = 0
        self.v1_ignored = 0
        # a pod at the real v2 port gets the real v1 ports too, when this process may bind them
        real_ports = int(port) == V2_PORT
        self.extra_ports = {
            "http": _v1_port(host, v1_http_port, 80 if real_ports else 0),
            "https": _v1_port(host, v1_https_port, 443 if real_ports else 0),
        }
        if v1_http_port == "off":  # a pod whose port 80 is closed (firewalled): v1 over HTTPS only
            del self.extra_ports["http"]
        self.mac = "00:1a:" + ":".join(f"{self.random.randrange(256):02x}" for _ in range(4))
        # `--set update_to=none` (or null, ""): a pod with no update to offer
        offered = None if update_to is None or str(update_to).strip().lower() in ("", "none") else str(update_to)
        self.state = SolsticeState(name=name, host=host, rng=self.random, firmware=str(firmware), model=str(model),
                                   update_available_to=offered)
        self.state.set_admin_password(self.password)

    def info(self) -> dict[str, Any]:
        out = super().info()
        out["v1_http"] = f"{self.host}:{self.v1_http_port}" if self.v1_http_port else "off"
        out["v1_https"] = f"{self.host}:{self.v1_https_port}"
        return out

    def expire_sessions(self) -> None:
        self.jwt_key = secrets.token_bytes(32)  # every token issued so far stops verifying

    @property
    def v1_http_port(self) -> int:
        """0 when the pod serves no plain HTTP (`v1_http_port="off"`)."""
        return self.extra_ports.get("http", 0)

    @property
    def v1_https_port(self) -> int:
        return self.extra_ports["https"]

    def _on_v1_socket(self, request: web.Request) -> bool:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        return sockname is not None and sockname[1] != self.port

    # -- answers in the pod's shape ------------------------------------------------------------------

    def malformed_answer(self, reason: str) -> web.StreamResponse:
        error = errors(400, "invalid_request", reason)
        return reply(error.body, error.status)

    def too_large_answer(self) -> web.StreamResponse:
        error = errors(413, "invalid_request", f"request body larger than {self.max_body} bytes")
        return reply(error.body, error.status)

    def crash_answer(self) -> web.StreamResponse:
        error = errors(500, "internal", "internal error")
        return reply(error.body, error.status)

    # -- auth --------------------------------------------------------------------------------------

    def body_needed_for_auth(self, request: web.Request, action: Action | None) -> bool:
        return request.path.startswith("/api/")  # a v1 password may come in the body

    def normalize_path(self, path: str) -> str:
        # GET /v2/config/a/b/c navigates the config: keep the key in one route segment
        if path.startswith("/v2/config/") and self.router.resolve("GET", path) == 404:
            return "/v2/config/" + path[len("/v2/config/") :].strip("/").replace("/", "%2F")
        return path

    async def authenticate(
        self, request: web.Request, action: Action | None, body: bytes
    ) -> web.StreamResponse | None:
        on_v1_socket = self._on_v1_socket(request)
        if request.path.startswith("/api/"):
            if not on_v1_socket:
                return reply({"errors": [{"error": "not_found", "description": "no such route"}]}, 404)
            if self.password and self._v1_password(request, body) != self.password:
                self.v1_ignored += 1
                return web.Response(status=200)  # the real pod ignores the command
            return None
        if on_v1_socket:
            return web.Response(status=404, text="Not Found")
        if request.path == "/v2/token":
            return None
        header = request.headers.get("Authorization", "")
        if action is not None and action.id == "screen_key_verify" and not header:
            return None
        if not header.startswith("Bearer "):
            return reply({"errors": [{"error": "invalid_token", "description": "missing bearer token"}]}, 401)
        if self.refuse_tokens:
            return reply({"errors": [{"error": "invalid_token", "description": "token refused"}]}, 401)
        try:
            jwt.decode(header[7:], self.jwt_key, algorithms=["HS256"], options={"require": ["exp"]})
        except jwt.ExpiredSignatureError:
            return reply({"errors": [{"error": "invalid_token", "description": "token expired"}]}, 401)
        except jwt.PyJWTError:
            return reply({"errors": [{"error": "invalid_token", "description": "bad token"}]}, 401)
        return None

    def _v1_password(self, request: web.Request, body: bytes) -> str | None:
        if "password" in request.query:
            return request.query["password"]
        field = _v1_fields(request.headers.get("Content-Type", ""), body).get("password")
        return field.decode("utf-8", "replace") if field is not None else None

    # -- helpers -----------------------------------------------------------------------------------

    @staticmethod
    def _json(ctx: Ctx, *, required: bool = True) -> Any:
        data = ctx.json()  # not JSON: BadBody, answered 400 invalid_request
        if data is None and required:
            raise errors(400, "invalid_request", "request body is empty")
        return data

    def _object(self, ctx: Ctx, *, required: bool = True) -> dict[str, Any]:
        data = self._json(ctx, required=required)
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise errors(400, "invalid_request", "request body must be a JSON object")
        return data

    def _single_calendar_writes_allowed(self) -> None:
        if is_third_party(self.state.calendar_type):
            raise errors(400, "invalid_request",
                         "not supported for the 3rd Party Only calendar type; use set calendar entries")

    # -- v2: token ------------------------------------------------------------------------------------

    async def on_token_request(self, ctx: Ctx) -> web.StreamResponse:
        fields = {k: v[-1] for k, v in parse_qs(ctx.body.decode("utf-8", "replace"),
                                                  keep_blank_values=True).items()}
        for key in ("grant_type", "username", "password"):  # the seed's table puts them in the query
            if key not in fields and key in ctx.query:
                fields[key] = ctx.query[key]
        if fields.get("grant_type") != "password":
            return reply({"error": "unsupported_grant_type"}, 400)
        if "username" not in fields or "password" not in fields:
            return reply({"error": "invalid_request"}, 400)
        now = self.clock()
        if self.lockout.locked(now):
            return self._locked_answer(now)
        # a pod has one user: production clients send an empty username (AVI-SPL's Pod Gen3 adapter)
        if fields["username"] not in ("", self.user) or fields["password"] != self.password:
            if self.lockout.fail(now):
                return self._locked_answer(now)
            return reply({"error": "invalid_grant"}, 401)
        self.lockout.succeed()
        self.tokens_issued += 1
        # the seed's sample token carries only `exp`; a jti keeps tokens of one second apart
        claims = {"exp": int(time.time() + self.token_lifetime), "jti": secrets.token_hex(8)}
        token = jwt.encode(claims, self.jwt_key, algorithm="HS256", headers={"typ": "JWT"})
        return reply({"access_token": token, "token_type": "jwt"})

    def _locked_answer(self, now: float) -> web.Response:
        left = self.lockout.remaining(now)
        return reply({"error": "account_locked",
                      "error_description": f"too many failed logins; try again in {left} seconds"}, 401)

    # -- v2: config -----------------------------------------------------------------------------------

    async def on_config_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self.state.config)

    async def on_config_section_get(self, ctx: Ctx) -> web.StreamResponse:
        key = unquote(ctx.path_params["key"])
        try:
            return reply(self.state.branch(key))
        except KeyError:
            raise errors(404, "not_found", f"unknown configuration key {key}") from None

    async def on_config_update(self, ctx: Ctx) -> web.StreamResponse:
        patch = self._object(ctx)
        problems = schema_errors(patch)
        if problems:
            raise errors(400, "invalid_request", "; ".join(problems[:5]))
        rollback = ctx.query.get("rollback_timeout_seconds")
        if rollback is not None:
            if not rollback.isdigit():
                raise errors(400, "invalid_request", "rollback_timeout_seconds must be an integer")
            self.state.last_rollback_timeout = int(rollback)
        admin = patch.get("security", {}).get("admin_password")
        reboot, restart = self.state.apply_patch(patch)
        if isinstance(admin, dict) and isinstance(admin.get("secret"), str):
            self.password = admin["secret"]
        return reply({"device_id": self.state.device_id, "message": SUCCESS,
                      "reboot_required": reboot, "restart_required": restart})

    # one operation on the pod; two actions in the spec (network changes ask for confirmation)
    on_network_config_update = on_config_update

    async def on_legacy_config_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self.state.v1_config())

    async def on_hdmi_input_set(self, ctx: Ctx) -> web.StreamResponse:
        data = self._object(ctx)
        if not isinstance(data.get("force_off"), bool):
            raise errors(400, "invalid_request", "force_off must be a boolean")
        self.state.hdmi_forced_off = data["force_off"]
        return reply({"message": SUCCESS})

    # -- v2: splash images ----------------------------------------------------------------------------

    def _slot(self, ctx: Ctx) -> tuple[int, str]:
        position, aspect = ctx.path_params["position"], ctx.path_params["aspect"]
        if not position.isdigit() or int(position) >= SPLASH_SLOTS:
            raise errors(400, "invalid_request", f"position must be 0..{SPLASH_SLOTS - 1}")
        if aspect not in ASPECTS:
            raise errors(400, "invalid_request", f"aspect must be one of {', '.join(ASPECTS)}")
        return int(position), aspect

    async def on_splash_image_get(self, ctx: Ctx) -> web.StreamResponse:
        slot = self._slot(ctx)
        data = self.state.images.get(slot)
        if data is None:
            raise errors(400, "invalid_request", "no image at this position and aspect")
        return reply_bytes(data, "image/jpeg", filename=f"splash-{slot[0]}-{slot[1]}.jpg")

    async def on_splash_image_upload(self, ctx: Ctx) -> web.StreamResponse:
        slot = self._slot(ctx)
        if not ctx.body.startswith(JPEG_MAGIC):
            raise errors(400, "invalid_request", "body is not a JPEG image")
        self.state.store_image(*slot, ctx.body)
        return web.Response(status=200)

    # -- v2: calendar ---------------------------------------------------------------------------------

    async def on_calendar_list(self, ctx: Ctx) -> web.StreamResponse:
        return reply({"meetings": self.state.sorted_meetings()})

    @staticmethod
    def _meeting_fields(data: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("title", "organizer", "description"):
            if key in data:
                if not isinstance(data[key], str):
                    raise errors(400, "invalid_request", f"{key} must be a string")
                out[key] = data[key]
        for key in ("start_time", "end_time"):
            if key in data:
                if not isinstance(data[key], int) or isinstance(data[key], bool):
                    raise errors(400, "invalid_request", f"{key} must be an integer (Unix seconds)")
                out[key] = data[key]
        return out

    async def on_calendar_add(self, ctx: Ctx) -> web.StreamResponse:
        self._single_calendar_writes_allowed()
        # every field is optional in seed 004's table (its own sample posts no body)
        fields = self._meeting_fields(self._object(ctx, required=False))
        meeting_id = self.state.new_meeting_id()
        self.state.meetings[meeting_id] = {"id": meeting_id, "title": "", "organizer": "",
                                           "description": "", "start_time": 0, "end_time": 0, **fields}
        return reply({"id": meeting_id})

    async def on_calendar_set(self, ctx: Ctx) -> web.StreamResponse:
        data = self._object(ctx)
        meetings = data.get("meetings")
        if not isinstance(meetings, list):
            raise errors(400, "invalid_request", "meetings must be an array")
        stored: dict[str, dict[str, Any]] = {}
        for item in meetings:
            if not isinstance(item, dict):
                raise errors(400, "invalid_request", "each meeting must be an object")
            missing = [k for k in ("id", "title", "organizer", "start_time", "end_time") if k not in item]
            if missing or not isinstance(item.get("id"), str):
                raise errors(400, "invalid_request", f"meeting lacks {', '.join(missing) or 'a string id'}")
            stored[item["id"]] = {"id": item["id"], "description": "", **self._meeting_fields(item)}
        self.state.meetings = stored
        return success(self.state)

    async def on_calendar_clear(self, ctx: Ctx) -> web.StreamResponse:
        self.state.meetings.clear()
        return success(self.state)

    def _meeting(self, ctx: Ctx) -> dict[str, Any]:
        meeting = self.state.meetings.get(ctx.path_params["id"])
        if meeting is None:
            raise errors(500, "internal", "Failed to find meeting")  # as seed 004's example
        return meeting

    async def on_calendar_meeting_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self._meeting(ctx))

    async def on_calendar_meeting_delete(self, ctx: Ctx) -> web.StreamResponse:
        self._single_calendar_writes_allowed()
        meeting = self._meeting(ctx)
        del self.state.meetings[meeting["id"]]
        return success(self.state)

    async def on_calendar_meeting_update(self, ctx: Ctx) -> web.StreamResponse:
        self._single_calendar_writes_allowed()
        meeting = self._meeting(ctx)
        data = self._object(ctx)
        if "id" in data and data["id"] != meeting["id"]:
            raise errors(400, "invalid_request", "the meeting id cannot be changed")
        meeting.update(self._meeting_fields(data))
        return success(self.state)

    # -- v2: cameras ----------------------------------------------------------------------------------

    async def on_camera_status_get(self, ctx: Ctx) -> web.StreamResponse:
        if not self.state.cameras:
            return web.Response(status=404)
        return reply({"updateStatus": self.state.camera_status()})

    def _camera(self, ctx: Ctx) -> str:
        guid = ctx.path_params["guid"].lower()
        if guid not in self.state.cameras:
            raise errors(404, "not_found", "unknown camera specified!")
        return guid

    async def on_camera_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self.state.cameras[self._camera(ctx)].versions)

    async def on_camera_firmware_update(self, ctx: Ctx) -> web.StreamResponse:
        guid = self._camera(ctx)
        data = self._object(ctx)
        if not isinstance(data.get("forceUpdate"), bool):
            raise errors(400, "invalid_request", "forceUpdate must be a boolean")
        if data["forceUpdate"] or self.state.cameras[guid].versions["updateAvailable"]:
            self.state.start_camera_update(guid)
        return web.Response(status=200)

    # -- v2: info, screen key, metadata -------------------------------------------------------------

    async def on_info_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self.state.info(self.mac))

    async def on_screen_key_verify(self, ctx: Ctx) -> web.StreamResponse:
        data = self._object(ctx)
        key = data.get("screen_key")
        if not isinstance(key, str):
            raise errors(400, "invalid_request", "screen_key must be a string")
        return web.Response(status=200 if key == self.state.screen_key else 404)

    async def on_metadata_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply({"device_id": self.state.device_id})

    # -- v2: Active Routing -------------------------------------------------------------------------

    async def on_activerouting_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self.state.routing_session())

    async def on_activerouting_configure(self, ctx: Ctx) -> web.StreamResponse:
        data = self._object(ctx)
        unknown = set(data) - set(self.state.routing)
        if unknown:
            raise errors(400, "invalid_request", f"unknown keys: {', '.join(sorted(unknown))}")
        self.state.routing.update(data)
        return reply({"message": SUCCESS})

    async def on_activerouting_licensing_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply({"licensed": True, "trial": False, "subscription": True})

    async def on_activerouting_connections_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply({"connections": self.state.routing_connections()})

    async def on_activerouting_connect(self, ctx: Ctx) -> web.StreamResponse:
        data = self._object(ctx)
        if not isinstance(data.get("sink"), str) or not data["sink"]:
            raise errors(400, "invalid_request", "sink must name a pod")
        self.state.routes = [r for r in self.state.routes if r["sink"] != data["sink"]] + [data]
        return reply({"message": SUCCESS})

    async def on_activerouting_disconnect(self, ctx: Ctx) -> web.StreamResponse:
        self.state.routes = []
        return reply({"message": SUCCESS})

    # -- v1 -------------------------------------------------------------------------------------------

    def _v1_body(self, ctx: Ctx) -> dict[str, Any]:
        data = self._object(ctx)
        data.pop("password", None)
        return data

    async def on_v1_config_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self.state.v1_config())

    async def on_v1_config_update(self, ctx: Ctx) -> web.StreamResponse:
        new_password = self.state.apply_v1_config(self._v1_body(ctx))
        if new_password is not None:
            self.password = new_password
            self.state.set_admin_password(new_password)
        # a pod answers a v1 config POST with its flags, camelCase: the OpenControl API 1.0 Guide's
        # curl transcript of POST /api/config/hdmi_input (copy in daneabernathy/Simple-Mersive-
        # Solstice-Commands APIdocumentation.md) shows {"rebootRequired":false, "restartRequired": false}
        return reply({"rebootRequired": self.state.reboot_required,
                      "restartRequired": self.state.restart_required})

    on_v1_network_config_update = on_v1_config_update

    def _v1_splash(self, ctx: Ctx, slot: int | None) -> web.StreamResponse:
        content_type = ctx.request.headers.get("Content-Type", "")
        fields = _v1_fields(content_type, ctx.body)
        if "file" not in fields:
            raise HTTPError(400, {"error": "field 'file' missing"})
        data = fields["file"]
        if data.strip() == b"reset default":
            self.state.v1_splash[slot] = None
            # AVI-SPL's Pod Gen3 adapter (`sendCommandSetDefaultBackground`) takes only this answer
            # as success; no source shows the answer to an image upload, left empty
            return reply({"result": "Success"})
        if not content_type.startswith("multipart/"):
            raise HTTPError(400, {"error": "an image travels as a multipart field 'file'"})
        self.state.v1_splash[slot] = data
        return web.Response(status=200)

    async def on_v1_splash_background_set(self, ctx: Ctx) -> web.StreamResponse:
        return self._v1_splash(ctx, None)

    on_v1_splash_background_reset = on_v1_splash_background_set

    async def on_v1_splash_slot_set(self, ctx: Ctx) -> web.StreamResponse:
        slot = ctx.path_params["slot"]
        if not slot.isdigit() or int(slot) >= SPLASH_SLOTS:
            raise HTTPError(400, {"error": "slot must be 0..5"})
        return self._v1_splash(ctx, int(slot))

    on_v1_splash_slot_reset = on_v1_splash_slot_set

    async def on_v1_stats_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self.state.v1_stats())

    async def on_v1_control_clear(self, ctx: Ctx) -> web.StreamResponse:
        self.state.post_count = 0
        return web.Response(status=200)

    async def on_v1_control_boot(self, ctx: Ctx) -> web.StreamResponse:
        self.state.post_count = 0
        self.state.connected_users = 0
        return web.Response(status=200)

    async def on_v1_control_restart(self, ctx: Ctx) -> web.StreamResponse:
        self.state.post_count = 0
        self.state.connected_users = 0
        self.state.restart_required = False
        self.state.restarts += 1
        return web.Response(status=200)

    async def on_v1_control_reboot(self, ctx: Ctx) -> web.StreamResponse:
        self.state.post_count = 0
        self.state.connected_users = 0
        self.state.reboot_required = False
        self.state.restart_required = False
        self.reboot()
        return web.Response(status=200)

    async def on_v1_control_resetkey(self, ctx: Ctx) -> web.StreamResponse:
        old = self.state.screen_key
        while self.state.screen_key == old:
            self.state.screen_key = f"{self.random.randrange(10000):04d}"
        return web.Response(status=200)

    async def on_v1_control_suspend(self, ctx: Ctx) -> web.StreamResponse:
        self.state.display_suspended = True
        return web.Response(status=200)

    async def on_v1_control_wake(self, ctx: Ctx) -> web.StreamResponse:
        self.state.display_suspended = False
        return web.Response(status=200)

    @staticmethod
    def _v1_item(meeting: dict[str, Any]) -> dict[str, Any]:
        return {"id": meeting["id"], "startTime": meeting.get("start_time", 0),
                "endTime": meeting.get("end_time", 0), "title": meeting.get("title", ""),
                "organizer": meeting.get("organizer", "")}

    async def on_v1_calendar_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply({"calendarItems": [self._v1_item(m) for m in self.state.sorted_meetings()]})

    @staticmethod
    def _from_v1(item: dict[str, Any], meeting_id: str) -> dict[str, Any]:
        for key in ("startTime", "endTime"):
            if not isinstance(item.get(key), int) or isinstance(item.get(key), bool):
                raise errors(400, "invalid_request", f"{key} must be an integer (Unix seconds)")
        return {"id": meeting_id, "title": str(item.get("title", "")),
                "organizer": str(item.get("organizer", "")), "description": "",
                "start_time": item["startTime"], "end_time": item["endTime"]}

    async def on_v1_calendar_set(self, ctx: Ctx) -> web.StreamResponse:
        items = self._v1_body(ctx).get("calendarItems")
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise errors(400, "invalid_request", "calendarItems must be an array of objects")
        meetings = {}
        for item in items:
            meeting_id = str(item.get("id") or self.state.new_meeting_id())
            meetings[meeting_id] = self._from_v1(item, meeting_id)
        self.state.meetings = meetings
        return web.Response(status=200)

    async def on_v1_calendar_clear(self, ctx: Ctx) -> web.StreamResponse:
        self.state.meetings.clear()
        return web.Response(status=200)

    async def on_v1_calendar_add(self, ctx: Ctx) -> web.StreamResponse:
        self._single_calendar_writes_allowed()
        data = self._v1_body(ctx)
        missing = [k for k in ("startTime", "endTime", "title", "organizer") if k not in data]
        if missing:
            raise errors(400, "invalid_request", f"missing {', '.join(missing)}")
        meeting_id = self.state.new_meeting_id()
        self.state.meetings[meeting_id] = self._from_v1(data, meeting_id)
        return reply({"id": meeting_id})

    async def on_v1_calendar_delete(self, ctx: Ctx) -> web.StreamResponse:
        self._single_calendar_writes_allowed()
        meeting_id = self._v1_body(ctx).get("id")
        if self.state.meetings.pop(str(meeting_id), None) is None:
            raise errors(400, "invalid_request", "no meeting with this id")
        return web.Response(status=200)

    async def on_v1_version_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply({"currentVersion": self.state.firmware})

    async def on_v1_update_available_get(self, ctx: Ctx) -> web.StreamResponse:
        target = self.state.update_available_to
        return reply({"isUpdateAvailable": target is not None,
                      **({"updateAvailableTo": target} if target else {})})

    async def on_v1_update_start(self, ctx: Ctx) -> web.StreamResponse:
        if self.state.update_available_to is not None:
            self.state.firmware = self.state.update_available_to
            self.state.update_available_to = None
            self.reboot()
        return web.Response(status=200)

    async def on_v1_discover(self, ctx: Ctx) -> web.StreamResponse:
        return reply({
            "name": self.state.config["display"]["name"], "id": self.state.device_id, "ipv4": self.host,
            "port": 53100, "user_count": self.state.connected_users, "locked": False,
            "airplay_enabled": self.state.config["sharing"]["airplay"]["enabled"],
            "session_capable": True, "in_session": self.state.connected_users > 0, "tags": [],
            "session_name": "", "synced_display_ids": [],
        })

    async def on_v1_serial_send(self, ctx: Ctx) -> web.StreamResponse:
        data = ctx.query.get("data")
        if not data:
            raise HTTPError(400, {"error": "data missing"})
        self.state.serial_sent.append(data)
        return web.Response(status=200)


__all__ = ["EmulatedSolstice"]
