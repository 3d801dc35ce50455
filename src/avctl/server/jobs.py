"""Fleet jobs in the server: run submitted jobs as asyncio tasks and tell subscribers their progress.

`LocalJobExecutor` is the job half of the executor interface (``avctl.server.executor``): it runs
a recorded job with the fleet runner in the server's event loop (``avctl.fleet.jobs.execute``),
so the job store gets every outcome as it is known and the audit log a row per state-changing
call naming the user who started the job. Each outcome is then published to a `JobProgress`
broker, which the API streams to clients as server-sent events.

Everything here runs on one event loop (the server's): `submit_job` and `JobProgress.publish`
must be called from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from avctl.fleet.audit import AuditSink
from avctl.fleet.credentials import CredentialResolver
from avctl.fleet.inventory import DeviceEntry
from avctl.fleet.jobs import execute, spec_provider
from avctl.fleet.processors import AuditRecorder, BaseProcessor, JobInfo
from avctl.fleet.results import Outcome, summarize
from avctl.fleet.runner import FleetRunner, RunOptions
from avctl.fleet.store import JobStore, StoreError
from avctl.server.executor import JobSubmission
from avctl.server.live import ChangeFeed
from avctl.transport.tls import TLSPolicy

log = logging.getLogger(__name__)

#: one progress event: {"event": "outcome", "job": id, "outcome": {...}} or {"event": "done", ...}
ProgressEvent = dict[str, Any]


class JobProgress:
    """A broker: per job, one asyncio queue per subscriber; publishers never wait for a reader.

    Queues are unbounded: a job publishes at most one event per device plus ``done``, so a slow
    reader costs memory proportional to the job, never a stalled job.
    """

    def __init__(self, changes: ChangeFeed | None = None) -> None:
        self._subscribers: dict[int, set[asyncio.Queue[ProgressEvent]]] = {}
        #: told of every event, for the pages that list jobs
        self._changes = changes

    @contextlib.contextmanager
    def subscribe(self, job_id: int) -> Iterator[asyncio.Queue[ProgressEvent]]:
        """A queue of the job's events published from now on, until the block ends."""
        queue: asyncio.Queue[ProgressEvent] = asyncio.Queue()
        self._subscribers.setdefault(job_id, set()).add(queue)
        try:
            yield queue
        finally:
            subs = self._subscribers.get(job_id)
            if subs is not None:
                subs.discard(queue)
                if not subs:
                    del self._subscribers[job_id]

    def publish(self, job_id: int, event: ProgressEvent) -> None:
        for queue in self._subscribers.get(job_id, ()):
            queue.put_nowait(event)
        if self._changes is not None:
            self._changes.publish("jobs")

    def subscribers(self, job_id: int) -> int:
        return len(self._subscribers.get(job_id, ()))


def outcome_event(job_id: int, outcome: Outcome) -> ProgressEvent:
    return {"event": "outcome", "job": job_id, "outcome": outcome.as_dict()}


def done_event(job_id: int, state: str, counts: dict[str, int]) -> ProgressEvent:
    return {"event": "done", "job": job_id, "state": state, "counts": counts}


class ProgressPublisher(BaseProcessor):
    """A runner processor: each device outcome, once stored, goes to the job's subscribers."""

    def __init__(self, progress: JobProgress) -> None:
        self.progress = progress

    def device_finished(self, job: JobInfo, outcome: Outcome) -> None:
        if job.id is not None:
            self.progress.publish(job.id, outcome_event(job.id, outcome))


class LocalJobExecutor:
    """Runs submitted jobs in this process (the job half of ``avctl.server.executor.Executor``).

    ``audit`` opens the audit log for one job (closed when the job ends). ``tls`` and ``resolver``
    are how devices are reached and their passwords found, as for ``avctl fleet``.
    """

    engine = "local"

    def __init__(self, *, store: JobStore, audit: Callable[[], AuditSink], progress: JobProgress,
                 tls: TLSPolicy | None = None, resolver: CredentialResolver | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.store = store
        self.audit = audit
        self.progress = progress
        self.tls = tls
        self.resolver = resolver or CredentialResolver()
        self._sleep = sleep
        self._tasks: dict[int, asyncio.Task[None]] = {}

    def check(self, devices: Sequence[DeviceEntry], options: RunOptions) -> None:
        """Every job the runner plans can run here."""

    def set_poll_targets(self, devices: Sequence[DeviceEntry]) -> None:
        """Polling is the poll engine's (``avctl.server.poll``); this executor only runs jobs."""

    def forget_pins(self, endpoints: Sequence[tuple[str, int]]) -> None:
        """Jobs check pins through the server's own policy, which replaced them itself."""

    def submit_job(self, job: JobSubmission) -> None:
        task = asyncio.get_running_loop().create_task(self._run(job), name=f"avctl-job-{job.job_id}")
        self._tasks[job.job_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(job.job_id, None))

    def running(self) -> list[int]:
        """Ids of the jobs this executor is running now."""
        return sorted(self._tasks)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        """Cancel running jobs: each ends ``interrupted`` with its finished outcomes kept (resumable)."""
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, sub: JobSubmission) -> None:
        try:
            audit = self.audit()
        except StoreError as exc:
            log.error("avctl: job %s not run: %s", sub.job_id, exc)
            with contextlib.suppress(StoreError):
                self.store.set_state(sub.job_id, "interrupted")
            self._done(sub.job_id)
            return
        try:
            runner = FleetRunner(store=self.store, specs=spec_provider(sub.spec_overrides), tls=self.tls,
                                 resolver=self.resolver, options=sub.options, sleep=self._sleep,
                                 processors=[AuditRecorder(audit, user=sub.user), ProgressPublisher(self.progress)])
            await execute(self.store, self.store.get_job(sub.job_id), runner, sub.task, sub.devices)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # execute() closed the job as interrupted; say why in the log
            log.error("avctl: job %s failed: %s: %s", sub.job_id, type(exc).__name__, exc)
        finally:
            audit.close()
            self._done(sub.job_id)

    def _done(self, job_id: int) -> None:
        """Tell subscribers the job ended, with what the store holds (what they can read back)."""
        state, counts = "interrupted", summarize(())
        with contextlib.suppress(StoreError):
            state = self.store.get_job(job_id).state
            counts = {**self.store.counts(job_id)}
            counts["total"] = sum(counts.values())
        self.progress.publish(job_id, done_event(job_id, state, counts))
