"""The workflows of a fleet job: one ``FleetJob``, one ``SiteJob`` child per site.

Both run on the control plane's task queue (the control plane is always reachable; sites may
not be): only the device work runs at a site, as ``avctl.run_devices`` activities on the site's
queue. A site whose worker is down keeps its devices waiting (Temporal keeps the activity
scheduled), or, with a site deadline, ends them *skipped* (``site_unreachable``) while the other
sites finish. Every batch's results are recorded by a control activity before the batch counts as
done, so the store sees a job's progress batch by batch.

Workflow code must be deterministic: no I/O, no clock but ``workflow.now()``, no avctl imports
(activities are named by string).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, TimeoutType

from avctl.fleet.gates import gate_message
from avctl.temporal.model import (
    FALLBACK_REPORT,
    FINISH_JOB,
    FLEET_JOB,
    NON_RETRYABLE,
    RECORD_BATCH,
    RECORD_FALLBACK,
    RUN_DEVICES,
    RUN_SCHEDULED,
    SCHEDULED_RUN,
    SITE_JOB,
    SITE_UNREACHABLE,
    WINDOW_TIMES,
    AuditData,
    BatchInput,
    BatchResult,
    DeviceResult,
    FallbackReport,
    JobInput,
    JobSummary,
    RecordInput,
    Ring,
    ScheduledRun,
    ScheduledRunInput,
    SiteDevices,
    SiteInput,
    WindowQuery,
    WindowTimes,
    members,
    site_queue,
)

#: the skip reason of devices a maintenance window closed on (as the local runner's, resumable)
WINDOW_CLOSED = "window_closed"
#: recording in the control plane's own store: retried until it works (a full disk is fixed by a person)
_RECORD_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=60))


def _count(results: list[DeviceResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in results:
        status = str(r.outcome.get("status"))
        counts[status] = counts.get(status, 0) + 1
    return counts


def _results_of(details: Any) -> list[DeviceResult]:
    """Heartbeat details (a list of DeviceResult, as the converter gives them back: dicts)."""
    out: list[DeviceResult] = []
    for item in (details or []):
        if isinstance(item, DeviceResult):
            out.append(item)
        elif isinstance(item, dict) and isinstance(item.get("outcome"), dict):
            out.append(DeviceResult(outcome=item["outcome"],
                                    audit=[AuditData(**a) for a in item.get("audit") or [] if isinstance(a, dict)]))
    return out


def _ended(packed: str, known: list[DeviceResult], status: str, reason: str, message: str) -> list[DeviceResult]:
    """Every device of a packed batch without a known result ends with this one (a batch that
    cannot run any more)."""
    done = {str(r.outcome.get("device")) for r in known}
    return [*known, *(DeviceResult(outcome={"device": name, "family": family, "status": status,
                                            "reason": reason, "message": message, "attempts": 0,
                                            "requests": None})
                      for name, family in members(packed) if name not in done)]


@workflow.defn(name=SITE_JOB)
class SiteJobWorkflow:
    def __init__(self) -> None:
        self._done = 0
        self._counts: dict[str, int] = {}

    @workflow.query
    def progress(self) -> dict[str, int]:
        return {"done": self._done, **self._counts}

    @workflow.run
    async def run(self, job: SiteInput) -> dict[str, int]:
        gate = asyncio.Semaphore(max(1, job.limits.parallel_batches))
        window = await self._window_opens(job)

        async def one(n: int, devices: str) -> None:
            async with gate:
                if window is not None and workflow.now().timestamp() >= window.closes:
                    batch = BatchResult(job.site, _ended(devices, [], "skipped", WINDOW_CLOSED, _closed(job, window)))
                else:
                    batch = await self._run_batch(job, n, devices)
                await self._record(job, batch)

        await asyncio.gather(*(one(n, b) for n, b in enumerate(job.batches)))
        return dict(self._counts)

    async def _record(self, job: SiteInput, batch: BatchResult) -> None:
        await workflow.execute_activity(
            RECORD_BATCH, RecordInput(job.job, batch), task_queue=job.job.control_queue,
            start_to_close_timeout=timedelta(minutes=5), retry_policy=_RECORD_RETRY)
        self._done += len(batch.results)
        for status, n_status in _count(batch.results).items():
            self._counts[status] = self._counts.get(status, 0) + n_status

    async def _window_opens(self, job: SiteInput) -> WindowTimes | None:
        """With a window: wait (a durable timer) until it opens; when it closes, or None."""
        if job.window is None:
            return None
        times: WindowTimes = await workflow.execute_activity(
            WINDOW_TIMES, WindowQuery(job.window, workflow.now().timestamp()), task_queue=job.job.control_queue,
            result_type=WindowTimes, start_to_close_timeout=timedelta(minutes=1), retry_policy=_RECORD_RETRY)
        wait = times.opens - workflow.now().timestamp()
        if wait > 0:
            await workflow.sleep(timedelta(seconds=wait))
        return times

    async def _run_batch(self, job: SiteInput, n: int, devices: str) -> BatchResult:
        limits = job.limits
        try:
            result: BatchResult = await workflow.execute_activity(
                RUN_DEVICES, BatchInput(job.job, job.task, job.options, job.site, devices, job.schedule, job.specs),
                task_queue=site_queue(job.site), result_type=BatchResult, activity_id=f"batch-{n}",
                schedule_to_start_timeout=(timedelta(seconds=limits.site_deadline)
                                           if limits.site_deadline is not None else None),
                start_to_close_timeout=timedelta(seconds=limits.batch_timeout),
                heartbeat_timeout=timedelta(seconds=limits.heartbeat),
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1),
                                         maximum_interval=timedelta(seconds=30),
                                         non_retryable_error_types=NON_RETRYABLE))
            return result
        except ActivityError as exc:
            cause = exc.cause
            if isinstance(cause, TimeoutError) and cause.type == TimeoutType.SCHEDULE_TO_START:
                known = _results_of(cause.last_heartbeat_details)
                return BatchResult(job.site, _ended(
                    devices, known, "skipped", SITE_UNREACHABLE,
                    f"not run: no worker of site {job.site} took the devices within the site deadline "
                    f"of {limits.site_deadline:g} s; run them again when it is back (avctl jobs rerun)"))
            if isinstance(cause, TimeoutError):
                known = _results_of(cause.last_heartbeat_details)
                which = cause.type.name.lower() if cause.type else "timeout"
                return BatchResult(job.site, _ended(devices, known, "failed", "engine",
                                                    f"the site's batch timed out ({which})"))
            kind = cause.type if isinstance(cause, ApplicationError) and cause.type else "engine"
            text = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
            return BatchResult(job.site, _ended(devices, [], "failed", str(kind).lower(), text))


def _closed(job: SiteInput, window: WindowTimes) -> str:
    return (f"not started: the maintenance window of site {job.site} closed at {window.closes_local}; "
            "resume the job in the next window")


@workflow.defn(name=FLEET_JOB)
class FleetJobWorkflow:
    """Ring by ring (one ring when there are none): every site of the ring at once, each a child
    workflow; then the soak time (a durable timer) and the gate; a failed gate ends every later
    device skipped, unsent."""

    def __init__(self) -> None:
        self._sites: dict[str, dict[str, int]] = {}
        self._stopped: str | None = None

    @workflow.query
    def progress(self) -> dict[str, dict[str, int]]:
        return dict(self._sites)

    @workflow.run
    async def run(self, job: JobInput) -> JobSummary:
        rollout = job.rollout
        if members(rollout.outside):
            names = ", ".join(r.name for r in rollout.rings)
            await self._skip(job, rollout.outside, "no_ring", f"in none of the rings {names}")
        for n, ring in enumerate(rollout.rings):
            if self._stopped is not None:
                for part in ring.sites:
                    for packed in part.batches:
                        await self._skip(job, packed, "gate", f"not run: {self._stopped}")
                continue
            counts = await self._run_ring(job, ring)
            if n == len(rollout.rings) - 1 or not any(part.count for part in ring.sites):
                continue
            if rollout.soak:
                await workflow.sleep(timedelta(seconds=rollout.soak))
            if rollout.gate is not None:
                ran = sum(v for k, v in counts.items() if k != "skipped")
                self._stopped = gate_message(ring.name, counts.get("ok", 0), ran, rollout.gate)
        await workflow.execute_activity(FINISH_JOB, job.job, task_queue=job.job.control_queue,
                                        start_to_close_timeout=timedelta(minutes=5), retry_policy=_RECORD_RETRY)
        total: dict[str, int] = {}
        for counts in self._sites.values():
            for status, n_status in counts.items():
                total[status] = total.get(status, 0) + n_status
        return JobSummary(job.job.job_id, total, dict(self._sites))

    async def _run_ring(self, job: JobInput, ring: Ring) -> dict[str, int]:
        me = workflow.info()
        prefix = f"{me.workflow_id}.ring.{ring.name}" if ring.name else me.workflow_id
        ring_counts: dict[str, int] = {}

        async def site(part: SiteDevices) -> None:
            counts = await workflow.execute_child_workflow(
                SiteJobWorkflow.run, SiteInput(job.job, job.task, job.options, part.site, part.batches, job.limits,
                                               job.windows.get(part.site), job.schedule, job.specs),
                id=f"{prefix}.site.{part.site}", task_queue=me.task_queue)
            key = f"{ring.name}/{part.site}" if ring.name else part.site
            self._sites[key] = counts
            for status, n in counts.items():
                ring_counts[status] = ring_counts.get(status, 0) + n

        await asyncio.gather(*(site(part) for part in ring.sites))
        return ring_counts

    async def _skip(self, job: JobInput, devices: str, reason: str, message: str) -> None:
        results = _ended(devices, [], "skipped", reason, message)
        if not results:
            return
        await workflow.execute_activity(RECORD_BATCH, RecordInput(job.job, BatchResult("", results)),
                                        task_queue=job.job.control_queue, start_to_close_timeout=timedelta(minutes=5),
                                        retry_policy=_RECORD_RETRY)
        for status, n in _count(results).items():
            skipped = self._sites.setdefault(f"({reason})", {})
            skipped[status] = skipped.get(status, 0) + n


#: the due time Temporal gives every workflow a schedule starts (backfills included)
_SCHEDULED_TIME = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


@workflow.defn(name=SCHEDULED_RUN)
class ScheduledRunWorkflow:
    """One due time of one avctl schedule in one zone: the control plane runs its command (recorded
    as a run of the schedule, like the local scheduler's), with the zone's sites."""

    @workflow.run
    async def run(self, run: ScheduledRun) -> str:
        due = workflow.info().typed_search_attributes.get(_SCHEDULED_TIME) or workflow.now()
        state: str = await workflow.execute_activity(
            RUN_SCHEDULED, ScheduledRunInput(run.schedule, run.zone, run.sites, due.timestamp()),
            task_queue=run.control_queue, start_to_close_timeout=timedelta(hours=24),
            heartbeat_timeout=timedelta(minutes=2), retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=5),
                non_retryable_error_types=NON_RETRYABLE))
        return state


@workflow.defn(name=FALLBACK_REPORT)
class FallbackReportWorkflow:
    """A site's own run of a site-critical schedule during a WAN outage, reported when the link is
    back: recorded as the schedule's run for that due time (unless the control plane ran it: then
    its job got the site's outcomes through its own batch), with a job holding the outcomes."""

    @workflow.run
    async def run(self, report: FallbackReport) -> str:
        state: str = await workflow.execute_activity(
            RECORD_FALLBACK, report, task_queue=report.queue, start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=60),
                                     non_retryable_error_types=NON_RETRYABLE))
        return state
