"""Fleet jobs of the server on Temporal (``avctl serve --engine temporal``).

The job half of the executor interface (``avctl.server.executor``), like `LocalJobExecutor`, but a
submitted job becomes a ``FleetJob`` workflow whose devices are run by each site's ``avctl worker
--site NAME``. The server serves its store's control queue: the workflows themselves and the
activities that write each batch's outcomes and audit rows into the server's database. Each outcome
written is published to `JobProgress` as it lands, so the API's server-sent events and the dashboard
show a Temporal job live, like a local one.

A job outlives the server: stopping the server stops its control worker, not the workflow; the
next server (or ``avctl worker --control`` on the same database) picks the job up where it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from temporalio.client import Client
from temporalio.worker import Worker

from avctl.fleet.audit import AuditSink
from avctl.fleet.inventory import DeviceEntry
from avctl.fleet.results import Outcome
from avctl.fleet.runner import RunOptions
from avctl.fleet.store import JobStore, StoreError
from avctl.schedule.store import ScheduleStore
from avctl.server.executor import JobSubmission
from avctl.server.jobs import JobProgress, done_event, outcome_event
from avctl.temporal import engine as temporal
from avctl.temporal.control import control_queue
from avctl.temporal.model import Limits

log = logging.getLogger(__name__)


class TemporalJobExecutor:
    engine = "temporal"

    def __init__(self, *, store: JobStore, audit: Callable[[], AuditSink], progress: JobProgress,
                 target: temporal.TemporalTarget, store_location: str, limits: Limits | None = None,
                 schedules: ScheduleStore | None = None, store_arg: str | None = None) -> None:
        self.store = store
        #: the schedules of the same database: Temporal Schedules' runs are run and recorded here
        self.schedules = schedules
        self.store_arg = store_arg
        self.audit = audit
        self.progress = progress
        self.target = target
        self.queue = control_queue(temporal.store_identity(store_location))
        self.limits = limits or Limits()
        self._client: Client | None = None
        self._audit: AuditSink | None = None
        self._workers: list[Worker] = []
        self._serving: asyncio.Task[None] | None = None
        self._tasks: dict[int, asyncio.Task[None]] = {}

    def check(self, devices: Sequence[DeviceEntry], options: RunOptions) -> None:
        """What the engine refuses (a plain-text password in the inventory), before a job is recorded."""
        temporal.device_data(devices)

    def set_poll_targets(self, devices: Sequence[DeviceEntry]) -> None:
        """Polling stays the poll engine's."""

    def forget_pins(self, endpoints: Sequence[tuple[str, int]]) -> None:
        """Site workers keep their own pins."""

    def submit_job(self, job: JobSubmission) -> None:
        if self._client is None:
            raise temporal.EngineError("the Temporal engine is not connected")
        task = asyncio.get_running_loop().create_task(self._start(job), name=f"avctl-temporal-job-{job.job_id}")
        self._tasks[job.job_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(job.job_id, None))

    def running(self) -> list[int]:
        return sorted(self._tasks)

    async def start(self) -> None:
        self._client = await temporal.connect(self.target)
        self._audit = self.audit()
        self._workers = [temporal.control_worker(self._client, self.queue, self.store, self._audit,
                                               on_outcome=self._outcome, on_finish=self._finished)]
        if self.schedules is not None:
            self._workers.append(temporal.schedule_worker(self._client, self.queue, self.store, self._audit,
                                                        self.schedules, self.store_arg))
        self._serving = asyncio.get_running_loop().create_task(temporal.serve_workers(self._workers),
                                                               name="avctl-temporal-control")
        log.info("avctl serve: jobs run on Temporal at %s (control queue %s)", self.target.address, self.queue)

    async def stop(self) -> None:
        """The control worker stops; the workflows go on and the next server takes them up."""
        for t in list(self._tasks.values()):
            t.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        for worker in self._workers:
            with contextlib.suppress(Exception):
                await worker.shutdown()
        if self._serving is not None:
            with contextlib.suppress(BaseException):
                await self._serving
        if self._audit is not None:
            self._audit.close()

    async def _start(self, sub: JobSubmission) -> None:
        """Start the job's workflow and wait for its end (its outcomes arrive through the control worker)."""
        assert self._client is not None
        try:
            job = await asyncio.to_thread(self.store.get_job, sub.job_id)
            handle = await temporal.start_job(self._client, job, sub.task, sub.devices, sub.options, queue=self.queue,
                                              limits=self.limits, spec_overrides=sub.spec_overrides)
            log.info("avctl serve: job %s: workflow %s", sub.job_id, handle.id)
            await handle.result()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("avctl serve: job %s on Temporal: %s: %s", sub.job_id, type(exc).__name__, exc)
            with contextlib.suppress(StoreError):
                self.store.set_state(sub.job_id, "interrupted")
            self._finished(sub.job_id, "interrupted")

    def _outcome(self, job_id: int, outcome: Outcome) -> None:
        self.progress.publish(job_id, outcome_event(job_id, outcome))

    def _finished(self, job_id: int, state: str) -> None:
        counts: dict[str, int] = {}
        with contextlib.suppress(StoreError):
            counts = {**self.store.counts(job_id)}
            counts["total"] = sum(counts.values())
        self.progress.publish(job_id, done_event(job_id, state, counts))
