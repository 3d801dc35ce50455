"""The SQL job store and audit log beyond the shared suite (tests/test_store.py, test_audit.py,
test_concurrent_resume.py run on them too): database failures as clear `StoreError`s, the CLI's
commands on a PostgreSQL URL, and the CLI's default path without SQLAlchemy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from avctl.cli.main import cli
from avctl.db.factory import open_audit, open_journal, open_store
from avctl.db.journal import SqlAuditLog, SqlJobStore, glob_regex
from avctl.fleet.audit import AuditLog
from avctl.fleet.store import Outcome, SqliteJobStore, StoreError

from ..pg import free_port


def test_a_refused_connection_is_a_store_error_without_the_password() -> None:
    url = f"postgresql://avctl:hunter2-secret@127.0.0.1:{free_port()}/avctl"
    with pytest.raises(StoreError):
        open_audit(url)  # `avctl audit` and `avctl call` open only the audit log
    with pytest.raises(StoreError) as err:
        open_store(url)
    text = str(err.value)
    assert "127.0.0.1" in text and "hunter2-secret" not in text
    assert "Connection refused" in text and "database server runs" in str(err.value.hint)


def test_a_read_only_database_is_refused_before_any_device_is_touched(pg_url: str) -> None:
    store, audit = open_journal(pg_url)
    try:
        store.check_writable()
        audit.check_writable()
        with psycopg.connect(pg_url) as conn:
            conn.execute(f'ALTER DATABASE "{pg_url.rsplit("/", 1)[1]}" SET default_transaction_read_only = on')
        store.close()  # new connections get the setting
        with pytest.raises(StoreError, match="read-only"):
            store.check_writable()
        with pytest.raises(StoreError, match="read-only"):
            audit.record(device="a", action="reboot")
    finally:
        store.close()
        audit.close()


def test_factory_keeps_the_raw_store_for_paths_and_gives_sql_for_urls(tmp_path: Path) -> None:
    store, audit = open_journal(str(tmp_path / "a.db"))
    assert isinstance(store, SqliteJobStore) and isinstance(audit, AuditLog)
    store.close()
    audit.close()
    store, audit = open_journal(f"sqlite:///{tmp_path / 'b.db'}")
    assert isinstance(store, SqlJobStore) and isinstance(audit, SqlAuditLog)
    store.close()
    audit.close()
    single = open_audit(f"sqlite:///{tmp_path / 'b.db'}", user="web:alice")
    assert single.record(device="a", action="x") == 1 and single.query()[0].user == "web:alice"
    single.close()


def test_cli_jobs_and_audit_on_a_postgresql_url(pg_url: str) -> None:
    store, audit = open_journal(pg_url)
    job = store.create_job(action="audio_volume_set", selection="site=hq", params={"volume": 5}, devices=["a", "b"],
                           user="alice")
    store.record_outcome(job.id, Outcome("a", "ok", family="videoos"))
    store.set_state(job.id, "interrupted")
    audit.record(device="a", action="audio_volume_set", params={"volume": 5}, job_id=job.id)
    store.close()
    audit.close()
    runner = CliRunner()
    listed = runner.invoke(cli, ["jobs", "list", "--json"], env={"AVCTL_DB": pg_url})
    assert listed.exit_code == 0, listed.output
    assert [(r["id"], r["ok"], r["pending"]) for r in json.loads(listed.output)] == [(job.id, 1, 1)]
    shown = runner.invoke(cli, ["jobs", "show", str(job.id), "--json", "--store", pg_url])
    assert shown.exit_code == 0 and json.loads(shown.output)["pending"] == ["b"]
    rows = runner.invoke(cli, ["audit", "--json", "--device", "[ab]"], env={"AVCTL_DB": pg_url})
    assert rows.exit_code == 0 and [r["device"] for r in json.loads(rows.output)] == ["a"]


def test_glob_regex() -> None:
    assert glob_regex("room-*") == "^room-.*$"
    assert glob_regex("r?o.m") == "^r.o\\.m$"
    assert glob_regex("[!a]x") == "^[^a]x$"


def test_the_cli_default_path_does_not_load_sqlalchemy(tmp_path: Path) -> None:
    code = ("import json, sys\nfrom avctl.cli.main import main\n"
            f"sys.argv = ['avctl', 'jobs', 'list', '--store', {str(tmp_path / 'a.db')!r}]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('sqlalchemy', 'alembic')))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(done.stdout.splitlines()[-1]) == []
