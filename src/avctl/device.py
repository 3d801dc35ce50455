"""`Device`: one device = a spec + an address + credentials + a transport.

    async with Device("videoos", "10.0.0.5", credentials=Credentials("admin", pw)) as dev:
        result = await dev.call("audio_volume_set", volume=50)

The call path is the brief's data flow: the spec's action validates the parameters (nothing is
sent on error), the request is built and wrapped by the family, the auth flow drives the
transport (login, XSRF, re-login), and the family turns the response into a `Result` or raises.

The spec's Feedbacks and Macros are capabilities of every device (`avctl.capabilities`):
``await dev.status()`` -> `Status`, ``await dev.run_verb("volume", volume=30)``; ``dev.verbs`` and
``dev.feedbacks`` list what the spec offers. They call through `call`, like any caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from avctl.auth import Auth, Credentials, make_auth
from avctl.capabilities import (
    Busy,
    Status,
    Verb,
    each_values,
    feedbacks_of,
    read_busy,
    read_status,
    verb_steps,
    verbs_of,
)
from avctl.durations import MAX_REQUEST_TIMEOUT, check_seconds
from avctl.errors import AvctlError, CleartextRefused, UsageError
from avctl.families import Family, builtin_spec, get_family
from avctl.request import Request, Response, build_request
from avctl.retry import RetryPolicy
from avctl.spec import Action, Spec, validate
from avctl.spec.model import Feedback
from avctl.transport.address import parse_address as _parse_address
from avctl.transport.http import Endpoint, HttpTransport, Transport
from avctl.transport.tls import TLSPolicy


@dataclass(frozen=True)
class Result:
    """What one action returned. `data` is parsed JSON (envelope removed) or text; `file` a download."""

    device: str
    action: str
    status: int
    data: Any = None
    file: Path | None = None
    elapsed: float = 0.0
    info: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "action": self.action,
            "status": self.status,
            "data": self.data,
            "file": str(self.file) if self.file else None,
            "elapsed": round(self.elapsed, 4),
            **({"info": dict(self.info)} if self.info else {}),
        }


@dataclass(frozen=True)
class CallEvent:
    """One finished `Device.call` (after its retries), as the device's ``on_call`` hook sees it.

    ``params`` are the caller's values (spec-marked secrets unmasked: mask them with
    ``action.public_values(params)`` before recording); exactly one of ``result`` / ``error`` is set.
    """

    device: str
    action: Action
    params: Mapping[str, Any]
    result: Result | None = None
    error: Exception | None = None


#: called once per finished call; an exception it raises propagates from that call
CallHook = Callable[[CallEvent], None]
SendHook = Callable[[Action], None]


def parse_address(address: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]:port` -> (host, port); see avctl.transport.address."""
    try:
        addr = _parse_address(address)
    except ValueError as exc:
        raise UsageError(f"bad address: {exc}", hint="use HOST, HOST:PORT or [IPv6]:PORT") from None
    if addr.scheme:
        raise UsageError(f"bad address {str(addr)!r}: give the scheme with --scheme, not in the address",
                         hint=f"e.g. --scheme {addr.scheme} {addr}")
    return addr.host, addr.port


class Device:
    """A device reached through its family's spec. Use as an async context manager, or call close()."""

    def __init__(
        self,
        spec: Spec | str,
        host: str,
        *,
        port: int | None = None,
        scheme: str | None = None,
        credentials: Credentials | None = None,
        transport: Transport | None = None,
        tls: TLSPolicy | None = None,
        timeout: float = 15.0,
        name: str | None = None,
        ports: Mapping[str, int] | None = None,
        schemes: Mapping[str, str] | None = None,
        allow_cleartext: bool = False,
        max_response_bytes: int | None = None,
        max_download_bytes: int | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_call: CallHook | None = None,
        on_send: SendHook | None = None,
    ) -> None:
        self.spec = builtin_spec(spec) if isinstance(spec, str) else spec
        self.family: Family = get_family(self.spec.family)
        h, p = parse_address(host)
        scheme = scheme or self.spec.transport.default_scheme
        self.endpoint = Endpoint(scheme, h, port or p or self.spec.transport.port_for(scheme))
        self.name = name or str(self.endpoint)
        #: per-scheme port overrides for actions that name their own scheme (Solstice v1 on http)
        self.ports: Mapping[str, int] = dict(ports) if ports else _NO_OVERRIDES
        #: per-scheme scheme overrides, e.g. {"http": "https"} for a legacy API moved behind TLS
        self.schemes: Mapping[str, str] = dict(schemes) if schemes else _NO_OVERRIDES
        #: the user's opt-in, by name, to secrets (passwords, tokens, cookies) over plain HTTP
        self.allow_cleartext = allow_cleartext
        creds = credentials or Credentials()
        if creds.user is None and self.spec.transport.default_user:
            creds = Credentials(self.spec.transport.default_user, creds.password)
        self.credentials = creds
        self._own_transport = transport is None
        self.transport: Transport = transport or HttpTransport(tls)
        self.timeout = check_seconds("timeout", timeout, maximum=MAX_REQUEST_TIMEOUT)
        #: which failures are retried and how often (the family's default unless given)
        self.retry = retry or self.family.retry
        self._sleep = sleep  # injectable: tests pass a no-op instead of waiting out the backoff
        self._rng = _JITTER  # one generator for all devices: a Random is 2.5 KB, a poller keeps 10,000 devices
        #: retries made so far (over every call); attempts of a call = 1 + its retries
        self.retries: int = 0
        #: caps on what the device may make us read (None: the spec's Transport block)
        self.max_response_bytes = _cap("max_response_bytes", max_response_bytes,
                                       self.spec.transport.max_response_bytes)
        self.max_download_bytes = _cap("max_download_bytes", max_download_bytes,
                                       self.spec.transport.max_download_bytes)
        self._auths: dict[str, Auth] = {}
        #: what a call without parameters is built from (`_ready`), none of it changed once the
        #: device is made: the spec (its id: the cache keeps the spec itself to check), the
        #: endpoint's scheme, `schemes` and `ports`, the caps
        self._alike = (id(self.spec), self.endpoint.scheme, tuple(sorted(self.schemes.items())),
                       tuple(sorted(self.ports.items())), self.max_response_bytes, self.max_download_bytes)
        # devices that handle one request at a time (Poly UC) get their calls queued here
        self._serial = asyncio.Lock() if self.spec.transport.serial_requests else None
        #: every request put on the wire, for diagnostics and the fleet's login accounting
        self.sent: int = 0
        #: told of every finished call, whichever path made it (a plain call, a status read, a verb's
        #: steps): a hook on the device rather than a call function handed to each capability, so a
        #: caller that must see every call (the fleet's audit of state-changing calls) cannot miss one
        self.on_call = on_call
        #: told each action whose own request is about to go out (after any login); if it raises,
        #: nothing is sent (the fleet journal records "sent" before a state-changing request)
        self.on_send = on_send

    def __repr__(self) -> str:
        # never the credentials: a repr ends up in logs and tracebacks
        state = "logged in" if any(a.logged_in for a in self._auths.values()) else "not logged in"
        return (f"<Device {self.spec.family or self.spec.id} {self.name!r} "
                f"{self.endpoint.scheme}://{self.endpoint} {state}>")

    # -- public API --

    def action(self, action_id: str) -> Action:
        return self.spec.action(action_id)

    def prepare(self, action_id: str, params: Mapping[str, Any]) -> tuple[Action, Request]:
        """Validate and build without sending (raises ValidationError; nothing leaves)."""
        action = self.spec.action(action_id)
        if not action.method:
            raise UsageError(
                f"{action_id} is a text-protocol command, not an HTTP action",
                hint="avctl calls HTTP actions only",
            )
        values = validate(action, params)
        request = build_request(action, values, max_body_bytes=self.spec.transport.max_body_bytes)
        if request.scheme and request.scheme in self.schemes:
            request = replace(request, scheme=self.schemes[request.scheme], port=None)
        if request.scheme and request.scheme in self.ports:
            request = replace(request, port=self.ports[request.scheme])
        elif request.scheme and request.port is None and request.scheme != self.endpoint.scheme:
            request = replace(request, port=self.spec.transport.port_for(request.scheme))
        return action, self.family.wrap(action, request)

    async def call(
        self, action_id: str, /, *, download_to: str | Path | None = None, overwrite: bool = False,
        **params: Any,
    ) -> Result:
        """Run one action. `download_to` (a file or folder) receives `response: file` bodies;
        an existing file there is replaced only with `overwrite=True`."""
        action = self.spec.action(action_id)
        try:
            result = await self._call(action, download_to, overwrite, params)
        except Exception as exc:
            self._emit(CallEvent(self.name, action, params, error=exc))
            raise
        self._emit(CallEvent(self.name, action, params, result=result))
        return result

    async def fetch(self, action_id: str, /, **params: Any) -> tuple[Request, Response]:
        """One read, sent once and returned raw (status, headers, body as the device sent them):
        what `avctl capture` records and `avctl conformance` compares. The request is the one the
        spec builds, before the auth flow adds credentials. Only queries that answer in memory:
        a change or a download never goes out this way."""
        action, request = self.prepare(action_id, params)
        if action.kind != "query" or action.response == "file":
            raise UsageError(f"{action_id} is not a read that answers in memory; fetch sends only those")
        return request, await self._send_serialised(action, request)

    async def probe(self, request: Request) -> Response:
        """`request` sent once exactly as given, without the auth flow: how the device answers a
        client that has no (or a made-up) session. For `avctl conformance`; never a login."""
        self._refuse_cleartext(request)
        self.sent += 1
        outgoing = replace(request, max_bytes=self.max_response_bytes, max_file_bytes=self.max_download_bytes)
        return await self.transport.send(self.endpoint, outgoing, timeout=self.timeout)

    async def status(self) -> Status:
        """What the device reports (its spec's Feedbacks), typed; see `avctl.capabilities.read_status`.

        Raises UsageError if the spec has no Feedbacks, the device's error if no query could be
        read, BadAnswer if no answer fits its declared type.
        """
        return await read_status(self.spec, self._data)

    async def busy(self) -> Busy:
        """Whether the device is in a call or sharing (only those readings are read), for the
        in-call guard; see `avctl.capabilities.read_busy`."""
        return await read_busy(self.spec, self._data)

    async def run_verb(
        self, verb: str, /, *, download_to: str | Path | None = None, overwrite: bool = False, **params: Any,
    ) -> tuple[Result, ...]:
        """Run the spec's Macro `verb`: its steps in order, one `Result` each. Every step is
        validated before the first is sent; `$placeholders` take the caller's `params`.

        A ``for_each`` step's query is read first (its `Result` comes first), then the step is
        sent once per item it lists (none: nothing to do)."""
        results: list[Result] = []
        calls: list[tuple[str, dict[str, Any]]] = []
        for step in verb_steps(self.spec, verb, params):
            if step.for_each is None:
                calls.append((step.action, step.values))
                continue
            listing = await self.call(step.for_each.action)
            results.append(listing)
            calls.extend((step.action, values) for values in each_values(self.spec, step, listing.data))
        for action_id, values in calls:
            self.prepare(action_id, values)
        for action_id, values in calls:
            results.append(await self.call(action_id, download_to=download_to, overwrite=overwrite, **values))
        return tuple(results)

    @property
    def verbs(self) -> dict[str, Verb]:
        """The verbs (Macros) this device's spec offers, by name."""
        return verbs_of(self.spec)

    @property
    def feedbacks(self) -> dict[str, Feedback]:
        """The readings `status()` reports (besides ``reachable``), by id."""
        return feedbacks_of(self.spec)

    async def _data(self, action_id: str) -> Any:
        return (await self.call(action_id)).data

    def _emit(self, event: CallEvent) -> None:
        if self.on_call is not None:
            self.on_call(event)

    async def _call(self, action: Action, download_to: str | Path | None, overwrite: bool,
                    params: Mapping[str, Any]) -> Result:
        action, request = self._ready(action.id) if not params else self._capped(self.prepare(action.id, params))
        if action.response == "file":
            target = Path(download_to) if download_to else Path.cwd()
            request = replace(request, stream_to=target, overwrite=overwrite)
        attempt = 1
        while True:
            reached: list[Request] = []  # the action's own request, once it is on the wire
            try:
                response = await self._send_serialised(action, request, reached)
                data = self.family.unwrap(action, response)
                break
            except AvctlError as exc:
                # the one retry loop (avctl.retry): the runner and `avctl call` only configure it
                if attempt >= self.retry.attempts or not self.retry.may_retry(exc, action, reached=bool(reached)):
                    raise
                await self._sleep(self.retry.delay(attempt, self._rng))
                attempt += 1
                self.retries += 1
        return Result(
            self.name,
            action.id,
            response.status,
            data,
            response.file,
            response.elapsed,
            self.family.result_info(action, data),
        )

    async def close(self) -> None:
        """Log out of every session (best effort) and release the transport if we own it."""
        for auth in self._auths.values():
            logout = auth.logout_request()
            if logout is not None and auth.logged_in:
                # closing must not fail because the device is gone
                with contextlib.suppress(Exception):
                    await self.transport.send(self.endpoint, logout, timeout=min(self.timeout, 5.0))
                auth.closed()  # a second close() sends nothing
        if self._own_transport:
            await self.transport.close()
        else:
            release = getattr(self.transport, "release", None)
            if release is not None:
                release(self.endpoint)

    async def __aenter__(self) -> Device:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- internals --

    def _capped(self, prepared: tuple[Action, Request]) -> tuple[Action, Request]:
        action, request = prepared
        return action, request.updated(max_bytes=self.max_response_bytes, max_file_bytes=self.max_download_bytes)

    def _ready(self, action_id: str) -> tuple[Action, Request]:
        """A call without parameters, validated and built once for all the devices that would build
        it alike (same spec, scheme, port and scheme overrides, caps): a poll sends the same few reads
        every minute for as long as the server runs. Shared, not per device: 10,000 devices would
        keep ~6 KB each of identical requests."""
        key = (action_id, *self._alike)
        known = _PREPARED.get(key)
        if known is not None and known[0] is self.spec:
            return known[1]
        ready = self._capped(self.prepare(action_id, {}))
        if len(_PREPARED) >= _MAX_PREPARED:  # specs made on the fly (tests, plugins): never a growing cache
            _PREPARED.clear()
        _PREPARED[key] = (self.spec, ready)
        return ready

    def auth_for(self, action: Action) -> Auth:
        name = action.auth or self.spec.transport.auth_type
        auth = self._auths.get(name)
        if auth is None:
            auth = self._auths[name] = make_auth(name, self.spec, self.credentials)
            auth.endpoint_scheme = self.endpoint.scheme
        return auth

    async def _send_serialised(self, action: Action, request: Request, reached: list[Request] | None = None
                               ) -> Response:
        if self._serial is None:
            return await self._send(action, request, reached)
        async with self._serial:
            return await self._send(action, request, reached)

    async def _send(self, action: Action, request: Request, reached: list[Request] | None = None) -> Response:
        flow = self.auth_for(action).flow(request)
        try:
            outgoing = await flow.__anext__()
            while True:
                self._refuse_cleartext(outgoing)
                self.sent += 1
                if (outgoing.max_bytes, outgoing.max_file_bytes) != (self.max_response_bytes,
                                                                      self.max_download_bytes):
                    outgoing = outgoing.updated(max_bytes=self.max_response_bytes,
                                                max_file_bytes=self.max_download_bytes)
                if outgoing.action_id:  # not a login: the action itself may now reach the device
                    if self.on_send is not None:
                        self.on_send(action)
                    if reached is not None:
                        reached.append(outgoing)
                response = await self.transport.send(self.endpoint, outgoing, timeout=self.timeout)
                try:
                    outgoing = await flow.asend(response)
                except StopAsyncIteration:
                    return response
        finally:
            await flow.aclose()

    def _refuse_cleartext(self, request: Request) -> None:
        """The one place that keeps secrets off plain HTTP: checked for every request, before it leaves."""
        scheme = request.scheme or self.endpoint.scheme
        if not request.carries_secret or scheme != "http" or self.allow_cleartext:
            return
        port = request.port or self.endpoint.port
        raise CleartextRefused(
            f"{self.name}: refusing to send {request.carries_secret} over plain HTTP "
            f"(http://{self.endpoint.host}:{port}); it was not sent",
            hint="use HTTPS, or opt in for this device: --allow-cleartext (avctl call, fleet commands), "
            "'allow_cleartext: true' in the inventory (defaults, site, group or device), "
            "or Device(..., allow_cleartext=True)",
        )


#: the retry jitter's random numbers (no device needs a sequence of its own)
_JITTER = random.Random()
#: the empty port and scheme overrides, one for every device without any (a poller keeps 10,000)
_NO_OVERRIDES: Mapping[Any, Any] = MappingProxyType({})
#: requests of calls without parameters, shared by the devices that build them alike (`Device._ready`)
_PREPARED: dict[tuple[Any, ...], tuple[Spec, tuple[Action, Request]]] = {}
_MAX_PREPARED = 4096


def _cap(name: str, given: int | None, default: int) -> int:
    if given is None:
        return default
    if isinstance(given, bool) or not isinstance(given, int) or given <= 0:
        raise UsageError(f"{name} must be a positive number of bytes, not {given!r}")
    return given


class SyncDevice:
    """Blocking `Device` for scripts, with the same parameters and capabilities::

        with SyncDevice("videoos", "10.0.0.5", credentials=Credentials("admin", pw)) as dev:
            dev.call("audio_volume_set", volume=50)
            print(dev.status().volume)

    Each instance runs its own event loop; do not use it inside a running loop (use `Device`).
    """

    def __init__(
        self,
        spec: Spec | str,
        host: str,
        *,
        port: int | None = None,
        scheme: str | None = None,
        credentials: Credentials | None = None,
        transport: Transport | None = None,
        tls: TLSPolicy | None = None,
        timeout: float = 15.0,
        name: str | None = None,
        ports: Mapping[str, int] | None = None,
        schemes: Mapping[str, str] | None = None,
        allow_cleartext: bool = False,
        max_response_bytes: int | None = None,
        max_download_bytes: int | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_call: CallHook | None = None,
        on_send: SendHook | None = None,
    ) -> None:
        async def make() -> Device:
            # built inside the loop that will run it (its locks and transport belong to that loop)
            return Device(spec, host, port=port, scheme=scheme, credentials=credentials, transport=transport,
                          tls=tls, timeout=timeout, name=name, ports=ports, schemes=schemes,
                          allow_cleartext=allow_cleartext, max_response_bytes=max_response_bytes,
                          max_download_bytes=max_download_bytes, retry=retry, sleep=sleep, on_call=on_call,
                          on_send=on_send)

        self._runner = asyncio.Runner()
        try:
            self._device: Device = self._runner.run(make())
        except BaseException:
            self._runner.close()
            raise

    @property
    def device(self) -> Device:
        return self._device

    def __repr__(self) -> str:
        return f"<Sync{repr(self._device)[1:]}"

    def prepare(self, action_id: str, params: Mapping[str, Any]) -> tuple[Action, Request]:
        return self._device.prepare(action_id, params)

    def call(self, action_id: str, /, *, download_to: str | Path | None = None, overwrite: bool = False,
             **params: Any) -> Result:
        return self._runner.run(self._device.call(action_id, download_to=download_to, overwrite=overwrite,
                                                  **params))

    def status(self) -> Status:
        return self._runner.run(self._device.status())

    def run_verb(self, verb: str, /, *, download_to: str | Path | None = None, overwrite: bool = False,
                 **params: Any) -> tuple[Result, ...]:
        return self._runner.run(self._device.run_verb(verb, download_to=download_to, overwrite=overwrite,
                                                      **params))

    @property
    def verbs(self) -> dict[str, Verb]:
        return self._device.verbs

    @property
    def feedbacks(self) -> dict[str, Feedback]:
        return self._device.feedbacks

    def close(self) -> None:
        try:
            self._runner.run(self._device.close())
        finally:
            self._runner.close()

    def __enter__(self) -> SyncDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
