"""The job store: every fleet run is a job; every device outcome is committed as it completes.

:class:`JobStore` is the interface (a Protocol) so a server database can follow; :class:`SqliteJobStore`
is the embedded default (``$AVCTL_HOME/avctl.db``, shared with the audit log).

Durability: WAL journal, one transaction per device outcome. ``synchronous=NORMAL`` in WAL mode
means a committed outcome survives the process dying (Ctrl-C, crash, ``kill -9``) because the WAL
page is already in the OS; only an OS crash or power loss can drop the newest commits. That is
the trade that keeps 1,000 outcomes a second possible on ordinary disks.

A device's outcome is final once written: the (job, device) primary key makes a second write an
error, so a resumed job can never repeat or overwrite a finished device.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from avctl.errors import AvctlError
from avctl.fleet.credentials import redact
from avctl.fleet.paths import avctl_home
from avctl.fleet.results import STATUSES
from avctl.fleet.results import Outcome as Outcome  # its home before issue 9: still importable from here
from avctl.paths import ensure_private_dir, make_private_file

JobState = Literal["running", "finished", "interrupted"]


@dataclass(frozen=True)
class Job:
    id: int
    created: float
    user: str
    action: str
    selection: str
    params: dict[str, Any]
    inventory: str | None
    devices: tuple[str, ...]
    state: str
    pid: int | None = None
    host: str | None = None
    finished: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def effective_state(self) -> str:
        """'running' only if the process that runs it is still alive on this host; else 'interrupted'.
        A job on Temporal runs as long as its workflow does, whoever started it: its state as stored."""
        if self.state != "running" or self.options.get("engine") == "temporal":
            return self.state
        if self.host == socket.gethostname() and self.pid and not _pid_alive(self.pid):
            return "interrupted"
        return self.state


def _claim_alive(pid: int, host: str) -> bool:
    """Whether the process holding a claim may still run (only this host's processes can be checked)."""
    return host != socket.gethostname() or _pid_alive(pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutcomeExists(Exception):
    """A device already has a final outcome in this job (a resumed job must never repeat a device)."""


class StoreError(AvctlError):
    """The job store or audit log cannot be opened or written (read-only, disk full, not a file)."""

    kind = "store"


#: less free space than this on the store's disk is refused before a job starts
MIN_FREE_BYTES = 256 * 1024
STORE_HINT = "make its folder writable and free some disk space, or use another file (--store or AVCTL_DB)"


@contextlib.contextmanager
def store_errors(path: Path, doing: str) -> Iterator[None]:
    """Turn SQLite and file-system failures into one clear `StoreError` naming the file."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"cannot {doing} {path}: {exc}{_diagnosis(path)}", hint=STORE_HINT) from None
    except OSError as exc:
        raise StoreError(f"cannot {doing} {path}: {exc.strerror or exc}{_diagnosis(path)}",
                         hint=STORE_HINT) from None


def _diagnosis(path: Path) -> str:
    """What SQLite's 'disk I/O error' / 'unable to open' usually means, found out for the user."""
    folder = path.parent
    try:
        if path.is_dir():
            return " (it is a directory)"
        if folder.is_dir() and not os.access(folder, os.W_OK):
            return " (its folder is read-only)"  # access() reports a read-only mount even to root
        free = shutil.disk_usage(folder).free
    except OSError:
        return ""
    return f" (the disk is full: {free} bytes free)" if free < MIN_FREE_BYTES else ""


def check_writable(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse (StoreError) unless the database can take a write right now.

    A real write in a transaction that is rolled back: a read-only file, folder or mount, a locked
    or damaged file all fail here, before any device is contacted. A disk that is (nearly) full
    would not fail a rolled-back write, hence the free-space floor.
    """
    with store_errors(path, "check"):
        free = shutil.disk_usage(path.parent).free
    if free < MIN_FREE_BYTES:
        raise StoreError(f"cannot write {path}: only {free} bytes free on its disk "
                         f"(at least {MIN_FREE_BYTES} needed)", hint=STORE_HINT)
    with store_errors(path, "write"):
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("CREATE TABLE _avctl_write_probe (x BLOB)")
            conn.execute("INSERT INTO _avctl_write_probe VALUES (zeroblob(4096))")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")


class RunStore(Protocol):
    """What the fleet runner needs of a store while it runs: claims, in-doubt marks, outcomes (a job
    store, or a site worker's own journal)."""

    def record_outcome(self, job_id: int, outcome: Outcome) -> None: ...
    def claim_device(self, job_id: int, device: str) -> bool: ...
    def mark_sent(self, job_id: int, device: str) -> None: ...
    def in_doubt(self, job_id: int) -> list[str]: ...


class JobStore(Protocol):
    def create_job(self, *, action: str, selection: str, params: dict[str, Any], devices: Sequence[str],
                   user: str, inventory: str | None = None, options: dict[str, Any] | None = None) -> Job: ...
    def record_outcome(self, job_id: int, outcome: Outcome) -> None: ...
    def set_state(self, job_id: int, state: JobState) -> None: ...
    def claim(self, job_id: int) -> None: ...
    def claim_device(self, job_id: int, device: str) -> bool: ...
    def claimed_elsewhere(self, job_id: int, devices: Sequence[str]) -> list[str]: ...
    def mark_sent(self, job_id: int, device: str) -> None: ...
    def in_doubt(self, job_id: int) -> list[str]: ...
    def check_writable(self) -> None: ...
    def get_job(self, job_id: int) -> Job: ...
    def list_jobs(self, limit: int = 20) -> list[Job]: ...
    def outcomes(self, job_id: int) -> list[Outcome]: ...
    def pending_devices(self, job_id: int) -> list[str]: ...
    def reopen(self, job_id: int, reason: str) -> list[str]: ...
    def counts(self, job_id: int) -> dict[str, int]: ...
    def prune(self, before: float) -> int: ...
    def close(self) -> None: ...


def default_db_path() -> Path:
    return avctl_home() / "avctl.db"


SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    user TEXT NOT NULL,
    action TEXT NOT NULL,
    selection TEXT NOT NULL,
    params TEXT NOT NULL,
    inventory TEXT,
    options TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL,
    pid INTEGER,
    host TEXT,
    finished REAL
);
CREATE TABLE IF NOT EXISTS job_devices (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    position INTEGER NOT NULL,
    device TEXT NOT NULL,
    PRIMARY KEY (job_id, device)
);
CREATE TABLE IF NOT EXISTS outcomes (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    device TEXT NOT NULL,
    family TEXT,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'unreachable', 'skipped')),
    reason TEXT,
    message TEXT,
    data TEXT,
    attempts INTEGER NOT NULL,
    started REAL,
    finished REAL NOT NULL,
    requests INTEGER,
    PRIMARY KEY (job_id, device)
);
CREATE TABLE IF NOT EXISTS claims (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    device TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    claimed REAL NOT NULL,
    sent REAL,
    PRIMARY KEY (job_id, device)
);
"""


def connect(path: Path) -> sqlite3.Connection:
    """Open the avctl database with the durability settings described in the module docstring."""
    with store_errors(path, "open"):
        ensure_private_dir(path.parent)
        with contextlib.suppress(OSError):  # an unwritable place: SQLite reports it (as a StoreError)
            make_private_file(path)  # 0600 from the start, whatever the umask (SQLite would use 0644)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error:
            conn.close()
            raise
    with contextlib.suppress(OSError):  # not our file: leave its mode alone
        os.chmod(path, 0o600)
    return conn


class SqliteJobStore:
    """Embedded job store. Thread-safe (one lock) so a worker thread may write outcomes."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self._conn = connect(self.path)
        self._lock = threading.Lock()
        with self._lock, store_errors(self.path, "set up"):
            self._conn.executescript(SCHEMA)
            for table, column, kind in (("outcomes", "requests", "INTEGER"),  # from before request counts
                                        ("claims", "sent", "REAL")):  # from before in-doubt devices
                columns = {r[1] for r in self._conn.execute(f"PRAGMA table_info({table})")}
                if column not in columns:
                    self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def check_writable(self) -> None:
        """StoreError unless an outcome could be written now (see `check_writable`)."""
        with self._lock:
            check_writable(self._conn, self.path)

    def __enter__(self) -> SqliteJobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create_job(self, *, action: str, selection: str, params: dict[str, Any], devices: Sequence[str],
                   user: str, inventory: str | None = None, options: dict[str, Any] | None = None) -> Job:
        now = time.time()
        clean_params = redact(params)
        clean_options = redact(options or {})
        with self._lock, store_errors(self.path, "write"):
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                cur.execute(
                    "INSERT INTO jobs (created, user, action, selection, params, inventory, options, state,"
                    " pid, host) VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)",
                    (now, user, action, selection, json.dumps(clean_params), inventory,
                     json.dumps(clean_options), os.getpid(), socket.gethostname()))
                job_id = int(cur.lastrowid or 0)
                cur.executemany("INSERT INTO job_devices (job_id, position, device) VALUES (?, ?, ?)",
                                [(job_id, i, d) for i, d in enumerate(devices)])
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return self.get_job(job_id)

    def record_outcome(self, job_id: int, outcome: Outcome) -> None:
        """Commit one device's final outcome (its own transaction: nothing finished is ever lost)."""
        row = (job_id, outcome.device, outcome.family, outcome.status, outcome.reason,
               None if outcome.message is None else redact(outcome.message),
               None if outcome.data is None else json.dumps(redact(outcome.data), default=str),
               outcome.attempts, outcome.started, outcome.finished, outcome.requests)
        with self._lock, store_errors(self.path, "write"):
            try:
                self._conn.execute(
                    "INSERT INTO outcomes (job_id, device, family, status, reason, message, data, attempts,"
                    " started, finished, requests) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            except sqlite3.IntegrityError as e:
                if "UNIQUE" in str(e) or "PRIMARY KEY" in str(e):
                    raise OutcomeExists(f"job {job_id}: {outcome.device} already has an outcome") from None
                raise

    def set_state(self, job_id: int, state: JobState) -> None:
        finished = time.time() if state != "running" else None
        with self._lock, store_errors(self.path, "write"):
            self._conn.execute("UPDATE jobs SET state = ?, finished = ? WHERE id = ?",
                               (state, finished, job_id))

    def claim(self, job_id: int) -> None:
        """Mark the job as run by this process again (resume)."""
        with self._lock, store_errors(self.path, "write"):
            self._conn.execute("UPDATE jobs SET state = 'running', pid = ?, host = ?, finished = NULL"
                               " WHERE id = ?", (os.getpid(), socket.gethostname(), job_id))

    def claim_device(self, job_id: int, device: str) -> bool:
        """Claim one device of a job for this process, atomically; False if it is not ours to run.

        The rule: a device with an outcome is never claimed. A claim by another live process is
        respected (two `jobs resume` of one job share its devices instead of calling each twice).
        A claim by a process that is gone, on this host, is taken over; a claim from another host
        is respected, since its process cannot be checked from here (wait for it to end, or
        resume on that host). BEGIN IMMEDIATE makes check-and-claim one step between processes.
        """
        me = (os.getpid(), socket.gethostname())
        with self._lock, store_errors(self.path, "write"):
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                done = cur.execute("SELECT 1 FROM outcomes WHERE job_id = ? AND device = ?",
                                   (job_id, device)).fetchone()
                held = cur.execute("SELECT pid, host FROM claims WHERE job_id = ? AND device = ?",
                                   (job_id, device)).fetchone()
                mine = done is None and (held is None or tuple(held) == me or not _claim_alive(*held))
                if mine:
                    cur.execute("INSERT OR REPLACE INTO claims (job_id, device, pid, host, claimed)"
                                " VALUES (?, ?, ?, ?, ?)", (job_id, device, *me, time.time()))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return mine

    def claimed_elsewhere(self, job_id: int, devices: Sequence[str]) -> list[str]:
        """Those of `devices` claimed by another process that is (or may be) still running."""
        me = (os.getpid(), socket.gethostname())
        with self._lock, store_errors(self.path, "read"):
            rows = self._conn.execute("SELECT device, pid, host FROM claims WHERE job_id = ?",
                                      (job_id,)).fetchall()
        wanted = set(devices)
        return [d for d, pid, host in rows if d in wanted and (pid, host) != me and _claim_alive(pid, host)]

    def mark_sent(self, job_id: int, device: str) -> None:
        """This process is about to send the device a state-changing request (see `in_doubt`)."""
        with self._lock, store_errors(self.path, "write"):
            self._conn.execute("UPDATE claims SET sent = ? WHERE job_id = ? AND device = ? AND sent IS NULL",
                               (time.time(), job_id, device))

    def in_doubt(self, job_id: int) -> list[str]:
        """Devices without an outcome that a process now gone (on this host) had sent a state-changing
        request to: it may have reached them, so a resume does not send it again unless told to."""
        with self._lock, store_errors(self.path, "read"):
            rows = self._conn.execute(
                "SELECT c.device, c.pid, c.host FROM claims c LEFT JOIN outcomes o"
                " ON o.job_id = c.job_id AND o.device = c.device"
                " WHERE c.job_id = ? AND c.sent IS NOT NULL AND o.device IS NULL", (job_id,)).fetchall()
        return [d for d, pid, host in rows if not _claim_alive(pid, host)]

    def _job(self, row: sqlite3.Row | tuple[Any, ...]) -> Job:
        (jid, created, user, action, selection, params, inventory, options, state, pid, host, finished) = row
        with self._lock:
            devs = [r[0] for r in self._conn.execute(
                "SELECT device FROM job_devices WHERE job_id = ? ORDER BY position", (jid,))]
        return Job(id=jid, created=created, user=user, action=action, selection=selection,
                   params=json.loads(params), inventory=inventory, devices=tuple(devs), state=state, pid=pid,
                   host=host, finished=finished, options=json.loads(options))

    _COLS = "id, created, user, action, selection, params, inventory, options, state, pid, host, finished"

    def get_job(self, job_id: int) -> Job:
        with self._lock:
            row = self._conn.execute(f"SELECT {self._COLS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            from avctl.errors import UsageError

            raise UsageError(f"no job {job_id} in {self.path}", hint="see 'avctl jobs list'")
        return self._job(row)

    def list_jobs(self, limit: int = 20) -> list[Job]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {self._COLS} FROM jobs ORDER BY id DESC LIMIT ?",
                                      (limit,)).fetchall()
        return [self._job(r) for r in rows]

    def outcomes(self, job_id: int) -> list[Outcome]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT o.device, o.status, o.family, o.reason, o.message, o.data, o.attempts, o.started,"
                " o.finished, o.requests FROM outcomes o"
                " LEFT JOIN job_devices d ON d.job_id = o.job_id AND d.device = o.device"
                " WHERE o.job_id = ? ORDER BY d.position", (job_id,)).fetchall()
        return [Outcome(device=r[0], status=r[1], family=r[2], reason=r[3], message=r[4],
                        data=None if r[5] is None else json.loads(r[5]), attempts=r[6], started=r[7],
                        finished=r[8], requests=r[9]) for r in rows]

    def counts(self, job_id: int) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT status, COUNT(*) FROM outcomes WHERE job_id = ? GROUP BY status",
                (job_id,)).fetchall()
        out: dict[str, int] = dict.fromkeys(STATUSES, 0)
        out.update({r[0]: r[1] for r in rows})
        return out

    def pending_devices(self, job_id: int) -> list[str]:
        """Devices of the job that have no final outcome yet, in job order."""
        with self._lock:
            return [r[0] for r in self._conn.execute(
                "SELECT d.device FROM job_devices d LEFT JOIN outcomes o"
                " ON o.job_id = d.job_id AND o.device = d.device"
                " WHERE d.job_id = ? AND o.device IS NULL ORDER BY d.position", (job_id,))]

    def reopen(self, job_id: int, reason: str) -> list[str]:
        """Make the devices skipped for ``reason`` pending again (a maintenance window that closed:
        they were never started), so a resume runs them; their names, in job order."""
        with self._lock, store_errors(self.path, "write"):
            names = [r[0] for r in self._conn.execute(
                "SELECT o.device FROM outcomes o JOIN job_devices d ON d.job_id = o.job_id AND d.device = o.device"
                " WHERE o.job_id = ? AND o.status = 'skipped' AND o.reason = ? ORDER BY d.position",
                (job_id, reason))]
            self._conn.execute("DELETE FROM outcomes WHERE job_id = ? AND status = 'skipped' AND reason = ?",
                               (job_id, reason))
        return names

    def prune(self, before: float) -> int:
        """Remove the finished jobs that ended before ``before`` (epoch seconds), with their
        devices, outcomes and claims; how many jobs. Interrupted and running jobs stay (resumable)."""
        with self._lock, store_errors(self.path, "write"):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                ids = [r[0] for r in self._conn.execute(
                    "SELECT id FROM jobs WHERE state = 'finished' AND COALESCE(finished, created) < ?", (before,))]
                for table in ("claims", "outcomes", "job_devices"):
                    self._conn.executemany(f"DELETE FROM {table} WHERE job_id = ?", [(i,) for i in ids])
                self._conn.executemany("DELETE FROM jobs WHERE id = ?", [(i,) for i in ids])
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return len(ids)
