"""The Alembic migrations on real databases: they build exactly the models' schema, adopt a database the
CLI's store created (keeping its rows), leave it usable by the CLI, and are safe to run twice or at once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from avctl.db import open_database
from avctl.db.engine import HEAD, MIGRATIONS
from avctl.db.journal import open_journal_database
from avctl.db.models import Base
from avctl.fleet.audit import AuditLog
from avctl.fleet.store import Outcome, SqliteJobStore, StoreError

from ..pg import PostgresServer


def schema_differences(url: str) -> list[object]:
    db = open_database(url, migrate=False)
    try:
        with db.engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))
    finally:
        db.close()


def adopted_differences(url: str) -> list[object]:
    """Differences left on an adopted CLI database, without the two that SQLite treats as the same:
    a REAL column where the models say Float (both REAL affinity) and an ``INTEGER PRIMARY KEY``
    (the rowid: never NULL) not spelled NOT NULL."""
    out = []
    for diff in schema_differences(url):
        op = diff[0] if isinstance(diff, list) else diff
        assert isinstance(op, tuple)
        if op[0] == "modify_type" and type(op[5]).__name__ == "REAL" and type(op[6]).__name__ == "Float":
            continue
        if op[0] == "modify_nullable" and op[3] == "id" and op[5] is True and op[6] is False:
            continue
        out.append(diff)
    return out


def test_migrations_build_exactly_the_models_schema(any_db_url: str) -> None:
    t0 = time.perf_counter()
    db = open_database(any_db_url)
    print(f"migrations on an empty {db.dialect} database: {time.perf_counter() - t0:.3f} s")
    tables = set(inspect(db.engine).get_table_names())
    db.close()
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    assert schema_differences(any_db_url) == []


def test_opening_twice_is_a_no_op(any_db_url: str) -> None:
    open_database(any_db_url).close()
    db = open_database(any_db_url)
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]
    db.close()
    assert schema_differences(any_db_url) == []


OLD_OUTCOMES = """
CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL, user TEXT NOT NULL,
    action TEXT NOT NULL, selection TEXT NOT NULL, params TEXT NOT NULL, inventory TEXT,
    options TEXT NOT NULL DEFAULT '{}', state TEXT NOT NULL, pid INTEGER, host TEXT, finished REAL);
CREATE TABLE outcomes (job_id INTEGER NOT NULL REFERENCES jobs(id), device TEXT NOT NULL, family TEXT,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'unreachable', 'skipped')), reason TEXT,
    message TEXT, data TEXT, attempts INTEGER NOT NULL, started REAL, finished REAL NOT NULL,
    PRIMARY KEY (job_id, device));
INSERT INTO jobs (created, user, action, selection, params, state) VALUES (1, 'u', 'reboot', 'all', '{}', 'finished');
INSERT INTO outcomes (job_id, device, status, attempts, finished) VALUES (1, 'old-1', 'ok', 1, 2);
"""


def test_a_cli_database_is_adopted_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "avctl.db"
    with SqliteJobStore(path) as store, AuditLog(path) as audit:
        job = store.create_job(action="reboot", selection="all", params={}, devices=["a", "b"], user="u")
        store.record_outcome(job.id, Outcome("a", "ok", requests=3))
        audit.record(device="a", action="reboot", job_id=job.id)
    db = open_database(str(path))
    db.close()
    assert adopted_differences(f"sqlite:///{path}") == []
    with SqliteJobStore(path) as store, AuditLog(path) as audit:
        assert [(o.device, o.requests) for o in store.outcomes(job.id)] == [("a", 3)]
        assert store.pending_devices(job.id) == ["b"]
        assert [e.device for e in audit.query()] == ["a"]


def test_an_old_cli_database_without_request_counts_gets_the_column(tmp_path: Path) -> None:
    path = tmp_path / "avctl.db"
    conn = sqlite3.connect(path)
    conn.executescript(OLD_OUTCOMES)
    conn.close()
    open_database(str(path)).close()
    assert adopted_differences(f"sqlite:///{path}") == []
    with SqliteJobStore(path) as store:
        assert [(o.device, o.requests) for o in store.outcomes(1)] == [("old-1", None)]


def test_the_cli_store_and_audit_log_work_on_a_migrated_database(tmp_path: Path) -> None:
    path = tmp_path / "avctl.db"
    open_database(str(path)).close()
    with SqliteJobStore(path) as store, AuditLog(path) as audit:
        store.check_writable()
        audit.check_writable()
        job = store.create_job(action="x", selection="all", params={"password": "p"}, devices=["a", "b"], user="u")
        store.record_outcome(job.id, Outcome("a", "failed", reason="auth", requests=1))
        assert store.claim_device(job.id, "b")
        assert store.counts(job.id)["failed"] == 1 and store.pending_devices(job.id) == ["b"]
        audit.record(device="a", action="x", outcome="failed", job_id=job.id)
        assert [e.job_id for e in audit.query(device="a")] == [job.id]
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError):  # the migrated outcomes table keeps the CLI's CHECK
        conn.execute("INSERT INTO outcomes (job_id, device, status, attempts, finished) VALUES (1, 'b', 'meh', 1, 0)")
    conn.close()
    assert schema_differences(f"sqlite:///{path}") == []


OPEN = "import sys; from avctl.db import open_database; open_database(sys.argv[1]).close()"


def test_two_processes_opening_a_new_database_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'avctl.db'}"
    for _round in range(3):
        (tmp_path / "avctl.db").unlink(missing_ok=True)
        procs = [subprocess.Popen([sys.executable, "-c", OPEN, url], stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
        assert schema_differences(url) == []
        conn = sqlite3.connect(tmp_path / "avctl.db")
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
        conn.close()


def test_two_processes_migrating_one_postgresql_database_at_once(postgres_server: PostgresServer) -> None:
    for _round in range(2):
        url = postgres_server.create_database()
        try:
            procs = [subprocess.Popen([sys.executable, "-c", OPEN, url], stderr=subprocess.PIPE, text=True)
                     for _ in range(3)]
            errors = [p.communicate(timeout=120)[1] for p in procs]
            assert [p.returncode for p in procs] == [0, 0, 0], errors
            assert schema_differences(url) == []
        finally:
            postgres_server.drop_database(url)


def test_the_known_head_is_the_newest_migration() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD


APART = """import json, sys
from avctl.db.journal import open_journal_database
from avctl.db.engine import current_revision
db = open_journal_database(sys.argv[1], migrate_apart=True)
with db.engine.connect() as conn:
    revision = current_revision(conn)
db.close()
print(json.dumps({"revision": revision, "alembic": sorted(m for m in sys.modules if m.startswith("alembic"))}))
"""


def test_a_server_migrates_in_a_child_and_never_loads_alembic(any_db_url: str) -> None:
    """The server's `migrate_apart`: the schema ends exactly at the models', twice (the second time
    with nothing to do), and the opening process never imported Alembic (~11 MB it would keep)."""
    for _round in range(2):
        done = subprocess.run([sys.executable, "-c", APART, any_db_url], capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"revision": HEAD, "alembic": []}
        assert schema_differences(any_db_url) == []


def test_a_migration_that_fails_in_the_child_is_one_store_error(tmp_path: Path) -> None:
    """A schema the migrations cannot build (a view where a table goes) and a revision no migration
    knows: each is one StoreError naming the database, nothing half-migrated, no traceback."""
    refusals = []
    for apart in (True, False):
        clash = tmp_path / f"clash-{apart}.db"
        conn = sqlite3.connect(clash)
        conn.execute("CREATE VIEW alerts AS SELECT 1 AS id")
        conn.close()
        with pytest.raises(StoreError) as refused:
            open_journal_database(str(clash), migrate_apart=apart)
        refusals.append((refused.value.message.replace(str(clash), "DB"), refused.value.hint))
        conn = sqlite3.connect(clash)
        assert conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == []
        conn.close()
    # the same words and hint as a migration in the process itself
    assert refusals[0] == refusals[1]
    assert refusals[0][0].startswith("cannot open DB: ") and "Traceback" not in refusals[0][0]

    unknown = tmp_path / "unknown.db"
    conn = sqlite3.connect(unknown)
    conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
    conn.execute("INSERT INTO alembic_version VALUES ('9999')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError) as refused:
        open_journal_database(str(unknown), migrate_apart=True)
    message = refused.value.message
    assert message.startswith(f"cannot migrate sqlite:///{unknown}: the migration process failed: ")
    assert "9999" in message and "Traceback" not in message
