"""Serving a device profile: an emulated device that answers every read as the captured one did.

A read the profile has on record (same method, path, query without credentials, body) is answered
with the recorded status, content type and body. State changes still work: around every other
request the overlay asks the emulator's own handlers for their answers to the recorded reads,
before and after, and remembers which parts changed (a mute, a call, a setting). From then on those
parts come from the emulator, the rest from the recording. A read the profile lacks is answered by
the emulator as usual, and the profile's `settings` (model, firmware...) make the emulator that model.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from avctl.errors import UsageError
from avctl.profile import Exchange, Profile, request_key
from avctl.spec.model import Action

if TYPE_CHECKING:
    from avctl.emulator.core import Ctx, EmulatedDevice

Handler = Callable[["Ctx"], Awaitable[web.StreamResponse]]
JsonPath = tuple[str, ...]
#: a read whose handler failed, as opposed to any JSON value
_FAILED = object()


@dataclass(frozen=True)
class _Read:
    exchange: Exchange
    action: Action
    path_params: dict[str, str]


class ProfileOverlay:
    """The recorded reads of one device, and which parts of them its state changes have touched."""

    def __init__(self, device: EmulatedDevice, profile: Profile) -> None:
        if profile.family != device.family:
            raise UsageError(f"the profile is of a {profile.family} device, not {device.family}",
                             hint=f"serve it with 'avctl emulate {profile.family} --profile ...'")
        self.profile = profile
        self._ignore_case = device.ignore_case
        self._reads: dict[str, _Read] = {}
        for exchange in profile.exchanges:
            resolved = device.router.resolve(exchange.method, device.normalize_path(exchange.path))
            if isinstance(resolved, int):
                raise UsageError(
                    f"profile read {exchange.action!r} ({exchange.method} {exchange.path}): the "
                    f"{device.family} spec has no such route",
                    hint="the profile was made with another avctl version, or edited by hand")
            self._reads[exchange.key(self._ignore_case)] = _Read(exchange, *resolved)
        #: per read: the parts (JSON paths; () is the whole answer) served from the emulator's state
        self.live_paths: dict[str, set[JsonPath]] = {}

    def __len__(self) -> int:
        return len(self._reads)

    def describe(self) -> str:
        """One line for `avctl emulate`: which device, how many reads on record."""
        what = " ".join(x for x in (self.profile.model, self.profile.firmware) if x) or self.profile.family
        return f"{what} ({len(self)} reads)"

    async def dispatch(self, device: EmulatedDevice, ctx: Ctx, handler: Handler) -> web.StreamResponse:
        if ctx.action.kind == "query":
            key = request_key(ctx.request.method, device.normalize_path(ctx.request.path),
                              list(ctx.request.query.items()), _body(ctx.body), self._ignore_case)
            read = self._reads.get(key)
            if read is None:
                return await handler(ctx)
            return await self._answer(key, read, ctx, handler)
        before = await self._live(device, ctx)
        response = await handler(ctx)
        if response.status < 400:
            after = await self._live(device, ctx)
            for key, old in before.items():
                changed = _changed(old, after[key])
                if changed:
                    self.live_paths.setdefault(key, set()).update(changed)
        return response

    async def _answer(self, key: str, read: _Read, ctx: Ctx, handler: Handler) -> web.StreamResponse:
        exchange = read.exchange
        paths = self.live_paths.get(key)
        if not paths or not exchange.is_json:
            return _reply(exchange, exchange.answer)
        response = await handler(ctx)
        live = _json_of(response)
        if live is _FAILED:
            return response  # the device's state now makes this read fail (e.g. the call is gone)
        if () in paths:
            return _reply(exchange, live)
        return _reply(exchange, _overlay(exchange.answer, live, paths))

    async def _live(self, device: EmulatedDevice, ctx: Ctx) -> dict[str, Any]:
        """The emulator's own answer to every recorded JSON read, asked from inside `ctx`'s request."""
        from avctl.emulator.core import Ctx

        answers: dict[str, Any] = {}
        for key, read in self._reads.items():
            exchange = read.exchange
            if not exchange.is_json or exchange.status >= 300:
                continue
            handler = getattr(device, f"on_{read.action.id}", None)
            if handler is None:
                continue
            body = b"" if exchange.body is None else json.dumps(exchange.body).encode()
            try:
                response = await handler(Ctx(ctx.request, read.action, dict(read.path_params), body,
                                             query_override=dict(exchange.query)))
                answers[key] = _json_of(response)
            except Exception:  # an error answer (the family's exception) is a state like any other
                answers[key] = _FAILED
        return answers


def attach(device: EmulatedDevice, profile: Profile) -> EmulatedDevice:
    """Make `device` serve `profile` (its settings must already be applied: see `profile_settings`)."""
    device.overlay = ProfileOverlay(device, profile)
    return device


def profile_settings(profile: Profile, settings: dict[str, Any]) -> dict[str, Any]:
    """The emulator settings for a device of `profile`: the profile's, then the user's own."""
    return {**profile.settings, **settings}


def _body(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _json_of(response: web.StreamResponse) -> Any:
    if response.status >= 400 or not isinstance(response, web.Response) or response.body is None:
        return _FAILED
    raw = response.body
    if not isinstance(raw, (bytes, bytearray)):
        return _FAILED
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError:
        return _FAILED


def _reply(exchange: Exchange, answer: Any) -> web.Response:
    if not exchange.is_json:
        return web.Response(status=exchange.status, body=str(answer).encode(),
                            headers={"Content-Type": exchange.content_type})
    body = b"" if answer is None else json.dumps(answer).encode()
    return web.Response(status=exchange.status, body=body, headers={"Content-Type": exchange.content_type})


def _changed(old: Any, new: Any, at: JsonPath = ()) -> set[JsonPath]:
    """The paths where two answers differ: object members by key, anything else (lists too) whole."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: set[JsonPath] = set()
        for k in old.keys() | new.keys():
            if k not in old or k not in new:
                out.add((*at, k))
            else:
                out |= _changed(old[k], new[k], (*at, k))
        return out
    if old is _FAILED or new is _FAILED:
        return {()} if old is not new else set()
    return set() if old == new else {at}


def _overlay(recorded: Any, live: Any, paths: set[JsonPath]) -> Any:
    """`recorded` with the value at each of `paths` taken from `live` (removed where live has none)."""
    served = copy.deepcopy(recorded)
    for path in sorted(paths, key=len):
        value, present = _get(live, path)
        served = _set(served, path, value, present)
    return served


def _get(doc: Any, path: JsonPath) -> tuple[Any, bool]:
    for part in path:
        if not isinstance(doc, dict) or part not in doc:
            return None, False
        doc = doc[part]
    return doc, True


def _set(doc: Any, path: JsonPath, value: Any, present: bool) -> Any:
    if not path:
        return value
    if not isinstance(doc, dict):
        doc = {}
    head, rest = path[0], path[1:]
    if not rest:
        if present:
            doc[head] = copy.deepcopy(value)
        else:
            doc.pop(head, None)
        return doc
    doc[head] = _set(doc.get(head), rest, value, present)
    return doc
