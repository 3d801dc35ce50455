"""``avctl mcp`` running: the context, the MCP server, and its transport (stdio, or streamable HTTP).

Over HTTP every request needs ``Authorization: Bearer TOKEN``: a server API token (its user's role
and sites apply) or the operator's token given through the environment or a file. Plain HTTP is
served on loopback only; anything else needs the operator's certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import uvicorn
from mcp.server.stdio import stdio_server

from avctl.errors import UsageError
from avctl.families.registry import family_names
from avctl.fleet.jobs import spec_provider
from avctl.mcp import identity
from avctl.mcp.schemas import Catalogue
from avctl.mcp.server import McpApp, instructions_for
from avctl.mcp.settings import McpSettings
from avctl.mcp.tools import Tools
from avctl.server.access import tokens
from avctl.server.listening import serve_until_stopped
from avctl.server.standalone import Standalone, standalone_context
from avctl.server.tls import ServerTLS, is_loopback, user_tls

log = logging.getLogger("avctl.mcp")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: where the streamable HTTP transport answers
HTTP_PATH = "/mcp"


@dataclass(frozen=True)
class Listen:
    host: str
    port: int
    #: the operator's own bearer token (--token-env / --token-file); None: server API tokens only
    token: str | None = None
    cert: str | None = None
    key: str | None = None

    def tls(self) -> ServerTLS | None:
        """The certificate pair, checked now; plain HTTP only on a loopback address."""
        if self.cert and self.key:
            return user_tls(self.cert, self.key)
        if not is_loopback(self.host):
            raise UsageError(f"--listen {self.host}: plain HTTP beyond loopback would send bearer tokens in clear",
                             hint="give --tls-cert and --tls-key (PEM) to serve HTTPS, or listen on 127.0.0.1")
        return None


class BearerAuth:
    """Every HTTP request carries a bearer token: the operator's, or a server API token (its user)."""

    def __init__(self, app: ASGIApp, stand: Standalone, token: str | None) -> None:
        self.app = app
        self.stand = stand
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), b"").decode("latin-1")
        scheme, _, value = header.partition(" ")
        value = value.strip()
        who: object = None
        if scheme.lower() == "bearer" and value:
            if self.token is not None and hmac.compare_digest(value.encode(), self.token.encode()):
                who = "operator"
            else:
                who = await asyncio.to_thread(tokens.authenticate, self.stand.ctx.db, value)
        if who is None:
            await _unauthorized(send, "a bearer token is required" if not value else "invalid bearer token")
            return
        if who != "operator":
            scope = {**scope, identity.SCOPE_KEY: who}
        await self.app(scope, receive, send)


async def _unauthorized(send: Send, message: str) -> None:
    body = json.dumps({"error": message, "hint": "send Authorization: Bearer TOKEN (avctl tokens create, or the "
                                                 "token given to avctl mcp)"}).encode()
    await send({"type": "http.response.start", "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"www-authenticate", b'Bearer realm="avctl"')]})
    await send({"type": "http.response.body", "body": body})


def _app(stand: Standalone, settings: McpSettings) -> McpApp:
    ctx = stand.ctx
    catalogue = Catalogue.load(family_names(), spec_provider(ctx.spec_overrides))
    return McpApp(Tools(ctx, settings, catalogue), catalogue,
                  instructions=instructions_for(settings.mode, len(ctx.inventory())))


async def serve(inventory: str, db: str | None, settings: McpSettings, listen: Listen | None = None, *,
                ready: Callable[[str], None] = lambda _line: None) -> None:
    """Serve until the client closes stdin (stdio) or the process is stopped (HTTP)."""
    tls = listen.tls() if listen is not None else None
    stand = standalone_context(inventory, db)
    watch = asyncio.create_task(stand.watcher.run(), name="avctl-mcp-inventory")
    try:
        app = _app(stand, settings)
        devices = len(stand.ctx.inventory())
        if listen is None:
            ready(f"avctl mcp: ready: {devices} devices from {inventory}, over stdio ({settings.mode})")
            server = app.server()
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())
        else:
            await _serve_http(app, stand, listen, tls, settings, devices, ready)
    finally:
        watch.cancel()
        with contextlib.suppress(BaseException):
            await watch
        await stand.executor.stop()  # running jobs end interrupted, resumable with avctl jobs resume
        stand.close()


async def _serve_http(app: McpApp, stand: Standalone, listen: Listen, tls: ServerTLS | None,
                      settings: McpSettings, devices: int, ready: Callable[[str], None]) -> None:
    web = app.server().streamable_http_app(streamable_http_path=HTTP_PATH, host=listen.host)
    options: dict[str, Any] = {}
    if tls is not None:
        options = {"ssl_certfile": str(tls.certfile), "ssl_keyfile": str(tls.keyfile)}
    config = uvicorn.Config(BearerAuth(web, stand, listen.token), host=listen.host, port=listen.port,
                            log_level="warning", access_log=False, lifespan="on", server_header=False,
                            proxy_headers=False, **options)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(serve_until_stopped(server, f"{listen.host}:{listen.port}"), name="avctl-mcp-http")
    while not server.started and not serving.done():
        await asyncio.sleep(0.05)
    if serving.done():
        serving.result()  # its UsageError
        raise UsageError(f"cannot listen on {listen.host}:{listen.port}")
    scheme = "https" if tls else "http"
    ready(f"avctl mcp: ready: {devices} devices, {scheme}://{listen.host}:{listen.port}{HTTP_PATH} "
          f"({settings.mode})")
    await serving
