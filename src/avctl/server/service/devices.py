"""Devices as the service shows them: the inventory joined with their current state, in scope."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from sqlalchemy import select

from avctl.db.models import DeviceState, Event
from avctl.db.retention import Point
from avctl.db.retention import history as retention_history
from avctl.errors import UsageError
from avctl.fleet.inventory import DeviceEntry, Selection
from avctl.server.context import ServerContext
from avctl.server.model import DEVICE_STATES, DeviceView, Principal
from avctl.server.service.errors import NotFound, check
from avctl.server.state import CurrentRow

T = TypeVar("T")

SORT_KEYS = ("name", "site", "room", "family", "state", "since", "last_poll", "last_ok")
#: the most points one history request returns (ask for a shorter window for more detail)
#: points in one history answer at most (a chart is no wider)
MAX_POINTS = 2_000


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class EventItem:
    id: int
    ts: float
    kind: str
    field: str
    old: Any
    new: Any
    message: str | None


def in_scope(ctx: ServerContext, principal: Principal) -> list[DeviceEntry]:
    """The inventory's devices the principal may see."""
    return [d for d in ctx.inventory() if principal.sees_site(d.site)]


def find_device(ctx: ServerContext, principal: Principal, name: str) -> DeviceEntry:
    """The device, or NotFound (also when it is outside the principal's sites)."""
    for d in ctx.inventory():
        if d.name == name and principal.sees_site(d.site):
            return d
    raise NotFound(f"no device named {name!r}")


def _state_rows(ctx: ServerContext, names: Sequence[str] | None) -> Mapping[str, DeviceState | CurrentRow]:
    """The devices' current rows: the server's in-memory copy when it has one (the server is the
    only writer of device state; reading 10,000 rows per request kept the API waiting), else the
    database (the CLI on the server's database)."""
    if ctx.state is not None:
        return ctx.state.current()
    with ctx.db.session() as s:
        q = select(DeviceState)
        if names is not None:
            q = q.where(DeviceState.device.in_(names))
        return {r.device: r for r in s.scalars(q)}


#: what a list filters and sorts on, read as plain tuples (10,000 ORM objects per request cost too much)
_LIGHT = (DeviceState.device, DeviceState.state, DeviceState.since, DeviceState.last_poll, DeviceState.last_ok)
#: sort keys that are facts of the inventory entry (the rest are of the device's state)
_ENTRY_KEYS = frozenset({"name", "site", "room", "family"})


def _light_states(ctx: ServerContext) -> Mapping[str, Any]:
    """name -> what a list filters and sorts on (``state``, ``since``, ``last_poll``, ``last_ok``)."""
    if ctx.state is not None:
        return ctx.state.current()
    with ctx.db.session() as s:
        return {r.device: r for r in s.execute(select(*_LIGHT))}


def _view(entry: DeviceEntry, row: DeviceState | CurrentRow | None, *, with_readings: bool) -> DeviceView:
    if row is None:
        return DeviceView(name=entry.name, family=entry.family, site=entry.site, room=entry.room,
                          tags=entry.tags, address=str(entry.address),
                          state="disabled" if entry.disabled else "unknown", since=0.0)
    readings: Mapping[str, Any] = {}
    if isinstance(row, CurrentRow):
        # a row in the store is never changed (a change is a new row): shared, not copied
        readings = MappingProxyType(row.readings) if with_readings else {}
    elif with_readings:
        try:
            loaded = json.loads(row.readings or "{}")
        except ValueError:
            loaded = {}
        readings = loaded if isinstance(loaded, dict) else {}
    state = row.state if row.state in DEVICE_STATES else "error"
    return DeviceView(name=entry.name, family=entry.family, site=entry.site, room=entry.room,
                      tags=entry.tags, address=str(entry.address), state=state,
                      since=row.since, last_poll=row.last_poll, last_ok=row.last_ok, error=row.error,
                      readings=readings)


def list_devices(ctx: ServerContext, principal: Principal, *, selection: str = "",
                 state: str | None = None, sort: str = "name", limit: int = 100,
                 offset: int = 0) -> Page[DeviceView]:
    """The devices in scope matching the CLI selection syntax (``site=hq,family=videoos``).

    ``sort``: one of SORT_KEYS, ``-`` in front for descending. Filtering and sorting read a few
    columns of every device; the page's devices only are read whole (readings and all).
    """
    check(principal, "read")
    if state is not None and state not in DEVICE_STATES:
        raise UsageError(f"unknown state {state!r}", hint=f"use one of: {', '.join(DEVICE_STATES)}")
    key = sort.removeprefix("-")
    if key not in SORT_KEYS:
        raise UsageError(f"cannot sort on {sort!r}", hint=f"use one of: {', '.join(SORT_KEYS)} (- for descending)")
    chosen = Selection.parse(selection or None)
    devices = in_scope(ctx, principal) if principal.sites else list(ctx.inventory())
    if chosen:
        devices = [d for d in devices if chosen.matches(d)]
    states = _light_states(ctx)

    def state_of(d: DeviceEntry) -> str:
        st = states.get(d.name)
        if st is None:
            return "disabled" if d.disabled else "unknown"
        return st.state if st.state in DEVICE_STATES else "error"

    def value(d: DeviceEntry) -> Any:
        if key in _ENTRY_KEYS:
            return getattr(d, key)
        if key == "state":
            return state_of(d)
        st = states.get(d.name)
        return None if st is None else getattr(st, key)

    # only what the request filters or sorts on is looked at: a page of 10,000 devices by name
    # costs one pass over the inventory
    if state is not None:
        devices = [d for d in devices if state_of(d) == state]
    devices = sorted(devices, key=attrgetter("name"))
    if key != "name" or sort.startswith("-"):
        # devices without the value (never polled, no site) come last either way, in name order
        valued = [(v, d) for d in devices if (v := value(d)) is not None]
        valued.sort(key=itemgetter(0), reverse=sort.startswith("-"))
        devices = [d for _v, d in valued] + [d for d in devices if value(d) is None]
    page = devices[offset:offset + limit]
    rows = _state_rows(ctx, [d.name for d in page])
    return Page([_view(d, rows.get(d.name), with_readings=True) for d in page], len(devices), limit, offset)


def fleet_snapshot(ctx: ServerContext, principal: Principal) -> list[DeviceView]:
    """Every device in scope with its state and readings, in inventory order: for pages that sum
    the fleet up (the dashboard's overview and sites). In the server, from its memory."""
    check(principal, "read")
    rows = _state_rows(ctx, None)
    return [_view(d, rows.get(d.name), with_readings=True) for d in in_scope(ctx, principal)]


def device(ctx: ServerContext, principal: Principal, name: str) -> DeviceView:
    check(principal, "read")
    entry = find_device(ctx, principal, name)
    return _view(entry, _state_rows(ctx, [name]).get(name), with_readings=True)


def fleet_views(ctx: ServerContext) -> list[DeviceView]:
    """Every device of the inventory with its state (the server's own view: for metrics at start-up)."""
    rows = _state_rows(ctx, None)
    return [_view(d, rows.get(d.name), with_readings=True) for d in ctx.inventory()]


def history(ctx: ServerContext, principal: Principal, name: str, metric: str, *,
            since: float | None = None, until: float | None = None) -> tuple[int, list[Point]]:
    """One numeric reading over time (the last 24 hours by default): (resolution, points).

    Resolution 0: the raw readings; else the width in seconds of the buckets each point sums up
    (rollups past the raw retention, or a long window aggregated to at most MAX_POINTS points).
    """
    check(principal, "read")
    find_device(ctx, principal, name)
    now = ctx.clock()
    end = until if until is not None else now
    start = since if since is not None else end - 86400
    return retention_history(ctx.db, name, metric, start, end, now=now, max_points=MAX_POINTS,
                             retention=ctx.retention)


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def events(ctx: ServerContext, principal: Principal, name: str, *, limit: int = 100) -> list[EventItem]:
    """The device's state changes and changed readings, newest first."""
    check(principal, "read")
    find_device(ctx, principal, name)
    with ctx.db.session() as s:
        rows = s.scalars(select(Event).where(Event.device == name)
                         .order_by(Event.ts.desc(), Event.id.desc()).limit(limit))
        return [EventItem(r.id, r.ts, r.kind, r.field, _json(r.old), _json(r.new), r.message) for r in rows]
