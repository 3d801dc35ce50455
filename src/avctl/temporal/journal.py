"""The site worker's own journal: what it sent and finished, on its own disk, before Temporal knows.

A worker can die (kill -9, power) between sending a state-changing request and telling Temporal
the device is done. The activity is then run again, and the journal is what keeps that retry from
calling a device twice: before a device's first state-changing request its ``sent`` row is
committed, and each finished device's outcome and audit rows are committed the moment they are
known. The retry runs only devices with neither; a device *sent* but not finished is verified
instead (``avctl.temporal.verify``). Heartbeat details carry the finished results too, for a
retry that lands on another host of the site.

One SQLite file per worker home (WAL: a commit survives the process dying), keyed by the site
workflow's id, which names one job at one site.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avctl.fleet.results import Outcome
from avctl.fleet.store import OutcomeExists, connect, store_errors
from avctl.temporal.model import AuditData, DeviceData, DeviceResult, ScheduleRef, TaskData

#: how long a finished run stays in the journal (a retry or a late batch of it comes well before)
KEEP_SECONDS = 30 * 86400.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS sent (run TEXT NOT NULL, device TEXT NOT NULL, ts REAL NOT NULL,
                                 PRIMARY KEY (run, device));
CREATE TABLE IF NOT EXISTS done (run TEXT NOT NULL, device TEXT NOT NULL, outcome TEXT NOT NULL, ts REAL NOT NULL,
                                 PRIMARY KEY (run, device));
CREATE TABLE IF NOT EXISTS calls (run TEXT NOT NULL, device TEXT NOT NULL, seq INTEGER NOT NULL, row TEXT NOT NULL,
                                  PRIMARY KEY (run, device, seq));
CREATE TABLE IF NOT EXISTS plans (schedule TEXT NOT NULL, zone TEXT NOT NULL, plan TEXT NOT NULL,
                                  last_due REAL NOT NULL, PRIMARY KEY (schedule, zone));
CREATE TABLE IF NOT EXISTS fallbacks (schedule TEXT NOT NULL, zone TEXT NOT NULL, due REAL NOT NULL, run TEXT NOT NULL,
                                      reported INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (schedule, zone, due));
"""


@dataclass(frozen=True)
class Plan:
    """A site-critical schedule as this site last ran it: what to run on its own in a WAN outage."""

    schedule: str
    zone: str
    cron: str
    #: the control plane's queue (its schedule queue takes the report)
    queue: str
    task: TaskData
    options: dict[str, Any]
    devices: list[DeviceData]
    #: the newest due time run (by the control plane or here)
    last_due: float


@dataclass(frozen=True)
class Fallback:
    schedule: str
    zone: str
    due: float
    run: str


def outcome_dict(outcome: Outcome) -> dict[str, Any]:
    """An outcome as it crosses Temporal (every field; data made JSON-safe)."""
    out = dataclasses.asdict(outcome)
    out["data"] = json.loads(json.dumps(outcome.data, default=str))
    return out


def outcome_of(data: Mapping[str, Any]) -> Outcome:
    known = Outcome.__dataclass_fields__
    return Outcome(**{k: v for k, v in data.items() if k in known})


class SiteJournal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = connect(path)
        self._lock = threading.Lock()
        with self._lock, store_errors(path, "set up"):
            self._conn.executescript(SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def mark_sent(self, run: str, device: str) -> None:
        with self._lock, store_errors(self.path, "write"):
            self._conn.execute("INSERT OR IGNORE INTO sent (run, device, ts) VALUES (?, ?, ?)",
                               (run, device, time.time()))

    def add_call(self, run: str, device: str, row: AuditData) -> None:
        with self._lock, store_errors(self.path, "write"):
            (seq,) = self._conn.execute("SELECT COUNT(*) FROM calls WHERE run = ? AND device = ?",
                                        (run, device)).fetchone()
            self._conn.execute("INSERT INTO calls (run, device, seq, row) VALUES (?, ?, ?, ?)",
                               (run, device, seq, json.dumps(dataclasses.asdict(row), default=str)))

    def finish(self, run: str, outcome: Outcome) -> None:
        """The device's one outcome; OutcomeExists if it has one (the first is kept)."""
        with self._lock, store_errors(self.path, "write"):
            cur = self._conn.execute("INSERT OR IGNORE INTO done (run, device, outcome, ts) VALUES (?, ?, ?, ?)",
                                     (run, outcome.device, json.dumps(outcome_dict(outcome)), time.time()))
            if cur.rowcount == 0:
                raise OutcomeExists(f"{outcome.device} already has an outcome")

    def in_doubt(self, run: str) -> list[str]:
        """Devices a state-changing request may have reached, without an outcome."""
        with self._lock, store_errors(self.path, "read"):
            rows = self._conn.execute(
                "SELECT device FROM sent WHERE run = ? AND device NOT IN (SELECT device FROM done WHERE run = ?)",
                (run, run)).fetchall()
        return [r[0] for r in rows]

    def results(self, run: str, devices: Sequence[str]) -> dict[str, DeviceResult]:
        """The finished devices among ``devices``, with their audit rows in call order."""
        wanted = set(devices)
        with self._lock, store_errors(self.path, "read"):
            done = self._conn.execute("SELECT device, outcome FROM done WHERE run = ?", (run,)).fetchall()
            calls = self._conn.execute("SELECT device, row FROM calls WHERE run = ? ORDER BY device, seq",
                                       (run,)).fetchall()
        rows: dict[str, list[AuditData]] = {}
        for device, row in calls:
            if device in wanted:
                rows.setdefault(device, []).append(AuditData(**json.loads(row)))
        return {device: DeviceResult(outcome=json.loads(outcome), audit=rows.get(device, []))
                for device, outcome in done if device in wanted}

    async def keep_pruned(self, keep: float = KEEP_SECONDS, every: float = 86400.0) -> None:
        """Forget finished runs older than ``keep`` now and once every ``every`` seconds (a worker
        runs for months: its journal must not grow with every job it ever ran)."""
        while True:
            self.prune(time.time() - keep)
            await asyncio.sleep(every)

    def prune(self, before: float) -> None:
        """Forget runs finished before ``before`` (Temporal has their results by then)."""
        with self._lock, store_errors(self.path, "write"):
            old = [r[0] for r in self._conn.execute("SELECT run FROM done GROUP BY run HAVING MAX(ts) < ?", (before,))]
            for run in old:
                for table in ("sent", "done", "calls"):
                    self._conn.execute(f"DELETE FROM {table} WHERE run = ?", (run,))

    # -- site-critical schedules (a WAN outage) ------------------------------------------------------

    def save_plan(self, ref: ScheduleRef, queue: str, task: TaskData, options: dict[str, Any],
                  devices: Sequence[DeviceData]) -> None:
        """Keep (or update) the schedule's plan: its task and this batch's devices, merged by name."""
        with self._lock, store_errors(self.path, "write"):
            row = self._conn.execute("SELECT plan, last_due FROM plans WHERE schedule = ? AND zone = ?",
                                     (ref.name, ref.zone)).fetchone()
            known: dict[str, Any] = {}
            last = ref.due
            if row is not None:
                known = {d["name"]: d for d in json.loads(row[0])["devices"]}
                last = max(last, float(row[1]))
            known.update({d.name: dataclasses.asdict(d) for d in devices})
            plan = {"cron": ref.cron, "queue": queue, "task": dataclasses.asdict(task), "options": options,
                    "devices": list(known.values())}
            self._conn.execute("INSERT OR REPLACE INTO plans (schedule, zone, plan, last_due) VALUES (?, ?, ?, ?)",
                               (ref.name, ref.zone, json.dumps(plan, default=str), last))

    def plans(self) -> list[Plan]:
        with self._lock, store_errors(self.path, "read"):
            rows = self._conn.execute("SELECT schedule, zone, plan, last_due FROM plans").fetchall()
        out = []
        for schedule, zone, text, last in rows:
            doc = json.loads(text)
            out.append(Plan(schedule, zone, doc["cron"], doc["queue"], TaskData(**doc["task"]), doc["options"],
                            [DeviceData(**d) for d in doc["devices"]], float(last)))
        return out

    def start_fallback(self, plan: Plan, due: float) -> str | None:
        """Record that this site runs ``due`` itself (before it runs: a worker started again after
        dying mid-run does not run it a second time); the run's journal key, or None if recorded."""
        run = f"fallback/{plan.schedule}/{plan.zone}/{due:.0f}"
        with self._lock, store_errors(self.path, "write"):
            cur = self._conn.execute("INSERT OR IGNORE INTO fallbacks (schedule, zone, due, run) VALUES (?, ?, ?, ?)",
                                     (plan.schedule, plan.zone, due, run))
            self._conn.execute("UPDATE plans SET last_due = MAX(last_due, ?) WHERE schedule = ? AND zone = ?",
                               (due, plan.schedule, plan.zone))
        return run if cur.rowcount else None

    def fallback_run(self, schedule: str, zone: str, due: float) -> str | None:
        with self._lock, store_errors(self.path, "read"):
            row = self._conn.execute("SELECT run FROM fallbacks WHERE schedule = ? AND zone = ? AND due = ?",
                                     (schedule, zone, due)).fetchone()
        return None if row is None else str(row[0])

    def unreported(self) -> list[Fallback]:
        with self._lock, store_errors(self.path, "read"):
            rows = self._conn.execute("SELECT schedule, zone, due, run FROM fallbacks WHERE reported = 0 "
                                      "ORDER BY due").fetchall()
        return [Fallback(r[0], r[1], float(r[2]), r[3]) for r in rows]

    def mark_reported(self, fallback: Fallback) -> None:
        with self._lock, store_errors(self.path, "write"):
            self._conn.execute("UPDATE fallbacks SET reported = 1 WHERE schedule = ? AND zone = ? AND due = ?",
                               (fallback.schedule, fallback.zone, fallback.due))

    def adopt(self, source: str, target: str, devices: Sequence[str]) -> None:
        """The finished devices of run ``source`` (a fallback) become finished in ``target`` (the
        control plane's run of the same due time): they are reported, not called again."""
        for name, result in self.results(source, devices).items():
            for row in result.audit:
                self.add_call(target, name, row)
            with contextlib.suppress(OutcomeExists):
                self.finish(target, outcome_of(result.outcome))
