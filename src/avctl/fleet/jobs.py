"""Jobs: a fleet run recorded in the store, so it can be shown, audited and resumed.

``create_job`` records the job (selection, parameters redacted, options, every selected device)
and ``execute`` runs it; ``plan_resume`` reloads the inventory named in the job and ``run_resume``
runs the same task on the devices that have no final outcome yet, and only on those. A device
whose outcome was written is never touched again (the store's primary key makes a second outcome
impossible).

Several processes may resume one job at once (or resume it while it runs): each device is
claimed atomically before it starts (``JobStore.claim_device``), so every device is run by one
process only; a claim of a process that died on this host is taken over.

Devices a maintenance window closed on (skipped, ``window_closed``) were never started: a resume
makes them pending again and runs them, in the window that is open then (``--in-window`` is kept).

A parameter that was redacted when the job was recorded (a password parameter) cannot be replayed
from the store; resume asks for it again (``avctl jobs resume ID name=value``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from avctl.errors import UsageError
from avctl.families import builtin_spec, family_names
from avctl.fleet.credentials import MASK
from avctl.fleet.inventory import DeviceEntry, Inventory, load_inventory
from avctl.fleet.paths import os_user
from avctl.fleet.results import JobReport, Outcome
from avctl.fleet.runner import WINDOW_CLOSED, FleetRunner, RunOptions
from avctl.fleet.store import Job, JobStore, StoreError
from avctl.fleet.verbs import Task, make_task
from avctl.spec import Spec, load_spec


def spec_provider(overrides: Mapping[str, str] | None = None) -> Any:
    """Builtin specs, with ``family -> spec file`` overrides (a site's own or a newer spec)."""
    paths = {k: Path(v) for k, v in (overrides or {}).items()}

    @cache
    def get(family: str) -> Spec:
        if family in paths:
            return load_spec(paths[family])
        return builtin_spec(family)

    return get


def options_from(stored: Mapping[str, Any]) -> RunOptions:
    known = RunOptions.__dataclass_fields__
    values = {k: v for k, v in stored.items() if k in known}
    if "rings" in values:  # JSON keeps them as lists
        values["rings"] = tuple((str(name), str(sel)) for name, sel in values["rings"])
    return RunOptions(**values)


def create_job(store: JobStore, task: Task, *, selection: str, devices: Sequence[DeviceEntry],
               inventory: Inventory, options: RunOptions, spec_overrides: Mapping[str, str] | None = None,
               secret_params: Iterable[str] = (), user: str | None = None, engine: str = "local") -> Job:
    """Record a job. ``secret_params`` (spec-marked secrets, see FleetRunner.plan) are stored masked.
    ``user``: who started it (the server's ``web:alice``); the OS user by default. ``engine``:
    "temporal" for a job whose devices run on site workers (its state is its workflow's)."""
    hidden = set(secret_params)
    params = {k: (MASK if k in hidden and v not in (None, "") else v) for k, v in task.params.items()}
    return store.create_job(
        action=task.name, selection=selection, params=params,
        devices=[d.name for d in devices], user=user or os_user(),
        inventory=str(inventory.path.resolve()) if inventory.path else None,
        options={"mode": task.mode, "run": options.as_dict(),
                 "specs": {k: str(Path(v).resolve()) for k, v in (spec_overrides or {}).items()},
                 **({"engine": engine} if engine != "local" else {})})


async def execute(store: JobStore, job: Job, runner: FleetRunner, task: Task,
                  devices: Sequence[DeviceEntry], *, decided: Sequence[Outcome] = ()) -> JobReport:
    """Run and close the job: finished when every device has an outcome, interrupted otherwise.
    ``decided``: outcomes known without running (see `FleetRunner.run`).

    While another process still runs some of the job's devices (a second ``jobs resume``), the job
    stays running: that process closes it. If the store failed mid-job, the report is built from
    the outcomes known in memory, which are more than the store holds.
    """
    try:
        await runner.run(task, devices, job_id=job.id, decided=decided)
    except BaseException:
        with contextlib.suppress(StoreError):
            store.set_state(job.id, "interrupted")
        raise
    if runner.store_error is None:
        try:
            pending = store.pending_devices(job.id)
            if not pending:
                store.set_state(job.id, "finished")
            elif not store.claimed_elsewhere(job.id, pending):
                store.set_state(job.id, "interrupted")
            return JobReport.of(job.id, task.name, store.outcomes(job.id), stopped=runner.stopped)
        except StoreError as exc:
            runner.store_error = exc
    with contextlib.suppress(StoreError):
        store.set_state(job.id, "interrupted")
    outcomes = [runner.outcomes[d.name] for d in devices if d.name in runner.outcomes]
    lost = runner.store_error.message if runner.store_error else None
    return JobReport.of(job.id, task.name, outcomes, store_error=lost, stopped=runner.stopped)


@dataclass
class ResumePlan:
    job: Job
    task: Task
    devices: list[DeviceEntry]
    inventory: Inventory
    options: RunOptions
    spec_overrides: dict[str, str]
    #: pending devices no longer in the inventory: they get a 'failed' outcome on resume
    missing: list[str]
    #: devices a maintenance window closed on: made pending again when the resume starts
    window_closed: list[str] = dataclasses.field(default_factory=list)


def plan_resume(store: JobStore, job_id: int, *, params: Mapping[str, str] | None = None,
                inventory_path: str | None = None) -> ResumePlan:
    job = store.get_job(job_id)
    if job.options.get("engine") == "temporal" and job.state == "running":
        raise UsageError(f"job {job_id} runs on Temporal: its workflow goes on and its outcomes are recorded "
                         "while a control worker runs",
                         hint="start one: avctl worker --control (or avctl serve --engine temporal) on this store")
    window_closed = [o.device for o in store.outcomes(job_id)
                     if o.status == "skipped" and o.reason == WINDOW_CLOSED]
    # a job still running elsewhere is not refused: devices are claimed one by one in the store, so
    # this process runs only those no live process has claimed, and no device is called twice
    if job.effective_state == "finished" and not store.pending_devices(job_id) and not window_closed:
        raise UsageError(f"job {job_id} is finished: every device has an outcome",
                         hint=f"run its failed devices again as a new job: avctl jobs rerun {job_id} --failed")
    task = _task_of(job, params, "resume")
    inventory = _inventory_of(job, inventory_path)
    pending = store.pending_devices(job_id)
    if window_closed:  # started in a later window: they come back in job order
        order = {name: n for n, name in enumerate(job.devices)}
        pending = sorted({*pending, *window_closed}, key=lambda name: order.get(name, len(order)))
    by_name = {d.name: d for d in inventory.devices}
    return ResumePlan(
        job=job, task=task, devices=[by_name[n] for n in pending if n in by_name], inventory=inventory,
        options=options_from(job.options.get("run", {})),
        spec_overrides=dict(job.options.get("specs", {})), missing=[n for n in pending if n not in by_name],
        window_closed=window_closed)


#: the outcomes ``jobs rerun --failed`` runs again
RERUN_STATUSES = ("failed", "unreachable")


def plan_rerun(store: JobStore, job_id: int, *, params: Mapping[str, str] | None = None,
               inventory_path: str | None = None) -> ResumePlan:
    """A new job's plan: the same task, parameters and options as job ``job_id``, on its devices that
    ended failed or unreachable (``missing``: those no longer in the inventory, left out)."""
    job = store.get_job(job_id)
    again = [o.device for o in store.outcomes(job_id) if o.status in RERUN_STATUSES]
    if not again:
        raise UsageError(f"job {job_id} has no failed or unreachable device", hint=f"see 'avctl jobs show {job_id}'")
    task = _task_of(job, params, "rerun")
    inventory = _inventory_of(job, inventory_path)
    by_name = {d.name: d for d in inventory.devices}
    return ResumePlan(job=job, task=task, devices=[by_name[n] for n in again if n in by_name], inventory=inventory,
                      options=options_from(job.options.get("run", {})),
                      spec_overrides=dict(job.options.get("specs", {})),
                      missing=[n for n in again if n not in by_name])


def _task_of(job: Job, params: Mapping[str, str] | None, verb: str) -> Task:
    """The job's task with its stored parameters, ``params`` over them; a secret parameter (stored
    masked) must be given again."""
    merged = dict(job.params)
    merged.update(params or {})
    redacted = sorted(k for k, v in merged.items() if v == MASK)
    if redacted:
        raise UsageError(f"job {job.id} had secret parameters that were not stored: {', '.join(redacted)}",
                         hint=f"give them again: avctl jobs {verb} {job.id} {redacted[0]}=...")
    return make_task(job.action, merged, mode=str(job.options.get("mode", "action")))


def _inventory_of(job: Job, inventory_path: str | None) -> Inventory:
    """The inventory the job used (or ``inventory_path``); families of its --spec files are known."""
    path = inventory_path or job.inventory
    if not path:
        raise UsageError(f"job {job.id} has no inventory file recorded", hint="give --inventory")
    return load_inventory(path, families={*family_names(), *job.options.get("specs", {})})


async def run_resume(store: JobStore, plan: ResumePlan, runner: FleetRunner) -> JobReport:
    store.claim(plan.job.id)
    if plan.window_closed:
        store.reopen(plan.job.id, WINDOW_CLOSED)
    gone = [Outcome(name, "failed", reason="inventory", message="no longer in the inventory")
            for name in plan.missing]
    return await execute(store, plan.job, runner, plan.task, plan.devices, decided=gone)

