"""Runner events, nornir-style: processors the fleet runner tells what happens, as it happens.

For one run of a job, the runner calls every processor's

- ``job_started(job)`` first;
- ``device_started(job, device)`` when it takes a device up (not for a device another process
  resuming the same job has claimed: that process reports it);
- ``call_finished(job, device, call)`` after each call a device made (after the device's retries;
  status reads, verb steps and ``--wait`` probes included: `Device.on_call`);
- ``device_finished(job, outcome)`` exactly once per device that gets an outcome in this run, after
  its ``device_started`` (an outcome decided without running, such as a device no longer in the
  inventory on resume, has no ``device_started``);
- ``job_finished(job, outcomes)`` last, also when the run is cancelled.

The job store (`StoreRecorder`), the audit log (`AuditRecorder`), the CLI's progress bar and later
the server subscribe this way. A processor that raises is reported and skipped for that event:
it never ends a device's run or changes an outcome. A `StoreError` from one is different: the
runner then starts no new device (what is not recorded must not be done; see the runner).
Processors are called in order, from the runner's event loop; they must not block for long.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from avctl.device import CallEvent
from avctl.fleet.audit import AuditSink
from avctl.fleet.inventory import DeviceEntry
from avctl.fleet.results import Outcome, classify
from avctl.fleet.store import OutcomeExists, RunStore


@dataclass(frozen=True)
class JobInfo:
    """The run the events belong to."""

    #: the job's id in the store (None: a run without a store)
    id: int | None
    task: str
    #: the devices this run was given, in order
    devices: tuple[str, ...]


class Processor(Protocol):
    def job_started(self, job: JobInfo) -> None: ...
    def device_started(self, job: JobInfo, device: DeviceEntry) -> None: ...
    def call_finished(self, job: JobInfo, device: DeviceEntry, call: CallEvent) -> None: ...
    def device_finished(self, job: JobInfo, outcome: Outcome) -> None: ...
    def job_finished(self, job: JobInfo, outcomes: Sequence[Outcome]) -> None: ...


class BaseProcessor:
    """Every event ignored: subclass and override the events you need."""

    def job_started(self, job: JobInfo) -> None:
        pass

    def device_started(self, job: JobInfo, device: DeviceEntry) -> None:
        pass

    def call_finished(self, job: JobInfo, device: DeviceEntry, call: CallEvent) -> None:
        pass

    def device_finished(self, job: JobInfo, outcome: Outcome) -> None:
        pass

    def job_finished(self, job: JobInfo, outcomes: Sequence[Outcome]) -> None:
        pass


class StoreRecorder(BaseProcessor):
    """Commits each device's outcome the moment it is known (its own transaction)."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    def device_finished(self, job: JobInfo, outcome: Outcome) -> None:
        if job.id is None:
            return
        # another process resuming the job recorded it first: the store keeps the first outcome
        with contextlib.suppress(OutcomeExists):
            self.store.record_outcome(job.id, outcome)


class AuditRecorder(BaseProcessor):
    """One audit row per state-changing call, ok or not (queries are not audited).

    ``user``: who the rows name (the server's ``web:alice``); the audit log's OS user by default."""

    def __init__(self, audit: AuditSink, *, user: str | None = None) -> None:
        self.audit = audit
        self.user = user

    def call_finished(self, job: JobInfo, device: DeviceEntry, call: CallEvent) -> None:
        if call.action.kind != "action":
            return
        outcome = "ok" if call.error is None else classify(call.error)[0]
        self.audit.record(device=device.name, action=call.action.id,
                          params=call.action.public_values(call.params),  # spec-marked secrets masked
                          outcome=outcome, error=call.error, address=str(device.address),
                          family=device.family, job_id=job.id, user=self.user)
