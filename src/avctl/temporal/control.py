"""The control plane's activities: write a batch's results and close the job, in its own store.

Run by whatever holds the job store: the CLI that started the job (while it waits), the server
(``avctl serve --engine temporal``) or ``avctl worker --control``, all on the store's control
queue (``control_queue``). Temporal may run an activity twice (a worker that died after writing,
before reporting), so every write is idempotent by job, device and sequence:

- a device that already has an outcome is left alone (the first outcome is kept);
- its audit rows are written from the first one the log does not hold yet (rows are numbered per
  device in call order), then its outcome: a retry after dying between the two writes the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from avctl.config.model import SnapshotStore
from avctl.errors import AvctlError
from avctl.fleet.audit import AuditSink
from avctl.fleet.results import Outcome
from avctl.fleet.store import JobState, JobStore, OutcomeExists
from avctl.fleet.windows import WindowError, parse_window, zone
from avctl.schedule.runner import Launch, child_command, ended, open_log
from avctl.schedule.store import ScheduleStore
from avctl.temporal.config_jobs import land_snapshot
from avctl.temporal.journal import outcome_of
from avctl.temporal.model import (
    FINISH_JOB,
    RECORD_BATCH,
    RECORD_FALLBACK,
    RUN_SCHEDULED,
    WINDOW_TIMES,
    DeviceResult,
    FallbackReport,
    JobRef,
    RecordInput,
    ScheduledRunInput,
    WindowQuery,
    WindowTimes,
)

log = logging.getLogger(__name__)

#: told of each outcome written (the server's live job progress, the CLI's progress bar)
OutcomeListener = Callable[[int, Outcome], None]
#: told when a job is closed: job id, state
FinishListener = Callable[[int, str], None]


def control_queue(store_location: str) -> str:
    """The control task queue of a store: the same for every process that opens the same store,
    different for another one (a job's records never land in a store that lacks the job)."""
    digest = hashlib.sha256(store_location.encode()).hexdigest()[:16]
    return f"avctl.control.{digest}"


class ControlActivities:
    def __init__(self, store: JobStore, audit: AuditSink, *, on_outcome: OutcomeListener | None = None,
                 on_finish: FinishListener | None = None, schedules: ScheduleStore | None = None,
                 store_arg: str | None = None, snapshots: SnapshotStore | None = None) -> None:
        self.store = store
        self.audit = audit
        self.on_outcome = on_outcome
        self.on_finish = on_finish
        #: the schedules of the same database, and how a scheduled command names it (AVCTL_DB)
        self.schedules = schedules
        self.store_arg = store_arg
        #: where configuration jobs' reads land (a carried snapshot becomes a stored one)
        self.snapshots = snapshots

    @activity.defn(name=RECORD_BATCH)
    async def record_batch(self, rec: RecordInput) -> int:
        """Write the batch's new outcomes and audit rows; returns how many outcomes were new."""
        # the database off the event loop (the server's API shares it); listeners on it
        new = await asyncio.to_thread(self._write, rec.job.job_id, rec.job.user, rec.batch.results)
        self._told(rec.job.job_id, new)
        return len(new)

    def _told(self, job_id: int, outcomes: Sequence[Outcome]) -> None:
        if self.on_outcome is None:
            return
        for outcome in outcomes:
            with contextlib.suppress(Exception):
                self.on_outcome(job_id, outcome)

    def _write(self, job_id: int, user: str, results: Sequence[DeviceResult]) -> list[Outcome]:
        """The outcomes written now (not those recorded before)."""
        # a device's audit rows are written before its outcome: one with an outcome has them all,
        # and the outcome's primary key refuses a second one (never a read of the whole job: a
        # batch at a time, that was quadratic in the job's size)
        new: list[Outcome] = []
        for result in results:
            outcome = land_snapshot(outcome_of(result.outcome), self.snapshots, job_id)
            written = len(self.audit.query(device=outcome.device, job_id=job_id, limit=None))
            for row in result.audit[written:]:
                self.audit.record(device=outcome.device, action=row.action, params=row.params, outcome=row.outcome,
                                  message=row.message, address=row.address, family=row.family,
                                  job_id=job_id, user=user, ts=row.ts, error_kind=row.error_kind)
            try:
                self.store.record_outcome(job_id, outcome)
            except OutcomeExists:
                continue
            new.append(outcome)
        return new

    @activity.defn(name=WINDOW_TIMES)
    async def window_times(self, query: WindowQuery) -> WindowTimes:
        """The site's window open at ``now`` or the next one (time zones are the control plane's
        business: the workflow only sleeps until the instant)."""
        try:
            tz = zone(query.window.timezone)
            opens, closes = parse_window(query.window.window).next_open(datetime.fromtimestamp(query.now, UTC), tz)
        except (WindowError, AvctlError) as exc:
            raise ApplicationError(str(exc), type="UsageError", non_retryable=True) from None
        return WindowTimes(opens.timestamp(), closes.timestamp(), f"{closes.astimezone(tz):%Y-%m-%d %H:%M %Z}")

    @activity.defn(name=FINISH_JOB)
    async def finish_job(self, job: JobRef) -> str:
        """Finished when every device has an outcome; interrupted otherwise (``jobs resume``)."""
        state: JobState = await asyncio.to_thread(self._close, job.job_id)
        if self.on_finish is not None:
            with contextlib.suppress(Exception):
                self.on_finish(job.job_id, state)
        return state

    def _close(self, job_id: int) -> JobState:
        state: JobState = "interrupted" if self.store.pending_devices(job_id) else "finished"
        self.store.set_state(job_id, state)
        return state

    @activity.defn(name=RUN_SCHEDULED)
    async def run_scheduled(self, run: ScheduledRunInput) -> str:
        """Record the due run and run its command, as the local scheduler does; its state.

        Run again by Temporal (this worker died), the run recorded first is followed to its end,
        never started twice (a run is unique by schedule, zone and due time)."""
        if self.schedules is None:
            raise ApplicationError("this control worker has no schedule store", type="UsageError",
                                   non_retryable=True)
        try:
            schedule = self.schedules.get(run.schedule)
        except AvctlError as exc:  # removed meanwhile
            raise ApplicationError(str(exc), type="UsageError", non_retryable=True) from None
        claimed = self.schedules.claim(schedule, run.zone, run.due, trigger="temporal", sites=run.sites,
                                       now=time.time())
        if claimed is None:
            return await self._follow(schedule.id, run)
        if claimed.state != "running":
            return claimed.state  # the previous run is still going: recorded skipped
        launch = Launch(schedule, claimed)
        argv, env = child_command(launch, self.store_arg)
        try:
            with open_log(claimed.id) as out:
                proc = await asyncio.create_subprocess_exec(*argv, cwd=schedule.cwd, env=env,
                                                            stdin=asyncio.subprocess.DEVNULL, stdout=out,
                                                            stderr=asyncio.subprocess.STDOUT)
        except OSError as exc:
            return ended(self.schedules, claimed.id, None, error=exc.strerror or str(exc))
        self.schedules.started(claimed.id, proc.pid)
        while True:
            try:
                code = await asyncio.wait_for(proc.wait(), 10)
                break
            except TimeoutError:
                activity.heartbeat()
        return ended(self.schedules, claimed.id, code)

    async def _follow(self, schedule_id: int, run: ScheduledRunInput) -> str:
        assert self.schedules is not None
        while True:
            self.schedules.close_stale(now=time.time())
            found = self.schedules.run_at(schedule_id, run.zone, run.due)
            if found is None or found.state != "running":
                return found.state if found is not None else "missing"
            activity.heartbeat()
            await asyncio.sleep(5)

    @activity.defn(name=RECORD_FALLBACK)
    async def record_fallback(self, report: FallbackReport) -> str:
        """A site's own run of a site-critical schedule: the schedule's run for that due time and a
        job with its outcomes; or nothing new if the control plane ran that due time itself (its
        job got the site's outcomes from the site's journal, the devices were not called twice)."""
        if self.schedules is None:
            raise ApplicationError("this control worker has no schedule store", type="UsageError",
                                   non_retryable=True)
        try:
            schedule = self.schedules.get(report.schedule)
        except AvctlError as exc:
            raise ApplicationError(str(exc), type="UsageError", non_retryable=True) from None
        now = time.time()
        run = self.schedules.claim(schedule, report.zone, report.due, trigger="fallback", sites=[report.site],
                                   now=now)
        if run is None:
            found = self.schedules.run_at(schedule.id, report.zone, report.due)
            if found is None or found.trigger != "fallback" or found.job_id is not None:
                return "ran by the control plane"
            run = found  # an earlier attempt of this activity claimed it and died before the job
        devices = [str(r.outcome.get("device")) for r in report.results]
        task = report.task
        job = self.store.create_job(action=task.name, selection=f"site {report.site}: its own run during a WAN outage",
                                    params=dict(task.params), devices=devices, user=f"site:{report.site}",
                                    options={"mode": task.mode, "engine": "temporal",
                                             "fallback": {"site": report.site, "schedule": report.schedule,
                                                          "due": report.due}})
        self.schedules.set_job(run.id, job.id)
        self._told(job.id, await asyncio.to_thread(self._write, job.id, f"site:{report.site}", report.results))
        self.store.set_state(job.id, "finished")
        failed = sum(1 for r in report.results if r.outcome.get("status") in ("failed", "unreachable"))
        state = "ok" if not failed else "failed"
        self.schedules.finish(run.id, state=state, exit_code=None, output=None, now=time.time(),
                              reason=f"run by site {report.site} itself while it could not reach Temporal"
                                     + (f"; {failed} device(s) failed" if failed else ""))
        return state
