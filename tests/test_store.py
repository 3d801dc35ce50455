"""The job store on real databases: jobs, outcomes committed one by one, pending devices, redaction.

Each test runs on every store (`journal` fixture): the CLI's raw SQLite store, and the SQL store on
SQLite and on a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy

from avctl.errors import UsageError
from avctl.fleet.credentials import REDACTOR
from avctl.fleet.store import Outcome, OutcomeExists

from .conftest import Journal


def test_job_lifecycle_and_pending(tmp_path: Path, journal: Journal) -> None:
    db = tmp_path / "avctl.db"
    with journal.store(db) as store:
        job = store.create_job(action="reboot", selection="site=hq", params={"wait": True, "password": "pw1"},
                               devices=["c", "a", "b"], user="alice", inventory="/x/inv.yaml",
                               options={"timeout": 5})
        assert job.devices == ("c", "a", "b") and job.state == "running" and job.effective_state == "running"
        assert job.params == {"wait": True, "password": "********"}  # redacted at rest
        store.record_outcome(job.id, Outcome("a", "ok", family="videoos", data={"model": "G7500"}))
        assert store.pending_devices(job.id) == ["c", "b"]
        store.record_outcome(job.id, Outcome("c", "failed", reason="auth", message="login rejected",
                                             attempts=1))
        with pytest.raises(OutcomeExists):
            store.record_outcome(job.id, Outcome("a", "failed"))
        store.set_state(job.id, "interrupted")
    # a second connection (another process, later) sees everything
    with journal.store(db) as store:
        got = store.get_job(job.id)
        assert got.state == "interrupted" and got.finished is not None and got.options == {"timeout": 5}
        assert [o.device for o in store.outcomes(job.id)] == ["c", "a"]       # job order
        assert store.outcomes(job.id)[1].data == {"model": "G7500"}
        assert store.pending_devices(job.id) == ["b"]
        assert store.counts(job.id) == {"ok": 1, "failed": 1, "unreachable": 0, "skipped": 0}
        store.claim(job.id)
        assert store.get_job(job.id).state == "running"
        assert [j.id for j in store.list_jobs()] == [job.id]
        with pytest.raises(UsageError, match="no job 999"):
            store.get_job(999)
    if journal.kind != "postgresql":
        assert journal.execute(db, "PRAGMA journal_mode") == [("wal",)]
    with pytest.raises(sqlalchemy.exc.IntegrityError):  # the schema itself refuses unknown statuses
        journal.execute(db, "INSERT INTO outcomes (job_id, device, status, attempts, finished)"
                        " VALUES (:job, 'b', 'meh', 1, 0)", job=job.id)


def test_dead_process_job_shows_interrupted(tmp_path: Path, journal: Journal) -> None:
    with journal.store(tmp_path / "db") as store:
        job = store.create_job(action="status", selection="all", params={}, devices=["a"], user="u")
        journal.execute(tmp_path / "db", "UPDATE jobs SET pid = 2147483646 WHERE id = :id", id=job.id)  # no such pid
        assert store.get_job(job.id).effective_state == "interrupted"


def test_known_secret_in_messages_and_data_is_redacted(tmp_path: Path, journal: Journal) -> None:
    REDACTOR.add("store-secret-42")
    with journal.store(tmp_path / "db") as store:
        job = store.create_job(action="x", selection="all", params={"note": "store-secret-42"}, devices=["a"],
                               user="u")
        store.record_outcome(job.id, Outcome("a", "failed", message="echo store-secret-42",
                                             data={"k": "store-secret-42"}))
    raw = journal.stored_bytes(tmp_path / "db")
    assert b"echo ********" in raw  # what the store holds is read, redacted
    assert b"store-secret-42" not in raw


def test_a_device_a_dead_process_had_sent_an_action_is_in_doubt(tmp_path: Path, journal: Journal) -> None:
    """`mark_sent` before a state-changing request; a dead claimer's sent device is in doubt until
    it gets an outcome or is claimed again (which clears the mark)."""
    db = tmp_path / "db"
    with journal.store(db) as store:
        job = store.create_job(action="audio_volume_set", selection="", params={}, devices=["a", "b", "c"],
                               user="u")
        for name in ("a", "b", "c"):
            assert store.claim_device(job.id, name)
        store.mark_sent(job.id, "a")
        store.mark_sent(job.id, "b")
        store.record_outcome(job.id, Outcome("b", "ok"))
        assert store.in_doubt(job.id) == []  # the claimer (this process) is alive
    journal.execute(db, "UPDATE claims SET pid = 2147483646 WHERE job_id = :id", id=job.id)  # no such pid
    with journal.store(db) as store:
        assert store.in_doubt(job.id) == ["a"]  # b has its outcome; c was claimed but nothing was sent
        assert store.claim_device(job.id, "a")  # taken over (resume --retry-in-doubt): the mark is cleared
        assert store.in_doubt(job.id) == []
