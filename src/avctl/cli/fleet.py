"""Fleet commands: ``inventory``, ``secrets``, ``fleet``, ``jobs`` and ``audit``.

:mod:`avctl.cli.main` lists them and imports this module on first use (``emulate fleet`` lives in
:mod:`avctl.emulator.fleet`). Nothing here knows a family: verbs come from the specs' Macros (plus
``status`` from their Feedbacks), actions from their Actions.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import closing
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from avctl.cli.common import (
    confirm_disruptive,
    emit_json,
    endpoint_maps,
    endpoint_options,
    fleet_password_options,
    fleet_password_ref,
    handle_errors,
    output_format,
    param_text,
    tls_options,
    tls_policy,
    warn_unused_ports,
)
from avctl.cli.completion import complete_action, complete_family, complete_inventory
from avctl.cli.console import data_console
from avctl.cli.durations import DEADLINE_SECONDS, GRACE_SECONDS, REQUEST_SECONDS, WAIT_DURATION, Duration
from avctl.cli.output import ProgressBar, cell, render_table
from avctl.cli.sizes import BYTES
from avctl.db.factory import open_audit, open_journal, open_store
from avctl.durations import describe_duration
from avctl.errors import AvctlError, UsageError
from avctl.fleet.audit import audit_csv, parse_when
from avctl.fleet.credentials import (
    MASK,
    CredentialResolver,
    SecretsStore,
    check_references,
    generate_key,
    read_secret_file,
    redact,
)
from avctl.fleet.inventory import (
    DeviceEntry,
    Inventory,
    Selection,
    commit_import,
    import_ip_list,
    import_ip_pass,
    load_inventory,
)
from avctl.fleet.jobs import ResumePlan, create_job, execute, plan_rerun, plan_resume, run_resume, spec_provider
from avctl.fleet.output import to_csv, to_json
from avctl.fleet.processors import BaseProcessor, JobInfo
from avctl.fleet.results import JobReport, Outcome
from avctl.fleet.runner import FleetRunner, RunOptions, planned_outcome
from avctl.fleet.verbs import ActionTask, MacroTask, StatusTask, Task
from avctl.redact import install_log_redaction, shown
from avctl.schedule.link import SITES_ENV, note_job, scheduled_run
from avctl.spec import Spec
from avctl.timestamps import iso_time, table_time

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_INVENTORY = "inventory.yaml"


def wide_console() -> Console:
    """Tables of data: no emoji or markup interpretation, one line per row when piped."""
    return data_console()


def _install_log_redaction() -> None:
    """Every handler gets the redacting filter: no secret reaches a log line."""
    install_log_redaction()


# --- shared options --------------------------------------------------------------------------


def inventory_option(fn: F) -> F:
    return click.option("--inventory", "-i", "inventory_path", envvar="AVCTL_INVENTORY",
                        default=DEFAULT_INVENTORY, show_default=True, type=click.Path(dir_okay=False),
                        help="Inventory file [env: AVCTL_INVENTORY].")(fn)


def selection_options(fn: F) -> F:
    """--select EXPR plus one option per key; different keys AND, the same key ORs."""
    for key, help_text in reversed([
        ("name", "Device name glob (repeatable)."),
        ("family", "Family name glob, e.g. videoos (repeatable)."),
        ("site", "Site glob (repeatable)."),
        ("room", "Room glob (repeatable)."),
        ("tag", "Tag glob (repeatable)."),
    ]):
        fn = click.option(f"--{key}", f"sel_{key}", multiple=True, metavar="GLOB", help=help_text,
                          shell_complete=complete_family if key == "family" else complete_inventory(key))(fn)
    fn = click.option("--select", "-s", "select", multiple=True, metavar="EXPR",
                      help="Selection such as 'site=hq,tag=lobby', 'family=videoos|polyuc', 'hq-*', "
                           "'tag!=broken'. Repeatable.")(fn)
    return fn


def _selection(kwargs: dict[str, Any]) -> Selection:
    return Selection.from_options(
        kwargs.pop("select", ()),
        **{k: kwargs.pop(f"sel_{k}", ()) for k in ("name", "family", "site", "room", "tag")})


def _load(path: str, spec_families: Sequence[str] = ()) -> Inventory:
    """The inventory; a device's family must be a registered one or one given a spec by --spec."""
    from avctl.families import family_names

    inv = load_inventory(path, families={*family_names(), *spec_families})
    for w in inv.warnings:
        click.echo(f"avctl: warning: {w}", err=True)
    return inv


def run_options(fn: F) -> F:
    opts = [
        click.option("--concurrency", "-c", type=click.IntRange(1, 10000), default=100, show_default=True,
                     help="Devices worked on at once."),
        click.option("--per-site", type=click.IntRange(0, 10000), default=0,
                     help="Devices at once per site (0: no limit)."),
        click.option("--timeout", type=REQUEST_SECONDS, default=15.0, show_default=True,
                     help="Seconds per request."),
        click.option("--device-timeout", type=DEADLINE_SECONDS, default=None,
                     help="Overall deadline per device in seconds (default: none)."),
        click.option("--retries", type=click.IntRange(0, 10), default=2, show_default=True,
                     help="Retries per call for transient failures; a state-changing call only when it surely "
                          "did not reach the device; never a rejected login."),
        click.option("--max-response", type=BYTES, metavar="BYTES",
                     help="Refuse answers larger than this (decompressed) [default: each spec's, e.g. 16M]."),
        click.option("--max-download", type=BYTES, metavar="BYTES",
                     help="Refuse downloads larger than this [default: each spec's, e.g. 2G]."),
        click.option("--spec", "spec_overrides", multiple=True, metavar="FAMILY=FILE",
                     help="Use this spec file for FAMILY instead of the built-in one."),
        click.option("--yes", "-y", is_flag=True, help="Do not ask before disruptive actions."),
        click.option("--json", "as_json", is_flag=True, help="Print results as JSON."),
        click.option("--csv", "as_csv", is_flag=True, help="Print results as CSV."),
        click.option("--quiet", "-q", is_flag=True,
                     help="Print nothing but errors (no progress bar, table or summary); the exit code tells."),
        click.option("--store", "store_path", type=click.Path(dir_okay=False), envvar="AVCTL_DB",
                     help="Job database: a file or a URL (postgresql://...) [default: $AVCTL_HOME/avctl.db]."),
        *guard_options,
        click.option("--engine", type=click.Choice(["local", "temporal"]), envvar="AVCTL_ENGINE", default="local",
                     show_default=True,
                     help="Where devices are run: in this process, or on Temporal by each site's "
                          "'avctl worker --site NAME' (docs/temporal.md)."),
        click.option("--temporal", "temporal_address", envvar="AVCTL_TEMPORAL", default="127.0.0.1:7233",
                     show_default=True, metavar="HOST:PORT", help="With --engine temporal: the Temporal service."),
        click.option("--namespace", "temporal_namespace", envvar="AVCTL_TEMPORAL_NAMESPACE", default="default",
                     show_default=True, help="With --engine temporal: the Temporal namespace."),
        click.option("--site-deadline", type=DEADLINE_SECONDS, default=None,
                     help="With --engine temporal: devices of a site whose worker takes none of them within this "
                          "many seconds end skipped (default: they wait)."),
        click.option("--batch-size", type=click.IntRange(1, 10000), default=25, show_default=True,
                     help="With --engine temporal: devices per batch a site worker takes."),
        click.option("--heartbeat", type=DEADLINE_SECONDS, default=30.0, show_default=True,
                     help="With --engine temporal: a batch silent this many seconds is taken to have died (its "
                          "worker with it) and is given to another worker of the site."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return endpoint_options(tls_options(fleet_password_options(fn)))


def dry_run_option(fn: F) -> F:
    return click.option("--dry-run", is_flag=True,
                        help="Show what would be sent to which devices (and which are skipped, and why); send "
                             "nothing, record no job.")(fn)


#: the in-call guard, maintenance windows and rollout rings (docs/schedules.md): every job command has them
guard_options = [
    click.option("--if-idle", is_flag=True,
                 help="Skip devices in a call or sharing (the skip reason says so). On a schedule, the default "
                      "for disruptive work."),
    click.option("--wait-idle", type=WAIT_DURATION, metavar="MAX",
                 help="Wait up to MAX (30m, 2h) for a busy device to be idle, then skip it."),
    click.option("--ignore-calls", is_flag=True,
                 help="On a schedule, run disruptive work even on devices in a call (no --if-idle default)."),
    click.option("--in-window", is_flag=True,
                 help="Start devices only inside their site's maintenance window (waits for it to open); "
                      "devices not started before it closes end skipped and can be resumed."),
    click.option("--rings", metavar="RINGS",
                 help="Roll out ring by ring: 'canary=tag:canary,pilot=site:hq,all' (terms key:glob, joined with "
                      "'+'; a last ring without '=' takes every device left)."),
    click.option("--gate", metavar="PERCENT",
                 help="Success rate a ring must reach before the next ring starts, e.g. 95%."),
    click.option("--soak", type=WAIT_DURATION, metavar="DURATION",
                 help="Wait this long after each ring before judging its gate (30m, 2h)."),
]


def parse_rings(text: str | None) -> tuple[tuple[str, str], ...]:
    """``canary=tag:canary,pilot=site:hq+tag:lobby,all`` -> ((name, selection), ...); the selection of
    a last ring without ``=`` is "" (every device not in an earlier ring)."""
    if not text:
        return ()
    rings: list[tuple[str, str]] = []
    items = [item.strip() for item in text.split(",")]
    for n, item in enumerate(items):
        name, sep, terms = item.partition("=")
        name = name.strip()
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise UsageError(f"--rings: {item!r} is not NAME=key:glob", hint="e.g. --rings canary=tag:canary,all")
        if any(name == seen for seen, _ in rings):
            raise UsageError(f"--rings: ring {name!r} is given twice")
        if not sep:
            if n != len(items) - 1:
                raise UsageError(f"--rings: ring {name!r} takes every device left, so it must be the last one",
                                 hint="e.g. --rings canary=tag:canary,pilot=site:hq,all")
            rings.append((name, ""))
            continue
        selection = []
        for term in terms.split("+"):
            key, colon, glob = term.strip().partition(":")
            if not colon or not key or not glob:
                raise UsageError(f"--rings: {term!r} in ring {name!r} is not key:glob",
                                 hint="keys: name, family, site, room, tag; e.g. tag:canary or site:hq+tag:lobby")
            selection.append(f"{key.strip()}={glob.strip()}")
        rings.append((name, ",".join(selection)))
    return tuple(rings)


def parse_gate(text: str | None) -> float | None:
    """``95%`` or ``95`` or ``0.95`` -> 0.95."""
    if text is None:
        return None
    raw = text.strip().rstrip("%").strip()
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"--gate: {text!r} is not a success rate", hint="e.g. --gate 95%") from None
    if value > 1 or text.strip().endswith("%"):
        value /= 100
    if not 0 < value <= 1:
        raise UsageError(f"--gate: {text!r} is not between 0 and 100 %", hint="e.g. --gate 95%")
    return value


def _overrides(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        fam, sep, path = pair.partition("=")
        if not sep or not fam or not path:
            raise UsageError(f"--spec expects FAMILY=FILE, got {pair!r}")
        out[fam] = path
    return out


def _params(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"expected key=value, got {pair!r}")
        name = key.replace("-", "_")
        out[name] = param_text(name, value, secret=_secret_param(name))
    return out


def _secret_param(name: str) -> bool:
    """Secret if the name says so or any built-in spec marks a parameter of that name secret
    (fleet parameters are read before the families of the selection are known)."""
    from avctl.families import builtin_spec, family_names
    from avctl.fleet.credentials import SENSITIVE_KEY_RE

    if SENSITIVE_KEY_RE.search(name):
        return True
    return any(p.secret and p.name == name
               for fam in family_names() for a in builtin_spec(fam).actions.values() for p in a.params)


# --- running a job ------------------------------------------------------------------------------


class BarProgress(BaseProcessor):
    """The progress bar as a runner processor: one step per device outcome."""

    def __init__(self, bar: ProgressBar) -> None:
        self.bar = bar

    def device_finished(self, job: JobInfo, outcome: Outcome) -> None:
        self.bar.update(outcome)


def _confirm(runner: FleetRunner, task: Task, devices: Sequence[Any], yes: bool) -> dict[str, dict[str, int]]:
    """Plan the task (validated per family) and ask before a disruptive one; the plan's counts."""
    counts = runner.plan(task, devices)
    hit = {fam: c["run"] for fam, c in counts.items() if c["disruptive"] and c["run"]}
    if hit:
        total = sum(hit.values())
        per = ", ".join(f"{fam}: {n}" for fam, n in sorted(hit.items()))
        named = [device_line(d) for d in devices
                 if d.family in hit and planned_outcome(task, d, runner.specs) is None]
        confirm_disruptive(f"{task.name} on {total} device(s) ({per})", yes, named)
    return counts


def device_line(d: DeviceEntry) -> str:
    """"name (family, site hq)": a device as prompts and dry runs name it."""
    return f"{d.name} ({d.family}" + (f", site {d.site}" if d.site else "") + ")"


def _report(report: JobReport, *, as_json: bool, as_csv: bool, quiet: bool) -> None:
    if as_json:
        extra = {"stopped": report.stopped} if report.stopped else {}
        click.echo(to_json(report.outcomes, report.counts, job=report.job_id, task=report.task, **extra))
    elif as_csv:
        click.echo(to_csv(report.outcomes), nl=False)
    elif not quiet:
        render_table(report.outcomes, report.counts, title=f"job {report.job_id}: {report.task}")


def _exit_for(report: JobReport) -> None:
    if report.stopped:
        click.echo(f"avctl: error: rollout stopped: {report.stopped}; the later rings were not touched", err=True)
    if report.store_error:
        # never exit 0 when something was not recorded
        click.echo(f"avctl: error: {report.store_error}", err=True)
        click.echo(f"avctl: error: job {report.job_id} stopped: no new device was started after the store "
                   "failed; outcomes above are not all recorded in the store", err=True)
    ctx = click.get_current_context()
    ctx.exit(1 if report.failed else 0)


def wait_options(fn: F) -> F:
    fn = click.option("--wait-grace", type=GRACE_SECONDS, default=10.0, show_default=True,
                      help="Seconds a device may take to go down before an answer counts as 'back'.")(fn)
    fn = click.option("--wait-timeout", type=DEADLINE_SECONDS, default=300.0, show_default=True,
                      help="Deadline in seconds for --wait.")(fn)
    return click.option("--wait", is_flag=True,
                        help="Afterwards, wait until each device answers again (after a reboot).")(fn)


@dataclasses.dataclass
class JobSetup:
    """What a fleet command's options and inventory make of a job, before the store is opened."""

    selection: Selection
    inventory: Inventory
    devices: list[DeviceEntry]
    options: RunOptions
    overrides: dict[str, str]
    specs: Callable[[str], Spec]
    tls: Any
    resolver: CredentialResolver
    #: "local" (this process) or "temporal" (site workers)
    engine: str = "local"

    def runner(self, store: Any, audit: Any, bar: ProgressBar) -> FleetRunner:
        return FleetRunner(store=store, audit=audit, specs=self.specs, tls=self.tls, resolver=self.resolver,
                           options=self.options, processors=[BarProgress(bar)])


def job_setup(kwargs: dict[str, Any]) -> JobSetup:
    """The selection, inventory and run options of a fleet command (run_options + selection_options)."""
    _install_log_redaction()
    engine = kwargs.get("engine") or "local"
    output_format(kwargs["as_json"], kwargs["as_csv"])
    selection = _selection(kwargs)
    overrides = _overrides(kwargs["spec_overrides"])
    inv = _load(kwargs["inventory_path"], list(overrides))
    devices = with_password(scheduled_sites(inv.select(selection)),
                            fleet_password_ref(kwargs["password_env"], kwargs["password_file"]))
    if not devices:
        raise UsageError(f"the selection {selection} matches no device in {inv.path}",
                         hint="; ".join([*selection.near_misses(inv.devices), "see 'avctl inventory list'"]))
    ports, schemes = endpoint_maps(kwargs["port_map"], kwargs["scheme_map"])
    options = RunOptions(concurrency=kwargs["concurrency"], per_site=kwargs["per_site"],
                         timeout=kwargs["timeout"], device_timeout=kwargs["device_timeout"],
                         retries=kwargs["retries"], wait=kwargs.get("wait", False),
                         wait_timeout=kwargs.get("wait_timeout", 300.0), wait_grace=kwargs.get("wait_grace", 10.0),
                         output_dir=kwargs.get("output_dir", "."), ports=ports, schemes=schemes,
                         allow_cleartext=kwargs["allow_cleartext"],
                         overwrite=kwargs.get("overwrite", False),
                         max_response_bytes=kwargs["max_response"], max_download_bytes=kwargs["max_download"],
                         if_idle=kwargs.get("if_idle", False), wait_idle=kwargs.get("wait_idle"),
                         in_window=kwargs.get("in_window", False), rings=parse_rings(kwargs.get("rings")),
                         gate=parse_gate(kwargs.get("gate")), soak=kwargs.get("soak") or 0.0)
    tls = tls_policy(kwargs["known_hosts"], kwargs["ca_bundle"], kwargs["insecure"])
    specs = spec_provider(overrides)
    if ports:
        warn_unused_ports(_known_specs(specs, devices), ports, schemes)
    resolver = CredentialResolver(base_dir=inv.base_dir)
    if engine == "temporal":
        from avctl.temporal.engine import device_data

        # references are resolved at each site (its secrets, not this machine's): here only that
        # there is one, and no plain-text password, before anything is recorded or sent
        device_data(devices)
    else:
        check_passwords(resolver, devices)
    return JobSetup(selection, inv, devices, options, overrides, specs, tls, resolver, engine)


def with_password(devices: list[DeviceEntry], ref: str | None) -> list[DeviceEntry]:
    """--password-env / --password-file: the password of the devices the inventory gives none."""
    if ref is None:
        return devices
    return [dataclasses.replace(d, password=ref) if d.password is None else d for d in devices]


def check_passwords(resolver: CredentialResolver, devices: Sequence[DeviceEntry], *, required: bool = True) -> None:
    """Every password reference of the devices that will be contacted, resolved before a job
    starts: one error listing all that cannot be, and (``required``) the devices that have none
    at all (every family logs in with one); nothing is sent to any device."""
    enabled = [d for d in devices if not d.disabled]
    check_references(resolver, [(d.name, d.password) for d in enabled if d.password is not None],
                     unset=[d.name for d in enabled if d.password is None] if required else ())


def scheduled_sites(devices: list[DeviceEntry]) -> list[DeviceEntry]:
    """A schedule that spans time zones runs once per zone: its run names the sites it covers
    (``AVCTL_SCHEDULE_SITES``, a JSON list; null: devices without a site)."""
    raw = os.environ.get(SITES_ENV)
    if raw is None or scheduled_run() is None:
        return devices
    try:
        sites = json.loads(raw)
        if not isinstance(sites, list) or not all(s is None or isinstance(s, str) for s in sites):
            raise ValueError("not a list of site names")
    except ValueError as exc:
        raise UsageError(f"{SITES_ENV} is not a JSON list of site names: {exc}") from None
    return [d for d in devices if d.site in sites]


def _idle_by_default(runner: FleetRunner, task: Task, counts: dict[str, dict[str, int]],
                     kwargs: dict[str, Any]) -> None:
    """On a schedule, disruptive work leaves rooms in a meeting alone unless told otherwise."""
    opts = runner.options
    if scheduled_run() is None or opts.if_idle or opts.wait_idle is not None or kwargs.get("ignore_calls"):
        return
    if any(c["disruptive"] and c["run"] for c in counts.values()):
        runner.options = dataclasses.replace(opts, if_idle=True)
        if not kwargs["quiet"]:
            click.echo(f"avctl: note: {task.name} is disruptive and runs on a schedule: devices in a call are "
                   "skipped (--if-idle; --ignore-calls to run anyway)", err=True)


def _window_notes(devices: Sequence[DeviceEntry], options: RunOptions) -> None:
    """With --in-window, say per site when its window opens or closes (the job may wait for it)."""
    if not options.in_window:
        return
    from datetime import UTC, datetime

    from avctl.fleet.windows import zone

    now = datetime.now(UTC)
    seen: set[str | None] = set()
    for d in devices:
        if d.site in seen or d.window is None or d.timezone is None:
            continue
        seen.add(d.site)
        tz = zone(d.timezone)
        opens, closes = d.window.next_open(now, tz)
        when = ("open until " if opens <= now else f"opens {opens.astimezone(tz):%a %Y-%m-%d %H:%M}, closes ")
        click.echo(f"avctl: site {shown(d.site or '(none)')}: window {d.window} ({d.timezone}): {when}"
                   f"{closes.astimezone(tz):%a %Y-%m-%d %H:%M %Z}", err=True)


def _run_task(task: Task, kwargs: dict[str, Any]) -> None:
    setup = job_setup(kwargs)
    if kwargs.get("dry_run"):
        dry_run(task, setup.devices, FleetRunner(specs=setup.specs, resolver=setup.resolver, options=setup.options),
                kwargs)
        return
    run_job(task, setup, kwargs)


def dry_run(task: Task, devices: Sequence[DeviceEntry], runner: FleetRunner, kwargs: dict[str, Any]) -> None:
    """What the job would do: the task (secret parameters masked), each device it would reach, each
    it would skip and why. The task is validated per family; nothing is sent, no job recorded."""
    counts = runner.plan(task, devices)
    params = redact({k: (MASK if k in runner.secret_params and v else v) for k, v in task.params.items()})
    run, skip = [], []
    for d in devices:
        planned = planned_outcome(task, d, runner.specs)
        if planned is None:
            run.append({"device": d.name, "family": d.family, "site": d.site, "address": str(d.address),
                        "disruptive": bool(counts[d.family]["disruptive"])})
        else:
            skip.append({"device": d.name, "family": d.family, "site": d.site, "status": planned.status,
                         "reason": planned.reason, "message": planned.message})
    if kwargs["as_json"]:
        emit_json({"dry_run": True, "task": task.name, "params": params, "run": run, "skip": skip})
        return
    if kwargs["quiet"]:
        return
    click.echo(shown(f"dry run: {task.name}" + (f" {json.dumps(params)}" if params else "")
                     + f" would be sent to {len(run)} device(s); {len(skip)} skipped; nothing sent, no job recorded"))
    for r in run:
        click.echo(shown(f"  send  {r['device']} ({r['family']}" + (f", site {r['site']}" if r["site"] else "")
                         + f") at {r['address']}" + (" [disruptive]" if r["disruptive"] else "")))
    for k in skip:
        click.echo(shown(f"  skip  {k['device']} ({k['family']}): {k['reason']}: {k['message']}"))


def run_job(task: Task, setup: JobSetup, kwargs: dict[str, Any]) -> None:
    """Record and run one fleet job on ``setup.devices``, print its report and exit with its status."""
    report = record_and_run(task, setup, kwargs)
    _report(report, as_json=kwargs["as_json"], as_csv=kwargs["as_csv"], quiet=kwargs["quiet"])
    _exit_for(report)


def record_and_run(task: Task, setup: JobSetup, kwargs: dict[str, Any], *, announce: str | None = None,
                   label: str | None = None, bar_enabled: bool | None = None) -> JobReport:
    """Check the journal can be written, confirm a disruptive task, record the job and run it: the
    report (nothing printed of it). ``announce``: what the "job N: ..." line says it does;
    ``label``: the progress bar's."""
    devices = setup.devices
    store, audit = open_journal(kwargs["store_path"])
    with closing(store), closing(audit):
        store.check_writable()  # before any device is contacted
        audit.check_writable()
        enabled = bar_enabled if bar_enabled is not None else (None if not kwargs["quiet"] else False)
        bar = ProgressBar(len(devices), label or task.name, enabled=enabled)
        runner = setup.runner(store, audit, bar)
        counts = _confirm(runner, task, devices, kwargs.get("yes", False))
        _idle_by_default(runner, task, counts, kwargs)
        if not kwargs["quiet"]:
            _window_notes(devices, runner.options)
        if setup.engine == "temporal":  # unreachable: said before a job is recorded
            from avctl.temporal.engine import check_reachable

            asyncio.run(check_reachable(_temporal_target(kwargs)))
        job = create_job(store, task, selection=str(setup.selection), devices=devices, inventory=setup.inventory,
                         options=runner.options, spec_overrides=setup.overrides,
                         secret_params=runner.secret_params, engine=setup.engine)
        note_job(kwargs["store_path"], job.id)
        if not kwargs["quiet"]:
            click.echo(f"job {job.id}: {announce or task.name} on {len(devices)} device(s)", err=True)
        try:
            with bar:
                if setup.engine == "temporal":
                    return asyncio.run(_on_temporal(store, audit, job, runner, task, setup, kwargs, bar))
                return asyncio.run(execute(store, job, runner, task, devices))
        except KeyboardInterrupt:
            done = sum(store.counts(job.id).values())
            click.echo(f"avctl: interrupted; {done} outcome(s) kept; continue with 'avctl jobs resume {job.id}'",
                       err=True)
            sys.exit(130)


def _temporal_target(kwargs: dict[str, Any]) -> Any:
    from avctl.temporal.engine import TemporalTarget

    return TemporalTarget(kwargs["temporal_address"], kwargs["temporal_namespace"])


async def _on_temporal(store: Any, audit: Any, job: Any, runner: FleetRunner, task: Task, setup: JobSetup,
                       kwargs: dict[str, Any], bar: ProgressBar) -> JobReport:
    """The job on Temporal: each site's worker runs its devices; outcomes land here as they come."""
    from avctl.fleet.store import default_db_path
    from avctl.temporal.engine import run_job, schedule_ref
    from avctl.temporal.model import Limits

    location = kwargs["store_path"] or str(default_db_path())
    target = _temporal_target(kwargs)
    limits = Limits(site_deadline=kwargs.get("site_deadline"), batch_size=kwargs["batch_size"],
                    heartbeat=kwargs["heartbeat"])
    quiet = kwargs["quiet"]

    def started(workflow: str) -> None:
        if not quiet:
            click.echo(f"job {job.id}: workflow {workflow} on {target.address}", err=True)

    return await run_job(target, store, audit, location, job, task, setup.devices, runner.options, limits=limits,
                         on_outcome=lambda _job, outcome: bar.update(outcome), on_started=started,
                         schedule=schedule_ref(kwargs["store_path"], scheduled_run()), spec_overrides=setup.overrides)


def _known_specs(specs: Callable[[str], Spec], devices: Sequence[DeviceEntry]) -> list[Spec]:
    found = []
    for family in sorted({d.family for d in devices}):
        with contextlib.suppress(AvctlError):  # reported per device when the job runs
            found.append(specs(family))
    return found


class FleetGroup(click.Group):
    """`avctl fleet VERB`: any verb a spec defines under Macros works, not only the listed ones."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        names.update(_builtin_verbs())
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            return cmd
        if not cmd_name.replace("_", "").isalnum():
            return None
        return _verb_command(cmd_name)


def _builtin_verbs() -> set[str]:
    from avctl.families import builtin_spec, family_names

    verbs: set[str] = set()
    for fam in family_names():
        with contextlib.suppress(Exception):
            verbs.update(builtin_spec(fam).macros)
    return verbs


def _verb_command(verb: str) -> click.Command:
    @click.command(verb, help=f"Run the '{verb}' verb (each family's Macro of that name) on the selection.")
    @click.argument("params", nargs=-1)
    @inventory_option
    @selection_options
    @run_options
    @wait_options
    @dry_run_option
    @handle_errors
    def command(params: tuple[str, ...], **kwargs: Any) -> None:
        _run_task(MacroTask(verb, _params(params)), kwargs)

    return command


@click.group("fleet", cls=FleetGroup)
def fleet_group() -> None:
    """Run actions and verbs on many devices at once (see 'avctl inventory list' for the selection)."""


@fleet_group.command("run")
@click.argument("action", shell_complete=complete_action)
@click.argument("params", nargs=-1)
@inventory_option
@selection_options
@run_options
@wait_options
@click.option("--output", "-o", "output_dir", type=click.Path(file_okay=False), default=".",
              help="Downloads go to OUTPUT/<device>/ [default: .].")
@click.option("--overwrite", is_flag=True, help="Let downloads replace existing files.")
@dry_run_option
@handle_errors
def fleet_run(action: str, params: tuple[str, ...], **kwargs: Any) -> None:
    """Run spec ACTION with key=value PARAMS on every selected device whose family has it.

    \b
    Example: avctl fleet run audio_volume_set volume=40 --site hq --tag lobby
    """
    _run_task(ActionTask(action, _params(params)), kwargs)


@fleet_group.command("status")
@inventory_option
@selection_options
@run_options
@dry_run_option
@handle_errors
def fleet_status(**kwargs: Any) -> None:
    """Reachable, model, firmware, uptime, in a call, mic mute, volume: whatever each family reports."""
    _run_task(StatusTask(), kwargs)


# --- inventory ------------------------------------------------------------------------------------


@click.group("inventory")
def inventory_group() -> None:
    """Show, check and import device inventories."""


@inventory_group.command("list")
@inventory_option
@selection_options
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def inventory_list(inventory_path: str, as_json: bool, **kwargs: Any) -> None:
    """Show the devices a selection matches (after site/group/default inheritance)."""
    selection = _selection(kwargs)
    inv = _load(inventory_path)
    devices = inv.select(selection)
    if as_json:
        emit_json([d.summary() for d in devices])
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("name", "family", "address", "site", "room", "tags", "credentials"):
        table.add_column(col, overflow="fold")
    for d in devices:
        s = d.summary()
        name = cell(d.name) + (Text(" (disabled)", style="dim") if d.disabled else Text())
        table.add_row(name, cell(d.family), cell((f"{d.scheme}://" if d.scheme else "") + s["address"]),
                      cell(d.site or ""), cell(d.room or ""), cell(",".join(s["tags"])),
                      cell(s["password"] or ""))
    wide_console().print(table)
    click.echo(f"{len(devices)} of {len(inv)} device(s) match '{selection}'", err=True)


@inventory_group.command("check")
@inventory_option
@click.option("--spec", "spec_overrides", multiple=True, metavar="FAMILY=FILE",
              help="Use this spec file for FAMILY instead of the built-in one.")
@handle_errors
def inventory_check(inventory_path: str, spec_overrides: tuple[str, ...]) -> None:
    """Check an inventory without contacting any device; print every problem (exit 1 if any).

    Checks: the file's syntax and keys, families (did you mean), duplicate devices, sites' time zones
    and maintenance windows, the desired configuration of config: blocks against each family's
    catalogue, and that every password reference resolves now (env:, file:, keyring:, secret:).
    """
    inv, problems = _inventory_problems(inventory_path, _overrides(spec_overrides))
    for p in problems:
        click.echo(shown(p.message))
        if p.hint:
            click.echo(shown(f"  hint: {p.hint}"))
    if inv is None or problems:
        click.echo(f"avctl: {len(problems)} problem(s) in {inventory_path}; nothing was contacted", err=True)
        click.get_current_context().exit(1)
        return
    sites = {d.site for d in inv.devices if d.site}
    click.echo(f"{inventory_path}: ok: {len(inv)} device(s), {len(sites)} site(s), every password reference "
               "resolves (no device was contacted)", err=True)
    unset = [d.name for d in inv.devices if d.password is None and not d.disabled]
    if unset:
        click.echo(f"  note: {len(unset)} device(s) have no password in the inventory ({shown(', '.join(unset[:5]))}"
                   f"{' ...' if len(unset) > 5 else ''}): give --password-env VAR or --password-file FILE when "
                   "running commands on them", err=True)


def _inventory_problems(path: str, overrides: dict[str, str]) -> tuple[Inventory | None, list[AvctlError]]:
    """The inventory (None if it does not load) and every problem found in it, without I/O to devices."""
    from avctl.config.desired import ConfigError, desired_fleet
    from avctl.families import family_names
    from avctl.fleet.credentials import CredentialProblems
    from avctl.fleet.inventory import InventoryError

    try:
        inv = load_inventory(path, families={*family_names(), *overrides})
    except InventoryError as exc:
        return None, list(getattr(exc, "problems", None) or [exc])
    for w in inv.warnings:
        click.echo(f"avctl: warning: {w}", err=True)
    problems: list[AvctlError] = []
    try:
        desired_fleet(inv.devices, spec_provider(overrides))
    except ConfigError as exc:
        # one problem per line after the heading (avctl.config.desired.problem_text)
        problems += [UsageError(line.strip()) for line in exc.message.splitlines()[1:]]
    try:
        # a device without a password is no mistake of the file: the run gives one (--password-env)
        check_passwords(CredentialResolver(base_dir=inv.base_dir), inv.devices, required=False)
    except CredentialProblems as exc:
        problems += exc.problems
    return inv, problems


@inventory_group.command("import")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(["ip-pass", "ip-list"]))
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", "inventory_path", required=True, type=click.Path(dir_okay=False),
              help="Inventory file to create or add to.")
@click.option("--family", help="Family of the devices [ip-pass: videoos, ip-list: polyuc].")
@click.option("--site", help="Site of every imported device.")
@click.option("--room", help="Room of every imported device.")
@click.option("--tag", "tags", multiple=True, help="Tag for every imported device (repeatable).")
@click.option("--user", help="User name, if not the family's default.")
@click.option("--password", "password_ref", metavar="REF",
              help="ip-list: shared credential reference (env:VAR, file:PATH, keyring:S/U, secret:NAME).")
@click.option("--prefix", help="Device name prefix [default: FAMILY-].")
@handle_errors
def inventory_import(fmt: str, source: str, inventory_path: str, family: str | None, site: str | None,
                     room: str | None, tags: tuple[str, ...], user: str | None, password_ref: str | None,
                     prefix: str | None) -> None:
    """Import device lists from room scripts: ip-pass (IP,Password lines) or ip-list (one IP per line).

    ip-pass passwords go to the encrypted secrets store (secret:DEVICE); the inventory holds only
    references.
    """
    if fmt == "ip-pass":
        if password_ref:
            raise UsageError("--password is for ip-list; ip-pass files carry their own passwords")
        res = import_ip_pass(source, family=family or "videoos", site=site, room=room, tags=tags,
                             name_prefix=prefix, user=user)
    else:
        res = import_ip_list(source, family=family or "polyuc", password=password_ref, site=site, room=room,
                             tags=tags, name_prefix=prefix, user=user)
    n = commit_import(inventory_path, res)  # checks everything, then writes all or nothing
    click.echo(f"imported {n} device(s) into {inventory_path}"
               + (f"; {len(res.secrets)} password(s) stored in the secrets file" if res.secrets else ""))


# --- secrets --------------------------------------------------------------------------------------


@click.group("secrets")
def secrets_group() -> None:
    """The encrypted secrets file (key: AVCTL_SECRETS_KEY or the OS keyring)."""


@secrets_group.command("set")
@click.argument("name")
@click.option("--from-env", metavar="VAR", help="Take the value from this environment variable.")
@click.option("--from-file", type=click.Path(exists=True, dir_okay=False), help="Take the first line of a file.")
@handle_errors
def secrets_set(name: str, from_env: str | None, from_file: str | None) -> None:
    """Store a secret NAME (asks for it, or reads one line from stdin; never an argument)."""
    if from_env:
        value = os.environ.get(from_env)
        if value is None:
            raise UsageError(f"environment variable {from_env} is not set")
    elif from_file:
        value = read_secret_file(from_file, "--from-file")
    elif sys.stdin.isatty():
        value = click.prompt(f"Value for {name}", hide_input=True, confirmation_prompt=True, err=True)
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise UsageError("refusing to store an empty secret")
    SecretsStore().set(name, value)
    click.echo(f"stored secret {name!r}; reference it as secret:{name}", err=True)


@secrets_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def secrets_list(as_json: bool) -> None:
    """Names and update times (values are never shown)."""
    names = SecretsStore().names()
    if as_json:
        emit_json(names)
        return
    for n in names:
        click.echo(f"{n['name']}\t{n['updated']}")


@secrets_group.command("rm")
@click.argument("name")
@handle_errors
def secrets_rm(name: str) -> None:
    """Remove a secret."""
    if not SecretsStore().remove(name):
        raise UsageError(f"no secret named {name!r}")
    click.echo(f"removed {name!r}", err=True)


@secrets_group.command("keygen")
def secrets_keygen() -> None:
    """Print a new key for AVCTL_SECRETS_KEY (keep it somewhere safe; without it the file is unreadable)."""
    click.echo(generate_key())


# --- jobs ------------------------------------------------------------------------------------------


def store_option(fn: F) -> F:
    return click.option("--store", "store_path", type=click.Path(dir_okay=False), envvar="AVCTL_DB",
                        help="Job database: a file or a URL (postgresql://...) [default: $AVCTL_HOME/avctl.db].")(fn)


@click.group("jobs")
def jobs_group() -> None:
    """Fleet jobs recorded in the job store: list, show, resume, rerun, prune."""


@jobs_group.command("list")
@store_option
@click.option("--limit", "-n", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def jobs_list(store_path: str | None, limit: int, as_json: bool) -> None:
    """Recent jobs, newest first."""
    with closing(open_store(store_path)) as store:
        jobs = store.list_jobs(limit)
        rows = []
        for j in jobs:
            c = store.counts(j.id)
            rows.append({"id": j.id, "created": j.created, "user": j.user, "task": j.action,
                         "selection": j.selection, "state": j.effective_state, "devices": len(j.devices),
                         **c, "pending": len(j.devices) - sum(c.values())})
    if as_json:
        emit_json([{**r, "created": iso_time(r["created"] if isinstance(r["created"], (int, float)) else None)}
                   for r in rows])
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("id", "created", "user", "task", "selection", "state", "devices", "ok", "failed", "unreachable",
                "skipped", "pending"):
        table.add_column(col)
    for r in rows:
        created = r["created"]
        r = {**r, "created": table_time(created if isinstance(created, (int, float)) else None)}
        table.add_row(*(cell(str(r[k])) for k in ("id", "created", "user", "task", "selection", "state", "devices",
                                              "ok", "failed", "unreachable", "skipped", "pending")))
    wide_console().print(table)


@jobs_group.command("show")
@click.argument("job_id", type=int)
@store_option
@click.option("--json", "as_json", is_flag=True)
@click.option("--csv", "as_csv", is_flag=True)
@handle_errors
def jobs_show(job_id: int, store_path: str | None, as_json: bool, as_csv: bool) -> None:
    """One job: parameters (redacted) and every device's outcome so far."""
    output_format(as_json, as_csv)
    with closing(open_store(store_path)) as store:
        job = store.get_job(job_id)
        outcomes = store.outcomes(job_id)
        counts = store.counts(job_id)
        pending = store.pending_devices(job_id)
    counts = {**counts, "total": sum(counts.values())}
    if as_json:
        click.echo(to_json(outcomes, counts, job=job.id, task=job.action, state=job.effective_state,
                           user=job.user, created=iso_time(job.created), selection=job.selection,
                           params=redact(job.params), pending=pending))
        return
    if as_csv:
        click.echo(to_csv(outcomes), nl=False)
        return
    click.echo(shown(f"job {job.id}: {job.action} {json.dumps(redact(job.params))} on '{job.selection}' "
                     f"by {job.user} at {table_time(job.created)}; {job.effective_state}"))
    render_table(outcomes, counts, title=f"job {job.id}")
    if pending:
        click.echo(f"{len(pending)} device(s) without an outcome: resume with 'avctl jobs resume {job.id}'")


def job_run_options(fn: F) -> F:
    """What a resume or rerun may change of the job's recorded options, and how it reports."""
    for opt in reversed([
        store_option,
        click.option("--inventory", "-i", "inventory_path", type=click.Path(dir_okay=False),
                     help="Inventory file [default: the one the job used]."),
        tls_options,
        fleet_password_options,
        click.option("--concurrency", "-c", type=click.IntRange(1, 10000),
                     help="Devices worked on at once [default: the job's]."),
        click.option("--per-site", type=click.IntRange(0, 10000),
                     help="Devices at once per site, 0: no limit [default: the job's]."),
        click.option("--timeout", type=REQUEST_SECONDS, help="Seconds per request [default: the job's]."),
        click.option("--yes", "-y", is_flag=True, help="Do not ask before disruptive actions."),
        click.option("--json", "as_json", is_flag=True, help="Print results as JSON."),
        click.option("--csv", "as_csv", is_flag=True, help="Print results as CSV."),
        click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors; the exit code tells."),
        dry_run_option,
    ]):
        fn = opt(fn)
    return fn


def _changed_options(plan: ResumePlan, kwargs: dict[str, Any]) -> RunOptions:
    """The job's recorded options with what this command changes (--concurrency, --per-site, --timeout)."""
    changes = {k: kwargs[k] for k in ("concurrency", "per_site", "timeout") if kwargs[k] is not None}
    return dataclasses.replace(plan.options, **changes)


def _job_runner(plan: ResumePlan, kwargs: dict[str, Any], options: RunOptions, store: Any, audit: Any,
                bar: ProgressBar) -> FleetRunner:
    """The runner of a resume or rerun; every password reference is checked before it starts."""
    plan.devices = with_password(plan.devices, fleet_password_ref(kwargs["password_env"], kwargs["password_file"]))
    resolver = CredentialResolver(base_dir=plan.inventory.base_dir)
    check_passwords(resolver, plan.devices)
    return FleetRunner(store=store, audit=audit, specs=spec_provider(plan.spec_overrides),
                       tls=tls_policy(kwargs["known_hosts"], kwargs["ca_bundle"], kwargs["insecure"]),
                       resolver=resolver, options=options, processors=[BarProgress(bar)])


@jobs_group.command("resume")
@click.argument("job_id", type=int)
@click.argument("params", nargs=-1)
@job_run_options
@click.option("--retry-in-doubt", is_flag=True,
              help="Also run devices a process that died had already sent the action to (it may have acted).")
@handle_errors
def jobs_resume(job_id: int, params: tuple[str, ...], retry_in_doubt: bool, **kwargs: Any) -> None:
    """Finish an interrupted job: only devices without a final outcome are touched.

    A device whose state-changing request a process that died had already sent is in doubt (the
    device may have acted on it): it is left alone, and listed, unless --retry-in-doubt.
    --concurrency, --per-site and --timeout change the job's for this run.
    """
    _install_log_redaction()
    output_format(kwargs["as_json"], kwargs["as_csv"])
    quiet = kwargs["quiet"]
    store, audit = open_journal(kwargs["store_path"])
    with closing(store), closing(audit):
        store.check_writable()  # before any device is contacted
        audit.check_writable()
        plan = plan_resume(store, job_id, params=_params(params), inventory_path=kwargs["inventory_path"])
        options = dataclasses.replace(_changed_options(plan, kwargs), retry_in_doubt=retry_in_doubt)
        bar = ProgressBar(len(plan.devices), plan.task.name, enabled=None if not quiet else False)
        runner = _job_runner(plan, kwargs, options, store, audit, bar)
        if kwargs["dry_run"]:
            dry_run(plan.task, plan.devices, runner, kwargs)
            return
        if plan.job.effective_state == "running":
            click.echo(f"avctl: note: job {job_id} is also being run by pid {plan.job.pid} on {plan.job.host}; "
                       "this process takes only the devices no live process has claimed", err=True)
        if plan.devices:
            _confirm(runner, plan.task, plan.devices, kwargs["yes"])
        if not quiet:
            click.echo(f"job {job_id}: resuming {plan.task.name} on {len(plan.devices)} device(s) without an "
                       "outcome", err=True)
        try:
            with bar:
                report = asyncio.run(run_resume(store, plan, runner))
        except KeyboardInterrupt:
            click.echo(f"avctl: interrupted; continue with 'avctl jobs resume {job_id}'", err=True)
            sys.exit(130)
    _report(report, as_json=kwargs["as_json"], as_csv=kwargs["as_csv"], quiet=quiet)
    if runner.in_doubt:
        shown_names = ", ".join(runner.in_doubt[:10]) + (" ..." if len(runner.in_doubt) > 10 else "")
        click.echo(f"avctl: {len(runner.in_doubt)} device(s) in doubt, not run: the process that ran this job "
                   f"died after sending them {plan.task.name}, which they may have acted on: {shown_names}",
                   err=True)
        click.echo(f"avctl: hint: check them, then 'avctl jobs resume {job_id} --retry-in-doubt' to run them "
                   "again", err=True)
        sys.exit(1)
    _exit_for(report)


@jobs_group.command("rerun")
@click.argument("job_id", type=int)
@click.argument("params", nargs=-1)
@click.option("--failed", is_flag=True, help="Run the devices that ended failed or unreachable (required).")
@job_run_options
@handle_errors
def jobs_rerun(job_id: int, params: tuple[str, ...], failed: bool, **kwargs: Any) -> None:
    """Start a NEW job with the action and parameters of JOB on its failed and unreachable devices.

    \b
    Example: avctl jobs rerun 12 --failed --concurrency 10
    """
    _install_log_redaction()
    if not failed:
        raise UsageError("say which devices to run again: --failed (those that ended failed or unreachable)",
                         hint=f"avctl jobs rerun {job_id} --failed; 'avctl jobs resume {job_id}' finishes an "
                              "interrupted job instead")
    output_format(kwargs["as_json"], kwargs["as_csv"])
    quiet = kwargs["quiet"]
    store, audit = open_journal(kwargs["store_path"])
    with closing(store), closing(audit):
        store.check_writable()
        audit.check_writable()
        plan = plan_rerun(store, job_id, params=_params(params), inventory_path=kwargs["inventory_path"])
        for name in plan.missing:
            click.echo(f"avctl: warning: {name} is no longer in {plan.inventory.path}: left out", err=True)
        if not plan.devices:
            raise UsageError(f"no failed device of job {job_id} is in {plan.inventory.path}")
        bar = ProgressBar(len(plan.devices), plan.task.name, enabled=None if not quiet else False)
        runner = _job_runner(plan, kwargs, _changed_options(plan, kwargs), store, audit, bar)
        if kwargs["dry_run"]:
            dry_run(plan.task, plan.devices, runner, kwargs)
            return
        _confirm(runner, plan.task, plan.devices, kwargs["yes"])
        job = create_job(store, plan.task, selection=f"rerun of job {job_id} (failed)", devices=plan.devices,
                         inventory=plan.inventory, options=runner.options, spec_overrides=plan.spec_overrides,
                         secret_params=runner.secret_params)
        if not quiet:
            click.echo(f"job {job.id}: {plan.task.name} again on {len(plan.devices)} failed device(s) of job "
                       f"{job_id}", err=True)
        try:
            with bar:
                report = asyncio.run(execute(store, job, runner, plan.task, plan.devices))
        except KeyboardInterrupt:
            click.echo(f"avctl: interrupted; continue with 'avctl jobs resume {job.id}'", err=True)
            sys.exit(130)
    _report(report, as_json=kwargs["as_json"], as_csv=kwargs["as_csv"], quiet=quiet)
    _exit_for(report)


#: --older-than: up to ten years
AGE = Duration(3650 * 86400.0)


@jobs_group.command("prune")
@click.option("--older-than", "older_than", type=AGE, required=True, metavar="DURATION",
              help="Remove finished jobs that ended longer ago than this (30d, 12w, 48h).")
@store_option
@handle_errors
def jobs_prune(older_than: float, store_path: str | None) -> None:
    """Remove finished jobs and their outcomes from the job store (interrupted ones stay: they can
    be resumed). The audit log keeps its rows."""
    import time

    with closing(open_store(store_path)) as store:
        removed = store.prune(time.time() - older_than)
    age = f"{older_than / 86400:g} day(s)" if older_than >= 86400 else describe_duration(older_than)
    click.echo(f"removed {removed} finished job(s) older than {age}")


# --- audit -----------------------------------------------------------------------------------------


@click.command("audit")
@store_option
@click.option("--device", help="Device name glob.")
@click.option("--action", help="Action glob.")
@click.option("--user", help="OS user.")
@click.option("--outcome", type=click.Choice(["ok", "failed", "unreachable"]))
@click.option("--job", "job_id", type=int, help="Only calls of this job.")
@click.option("--since", help="Start: ISO time or a duration ago (30m, 2h, 7d).")
@click.option("--until", help="End: ISO time or a duration ago.")
@click.option("--limit", "-n", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the entries as CSV.")
@handle_errors
def audit_cmd(store_path: str | None, device: str | None, action: str | None, user: str | None,
              outcome: str | None, job_id: int | None, since: str | None, until: str | None, limit: int,
              as_json: bool, as_csv: bool) -> None:
    """Show the audit log of state-changing calls (newest first), filtered."""
    output_format(as_json, as_csv)
    with closing(open_audit(store_path)) as audit:
        entries = audit.query(device=device, action=action, user=user, outcome=outcome, job_id=job_id,
                              since=parse_when(since) if since else None,
                              until=parse_when(until) if until else None, limit=limit)
    if as_json:
        emit_json([e.as_dict() for e in entries])
        return
    if as_csv:
        click.echo(audit_csv(entries), nl=False)
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("time", "user", "device", "action", "params", "outcome", "job", "detail"):
        table.add_column(col, overflow="fold")
    for e in entries:
        detail = f"[{e.error_kind}] {e.message}" if e.error_kind else (e.message or "")
        table.add_row(*(cell(x) for x in (table_time(e.ts), e.user, e.device, e.action,
                                             json.dumps(e.params, separators=(",", ":")), e.outcome,
                                             str(e.job_id or ""), detail)))
    wide_console().print(table)


