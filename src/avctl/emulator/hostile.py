"""A hostile device for tests: one switch per misbehaviour, served over HTTPS and HTTP on loopback.

    with HostileDevice() as dev:
        dev.hostility.gzip_bomb = 1 << 30          # settable while it runs
        await Device("videoos", dev.address("https"), ...).call("audio_get")

It speaks just enough of each family's login for the hostile answer to reach the action: VideoOS
`POST /rest/session` sets a `session_id` cookie, Solstice `POST /v2/token` issues a JWT, Poly UC
Basic is accepted as sent. Every other request gets the answer the switches describe (the first
switch that is set, in the order of the fields below); with none set it answers `{"ok": true}`.
Large answers are generated while they are written, never built in memory. Requests are recorded,
bounded (`requests` keeps the last 256, bodies cut at 4 KiB).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import socket
import threading
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from avctl.emulator.certs import make_certificate, server_context

CHUNK = 1 << 16
#: JSON strings that drive a terminal: colour, OSC 8 hyperlink, OSC 52 clipboard write, bell, CR
ESCAPES = "\x1b[31mred\x1b[0m \x1b]8;;http://evil.example/\x07link\x1b]8;;\x07 \x1b]52;c;ZXZpbA==\x07 \x07bell\rover"


@dataclass
class Hostility:
    """What the device does wrong. Fields are read on every request, so tests may flip them live."""

    empty: bool = False  # an empty 200 for everything, logins included
    status: int = 200  # status of the hostile answer (e.g. 500 with `escapes` for error texts)
    not_json: bool = False  # an HTML page where JSON is expected
    nested_json: int = 0  # "[[[...]]]" this many levels deep
    escapes: bool = False  # JSON whose strings carry terminal escape sequences
    gzip_bomb: int = 0  # a compressed body that inflates to this many bytes
    encoding: str = "gzip"  # Content-Encoding of the bomb: gzip or deflate
    body_bytes: int = 0  # a body of this many bytes, with a Content-Length
    endless: bool = False  # a chunked body that never ends
    filename: str | None = None  # a small download named this in Content-Disposition
    cookie: str | None = None  # raw Set-Cookie value of the VideoOS login answer
    xsrf_header: str | None = None  # X-XSRF-Token header of the VideoOS login answer
    token: str | None = None  # raw access_token of the Solstice token answer
    jwt_exp: Any = None  # `exp` claim of the JWT it issues (None: year 2100)


@dataclass(frozen=True)
class Seen:
    method: str
    path_qs: str
    headers: dict[str, str]
    body: bytes


class HostileDevice:
    """The server, on its own loop in a background thread; `with` starts and stops it."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"a hostile device listens on loopback only, not {host}")
        self.host = host
        self.hostility = Hostility()
        self.requests: deque[Seen] = deque(maxlen=256)
        self.ports: dict[str, int] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="avctl-hostile", daemon=True)
        self._runner: web.AppRunner | None = None

    def address(self, scheme: str = "https") -> str:
        return f"{self.host}:{self.ports[scheme]}"

    def __enter__(self) -> HostileDevice:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        cert, key = make_certificate(self.host, "hostile")
        for scheme, ssl_context in (("https", server_context(cert, key)), ("http", None)):
            sock = socket.create_server((self.host, 0))
            self.ports[scheme] = sock.getsockname()[1]
            await web.SockSite(self._runner, sock, ssl_context=ssl_context).start()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.content.read(4096)
        self.requests.append(Seen(request.method, request.path_qs, dict(request.headers), body))
        h = self.hostility
        if h.empty:
            return web.Response()
        if request.method == "POST" and request.path in ("/rest/session", "/rest/current/session"):
            return self._videoos_login()
        if request.method == "POST" and request.path == "/v2/token":
            return web.json_response({"access_token": h.token or _jwt(h.jwt_exp), "token_type": "jwt"})
        if request.method == "DELETE" and request.path == "/rest/session":
            return web.Response(status=204)
        return await self._answer(request)

    def _videoos_login(self) -> web.Response:
        h = self.hostility
        response = web.json_response({"success": True})
        response.headers.add("Set-Cookie", h.cookie or "session_id=hostile-session; Path=/; Secure; HttpOnly")
        if h.xsrf_header is not None:
            response.headers["X-XSRF-Token"] = h.xsrf_header
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        h = self.hostility
        if h.not_json:
            return web.Response(status=h.status, text="<html><body>It works!</body></html>", content_type="text/html")
        if h.nested_json:
            return web.Response(status=h.status, body=b"[" * h.nested_json + b"]" * h.nested_json,
                                content_type="application/json")
        if h.escapes:
            return web.json_response({"reason": ESCAPES, "message": ESCAPES, "model": ESCAPES,
                                      "data": {"name": ESCAPES, "Status": "2000"}}, status=h.status)
        if h.gzip_bomb:
            return await self._stream(request, _bomb(h.gzip_bomb, h.encoding), {"Content-Encoding": h.encoding})
        if h.body_bytes:
            return await self._stream(request, _zeros(h.body_bytes), {}, length=h.body_bytes)
        if h.endless:
            return await self._stream(request, _zeros(None), {})
        if h.filename is not None:
            disposition = f"attachment; filename*=UTF-8''{quote(h.filename, safe='')}"
            return web.Response(status=h.status, body=b"hostile download\n",
                                headers={"Content-Disposition": disposition})
        return web.json_response({"ok": True}, status=h.status)

    async def _stream(self, request: web.Request, chunks: Any, headers: dict[str, str],
                      length: int | None = None) -> web.StreamResponse:
        response = web.StreamResponse(status=self.hostility.status, headers=headers)
        response.content_type = "application/json"
        if length is not None:
            response.content_length = length
        await response.prepare(request)
        try:
            for chunk in chunks:
                await response.write(chunk)
                # a write into a connection the client dropped neither blocks nor fails under TLS:
                # yield, so the loss is noticed and the next write raises
                await asyncio.sleep(0)
        except ConnectionError:
            pass  # the client stopped reading: what a cap should make it do
        return response


def _zeros(total: int | None) -> Any:
    """`total` bytes of ASCII '0' in chunks (None: without end)."""
    block = b"0" * CHUNK
    sent = 0
    while total is None or sent < total:
        n = CHUNK if total is None else min(CHUNK, total - sent)
        sent += n
        yield block[:n]


def _bomb(inflated: int, encoding: str) -> Any:
    """A gzip or zlib stream that inflates to `inflated` bytes, compressed as it is sent (~1:1000)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31 if encoding == "gzip" else 15)
    for chunk in _zeros(inflated):
        out = compressor.compress(chunk)
        if out:
            yield out
    yield compressor.flush()


def _jwt(exp: Any) -> str:
    """An unsigned-looking HS256 JWT whose `exp` is whatever the test asks for."""
    def part(data: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    claims = {"sub": "admin", "exp": 4102444800 if exp is None else exp}
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.{part('signature')}"


__all__ = ["ESCAPES", "HostileDevice", "Hostility", "Seen"]
