"""A site's own runs of its site-critical schedules while it cannot reach Temporal (a WAN outage).

Every time a site-critical schedule's job reaches the site, the worker keeps its plan in its
journal: the schedule's cron expression and zone, the task, its options and this site's devices
(with password references, resolved here). `SiteFallback` checks Temporal every few seconds; once
it has been unreachable for ``after`` seconds, a plan's newest due time that fell in the outage
is run here, with the fleet runner and the journal, exactly as a batch would be. When Temporal
answers again, each such run is reported (``avctl.fallback_report``) and recorded by the control
plane as the schedule's run for that due time; if the control plane ran that due time itself, its
batch for this site, arriving after the outage, gets these outcomes from the journal: no device is
called twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from avctl.errors import AvctlError
from avctl.fleet.jobs import options_from
from avctl.fleet.runner import FleetRunner
from avctl.fleet.verbs import make_task
from avctl.fleet.windows import zone
from avctl.schedule.timing import due_instants
from avctl.temporal.journal import Fallback, Plan
from avctl.temporal.model import DeviceResult, FallbackReport
from avctl.temporal.schedules import schedule_queue
from avctl.temporal.site import JournalAudit, JournalStore, SiteActivities, entry_of
from avctl.temporal.workflows import FallbackReportWorkflow

log = logging.getLogger(__name__)


class SiteFallback:
    def __init__(self, site: SiteActivities, client: Client, *, after: float, every: float = 15.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.site = site
        self.client = client
        self.after = after
        self.every = every
        self.clock = clock
        self.last_reached = clock()

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.every)

    async def check(self) -> None:
        """One look: report what ran here if Temporal answers, else run what fell due if it has
        been unreachable long enough."""
        now = self.clock()
        if await self._reachable():
            self.last_reached = now
            await self._report()
        elif now - self.last_reached >= self.after:
            await self._run_due(now)

    async def _reachable(self) -> bool:
        try:
            await asyncio.wait_for(self.client.service_client.check_health(), 5)
            return True
        except (TimeoutError, RPCError, RuntimeError, OSError):
            return False

    async def _run_due(self, now: float) -> None:
        journal = self.site.journal
        for plan in journal.plans():
            try:
                instants = due_instants(plan.cron, zone(plan.zone), plan.last_due, now)
            except (AvctlError, ValueError) as exc:
                log.error("avctl: site %s: schedule %s cannot be evaluated: %s", self.site.site, plan.schedule, exc)
                continue
            if not instants:
                continue
            due = instants[-1]  # the newest only, as the schedulers do after an outage
            run = journal.start_fallback(plan, due)
            if run is None:
                continue
            log.warning("avctl: site %s: Temporal unreachable for %.0f s: running schedule %s (due %s) here",
                        self.site.site, now - self.last_reached, plan.schedule, due)
            await self._run(plan, run)

    async def _run(self, plan: Plan, run: str) -> None:
        site = self.site
        runner = FleetRunner(store=JournalStore(site.journal, run), audit=JournalAudit(site.journal, run),
                             specs=site.specs, tls=site.tls, resolver=site.resolver,
                             options=options_from(plan.options))
        try:
            task = make_task(plan.task.name, plan.task.params, mode=plan.task.mode)
        except AvctlError as exc:
            log.error("avctl: site %s: schedule %s: %s", site.site, plan.schedule, exc)
            return
        await runner.run(task, [entry_of(d) for d in plan.devices], job_id=0)

    async def _report(self) -> None:
        journal = self.site.journal
        plans = {(p.schedule, p.zone): p for p in journal.plans()}
        for fallback in journal.unreported():
            plan = plans.get((fallback.schedule, fallback.zone))
            if plan is None:
                journal.mark_reported(fallback)
                continue
            with contextlib.suppress(WorkflowAlreadyStartedError):
                try:
                    await self.client.start_workflow(
                        FallbackReportWorkflow.run, self._report_of(plan, fallback),
                        id=f"{plan.queue}.fallback.{self.site.site}.{plan.schedule}.{plan.zone}.{fallback.due:.0f}",
                        task_queue=schedule_queue(plan.queue))
                except RPCError as exc:
                    log.error("avctl: site %s: reporting schedule %s: %s", self.site.site, plan.schedule, exc)
                    return  # the next look tries again
            journal.mark_reported(fallback)

    def _report_of(self, plan: Plan, fallback: Fallback) -> FallbackReport:
        names = [d.name for d in plan.devices]
        done = self.site.journal.results(fallback.run, names)
        results = [done.get(n) or DeviceResult({"device": n, "family": d.family, "status": "skipped",
                                                "reason": "not_run",
                                                "message": "not run: the worker stopped during its own run"})
                   for n, d in zip(names, plan.devices, strict=True)]
        return FallbackReport(self.site.site, plan.schedule, plan.zone, fallback.due, plan.task, results,
                              schedule_queue(plan.queue))
