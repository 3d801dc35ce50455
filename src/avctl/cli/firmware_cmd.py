"""``avctl firmware report`` and ``avctl firmware update`` (docs/firmware.md).

Both read each device's status with a fleet job (recorded in the job store like ``fleet status``)
and classify it with `avctl.fleet.firmware`; ``update`` then runs the families' ``firmware_update``
verb as a second job on the outdated devices that have one, so confirmation, rings, gates, windows
and the in-call guard apply as for any fleet verb.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Mapping, Sequence
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from avctl.cli.common import emit_json, handle_errors
from avctl.cli.fleet import (
    JobSetup,
    inventory_option,
    job_setup,
    record_and_run,
    run_job,
    run_options,
    selection_options,
    wait_options,
    wide_console,
)
from avctl.cli.output import cell
from avctl.errors import AvctlError
from avctl.fleet.firmware import UPDATE_VERB, FirmwareRow, assess, counts
from avctl.fleet.output import csv_cell
from avctl.fleet.results import JobReport
from avctl.fleet.verbs import MacroTask, StatusTask
from avctl.redact import shown

#: ``firmware report --fail-on-outdated`` when some device is outdated (and nothing worse happened)
EXIT_OUTDATED = 3

COMPLIANCE_STYLE = {"compliant": "green", "outdated": "red", "unknown": "yellow"}
_NOT_GIVEN = {"model": "(not reported)", "site": "(no site)"}
ROW_FIELDS = ("device", "family", "site", "model", "firmware", "baseline", "baseline_model", "compliance",
              "detail", "update")


@click.group("firmware")
def firmware_group() -> None:
    """Firmware compliance with the inventory's baseline; updates.

    'report' compares each device's firmware with the baseline; 'update' runs the update action each
    family's API has (Solstice, Poly UC) on the outdated devices.
    """


def _read_status(setup: JobSetup, kwargs: dict[str, Any], *, label: str, quiet: bool) -> JobReport:
    """Record and run a status job on ``setup.devices``: the firmware report's data."""
    return record_and_run(StatusTask(), setup, kwargs, announce="reading model and firmware", label=label,
                          bar_enabled=False if quiet else None)


def _assess(setup: JobSetup, report: JobReport) -> list[FirmwareRow]:
    by_name = {o.device: o for o in report.outcomes}
    verbs: dict[str, Mapping[str, str] | None] = {}
    for family in {d.family for d in setup.devices}:
        try:
            verbs[family] = {m.id: m.label for m in setup.specs(family).macros.values()}
        except AvctlError:  # the status outcome already says why
            verbs[family] = None
    return [assess(d, by_name.get(d.name), verbs[d.family]) for d in setup.devices]


def _store_problem(report: JobReport) -> None:
    if report.store_error:
        # never exit 0 when something was not recorded
        click.echo(f"avctl: error: {report.store_error}", err=True)
        click.echo(f"avctl: error: job {report.job_id} stopped: no new device was started after the store "
                   "failed; outcomes above are not all recorded in the store", err=True)


# --- report ------------------------------------------------------------------------------------


def _document(report: JobReport, rows: Sequence[FirmwareRow]) -> dict[str, Any]:
    return {"job": report.job_id, **counts(rows), "devices": [r.as_dict() for r in rows]}


def _csv(rows: Sequence[FirmwareRow]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")  # no CR: it rewrites a terminal line
    w.writerow(ROW_FIELDS)
    for r in rows:
        d = r.as_dict()
        w.writerow([csv_cell(shown(d[k])) if d[k] is not None else "" for k in ROW_FIELDS])
    return buf.getvalue()


def _count_line(c: Mapping[str, int]) -> str:
    return f"{c['total']} device(s): {c['compliant']} compliant, {c['outdated']} outdated, {c['unknown']} unknown"


def _table(rows: Sequence[FirmwareRow], report: JobReport) -> None:
    console = wide_console()
    table = Table(title=f"firmware (job {report.job_id})", title_justify="left", box=None, pad_edge=False,
                  header_style="bold")
    for col in ("device", "family", "site", "model", "firmware", "baseline", "compliance", "detail", "update"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(cell(r.device), cell(r.family), cell(r.site or ""), cell(r.model or ""),
                      cell(r.firmware or ""), cell(r.baseline or ""),
                      Text(r.compliance, style=COMPLIANCE_STYLE[r.compliance]), cell(r.detail),
                      cell(r.update if r.compliance == "outdated" else ""))
    console.print(table)
    doc = counts(rows)
    for title, key, first in (("per model", "models", ("family", "model")), ("per site", "sites", ("site",))):
        part = Table(title=title, title_justify="left", box=None, pad_edge=False, header_style="bold")
        for col in (*first, "compliant", "outdated", "unknown", "total"):
            part.add_column(col)
        for line in doc[key]:
            part.add_row(*(cell(_NOT_GIVEN[c] if line[c] is None else line[c])
                           for c in (*first, "compliant", "outdated", "unknown", "total")))
        console.print(part)
    console.print(_count_line(doc["total"]))


@firmware_group.command("report")
@inventory_option
@selection_options
@run_options
@click.option("--fail-on-outdated", is_flag=True,
              help=f"Exit {EXIT_OUTDATED} when a device is outdated (for CI and monitoring).")
@handle_errors
def firmware_report(fail_on_outdated: bool, **kwargs: Any) -> None:
    """Compliant, outdated or unknown per device against the inventory's firmware baseline.

    \b
    Exit codes:
      0  the report was made
      1  a device was unreachable or its status read failed, or a record was not stored
      3  with --fail-on-outdated: a device is outdated (and nothing above happened)
    """
    setup = job_setup(kwargs)
    machine = kwargs["as_json"] or kwargs["as_csv"]
    report = _read_status(setup, kwargs, label="firmware report", quiet=kwargs["quiet"] or machine)
    rows = _assess(setup, report)
    if kwargs["as_json"]:
        emit_json(_document(report, rows))
    elif kwargs["as_csv"]:
        click.echo(_csv(rows), nl=False)
    elif not kwargs["quiet"]:
        _table(rows, report)
    _store_problem(report)
    ctx = click.get_current_context()
    if report.failed:
        ctx.exit(1)
    if fail_on_outdated and any(r.compliance == "outdated" for r in rows):
        ctx.exit(EXIT_OUTDATED)
    ctx.exit(0)


# --- update ------------------------------------------------------------------------------------


def _left_out_reason(row: FirmwareRow) -> str:
    if row.compliance == "compliant":
        return f"compliant: {row.detail}"
    if row.compliance == "unknown":
        return f"unknown: {row.detail}"
    return f"outdated, but {row.update}"


def _read_options(setup: JobSetup) -> JobSetup:
    """The status read before an update runs at once on every device: no rings, gates, windows,
    idle guard or wait (those are for the update itself)."""
    options = dataclasses.replace(setup.options, if_idle=False, wait_idle=None, in_window=False, rings=(),
                                  gate=None, soak=0.0, wait=False)
    return dataclasses.replace(setup, options=options)


@firmware_group.command("update")
@inventory_option
@selection_options
@run_options
@wait_options
@click.option("--dry-run", is_flag=True, help="Read status and show the plan; send no update.")
@handle_errors
def firmware_update(dry_run: bool, **kwargs: Any) -> None:
    """Install the firmware update on the selected devices that are outdated.

    Reads model and firmware first (a status job), then runs each family's firmware_update verb on
    the outdated devices whose family has one, as a second job; --rings, --gate, --in-window and
    --if-idle apply to it. Devices left out are listed with the reason (compliant, unknown, or no
    update action in their family's API, as for VideoOS).
    """
    setup = job_setup(kwargs)
    machine = kwargs["as_json"] or kwargs["as_csv"]
    report = _read_status(_read_options(setup), kwargs, label="firmware status", quiet=kwargs["quiet"] or machine)
    rows = _assess(setup, report)
    _store_problem(report)
    if report.store_error:
        click.get_current_context().exit(1)
    chosen = {r.device for r in rows if r.compliance == "outdated" and r.updatable}
    left_out = [r for r in rows if r.device not in chosen]
    if dry_run and kwargs["as_json"]:
        emit_json({"job": report.job_id, "update": sorted(chosen),
                   "left_out": [{"device": r.device, "family": r.family, "compliance": r.compliance,
                                 "reason": _left_out_reason(r)} for r in left_out],
                   "devices": [r.as_dict() for r in rows]})
    elif not kwargs["quiet"] or dry_run:
        for r in left_out:
            click.echo(shown(f"avctl: left out {r.device} ({r.family}): {_left_out_reason(r)}"), err=True)
        for r in rows if dry_run else ():
            if r.device in chosen:
                click.echo(shown(f"would update {r.device} ({r.family}, {r.model}, firmware {r.firmware}, "
                                 f"baseline {r.baseline}): {r.update}"))
    if not kwargs["quiet"] or dry_run:
        click.echo(f"{len(chosen)} outdated device(s) with an update action, {len(left_out)} left out", err=True)
    if dry_run or not chosen:
        click.get_current_context().exit(1 if report.failed else 0)
    setup.devices = [d for d in setup.devices if d.name in chosen]
    run_job(MacroTask(UPDATE_VERB, {}), setup, kwargs)
