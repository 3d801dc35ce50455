"""Configuration jobs (backup, plan, drift, apply, restore) on the Temporal engine.

A configuration task carries per-device state (each device's desired keys, the restart/reboot keys
the user confirmed) and writes snapshots. Across Temporal:

- the control plane turns the task into a `TaskData` (``kind``: backup, plan or apply) and each
  device's part into its `DeviceData.config`, travelling in the device's packed batch;
- the site rebuilds the same task (`site_task`) with `CarriedSnapshots` in place of the snapshot
  store: what the device's read returned (secrets already replaced by the marker: a snapshot never
  holds one) rides in the device's outcome as ``carried_snapshot``;
- the control plane's recording activity saves it into its snapshot store (`land_snapshot`) and
  puts the snapshot's id in the outcome, as a local job would have.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

from avctl.config.desired import Desired
from avctl.config.model import Snapshot, SnapshotReason, SnapshotStore
from avctl.config.store import digest, masked
from avctl.config.tasks import ApplyTask, BackupTask, PlanTask
from avctl.errors import UsageError
from avctl.fleet.results import Outcome
from avctl.fleet.verbs import Task
from avctl.temporal.model import DeviceData, TaskData

CARRIED = "carried_snapshot"


def wire(task: Task) -> tuple[TaskData, dict[str, dict[str, Any]]]:
    """The task as it crosses Temporal, and each device's part of it."""
    if task.mode != "config":
        return TaskData(task.name, task.mode, dict(task.params)), {}
    if isinstance(task, BackupTask):
        return TaskData(task.name, "config", {"kind": "backup"}), {}
    if isinstance(task, ApplyTask):
        return (TaskData(task.name, "config", {"kind": "apply", "reason": task.reason}),
                {name: {"desired": [dataclasses.asdict(d) for d in keys.values()],
                        "confirmed": sorted(task.confirmed.get(name, frozenset()))}
                 for name, keys in task.desired.items()})
    if isinstance(task, PlanTask):
        return (TaskData(task.name, "config", {"kind": "plan"}),
                {name: {"desired": [dataclasses.asdict(d) for d in keys.values()]}
                 for name, keys in task.desired.items()})
    raise UsageError(f"{task.name} does not run on the Temporal engine", hint="run it with --engine local")


def site_task(data: TaskData, devices: Sequence[DeviceData], snapshots: SnapshotStore, job_id: int) -> Task:
    """The configuration task a site runs for ``data`` on ``devices`` (their `DeviceData.config`)."""
    desired = {d.name: {x["key"]: Desired(**x) for x in d.config.get("desired", [])} for d in devices}
    kind = data.params.get("kind")
    if kind == "backup":
        return BackupTask(snapshots, job_id=job_id, name=data.name)
    if kind == "plan":
        return PlanTask(desired, name=data.name)
    if kind == "apply":
        confirmed = {d.name: frozenset(d.config.get("confirmed", [])) for d in devices}
        reason: SnapshotReason = data.params.get("reason", "pre-apply")
        return ApplyTask(desired, snapshots, confirmed=confirmed, job_id=job_id, name=data.name, reason=reason)
    raise UsageError(f"a configuration task of kind {kind!r} is not known here", hint="update the site worker")


class CarriedSnapshots:
    """A site's stand-in for the snapshot store: each device's read is kept to ride in its outcome."""

    def __init__(self) -> None:
        self.carried: dict[str, dict[str, Any]] = {}

    def save(self, device: str, family: str, values: Mapping[str, Any], *, secrets: Sequence[str] = (),
             reason: SnapshotReason = "backup", job_id: int | None = None, notes: Sequence[str] = (),
             now: float | None = None) -> tuple[Snapshot, bool]:
        at = time.time() if now is None else now
        stored, keys = masked(values, secrets)  # no secret value leaves the site, whatever the caller
        self.carried[device] = {"family": family, "values": stored, "secrets": list(keys), "reason": reason,
                                "notes": list(notes), "taken_at": at}
        # id 0 until the control plane has it (land_snapshot puts the real one in the outcome)
        return Snapshot(0, device, family, at, at, digest(stored, keys), stored, keys, reason, job_id,
                        tuple(notes)), True

    def history(self, device: str, *, limit: int = 50) -> list[Snapshot]:
        return []

    def get(self, device: str, ref: str | int) -> Snapshot:
        raise UsageError("snapshots are kept by the control plane, not at a site")

    def latest(self, device: str) -> Snapshot | None:
        return None

    def close(self) -> None:
        pass

    def attach(self, outcome: Outcome) -> Outcome:
        """The outcome with its device's read attached (taken once: a retry reads again)."""
        read = self.carried.pop(outcome.device, None)
        if read is None or not isinstance(outcome.data, dict):
            return outcome
        return dataclasses.replace(outcome, data={**outcome.data, CARRIED: read})


def land_snapshot(outcome: Outcome, snapshots: SnapshotStore | None, job_id: int) -> Outcome:
    """A carried read saved into the control plane's snapshot store; the outcome names the snapshot."""
    data = outcome.data
    if not isinstance(data, dict) or CARRIED not in data:
        return outcome
    read = data[CARRIED]
    rest = {k: v for k, v in data.items() if k != CARRIED}
    if snapshots is None:
        return dataclasses.replace(outcome, data=rest)
    snap, created = snapshots.save(outcome.device, str(read["family"]), read["values"], secrets=read["secrets"],
                                   reason=read["reason"], job_id=job_id, notes=read["notes"],
                                   now=float(read["taken_at"]))
    return dataclasses.replace(outcome, data={**rest, "snapshot": snap.id, "new": created})
