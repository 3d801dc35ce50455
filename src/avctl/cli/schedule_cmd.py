"""``avctl schedule``: fleet, config and firmware commands on a cron expression (docs/schedules.md).

``add`` checks the command as ``avctl`` would parse it, without running it, and stores it with an
absolute inventory path and the current folder; ``run-due`` is one scheduler pass (for cron or a
systemd timer); the server runs the same passes (`avctl.server.schedules`).
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from avctl.cli.common import emit_json, handle_errors
from avctl.cli.fleet import DEFAULT_INVENTORY, wide_console
from avctl.cli.output import cell
from avctl.db.factory import open_store
from avctl.durations import parse_duration
from avctl.errors import AvctlError, UsageError
from avctl.fleet.paths import os_user
from avctl.redact import shown
from avctl.schedule.runner import due_runs, run_now, run_pass, schedule_zones
from avctl.schedule.store import Run, Schedule, ScheduleStore, open_schedule_store
from avctl.schedule.timing import check_cron, check_zone, host_zone, local_text, next_due
from avctl.timestamps import iso_time, with_iso_times

#: the command groups a schedule may run, and their subcommands (None: any)
JOB_COMMANDS: dict[str, frozenset[str] | None] = {
    "fleet": None,
    "config": frozenset({"backup", "plan", "drift", "apply", "restore"}),
    "firmware": frozenset({"report", "update"}),
}
DISRUPTIVE = {("config", "apply"), ("config", "restore"), ("firmware", "update")}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SELECT_KEYS = ("name", "family", "site", "room", "tag")


def store_option(fn: Any) -> Any:
    return click.option("--store", "store_path", type=click.Path(dir_okay=False), envvar="AVCTL_DB",
                        help="Database: a file or a URL (postgresql://...) [default: $AVCTL_HOME/avctl.db].")(fn)


def _store(path: str | None) -> closing[ScheduleStore]:
    return closing(open_schedule_store(path))


def temporal_options(fn: Any) -> Any:
    """Where the Temporal Schedules of ``--engine temporal`` schedules are (env: AVCTL_TEMPORAL)."""
    fn = click.option("--namespace", "temporal_namespace", envvar="AVCTL_TEMPORAL_NAMESPACE", default="default",
                      show_default=True, help="Temporal namespace (schedules with --engine temporal).")(fn)
    return click.option("--temporal", "temporal_address", envvar="AVCTL_TEMPORAL", default="127.0.0.1:7233",
                        show_default=True, metavar="HOST:PORT",
                        help="The Temporal service (schedules with --engine temporal).")(fn)


def _on_temporal(schedule: Schedule, store_path: str | None, address: str, namespace: str, what: str,
                 **extra: Any) -> Any:
    """Do ``what`` (create, describe, pause, unpause, trigger, delete, backfill) on the schedule's
    Temporal Schedules, one per zone."""
    import asyncio

    from avctl.fleet.store import default_db_path
    from avctl.temporal import engine, schedules
    from avctl.temporal.control import control_queue

    queue = control_queue(engine.store_identity(store_path or str(default_db_path())))
    zones = schedule_zones(schedule)

    async def act() -> Any:
        client = await engine.connect(engine.TemporalTarget(address, namespace))
        if what == "create":
            return await schedules.create(client, schedule, zones, queue, overlap=extra["overlap"])
        if what == "describe":
            return await schedules.describe(client, schedule, zones, queue)
        if what == "backfill":
            return await schedules.backfill(client, schedule, zones, queue, extra["start"], extra["end"])
        return await schedules.each(client, schedule, zones, queue, what)

    return asyncio.run(act())


@click.group("schedule")
def schedule_group() -> None:
    """Run fleet, config and firmware commands on a cron expression in each site's time zone."""


# --- checking the command --------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    """A job command as a schedule stores it."""

    argv: list[str]
    inventory: str | None
    selection: list[str]
    disruptive: bool


def check_command(argv: Sequence[str], cwd: Path) -> Checked:
    """Parse ``argv`` as ``avctl`` would (nothing runs): UsageError naming the bad argument."""
    from avctl.cli.main import cli

    words = list(argv)
    if not words:
        raise UsageError("no command to schedule",
                         hint="e.g. avctl schedule add NAME --cron '0 2 * * *' -- fleet status")
    if any(w in ("--help", "-h") for w in words):
        raise UsageError("the scheduled command asks for help; give the command itself")
    group_name, rest = words[0], words[1:]
    allowed = JOB_COMMANDS.get(group_name, frozenset())
    if group_name not in JOB_COMMANDS:
        raise UsageError(f"{group_name!r} cannot be scheduled",
                         hint="schedule a job command: fleet ..., config backup|plan|drift|apply|restore, "
                              "firmware report|update")
    if not rest or (allowed is not None and rest[0] not in allowed):
        raise UsageError(f"'{' '.join(words[:2])}' cannot be scheduled",
                         hint=f"schedule one of: {', '.join(f'{group_name} {s}' for s in sorted(allowed or ()))}")
    _refuse_secrets(words)
    if any(w == "--store" or w.startswith("--store=") for w in words):
        raise UsageError("the scheduled command gives --store: its job goes to the schedule's database",
                         hint="give --store (or AVCTL_DB) to 'avctl schedule add' instead")
    root = click.Context(cli, info_name="avctl")
    group = cli.get_command(root, group_name)
    if group is None:  # a command this version does not have yet (firmware): its own parse decides
        return Checked(words, None, [], (group_name, rest[0]) in DISRUPTIVE)
    assert isinstance(group, click.Group)
    sub_ctx = click.Context(group, info_name=group_name, parent=root)
    # a fleet verb no built-in family has would run as a verb none of the devices can do
    command = group.get_command(sub_ctx, rest[0]) if rest[0] in group.list_commands(sub_ctx) else None
    if command is None:
        raise UsageError(f"'{group_name} {rest[0]}': no such command", hint=f"see 'avctl {group_name} --help'")
    params = _parse(command, rest[0], rest[1:], sub_ctx)
    inventory = None
    if "inventory_path" in params:
        inventory = str((cwd / str(params["inventory_path"] or DEFAULT_INVENTORY)).resolve())
        words = [*words[:2], *_without_inventory(words[2:]), "--inventory", inventory]
        _parse(command, rest[0], words[2:], sub_ctx)
    selection = [*params.get("select", ())]
    selection += [f"{k}={v}" for k in SELECT_KEYS for v in params.get(f"sel_{k}", ())]
    return Checked(words, inventory, selection, _disruptive(group_name, rest[0], params))


def _without_inventory(args: list[str]) -> list[str]:
    """``args`` without its ``-i``/``--inventory`` options (the stored command names it absolute)."""
    out: list[str] = []
    skip = False
    for word in args:
        if skip:
            skip = False
        elif word in ("-i", "--inventory"):
            skip = True
        elif not word.startswith(("--inventory=", "-i")):
            out.append(word)
    return out


def _parse(command: click.Command, name: str, args: list[str], parent: click.Context) -> dict[str, Any]:
    try:
        with command.make_context(name, list(args), parent=parent) as ctx:
            return dict(ctx.params)
    except click.ClickException as exc:
        raise UsageError(f"the scheduled command: {exc.format_message()}") from None


def _refuse_secrets(words: Sequence[str]) -> None:
    """A schedule never stores a secret: ``name=value`` words of secret parameters and secret-named
    options must be references (``@env:VAR``, ``@file:PATH``)."""
    from avctl.cli.fleet import _secret_param
    from avctl.fleet.credentials import SENSITIVE_KEY_RE

    for n, word in enumerate(words):
        if word.startswith("--") and SENSITIVE_KEY_RE.search(word.partition("=")[0]):
            raise UsageError(f"{word.partition('=')[0]}: a schedule does not store secrets",
                             hint="use a secret reference (secret:NAME in the inventory, @env:VAR, @file:PATH)")
        name, sep, value = word.partition("=")
        if n < 2 or not sep or word.startswith("-") or not _secret_param(name.replace("-", "_")):
            continue
        if value == "@prompt":
            raise UsageError(f"{name}=@prompt: a scheduled command has no terminal to ask on",
                             hint=f"use {name}=@env:VAR or {name}=@file:PATH")
        if value and (not value.startswith("@") or value.startswith("@@")):
            raise UsageError(f"{name}=: a schedule does not store secret values",
                             hint=f"use a secret reference: {name}=@env:VAR or {name}=@file:PATH")


def _disruptive(group: str, sub: str, params: dict[str, Any]) -> bool:
    if (group, sub) in DISRUPTIVE:
        return True
    if group != "fleet" or sub == "status":
        return False
    from avctl.capabilities import describe_verb
    from avctl.families import builtin_spec, family_names

    for family in family_names():
        try:
            spec = builtin_spec(family)
        except AvctlError:
            continue
        if sub == "run":
            action = spec.actions.get(str(params.get("action")))
            if action is not None and action.disruptive:
                return True
        elif sub in spec.macros and describe_verb(spec, sub).disruptive:
            return True
    return False


# --- commands ----------------------------------------------------------------------------------


@schedule_group.command("add", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
@click.option("--cron", required=True, metavar="EXPR",
              help="Five fields, minute hour day-of-month month day-of-week, in local time: '0 2 * * *'.")
@click.option("--timezone", "tz", metavar="ZONE",
              help="IANA zone of devices whose site has no timezone [default: the host's].")
@click.option("--grace", default="1h", show_default=True, metavar="DURATION",
              help="A run missed (the scheduler was not running) still starts this late; older ones are recorded "
                   "missed.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before scheduling disruptive work.")
@click.option("--engine", type=click.Choice(["local", "temporal"]), default="local", show_default=True,
              help="Who fires it: run-due / the server (local), or Temporal Schedules, one per time zone "
                   "(docs/temporal.md).")
@click.option("--overlap", type=click.Choice(["skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other",
                                              "allow_all"]), default="skip", show_default=True,
              help="With --engine temporal: what a due time does while the previous run still runs.")
@click.option("--site-critical", is_flag=True,
              help="With --engine temporal: each site's worker also runs it on its own while it cannot reach "
                   "Temporal (a WAN outage), and reports it afterwards.")
@temporal_options
@store_option
@handle_errors
def schedule_add(name: str, command: tuple[str, ...], cron: str, tz: str | None, grace: str, yes: bool,
                 engine: str, overlap: str, site_critical: bool, temporal_address: str, temporal_namespace: str,
                 store_path: str | None) -> None:
    """Run COMMAND (a fleet, config or firmware job, after '--') on a cron expression.

    \b
    avctl schedule add nightly-reboot --cron "0 2 * * *" -- fleet reboot --site hq --if-idle
    """
    if not _NAME.fullmatch(name):
        raise UsageError(f"{name!r} is not a schedule name", hint="letters, digits, '.', '_' and '-' (64 at most)")
    if site_critical and engine != "temporal":
        raise UsageError("--site-critical is for schedules on Temporal", hint="add --engine temporal")
    expr = check_cron(cron)
    zone_name = tz or host_zone()
    check_zone(zone_name)
    grace_seconds = parse_duration(grace, what="--grace")
    argv = list(command[1:] if command and command[0] == "--" else command)
    cwd = Path.cwd()
    checked = check_command(argv, cwd)
    if checked.inventory is not None and not Path(checked.inventory).is_file():
        click.echo(f"avctl: warning: the inventory {shown(checked.inventory)} does not exist (yet): "
                   "runs fail until it does", err=True)
    if checked.disruptive:
        what = f"'{shown(' '.join(argv))}' is disruptive: every run will go ahead without asking"
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError(f"{what}; it needs confirmation", hint="run again with --yes to confirm")
            if not click.confirm(f"{what}. Schedule it?", default=False, err=True):
                raise UsageError("not confirmed; nothing was scheduled")
    with _store(store_path) as store:
        schedule = store.add(name=name, cron=expr, timezone=zone_name, grace=grace_seconds, argv=checked.argv,
                             cwd=str(cwd), inventory=checked.inventory, selection=checked.selection,
                             disruptive=checked.disruptive, user=os_user(), now=time.time(), engine=engine,
                             site_critical=site_critical)
        if engine == "temporal":
            try:
                made = _on_temporal(schedule, store_path, temporal_address, temporal_namespace, "create",
                                    overlap=overlap)
            except BaseException:
                store.remove(name)  # nothing half-made: no row Temporal does not fire
                raise
    click.echo(f"schedule {name} added: avctl {shown(' '.join(argv))}")
    if engine == "temporal":
        click.echo(f"  fired by Temporal at {temporal_address}: {', '.join(made)}")
    for zone_name, when in _next(schedule, time.time()).items():
        click.echo(f"  next run in {zone_name}: {local_text(when, zone_name)}")


def _next(schedule: Schedule, now: float) -> dict[str, float]:
    from avctl.fleet.windows import zone

    start = max(now, schedule.evaluated_from)
    return {z: next_due(schedule.cron, zone(z), start) for z in schedule_zones(schedule)}


@schedule_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@store_option
@handle_errors
def schedule_list(as_json: bool, store_path: str | None) -> None:
    """Every schedule: its expression, zones, next run and the state of its last run."""
    now = time.time()
    with _store(store_path) as store:
        rows = [(s, store.runs(s.id, limit=1)) for s in store.schedules()]
    if as_json:
        emit_json([{**with_iso_times(s.to_json()),
                    "next": {} if s.paused else {z: iso_time(t) for z, t in _next(s, now).items()},
                    "last_run": with_iso_times(last[0].to_json()) if last else None} for s, last in rows])
        return
    if not rows:
        click.echo("no schedules ('avctl schedule add' makes one)")
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("name", "cron", "next", "last run", "command"):
        table.add_column(col)
    for s, last in rows:
        upcoming = "paused" if s.paused else ", ".join(local_text(t, z) + f" {z}" for z, t in _next(s, now).items())
        table.add_row(cell(s.name), cell(s.cron), cell(upcoming), cell(_run_line(last[0]) if last else "never"),
                      cell(" ".join(s.argv)))
    wide_console().print(table)


def _run_line(run: Run) -> str:
    job = f" job {run.job_id}" if run.job_id is not None else ""
    return f"{run.state}{job} ({local_text(run.due, run.zone)})"


@schedule_group.command("show")
@click.argument("name")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="Runs shown.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@temporal_options
@store_option
@handle_errors
def schedule_show(name: str, limit: int, as_json: bool, temporal_address: str, temporal_namespace: str,
                  store_path: str | None) -> None:
    """The schedule's definition and its runs (newest first) with their jobs and outcome counts; for
    --engine temporal, each zone's Temporal Schedule with its next times."""
    with _store(store_path) as store:
        schedule = store.get(name)
        runs = store.runs(schedule.id, limit=limit)
    counts = _job_counts(store_path, [r.job_id for r in runs if r.job_id is not None])
    zones = (_on_temporal(schedule, store_path, temporal_address, temporal_namespace, "describe")
             if schedule.engine == "temporal" else [])
    if as_json:
        emit_json({**with_iso_times(schedule.to_json()),
                   **({"temporal": [{"zone": z.zone, "id": z.schedule_id, "paused": z.paused,
                                     "next": [t.isoformat() for t in z.next_times],
                                     "recent": [t.isoformat() for t in z.recent]} for z in zones]}
                      if schedule.engine == "temporal" else {}),
                   "runs": [{**with_iso_times(r.to_json(output=True)), "counts": counts.get(r.job_id or -1)}
                            for r in runs]})
        return
    state = "paused" if schedule.paused else "active"
    click.echo(f"schedule {shown(schedule.name)} ({state}): cron '{schedule.cron}', zone {schedule.timezone}, "
               f"grace {schedule.grace:g}s{', disruptive' if schedule.disruptive else ''}")
    click.echo(f"  command: avctl {shown(' '.join(schedule.argv))}")
    click.echo(f"  in: {shown(schedule.cwd)}")
    for z in zones:
        upcoming = ", ".join(local_text(t.timestamp(), z.zone) for t in z.next_times[:3])
        click.echo(f"  Temporal {shown(z.schedule_id)}{' (paused)' if z.paused else ''}: next {upcoming}")
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("run", "due (local)", "zone", "trigger", "state", "job", "counts", "detail"):
        table.add_column(col)
    for r in runs:
        shown_counts = ", ".join(f"{k} {v}" for k, v in sorted(counts.get(r.job_id or -1, {}).items()) if v)
        table.add_row(str(r.id), local_text(r.due, r.zone), r.zone, r.trigger, r.state,
                      "" if r.job_id is None else str(r.job_id), shown_counts, cell(r.reason or ""))
    wide_console().print(table)


def _job_counts(store_path: str | None, job_ids: list[int]) -> dict[int, dict[str, int]]:
    if not job_ids:
        return {}
    with closing(open_store(store_path)) as jobs:
        return {job_id: jobs.counts(job_id) for job_id in job_ids}


@schedule_group.command("pause")
@click.argument("name")
@temporal_options
@store_option
@handle_errors
def schedule_pause(name: str, temporal_address: str, temporal_namespace: str, store_path: str | None) -> None:
    """Stop starting runs (a run in progress goes on)."""
    with _store(store_path) as store:
        schedule = store.set_paused(name, True, now=time.time())
        if schedule.engine == "temporal":
            _on_temporal(schedule, store_path, temporal_address, temporal_namespace, "pause")
    click.echo(f"schedule {name} paused")


@schedule_group.command("resume")
@click.argument("name")
@temporal_options
@store_option
@handle_errors
def schedule_resume(name: str, temporal_address: str, temporal_namespace: str, store_path: str | None) -> None:
    """Start runs again from now on (what fell due while paused is not run)."""
    with _store(store_path) as store:
        schedule = store.set_paused(name, False, now=time.time())
        if schedule.engine == "temporal":
            _on_temporal(schedule, store_path, temporal_address, temporal_namespace, "unpause")
    click.echo(f"schedule {name} resumed")


@schedule_group.command("remove")
@click.argument("name")
@temporal_options
@store_option
@handle_errors
def schedule_remove(name: str, temporal_address: str, temporal_namespace: str, store_path: str | None) -> None:
    """Remove the schedule and its run history (its jobs stay in the job journal)."""
    with _store(store_path) as store:
        schedule = store.get(name)
        if schedule.engine == "temporal":  # Temporal's first: a row left behind can be removed again
            _on_temporal(schedule, store_path, temporal_address, temporal_namespace, "delete")
        store.remove(name)
    click.echo(f"schedule {name} removed")


@schedule_group.command("run-now")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@temporal_options
@store_option
@handle_errors
def schedule_run_now(name: str, as_json: bool, temporal_address: str, temporal_namespace: str,
                     store_path: str | None) -> None:
    """Run the schedule's command now (once per time zone), wait for it and record it as a run; a
    Temporal schedule is triggered on Temporal (its runs are recorded as they happen)."""
    with _store(store_path) as store:
        schedule = store.get(name)
        if schedule.engine == "temporal":
            _on_temporal(schedule, store_path, temporal_address, temporal_namespace, "trigger")
            click.echo(f"schedule {name} triggered on Temporal: see 'avctl schedule show {name}'")
            return
        launches, skipped = run_now(store, schedule, time.time())
        _finish(store, store_path, launches, skipped, as_json=as_json)


@schedule_group.command("backfill")
@click.argument("name")
@click.option("--from", "start", required=True, metavar="WHEN", help="ISO time (UTC if no zone) or 30m/2h/1d ago.")
@click.option("--to", "end", default=None, metavar="WHEN", help="ISO time or a duration ago [default: now].")
@temporal_options
@store_option
@handle_errors
def schedule_backfill(name: str, start: str, end: str | None, temporal_address: str, temporal_namespace: str,
                      store_path: str | None) -> None:
    """Run now every due time of a Temporal schedule that fell in [--from, --to), in each zone
    (e.g. after a pause or an outage); each is recorded as a run for its due time."""
    from avctl.fleet.audit import parse_when

    begin, finish = parse_when(start), parse_when(end) if end else time.time()
    if finish <= begin:
        raise UsageError("--to is not after --from")
    with _store(store_path) as store:
        schedule = store.get(name)
    if schedule.engine != "temporal":
        raise UsageError(f"schedule {name} is run locally: backfill is for --engine temporal schedules",
                         hint=f"run it now with 'avctl schedule run-now {name}'")
    _on_temporal(schedule, store_path, temporal_address, temporal_namespace, "backfill",
                 start=datetime.fromtimestamp(begin, UTC), end=datetime.fromtimestamp(finish, UTC))
    click.echo(f"schedule {name}: due times from {iso_time(begin)} to {iso_time(finish)} run now on Temporal")


def _parse_now(text: str | None) -> float:
    if text is None:
        return time.time()
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--now {text!r} is not an ISO time") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


@schedule_group.command("run-due")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@click.option("--now", "now_text", hidden=True, help="Evaluate at this ISO time (tests).")
@store_option
@handle_errors
def schedule_run_due(as_json: bool, now_text: str | None, store_path: str | None) -> None:
    """One scheduler pass: start the runs due now, wait for them, record their ends. Safe to call
    every minute from cron or a systemd timer (docs/schedules.md); exits non-zero if a run could not
    start or ended non-zero."""
    now = _parse_now(now_text)
    with _store(store_path) as store:
        launches, skipped = due_runs(store, now)
        _finish(store, store_path, launches, skipped, as_json=as_json)


def _finish(store: ScheduleStore, store_path: str | None, launches: list[Any], skipped: list[Run], *,
            as_json: bool) -> None:
    states = run_pass(store, store_path, launches)
    names = {**{r.schedule.id: r.schedule.name for r in launches},
             **{s.id: s.name for s in store.schedules()}}
    runs = [store.get_run(launch.run.id) for launch in launches] + list(skipped)
    if as_json:
        emit_json([{"schedule": names.get(r.schedule_id), **with_iso_times(r.to_json())}
                   for r in runs if r is not None])
    else:
        for r in runs:
            if r is not None:
                job = f", job {r.job_id}" if r.job_id is not None else ""
                why = f": {r.reason}" if r.reason else ""
                click.echo(f"run {r.id} of {shown(names.get(r.schedule_id, '?'))} ({r.zone}, "
                           f"{local_text(r.due, r.zone)}): {r.state}{job}{shown(why)}")
    if any(s != "ok" for s in states):
        sys.exit(1)

