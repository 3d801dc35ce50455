"""Configuration jobs on a fleet: backup, plan/drift, apply and restore, each one recorded job.

The CLI and the server both call these; what they add is how they ask for confirmation and how
they show the results. A job's outcomes carry the per-device data (snapshot ids, differences,
applied keys); `drift_rows` and `key_counts` turn plan/drift outcomes into a report.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from avctl.config.desired import Desired
from avctl.config.model import Snapshot, SnapshotStore
from avctl.config.tasks import ApplyTask, BackupTask, PlanTask, _ConfigTask, config_support
from avctl.errors import UsageError
from avctl.fleet.inventory import DeviceEntry, Inventory
from avctl.fleet.jobs import create_job, execute
from avctl.fleet.results import JobReport, Outcome
from avctl.fleet.runner import FleetRunner
from avctl.fleet.store import JobStore
from avctl.spec import Spec
from avctl.spec.variables import lookup


@dataclass
class ConfigJobs:
    """Everything a configuration job needs besides its devices: the journal, the snapshots and a
    factory of fleet runners (one per job: it owns the job's transport and outcomes)."""

    store: JobStore
    snapshots: SnapshotStore
    runner: Callable[[], FleetRunner]
    inventory: Inventory
    selection: str = "all"
    user: str | None = None
    #: told each job's id as soon as it is recorded (a scheduled command links its run to it)
    on_job: Callable[[int], None] | None = None
    #: runs a recorded job (``avctl.fleet.jobs.execute``: in this process; the Temporal engine
    #: gives its own, with the same arguments)
    execute: Callable[..., Awaitable[JobReport]] = execute
    #: recorded with each job ("temporal": its state is its workflow's)
    engine: str = "local"

    async def _run(self, task: _ConfigTask, devices: Sequence[DeviceEntry],
                   decided: Sequence[Outcome] = ()) -> JobReport:
        runner = self.runner()
        by_name = {d.name: d for d in self.inventory.devices}
        all_devices = [*devices, *(by_name[o.device] for o in decided)]
        job = create_job(self.store, task, selection=self.selection, devices=all_devices,
                         inventory=self.inventory, options=runner.options, user=self.user, engine=self.engine)
        task.job_id = job.id
        if self.on_job is not None:
            self.on_job(job.id)
        return await self.execute(self.store, job, runner, task, devices, decided=decided)

    async def backup(self, devices: Sequence[DeviceEntry]) -> JobReport:
        return await self._run(BackupTask(self.snapshots), devices)

    async def plan(self, devices: Sequence[DeviceEntry], desired: Mapping[str, Mapping[str, Desired]], *,
                   name: str = "config-plan") -> JobReport:
        run, decided = _split(devices, desired)
        return await self._run(PlanTask(desired, name=name), run, decided)

    async def apply(self, devices: Sequence[DeviceEntry], desired: Mapping[str, Mapping[str, Desired]],
                    confirmed: Mapping[str, frozenset[str]], *, name: str = "config-apply",
                    reason: Any = "pre-apply") -> JobReport:
        run, decided = _split(devices, desired)
        task = ApplyTask(desired, self.snapshots, confirmed=confirmed, name=name, reason=reason)
        return await self._run(task, run, decided)


def _split(devices: Sequence[DeviceEntry],
           desired: Mapping[str, Mapping[str, Desired]]) -> tuple[list[DeviceEntry], list[Outcome]]:
    """Devices to run, and the outcomes of those with nothing desired (skipped before any I/O)."""
    run, decided = [], []
    for d in devices:
        if d.name in desired:
            run.append(d)
        else:
            decided.append(Outcome(d.name, "skipped", family=d.family, reason="no_desired",
                                   message="no desired configuration for this device"))
    return run, decided


# --- reading plan and drift outcomes ------------------------------------------------------------


@dataclass(frozen=True)
class DriftRow:
    device: str
    family: str | None
    key: str
    current: Any
    desired: Any
    where: str
    applies: str
    settable: bool
    reported: bool

    def as_dict(self) -> dict[str, Any]:
        return {"device": self.device, "family": self.family, "key": self.key, "current": self.current,
                "desired": self.desired, "where": self.where, "applies": self.applies,
                "settable": self.settable, "reported": self.reported}


def drift_rows(outcomes: Sequence[Outcome]) -> list[DriftRow]:
    rows = []
    for o in outcomes:
        if o.status != "ok" or not isinstance(o.data, dict):
            continue
        for c in o.data.get("changes", []):
            rows.append(DriftRow(o.device, o.family, c["key"], c["current"], c["desired"], c["where"],
                                 c["applies"], c["settable"], c.get("reported", True)))
    return rows


def key_counts(rows: Sequence[DriftRow]) -> dict[str, int]:
    """Drifted devices per key, most first."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.key] = counts.get(r.key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def needs_confirmation(rows: Sequence[DriftRow]) -> dict[str, frozenset[str]]:
    """Device -> settable keys whose change needs a restart or reboot (asked before apply)."""
    out: dict[str, set[str]] = {}
    for r in rows:
        if r.settable and r.applies != "live":
            out.setdefault(r.device, set()).add(r.key)
    return {k: frozenset(v) for k, v in out.items()}


# --- restore --------------------------------------------------------------------------------------


@dataclass
class RestorePlan:
    desired: dict[str, Desired]
    #: keys of the snapshot that are not restored, with why
    left: dict[str, str] = field(default_factory=dict)


def restore_desired(snapshot: Snapshot, spec: Spec) -> RestorePlan:
    """A snapshot as desired state: every key the API can set, except secrets (never stored)."""
    if config_support(spec):
        raise UsageError(str(config_support(spec)))
    plan = RestorePlan({})
    where = f"snapshot {snapshot.id}"
    for key, value in snapshot.values.items():
        var = lookup(spec, key)
        if key in snapshot.secrets:
            plan.left[key] = "a secret: snapshots never hold secrets"
        elif var is None:
            plan.left[key] = "not in the family's catalogue (read-only record)"
        elif var.access == "RO":
            plan.left[key] = "read-only: cannot be set through the API"
        else:
            plan.desired[key] = Desired(key, value, where, applies=var.applies, write_via=var.write_via)
    return plan
