"""Configuration drift in the server: the drift check as a fleet job, its report, and snapshots.

The check is ``avctl config drift`` run by the server: a ``config-drift`` job (the engine's
`PlanTask`) over every enabled inventory device that has desired configuration, recorded in the
journal and run by the executor like any other job. The report is the newest finished
``config-drift`` job's outcomes (`drift_rows`, `key_counts`), cut to the principal's sites.

An invalid desired state starts no job: its `ConfigError` (one ``file:line`` per problem) is kept
in ``ctx.drift`` (`DriftStatus`) for the page and the API, and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from avctl.config.desired import ConfigError, Desired, desired_fleet
from avctl.config.engine import DriftRow, drift_rows, key_counts
from avctl.config.model import Snapshot
from avctl.config.store import SqlSnapshotStore
from avctl.config.tasks import PlanTask
from avctl.db import models
from avctl.errors import UsageError
from avctl.fleet.inventory import DeviceEntry
from avctl.fleet.jobs import create_job, spec_provider
from avctl.fleet.results import Outcome
from avctl.fleet.store import Job
from avctl.server.access import audit as access_audit
from avctl.server.context import ServerContext
from avctl.server.executor import JobSubmission
from avctl.server.model import Principal
from avctl.server.service.devices import find_device, in_scope
from avctl.server.service.errors import Conflict, NotFound, check
from avctl.server.service.jobs import _submit, run_options

log = logging.getLogger("avctl.server")

#: the drift check's job name (the journal's action), as ``avctl config drift`` names its job
DRIFT_JOB = "config-drift"
#: who the journal names for a scheduled check
SERVER_USER = "server"
#: the audit log's action for a check started through the API or the dashboard
DRIFT_AUDIT_ACTION = "config.drift"
#: who may start a check: the roles that may run disruptive actions (operator, admin). A check
#: changes nothing, but it reads every device with desired configuration at once
RUN_PERMISSION = "act_disruptive"


@dataclass(frozen=True)
class DriftReport:
    #: the newest finished check (None: none yet)
    job_id: int | None
    finished: float | None
    rows: list[DriftRow]
    counts: dict[str, int]
    checked: int
    drifted: int
    failed: int
    #: devices of the check that were skipped (e.g. a family without a configuration catalogue)
    skipped: int
    #: failed devices -> why (already redacted by the runner)
    failures: dict[str, str] = field(default_factory=dict)
    #: a check running now (None: none)
    running: int | None = None
    error: str | None = None
    error_at: float | None = None


def _desired(ctx: ServerContext) -> tuple[dict[str, dict[str, Desired]], list[DeviceEntry]]:
    """Desired configuration of the enabled devices, and those devices, in inventory order."""
    inventory = ctx.inventory()
    enabled = [d for d in inventory.devices if not d.disabled]
    desired = desired_fleet(enabled, spec_provider(ctx.spec_overrides))
    return desired, [d for d in enabled if d.name in desired]


def _record(ctx: ServerContext, user: str) -> JobSubmission:
    """Read the desired state, record the job: everything before the first request (blocking)."""
    try:
        desired, devices = _desired(ctx)
    except ConfigError as exc:
        ctx.drift.error, ctx.drift.error_at = exc.message, ctx.clock()
        raise
    ctx.drift.error = ctx.drift.error_at = None
    task = PlanTask(desired, name=DRIFT_JOB)
    options = run_options(ctx, None)
    ctx.jobs.check_writable()  # what cannot be recorded is not done
    job = create_job(ctx.jobs, task, selection="all", devices=devices, inventory=ctx.inventory(), options=options,
                     spec_overrides=ctx.spec_overrides, user=user, engine=ctx.executor.engine)
    return JobSubmission(job_id=job.id, task=task, devices=devices, options=options, user=user,
                         spec_overrides=dict(ctx.spec_overrides))


async def start_drift(ctx: ServerContext, user: str = SERVER_USER) -> int:
    """Start a drift check over the fleet; its job id. ConfigError (kept in ``ctx.drift``) if the
    desired state is invalid: then nothing is recorded or sent. ``ctx.after_drift`` is told when
    the check ends."""
    sub = await asyncio.to_thread(_record, ctx, user)
    watch = contextlib.ExitStack()
    events = watch.enter_context(ctx.progress.subscribe(sub.job_id))  # before the job can end
    try:
        _submit(ctx, sub)
    except BaseException:
        watch.close()
        raise
    ctx.drift.last_job = sub.job_id
    follower = asyncio.get_running_loop().create_task(_when_done(ctx, sub.job_id, events, watch),
                                                     name=f"avctl-drift-{sub.job_id}")
    ctx.drift.followers.add(follower)
    follower.add_done_callback(ctx.drift.followers.discard)
    return sub.job_id


async def _when_done(ctx: ServerContext, job_id: int, events: asyncio.Queue[dict[str, Any]],
                     watch: contextlib.ExitStack) -> None:
    with watch:
        while (await events.get())["event"] != "done":
            pass
    if ctx.after_drift is not None:
        try:
            await ctx.after_drift(job_id)
        except Exception as exc:  # the database may be busy: the next check sets the readings again
            log.error("avctl serve: drift check %s: readings not updated: %s: %s", job_id, type(exc).__name__, exc)


def drift_readings(ctx: ServerContext, job_id: int | None = None) -> dict[str, int] | None:
    """Device -> its drifted keys in check ``job_id`` (default: the newest finished one), for every
    device the check read; None if the check did not finish (or there is none). A device the check
    could not read has no value: its rules on config_drift are unknown, neither firing nor resolving."""
    job = _latest_check(ctx) if job_id is None else ctx.jobs.get_job(job_id)
    if job is None or job.state != "finished":
        return None
    outcomes = ctx.jobs.outcomes(job.id)
    counts = {o.device: 0 for o in outcomes if o.status == "ok"}
    for row in drift_rows(outcomes):
        counts[row.device] += 1
    return counts


def drift_running(ctx: ServerContext) -> int | None:
    """The check this server started that is still running, if any."""
    last = ctx.drift.last_job
    if last is None:
        return None
    try:
        return last if ctx.jobs.get_job(last).effective_state == "running" else None
    except UsageError:
        return None


async def run_drift_now(ctx: ServerContext, principal: Principal) -> int:
    """"Check now" (operator, admin): the same check as the schedule's, over the whole fleet (it
    changes nothing); the audit log names who asked. Conflict while a check runs: one at a time."""
    check(principal, RUN_PERMISSION)
    running = await asyncio.to_thread(drift_running, ctx)
    if running is not None:
        raise Conflict(f"drift check {running} is running", hint=f"follow it: GET /api/v1/jobs/{running}")
    job_id = await start_drift(ctx, principal.audit_name)
    await asyncio.to_thread(access_audit.record, ctx.db, principal.audit_name, DRIFT_AUDIT_ACTION, {"job": job_id},
                            clock=ctx.clock)
    return job_id


def _latest_check(ctx: ServerContext) -> Job | None:
    j = models.Job
    with ctx.db.session() as s:
        found = s.scalar(select(j.id).where(j.action == DRIFT_JOB, j.state == "finished")
                         .order_by(j.id.desc()).limit(1))
    return None if found is None else ctx.jobs.get_job(found)


def drift_report(ctx: ServerContext, principal: Principal, *, device: str | None = None) -> DriftReport:
    """The newest finished check, its devices cut to the principal's sites (and to ``device``)."""
    check(principal, "read")
    mine = {d.name for d in in_scope(ctx, principal)}
    if device is not None:
        mine &= {find_device(ctx, principal, device).name}
    latest = _latest_check(ctx)
    outcomes: Sequence[Outcome] = []
    if latest is not None:
        outcomes = [o for o in ctx.jobs.outcomes(latest.id) if o.device in mine]
    rows = drift_rows(outcomes)
    failed = {o.device: o.message or o.reason or "failed" for o in outcomes if o.status == "failed"}
    return DriftReport(
        job_id=latest.id if latest else None, finished=latest.finished if latest else None, rows=rows,
        counts=key_counts(rows), checked=sum(1 for o in outcomes if o.status == "ok"),
        drifted=len({r.device for r in rows}), failed=len(failed),
        skipped=sum(1 for o in outcomes if o.status == "skipped"), failures=failed,
        running=drift_running(ctx), error=ctx.drift.error, error_at=ctx.drift.error_at)


def snapshots(ctx: ServerContext, principal: Principal, name: str, *, limit: int = 50) -> list[Snapshot]:
    """The device's configuration snapshots, newest first (values as stored: never a secret)."""
    check(principal, "read")
    entry = find_device(ctx, principal, name)
    return SqlSnapshotStore(ctx.db).history(entry.name, limit=limit)


def changed_keys(newer: Snapshot, older: Snapshot) -> list[str]:
    """Keys whose stored value differs between two snapshots (added and removed ones included)."""
    return sorted(k for k in set(newer.values) | set(older.values) if newer.values.get(k) != older.values.get(k))


def snapshot(ctx: ServerContext, principal: Principal, name: str, snapshot_id: int) -> Snapshot:
    check(principal, "read")
    entry = find_device(ctx, principal, name)
    try:
        return SqlSnapshotStore(ctx.db).get(entry.name, snapshot_id)
    except UsageError:
        raise NotFound(f"no snapshot {snapshot_id} of {entry.name}") from None
