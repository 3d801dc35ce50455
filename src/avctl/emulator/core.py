"""The emulator framework: stateful fake devices served over real HTTP(S) sockets.

One `EmulatorServer` (one asyncio loop, one aiohttp app) hosts any number of devices of any family.
Each device listens on its own socket (its own loopback address or port) with its own certificate,
and keeps its own state. Routes come from the device's spec (every action and its `also_accepts`
forms); a family subclass of `EmulatedDevice` supplies the auth check and one `on_<action_id>`
handler per action. Requests are recorded so tests can assert that nothing was sent.

Fault switches (latency, error rate, dropped connections, session expiry, reboot downtime) are
plain attributes on `device.faults`, settable from tests while the server runs. Tests use the
count-based ones (`fail_next`, `drop_next`, `lose_answer_next`, `expire_at_request`, `paused`):
they give the same result however loaded the machine is, where a timer would race the latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import random
import re
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from aiohttp import web

from avctl.emulator.certs import make_certificate, server_context
from avctl.errors import UsageError
from avctl.spec import Spec, builtin_spec
from avctl.spec.model import Action

T = TypeVar("T")


@dataclass
class Faults:
    latency: float = 0.0  # seconds added before every answer
    error_rate: float = 0.0  # share of requests answered with HTTP 500
    drop_rate: float = 0.0  # share of requests whose connection is closed without an answer
    reboot_seconds: float = 2.0  # how long a reboot keeps the device unreachable
    session_ttl: float | None = None  # sessions/tokens older than this many seconds expire
    # count-based faults: deterministic whatever the machine's load (tests never race timers)
    fail_next: int = 0  # the next N requests are answered with HTTP 500
    drop_next: int = 0  # the next N requests are dropped unanswered, before the device acts on them
    lose_answer_next: int = 0  # the next N requests are acted on, then dropped: the answer is lost
    expire_at_request: int = 0  # sessions expire just before the device's Nth request is handled
    paused: bool = False  # requests wait (unanswered) until this is switched off again


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float
    peer: str = ""  # client address:port, so tests can see connection reuse


@dataclass
class Ctx:
    """What a handler gets: the aiohttp request, the matched action, path params, parsed body."""

    request: web.Request
    action: Action
    path_params: dict[str, str]
    body: bytes

    @property
    def query(self) -> Any:
        return self.request.query

    def json(self) -> Any:
        """The body as JSON; a body that is not JSON raises `HTTPError(400)`."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            raise HTTPError(400, {"success": False, "reason": "body is not JSON"}) from None


class HTTPError(Exception):
    """Raised by handlers to answer with an error status and optional JSON body."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def reply(data: Any = None, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON answer (None -> empty body)."""
    if data is None:
        return web.Response(status=status, headers=headers)
    return web.Response(
        status=status, body=json.dumps(data).encode(), content_type="application/json", headers=headers
    )


def reply_bytes(
    data: bytes, content_type: str, filename: str | None = None, status: int = 200
) -> web.Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'} if filename else None
    return web.Response(status=status, body=data, content_type=content_type, headers=headers)


class Route:
    """A compiled spec path: literal segments beat placeholders, so `/near/all` wins over `/near/{id}`."""

    def __init__(self, method: str, path: str, action: Action, ignore_case: bool) -> None:
        self.method = method
        self.action = action
        self.names: list[str] = []
        pattern = ""
        for part in re.split(r"(\{[^}/]+\})", path):
            if part.startswith("{") and part.endswith("}"):
                self.names.append(part[1:-1])
                pattern += "([^/]+)"
            else:
                pattern += re.escape(part)
        self.regex = re.compile(f"^{pattern}/?$", re.IGNORECASE if ignore_case else 0)
        self.rank = (len(self.names), -len(path))

    def match(self, path: str) -> dict[str, str] | None:
        m = self.regex.match(path)
        if m is None:
            return None
        return dict(zip(self.names, m.groups(), strict=True))


class Router:
    def __init__(self, spec: Spec, ignore_case: bool = False) -> None:
        routes = []
        for action in spec.actions.values():
            if not action.method:
                continue
            routes.append(Route(action.method, action.path, action, ignore_case))
            routes.extend(Route(alt.method, alt.path, action, ignore_case) for alt in action.also_accepts)
        self.routes = sorted(routes, key=lambda r: r.rank)

    def resolve(self, method: str, path: str) -> tuple[Action, dict[str, str]] | int:
        """(action, path params), or 404/405 as the status to answer."""
        seen_path = False
        for route in self.routes:
            params = route.match(path)
            if params is None:
                continue
            if route.method == method:
                return route.action, params
            seen_path = True
        return 405 if seen_path else 404


_ROUTERS: dict[tuple[int, bool], tuple[Spec, Router]] = {}


def _router(spec: Spec, ignore_case: bool) -> Router:
    """Routers are shared by every device of a spec (a fleet of 10,000 compiles them once)."""
    key = (id(spec), ignore_case)
    cached = _ROUTERS.get(key)
    if cached is None or cached[0] is not spec:
        cached = _ROUTERS[key] = (spec, Router(spec, ignore_case))
    return cached[1]


class EmulatedDevice:
    """Base of every emulated device. Subclasses set `family`, implement `authenticate` and handlers."""

    family: ClassVar[str] = ""
    ignore_case: ClassVar[bool] = False
    default_password: ClassVar[str] = "avctl-emu"
    #: extra response headers (a real phone's Server header)
    server_header: ClassVar[str] = "avctl-emulator"

    def __init__(
        self,
        name: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        scheme: str = "https",
        password: str | None = None,
        user: str | None = None,
        spec: Spec | None = None,
        seed: int = 0,
    ) -> None:
        self.spec = spec or builtin_spec(self.family)
        self.name = name
        self.host = host
        self.port = port
        self.scheme = scheme
        self.user = user or self.spec.transport.default_user or "admin"
        self.password = self.default_password if password is None else password
        self.faults = Faults()
        self.requests: list[Recorded] = []
        self.down_until = 0.0
        self.random = random.Random(seed or hash(name))
        self.started = time.time()
        self.router = _router(self.spec, self.ignore_case)
        self.cert_pem, self.key_pem = make_certificate(host, name)
        self.server: EmulatorServer | None = None
        #: more sockets of the same device: scheme -> port (0 = any free); filled in by the server
        self.extra_ports: dict[str, int] = {}

    # -- hooks for families --

    def normalize_path(self, path: str) -> str:
        return path

    async def authenticate(
        self, request: web.Request, action: Action | None, body: bytes
    ) -> web.StreamResponse | None:
        """Return a response to refuse the request, or None to let it through."""
        return None

    def expire_sessions(self) -> None:
        """Fault switch: forget every session/token so the next call must log in again."""

    def reset_certificate(self) -> None:
        """A factory reset gives the device a new certificate (VideoOS does this)."""
        self.cert_pem, self.key_pem = make_certificate(self.host, self.name)

    def info(self) -> dict[str, Any]:
        """What `avctl emulate` prints for this device."""
        return {
            "name": self.name,
            "family": self.family,
            "address": f"{self.host}:{self.port}",
            "scheme": self.scheme,
            "user": self.user,
            "password": self.password,
        }

    # -- helpers for handlers --

    @property
    def is_down(self) -> bool:
        return time.monotonic() < self.down_until

    def reboot(self, seconds: float | None = None) -> None:
        """Become unreachable shortly after answering, for `seconds` (default: faults.reboot_seconds)."""
        if self.server is not None:
            self.server.schedule_down(self, self.faults.reboot_seconds if seconds is None else seconds)

    async def dispatch(self, ctx: Ctx) -> web.StreamResponse:
        handler: Callable[[Ctx], Awaitable[web.StreamResponse]] | None = getattr(
            self, f"on_{ctx.action.id}", None
        )
        if handler is None:
            return reply({"error": f"emulator has no handler for {ctx.action.id}"}, 501)
        return await handler(ctx)


_DEVICE_CLASSES: dict[str, type[EmulatedDevice]] = {}


def register_emulator(cls: type[EmulatedDevice]) -> type[EmulatedDevice]:
    _DEVICE_CLASSES[cls.family] = cls
    return cls


def emulator_class(family: str) -> type[EmulatedDevice]:
    if family not in _DEVICE_CLASSES:
        with contextlib.suppress(ModuleNotFoundError):
            importlib.import_module(f"avctl.emulator.{family}")
    try:
        return _DEVICE_CLASSES[family]
    except KeyError:
        raise UsageError(f"no emulator for family {family!r}") from None


@dataclass
class _Listener:
    device: EmulatedDevice
    scheme: str
    port: int
    sock: socket.socket | None = None
    site: web.BaseSite | None = None


class EmulatorServer:
    """Hosts emulated devices. Use `async with` inside a loop, or `EmulatorThread` from sync code."""

    def __init__(self) -> None:
        self.app = web.Application(client_max_size=1024**3, handler_args={"max_field_size": 65536})
        self.app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
        self._listeners: dict[tuple[str, int], _Listener] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: open client connections per device (weak: closed ones disappear by themselves)
        self._connections: dict[int, weakref.WeakSet[asyncio.Transport]] = {}
        self.devices: list[EmulatedDevice] = []
        self._started = False

    async def start(self) -> None:
        if not self._started:
            await self.runner.setup()
            self._started = True

    async def add(self, device: EmulatedDevice) -> EmulatedDevice:
        """Start serving `device` on its main socket and on any `extra_ports` (scheme -> port)."""
        await self.start()
        device.server = self
        self.devices.append(device)
        for scheme, port in [(device.scheme, device.port), *device.extra_ports.items()]:
            sock = _bind(device.host, port)
            listener = _Listener(device, scheme, sock.getsockname()[1], sock)
            if (scheme, port) == (device.scheme, device.port):
                device.port = listener.port
            else:
                device.extra_ports[scheme] = listener.port
            self._listeners[(device.host, listener.port)] = listener
            await self._open(listener)
        return device

    def _of(self, device: EmulatedDevice) -> list[_Listener]:
        return [item for item in self._listeners.values() if item.device is device]

    async def _open(self, listener: _Listener) -> None:
        device = listener.device
        if listener.sock is None:
            listener.sock = _bind(device.host, listener.port)
        ctx = server_context(device.cert_pem, device.key_pem) if listener.scheme == "https" else None
        site = web.SockSite(self.runner, listener.sock, ssl_context=ctx)
        await site.start()
        listener.site = site

    async def _close(self, listener: _Listener) -> None:
        if listener.site is not None:
            await listener.site.stop()
            listener.site = None
        if listener.sock is not None:
            listener.sock.close()
            listener.sock = None

    def schedule_down(self, device: EmulatedDevice, seconds: float) -> None:
        """Close every socket of `device` shortly, and reopen them after `seconds` (a reboot)."""
        device.down_until = float("inf")  # until the sockets are back: requests meanwhile are dropped

        async def cycle() -> None:
            await asyncio.sleep(0.1)  # let the answer to the reboot request leave first
            for listener in self._of(device):
                await self._close(listener)
            self._abort_connections(device)
            await asyncio.sleep(seconds)
            for listener in self._of(device):
                await self._open(listener)
            device.down_until = 0.0

        task = asyncio.get_running_loop().create_task(cycle())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def restart_listener(self, device: EmulatedDevice) -> None:
        """Re-open a device's sockets (e.g. with a new certificate after a reset)."""
        for listener in self._of(device):
            await self._close(listener)
        self._abort_connections(device)
        for listener in self._of(device):
            await self._open(listener)

    def _abort_connections(self, device: EmulatedDevice) -> None:
        """A device going down (or re-keying) drops its open keep-alive connections too."""
        for transport in list(self._connections.get(id(device), ())):
            transport.abort()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.runner.cleanup()
        for listener in self._listeners.values():
            if listener.sock is not None:
                listener.sock.close()

    async def __aenter__(self) -> EmulatorServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the one handler --

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        listener = self._listeners.get((sockname[0], sockname[1])) if sockname else None
        if listener is None:
            return web.Response(status=421, text="no emulated device on this address")
        device = listener.device
        if request.transport is not None:
            self._connections.setdefault(id(device), weakref.WeakSet()).add(request.transport)
        body = await request.read()
        device.requests.append(
            Recorded(
                request.method, request.path, request.query_string, dict(request.headers), body, time.time(),
                _peer(request),
            )
        )
        if device.is_down:
            _drop(request)
            return web.Response(status=503)
        faults = device.faults
        while faults.paused:
            await asyncio.sleep(0.01)
        if faults.expire_at_request and len(device.requests) == faults.expire_at_request:
            device.expire_sessions()
        if faults.latency:
            await asyncio.sleep(faults.latency)
        if faults.drop_next or (faults.drop_rate and device.random.random() < faults.drop_rate):
            faults.drop_next = max(0, faults.drop_next - 1)
            _drop(request)
            return web.Response(status=503)
        headers = {"Server": device.server_header}
        if faults.fail_next or (faults.error_rate and device.random.random() < faults.error_rate):
            faults.fail_next = max(0, faults.fail_next - 1)
            return reply({"error": "emulated server error"}, 500, headers)
        response = await self._answer(device, request, body, headers)
        if faults.lose_answer_next:
            faults.lose_answer_next -= 1
            _drop(request)  # the device acted; the client never learns it
            return web.Response(status=503)
        return response

    async def _answer(self, device: EmulatedDevice, request: web.Request, body: bytes,
                      headers: dict[str, str]) -> web.StreamResponse:
        path = device.normalize_path(request.path)
        resolved = device.router.resolve(request.method, path)
        action = None if isinstance(resolved, int) else resolved[0]
        try:
            # auth first: a request without credentials learns nothing about which paths exist
            refused = await device.authenticate(request, action, body)
            if refused is not None:
                refused.headers.setdefault("Server", device.server_header)
                return refused
            if isinstance(resolved, int):
                return reply(
                    {"error": "no such endpoint"} if resolved == 404 else {"error": "method not allowed"},
                    resolved,
                    headers,
                )
            response = await device.dispatch(Ctx(request, resolved[0], resolved[1], body))
        except HTTPError as exc:
            return reply(exc.body, exc.status, {**headers, **exc.headers})
        response.headers.setdefault("Server", device.server_header)
        return response


def _peer(request: web.Request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return f"{peer[0]}:{peer[1]}" if peer else ""


def _drop(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort() if hasattr(request.transport, "abort") else request.transport.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror}", hint="pick another port or loopback address"
        ) from None
    sock.listen(256)
    sock.setblocking(False)
    return sock


class EmulatorThread:
    """Runs an `EmulatorServer` on its own loop in a background thread (tests, sync scripts, curl)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.server: EmulatorServer | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, name="avctl-emulator", daemon=True)

    def start(self) -> EmulatorThread:
        self._thread.start()
        self.server = self.run(_new_server())
        return self

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def add(self, device: EmulatedDevice) -> EmulatedDevice:
        assert self.server is not None
        return self.run(self.server.add(device))

    def spawn(self, family: str, count: int = 1, **kwargs: Any) -> list[EmulatedDevice]:
        cls = emulator_class(family)
        return [self.add(cls(f"{family}-{i + 1}", **kwargs)) for i in range(count)]

    def stop(self) -> None:
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.run(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _new_server() -> EmulatorServer:
    server = EmulatorServer()
    await server.start()
    return server


__all__ = [
    "Ctx",
    "EmulatedDevice",
    "EmulatorServer",
    "EmulatorThread",
    "Faults",
    "HTTPError",
    "emulator_class",
    "register_emulator",
    "reply",
    "reply_bytes",
    "ssl",
]
