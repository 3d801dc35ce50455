"""The job store and audit log for what a user gives (``--store`` / ``AVCTL_DB``): a path or a URL.

Nothing or a plain path keeps the CLI's embedded raw-sqlite store and audit log (no SQLAlchemy
import: start-up time). A URL (``postgresql://...``, ``sqlite:///...``) opens the shared database
with its migrations and gives the SQL versions (`avctl.db.journal`), so CLI jobs and audit rows land
where the server keeps its own.
"""

from __future__ import annotations

from avctl.fleet.audit import AuditLog, AuditSink
from avctl.fleet.store import JobStore, SqliteJobStore


def is_database_url(url_or_path: str | None) -> bool:
    return bool(url_or_path) and "://" in str(url_or_path)


def open_store(url_or_path: str | None) -> JobStore:
    if not is_database_url(url_or_path):
        return SqliteJobStore(url_or_path)
    return open_journal(url_or_path)[0]


def open_audit(url_or_path: str | None, *, user: str | None = None) -> AuditSink:
    if not is_database_url(url_or_path):
        return AuditLog(url_or_path)
    from avctl.db.journal import SqlAuditLog, open_journal_database

    return SqlAuditLog(open_journal_database(url_or_path), user=user, owns=True)


def open_journal(url_or_path: str | None, *, user: str | None = None) -> tuple[JobStore, AuditSink]:
    """Both on one database; close both (closing the store releases the shared connections)."""
    if not is_database_url(url_or_path):
        return SqliteJobStore(url_or_path), AuditLog(url_or_path)
    from avctl.db.journal import SqlAuditLog, SqlJobStore, open_journal_database

    db = open_journal_database(url_or_path)
    return SqlJobStore(db, owns=True), SqlAuditLog(db, user=user)
