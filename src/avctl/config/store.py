"""Configuration snapshots on the shared database: `SqlSnapshotStore` (the `SnapshotStore` protocol).

One table, ``config_snapshots`` (`avctl.db.models.ConfigSnapshot`), in the database of the job
journal and the audit log (SQLite ``$AVCTL_HOME/avctl.db`` by default, or the ``--store`` /
``AVCTL_DB`` URL). Rules:

- a secret never reaches the database: the value of every key listed in ``secrets`` is replaced by
  `SECRET_MARKER` here, whatever the caller passed;
- the digest is the sha256 of the canonical JSON (sorted keys, compact) of the stored values and
  secrets, so equal configurations have equal digests whoever read them;
- saving what the device's newest snapshot already holds only moves that snapshot's
  ``confirmed_at``: no new row. The look-up and the write are one transaction that holds a lock
  for the device from its start (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock on the
  device's name), so two processes saving one configuration at once leave one row;
- `prune` keeps the newest N snapshots of each device (never fewer than one: the newest is what
  the next save compares with and what a restore goes back to);
- every database failure is a `StoreError` naming the database (password hidden).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, text, update

from avctl.config.model import SECRET_MARKER, Snapshot, SnapshotReason
from avctl.db import models as m
from avctl.db.journal import _OnDatabase, db_errors, describe, open_journal_database
from avctl.errors import UsageError
from avctl.redact import REDACTOR

SNAPSHOTS = m.Base.metadata.tables["config_snapshots"]
#: the first key of the PostgreSQL advisory locks that serialise saves per device ("avcs")
_PG_SNAPSHOT_LOCK = 0x61766373
_PG_LOCK = text("SELECT pg_advisory_xact_lock(CAST(:a AS integer), CAST(:b AS integer))")
_LATEST = re.compile(r"latest(?:~(\d+))?")


def open_snapshot_store(url_or_path: str | None) -> SqlSnapshotStore:
    """The store on what ``--store`` / ``AVCTL_DB`` give: nothing (``$AVCTL_HOME/avctl.db``, the file
    of the CLI's embedded job store), a path or a URL. Migrates the schema; failures are StoreErrors."""
    return SqlSnapshotStore(open_journal_database(url_or_path), owns=True)


def masked(values: Mapping[str, Any], secrets: Sequence[str]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The values as stored (each secret's value replaced by `SECRET_MARKER`) and the sorted secret keys."""
    keys = tuple(sorted(set(secrets)))
    hidden = set(keys)
    return {k: SECRET_MARKER if k in hidden else v for k, v in values.items()}, keys


def digest(values: Mapping[str, Any], secrets: Sequence[str]) -> str:
    """sha256 (hex) of the canonical JSON of stored values and sorted secret keys (see `masked`)."""
    doc = json.dumps({"secrets": list(secrets), "values": values}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()


def _snapshot(row: Any) -> Snapshot:
    return Snapshot(id=row.id, device=row.device, family=row.family, taken_at=row.taken_at,
                    confirmed_at=row.confirmed_at, digest=row.digest, values=json.loads(row.values),
                    secrets=tuple(json.loads(row.secrets)), reason=row.reason, job_id=row.job_id,
                    notes=tuple(json.loads(row.notes)))


class SqlSnapshotStore(_OnDatabase):
    """Snapshots on a `Database`; closes it on `close` only if ``owns`` (the server passes its own).
    Thread-safe: each call uses its own pooled connection."""

    def _lock_device(self, conn: Connection, device: str) -> None:
        """Take the device's save lock at the start of ``conn``'s transaction, held to its end (see the
        module): the look-up of the newest snapshot and the write then see no other save in between."""
        if self.db.dialect == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the whole database's write lock, from the start
        else:
            key = zlib.crc32(device.encode()) - 2**31  # the lock's second key is a signed int4
            conn.execute(_PG_LOCK, {"a": _PG_SNAPSHOT_LOCK, "b": key})

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with db_errors(self.db, "read"), self.db.engine.connect() as conn:
            yield conn

    def save(self, device: str, family: str, values: Mapping[str, Any], *, secrets: Sequence[str] = (),
             reason: SnapshotReason = "backup", job_id: int | None = None, notes: Sequence[str] = (),
             now: float | None = None) -> tuple[Snapshot, bool]:
        """Store the configuration unless the device's newest snapshot holds exactly it; then only
        its ``confirmed_at`` moves (never backwards). Returns the snapshot and whether it is new."""
        stored, keys = masked(values, secrets)
        sha = digest(stored, keys)
        at = time.time() if now is None else now
        c = SNAPSHOTS.c
        with db_errors(self.db, "write"), self.db.engine.begin() as conn:
            self._lock_device(conn, device)
            newest = conn.execute(select(c.id, c.digest).where(c.device == device)
                                  .order_by(c.id.desc()).limit(1)).first()
            if newest is not None and newest.digest == sha:
                conn.execute(update(SNAPSHOTS).where(c.id == newest.id, c.confirmed_at < at)
                             .values(confirmed_at=at))
                snap_id, created = newest.id, False
            else:
                snap_id = conn.execute(insert(SNAPSHOTS).values(
                    device=device, family=family, taken_at=at, confirmed_at=at, digest=sha,
                    values=json.dumps(stored, sort_keys=True), secrets=json.dumps(list(keys)), reason=reason,
                    job_id=job_id, notes=json.dumps([REDACTOR.text(n) for n in notes]),
                ).returning(c.id)).scalar_one()
                created = True
            row = conn.execute(select(SNAPSHOTS).where(c.id == snap_id)).one()
        return _snapshot(row), created

    def history(self, device: str, *, limit: int = 50) -> list[Snapshot]:
        """The device's snapshots, newest first (at most ``limit``)."""
        c = SNAPSHOTS.c
        with self._read() as conn:
            rows = conn.execute(select(SNAPSHOTS).where(c.device == device).order_by(c.id.desc()).limit(limit))
            return [_snapshot(r) for r in rows]

    def latest(self, device: str) -> Snapshot | None:
        newest = self.history(device, limit=1)
        return newest[0] if newest else None

    def get(self, device: str, ref: str | int) -> Snapshot:
        """By id (an int or its digits), ``latest``, or ``latest~N`` (N snapshots before the newest).
        UsageError if the device has no such snapshot (another device's id included)."""
        c = SNAPSHOTS.c
        shown = str(ref).strip()
        stmt = select(SNAPSHOTS).where(c.device == device)
        latest = _LATEST.fullmatch(shown)
        if isinstance(ref, int) or shown.isdigit():
            stmt = stmt.where(c.id == int(shown))
        elif latest is not None:
            stmt = stmt.order_by(c.id.desc()).offset(int(latest.group(1) or 0)).limit(1)
        else:
            raise UsageError(f"not a snapshot: {shown!r} (an id, 'latest' or 'latest~N')",
                             hint=f"see 'avctl config history {device}'")
        with self._read() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            raise UsageError(f"no snapshot {shown} of {device} in {describe(self.db)}",
                             hint=f"see 'avctl config history {device}'")
        return _snapshot(row)

    def devices(self) -> list[str]:
        """The names of the devices that have snapshots, sorted."""
        with self._read() as conn:
            return list(conn.execute(select(SNAPSHOTS.c.device).distinct().order_by(SNAPSHOTS.c.device)).scalars())

    def prune(self, device: str | None = None, *, keep: int) -> int:
        """Delete all but the newest ``keep`` (at least 1) snapshots of ``device`` (None: of every
        device). Returns how many were deleted."""
        if keep < 1:
            raise UsageError(f"keep must be at least 1 snapshot per device, not {keep}")
        c = SNAPSHOTS.c
        rank = func.row_number().over(partition_by=c.device, order_by=c.id.desc()).label("rank")
        ranked = select(c.id, rank)
        if device is not None:
            ranked = ranked.where(c.device == device)
        old = ranked.subquery()
        with db_errors(self.db, "write"), self.db.engine.begin() as conn:
            done = conn.execute(delete(SNAPSHOTS).where(c.id.in_(select(old.c.id).where(old.c.rank > keep))))
            return int(done.rowcount)
