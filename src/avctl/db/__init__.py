"""The avctl database: one schema (``avctl.db.models``) for the job journal, the audit log and
everything the server keeps, on SQLite (default, ``$AVCTL_HOME/avctl.db``) or PostgreSQL (by URL).

``open_database(url)`` opens it and brings its schema up to date (Alembic migrations).
``avctl.db.factory.open_journal(url_or_path)`` gives the job store and audit log for a path or URL.

The names here load SQLAlchemy on first use only: the CLI imports ``avctl.db.factory`` on its
default (raw-sqlite) path and must start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from avctl.db.engine import Database, database_url, open_database

__all__ = ["Database", "database_url", "open_database"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from avctl.db import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'avctl.db' has no attribute {name!r}")
