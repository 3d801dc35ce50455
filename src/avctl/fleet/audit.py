"""The audit log: every state-changing call, from the fleet runner or a single ``avctl call``.

One row per call: when (UTC epoch), who (the OS user), device, address, action, parameters
(redacted), outcome (ok | failed | unreachable), error kind and message (redacted), and the job id
when the call was part of a fleet job. Rows live in the same SQLite file as the job store
(``$AVCTL_HOME/avctl.db``) in table ``audit``; each record is its own committed transaction.

Use from any command that changes device state::

    from avctl.fleet.audit import AuditLog

    with AuditLog() as audit:                    # or AuditLog(path) for another database file
        audit.record(device="room-1", action="system_reboot", params={"restartAll": True},
                     outcome="ok", address="10.0.0.5")
        # on failure: outcome="failed", error=exc   (kind and message are taken from the error)

``record`` raises `avctl.fleet.store.StoreError` when the row cannot be written (read-only file,
full disk): a caller must then say that the change was made but not recorded. It never raises for
a bad parameter value (it stringifies what JSON cannot hold) and always
redacts: sensitive keys (password, token, ...) and every secret value resolved in this process.
Query with :meth:`AuditLog.query` (the filters of ``avctl audit``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from avctl.fleet.credentials import redact
from avctl.fleet.paths import os_user
from avctl.fleet.store import check_writable, connect, default_db_path, store_errors
from avctl.timestamps import iso_time

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    user TEXT NOT NULL,
    device TEXT NOT NULL,
    address TEXT,
    family TEXT,
    action TEXT NOT NULL,
    params TEXT NOT NULL,
    outcome TEXT NOT NULL,
    error_kind TEXT,
    message TEXT,
    job_id INTEGER
);
CREATE INDEX IF NOT EXISTS audit_ts ON audit (ts);
CREATE INDEX IF NOT EXISTS audit_device ON audit (device);
"""


@dataclass(frozen=True)
class AuditEntry:
    id: int
    ts: float
    user: str
    device: str
    address: str | None
    family: str | None
    action: str
    params: dict[str, Any]
    outcome: str
    error_kind: str | None
    message: str | None
    job_id: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "time": iso_time(self.ts),
                "user": self.user, "device": self.device, "address": self.address, "family": self.family,
                "action": self.action, "params": self.params, "outcome": self.outcome,
                "error_kind": self.error_kind, "message": self.message, "job_id": self.job_id}


AUDIT_CSV_COLUMNS = ("time", "user", "device", "address", "family", "action", "params", "outcome", "error_kind",
                     "message", "job_id")


def audit_csv(entries: Sequence[AuditEntry]) -> str:
    """The entries as CSV, one row each (parameters as compact JSON; cells never a formula)."""
    from avctl.fleet.output import csv_cell

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(AUDIT_CSV_COLUMNS)
    for e in entries:
        d = redact(e.as_dict())
        d["params"] = json.dumps(d["params"], separators=(",", ":"), default=str) if d["params"] else ""
        w.writerow([csv_cell("" if d[c] is None else d[c]) for c in AUDIT_CSV_COLUMNS])
    return buf.getvalue()


class AuditSink(Protocol):
    """What records and reads the audit log: `AuditLog` (SQLite) or the server's SQL one (avctl.db)."""

    def record(self, *, device: str, action: str, params: Mapping[str, Any] | None = None,
               outcome: str = "ok", error: BaseException | None = None, message: str | None = None,
               address: str | None = None, family: str | None = None, job_id: int | None = None,
               user: str | None = None, ts: float | None = None, error_kind: str | None = None) -> int: ...
    def query(self, *, device: str | None = None, action: str | None = None, user: str | None = None,
              outcome: str | None = None, job_id: int | None = None, since: float | None = None,
              until: float | None = None, limit: int | None = 100) -> list[AuditEntry]: ...
    def check_writable(self) -> None: ...
    def close(self) -> None: ...


class AuditLog:
    """Append-only audit log on SQLite. Thread-safe; cheap to open and close per command."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self._conn = connect(self.path)
        self._lock = threading.Lock()
        self._user = os_user()
        with self._lock, store_errors(self.path, "set up"):
            self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def check_writable(self) -> None:
        """StoreError unless a row could be recorded now: call it before changing a device."""
        with self._lock:
            check_writable(self._conn, self.path)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, *, device: str, action: str, params: Mapping[str, Any] | None = None,
               outcome: str = "ok", error: BaseException | None = None, message: str | None = None,
               address: str | None = None, family: str | None = None, job_id: int | None = None,
               user: str | None = None, ts: float | None = None, error_kind: str | None = None) -> int:
        """Append one call. ``outcome``: ok | failed | unreachable. Returns the row id."""
        row = tuple(audit_values(device=device, action=action, params=params, outcome=outcome, error=error,
                                 message=message, address=address, family=family, job_id=job_id,
                                 user=user or self._user, ts=ts, error_kind=error_kind).values())
        with self._lock, store_errors(self.path, "write"):
            cur = self._conn.execute(
                "INSERT INTO audit (ts, user, device, address, family, action, params, outcome, error_kind,"
                " message, job_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            return int(cur.lastrowid or 0)

    def query(self, *, device: str | None = None, action: str | None = None, user: str | None = None,
              outcome: str | None = None, job_id: int | None = None, since: float | None = None,
              until: float | None = None, limit: int | None = 100) -> list[AuditEntry]:
        """Newest first. ``device`` and ``action`` are shell globs (``room-*``)."""
        where: list[str] = []
        args: list[Any] = []
        for col, val in (("device", device), ("action", action)):
            if val:
                where.append(f"{col} GLOB ?")
                args.append(val)
        for col, val in (("user", user), ("outcome", outcome)):
            if val:
                where.append(f"{col} = ?")
                args.append(val)
        if job_id is not None:
            where.append("job_id = ?")
            args.append(job_id)
        if since is not None:
            where.append("ts >= ?")
            args.append(since)
        if until is not None:
            where.append("ts < ?")
            args.append(until)
        sql = ("SELECT id, ts, user, device, address, family, action, params, outcome, error_kind,"
               " message, job_id FROM audit")
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [AuditEntry(id=r[0], ts=r[1], user=r[2], device=r[3], address=r[4], family=r[5],
                           action=r[6], params=json.loads(r[7]), outcome=r[8], error_kind=r[9],
                           message=r[10], job_id=r[11])
                for r in rows]


def audit_values(*, device: str, action: str, params: Mapping[str, Any] | None, outcome: str,
                 error: BaseException | None, message: str | None, address: str | None, family: str | None,
                 job_id: int | None, user: str, ts: float | None, error_kind: str | None = None) -> dict[str, Any]:
    """One audit row's columns, in table order: the error's kind and text taken from it (or given:
    a row written for a site worker), and parameters and message redacted (every audit log writes
    exactly this)."""
    kind = error_kind or (getattr(error, "kind", None) if error is not None else None)
    if error is not None and message is None:
        message = str(error)
    if error is not None and kind is None:
        kind = type(error).__name__
    return {"ts": ts if ts is not None else time.time(), "user": user, "device": device, "address": address,
            "family": family, "action": action,
            "params": json.dumps(redact(dict(params or {})), default=str, sort_keys=True), "outcome": outcome,
            "error_kind": kind, "message": None if message is None else redact(message), "job_id": job_id}


def parse_when(text: str, *, now: float | None = None) -> float:
    """``--since`` values: an ISO date/time (UTC if no zone) or a duration ago: 30s, 15m, 2h, 7d."""
    from datetime import UTC, datetime

    from avctl.errors import UsageError

    t = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if t and t[-1] in units and t[:-1].isdigit():
        return (now if now is not None else time.time()) - int(t[:-1]) * units[t[-1]]
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise UsageError(f"cannot read time {text!r}",
                         hint="use 2026-01-31, 2026-01-31T08:00, or 30m / 2h / 7d") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()
