"""Opening the database: URL -> SQLAlchemy engine with the right settings -> schema up to date.

SQLite gets the same durability settings as the CLI's store (WAL, synchronous=NORMAL, foreign
keys, a busy timeout so the CLI and the server can share the file). PostgreSQL URLs may be
written ``postgresql://...``: the driver (psycopg 3) is filled in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from avctl.db.models import Base
from avctl.fleet.paths import avctl_home


def database_url(url_or_path: str | None) -> str:
    """A SQLAlchemy URL from what a user gives: nothing (the default file), a path, or a URL."""
    if not url_or_path:
        return f"sqlite:///{avctl_home() / 'avctl.db'}"
    if url_or_path.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url_or_path.split("://", 1)[1]
    if "://" in url_or_path:
        return url_or_path
    return f"sqlite:///{Path(url_or_path).expanduser().resolve()}"


@dataclass
class Database:
    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed when the block ends, rolled back if it raises."""
        with self.sessions.begin() as s:
            yield s

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_settings(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def open_database(url_or_path: str | None = None, *, migrate: bool = True) -> Database:
    """Open the database and (by default) bring its schema up to date."""
    url = database_url(url_or_path)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_settings)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    db = Database(url=url, engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))
    if migrate:
        # placeholder until the Alembic migrations land: create what is missing
        Base.metadata.create_all(engine)
    return db
