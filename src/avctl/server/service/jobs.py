"""Actions and fleet jobs: validated and authorised before any I/O, then run by the executor.

One device's action is a one-device job: it gets the same journal, outcome and audit rows as a
fleet job, and the same code path. A refused request (role, scope, invalid parameters) records
nothing and sends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from avctl.errors import UsageError
from avctl.fleet.credentials import MASK
from avctl.fleet.inventory import DeviceEntry, Selection
from avctl.fleet.jobs import create_job, options_from, spec_provider
from avctl.fleet.results import Outcome
from avctl.fleet.runner import FleetRunner, RunOptions
from avctl.fleet.store import Job, StoreError
from avctl.fleet.verbs import ActionTask, Task, make_task
from avctl.server.context import ServerContext
from avctl.server.executor import JobSubmission
from avctl.server.model import Principal
from avctl.server.service.devices import find_device, in_scope
from avctl.server.service.errors import Conflict, Forbidden, NotFound, check

#: run options a request may set (never paths, ports or cleartext: those are the server's);
#: overwrite: a new download (a fresh log) replaces the device's file of that name in its own folder
TUNABLE = ("concurrency", "per_site", "timeout", "device_timeout", "retries", "wait", "wait_timeout", "overwrite",
           # the in-call guard, maintenance windows and rollout rings (docs/schedules.md)
           "if_idle", "wait_idle", "in_window", "rings", "gate", "soak")


@dataclass(frozen=True)
class ActionResult:
    job_id: int
    #: None: not finished within the server's wait; follow the job
    outcome: Outcome | None


@dataclass(frozen=True)
class JobDetail:
    job: Job
    state: str
    counts: dict[str, int]
    outcomes: list[Outcome]
    pending: list[str]
    #: pending devices a process that died had already sent a state-changing request to
    in_doubt: list[str] = dataclasses.field(default_factory=list)


def run_options(ctx: ServerContext, requested: Mapping[str, Any] | None) -> RunOptions:
    unknown = sorted(set(requested or {}) - set(TUNABLE))
    if unknown:
        raise UsageError(f"unknown job option {unknown[0]!r}", hint=f"options: {', '.join(TUNABLE)}")
    base = dataclasses.replace(ctx.run_options, output_dir=str(ctx.downloads))
    values = dict(requested or {})
    if "rings" in values:  # [[name, selection], ...] as JSON has it
        rings = values["rings"]
        if not isinstance(rings, list) or not all(
                isinstance(r, list) and len(r) == 2 and all(isinstance(x, str) for x in r) for r in rings):
            raise UsageError("invalid job options: rings must be a list of [name, selection] pairs",
                             hint='e.g. [["canary", "tag=canary"], ["all", ""]]')
        values["rings"] = tuple((name, sel) for name, sel in rings)
    try:
        return dataclasses.replace(base, **values)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"invalid job options: {exc}") from None


def _prepare(ctx: ServerContext, principal: Principal, task: Task, devices: Sequence[DeviceEntry],
             selection: str, options: RunOptions) -> JobSubmission:
    """Plan (validate per family), authorise, record: everything before the first request."""
    runner = FleetRunner(specs=spec_provider(ctx.spec_overrides), options=options)
    counts = runner.plan(task, devices)
    if any(c["disruptive"] and c["run"] for c in counts.values()) and not principal.can("act_disruptive"):
        raise Forbidden(f"{task.name} is disruptive; your role ({principal.role}) may run non-disruptive "
                        "actions only")
    ctx.executor.check(devices, options)  # what the engine cannot run is refused before it is recorded
    ctx.jobs.check_writable()  # what cannot be recorded is not done
    audit = ctx.audit()
    try:
        audit.check_writable()
    finally:
        audit.close()
    job = create_job(ctx.jobs, task, selection=selection, devices=devices, inventory=ctx.inventory(),
                     options=options, spec_overrides=ctx.spec_overrides, secret_params=runner.secret_params,
                     user=principal.audit_name, engine=ctx.executor.engine)
    return JobSubmission(job_id=job.id, task=task, devices=list(devices), options=options,
                         user=principal.audit_name, spec_overrides=dict(ctx.spec_overrides))


def _submit(ctx: ServerContext, sub: JobSubmission) -> None:
    """Hand a recorded job to the executor; one it refuses is closed as interrupted (resumable)."""
    try:
        ctx.executor.submit_job(sub)
    except BaseException:
        with contextlib.suppress(StoreError):
            ctx.jobs.set_state(sub.job_id, "interrupted")
        raise


async def run_action(ctx: ServerContext, principal: Principal, name: str, action: str,
                     params: Mapping[str, Any], options: Mapping[str, Any] | None = None) -> ActionResult:
    """Run one spec action on one device and wait (up to ``ctx.action_wait``) for its outcome.
    ``options``: run options of TUNABLE (e.g. ``overwrite`` for a download)."""
    check(principal, "act")
    entry = find_device(ctx, principal, name)
    task = ActionTask(action, dict(params))
    sub = await asyncio.to_thread(_prepare, ctx, principal, task, [entry], f"name={entry.name}",
                                  run_options(ctx, options))
    with ctx.progress.subscribe(sub.job_id) as events:
        _submit(ctx, sub)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ctx.action_wait):
                while (await events.get())["event"] != "done":
                    pass
    outcomes = await asyncio.to_thread(ctx.jobs.outcomes, sub.job_id)
    return ActionResult(sub.job_id, next((o for o in outcomes if o.device == entry.name), None))


async def start_job(ctx: ServerContext, principal: Principal, *, name: str, mode: str,
                    params: Mapping[str, Any], selection: str,
                    options: Mapping[str, Any] | None = None) -> int:
    """Start a fleet job (an action, or a verb such as ``reboot`` or ``status``) on the selection.

    The selection is read among the principal's devices only: a scoped user's ``family=videoos``
    means their sites' codecs, and nothing tells them about other sites.
    """
    check(principal, "act")
    task = job_task(name, mode, params)
    chosen, devices = selected_devices(ctx, principal, selection)
    sub = await asyncio.to_thread(_prepare, ctx, principal, task, devices, str(chosen), run_options(ctx, options))
    _submit(ctx, sub)
    return sub.job_id


def job_task(name: str, mode: str, params: Mapping[str, Any]) -> Task:
    if mode not in ("action", "verb"):
        raise UsageError(f"unknown mode {mode!r}", hint="action or verb")
    return make_task(name, dict(params), mode=mode)


def selected_devices(ctx: ServerContext, principal: Principal, selection: str) -> tuple[Selection, list[DeviceEntry]]:
    """The selection read among the principal's devices; UsageError when it matches none."""
    chosen = Selection.parse(selection or None)
    visible = in_scope(ctx, principal)
    devices = [d for d in visible if chosen.matches(d)]
    if not devices:
        # close values only from the devices this principal may see: a hint never reveals others
        raise UsageError(f"the selection {chosen} matches no device",
                         hint="; ".join([*chosen.near_misses(visible), "the device list shows what a selection matches "
                                         "(API: GET /api/v1/devices?select=...; agents: find_devices)"]))
    return chosen, devices


def _visible_job(ctx: ServerContext, principal: Principal, job_id: int) -> Job:
    """The job, if every one of its devices is in the principal's sites; NotFound otherwise."""
    try:
        job = ctx.jobs.get_job(job_id)
    except UsageError:
        raise NotFound(f"no job {job_id}") from None
    if principal.sites:
        mine = {d.name for d in in_scope(ctx, principal)}
        if not set(job.devices) <= mine:
            raise NotFound(f"no job {job_id}")
    return job


def job(ctx: ServerContext, principal: Principal, job_id: int) -> JobDetail:
    check(principal, "read")
    found = _visible_job(ctx, principal, job_id)
    outcomes = ctx.jobs.outcomes(job_id)
    counts = ctx.jobs.counts(job_id)
    counts["total"] = sum(counts.values())
    return JobDetail(found, found.effective_state, counts, outcomes, ctx.jobs.pending_devices(job_id),
                     ctx.jobs.in_doubt(job_id))


def list_jobs(ctx: ServerContext, principal: Principal, *, limit: int = 50) -> list[Job]:
    """The newest jobs the principal may see (every device in their sites)."""
    check(principal, "read")
    jobs = ctx.jobs.list_jobs(limit=limit if not principal.sites else max(limit * 4, 200))
    if principal.sites:
        mine = {d.name for d in in_scope(ctx, principal)}
        jobs = [j for j in jobs if set(j.devices) <= mine]
    return jobs[:limit]


def list_jobs_counted(ctx: ServerContext, principal: Principal, *, limit: int = 50) -> list[tuple[Job, dict[str, int]]]:
    """`list_jobs` with each job's outcome counts (``total``: the job's devices, pending ones included)."""
    found = list_jobs(ctx, principal, limit=limit)
    return [(j, {**ctx.jobs.counts(j.id), "total": len(j.devices)}) for j in found]


def running_here(found: Job) -> bool:
    """Whether this server process is running the job now."""
    return (found.state == "running" and found.pid == os.getpid() and found.host == socket.gethostname())


async def resume_job(ctx: ServerContext, principal: Principal, job_id: int,
                     params: Mapping[str, Any] | None = None, *, retry_in_doubt: bool = False) -> int:
    """Run an interrupted job's devices that have no outcome yet, as the same job.

    Devices in doubt (a process that died had sent them the action) stay pending unless
    `retry_in_doubt`: they may have acted on it already.
    """
    check(principal, "act")
    found = await asyncio.to_thread(_visible_job, ctx, principal, job_id)
    if running_here(found):
        raise Conflict(f"job {job_id} is running", hint=f"follow it: GET /api/v1/jobs/{job_id}/events")
    sub = await asyncio.to_thread(_prepare_resume, ctx, principal, found, dict(params or {}), retry_in_doubt)
    _submit(ctx, sub)
    return job_id


def _prepare_resume(ctx: ServerContext, principal: Principal, found: Job, params: dict[str, Any],
                    retry_in_doubt: bool = False) -> JobSubmission:
    pending = ctx.jobs.pending_devices(found.id)
    if not pending:
        raise Conflict(f"job {found.id} is finished: every device has an outcome")
    merged = {**found.params, **params}
    redacted = sorted(k for k, v in merged.items() if v == MASK)
    if redacted:
        raise UsageError(f"job {found.id} had secret parameters that were not stored: {', '.join(redacted)}",
                         hint="give them again in the request's params")
    task = make_task(found.action, merged, mode=str(found.options.get("mode", "action")))
    by_name = {d.name: d for d in ctx.inventory()}
    devices = [by_name[n] for n in pending if n in by_name]
    options = dataclasses.replace(options_from(found.options.get("run", {})), output_dir=str(ctx.downloads),
                                  retry_in_doubt=retry_in_doubt)
    runner = FleetRunner(specs=spec_provider(ctx.spec_overrides), options=options)
    counts = runner.plan(task, devices)
    if any(c["disruptive"] and c["run"] for c in counts.values()) and not principal.can("act_disruptive"):
        raise Forbidden(f"{task.name} is disruptive; your role ({principal.role}) may not resume it")
    ctx.executor.check(devices, options)
    ctx.jobs.check_writable()
    for gone in (n for n in pending if n not in by_name):
        ctx.jobs.record_outcome(found.id, Outcome(gone, "failed", reason="inventory",
                                                  message="no longer in the inventory"))
    ctx.jobs.claim(found.id)
    return JobSubmission(job_id=found.id, task=task, devices=devices, options=options,
                         user=principal.audit_name, spec_overrides=dict(ctx.spec_overrides))


def jobs_running(ctx: ServerContext) -> int:
    """Jobs whose process is alive (this server's, or a CLI's on this host)."""
    return sum(1 for j in ctx.jobs.list_jobs(limit=500) if j.effective_state == "running")
