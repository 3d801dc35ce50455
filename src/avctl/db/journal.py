"""The job journal and the audit log on the shared database (SQLite or PostgreSQL, through SQLAlchemy).

`SqlJobStore` is the `avctl.fleet.store.JobStore` protocol and `SqlAuditLog` the audit log's
interface (`avctl.fleet.audit.AuditSink`), with the semantics of the CLI's embedded SQLite versions
(`SqliteJobStore`, `AuditLog`) on the same tables: parameters, messages and data are redacted at
rest; a device's outcome is final (a second one raises `OutcomeExists`); `claim_device` is one
atomic check-and-claim between processes (SQLite: BEGIN IMMEDIATE; PostgreSQL: the job's row locked
FOR UPDATE, which every claim on that job takes first); every database failure (refused
connection, read-only database, full disk) is a `StoreError` naming the database (password hidden).

The CLI opens these through `avctl.db.open_journal` only when given a database URL: its default (a
path, or nothing) stays on the faster raw-sqlite classes without importing SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from sqlalchemy import Connection, and_, delete, func, insert, make_url, select, text, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from avctl.db import models as m
from avctl.db.engine import HEAD, Database, current_revision, database_url, log_migrated, open_database
from avctl.errors import UsageError
from avctl.fleet.audit import AuditEntry, audit_values
from avctl.fleet.credentials import redact
from avctl.fleet.paths import os_user
from avctl.fleet.results import STATUSES, Outcome
from avctl.fleet.store import (
    STORE_HINT,
    Job,
    JobState,
    OutcomeExists,
    StoreError,
    _claim_alive,
    check_writable,
    store_errors,
)
from avctl.paths import child_environment

SERVER_HINT = ("check that the database server runs, is reachable and accepts this user with write access, "
               "or use another database (--store or AVCTL_DB)")
JOBS = m.Base.metadata.tables["jobs"]
JOB_DEVICES = m.Base.metadata.tables["job_devices"]
OUTCOMES = m.Base.metadata.tables["outcomes"]
CLAIMS = m.Base.metadata.tables["claims"]
AUDIT = m.Base.metadata.tables["audit"]


def describe(db: Database) -> str:
    """The database as shown in messages: its URL without the password."""
    return db.engine.url.render_as_string(hide_password=True)


def sqlite_path(db: Database) -> Path | None:
    """The file of a SQLite database (None for PostgreSQL or an in-memory database)."""
    name = db.engine.url.database
    return Path(name) if db.dialect == "sqlite" and name and name != ":memory:" else None


@contextlib.contextmanager
def db_errors(db: Database, doing: str) -> Iterator[None]:
    """Database failures as one clear `StoreError`; a SQLite file also gets the file diagnosis."""
    with _errors(describe(db), sqlite_path(db), doing):
        yield


@contextlib.contextmanager
def _errors(shown: str, path: Path | None, doing: str) -> Iterator[None]:
    try:
        if path is not None:
            with store_errors(path, doing):
                try:
                    yield
                except sa_exc.DBAPIError as exc:
                    raise exc.orig if exc.orig is not None else exc from None
        else:
            yield
    except sa_exc.SQLAlchemyError as exc:
        detail = getattr(exc, "orig", None) or exc
        message = " ".join(str(detail).split())
        shown = shown.replace("postgresql+psycopg://", "postgresql://", 1)
        raise StoreError(redact(f"cannot {doing} {shown}: {message}"),
                         hint=STORE_HINT if path is not None else SERVER_HINT) from None


def open_journal_database(url_or_path: str | None, *, migrate_apart: bool = False) -> Database:
    """`open_database` (with migrations) whose failures are `StoreError`s, for the journal's users.

    ``migrate_apart=True`` (a long-running server): a schema that needs migrating is migrated by a
    short-lived child process running this same code, so Alembic and the migration scripts (~11 MB
    of a process's memory, used once) are never loaded into the server. Its failure is the same
    `StoreError`, with the same hint, as a migration in this process would give."""
    url = make_url(database_url(url_or_path))
    path = Path(url.database) if url.get_backend_name() == "sqlite" and url.database else None
    with _errors(url.render_as_string(hide_password=True), path, "open"):
        db = open_database(url_or_path, migrate=not migrate_apart)
    if migrate_apart:
        try:
            with _errors(describe(db), path, "open"), db.engine.connect() as conn:
                current = current_revision(conn)
            if current != HEAD:
                _migrate_in_child(db)
                log_migrated(current)
        except BaseException:
            db.close()
            raise
    return db


#: what the migrating child runs: the database URL (its password too) comes on its standard input,
#: never on a command line that `ps` shows
_MIGRATE = "from avctl.db.journal import migrate_entry; migrate_entry()"


def _migrate_in_child(db: Database) -> None:
    done = subprocess.run([sys.executable, "-c", _MIGRATE], input=db.engine.url.render_as_string(hide_password=False),
                          capture_output=True, text=True, env=child_environment(), check=False)
    if done.returncode == 0:
        return
    try:
        refused = json.loads(done.stdout)
        message, hint = str(refused["message"]), refused.get("hint")
    except (ValueError, TypeError, KeyError):
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        message, hint = redact(f"cannot migrate {describe(db)}: the migration process failed: {last}"), None
    raise StoreError(message, hint=hint if isinstance(hint, str) else None)


def migrate_entry() -> None:
    """The migrating child (see `open_journal_database`): migrates the database named on standard
    input; a `StoreError` goes back to the parent as JSON on standard output, exit status 1."""
    try:
        open_journal_database(sys.stdin.read()).close()
    except StoreError as exc:
        print(json.dumps({"message": exc.message, "hint": exc.hint}))
        raise SystemExit(1) from None


def check_database_writable(db: Database, conn: Connection) -> None:
    """Refuse (StoreError) unless the database takes a write now: a write probe, rolled back."""
    path = sqlite_path(db)
    if path is not None:
        raw = conn.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        check_writable(raw, path)  # the CLI's probe, with its free-space floor
        return
    with db_errors(db, "write"):
        probe = conn.begin()
        try:  # DDL is transactional on PostgreSQL: the rollback leaves nothing
            conn.execute(text("CREATE TABLE _avctl_write_probe (x bytea)"))
            conn.execute(text("INSERT INTO _avctl_write_probe VALUES (decode(repeat('00', 4096), 'hex'))"))
        finally:
            probe.rollback()


class _OnDatabase:
    """What the SQL job store and audit log share: their database, closing it if they own it, and
    the write probe."""

    def __init__(self, db: Database, *, owns: bool = False) -> None:
        self.db = db
        self._owns = owns  # close the engine on close() (the factory opened it for us)

    def close(self) -> None:
        if self._owns:
            self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_writable(self) -> None:
        """StoreError unless a row could be written now (before any device is contacted)."""
        with db_errors(self.db, "open"), self.db.engine.connect() as conn:
            check_database_writable(self.db, conn)


class SqlJobStore(_OnDatabase):
    """The job store on a `Database`. Thread-safe: each call uses its own pooled connection."""

    @contextlib.contextmanager
    def _write(self, doing: str = "write") -> Iterator[Connection]:
        """One transaction that holds the write lock from its start (SQLite: BEGIN IMMEDIATE)."""
        with db_errors(self.db, doing), self.db.engine.connect() as conn:
            if self.db.dialect == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with db_errors(self.db, "read"), self.db.engine.connect() as conn:
            yield conn

    def create_job(self, *, action: str, selection: str, params: dict[str, Any], devices: Sequence[str],
                   user: str, inventory: str | None = None, options: dict[str, Any] | None = None) -> Job:
        with self._write() as conn:
            job_id = conn.execute(insert(JOBS).values(
                created=time.time(), user=user, action=action, selection=selection,
                params=json.dumps(redact(params)), inventory=inventory, options=json.dumps(redact(options or {})),
                state="running", pid=os.getpid(), host=socket.gethostname()).returning(JOBS.c.id)).scalar_one()
            if devices:
                conn.execute(insert(JOB_DEVICES), [{"job_id": job_id, "position": i, "device": d}
                                                   for i, d in enumerate(devices)])
        return self.get_job(job_id)

    def record_outcome(self, job_id: int, outcome: Outcome) -> None:
        """Commit one device's final outcome (its own transaction: nothing finished is ever lost)."""
        row = {"job_id": job_id, "device": outcome.device, "family": outcome.family, "status": outcome.status,
               "reason": outcome.reason, "message": None if outcome.message is None else redact(outcome.message),
               "data": None if outcome.data is None else json.dumps(redact(outcome.data), default=str),
               "attempts": outcome.attempts, "started": outcome.started, "finished": outcome.finished,
               "requests": outcome.requests}
        try:
            with db_errors(self.db, "write"), self.db.engine.begin() as conn:
                conn.execute(insert(OUTCOMES).values(**row))
        except StoreError:
            if self._has_outcome(job_id, outcome.device):
                raise OutcomeExists(f"job {job_id}: {outcome.device} already has an outcome") from None
            raise

    def _has_outcome(self, job_id: int, device: str) -> bool:
        with self._read() as conn:
            return conn.execute(select(OUTCOMES.c.device).where(
                OUTCOMES.c.job_id == job_id, OUTCOMES.c.device == device)).first() is not None

    def set_state(self, job_id: int, state: JobState) -> None:
        with self._write() as conn:
            conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(
                state=state, finished=time.time() if state != "running" else None))

    def claim(self, job_id: int) -> None:
        """Mark the job as run by this process again (resume)."""
        with self._write() as conn:
            conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(
                state="running", pid=os.getpid(), host=socket.gethostname(), finished=None))

    def claim_device(self, job_id: int, device: str) -> bool:
        """Claim one device of a job for this process, atomically (rules: `SqliteJobStore.claim_device`)."""
        me = (os.getpid(), socket.gethostname())
        with self._write() as conn:
            if self.db.dialect != "sqlite":  # serialise the claims on this job between processes
                conn.execute(select(JOBS.c.id).where(JOBS.c.id == job_id).with_for_update())
            done = conn.execute(select(OUTCOMES.c.device).where(
                OUTCOMES.c.job_id == job_id, OUTCOMES.c.device == device)).first()
            held = conn.execute(select(CLAIMS.c.pid, CLAIMS.c.host).where(
                CLAIMS.c.job_id == job_id, CLAIMS.c.device == device)).first()
            mine = done is None and (held is None or tuple(held) == me or not _claim_alive(*held))
            if mine:
                values = {"job_id": job_id, "device": device, "pid": me[0], "host": me[1], "claimed": time.time()}
                upsert = (pg_insert(CLAIMS) if self.db.dialect == "postgresql" else sqlite_insert(CLAIMS)).values(
                    **values)
                conn.execute(upsert.on_conflict_do_update(
                    index_elements=[CLAIMS.c.job_id, CLAIMS.c.device],
                    set_={"pid": me[0], "host": me[1], "claimed": values["claimed"], "sent": None}))
        return mine

    def mark_sent(self, job_id: int, device: str) -> None:
        """This process is about to send the device a state-changing request (`SqliteJobStore.mark_sent`)."""
        with self._write() as conn:
            conn.execute(CLAIMS.update().where(CLAIMS.c.job_id == job_id, CLAIMS.c.device == device,
                                               CLAIMS.c.sent.is_(None)).values(sent=time.time()))

    def in_doubt(self, job_id: int) -> list[str]:
        """Devices a dead process had sent a state-changing request to, without an outcome
        (`SqliteJobStore.in_doubt`)."""
        with self._read() as conn:
            rows = conn.execute(
                select(CLAIMS.c.device, CLAIMS.c.pid, CLAIMS.c.host)
                .select_from(CLAIMS.outerjoin(OUTCOMES, (OUTCOMES.c.job_id == CLAIMS.c.job_id)
                                              & (OUTCOMES.c.device == CLAIMS.c.device)))
                .where(CLAIMS.c.job_id == job_id, CLAIMS.c.sent.is_not(None), OUTCOMES.c.device.is_(None))).all()
        return [d for d, pid, host in rows if not _claim_alive(pid, host)]

    def claimed_elsewhere(self, job_id: int, devices: Sequence[str]) -> list[str]:
        """Those of `devices` claimed by another process that is (or may be) still running."""
        me = (os.getpid(), socket.gethostname())
        with self._read() as conn:
            rows = conn.execute(select(CLAIMS.c.device, CLAIMS.c.pid, CLAIMS.c.host).where(
                CLAIMS.c.job_id == job_id)).all()
        wanted = set(devices)
        return [d for d, pid, host in rows if d in wanted and (pid, host) != me and _claim_alive(pid, host)]

    def _jobs(self, conn: Connection, rows: Sequence[Any]) -> list[Job]:
        ids = [r.id for r in rows]
        devices: dict[int, list[str]] = {i: [] for i in ids}
        if ids:
            for jid, dev in conn.execute(select(JOB_DEVICES.c.job_id, JOB_DEVICES.c.device).where(
                    JOB_DEVICES.c.job_id.in_(ids)).order_by(JOB_DEVICES.c.job_id, JOB_DEVICES.c.position)):
                devices[jid].append(dev)
        return [Job(id=r.id, created=r.created, user=r.user, action=r.action, selection=r.selection,
                    params=json.loads(r.params), inventory=r.inventory, devices=tuple(devices[r.id]), state=r.state,
                    pid=r.pid, host=r.host, finished=r.finished, options=json.loads(r.options)) for r in rows]

    def get_job(self, job_id: int) -> Job:
        with self._read() as conn:
            row = conn.execute(select(JOBS).where(JOBS.c.id == job_id)).first()
            if row is None:
                raise UsageError(f"no job {job_id} in {describe(self.db)}", hint="see 'avctl jobs list'")
            return self._jobs(conn, [row])[0]

    def list_jobs(self, limit: int = 20) -> list[Job]:
        with self._read() as conn:
            return self._jobs(conn, conn.execute(select(JOBS).order_by(JOBS.c.id.desc()).limit(limit)).all())

    def outcomes(self, job_id: int) -> list[Outcome]:
        o, d = OUTCOMES.c, JOB_DEVICES.c
        with self._read() as conn:
            rows = conn.execute(
                select(OUTCOMES).select_from(OUTCOMES.outerjoin(
                    JOB_DEVICES, and_(d.job_id == o.job_id, d.device == o.device)))
                .where(o.job_id == job_id).order_by(d.position)).all()
        return [Outcome(device=r.device, status=r.status, family=r.family, reason=r.reason, message=r.message,
                        data=None if r.data is None else json.loads(r.data), attempts=r.attempts,
                        started=r.started, finished=r.finished, requests=r.requests) for r in rows]

    def counts(self, job_id: int) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute(select(OUTCOMES.c.status, func.count()).where(
                OUTCOMES.c.job_id == job_id).group_by(OUTCOMES.c.status)).all()
        out: dict[str, int] = dict.fromkeys(STATUSES, 0)
        out.update({status: n for status, n in rows})
        return out

    def pending_devices(self, job_id: int) -> list[str]:
        """Devices of the job that have no final outcome yet, in job order."""
        o, d = OUTCOMES.c, JOB_DEVICES.c
        with self._read() as conn:
            return list(conn.execute(
                select(d.device).select_from(JOB_DEVICES.outerjoin(
                    OUTCOMES, and_(o.job_id == d.job_id, o.device == d.device)))
                .where(d.job_id == job_id, o.device.is_(None)).order_by(d.position)).scalars())


    def reopen(self, job_id: int, reason: str) -> list[str]:
        """Make the devices skipped for ``reason`` pending again (`SqliteJobStore.reopen`)."""
        o, d = OUTCOMES.c, JOB_DEVICES.c
        which = and_(o.job_id == job_id, o.status == "skipped", o.reason == reason)
        with self._write() as conn:
            names = list(conn.execute(select(o.device).select_from(OUTCOMES.join(
                JOB_DEVICES, and_(d.job_id == o.job_id, d.device == o.device))).where(which)
                .order_by(d.position)).scalars())
            conn.execute(delete(OUTCOMES).where(which))
        return names

    def prune(self, before: float) -> int:
        """Remove the finished jobs that ended before ``before`` (`SqliteJobStore.prune`)."""
        j = JOBS.c
        with self._write() as conn:
            ids = list(conn.execute(select(j.id).where(
                j.state == "finished", func.coalesce(j.finished, j.created) < before)).scalars())
            if ids:
                for table in (CLAIMS, OUTCOMES, JOB_DEVICES):
                    conn.execute(delete(table).where(table.c.job_id.in_(ids)))
                conn.execute(delete(JOBS).where(j.id.in_(ids)))
        return len(ids)


def glob_regex(pattern: str) -> str:
    """A shell glob (`room-*`, `r?om`, `[ab]*`) as an anchored POSIX regex (PostgreSQL has no GLOB)."""
    out = ["^"]
    for part in re.split(r"(\[[^\]]*\]|\*|\?)", pattern):
        if part == "*":
            out.append(".*")
        elif part == "?":
            out.append(".")
        elif part.startswith("[") and part.endswith("]") and len(part) > 2:
            out.append("[^" + part[2:] if part[1] == "!" else part)
        else:
            out.append(re.sub(r"([\\.^$|?*+()\[\]{}])", r"\\\1", part))
    return "".join(out) + "$"


class SqlAuditLog(_OnDatabase):
    """The audit log on a `Database` (interface and semantics of `avctl.fleet.audit.AuditLog`)."""

    def __init__(self, db: Database, *, user: str | None = None, owns: bool = False) -> None:
        super().__init__(db, owns=owns)
        self._user = user or os_user()

    def record(self, *, device: str, action: str, params: Mapping[str, Any] | None = None,
               outcome: str = "ok", error: BaseException | None = None, message: str | None = None,
               address: str | None = None, family: str | None = None, job_id: int | None = None,
               user: str | None = None, ts: float | None = None, error_kind: str | None = None) -> int:
        """Append one call (its own committed transaction). Returns the row id."""
        values = audit_values(device=device, action=action, params=params, outcome=outcome, error=error,
                              message=message, address=address, family=family, job_id=job_id,
                              user=user or self._user, ts=ts, error_kind=error_kind)
        with db_errors(self.db, "write"), self.db.engine.begin() as conn:
            return int(conn.execute(insert(AUDIT).values(**values).returning(AUDIT.c.id)).scalar_one())

    def query(self, *, device: str | None = None, action: str | None = None, user: str | None = None,
              outcome: str | None = None, job_id: int | None = None, since: float | None = None,
              until: float | None = None, limit: int | None = 100) -> list[AuditEntry]:
        """Newest first. ``device`` and ``action`` are shell globs (``room-*``)."""
        c = AUDIT.c
        stmt = select(AUDIT).order_by(c.id.desc())
        for col, val in ((c.device, device), (c.action, action)):
            if val:
                stmt = stmt.where(col.op("GLOB")(val) if self.db.dialect == "sqlite"
                                  else col.regexp_match(glob_regex(val)))
        for col, val in ((c.user, user), (c.outcome, outcome)):
            if val:
                stmt = stmt.where(col == val)
        if job_id is not None:
            stmt = stmt.where(c.job_id == job_id)
        if since is not None:
            stmt = stmt.where(c.ts >= since)
        if until is not None:
            stmt = stmt.where(c.ts < until)
        if limit is not None:
            stmt = stmt.limit(limit)
        with db_errors(self.db, "read"), self.db.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [AuditEntry(id=r.id, ts=r.ts, user=r.user, device=r.device, address=r.address, family=r.family,
                           action=r.action, params=json.loads(r.params), outcome=r.outcome,
                           error_kind=r.error_kind, message=r.message, job_id=r.job_id) for r in rows]
