"""The avctl database: one schema (``avctl.db.models``) for the job journal, the audit log and
everything the server keeps, on SQLite (default, ``$AVCTL_HOME/avctl.db``) or PostgreSQL (by URL).

``open_database(url)`` opens it and brings its schema up to date (Alembic migrations).
"""

from avctl.db.engine import Database, database_url, open_database

__all__ = ["Database", "database_url", "open_database"]
