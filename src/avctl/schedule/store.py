"""Schedules and their runs on the shared database (``schedules``, ``schedule_runs``).

The database of the job journal (SQLite ``$AVCTL_HOME/avctl.db`` by default, or the ``--store`` /
``AVCTL_DB`` URL), so a scheduled job and its run record are in one place. Rules:

- one run per (schedule, zone, due instant): the unique key makes a second start fail, so two
  scheduler passes at once (cron and the server, two overlapping cron calls) start it once;
- the overlap check and the insert are one transaction holding the write lock (SQLite: BEGIN
  IMMEDIATE; PostgreSQL: an advisory lock), so two passes cannot both see "nothing running";
- a run is live while its command's process or its scheduler's process lives (checked on this host;
  a run of another host is taken as live); one found with both gone is closed ``failed``
  ("interrupted");
- every database failure is a `StoreError` naming the database (password hidden).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, text, update

from avctl.db import models as m
from avctl.db.journal import _OnDatabase, db_errors, open_journal_database
from avctl.errors import UsageError
from avctl.fleet.store import _pid_alive
from avctl.redact import REDACTOR

SCHEDULES = m.Base.metadata.tables["schedules"]
RUNS = m.Base.metadata.tables["schedule_runs"]
#: the PostgreSQL advisory lock that serialises run starts ("avsc")
_PG_RUN_LOCK = 0x61767363
#: what a run's output keeps: its end (the summary and the error are there)
OUTPUT_CAP = 64 * 1024
INTERRUPTED = "interrupted: the scheduler and the command stopped before the run's end was recorded"


@dataclass(frozen=True)
class Schedule:
    id: int
    name: str
    cron: str
    timezone: str
    grace: float
    argv: tuple[str, ...]
    cwd: str
    inventory: str | None
    selection: tuple[str, ...]
    disruptive: bool
    paused: bool
    created: float
    evaluated_from: float
    user: str
    #: "local" (run-due, the server's loop) or "temporal" (Temporal Schedules fire it)
    engine: str = "local"
    #: Temporal only: its sites' workers run it themselves while they cannot reach Temporal
    site_critical: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "cron": self.cron, "timezone": self.timezone, "grace": self.grace,
                "command": list(self.argv), "cwd": self.cwd, "inventory": self.inventory,
                "selection": list(self.selection), "disruptive": self.disruptive, "paused": self.paused,
                "created": self.created, "user": self.user, "engine": self.engine,
                "site_critical": self.site_critical}


@dataclass(frozen=True)
class Run:
    id: int
    schedule_id: int
    zone: str
    due: float
    trigger: str
    sites: tuple[str | None, ...] | None
    state: str
    reason: str | None
    started: float | None
    finished: float | None
    job_id: int | None
    exit_code: int | None
    pid: int | None
    scheduler_pid: int | None
    host: str | None
    output: str | None

    def to_json(self, *, output: bool = False) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": self.id, "zone": self.zone, "due": self.due, "trigger": self.trigger,
            "sites": None if self.sites is None else list(self.sites), "state": self.state, "reason": self.reason,
            "started": self.started, "finished": self.finished, "job": self.job_id, "exit_code": self.exit_code,
            "pid": self.pid, "host": self.host}
        if output:
            doc["output"] = self.output
        return doc


def _schedule(row: Any) -> Schedule:
    return Schedule(id=row.id, name=row.name, cron=row.cron, timezone=row.timezone, grace=row.grace,
                    argv=tuple(json.loads(row.argv)), cwd=row.cwd, inventory=row.inventory,
                    selection=tuple(json.loads(row.selection)), disruptive=bool(row.disruptive),
                    paused=bool(row.paused), created=row.created, evaluated_from=row.evaluated_from,
                    user=row.user, engine=row.engine, site_critical=bool(row.site_critical))


def _run(row: Any) -> Run:
    return Run(id=row.id, schedule_id=row.schedule_id, zone=row.zone, due=row.due, trigger=row.trigger,
               sites=None if row.sites is None else tuple(json.loads(row.sites)), state=row.state,
               reason=row.reason, started=row.started, finished=row.finished, job_id=row.job_id,
               exit_code=row.exit_code, pid=row.pid, scheduler_pid=row.scheduler_pid, host=row.host,
               output=row.output)


def live(run: Run, *, host: str | None = None) -> bool:
    """Whether a `running` run may still be running: another host's is taken as live; on this host,
    while its command's process or its scheduler's process is alive."""
    if run.state != "running":
        return False
    if run.host != (host or socket.gethostname()):
        return True
    return any(pid and _pid_alive(pid) for pid in (run.pid, run.scheduler_pid))


def open_schedule_store(url_or_path: str | None) -> ScheduleStore:
    """The store on what ``--store`` / ``AVCTL_DB`` give (nothing: ``$AVCTL_HOME/avctl.db``)."""
    return ScheduleStore(open_journal_database(url_or_path), owns=True)


class ScheduleStore(_OnDatabase):
    """Thread-safe: each call uses its own pooled connection."""

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        with db_errors(self.db, "write"), self.db.engine.begin() as conn:
            if self.db.dialect == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_RUN_LOCK})
            yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with db_errors(self.db, "read"), self.db.engine.connect() as conn:
            yield conn

    # --- definitions -----------------------------------------------------------------------------

    def add(self, *, name: str, cron: str, timezone: str, grace: float, argv: Sequence[str], cwd: str,
            inventory: str | None, selection: Sequence[str], disruptive: bool, user: str, now: float,
            engine: str = "local", site_critical: bool = False) -> Schedule:
        with self._write() as conn:
            if conn.execute(select(SCHEDULES.c.id).where(SCHEDULES.c.name == name)).first() is not None:
                raise UsageError(f"a schedule named {name!r} exists already",
                                 hint=f"choose another name, or 'avctl schedule remove {name}' first")
            conn.execute(insert(SCHEDULES).values(
                name=name, cron=cron, timezone=timezone, grace=grace, argv=json.dumps(list(argv)), cwd=cwd,
                inventory=inventory, selection=json.dumps(list(selection)), disruptive=int(disruptive), paused=0,
                created=now, evaluated_from=now, user=user, engine=engine, site_critical=int(site_critical)))
        return self.get(name)

    def get(self, name: str) -> Schedule:
        with self._read() as conn:
            row = conn.execute(select(SCHEDULES).where(SCHEDULES.c.name == name)).first()
        if row is None:
            raise UsageError(f"no schedule named {name!r}", hint="'avctl schedule list' shows them")
        return _schedule(row)

    def by_id(self, schedule_id: int) -> Schedule | None:
        with self._read() as conn:
            row = conn.execute(select(SCHEDULES).where(SCHEDULES.c.id == schedule_id)).first()
        return None if row is None else _schedule(row)

    def schedules(self) -> list[Schedule]:
        with self._read() as conn:
            return [_schedule(r) for r in conn.execute(select(SCHEDULES).order_by(SCHEDULES.c.name))]

    def set_paused(self, name: str, paused: bool, *, now: float) -> Schedule:
        """Pause, or resume: a resumed schedule evaluates from now (what fell due while paused is not run)."""
        self.get(name)
        values: dict[str, Any] = {"paused": int(paused)}
        if not paused:
            values["evaluated_from"] = now
        with self._write() as conn:
            conn.execute(update(SCHEDULES).where(SCHEDULES.c.name == name, SCHEDULES.c.paused != int(paused))
                         .values(**values))
        return self.get(name)

    def remove(self, name: str) -> None:
        """The schedule and its run history (a running command goes on; its end is not recorded)."""
        schedule = self.get(name)
        with self._write() as conn:
            conn.execute(delete(RUNS).where(RUNS.c.schedule_id == schedule.id))
            conn.execute(delete(SCHEDULES).where(SCHEDULES.c.id == schedule.id))

    # --- runs ------------------------------------------------------------------------------------

    def runs(self, schedule_id: int, *, limit: int = 20) -> list[Run]:
        """Newest due instant first."""
        with self._read() as conn:
            rows = conn.execute(select(RUNS).where(RUNS.c.schedule_id == schedule_id)
                                .order_by(RUNS.c.due.desc(), RUNS.c.id.desc()).limit(limit))
            return [_run(r) for r in rows]

    def run_at(self, schedule_id: int, zone: str, due: float) -> Run | None:
        """The run of one due instant in one zone, if recorded."""
        c = RUNS.c
        with self._read() as conn:
            row = conn.execute(select(RUNS).where(c.schedule_id == schedule_id, c.zone == zone, c.due == due)).first()
        return None if row is None else _run(row)

    def get_run(self, run_id: int) -> Run | None:
        with self._read() as conn:
            row = conn.execute(select(RUNS).where(RUNS.c.id == run_id)).first()
        return None if row is None else _run(row)

    def newest_due(self, schedule_id: int, zone: str) -> float | None:
        """The newest cron instant recorded for the schedule in the zone (its evaluation goes on from there)."""
        with self._read() as conn:
            value = conn.execute(select(func.max(RUNS.c.due)).where(
                RUNS.c.schedule_id == schedule_id, RUNS.c.zone == zone, RUNS.c.trigger == "cron")).scalar()
        return None if value is None else float(value)

    def record_missed(self, schedule: Schedule, zone: str, instants: Sequence[float], *, reason: str,
                      now: float) -> None:
        """Instants that were not run (the scheduler was not running, or they are past their grace)."""
        if not instants:
            return
        with self._write() as conn:
            taken = set(conn.execute(select(RUNS.c.due).where(
                RUNS.c.schedule_id == schedule.id, RUNS.c.zone == zone, RUNS.c.due.in_(list(instants)))).scalars())
            rows = [{"schedule_id": schedule.id, "zone": zone, "due": due, "trigger": "cron", "sites": None,
                     "state": "missed", "reason": reason, "finished": now} for due in instants if due not in taken]
            if rows:
                conn.execute(insert(RUNS), rows)

    def claim(self, schedule: Schedule, zone: str, due: float, *, trigger: str,
              sites: Sequence[str | None] | None, now: float) -> Run | None:
        """Record the run as started by this process, or as `skipped` while the schedule's previous run in
        the zone is still live; None if the run was recorded already (another pass took it)."""
        host = socket.gethostname()
        c = RUNS.c
        with self._write() as conn:
            if conn.execute(select(c.id).where(c.schedule_id == schedule.id, c.zone == zone, c.due == due)
                            ).first() is not None:
                return None
            running = [_run(r) for r in conn.execute(select(RUNS).where(
                c.schedule_id == schedule.id, c.zone == zone, c.state == "running").order_by(c.id))]
            busy = next((r for r in running if live(r, host=host)), None)
            values: dict[str, Any] = {"schedule_id": schedule.id, "zone": zone, "due": due, "trigger": trigger,
                                      "sites": None if sites is None else json.dumps(list(sites)), "started": now}
            if busy is not None:
                job = f" (job {busy.job_id})" if busy.job_id is not None else ""
                values.update(state="skipped", finished=now, job_id=busy.job_id,
                              reason=f"the previous run {busy.id}{job} is still running")
            else:
                values.update(state="running", scheduler_pid=os.getpid(), host=host)
            run_id = conn.execute(insert(RUNS).values(**values).returning(c.id)).scalar_one()
        return self.get_run(run_id)

    def started(self, run_id: int, pid: int) -> None:
        with self._write() as conn:
            conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(pid=pid))

    def finish(self, run_id: int, *, state: str, reason: str | None, exit_code: int | None, output: str | None,
               now: float) -> None:
        """The run's end (written whatever state it was found in: a pass that took it for interrupted
        while its scheduler was between the command's exit and this write is corrected)."""
        shown = None if output is None else REDACTOR.text(output[-OUTPUT_CAP:])
        with self._write() as conn:
            conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(
                state=state, reason=None if reason is None else REDACTOR.text(reason), exit_code=exit_code,
                output=shown, finished=now))

    def set_job(self, run_id: int, job_id: int) -> None:
        """The run's job: the newest one its command recorded (a command that reads first and then
        acts, as ``config apply`` and ``firmware update`` do, is known by the job that acts)."""
        with self._write() as conn:
            conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(job_id=job_id))

    def close_stale(self, *, now: float) -> list[int]:
        """Close the runs of this host whose command and scheduler are both gone (`INTERRUPTED`)."""
        host = socket.gethostname()
        with self._write() as conn:
            rows = [_run(r) for r in conn.execute(select(RUNS).where(RUNS.c.state == "running", RUNS.c.host == host))]
            stale = [r.id for r in rows if not live(r, host=host)]
            if stale:
                conn.execute(update(RUNS).where(RUNS.c.id.in_(stale), RUNS.c.state == "running").values(
                    state="failed", reason=INTERRUPTED, finished=now))
        return stale
