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
import re
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
#: members that are clock readings (they change by themselves, see `_changed`)
#: ("systemTime", "UpTime", "DurationInSeconds"; not settings such as "timeZone" or "timeOffset")
_CLOCK = re.compile(r"uptime|elapsed|duration|stamp|since|seconds|clock|(time|date)$|^(days|hours|minutes)$",
                    re.IGNORECASE)


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
        #: the emulator's own answers as last seen (None before the first request)
        self._seen: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self._reads)

    def describe(self) -> str:
        """One line for `avctl emulate`: which device, how many reads on record."""
        what = " ".join(x for x in (self.profile.model, self.profile.firmware) if x) or self.profile.family
        return f"{what} ({len(self)} reads)"

    async def start(self, device: EmulatedDevice) -> None:
        """Note the emulator's state as the profile starts out (the server does this when it adds
        the device), so that what changes before the first request (a call arriving) is seen."""
        from aiohttp.test_utils import make_mocked_request

        # no request is in flight yet: the handlers are asked from a request of our own making
        self._seen = await self._live(device, make_mocked_request("GET", "/"))

    async def absorb(self, device: EmulatedDevice, request: web.Request) -> None:
        """Take the emulator's current answers as seen, without marking anything (after a login)."""
        self._seen = await self._live(device, request)

    async def dispatch(self, device: EmulatedDevice, ctx: Ctx, handler: Handler) -> web.StreamResponse:
        if self._seen is None:  # attached after the device was added: start from now
            self._seen = await self._live(device, ctx.request)
        if ctx.action.kind == "query":
            key = request_key(ctx.request.method, device.normalize_path(ctx.request.path),
                              list(ctx.request.query.items()), _body(ctx.body), self._ignore_case)
            read = self._reads.get(key)
            if read is None:
                return await handler(ctx)
            return await self._answer(key, read, ctx, handler)
        before = await self._live(device, ctx.request)
        self._mark_drift(self._seen, before)  # what changed by itself meanwhile
        response = await handler(ctx)
        if response.status >= 400:
            self._seen = before
            return response
        after = await self._live(device, ctx.request)
        self._mark(before, after, _changed)
        self._mark_written(device, ctx)
        self._seen = after
        return response

    def _mark(self, old: dict[str, Any], new: dict[str, Any],
              compare: Callable[[Any, Any], set[JsonPath]]) -> None:
        """Add the paths `compare` finds between two sets of live answers to `live_paths`."""
        for key, value in new.items():
            if key in old:
                changed = compare(old[key], value)
                if changed:
                    self.live_paths.setdefault(key, set()).update(changed)

    def _mark_drift(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Changes the emulator made by itself between requests (a call arrived, a session ended)
        count where they make its answer's structure differ from the recording's: a recording with
        one session keeps being served while the emulator also has one (the client's own)."""
        for key, value in new.items():
            if key not in old or key not in self._reads:
                continue
            recorded = self._reads[key].exchange.answer
            for path in _structure_changed(old[key], value):
                mine, present = _get(recorded, path)
                live, here = _get(value, path) if value is not _FAILED else (None, False)
                if present != here or _structure_changed(mine, live):
                    self.live_paths.setdefault(key, set()).add(path)

    def _mark_written(self, device: EmulatedDevice, ctx: Ctx) -> None:
        """A write to a read's own URL (a PUT of what a GET reads) makes what it wrote live, even
        when the emulator held that value already (unmute a system recorded muted); so does a write
        to a member's URL (`/rest/audio/muted`) for that member of the parent's answer."""
        target = _url(device.normalize_path(ctx.request.path), self._ignore_case)
        written = _written_paths(ctx.body)
        parent, _, member = target.rpartition("/")
        for key, read in self._reads.items():
            recorded, url = read.exchange.answer, _url(read.exchange.path, self._ignore_case)
            if url == target:
                # a bare value replaces the whole answer; an object's members count where the
                # recording has them (not a password the request carries beside them)
                marks: set[JsonPath] = {()} if written is None else {p for p in written if _has(recorded, p)}
            elif url == parent and isinstance(recorded, dict):
                marks = {(str(k),) for k in recorded if str(k).lower() == member.lower()}
            else:
                continue
            if marks:
                self.live_paths.setdefault(key, set()).update(marks)

    async def _answer(self, key: str, read: _Read, ctx: Ctx, handler: Handler) -> web.StreamResponse:
        exchange = read.exchange
        if not exchange.is_json or exchange.status >= 300:
            return _reply(exchange, exchange.answer)
        response = await handler(ctx)
        live = _json_of(response)
        if self._seen is not None and key in self._seen:
            self._mark_drift({key: self._seen[key]}, {key: live})
            self._seen[key] = live
        paths = self.live_paths.get(key)
        if not paths:
            return _reply(exchange, exchange.answer)
        if live is _FAILED:
            return response  # the device's state now makes this read fail (e.g. the call is gone)
        if () in paths:
            return _reply(exchange, live)
        return _reply(exchange, _overlay(exchange.answer, live, paths))

    async def _live(self, device: EmulatedDevice, request: web.Request) -> dict[str, Any]:
        """The emulator's own answer to every recorded JSON read, asked from inside `request`."""
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
                response = await handler(Ctx(request, read.action, dict(read.path_params), body,
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
    """The paths where two answers differ: object members by key, anything else (lists too) whole.
    Clock readings (uptime, times, durations) are left out: they move by themselves, and one
    request apart they would make a recorded uptime the emulator's."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: set[JsonPath] = set()
        for k in old.keys() | new.keys():
            if k not in old or k not in new:
                out.add((*at, k))
            elif not (_CLOCK.search(str(k)) and _scalar(old[k]) and _scalar(new[k])):
                out |= _changed(old[k], new[k], (*at, k))
        return out
    if old is _FAILED or new is _FAILED:
        return {()} if old is not new else set()
    return set() if old == new else {at}


def _structure_changed(old: Any, new: Any, at: JsonPath = ()) -> set[JsonPath]:
    """Changes the emulator makes by itself between requests that count (a call arriving, a
    session ending: members or list items come or go); values that drift (meters, counters) do not."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: set[JsonPath] = set()
        for k in old.keys() | new.keys():
            out |= {(*at, k)} if k not in old or k not in new else _structure_changed(old[k], new[k], (*at, k))
        return out
    if isinstance(old, list) and isinstance(new, list):
        return {at} if len(old) != len(new) else set()
    if old is _FAILED or new is _FAILED or type(old) is not type(new):
        return {at} if old is not new else set()
    return set()


def _scalar(value: Any) -> bool:
    return not isinstance(value, (dict, list))


def _url(path: str, ignore_case: bool) -> str:
    path = path.rstrip("/") or "/"
    return path.lower() if ignore_case else path


def _written_paths(raw: bytes) -> set[JsonPath] | None:
    """The members a write's JSON object body sets (leaf paths); None for a bare JSON value (the
    write sets the whole); an empty set for anything else (a form, no body)."""
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return set()
    return _leaves(body) if isinstance(body, dict) else None


def _leaves(body: dict[str, Any]) -> set[JsonPath]:
    out: set[JsonPath] = set()
    for key, value in body.items():
        inner = _leaves(value) if isinstance(value, dict) and value else {()}
        out |= {(str(key), *rest) for rest in inner}
    return out


def _has(doc: Any, path: JsonPath) -> bool:
    return _get(doc, path)[1]


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
