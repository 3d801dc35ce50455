"""The fleet runner: inventory -> selection -> one task on every device -> one outcome per device.

Shaped like nornir (inventory, filter, run, per-host result) on asyncio:

- a global concurrency limit and an optional per-site limit (a site's WAN link or its DHCP-starved
  VLAN should not see 200 logins at once); the per-site slot is taken first so a busy site never
  holds global slots while it waits;
- one shared ``HttpTransport`` (one connection pool, one TLS policy) for every device;
- each device gets one ``Device`` object for the whole job, so its login state, and a rejected
  login, are remembered: a rejected login is never retried and ends that device (at most one
  failed login per device per job);
- per call, failures are retried by the device's one retry policy (``avctl.retry``), which the
  runner configures from ``retries``/``backoff``: transient failures of queries, and of
  state-changing calls only those that prove the request was not acted on (connection refused,
  busy, 503). The runner has no loop of its own, so ``attempts`` and ``requests`` in an outcome are
  what the device really received;
- before a device starts, it is claimed in the store (``claim_device``): two processes resuming
  one job never both call a device;
- if the store cannot be written mid-job (disk full), no new device is started: devices in flight
  finish, the rest end ``skipped`` / ``not_run``, and ``store_error`` says what happened;
- a per-request timeout and a per-device deadline;
- every device ends with exactly one outcome (ok, failed, unreachable, skipped);
- the in-call guard (``if_idle``, ``wait_idle``): before the task, only the spec's busy readings
  are read (`Device.busy`); a device in a call or sharing, or one that cannot tell, ends *skipped*
  with nothing sent, or is looked at again every ``idle_poll`` seconds (its slots given back) until
  ``wait_idle`` has passed;
- maintenance windows (``in_window``): a device waits until its site's window is open; once the
  window closes, no new device of that site starts (they end *skipped*, ``window_closed``, and
  ``avctl jobs resume`` runs them in a later window);
- rollout rings (``rings``, ``gate``, ``soak``): a ring starts when the one before it finished,
  soaked and reached the gate; a failed gate skips every later device and says why (``stopped``);
- what happens is told to processors (``avctl.fleet.processors``: job and device started and
  finished, each call finished): the job store commits each outcome the moment it is known, the
  audit log records state-changing calls, the CLI's progress bar counts; a processor that fails
  never ends a device's run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from avctl.auth import Credentials
from avctl.capabilities import unknown_task_hint
from avctl.device import CallEvent, Device
from avctl.durations import MAX_DEADLINE, MAX_REQUEST_TIMEOUT, check_seconds, describe_duration
from avctl.errors import AuthenticationError, AvctlError, DeviceTimeout, TransportError, UsageError
from avctl.families import builtin_spec, family_names
from avctl.fleet.audit import AuditSink
from avctl.fleet.credentials import CredentialResolver
from avctl.fleet.gates import gate_message
from avctl.fleet.inventory import DeviceEntry, Selection
from avctl.fleet.processors import AuditRecorder, JobInfo, Processor, StoreRecorder
from avctl.fleet.results import Outcome, classify
from avctl.fleet.store import RunStore, StoreError
from avctl.fleet.verbs import Task, probe_action
from avctl.fleet.windows import zone
from avctl.retry import RetryPolicy
from avctl.spec import Spec
from avctl.spec.model import Action
from avctl.transport.http import HttpTransport, Transport
from avctl.transport.tls import TLSPolicy

SpecProvider = Callable[[str], Spec]
#: the skip reason of devices a maintenance window closed on (a resume runs them again)
WINDOW_CLOSED = "window_closed"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    concurrency: int = 100
    per_site: int = 0  # 0: no per-site limit
    timeout: float = 15.0  # seconds per request
    device_timeout: float | None = None  # overall deadline per device (None: no deadline)
    retries: int = 2  # extra attempts per call for transient failures
    backoff: float = 0.5  # first backoff; doubles per attempt, with jitter
    backoff_max: float = 8.0
    wait: bool = False  # after the task, wait until the device answers again (reboot --wait)
    wait_timeout: float = 300.0  # deadline for that
    wait_grace: float = 10.0  # how long a device may take to go down before we take "up" at face value
    poll_interval: float = 1.0
    output_dir: str = "."  # downloads (response: file) go to OUTPUT_DIR/<device name>/
    # for the whole run, over the inventory's per-device values (--port, --scheme-map, --allow-cleartext)
    ports: Mapping[str, int] = field(default_factory=dict)
    schemes: Mapping[str, str] = field(default_factory=dict)
    allow_cleartext: bool = False
    overwrite: bool = False  # a download may replace an existing file
    #: on resume, also run devices whose state-changing request a process that died may have sent
    retry_in_doubt: bool = False
    max_response_bytes: int | None = None  # caps on answers and downloads (None: each spec's)
    max_download_bytes: int | None = None
    # -- the in-call guard, maintenance windows and rollout rings (docs/schedules.md) --
    if_idle: bool = False  # skip a device that is in a call or sharing (skip reason "in_call")
    wait_idle: float | None = None  # wait up to this long for a busy device to be idle, then skip it
    idle_poll: float = 60.0  # how often a busy device is looked at again while waiting
    in_window: bool = False  # start devices only inside their site's maintenance window
    #: rollout rings in order: (name, selection); the selection "" is every device not in a ring yet
    rings: tuple[tuple[str, str], ...] = ()
    gate: float | None = None  # success rate (0 to 1) a ring must reach before the next one starts
    soak: float = 0.0  # seconds to wait after a ring finished before its gate is judged

    def __post_init__(self) -> None:
        # a zero, negative, nan or infinite duration would switch a timeout off: refuse at construction
        check_seconds("timeout", self.timeout, maximum=MAX_REQUEST_TIMEOUT)
        if self.device_timeout is not None:
            check_seconds("device_timeout", self.device_timeout, maximum=MAX_DEADLINE)
        check_seconds("wait_timeout", self.wait_timeout, maximum=MAX_DEADLINE)
        check_seconds("wait_grace", self.wait_grace, maximum=MAX_DEADLINE, allow_zero=True)
        check_seconds("poll_interval", self.poll_interval, maximum=MAX_REQUEST_TIMEOUT)
        if self.wait_idle is not None:
            check_seconds("wait_idle", self.wait_idle, maximum=MAX_DEADLINE)
        check_seconds("idle_poll", self.idle_poll, maximum=MAX_DEADLINE)
        check_seconds("soak", self.soak, maximum=MAX_DEADLINE, allow_zero=True)
        if self.gate is not None and not 0 < self.gate <= 1:
            raise UsageError(f"gate {self.gate!r} is not a success rate", hint="give a percentage, e.g. 95%")
        if (self.gate is not None or self.soak) and not self.rings:
            raise UsageError("a gate or a soak time needs rings", hint="e.g. --rings canary=tag:canary,all")
        self.retry_policy  # noqa: B018 - validates retries and backoff

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy.from_retries(self.retries, self.backoff, self.backoff_max)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def check_windows(devices: Sequence[DeviceEntry]) -> None:
    """``--in-window`` needs a window for the site of every selected device: UsageError naming the
    sites that have none (before anything is sent)."""
    missing = sorted({d.site or "(no site)" for d in devices if d.window is None or d.timezone is None})
    if missing:
        raise UsageError(f"--in-window: no maintenance window for site(s) {', '.join(missing)}",
                         hint='give each site timezone: and window: ("Mon-Fri 01:00-04:00") in the inventory, '
                              "or leave them out of the selection")


def ring_of(devices: Sequence[DeviceEntry], rings: Sequence[tuple[str, str]]) -> dict[str, list[DeviceEntry]]:
    """Devices per ring, rings in order: each device in the first ring whose selection it matches
    (the selection "" takes every device left). UsageError for a selection that does not parse."""
    parsed = [(name, Selection.parse(sel) if sel else None) for name, sel in rings]
    out: dict[str, list[DeviceEntry]] = {name: [] for name, _ in parsed}
    for d in devices:
        for name, sel in parsed:
            if sel is None or sel.matches(d):
                out[name].append(d)
                break
    return out


def gate_failure(ring: str, outcomes: Sequence[Outcome], gate: float) -> str | None:
    """Why ring ``ring`` did not pass the gate (the share of its devices that ran and ended ok), or
    None. Devices skipped without running (in a call, excluded) do not count; a ring where none ran
    cannot be judged, so it does not pass."""
    ran = [o for o in outcomes if o.status != "skipped"]
    return gate_message(ring, sum(o.status == "ok" for o in ran), len(ran), gate)


def planned_outcome(task: Task, entry: DeviceEntry, specs: SpecProvider) -> Outcome | None:
    """A device's outcome known before anything is sent (disabled, no spec, the family lacks the
    task); None: it will run. What a job's preview shows is what the run does."""
    if entry.disabled:
        return Outcome(entry.name, "skipped", family=entry.family, reason="excluded",
                       message="disabled in the inventory")
    try:
        spec = specs(entry.family)
    except AvctlError as exc:
        return Outcome(entry.name, "failed", family=entry.family, reason=exc.kind, message=str(exc))
    skip = task.skip_reason(spec)
    if skip:
        return Outcome(entry.name, "skipped", family=entry.family, reason="no_such_action", message=skip)
    return None


class FleetRunner:
    """Runs a task on many devices. One runner per job; create and use inside a running loop.

    ``store`` and ``audit`` subscribe as processors (outcomes, state-changing calls); ``store`` also
    holds the per-device claims. ``processors`` are told every event after the store (see
    ``avctl.fleet.processors``).
    """

    def __init__(
        self,
        *,
        store: RunStore | None = None,
        audit: AuditSink | None = None,
        specs: SpecProvider | None = None,
        tls: TLSPolicy | None = None,
        transport: Transport | None = None,
        resolver: CredentialResolver | None = None,
        options: RunOptions | None = None,
        processors: Sequence[Processor] = (),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.audit = audit
        self.specs: SpecProvider = specs or builtin_spec
        self.options = options or RunOptions()
        self._tls = tls
        self._transport = transport
        self._own_transport = transport is None
        self.resolver = resolver or CredentialResolver()
        self.processors: list[Processor] = [
            *([StoreRecorder(store)] if store is not None else []), *processors,
            *([AuditRecorder(audit)] if audit is not None else [])]
        self.job_id: int | None = None
        self._job = JobInfo(None, "", ())
        self.outcomes: dict[str, Outcome] = {}
        self._started: set[str] = set()
        #: processors that raised: (processor, event, error text); their events were skipped
        self.processor_errors: list[tuple[str, str, str]] = []
        self._global = asyncio.Semaphore(max(1, self.options.concurrency))
        self._sites: dict[str, asyncio.Semaphore] = {}
        self._sleep = sleep  # backoff, idle and window waits of every device (tests inject a clock)
        self._clock = clock  # wall-clock seconds: windows are wall-clock times of each site
        #: per site, when its maintenance window (seen open in this job) closes
        self._window_close: dict[str, datetime] = {}
        #: why a rollout stopped before its last ring (a failed gate); None: it did not stop
        self.stopped: str | None = None
        #: parameters the specs mark secret (set by plan()): never stored in the job
        self.secret_params: set[str] = set()
        #: the first failure to write the store or audit log; once set, no new device starts
        self.store_error: StoreError | None = None
        #: devices left without an outcome because a dead process may have changed them already
        #: (see `JobStore.in_doubt`); run them with ``RunOptions(retry_in_doubt=True)``
        self.in_doubt: list[str] = []
        self._doubtful: set[str] = set()
        self._sent: set[str] = set()

    # -- planning (before any I/O) ------------------------------------------------------------

    def _families_with(self, task: Task, *, exclude: Collection[str]) -> list[str]:
        """The registered families outside ``exclude`` that have the task's verb or action."""
        found = []
        for family in family_names():
            if family in exclude:
                continue
            with contextlib.suppress(AvctlError):  # a family whose spec does not load has nothing
                spec = self.specs(family)
                if task.name == "status" or task.name in (spec.macros if task.mode == "verb" else spec.actions):
                    found.append(family)
        return found

    def plan(self, task: Task, devices: Sequence[DeviceEntry]) -> dict[str, dict[str, int]]:
        """Validate the task for every family in the selection and count what it will hit.

        Returns {family: {"run": n, "skip": n, "disruptive": 0|1}}. Raises ValidationError/UsageError
        before anything is sent; raises UsageError when no selected family has the action at all.
        """
        counts: dict[str, dict[str, int]] = {}
        self.secret_params = set()
        for entry in devices:
            c = counts.setdefault(entry.family, {"run": 0, "skip": 0, "disruptive": 0})
            if planned_outcome(task, entry, self.specs) is not None:
                c["skip"] += 1  # a family without a spec is reported per device as failed
                continue
            spec = self.specs(entry.family)
            if c["run"] == 0:
                task.validate(spec)
                c["disruptive"] = int(task.disruptive(spec))
                self.secret_params |= task.secret_names(spec)
            c["run"] += 1
        if devices and not any(c["run"] for c in counts.values()):
            specs, unknown = [], []
            for family in counts:
                try:
                    specs.append(self.specs(family))
                except AvctlError as exc:  # an unknown family: say so (with its close names) first
                    unknown.append(exc.message)
            elsewhere = self._families_with(task, exclude=counts)
            # the selection syntax, not an option name: the API and agents plan through here too
            where = (f"{task.name!r} is for {' and '.join(elsewhere)}, not {' or '.join(counts)}: "
                     f"select family={'|'.join(elsewhere)}" if elsewhere
                     else unknown_task_hint(task.name, specs, verb=task.mode == "verb"))
            raise UsageError(f"no selected device can run {task.name!r}", hint="; ".join([*unknown, where]))
        if self.options.in_window:
            check_windows(devices)
        if self.options.rings:
            ring_of(devices, self.options.rings)  # every ring's selection is checked before any I/O
        return counts

    # -- running --------------------------------------------------------------------------------

    async def run(self, task: Task, devices: Sequence[DeviceEntry], *,
                  job_id: int | None = None, decided: Sequence[Outcome] = ()) -> list[Outcome]:
        """Run on all devices; returns outcomes in device order. Cancellation keeps what finished.

        ``decided``: outcomes known without running (on resume, devices no longer in the
        inventory); recorded and told to the processors like any other.
        """
        self.job_id = job_id
        self._job = JobInfo(job_id, task.name, tuple(d.name for d in devices))
        if self._transport is None:
            self._transport = HttpTransport(self._tls)
        self._emit("job_started", lambda p: p.job_started(self._job))
        if self.store is not None and job_id is not None and not self.options.retry_in_doubt:
            try:
                self._doubtful = set(self.store.in_doubt(job_id))
            except StoreError as exc:
                self._store_failed(exc)
        try:
            for outcome in decided:
                self._finish(outcome)
            if self.options.rings:
                await self._run_rings(task, devices)
            else:
                await self._run_all(task, devices)
        finally:
            if self._own_transport and self._transport is not None:
                await self._transport.close()
                self._transport = None
            ran = [self.outcomes[d.name] for d in devices if d.name in self.outcomes]
            self._emit("job_finished", lambda p: p.job_finished(self._job, ran))
        return ran

    async def _run_all(self, task: Task, devices: Sequence[DeviceEntry]) -> None:
        tasks = [asyncio.create_task(self._device(task, d), name=f"avctl-{d.name}") for d in devices]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _run_rings(self, task: Task, devices: Sequence[DeviceEntry]) -> None:
        """Ring by ring: a ring starts when the one before it finished, soaked, and passed the gate.
        A failed gate stops the rollout: every device of the later rings ends skipped, unsent."""
        opts = self.options
        rings = ring_of(devices, opts.rings)
        ringed = {d.name for ring in rings.values() for d in ring}
        outside = [d for d in devices if d.name not in ringed]
        for d in outside:
            self._finish(Outcome(d.name, "skipped", family=d.family, reason="no_ring",
                                 message=f"in none of the rings {', '.join(rings)}"))
        names = list(rings)
        for n, name in enumerate(names):
            members = rings[name]
            if self.stopped is not None:
                for d in members:
                    self._finish(Outcome(d.name, "skipped", family=d.family, reason="gate",
                                         message=f"not run: {self.stopped}"))
                continue
            log.info("avctl: ring %s: %d device(s)", name, len(members))
            await self._run_all(task, members)
            if n == len(names) - 1 or not members:
                continue
            if opts.soak:
                await self._sleep(opts.soak)
            if opts.gate is not None:
                self.stopped = gate_failure(name, [self.outcomes[d.name] for d in members
                                                   if d.name in self.outcomes], opts.gate)

    def _site_sem(self, site: str | None) -> contextlib.AbstractAsyncContextManager[Any]:
        if not self.options.per_site:
            return contextlib.nullcontext()
        key = site or ""
        sem = self._sites.get(key)
        if sem is None:
            sem = self._sites[key] = asyncio.Semaphore(self.options.per_site)
        return sem

    def _emit(self, event: str, tell: Callable[[Processor], None]) -> None:
        """Tell every processor; one that fails is logged and skipped, never ends a device's run."""
        for processor in self.processors:
            try:
                tell(processor)
            except StoreError as exc:
                self._store_failed(exc)  # what happened is kept in memory and reported
            except Exception as exc:
                name = type(processor).__name__
                self.processor_errors.append((name, event, f"{type(exc).__name__}: {exc}"))
                log.warning("avctl: processor %s failed on %s: %s: %s", name, event, type(exc).__name__, exc)

    def _start(self, entry: DeviceEntry) -> None:
        if entry.name not in self._started:
            self._started.add(entry.name)
            self._emit("device_started", lambda p: p.device_started(self._job, entry))

    def _finish(self, outcome: Outcome) -> None:
        if outcome.device in self.outcomes:
            return  # exactly one outcome per device, whatever happens
        self.outcomes[outcome.device] = outcome
        self._emit("device_finished", lambda p: p.device_finished(self._job, outcome))

    def _store_failed(self, exc: StoreError) -> None:
        if self.store_error is None:
            self.store_error = exc

    def _claim(self, entry: DeviceEntry) -> bool:
        """Whether this process runs the device (another one resuming the same job may have it)."""
        if self.store is None or self.job_id is None:
            return True
        try:
            return self.store.claim_device(self.job_id, entry.name)
        except StoreError as exc:
            self._store_failed(exc)
            return True  # reported below as not run

    async def _device(self, task: Task, entry: DeviceEntry) -> None:
        """Never raises (except cancellation): an unexpected error is that device's outcome."""
        started = time.time()
        try:
            await self._device_work(task, entry, started)
        except Exception as exc:
            self._start(entry)
            self._finish(Outcome(entry.name, "failed", family=entry.family, reason=classify(exc)[1],
                                 message=f"internal error: {type(exc).__name__}: {exc}", started=started))

    async def _device_work(self, task: Task, entry: DeviceEntry, started: float) -> None:
        dev: Device | None = None
        #: retries and requests of the device's sessions already closed (an idle wait logs out)
        spent = [0, 0]

        def done(status: str, *, reason: str | None = None, message: str | None = None,
                 data: Any = None) -> None:
            # the device's own counters: every request it sent, every retry it made
            retries, requests = spent[0] + (dev.retries if dev else 0), spent[1] + (dev.sent if dev else 0)
            attempts = 1 + retries if dev is not None or requests else 0
            self._start(entry)
            self._finish(Outcome(entry.name, status, family=entry.family, reason=reason,  # type: ignore[arg-type]
                                 message=message, data=data, attempts=attempts, started=started,
                                 requests=requests))

        decided = planned_outcome(task, entry, self.specs)
        if decided is not None:
            return done(decided.status, reason=decided.reason, message=decided.message)
        spec = self.specs(entry.family)
        if entry.name in self._doubtful and task.changes_state(spec):
            self.in_doubt.append(entry.name)  # no outcome: it stays pending until someone decides
            return None
        try:
            creds = self._credentials(entry)
        except AvctlError as exc:
            return done("failed", reason="credentials", message=str(exc))
        idle_deadline: float | None = None  # set when the device is first looked at (after its window opened)
        claimed = False
        try:
            while True:
                if self.options.in_window:
                    await self._window_opens(entry)
                async with self._site_sem(entry.site), self._global:
                    assert self._transport is not None
                    if not claimed:
                        if not self._claim(entry):
                            return None  # another process resuming this job runs it and records its outcome
                        claimed = True
                        self._start(entry)
                    if self.store_error is not None:
                        return done("skipped", reason="not_run", message="not run: the job store could not be "
                                    "written, so no new device was started")
                    closed = self._window_closed(entry)
                    if closed is not None:
                        return done("skipped", reason=WINDOW_CLOSED, message=closed)
                    if dev is None:
                        try:
                            dev = self._new_device(spec, entry, creds)
                        except AvctlError as exc:
                            return done("failed", reason=exc.kind, message=str(exc))
                    if idle_deadline is None and self.options.wait_idle is not None:
                        idle_deadline = self._clock() + self.options.wait_idle
                    try:
                        waiting = await self._attempt(task, entry, dev, idle_deadline, done)
                    finally:
                        # the logout is inside the slots: the limits count it like any request
                        spent[0], spent[1] = spent[0] + dev.retries, spent[1] + dev.sent
                        await self._close(dev)
                        dev = None
                    if not waiting:
                        return None
                # busy and still allowed to wait: logged out, the slots given back while waiting
                await self._sleep(self.options.idle_poll)
        finally:
            if dev is not None:
                await self._close(dev)

    async def _close(self, dev: Device) -> None:
        """Log out (VideoOS sessions left open degrade the device) and release the device's pooled
        connections (memory follows the concurrency, not the fleet size); never let either change
        the outcome."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(dev.close(), self.options.timeout)

    def _busy_message(self, detail: str, busy: bool | None) -> str:
        waited = f" after waiting {describe_duration(self.options.wait_idle)}" if self.options.wait_idle else ""
        if busy:
            return f"not touched: {detail}{waited}"
        return f"not touched: could not tell whether the room is in use ({detail}){waited}"

    async def _attempt(self, task: Task, entry: DeviceEntry, dev: Device, idle_deadline: float | None,
                       done: Callable[..., None]) -> bool:
        """One try at the device: the in-call guard, then the task. True: the device is busy and may
        still be waited for (nothing was sent); False: it has its outcome."""
        try:
            async with asyncio.timeout(self.options.device_timeout):
                if self.options.if_idle or self.options.wait_idle is not None:
                    busy = await dev.busy()
                    if busy.busy is not False:
                        if idle_deadline is not None and self._clock() + self.options.idle_poll <= idle_deadline:
                            return True
                        done("skipped", reason="in_call" if busy.busy else "idle_unknown",
                             message=self._busy_message(busy.detail, busy.busy))
                        return False
                # one folder per device: every device names its log file the same way
                data = await task.run(dev, download_to=Path(self.options.output_dir) / entry.name,
                                      overwrite=self.options.overwrite)
                if self.options.wait:
                    back = await self._wait_until_back(dev)
                    data = {"back_after": round(back, 1)} if data is None else {
                        "result": data, "back_after": round(back, 1)}
            done("ok", data=data)
        except TimeoutError:
            done("unreachable", reason="timeout",
                 message=f"no outcome within the device deadline of {self.options.device_timeout:g} s")
        except Exception as exc:  # every device must end with an outcome
            status, reason = classify(exc)
            done(status, reason=reason, message=str(exc) or type(exc).__name__)
        return False

    def _new_device(self, spec: Spec, entry: DeviceEntry, creds: Credentials) -> Device:
        assert self._transport is not None
        return Device(spec, entry.host, port=entry.port, scheme=entry.scheme, credentials=creds,
                      transport=self._transport, timeout=self.options.timeout, name=entry.name,
                      ports={**entry.ports, **self.options.ports},
                      schemes={**entry.schemes, **self.options.schemes},
                      allow_cleartext=entry.allow_cleartext or self.options.allow_cleartext,
                      max_response_bytes=self.options.max_response_bytes,
                      max_download_bytes=self.options.max_download_bytes,
                      retry=self.options.retry_policy, sleep=self._sleep,
                      on_call=lambda call: self._call_finished(entry, call),
                      on_send=lambda action: self._sending(entry, action))

    # -- maintenance windows -------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def _window_opens(self, entry: DeviceEntry) -> None:
        """Wait until the device's site window is open, unless this job already saw it open (then
        `_window_closed` decides: a window that closed does not reopen within the job)."""
        key = entry.site or ""
        while key not in self._window_close:
            assert entry.window is not None and entry.timezone is not None  # checked by check_windows
            now = self._now()
            opens, closes = entry.window.next_open(now, zone(entry.timezone))
            if opens <= now:
                self._window_close[key] = closes
                return
            log.info("avctl: %s waits for the window of site %s (opens %s)", entry.name, key, opens.isoformat())
            await self._sleep((opens - now).total_seconds())

    def _window_closed(self, entry: DeviceEntry) -> str | None:
        """Why the device may not start now (its site's window closed), or None."""
        if not self.options.in_window:
            return None
        closes = self._window_close.get(entry.site or "")
        if closes is None or self._now() < closes:
            return None
        assert entry.timezone is not None
        local = closes.astimezone(zone(entry.timezone))
        return (f"not started: the maintenance window of site {entry.site or '(none)'} closed at "
                f"{local:%Y-%m-%d %H:%M %Z}; resume the job in the next window")

    def _credentials(self, entry: DeviceEntry) -> Credentials:
        if entry.password is None:
            return Credentials(entry.user, None)
        secret = self.resolver.resolve(entry.password)
        return Credentials(entry.user, secret.reveal())

    def _sending(self, entry: DeviceEntry, action: Action) -> None:
        """Before a device's first state-changing request: record that it may now change (a
        process that dies after this leaves the device in doubt, not to be run again blindly)."""
        if action.kind != "action" or self.store is None or self.job_id is None or entry.name in self._sent:
            return
        try:
            self.store.mark_sent(self.job_id, entry.name)
        except StoreError as exc:
            self._store_failed(exc)
            raise  # what cannot be recorded is not sent
        self._sent.add(entry.name)

    def _call_finished(self, entry: DeviceEntry, call: CallEvent) -> None:
        self._emit("call_finished", lambda p: p.call_finished(self._job, entry, call))

    async def _wait_until_back(self, dev: Device) -> float:
        """After a reboot: see the device go away (or give it ``wait_grace``), then answer again."""
        probe = probe_action(dev.spec)
        if probe is None:
            raise UsageError(f"family {dev.spec.family} has no query to probe with; cannot --wait")
        opts = self.options
        t0 = time.monotonic()
        deadline = t0 + opts.wait_timeout
        probe_timeout = min(opts.timeout, 5.0)
        went_down = False
        dev.retry = RetryPolicy()  # one request per probe: this poll loop is the retry
        while time.monotonic() < deadline:
            await asyncio.sleep(opts.poll_interval)
            try:
                await asyncio.wait_for(dev.call(probe), probe_timeout)
            except AuthenticationError:
                raise
            except (TransportError, TimeoutError):
                went_down = True
                continue
            except AvctlError:
                went_down = True  # answering with errors while booting
                continue
            if went_down or time.monotonic() - t0 >= opts.wait_grace:
                return time.monotonic() - t0
        raise DeviceTimeout(f"{dev.name} did not answer again within {opts.wait_timeout:g} s")

