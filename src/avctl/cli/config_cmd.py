"""``avctl config``: backup, history, diff, plan, drift, apply and restore (see docs/config.md).

Every command that reaches devices is a fleet job (journal, audit log, limits, retries, one outcome
per device); this module asks for confirmation and shows the results. What is done on a device is
`avctl.config`'s.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
import sys
from collections.abc import Mapping, Sequence
from contextlib import ExitStack, closing
from typing import Any

import click
from rich.table import Table

from avctl.cli.common import confirm_disruptive, emit_json, handle_errors, output_format
from avctl.cli.fleet import (
    JobSetup,
    _exit_for,
    _report,
    device_line,
    dry_run_option,
    inventory_option,
    job_setup,
    run_options,
    selection_options,
    wide_console,
)
from avctl.cli.output import ProgressBar, cell
from avctl.config.desired import Desired, desired_fleet
from avctl.config.engine import (
    ConfigJobs,
    DriftRow,
    drift_rows,
    key_counts,
    needs_confirmation,
    restore_desired,
)
from avctl.config.model import Snapshot
from avctl.config.store import open_snapshot_store
from avctl.db.factory import open_journal
from avctl.errors import UsageError
from avctl.fleet.inventory import Selection
from avctl.fleet.output import summary_line
from avctl.fleet.results import JobReport
from avctl.redact import redact, shown
from avctl.schedule.link import note_job, scheduled_run
from avctl.timestamps import iso_time, table_time


@click.group("config")
def config_group() -> None:
    """Configuration as desired state: snapshots (backup), plan, apply, drift, restore."""


class _Session:
    """The journal, the snapshots and a runner factory of one command; closed together."""

    def __init__(self, setup: JobSetup, kwargs: dict[str, Any], label: str) -> None:
        self.setup = setup
        self.kwargs = kwargs
        self._stack = ExitStack()
        store, audit = open_journal(kwargs["store_path"])
        self._stack.enter_context(closing(store))
        self._stack.enter_context(closing(audit))
        store.check_writable()  # before any device is contacted
        audit.check_writable()
        self.snapshots = open_snapshot_store(kwargs["store_path"])
        self._stack.enter_context(closing(self.snapshots))
        self.snapshots.check_writable()
        self.store, self.audit = store, audit
        self.label = label

    def jobs(self, devices: int) -> ConfigJobs:
        quiet = self.kwargs["quiet"] or self.kwargs["as_json"] or self.kwargs["as_csv"]

        def runner() -> Any:
            bar = ProgressBar(devices, self.label, enabled=False if quiet else None)
            return self.setup.runner(self.store, self.audit, bar)

        jobs = ConfigJobs(self.store, self.snapshots, runner, self.setup.inventory,
                          selection=str(self.setup.selection),
                          on_job=lambda job_id: note_job(self.kwargs["store_path"], job_id))
        if self.setup.engine == "temporal":
            jobs.engine, jobs.execute = "temporal", self._on_temporal
        return jobs

    async def _on_temporal(self, store: Any, job: Any, runner: Any, task: Any, devices: Any, *,
                           decided: Any = ()) -> JobReport:
        """A configuration job on the sites' workers (docs/temporal.md); its reads land here as snapshots."""
        import contextlib

        from avctl.fleet.store import OutcomeExists, default_db_path
        from avctl.temporal.engine import TemporalTarget, check_reachable, run_job
        from avctl.temporal.model import Limits

        kwargs = self.kwargs
        target = TemporalTarget(kwargs["temporal_address"], kwargs["temporal_namespace"])
        await check_reachable(target)
        for outcome in decided:  # known without a device (nothing desired for it)
            with contextlib.suppress(OutcomeExists):
                store.record_outcome(job.id, outcome)
        def started(workflow: str) -> None:
            if not kwargs["quiet"]:
                click.echo(f"job {job.id}: workflow {workflow} on {target.address}", err=True)

        return await run_job(target, store, self.audit, kwargs["store_path"] or str(default_db_path()), job, task,
                             devices, runner.options, snapshots=self.snapshots, on_started=started,
                             spec_overrides=self.setup.overrides,
                             limits=Limits(site_deadline=kwargs.get("site_deadline"), batch_size=kwargs["batch_size"],
                                           heartbeat=kwargs["heartbeat"]))

    def close(self) -> None:
        self._stack.close()


def _run(coro: Any) -> JobReport:
    try:
        report: JobReport = asyncio.run(coro)
    except KeyboardInterrupt:
        click.echo("avctl: interrupted; outcomes so far are kept in the job store ('avctl jobs list')", err=True)
        sys.exit(130)
    return report


def _announce(report: JobReport, kwargs: dict[str, Any]) -> None:
    if not kwargs["quiet"]:
        click.echo(f"job {report.job_id}: {report.task}: {summary_line(report.counts)}", err=True)


def _problems(report: JobReport) -> list[str]:
    return [f"{o.device}: {o.status}: {o.message}" for o in report.outcomes
            if o.status in ("failed", "unreachable")]


def _show_problems(report: JobReport) -> None:
    for line in _problems(report):
        click.echo(f"avctl: {shown(line)}", err=True)


# --- backup, history, diff ------------------------------------------------------------------------


@config_group.command("backup")
@inventory_option
@selection_options
@run_options
@handle_errors
def config_backup(**kwargs: Any) -> None:
    """Read the full configuration of each selected device into a snapshot (deduplicated)."""
    setup = job_setup(kwargs)
    session = _Session(setup, kwargs, "config backup")
    with closing(session):
        report = _run(session.jobs(len(setup.devices)).backup(setup.devices))
    _announce(report, kwargs)
    if kwargs["as_json"] or kwargs["as_csv"]:
        _report(report, as_json=kwargs["as_json"], as_csv=kwargs["as_csv"], quiet=False)
    elif not kwargs["quiet"]:
        table = Table(box=None, pad_edge=False, header_style="bold")
        for col in ("device", "status", "snapshot", "keys", "secrets", "note"):
            table.add_column(col)
        for o in report.outcomes:
            d = o.data if isinstance(o.data, dict) else {}
            snap = f"{d['snapshot']} ({'new' if d.get('new') else 'unchanged'})" if "snapshot" in d else ""
            note = o.message or "; ".join(d.get("notes", []))
            table.add_row(cell(o.device), cell(o.status), cell(snap), cell(d.get("keys", "")),
                          cell(d.get("secrets", "")), cell(note))
        wide_console().print(table)
    _exit_for(report)


def _store_only(fn: Any) -> Any:
    fn = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(fn)
    return click.option("--store", "store_path", type=click.Path(dir_okay=False), envvar="AVCTL_DB",
                        help="Job database: a file or a URL [default: $AVCTL_HOME/avctl.db].")(fn)


def _snapshot_dict(s: Snapshot, *, values: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"id": s.id, "device": s.device, "family": s.family, "taken_at": iso_time(s.taken_at),
                           "confirmed_at": iso_time(s.confirmed_at), "reason": s.reason, "job": s.job_id,
                           "keys": len(s.values), "secrets": list(s.secrets), "notes": list(s.notes)}
    if values:
        out["values"] = dict(s.values)
    return out


@config_group.command("history")
@click.argument("device")
@_store_only
@handle_errors
def config_history(device: str, store_path: str | None, as_json: bool) -> None:
    """The snapshots of DEVICE, newest first (ids for diff and restore)."""
    with closing(open_snapshot_store(store_path)) as snaps:
        history = snaps.history(device)
    if not history:
        raise UsageError(f"no snapshots of {device!r}", hint="take one with 'avctl config backup --name DEVICE'")
    if as_json:
        emit_json([_snapshot_dict(s) for s in history])
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("id", "taken", "last confirmed", "reason", "job", "keys", "changed since the one before"):
        table.add_column(col)
    for newer, older in zip(history, [*history[1:], None], strict=True):
        changed = "" if older is None else _changed_keys(older, newer)
        table.add_row(cell(newer.id), cell(table_time(newer.taken_at)), cell(table_time(newer.confirmed_at)),
                      cell(newer.reason),
                      cell(newer.job_id or ""), cell(len(newer.values)), cell(changed))
    wide_console().print(table)


def _changed_keys(a: Snapshot, b: Snapshot) -> str:
    keys = sorted(k for k in set(a.values) | set(b.values) if a.values.get(k) != b.values.get(k))
    return ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


@config_group.command("diff")
@click.argument("device")
@click.argument("refs", nargs=-1, metavar="[SNAP_A] [SNAP_B]")
@inventory_option
@run_options
@handle_errors
def config_diff(device: str, refs: tuple[str, ...], **kwargs: Any) -> None:
    """Differences between two snapshots of DEVICE; with one (or none: the newest), between it and
    the device now (read now and kept as a snapshot). Refs: an id, 'latest' or 'latest~N'."""
    output_format(kwargs["as_json"], kwargs["as_csv"])
    if len(refs) > 2:
        raise UsageError("give at most two snapshots", hint="avctl config diff DEVICE [SNAP_A] [SNAP_B]")
    with closing(open_snapshot_store(kwargs["store_path"])) as snaps:
        a = snaps.get(device, refs[0] if refs else "latest")
        b = snaps.get(device, refs[1]) if len(refs) == 2 else _snapshot_now(device, kwargs, snaps)
    rows = _diff(a, b)
    if kwargs["as_json"]:
        emit_json({"device": device, "a": _snapshot_dict(a), "b": _snapshot_dict(b),
                   "changes": [{"key": k, "a": va, "b": vb} for k, va, vb in rows]})
        return
    click.echo(f"{device}: snapshot {a.id} ({table_time(a.taken_at)}) -> snapshot {b.id} ({table_time(b.taken_at)})")
    if not rows:
        click.echo("no differences")
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("key", f"snapshot {a.id}", f"snapshot {b.id}"):
        table.add_column(col)
    for key, va, vb in rows:
        table.add_row(cell(key), cell(_value(va)), cell(_value(vb)))
    wide_console().print(table)


_ABSENT = object()


def _value(v: Any) -> str:
    return "(absent)" if v is _ABSENT else json.dumps(v) if not isinstance(v, str) else v


def _diff(a: Snapshot, b: Snapshot) -> list[tuple[str, Any, Any]]:
    rows = []
    for key in sorted(set(a.values) | set(b.values)):
        va, vb = a.values.get(key, _ABSENT), b.values.get(key, _ABSENT)
        if va != vb:
            rows.append((key, va, vb))
    return rows


def _snapshot_now(device: str, kwargs: dict[str, Any], snaps: Any) -> Snapshot:
    kwargs = {**kwargs, "select": (f"name={device}",), **{f"sel_{k}": () for k in
                                                              ("name", "family", "site", "room", "tag")}}
    setup = job_setup(kwargs)
    exact = [d for d in setup.devices if d.name == device]
    if not exact:
        raise UsageError(f"no device named {device!r} in {setup.inventory.path}")
    setup.devices = exact
    session = _Session(setup, {**kwargs, "quiet": True}, "config read")
    with closing(session):
        report = _run(session.jobs(1).backup(exact))
    outcome = report.outcomes[0]
    if outcome.status != "ok":
        raise UsageError(f"{device}: could not read its configuration now: {outcome.status}: {outcome.message}")
    snap: Snapshot = snaps.get(device, outcome.data["snapshot"])
    return snap


# --- plan, drift, apply, restore ----------------------------------------------------------------


def _plan(session: _Session, devices: Sequence[Any], desired: Any, name: str) -> tuple[JobReport, list[DriftRow]]:
    report = _run(session.jobs(len(devices)).plan(devices, desired, name=name))
    return report, drift_rows(report.outcomes)


def _note(row: DriftRow) -> str:
    if row.key == "avctl.admin_password":
        return "the login password is a factory default: change it on the device, then in the inventory"
    if not row.settable:
        return "cannot be set through the API (read-only)"
    notes = [f"needs a {row.applies}"] if row.applies != "live" else []
    if not row.reported:
        notes.append("not reported by the device")
    return "; ".join(notes)


def _print_plan(rows: Sequence[DriftRow], report: JobReport) -> None:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("device", "key", "current", "desired", "note", "from"):
        table.add_column(col)
    for r in rows:
        current = "(absent)" if not r.reported else _value(r.current)
        table.add_row(cell(r.device), cell(r.key), cell(current), cell(_value(r.desired)), cell(_note(r)),
                      cell(r.where))
    if rows:
        wide_console().print(table)
    settable = [r for r in rows if r.settable]
    devices = len({r.device for r in settable})
    click.echo(f"{len(settable)} change(s) on {devices} device(s)"
               + (f"; {len(rows) - len(settable)} key(s) cannot be set through the API" if len(rows) > len(settable)
                  else ""))
    _show_problems(report)


def _desired(setup: JobSetup) -> dict[str, dict[str, Desired]]:
    desired = desired_fleet(setup.devices, setup.specs)  # every problem, file:line, before any I/O
    if not desired:
        raise UsageError("no selected device has a desired configuration",
                         hint="add a 'config:' block to the inventory (see docs/config.md)")
    return desired


def _read_job(kwargs: dict[str, Any], name: str) -> tuple[JobReport, list[DriftRow]]:
    """Plan and drift: the selection's desired state checked, then read in one job."""
    setup = job_setup(kwargs)
    desired = _desired(setup)
    session = _Session(setup, kwargs, name.replace("-", " "))
    with closing(session):
        report, rows = _plan(session, setup.devices, desired, name)
    _announce(report, kwargs)
    return report, rows


@config_group.command("plan")
@inventory_option
@selection_options
@run_options
@handle_errors
def config_plan(**kwargs: Any) -> None:
    """Read the selected devices and show, per device, what apply would change."""
    report, rows = _read_job(kwargs, "config-plan")
    if kwargs["as_json"]:
        emit_json({"job": report.job_id, "changes": [r.as_dict() for r in rows], "counts": report.counts,
                   "problems": _problems(report)})
    elif kwargs["as_csv"]:
        click.echo(_csv(rows), nl=False)
    elif not kwargs["quiet"]:
        _print_plan(rows, report)
    _exit_for(report)


def _csv(rows: Sequence[DriftRow]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["device", "family", "key", "current", "desired", "settable", "applies", "where"])
    for r in rows:
        writer.writerow([shown(r.device), r.family, shown(r.key), shown(_value(r.current) if r.reported else ""),
                         shown(_value(r.desired)), r.settable, r.applies, r.where])
    return buf.getvalue()


@config_group.command("drift")
@inventory_option
@selection_options
@run_options
@handle_errors
def config_drift(**kwargs: Any) -> None:
    """Report which devices differ from their desired configuration, with counts per key."""
    report, rows = _read_job(kwargs, "config-drift")
    counts = key_counts(rows)
    if kwargs["as_json"]:
        emit_json({"job": report.job_id, "drift": [r.as_dict() for r in rows], "keys": counts,
                   "devices_drifted": len({r.device for r in rows}), "devices_checked": report.counts["ok"],
                   "counts": report.counts, "problems": _problems(report)})
    elif kwargs["as_csv"]:
        click.echo(_csv(rows), nl=False)
    elif not kwargs["quiet"]:
        _print_plan(rows, report)
        if counts:
            table = Table(title="drifted devices per key", title_justify="left", box=None, pad_edge=False,
                          header_style="bold")
            table.add_column("key")
            table.add_column("devices", justify="right")
            for key, n in counts.items():
                table.add_row(cell(key), cell(n))
            wide_console().print(table)
    _exit_for(report)


def _confirm_apply(rows: Sequence[DriftRow], yes: bool) -> dict[str, frozenset[str]]:
    restart = needs_confirmation(rows)
    if restart:
        keys = sorted({k for ks in restart.values() for k in ks})
        families = {r.device: r.family for r in rows}
        named = [f"{dev} ({families.get(dev) or '?'}): {', '.join(sorted(ks))}" for dev, ks in restart.items()]
        confirm_disruptive(f"changing {len(keys)} key(s) that take effect only after a restart or reboot "
                           f"({', '.join(keys[:5])}) on {len(restart)} device(s)", yes, named)
    elif not yes and sys.stdin.isatty() and not click.confirm("Apply these changes?", default=False, err=True):
        raise UsageError("not confirmed; nothing was sent")
    return restart


def _idle_on_schedule(setup: JobSetup, kwargs: dict[str, Any], restart: Mapping[str, frozenset[str]]) -> None:
    """On a schedule, changes that restart or reboot a device leave rooms in a meeting alone."""
    opts = setup.options
    if (not restart or scheduled_run() is None or opts.if_idle or opts.wait_idle is not None
            or kwargs.get("ignore_calls")):
        return
    setup.options = dataclasses.replace(opts, if_idle=True)
    click.echo("avctl: note: some changes restart or reboot devices and this runs on a schedule: devices in a "
               "call are skipped (--if-idle; --ignore-calls to apply anyway)", err=True)


def _apply(setup: JobSetup, kwargs: dict[str, Any], desired: dict[str, dict[str, Desired]], *,
           name: str, reason: str) -> None:
    if kwargs["dry_run"]:
        _dry_run(setup, kwargs, desired, name)
        return
    session = _Session(setup, kwargs, name.replace("-", " "))
    with closing(session):
        plan, rows = _plan(session, setup.devices, desired, "config-plan")
        if not kwargs["quiet"] and not kwargs["as_json"]:
            _print_plan(rows, plan)
        todo = {r.device for r in rows if r.settable}
        if not todo:
            if not kwargs["quiet"]:
                click.echo("nothing to apply", err=True)
            _exit_for(plan)
            return
        confirmed = _confirm_apply(rows, kwargs["yes"])
        _idle_on_schedule(setup, kwargs, confirmed)
        devices = [d for d in setup.devices if d.name in todo]
        report = _run(session.jobs(len(devices)).apply(devices, {k: desired[k] for k in todo}, confirmed,
                                                       name=name, reason=reason))
    _announce(report, kwargs)
    _report(report, as_json=kwargs["as_json"], as_csv=kwargs["as_csv"], quiet=kwargs["quiet"])
    _exit_for(report if report.failed else plan)


def _dry_run(setup: JobSetup, kwargs: dict[str, Any], desired: dict[str, dict[str, Desired]], name: str) -> None:
    """The desired values each device would be brought to (the ones that differ are sent); no device is
    read, nothing sent, no job recorded."""
    devices = {d.name: d for d in setup.devices}
    rows = [{"device": dev, "family": devices[dev].family, "site": devices[dev].site,
             "address": str(devices[dev].address),
             "keys": redact({k: w.value for k, w in sorted(keys.items()) if w.settable}),
             "restart": sorted(k for k, w in keys.items() if w.settable and w.applies != "live")}
            for dev, keys in desired.items() if dev in devices]
    left = sorted(d for d in devices if d not in desired)
    if kwargs["as_json"]:
        emit_json({"dry_run": True, "task": name, "devices": rows, "no_desired_configuration": left})
        return
    if kwargs["quiet"]:
        return
    click.echo(f"dry run: {name} on {len(rows)} device(s); nothing sent, no job recorded; only the keys that "
               "differ are sent ('avctl config plan' reads the devices and shows which)")
    for r in rows:
        values = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in r["keys"].items())
        restart = f" [restart or reboot: {', '.join(r['restart'])}]" if r["restart"] else ""
        click.echo(shown(f"  send  {device_line(devices[r['device']])} at {r['address']}: {values}{restart}"))
    for dev in left:
        click.echo(shown(f"  skip  {dev}: no desired configuration"))


@config_group.command("apply")
@inventory_option
@selection_options
@run_options
@dry_run_option
@handle_errors
def config_apply(**kwargs: Any) -> None:
    """Plan, then send only the differences and read each changed key back. Each device's
    configuration is kept as a snapshot first ('avctl config restore' rolls back)."""
    setup = job_setup(kwargs)
    _apply(setup, kwargs, _desired(setup), name="config-apply", reason="pre-apply")


@config_group.command("restore")
@click.argument("device")
@click.argument("snapshot")
@inventory_option
@run_options
@dry_run_option
@handle_errors
def config_restore(device: str, snapshot: str, **kwargs: Any) -> None:
    """Return DEVICE to the configuration of SNAPSHOT (an id, 'latest' or 'latest~N'): every key
    the API can set; secrets are never in snapshots and are left as they are."""
    kwargs = {**kwargs, "select": (), **{f"sel_{k}": () for k in ("family", "site", "room", "tag")},
              "sel_name": (device,)}
    setup = job_setup(kwargs)
    setup.devices = [d for d in setup.devices if d.name == device]
    if not setup.devices:
        raise UsageError(f"no device named {device!r} in {setup.inventory.path}")
    setup.selection = Selection.parse(f"name={device}")
    entry = setup.devices[0]
    with closing(open_snapshot_store(kwargs["store_path"])) as snaps:
        snap = snaps.get(device, snapshot)
    plan = restore_desired(snap, setup.specs(entry.family))
    if plan.left and not kwargs["quiet"] and not kwargs["as_json"]:
        click.echo(f"not restored: {len(plan.left)} key(s) (secrets, read-only keys, records outside the "
                   "catalogue); 'avctl config diff' shows them", err=True)
    _apply(setup, kwargs, {device: plan.desired}, name="config-restore", reason="pre-restore")
