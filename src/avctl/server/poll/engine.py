"""The poll engine: one coordinator per enabled device, run on a schedule, under concurrency caps.

One transport (`LeanTransport`) serves every device, so keep-alive connections persist between
polls; each coordinator keeps its `Device` (its login) between polls. Polls are taken from a heap
ordered by due time: a wake costs O(log n), whatever the fleet size. The per-site slot is taken
before the global one, so a busy site never holds global slots while it waits.

Tests drive it step by step: ``await engine.step()`` runs every poll due at ``clock()`` and waits
for them; ``run()`` does the same forever, sleeping (the injected ``sleep``) until the next is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from avctl.auth import Credentials
from avctl.errors import AvctlError
from avctl.families import builtin_spec
from avctl.fleet.credentials import CredentialResolver
from avctl.fleet.inventory import DeviceEntry
from avctl.server.executor import ObservationSink
from avctl.server.model import Observation
from avctl.server.poll.coordinator import Coordinator, PollTransport, one_line, secret_digest
from avctl.server.poll.schedule import PollSettings
from avctl.spec import Spec
from avctl.transport.lean import LeanTransport
from avctl.transport.tls import TLSPolicy

log = logging.getLogger(__name__)

SpecProvider = Callable[[str], Spec]
#: per device name: the entry and the secret digest its login was rejected with
Rejected = Mapping[str, tuple[DeviceEntry, str | None]]


#: the read buffer of each TLS connection: asyncio's default, 256 KiB zero-filled per connection,
#: would be ~2.5 GB for 10,000 devices kept connected. Measured per polled device (connection,
#: session and all): 85 KB with 32 KiB, 51 KB with 4 KiB; device answers are small, and a large one
#: only takes more reads
TLS_READ_BUFFER = 4 * 1024


def lean_tls_buffers() -> None:
    """Make asyncio's TLS connections of this process allocate `TLS_READ_BUFFER` bytes each.

    The buffer size is a class attribute of asyncio's SSLProtocol (Python 3.11+) with no other way
    to set it; a smaller buffer only means more reads for a large answer. Idempotent.
    """
    from asyncio import sslproto

    if getattr(sslproto.SSLProtocol, "max_size", 0) > TLS_READ_BUFFER:
        sslproto.SSLProtocol.max_size = TLS_READ_BUFFER


#: seconds: polls due this close together are started by one wake of the run loop
LAUNCH_BATCH = 0.05


def _same_connection(a: DeviceEntry, b: DeviceEntry) -> bool:
    """Whether two entries reach the same device the same way (else the coordinator restarts)."""
    return (a.family, a.address, a.scheme, a.user, a.password, dict(a.ports), dict(a.schemes),
            a.allow_cleartext) == (b.family, b.address, b.scheme, b.user, b.password, dict(b.ports),
                                   dict(b.schemes), b.allow_cleartext)


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    coordinator: Coordinator = field(compare=False)


class PollEngine:
    """Polls the targets given by `set_targets` until cancelled. Create inside a running loop."""

    def __init__(
        self,
        *,
        sink: ObservationSink,
        specs: SpecProvider = builtin_spec,
        tls: TLSPolicy | None = None,
        resolver: CredentialResolver | None = None,
        settings: PollSettings | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        transport: PollTransport | None = None,
        on_lag: Callable[[str, float], None] | None = None,
    ) -> None:
        """``on_lag(family, seconds)`` is told, per poll, how late it started: the moment it got its
        concurrency slots minus the moment it was due (the poll lag of the metrics)."""
        self.sink = sink
        self.specs = specs
        self.settings = settings or PollSettings()
        self.resolver = resolver or CredentialResolver()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._on_lag = on_lag
        self._own_transport = transport is None
        lean_tls_buffers()  # first-use pin fetches, and an HttpTransport given instead of the lean one
        #: the one transport of every device (its pool and the certificates it saw); an idle
        #: connection outlives the longest regular interval, so a poll reuses the last one's
        self.transport: PollTransport = transport or LeanTransport(tls, keepalive=self.settings.keepalive())
        self.coordinators: dict[str, Coordinator] = {}
        self._heap: list[_Due] = []
        self._seq = itertools.count()
        #: observations decided without a poll (disabled, no spec, no credentials), sent on the next step
        self._pending: list[Observation] = []
        self._disabled: set[str] = set()
        #: coordinators of removed or changed devices, logged out on the next step
        self._retired: list[Coordinator] = []
        #: when each device's last poll started, kept across restarts (the family's floor holds)
        self._last_start: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._global = asyncio.Semaphore(self.settings.concurrency)
        self._sites: dict[str, asyncio.Semaphore] = {}
        self._wake: asyncio.Event | None = None
        #: when the run loop wakes next by itself (None: only when poked)
        self._wake_at: float | None = None
        #: internal failures (sink raised, ...): counted for metrics and tests
        self.internal_errors = 0

    # -- targets ----------------------------------------------------------------------------------

    def set_targets(self, devices: Sequence[DeviceEntry], *, rejected: Rejected | None = None) -> None:
        """The devices to poll from now on: new ones start, removed ones stop, changed ones restart.

        A device whose login was rejected stays stopped unless its entry changed (address, user,
        password reference...) or the secret its reference resolves to did; a changed secret
        restarts any device (its next login would use the old one). ``rejected`` carries that over
        from an engine before this one (name: the entry and secret digest its login was rejected
        with): such a device is not started until its entry or secret changes.
        """
        wanted = {d.name: d for d in devices}
        self.resolver.clear()
        for name in [n for n in self.coordinators if n not in wanted or wanted[n].disabled]:
            self._retire(name)
        self._disabled &= set(wanted)
        now = self._clock()
        starting = sum(1 for d in devices if not d.disabled and d.name not in self.coordinators)
        for entry in devices:
            if entry.disabled:
                if entry.name not in self._disabled:
                    self._disabled.add(entry.name)
                    self._pending.append(Observation(entry.name, now, "disabled"))
                continue
            self._disabled.discard(entry.name)
            current = self.coordinators.get(entry.name)
            if current is not None and _same_connection(current.entry, entry):
                current.entry = entry  # site, room, tags: read at the next poll
                if not self._secret_changed(current):
                    continue  # its session goes on
            self._start(entry, now, starting, (rejected or {}).get(entry.name))
        self._poke()

    def _secret_changed(self, coordinator: Coordinator) -> bool:
        try:
            return secret_digest(self._password(coordinator.entry)) != coordinator.secret
        except AvctlError:
            return True  # the new start reports why

    def _password(self, entry: DeviceEntry) -> str | None:
        return None if entry.password is None else self.resolver.resolve(entry.password).reveal()

    def _retire(self, name: str) -> None:
        coordinator = self.coordinators.pop(name, None)
        if coordinator is not None:
            coordinator.due = None
            self._retired.append(coordinator)

    def rejected(self) -> Rejected:
        """The devices whose login was rejected: what a successor engine needs to keep them stopped."""
        return {name: (c.entry, c.secret) for name, c in self.coordinators.items() if c.auth_failed}

    def _start(self, entry: DeviceEntry, now: float, starting: int = 1,
               rejected: tuple[DeviceEntry, str | None] | None = None) -> None:
        self._retire(entry.name)
        try:
            spec = self.specs(entry.family)
            credentials = Credentials(entry.user, self._password(entry))
        except AvctlError as exc:
            self._pending.append(Observation(entry.name, now, "error", error=one_line(str(exc))))
            return
        coordinator = Coordinator(entry, spec, credentials, transport=self.transport, settings=self.settings,
                                  clock=self._clock, sleep=self._sleep)
        self.coordinators[entry.name] = coordinator
        if rejected is not None and _same_connection(rejected[0], entry) and rejected[1] == coordinator.secret:
            coordinator.auth_failed = True  # never tried again with what was rejected
            return
        due = now + self.settings.first_delay(entry.family, self._rng, starting)
        last = self._last_start.get(entry.name)
        if last is not None:
            due = max(due, last + self.settings.floor(entry.family))
        self._schedule(coordinator, due)

    def _schedule(self, coordinator: Coordinator, at: float) -> None:
        coordinator.due = at
        heapq.heappush(self._heap, _Due(at, next(self._seq), coordinator))
        if self._wake_at is None or at < self._wake_at:
            self._poke()  # due before the run loop would wake: it must look again

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # -- running ----------------------------------------------------------------------------------

    async def step(self) -> int:
        """Run every poll due now and wait for them (and for their observations); returns how many."""
        await self._housekeeping()
        started = self._launch_due(self._clock())
        if started:
            await asyncio.gather(*started, return_exceptions=True)
        return len(started)

    async def idle(self) -> None:
        """Wait until no poll is running."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def next_due(self) -> float | None:
        """When the next poll is due (None: nothing scheduled)."""
        self._drop_stale()
        return self._heap[0].at if self._heap else None

    async def run(self) -> None:
        """Poll until cancelled."""
        self._wake = asyncio.Event()
        try:
            while True:
                self._wake.clear()
                await self._housekeeping()
                now = self._clock()
                self._launch_due(now)
                due = self.next_due()
                # polls due within LAUNCH_BATCH start together: at 10,000 devices one is due every
                # 6 ms, and a wake per poll cost more than the few ms they may start late
                self._wake_at = None if due is None else max(due, now + LAUNCH_BATCH)
                await self._wait(None if self._wake_at is None else self._wake_at - now)
        finally:
            self._wake = None
            self._wake_at = None
            await self._cancel_polls()

    async def _wait(self, delay: float | None) -> None:
        assert self._wake is not None
        waiters: list[asyncio.Task[object]] = [asyncio.ensure_future(self._wake.wait())]
        if delay is not None:
            waiters.append(asyncio.ensure_future(self._sleep(delay)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    def _drop_stale(self) -> None:
        # entries of retired coordinators, or of a coordinator rescheduled since
        while self._heap and (self._heap[0].coordinator.due != self._heap[0].at
                              or self.coordinators.get(self._heap[0].coordinator.entry.name)
                              is not self._heap[0].coordinator):
            heapq.heappop(self._heap)

    def _launch_due(self, now: float) -> list[asyncio.Task[None]]:
        started: list[asyncio.Task[None]] = []
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0].at > now:
                return started
            due = heapq.heappop(self._heap)
            coordinator = due.coordinator
            coordinator.due = None
            coordinator.polling = True
            task = asyncio.create_task(self._poll(coordinator, due.at), name=f"avctl-poll-{coordinator.entry.name}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started.append(task)

    def _site(self, site: str | None) -> contextlib.AbstractAsyncContextManager[object]:
        if not self.settings.per_site:
            return contextlib.nullcontext()
        key = site or ""
        sem = self._sites.get(key)
        if sem is None:
            sem = self._sites[key] = asyncio.Semaphore(self.settings.per_site)
        return sem

    async def _poll(self, coordinator: Coordinator, due: float) -> None:
        """One poll of one device, then its next one scheduled; never raises (but cancellation)."""
        name = coordinator.entry.name
        try:
            async with self._site(coordinator.entry.site), self._global:
                if self.coordinators.get(name) is not coordinator:
                    return  # removed while it waited for a slot
                if self._on_lag is not None:
                    self._on_lag(coordinator.entry.family, max(0.0, self._clock() - due))
                observation = await coordinator.poll()
            if coordinator.last_start is not None:
                self._last_start[name] = coordinator.last_start
            if self.coordinators.get(name) is not coordinator:
                return  # removed or restarted meanwhile: its successor reports
            if not coordinator.auth_failed:
                start = coordinator.last_start if coordinator.last_start is not None else self._clock()
                delay = self.settings.next_delay(coordinator.entry.family, coordinator.failures, self._rng)
                self._schedule(coordinator, max(start + delay, self._clock()))
            await self._emit(observation)
        except Exception as exc:  # one device must never end the engine, nor stop being polled
            self.internal_errors += 1
            log.warning("avctl: poll of %s failed internally: %s", name, one_line(f"{type(exc).__name__}: {exc}"))
            if self.coordinators.get(name) is coordinator and coordinator.due is None and not coordinator.auth_failed:
                self._schedule(coordinator, self._clock() + self.settings.interval_for(coordinator.entry.family))
        finally:
            coordinator.polling = False
            if self.coordinators.get(name) is not coordinator:
                self._poke()  # retired while it polled: housekeeping closes it now

    async def _emit(self, observation: Observation) -> None:
        try:
            await self.sink(observation)
        except Exception as exc:
            self.internal_errors += 1
            log.warning("avctl: the observation sink failed for %s: %s", observation.device,
                        one_line(f"{type(exc).__name__}: {exc}"))

    async def _housekeeping(self) -> None:
        pending, self._pending = self._pending, []
        for observation in pending:
            await self._emit(observation)
        # one still polling is closed after its poll: closing it now could see its next query log in again
        retired = [c for c in self._retired if not c.polling]
        self._retired = [c for c in self._retired if c.polling]
        if retired:
            # side by side, as many at once as polls may run: one after the other, 10,000 logouts at
            # 50 ms each took minutes, longer than the server gives its poller to stop
            slots = asyncio.Semaphore(self.settings.concurrency)

            async def close(coordinator: Coordinator) -> None:
                async with slots:
                    await coordinator.close()

            await asyncio.gather(*(close(c) for c in retired))

    async def _cancel_polls(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop polling, log out of every device and close the transport."""
        await self._cancel_polls()
        for name in list(self.coordinators):
            self._retire(name)
        await self._housekeeping()
        if self._own_transport:
            await self.transport.close()


class PollRunner:
    """The engine as an executor's polling half: ``set_poll_targets``, ``start``, ``stop``."""

    def __init__(self, engine: PollEngine) -> None:
        self.engine = engine
        self._task: asyncio.Task[None] | None = None

    def set_poll_targets(self, devices: Sequence[DeviceEntry]) -> None:
        self.engine.set_targets(devices)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.engine.run(), name="avctl-poll-engine")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.engine.close()
