"""One scheduler pass: which runs are due, the command each starts, and recording its end.

Used by ``avctl schedule run-due`` (start the due runs, wait for them: `run_pass`) and by the server
(`avctl.server.schedules`, which starts the same commands as asyncio subprocesses). The command of a
run is ``python -m avctl ARGV`` in the schedule's folder with:

- ``AVCTL_SCHEDULE_RUN``: the run's id (the job command writes its job id on it: `link.note_job`),
- ``AVCTL_DB``: the scheduler's database (the job lands beside its run record),
- ``AVCTL_SCHEDULE_SITES``: when the selected devices span several time zones, a JSON list of the
  site names of this run's zone (null: devices without a site); the job keeps only those.

Its output (stdout and stderr) goes to a file under ``$AVCTL_HOME/schedule-logs/`` while it runs;
its end (masked, at most 64 KiB) is stored on the run record, then the file is removed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cronsim import CronSimError

from avctl.errors import AvctlError
from avctl.fleet.inventory import Inventory, Selection, load_inventory
from avctl.fleet.paths import avctl_home
from avctl.fleet.windows import WindowError, zone
from avctl.paths import ensure_private_dir
from avctl.schedule.link import RUN_ENV, SITES_ENV
from avctl.schedule.store import OUTPUT_CAP, Run, Schedule, ScheduleStore
from avctl.schedule.timing import decide, due_instants, next_due

log = logging.getLogger("avctl.schedule")

SUPERSEDED = "not run: no scheduler ran at its time, and only the newest due time runs"
#: zone -> the site names of the selection in that zone (None: no limit, one zone only)
Zones = dict[str, list[str | None] | None]


def schedule_zones(schedule: Schedule) -> Zones:
    """The time zones the schedule fires in: each selected device's site zone, else the schedule's.
    An inventory that cannot be read (the command will say why) or an empty selection: the schedule's."""
    try:
        if schedule.inventory is None:
            raise AvctlError("no inventory")
        devices = _inventory(schedule.inventory).select(Selection.parse(list(schedule.selection)))
    except AvctlError:
        return {schedule.timezone: None}
    by_zone: dict[str, set[str | None]] = {}
    for dev in devices:
        if not dev.disabled:
            by_zone.setdefault(dev.timezone or schedule.timezone, set()).add(dev.site)
    if len(by_zone) <= 1:
        return {next(iter(by_zone), schedule.timezone): None}
    return {z: sorted(sites, key=lambda s: (s is None, s or "")) for z, sites in sorted(by_zone.items())}


#: path -> (its size and modification time, the inventory): a pass reads an unchanged file once
_INVENTORIES: dict[str, tuple[tuple[int, int], Inventory]] = {}


def _inventory(path: str) -> Inventory:
    try:
        st = os.stat(path)
    except OSError:
        _INVENTORIES.pop(path, None)
        return load_inventory(path)  # its error says what is wrong
    key = (st.st_size, st.st_mtime_ns)
    cached = _INVENTORIES.get(path)
    if cached is None or cached[0] != key:
        cached = (key, load_inventory(path))
        _INVENTORIES[path] = cached
    return cached[1]


@dataclass(frozen=True)
class Launch:
    """A run recorded as started by this process: its command still has to be started."""

    schedule: Schedule
    run: Run


def due_runs(store: ScheduleStore, now: float, *,
             zones: Callable[[Schedule], Zones] = schedule_zones) -> tuple[list[Launch], list[Run]]:
    """Evaluate every active schedule at ``now``: record missed and skipped runs, claim the due ones.
    Returns the runs to start and the runs recorded skipped."""
    store.close_stale(now=now)
    launches: list[Launch] = []
    skipped: list[Run] = []
    for schedule in store.schedules():
        if schedule.paused or schedule.engine != "local":  # Temporal fires its own
            continue
        try:
            for name, sites in zones(schedule).items():
                _evaluate(store, schedule, name, sites, now, launches, skipped)
        except (CronSimError, WindowError) as exc:  # a row changed by hand: the other schedules still run
            log.error("schedule %s cannot be evaluated: %s", schedule.name, exc)
    return launches, skipped


def _evaluate(store: ScheduleStore, schedule: Schedule, zone_name: str, sites: list[str | None] | None,
              now: float, launches: list[Launch], skipped: list[Run]) -> None:
    newest = store.newest_due(schedule.id, zone_name)
    after = max(schedule.evaluated_from, newest if newest is not None else schedule.evaluated_from)
    due = decide(due_instants(schedule.cron, zone(zone_name), after, now), now, schedule.grace)
    late = due.missed[-1:] if due.run is None else ()
    store.record_missed(schedule, zone_name, due.missed[:len(due.missed) - len(late)], now=now, reason=SUPERSEDED)
    store.record_missed(schedule, zone_name, late, now=now,
                        reason=f"not run: no scheduler ran within its grace ({schedule.grace:g}s)")
    if due.run is not None:
        _claim(store, schedule, zone_name, due.run, "cron", sites, now, launches, skipped)


def run_now(store: ScheduleStore, schedule: Schedule, now: float, *,
            zones: Callable[[Schedule], Zones] = schedule_zones) -> tuple[list[Launch], list[Run]]:
    """One run per zone of the schedule, now (the overlap rule applies)."""
    store.close_stale(now=now)
    launches: list[Launch] = []
    skipped: list[Run] = []
    for name, sites in zones(schedule).items():
        _claim(store, schedule, name, now, "manual", sites, now, launches, skipped)
    return launches, skipped


def _claim(store: ScheduleStore, schedule: Schedule, zone_name: str, due: float, trigger: str,
           sites: list[str | None] | None, now: float, launches: list[Launch], skipped: list[Run]) -> None:
    run = store.claim(schedule, zone_name, due, trigger=trigger, sites=sites, now=now)
    if run is None:
        return
    if run.state == "running":
        launches.append(Launch(schedule, run))
    else:
        skipped.append(run)


def child_command(launch: Launch, store_arg: str | None,
                  environ: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of a run's process (its folder is ``launch.schedule.cwd``)."""
    env = dict(os.environ if environ is None else environ)
    env[RUN_ENV] = str(launch.run.id)
    env["AVCTL_DB"] = store_arg or str(avctl_home() / "avctl.db")
    env.pop(SITES_ENV, None)
    if launch.run.sites is not None:
        env[SITES_ENV] = json.dumps(list(launch.run.sites))
    return [sys.executable, "-m", "avctl", *launch.schedule.argv], env


def log_path(run_id: int) -> Path:
    return ensure_private_dir(avctl_home() / "schedule-logs") / f"run-{run_id}.log"


def open_log(run_id: int) -> IO[bytes]:
    fd = os.open(log_path(run_id), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "wb")


def log_tail(run_id: int) -> str:
    """The end of the run's output (at most `OUTPUT_CAP` bytes)."""
    path = log_path(run_id)
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - OUTPUT_CAP))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def ended(store: ScheduleStore, run_id: int, returncode: int | None, *, error: str | None = None) -> str:
    """Record a run's end from its exit code (or the error that kept it from starting); the log file
    goes once its tail is on the record. Returns the state recorded."""
    if error is not None:
        state, reason = "failed", f"could not start: {error}"
    elif returncode == 0:
        state, reason = "ok", None
    elif returncode is not None and returncode < 0:
        state, reason = "failed", f"killed by signal {-returncode}"
    else:
        state, reason = "failed", f"the command ended with exit code {returncode}"
    store.finish(run_id, state=state, reason=reason, exit_code=returncode, output=log_tail(run_id), now=time.time())
    with contextlib.suppress(OSError):
        log_path(run_id).unlink()
    return state


def run_pass(store: ScheduleStore, store_arg: str | None, launches: Sequence[Launch]) -> list[str]:
    """Start every launch's command, wait for all, record their ends. Returns the states recorded."""
    started: list[tuple[int, subprocess.Popen[bytes]]] = []
    states: list[str] = []
    for launch in launches:
        argv, env = child_command(launch, store_arg)
        try:
            with open_log(launch.run.id) as log:
                proc = subprocess.Popen(argv, cwd=launch.schedule.cwd, env=env, stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT)
        except OSError as exc:
            states.append(ended(store, launch.run.id, None, error=exc.strerror or str(exc)))
            continue
        store.started(launch.run.id, proc.pid)
        started.append((launch.run.id, proc))
    for run_id, proc in started:
        states.append(ended(store, run_id, proc.wait()))
    return states


def next_wake(store: ScheduleStore, now: float, *, zones: Callable[[Schedule], Zones] = schedule_zones) -> float | None:
    """The soonest instant an active schedule falls due after ``now`` (None: no active schedule)."""
    soonest: float | None = None
    for schedule in store.schedules():
        if schedule.paused or schedule.engine != "local":
            continue
        for name in zones(schedule):
            when = next_due(schedule.cron, zone(name), max(now, schedule.evaluated_from))
            soonest = when if soonest is None else min(soonest, when)
    return soonest
