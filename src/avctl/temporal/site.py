"""The site worker's activity: run a batch of the site's devices with the fleet runner.

What the site adds to the runner (``avctl.fleet.runner``, which does the device work exactly as
``--engine local`` does: limits, retries, the in-call guard, one outcome per device):

- passwords: the devices arrive with *references*; they are resolved here, with the site's own
  environment and secrets file, so a password never travels;
- pins: the site's own known-hosts file (devices are first met from the site);
- the journal (``avctl.temporal.journal``): a device's ``sent`` mark is committed before its first
  state-changing request and its outcome the moment it is known, so a batch run again after its
  worker died runs only what has not started, and verifies (``avctl.temporal.verify``) what may
  have been sent;
- heartbeats: the finished results, every few seconds (Temporal takes a batch whose heartbeats
  stop to have died and runs it again on another worker of the site).

A rejected login is a device's outcome (``failed``, ``auth``): recorded, never retried, by this
attempt or any later one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from avctl.errors import AvctlError
from avctl.fleet.audit import AuditEntry
from avctl.fleet.credentials import CredentialResolver
from avctl.fleet.inventory import DeviceEntry
from avctl.fleet.jobs import options_from, spec_provider
from avctl.fleet.paths import avctl_home
from avctl.fleet.processors import BaseProcessor, JobInfo
from avctl.fleet.results import Outcome
from avctl.fleet.runner import FleetRunner, RunOptions, SpecProvider
from avctl.fleet.store import OutcomeExists
from avctl.fleet.verbs import Task, make_task
from avctl.paths import ensure_private_dir
from avctl.temporal.config_jobs import CarriedSnapshots, site_task
from avctl.temporal.journal import SiteJournal, outcome_dict, outcome_of
from avctl.temporal.model import (
    RUN_DEVICES,
    AuditData,
    BatchInput,
    BatchResult,
    DeviceData,
    DeviceResult,
    unpack,
)
from avctl.temporal.verify import verify_in_doubt
from avctl.transport.address import Address
from avctl.transport.tls import TLSPolicy

log = logging.getLogger(__name__)


def entry_of(d: DeviceData) -> DeviceEntry:
    return DeviceEntry(name=d.name, family=d.family, address=Address(d.host, d.port, d.address_scheme),
                       site=d.site, room=d.room, user=d.user, password=d.password, scheme=d.scheme,
                       disabled=d.disabled, ports=dict(d.ports), schemes=dict(d.schemes),
                       allow_cleartext=d.allow_cleartext, timezone=d.timezone)


class JournalStore:
    """The runner's store at a site: claims are Temporal's (one activity runs a batch), in-doubt
    marks and outcomes go to the journal of the batch's run (``attach``: what rides along with an
    outcome, a configuration job's read)."""

    def __init__(self, journal: SiteJournal, run: str, attach: Callable[[Outcome], Outcome] | None = None) -> None:
        self.journal, self.run, self.attach = journal, run, attach

    def record_outcome(self, job_id: int, outcome: Outcome) -> None:
        self.journal.finish(self.run, self.attach(outcome) if self.attach is not None else outcome)

    def claim_device(self, job_id: int, device: str) -> bool:
        return True

    def mark_sent(self, job_id: int, device: str) -> None:
        self.journal.mark_sent(self.run, device)

    def in_doubt(self, job_id: int) -> list[str]:
        return self.journal.in_doubt(self.run)


class JournalAudit:
    """The runner's audit log at a site: rows kept in the journal until the control plane records them."""

    def __init__(self, journal: SiteJournal, run: str) -> None:
        self.journal, self.run = journal, run

    def record(self, *, device: str, action: str, params: Mapping[str, Any] | None = None,
               outcome: str = "ok", error: BaseException | None = None, message: str | None = None,
               address: str | None = None, family: str | None = None, job_id: int | None = None,
               user: str | None = None, ts: float | None = None, error_kind: str | None = None) -> int:
        kind = getattr(error, "kind", None) or (type(error).__name__ if error is not None else None)
        self.journal.add_call(self.run, device, AuditData(
            action=action, params=dict(params or {}), outcome=outcome, error_kind=kind,
            message=message if message is not None or error is None else str(error), address=address,
            family=family, ts=ts if ts is not None else time.time()))
        return 0

    def query(self, *, device: str | None = None, action: str | None = None, user: str | None = None,
              outcome: str | None = None, job_id: int | None = None, since: float | None = None,
              until: float | None = None, limit: int | None = 100) -> list[AuditEntry]:
        return []  # the control plane's audit log is the one that is read

    def check_writable(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Heartbeat(BaseProcessor):
    """Heartbeats the finished results: at once when a device finishes (Temporal throttles), and
    every few seconds while devices are still running."""

    def __init__(self, finished: list[DeviceResult], every: float) -> None:
        self.finished = finished
        self.every = every

    def device_finished(self, job: JobInfo, outcome: Outcome) -> None:
        self.finished.append(DeviceResult(outcome=outcome_dict(outcome)))
        self.beat()

    def beat(self) -> None:
        # the whole list each time (a batch is small): the last heartbeat Temporal kept is complete
        activity.heartbeat(*self.finished)

    async def keep_beating(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            self.beat()


class SiteActivities:
    """The activities of one site's worker (``avctl worker --site NAME``)."""

    def __init__(self, site: str, journal: SiteJournal, *, resolver: CredentialResolver | None = None,
                 tls: TLSPolicy | None = None, specs: SpecProvider | None = None,
                 identity: str | None = None) -> None:
        self.site = site
        self.journal = journal
        self.resolver = resolver or CredentialResolver()
        self.tls = tls
        self.specs = specs
        self.identity = identity or f"{socket.gethostname()}:{os.getpid()}"

    @activity.defn(name=RUN_DEVICES)
    async def run_devices(self, batch: BatchInput) -> BatchResult:
        info = activity.info()
        if batch.site != self.site:
            raise ApplicationError(f"a batch of site {batch.site} reached the worker of site {self.site}",
                                   type="SiteMismatch", non_retryable=True)
        devices = unpack(batch.devices)
        carried = CarriedSnapshots() if batch.task.mode == "config" else None
        try:
            task = (site_task(batch.task, devices, carried, batch.job.job_id) if carried is not None
                    else make_task(batch.task.name, batch.task.params, mode=batch.task.mode))
            options = options_from(batch.options)
        except AvctlError as exc:
            raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from None
        run = info.workflow_id or info.activity_id  # one job at one site
        names = [d.name for d in devices]
        if batch.schedule is not None:
            self._scheduled(batch, devices, run, names)
        for item in info.heartbeat_details:  # from an attempt on another host of this site
            outcome = item.get("outcome") if isinstance(item, dict) else None
            if isinstance(outcome, dict) and outcome.get("device") in names:
                with contextlib.suppress(OutcomeExists):
                    self.journal.finish(run, outcome_of(outcome))
        known = self.journal.results(run, names)
        todo = [entry_of(d) for d in devices if d.name not in known]
        if info.attempt > 1:
            log.info("avctl: site %s: batch %s attempt %d: %d device(s) finished before, %d to run",
                     self.site, info.activity_id, info.attempt, len(known), len(todo))
        heart = _Heartbeat(list(known.values()), every=max(0.5, _heartbeat_every(info)))
        beating = asyncio.create_task(heart.keep_beating())
        try:
            await self._run(batch, task, options, todo, run, heart, carried.attach if carried is not None else None)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
        results = self.journal.results(run, names)
        return BatchResult(self.site, [results[n] for n in names if n in results], worker=self.identity,
                           attempt=info.attempt)

    def _scheduled(self, batch: BatchInput, devices: list[DeviceData], run: str, names: list[str]) -> None:
        """A scheduled job: a site-critical schedule's plan is kept for a WAN outage; a due time this
        site already ran on its own (during the outage) is reported from that run, not run again."""
        ref = batch.schedule
        assert ref is not None
        if ref.site_critical:
            self.journal.save_plan(ref, batch.job.control_queue, batch.task, dict(batch.options), devices)
        done_here = self.journal.fallback_run(ref.name, ref.zone, ref.due)
        if done_here is not None:
            log.info("avctl: site %s: schedule %s due %s ran here during the outage: its outcomes are reported",
                     self.site, ref.name, ref.due)
            self.journal.adopt(done_here, run, names)

    def specs_for(self, texts: Mapping[str, str]) -> SpecProvider | None:
        """The job's ``--spec`` overrides (their texts, written once into this worker's home under a
        name made of their digest) over the built-in specs; or this worker's own provider."""
        if not texts:
            return self.specs
        folder = ensure_private_dir(avctl_home() / "worker-specs")
        paths = {}
        for family, text in texts.items():
            path = folder / f"{hashlib.sha256(text.encode()).hexdigest()}.md"
            if not path.exists():
                tmp = path.with_suffix(".tmp")
                tmp.write_text(text, encoding="utf-8")
                tmp.replace(path)
            paths[family] = str(path)
        provider: SpecProvider = spec_provider(paths)
        return provider

    async def _run(self, batch: BatchInput, task: Task, options: RunOptions, todo: Sequence[DeviceEntry], run: str,
                   heart: _Heartbeat, attach: Callable[[Outcome], Outcome] | None) -> None:
        store = JournalStore(self.journal, run, attach)
        specs = self.specs_for(batch.specs)
        runner = FleetRunner(store=store, audit=JournalAudit(self.journal, run), specs=specs, tls=self.tls,
                             resolver=self.resolver, options=options, processors=[heart])
        await runner.run(task, todo, job_id=batch.job.job_id)
        if runner.store_error is not None:  # the site's own disk: the batch cannot be trusted to resume
            raise ApplicationError(f"site {self.site}: the worker's journal could not be written: "
                                   f"{runner.store_error}", type="JournalError")
        if runner.in_doubt:
            doubtful = [e for e in todo if e.name in set(runner.in_doubt)]
            for outcome in await verify_in_doubt(task, doubtful, batch.job.started, specs=specs, tls=self.tls,
                                                 resolver=self.resolver, options=options):
                with contextlib.suppress(OutcomeExists):
                    store.record_outcome(batch.job.job_id, outcome)
                heart.device_finished(JobInfo(batch.job.job_id, task.name, ()), outcome)


def _heartbeat_every(info: activity.Info) -> float:
    timeout = info.heartbeat_timeout
    return timeout.total_seconds() / 3 if timeout else 10.0
