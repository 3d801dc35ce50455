"""Opening the database: URL -> SQLAlchemy engine with the right settings -> schema up to date.

SQLite gets the same durability settings as the CLI's store (WAL, synchronous=NORMAL, foreign
keys, a busy timeout so the CLI and the server can share the file). PostgreSQL URLs may be
written ``postgresql://...``: the driver (psycopg 3) is filled in.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from avctl.fleet.paths import avctl_home
from avctl.paths import ensure_private_dir, make_private_file

log = logging.getLogger(__name__)


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


def _private_file(name: str | None) -> None:
    """The SQLite file and its folder private from the start, as the CLI's store makes them (0600/0700);
    a place that cannot be created is left for SQLite to report."""
    if not name or name == ":memory:":
        return
    path = Path(name)
    with contextlib.suppress(OSError):
        ensure_private_dir(path.parent)
        make_private_file(path)


def open_database(url_or_path: str | None = None, *, migrate: bool = True) -> Database:
    """Open the database and (by default) bring its schema up to date."""
    url = database_url(url_or_path)
    if url.startswith("sqlite"):
        _private_file(make_url(url).database)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_settings)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    db = Database(url=url, engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))
    if migrate:
        try:
            upgrade(engine)
        except BaseException:
            engine.dispose()
            raise
    return db


MIGRATIONS = Path(__file__).parent / "migrations"
#: the newest migration's revision (a test checks it against the migrations folder): a database
#: already there is recognised without importing Alembic, which a CLI command would pay for
HEAD = "0006"
#: the PostgreSQL advisory lock that serialises migrations between processes (any fixed number)
_PG_MIGRATION_LOCK = 0x61766374


def current_revision(conn: Connection) -> str | None:
    """The schema's migration revision (None: not migrated yet)."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return str(versions[0]) if len(versions) == 1 else None


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration; a no-op when it is there already.

    Two processes opening one database at once (the server and a CLI command, two servers) must
    not both migrate: the whole upgrade runs in one transaction that first takes a write lock
    (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock), so the second one waits, then finds
    the schema current. Both engines run DDL in transactions, so a failed migration leaves nothing.
    """
    with engine.connect() as conn:
        before = current_revision(conn)
        if before == HEAD:
            return  # the common case, without taking a write lock
    # Alembic's own INFO lines (its plugins as it is imported, each step) are noise to a user
    # starting a server: one line of ours says what happened
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        conn.commit()
    log_migrated(before)


def log_migrated(before: str | None) -> None:
    """The one line a user starting a server sees about the schema when it changed."""
    log.info("database: schema %s", f"upgraded from {before} to {HEAD}" if before else f"created ({HEAD})")
