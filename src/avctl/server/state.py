"""The state store: each device's current state, its changes as events, its numeric readings.

`StateStore.apply` takes observations in batches, one transaction per batch: a 10,000-device fleet
polled every 60 s is ~170 observations a second, written as a few executemany statements rather
than thousands of small transactions. The store keeps the current row of every device in memory
(it is the only writer of ``device_state``), so a batch reads nothing back; the cache is updated
only after the transaction committed, by swapping in a new mapping: readers (`current`, the API,
the alert sweep) take the mapping as it is without a lock and never wait for a write.
`StateWriter` collects observations from the event loop and flushes them through
``asyncio.to_thread`` every `max_delay` seconds or `max_items` observations.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from avctl.db.engine import Database
from avctl.db.models import DeviceState, Event, Reading
from avctl.fleet.inventory import DeviceEntry
from avctl.redact import shown
from avctl.server.model import DeviceStateName, DeviceView, Observation

log = logging.getLogger(__name__)

#: the longest error text kept per device
MAX_ERROR_CHARS = 300


def _error_line(text: str | None) -> str | None:
    if text is None:
        return None
    flat = " ".join(shown(text).split())
    return flat if len(flat) <= MAX_ERROR_CHARS else flat[: MAX_ERROR_CHARS - 1] + "…"


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


@dataclass
class CurrentRow:
    """The in-memory copy of one ``device_state`` row. Never changed once it is in the store's
    mapping (a change is a new row): readers share it with the writer thread."""

    device: str
    family: str
    site: str | None
    room: str | None
    address: str | None
    state: DeviceStateName
    since: float
    last_poll: float | None = None
    last_ok: float | None = None
    error: str | None = None
    readings: dict[str, Any] = field(default_factory=dict)
    poll_seconds: float | None = None
    consecutive_failures: int = 0
    removed: float | None = None

    @classmethod
    def of(cls, r: DeviceState) -> CurrentRow:
        try:
            readings = json.loads(r.readings or "{}")
        except ValueError:
            readings = {}
        return cls(r.device, r.family, r.site, r.room, r.address, r.state, r.since,  # type: ignore[arg-type]
                   r.last_poll, r.last_ok, r.error, readings if isinstance(readings, dict) else {},
                   r.poll_seconds, r.consecutive_failures or 0, r.removed)

    def values(self) -> dict[str, Any]:
        return {"device": self.device, "family": self.family, "site": self.site, "room": self.room,
                "address": self.address, "state": self.state, "since": self.since, "last_poll": self.last_poll,
                "last_ok": self.last_ok, "error": self.error, "readings": _dump(self.readings),
                "poll_seconds": self.poll_seconds, "consecutive_failures": self.consecutive_failures,
                "removed": self.removed}


def _kept_readings(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A poll's readings as the store keeps them until the next poll: the previous poll's dict when
    nothing changed, else a dict whose unchanged values are the previous poll's objects and whose
    names are interned. The poll's own objects (unpickled from the poller's message) are then freed
    at once instead of living a poll interval among the objects of other batches (the server's
    small-object heap held 17 MB free in its pools at 5,000 devices). Types are compared too:
    ``1 == True`` and ``40 == 40.0``, but a reading that changed type changed."""
    if new == old and all(type(v) is type(old[k]) for k, v in new.items()):
        return old
    kept: dict[str, Any] = {}
    for name, value in new.items():
        before = old.get(name, _ABSENT)
        kept[sys.intern(name)] = before if type(before) is type(value) and before == value else value
    return kept


_ABSENT = object()
_STATE = DeviceState.metadata.tables[DeviceState.__tablename__]
_EVENTS = Event.metadata.tables[Event.__tablename__]
_READINGS = Reading.metadata.tables[Reading.__tablename__]
#: one device's row rewritten, found by its name (bound as "key": "device" is one of the values)
_UPDATE_STATE = update(_STATE).where(_STATE.c.device == bindparam("key"))


def _facts(entry: DeviceEntry) -> dict[str, Any]:
    return {"family": entry.family, "site": entry.site, "room": entry.room, "address": str(entry.address)}


class StateStore:
    """Current state, events and readings of the inventory's devices. Thread-safe."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self._clock = clock
        self._lock = threading.Lock()
        #: replaced whole, never changed in place (see the module's doc)
        self._rows: Mapping[str, CurrentRow] | None = None
        self._entries: dict[str, DeviceEntry] = {}
        #: readings the server derives itself (config_drift, from its drift checks): device -> id -> value,
        #: kept over each poll's readings so rules, metrics and the device page see them as any other
        self._derived: Mapping[str, Mapping[str, Any]] = MappingProxyType({})

    def _cache(self) -> Mapping[str, CurrentRow]:
        if self._rows is None:
            with self.db.session() as s:
                self._rows = MappingProxyType({r.device: CurrentRow.of(r) for r in s.scalars(select(DeviceState))})
        return self._rows

    def current(self) -> Mapping[str, CurrentRow]:
        """Every device's current row (removed ones too), as this process last wrote it: a snapshot
        that later writes do not change. Cheap: no copy, no database."""
        rows = self._rows
        if rows is None:
            with self._lock:
                rows = self._cache()
        return rows

    def entry(self, name: str) -> DeviceEntry | None:
        """The inventory entry a device was last synced with."""
        return self._entries.get(name)

    # -- writing ----------------------------------------------------------------------------------

    def sync_inventory(self, devices: Sequence[DeviceEntry]) -> None:
        """New devices appear as ``unknown``; devices gone from the inventory are marked removed;
        site, room, family and address follow the inventory."""
        now = self._clock()
        with self._lock:
            rows = dict(self._cache())
            wanted = {d.name: d for d in devices}
            inserts, updates = [], []
            for entry in devices:
                row = rows.get(entry.name)
                if row is None:
                    row = rows[entry.name] = CurrentRow(entry.name, state="unknown", since=now, **_facts(entry))
                    inserts.append(row.values())
                    continue
                facts = _facts(entry)
                if row.removed is not None or any(getattr(row, k) != v for k, v in facts.items()):
                    row = rows[entry.name] = replace(row, removed=None, **facts)
                    updates.append(row.values())
            for name, row in rows.items():
                if name not in wanted and row.removed is None:
                    rows[name] = replace(row, removed=now)
                    updates.append(rows[name].values())
            with self.db.session() as s:
                if inserts:
                    s.execute(insert(DeviceState), inserts)
                if updates:
                    s.execute(update(DeviceState), updates)
            self._rows = MappingProxyType(rows)
            self._entries = wanted

    def apply(self, batch: Sequence[tuple[DeviceEntry, Observation]]) -> list[DeviceView]:
        """Record a batch of observations in one transaction; returns the devices' new views
        (in batch order, one per observation)."""
        with self._lock:
            rows = self._cache()
            changed: dict[str, CurrentRow] = {}
            fresh: set[str] = set()
            events: list[dict[str, Any]] = []
            readings: list[dict[str, Any]] = []
            order: list[tuple[DeviceEntry, str]] = []
            for entry, obs in batch:
                old = changed.get(entry.name) or rows.get(entry.name)
                if old is None:
                    old = CurrentRow(entry.name, state="unknown", since=obs.ts, **_facts(entry))
                    fresh.add(entry.name)
                new = self._next(old, entry, obs, events, readings, self._derived.get(entry.name))
                changed[entry.name] = new
                order.append((entry, entry.name))
            with self.db.session() as s:
                # SQLAlchemy Core statements on the tables, executemany: the ORM's bulk paths cost
                # about as much again per row, and the store needs none of what they add
                if fresh:
                    s.execute(insert(_STATE), [changed[n].values() for n in fresh])
                rest = [{"key": name, **row.values()} for name, row in changed.items() if name not in fresh]
                if rest:
                    s.execute(_UPDATE_STATE, rest)
                if events:
                    s.execute(insert(_EVENTS), events)
                if readings:
                    s.execute(insert(_READINGS), readings)
            self._rows = MappingProxyType({**rows, **changed})
            return [self._view(entry, changed[name]) for entry, name in order]

    @staticmethod
    def _next(old: CurrentRow, entry: DeviceEntry, obs: Observation, events: list[dict[str, Any]],
              readings: list[dict[str, Any]], derived: Mapping[str, Any] | None = None) -> CurrentRow:
        error = _error_line(obs.error)
        # `removed` is the inventory's to set: a late observation does not bring a device back
        new = replace(old, **_facts(entry), last_poll=obs.ts, error=error, poll_seconds=obs.poll_seconds)
        if obs.state != old.state:
            new.state, new.since = obs.state, obs.ts
            events.append({"ts": obs.ts, "device": entry.name, "kind": "state", "field": "state",
                           "old": _dump(old.state), "new": _dump(obs.state), "message": error})
        if obs.state == "online":
            new.last_ok, new.consecutive_failures = obs.ts, 0
            current = _kept_readings(old.readings, {**obs.readings, **(derived or {})})
            for metric, value in current.items():
                if _numeric(value):
                    readings.append({"device": entry.name, "metric": metric[:64], "ts": obs.ts,
                                     "value": float(value)})
                elif old.readings and old.readings.get(metric) != value:
                    # a first contact is not a change: every reading would be one
                    events.append({"ts": obs.ts, "device": entry.name, "kind": "reading", "field": metric,
                                   "old": _dump(old.readings.get(metric)), "new": _dump(value),
                                   "message": None})
            new.readings = current
        elif obs.state != "disabled":
            new.consecutive_failures = old.consecutive_failures + 1
        return new

    def set_derived(self, reading: str, values: Mapping[str, Any]) -> list[DeviceView]:
        """Replace one derived reading of every device: ``values`` (device -> value) holds it from now
        on, every other device loses it. The devices whose reading changed, as views (for the rules
        and the metrics); their rows are written at once, later polls keep the value."""
        with self._lock:
            rows = self._cache()
            derived = {name: dict(v) for name, v in self._derived.items()}
            changed: dict[str, CurrentRow] = {}
            for name in set(values) | {n for n, v in derived.items() if reading in v}:
                mine = derived.setdefault(name, {})
                if name in values:
                    mine[reading] = values[name]
                else:
                    mine.pop(reading, None)
                row = rows.get(name)
                if row is None or row.readings.get(reading) == mine.get(reading):
                    continue
                kept = {k: v for k, v in row.readings.items() if k != reading}
                changed[name] = replace(row, readings={**kept, **({reading: values[name]} if name in values else {})})
            self._derived = MappingProxyType({k: MappingProxyType(v) for k, v in derived.items() if v})
            if changed:
                with self.db.session() as s:
                    s.execute(update(DeviceState), [row.values() for row in changed.values()])
                self._rows = MappingProxyType({**rows, **changed})
            return [self._view(self._entries.get(name), row) for name, row in changed.items()]

    # -- reading ----------------------------------------------------------------------------------

    def _view(self, entry: DeviceEntry | None, row: CurrentRow) -> DeviceView:
        return DeviceView(name=row.device, family=row.family, site=row.site, room=row.room,
                          tags=entry.tags if entry is not None else frozenset(), address=row.address or "",
                          state=row.state, since=row.since, last_poll=row.last_poll, last_ok=row.last_ok,
                          error=row.error, readings=MappingProxyType(row.readings))  # never changed: no copy

    def views(self, names: Iterable[str] | None = None, *, include_removed: bool = False) -> list[DeviceView]:
        """The devices' current views, by name (read from the database, so another process's
        writes show too); removed devices only when asked."""
        stmt = select(DeviceState).order_by(DeviceState.device)
        if names is not None:
            stmt = stmt.where(DeviceState.device.in_(list(names)))
        if not include_removed:
            stmt = stmt.where(DeviceState.removed.is_(None))
        with self.db.session() as s:
            rows = [CurrentRow.of(r) for r in s.scalars(stmt)]
        return [self._view(self._entries.get(r.device), r) for r in rows]

    def current_views(self) -> list[DeviceView]:
        """The current views of the devices in the inventory, from memory (the server's own view)."""
        rows = self.current()
        return [self._view(entry, row) for name, entry in self._entries.items()
                if (row := rows.get(name)) is not None and row.removed is None]

    def view(self, name: str) -> DeviceView | None:
        found = self.views([name], include_removed=True)
        return found[0] if found else None


ViewsCallback = Callable[[list[DeviceView]], Awaitable[None]]


class StateWriter:
    """Collects observations in the event loop; writes them in batches off the loop.

    Use as the poll engine's sink (``await writer(observation)``); ``run()`` flushes every
    `max_delay` seconds until cancelled, and a batch of `max_items` flushes at once. ``on_views`` is
    told every batch's new views (alerts, metrics). A batch the database refuses is kept and written
    with the next one (up to `max_pending` observations; beyond that the oldest are dropped and
    counted in `dropped`, and every failure is logged).
    """

    def __init__(self, store: StateStore, *, on_views: ViewsCallback | None = None, max_items: int = 500,
                 max_delay: float = 0.5, max_pending: int = 100_000,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.store = store
        self.on_views = on_views
        self.max_items = max_items
        self.max_delay = max_delay
        self.max_pending = max_pending
        self._sleep = sleep
        self._queue: list[tuple[DeviceEntry, Observation]] = []
        self._flushing = asyncio.Lock()
        self.dropped = 0
        self.failures = 0
        self.last_error: str | None = None

    async def __call__(self, observation: Observation) -> None:
        entry = self.store.entry(observation.device)
        if entry is None:
            return  # not (or no longer) in the inventory: nothing to record it against
        self._queue.append((entry, observation))
        if len(self._queue) >= self.max_items and not self._flushing.locked():
            await self.flush()

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def flush(self) -> list[DeviceView]:
        """Write what is queued now; returns the views written (empty if the write failed)."""
        async with self._flushing:
            batch, self._queue = self._queue, []
            if not batch:
                return []
            try:
                views = await asyncio.to_thread(self.store.apply, batch)
            except Exception as exc:
                self.failures += 1
                self.last_error = _error_line(f"{type(exc).__name__}: {exc}")
                log.error("avctl: could not record %d observations (kept for the next write): %s",
                          len(batch), self.last_error)
                self._queue = batch + self._queue
                overflow = len(self._queue) - self.max_pending
                if overflow > 0:
                    self.dropped += overflow
                    del self._queue[:overflow]
                    log.error("avctl: dropped the %d oldest observations: the database stays unwritable",
                              overflow)
                return []
            self.last_error = None
        if self.on_views is not None and views:
            try:
                await self.on_views(views)
            except Exception as exc:
                log.warning("avctl: the state callback failed: %s", _error_line(f"{type(exc).__name__}: {exc}"))
        return views

    async def run(self) -> None:
        """Flush every `max_delay` seconds until cancelled; a last flush on the way out."""
        try:
            while True:
                await self._sleep(self.max_delay)
                await self.flush()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.flush())


__all__ = ["CurrentRow", "StateStore", "StateWriter", "ViewsCallback"]
