"""The emulator framework: stateful fake devices served over real HTTP(S) sockets.

One `EmulatorServer` (one asyncio loop, one aiohttp app) hosts any number of devices of any family.
Each device listens on its own socket (its own loopback address or port) with its own certificate,
and keeps its own state. Routes come from the device's spec (every action and its `also_accepts`
forms); a family subclass of `EmulatedDevice` supplies the auth check and one `on_<action_id>`
handler per action. Requests are recorded so tests can assert that nothing was sent: the log is a
ring buffer (`request_log` entries per device, default 1,000; `requests.total` counts every request
ever seen) and keeps the first 64 KiB of each body (`Recorded.truncated` says when it kept less).

Bodies are capped before they are read: a `Content-Length` above the family's `max_body` is refused
unread, a chunked body is read only up to the cap; families that authenticate from headers alone
(`body_needed_for_auth`) refuse a request without credentials before reading its body. A body that is
not the JSON a handler expects (not UTF-8, not JSON, nested too deep, non-finite numbers) raises
`BadBody`, answered in the family's own error shape (`malformed_answer`); a handler that crashes
answers 500 in that shape too, never with a traceback.

Time: `device.clock` (default `time.monotonic`) is what lockout windows and periods read, so tests
move time forward instead of sleeping.

Fault switches (latency, error rate, dropped connections, session expiry, reboot downtime) are
plain attributes on `device.faults`, settable from tests while the server runs. Tests use the
count-based ones and plain switches (`fail_next`, `drop_next`, `lose_answer_next`,
`expire_at_request`, `paused`, `down`):
they give the same result however loaded the machine is, where a timer would race the latency.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import json
import logging
import random
import re
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, overload

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from avctl.emulator.certs import make_certificate, server_context
from avctl.emulator.profiled import ProfileOverlay
from avctl.errors import UsageError
from avctl.families import builtin_spec
from avctl.families.registry import find_plugin, get_plugin
from avctl.spec import Spec
from avctl.spec.model import Action

T = TypeVar("T")

#: aiohttp answers malformed HTTP (a bad chunk size, an over-long header) with 400 itself and would
#: log a traceback; an emulator under a fuzzer logs it here, silent unless someone adds a handler
_SERVER_LOG = logging.getLogger("avctl.emulator.server")
_SERVER_LOG.addHandler(logging.NullHandler())
_SERVER_LOG.propagate = False

#: requests kept per device (the oldest go first) and bytes kept of each body
DEFAULT_LOG_LIMIT = 1000
LOG_BODY_BYTES = 64 * 1024
#: the body cap of a family that does not declare its own
DEFAULT_MAX_BODY = 16 * 1024 * 1024


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
    down: bool = False  # taken down: every connection is closed unanswered until this is switched off


@dataclass
class Lockout:
    """Account lockout: `after` failed logins within `window` seconds (None: in a row, however far
    apart) lock the account for `seconds`; meanwhile every login is refused, even a right one. A
    successful login forgets earlier failures. `after=0` switches lockout off."""

    after: int = 5
    seconds: float = 60.0
    window: float | None = None
    until: float = 0.0
    failures: list[float] = field(default_factory=list)

    def locked(self, now: float) -> bool:
        return now < self.until

    def remaining(self, now: float) -> int:
        """Whole seconds left of the lockout (for the device's message)."""
        return max(0, int(self.until - now + 0.999))

    def fail(self, now: float) -> bool:
        """Count a failed login; True when it locks the account."""
        if self.window is not None:
            self.failures = [t for t in self.failures if now - t < self.window]
        self.failures.append(now)
        if not self.after or len(self.failures) < self.after:
            return False
        self.until, self.failures = now + self.seconds, []
        return True

    def succeed(self) -> int:
        """A successful login: forget the failures; returns how many there were."""
        count, self.failures = len(self.failures), []
        return count


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float
    peer: str = ""  # client address:port, so tests can see connection reuse
    size: int = 0  # bytes of the body as sent (or as declared, when it was refused unread)
    truncated: bool = False  # `body` holds less than `size` bytes (the log's cap, or not read at all)


class RequestLog:
    """The last `limit` requests of a device (a ring buffer) and the count of all ever seen."""

    def __init__(self, limit: int = DEFAULT_LOG_LIMIT) -> None:
        if limit < 1:
            raise UsageError(f"request_log must be at least 1, not {limit}")
        self._items: collections.deque[Recorded] = collections.deque(maxlen=limit)
        #: every request since the device started (or since `clear()`), kept or not
        self.total = 0

    @property
    def limit(self) -> int:
        return self._items.maxlen or 0

    def append(self, item: Recorded) -> None:
        self._items.append(item)
        self.total += 1

    def clear(self) -> None:
        self._items.clear()
        self.total = 0

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Recorded]:
        return iter(self._items)

    @overload
    def __getitem__(self, index: int) -> Recorded: ...
    @overload
    def __getitem__(self, index: slice) -> list[Recorded]: ...
    def __getitem__(self, index: int | slice) -> Recorded | list[Recorded]:
        if isinstance(index, slice):
            return list(self._items)[index]
        return self._items[index]

    def __eq__(self, other: object) -> bool:
        # tests compare with a list (`dev.requests == []`)
        if isinstance(other, RequestLog):
            return list(self._items) == list(other._items)
        if isinstance(other, list):
            return list(self._items) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RequestLog({len(self)} of {self.total}, limit {self.limit})"


@dataclass
class Ctx:
    """What a handler gets: the aiohttp request, the matched action, path params, parsed body."""

    request: web.Request
    action: Action
    path_params: dict[str, str]
    body: bytes
    #: the query a handler sees instead of the request's (a profile asks the device's own answer
    #: to a read it has on record, from inside another request)
    query_override: Mapping[str, str] | None = None

    @property
    def query(self) -> Any:
        return self.request.query if self.query_override is None else self.query_override

    def json(self) -> Any:
        """The body as JSON (None when empty); anything else raises `BadBody`."""
        return parse_json(self.body)


class BadBody(Exception):
    """A request body that is not what the handler takes; answered in the family's error shape."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise BadBody("number out of range")
    return value


def _no_constants(name: str) -> Any:
    raise BadBody(f"{name} is not JSON")


def parse_json(body: bytes) -> Any:
    """A request body as JSON, None when empty. Raises `BadBody` for anything a device would refuse:
    bytes that are not UTF-8, text that is not JSON, nesting deeper than the parser's stack,
    numbers out of range (1e999, NaN, Infinity, integers of more than 4,300 digits)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadBody("body is not UTF-8") from None
    if not text.strip():
        return None
    try:
        return json.loads(text, parse_float=_finite, parse_constant=_no_constants)
    except RecursionError:
        raise BadBody("body is nested too deeply") from None
    except ValueError:  # JSONDecodeError, and int() of too many digits
        raise BadBody("body is not JSON") from None


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
    #: the body cap when the spec declares no `max_body_bytes`
    default_max_body: ClassVar[int] = DEFAULT_MAX_BODY

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
        request_log: int | str = DEFAULT_LOG_LIMIT,
    ) -> None:
        self.spec = spec or builtin_spec(self.family)
        self.name = name
        self.host = host
        self.port = port
        self.scheme = scheme
        self.user = user or self.spec.transport.default_user or "admin"
        self.password = self.default_password if password is None else password
        self.faults = Faults()
        # `avctl emulate --set request_log=100` hands the value over as text
        self.requests = RequestLog(int(request_log))
        self.max_body = self.spec.transport.max_body_bytes or self.default_max_body
        #: what lockout windows and periods read; tests replace it to move time without sleeping
        self.clock: Callable[[], float] = time.monotonic
        #: handler crashes answered 500 (the last few, for tests: an emulator bug, not a device's)
        self.crashes: collections.deque[str] = collections.deque(maxlen=20)
        self.down_until = 0.0
        self.random = random.Random(seed or hash(name))
        self.started = time.time()
        self.router = _router(self.spec, self.ignore_case)
        self.cert_pem, self.key_pem = make_certificate(host, name)
        self.server: EmulatorServer | None = None
        #: more sockets of the same device: scheme -> port (0 = any free); filled in by the server
        self.extra_ports: dict[str, int] = {}
        #: a device profile this device answers reads from (`avctl emulate --profile`)
        self.overlay: ProfileOverlay | None = None

    # -- hooks for families --

    def normalize_path(self, path: str) -> str:
        return path

    async def authenticate(
        self, request: web.Request, action: Action | None, body: bytes
    ) -> web.StreamResponse | None:
        """Return a response to refuse the request, or None to let it through."""
        return None

    def body_needed_for_auth(self, request: web.Request, action: Action | None) -> bool:
        """Whether `authenticate` needs the body (a login form); if not, it runs before the body is
        read, with `body=b""`, so a request without credentials never gets its body read."""
        return True

    def malformed_answer(self, reason: str) -> web.StreamResponse:
        """The answer to a body that is not what the action takes (the family's 400 shape)."""
        return reply({"error": reason}, 400)

    def too_large_answer(self) -> web.StreamResponse:
        """The answer to a body over `max_body` (sent without reading the body)."""
        return reply({"error": f"request body larger than {self.max_body} bytes"}, 413)

    def crash_answer(self) -> web.StreamResponse:
        """The answer when a handler fails unexpectedly: a plain 500, never a traceback."""
        return reply({"error": "internal error"}, 500)

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
            **({"profile": self.overlay.describe()} if self.overlay is not None else {}),
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
        if self.overlay is not None:
            return await self.overlay.dispatch(self, ctx, handler)
        return await handler(ctx)


_DEVICE_CLASSES: dict[str, type[EmulatedDevice]] = {}


def register_emulator(cls: type[EmulatedDevice]) -> type[EmulatedDevice]:
    """Register an emulator from code (scripts, tests); a family that has one already is an error.

    A family plugin names its emulator itself (`FamilyPlugin.emulator`); this is for the rest.
    """
    current = _DEVICE_CLASSES.get(cls.family)
    plugin = find_plugin(cls.family)
    where = None
    if current is not None:
        where = f"{current.__module__}.{current.__qualname__}"
    elif plugin is not None and plugin.emulator:
        where = f"family plugin {cls.family!r} ({plugin.emulator})"
    if where is not None:
        raise UsageError(
            f"an emulator for family {cls.family!r} is registered twice: by {where} and by "
            f"{cls.__module__}.{cls.__qualname__}",
            hint="a family has one emulator",
        )
    _DEVICE_CLASSES[cls.family] = cls
    return cls


def emulator_class(family: str) -> type[EmulatedDevice]:
    """The emulator of `family`: registered from code, or named by its family plugin (imported now)."""
    if family not in _DEVICE_CLASSES:
        plugin = get_plugin(family)
        cls = plugin.load_emulator()
        if not (isinstance(cls, type) and issubclass(cls, EmulatedDevice)) or cls.family != family:
            raise UsageError(
                f"family plugin {family!r}: its emulator ({plugin.emulator}) is not an EmulatedDevice "
                f"subclass with family = {family!r}",
                hint="fix the plugin's emulator reference or the class's `family`",
            )
        _DEVICE_CLASSES[family] = cls
    return _DEVICE_CLASSES[family]


@dataclass
class _Listener:
    device: EmulatedDevice
    scheme: str
    port: int
    sock: socket.socket | None = None
    site: web.BaseSite | None = None


class EmulatorServer:
    """Hosts emulated devices. Use `async with` inside a loop, or `EmulatorThread` from sync code."""

    def __init__(self, request_log: int | None = None) -> None:
        #: the request log size of every device added (None: each device's own)
        self.request_log = request_log
        # bodies are read by `_read_capped` with each device's own cap, not by aiohttp
        self.app = web.Application(handler_args={"max_field_size": 65536})
        self.app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=0.1,
                                    logger=_SERVER_LOG)
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
        if self.request_log is not None:
            device.requests = RequestLog(self.request_log)
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
        if device.overlay is not None:
            await device.overlay.start(device)
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
        record = Recorded(
            request.method, request.path, request.query_string, dict(request.headers), b"", time.time(),
            _peer(request), size=request.content_length or 0, truncated=bool(request.content_length),
        )
        device.requests.append(record)
        headers = {"Server": device.server_header}
        try:
            response = await self._answer(device, request, record, headers)
        except HTTPError as exc:
            response = reply(exc.body, exc.status, {**headers, **exc.headers})
        except BadBody as exc:
            response = device.malformed_answer(exc.reason)
        except ConnectionError:  # the client left while its body was being read: nobody to answer
            _drop(request)
            return web.Response(status=503)
        except Exception as exc:  # an emulator bug must not hand a traceback to the client or stderr
            device.crashes.append(f"{request.method} {request.path}: {exc!r}")
            _SERVER_LOG.debug("%s: handler failed", device.name, exc_info=True)
            response = device.crash_answer()
        response.headers.setdefault("Server", device.server_header)
        return response

    async def _answer(
        self, device: EmulatedDevice, request: web.Request, record: Recorded, headers: dict[str, str]
    ) -> web.StreamResponse:
        """The fault switches first (tests look at what was sent, so a refused body is still logged),
        then the device's own answer."""
        if device.is_down or device.faults.down:
            await _read_into(record, request, device.max_body)
            _drop(request)
            return web.Response(status=503)
        faults = device.faults
        if faults.expire_at_request and device.requests.total == faults.expire_at_request:
            device.expire_sessions()
        if faults.latency:
            await asyncio.sleep(faults.latency)
        if faults.drop_next or (faults.drop_rate and device.random.random() < faults.drop_rate):
            faults.drop_next = max(0, faults.drop_next - 1)
            await _read_into(record, request, device.max_body)
            _drop(request)
            return web.Response(status=503)
        if faults.fail_next or (faults.error_rate and device.random.random() < faults.error_rate):
            faults.fail_next = max(0, faults.fail_next - 1)
            await _read_into(record, request, device.max_body)
            return reply({"error": "emulated server error"}, 500, headers)
        response = await self._respond(device, request, record, headers)
        if faults.lose_answer_next:
            faults.lose_answer_next -= 1
            _drop(request)  # the device acted; the client never learns it
            return web.Response(status=503)
        return response

    async def _respond(
        self, device: EmulatedDevice, request: web.Request, record: Recorded, headers: dict[str, str]
    ) -> web.StreamResponse:
        path = device.normalize_path(request.path)
        resolved = device.router.resolve(request.method, path)
        action = None if isinstance(resolved, int) else resolved[0]
        # auth first: a request without credentials learns nothing about which paths exist, and
        # (where headers alone decide) gets nothing read of its body
        early = not device.body_needed_for_auth(request, action)
        if early:
            refused = await device.authenticate(request, action, b"")
            if refused is not None:
                return await _unread(request, refused)
        if (request.content_length or 0) > device.max_body:
            return await _unread(request, device.too_large_answer())
        body = await _read_into(record, request, device.max_body)
        if body is None:
            return await _unread(request, device.too_large_answer())
        if not early:
            refused = await device.authenticate(request, action, body)
            if refused is not None:
                if device.overlay is not None and refused.status < 400:
                    # a login or logout answered by the auth layer: the sessions it changes are
                    # the client's, not a change in the room a profile should show
                    await device.overlay.absorb(device, request)
                return refused
        if isinstance(resolved, int):
            return reply(
                {"error": "no such endpoint"} if resolved == 404 else {"error": "method not allowed"},
                resolved,
                headers,
            )
        # a paused device has the whole request (as a real one would) and acts on it only when
        # released, even if the client gave up meanwhile
        while device.faults.paused:
            await asyncio.sleep(0.01)
        return await device.dispatch(Ctx(request, resolved[0], resolved[1], body))


async def _read_capped(request: web.Request, limit: int) -> bytes | None:
    """The body, or None as soon as it passes `limit` bytes (chunked bodies declare no length)."""
    chunks: list[bytes] = []
    total = 0
    try:
        async for chunk in request.content.iter_any():
            total += len(chunk)
            if total > limit:
                return None
            chunks.append(chunk)
    except HttpProcessingError:  # a broken chunked or compressed encoding
        raise BadBody("body encoding is malformed") from None
    return b"".join(chunks)


async def _read_into(record: Recorded, request: web.Request, limit: int) -> bytes | None:
    """Read the body (capped, see `_read_capped`) and log its first `LOG_BODY_BYTES`."""
    body = await _read_capped(request, limit)
    if body is not None:
        record.body, record.size = body[:LOG_BODY_BYTES], len(body)
        record.truncated = len(body) > LOG_BODY_BYTES
    return body


async def _unread(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """An answer given without reading the body: send it, then close the connection at once rather
    than drain (and wait for) a body nobody will read."""
    if request.can_read_body:
        response.force_close()
        await response.prepare(request)
        await response.write_eof()
        if request.protocol is not None:
            request.protocol.force_close()  # the written answer is flushed before the socket closes
    return response


def _peer(request: web.Request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return f"{peer[0]}:{peer[1]}" if peer else ""


def _drop(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort() if hasattr(request.transport, "abort") else request.transport.close()


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (127.0.0.0/8, ::1, "localhost"); names are not looked up."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name could resolve anywhere


def check_listen_address(host: str, allow_remote: bool) -> str | None:
    """Refuse a non-loopback `host` unless `allow_remote`; when allowed, the warning to print.

    Called before anything is bound: an emulator prints its credentials and accepts anyone's login,
    so serving it beyond this machine is a choice the user makes by name."""
    if is_loopback(host):
        return None
    if not allow_remote:
        raise UsageError(
            f"--host {host}: not a loopback address; an emulator prints its passwords and accepts "
            "connections from anyone who can reach it",
            hint="use 127.0.0.1 (or another 127.x.y.z), or add --allow-remote to serve the network",
        )
    return (
        f"WARNING: emulated devices listen on {host}, beyond this machine: anyone on the network can "
        "connect, and their passwords are printed here"
    )


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
    "BadBody",
    "Ctx",
    "EmulatedDevice",
    "EmulatorServer",
    "EmulatorThread",
    "Faults",
    "HTTPError",
    "Lockout",
    "RequestLog",
    "check_listen_address",
    "emulator_class",
    "is_loopback",
    "parse_json",
    "register_emulator",
    "reply",
    "reply_bytes",
    "ssl",
]
