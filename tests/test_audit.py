"""The audit log: records, redaction, and the filters behind `avctl audit`."""

from __future__ import annotations

from pathlib import Path

import pytest

from avctl.errors import AuthenticationError, UsageError
from avctl.fleet.audit import parse_when
from avctl.fleet.credentials import REDACTOR
from avctl.fleet.paths import os_user

from .conftest import Journal


def test_record_and_filter(tmp_path: Path, journal: Journal) -> None:
    db = tmp_path / "avctl.db"
    with journal.audit(db) as audit:
        audit.record(device="room-1", action="system_reboot", params={"restartAll": True}, outcome="ok",
                     address="10.0.0.1", family="videoos", ts=1000.0)
        audit.record(device="room-2", action="audio_volume_set", params={"volume": 30}, outcome="failed",
                     error=AuthenticationError("login rejected"), ts=2000.0, job_id=7)
        audit.record(device="lobby-1", action="system_reboot", params={"password": "x-y-z"}, outcome="ok",
                     ts=3000.0, user="bob")
    with journal.audit(db) as audit:
        all_rows = audit.query()
        assert [e.device for e in all_rows] == ["lobby-1", "room-2", "room-1"]   # newest first
        assert all_rows[2].user == os_user() and all_rows[0].user == "bob"
        assert all_rows[0].params == {"password": "********"}
        assert all_rows[1].error_kind == "auth" and all_rows[1].message == "login rejected"
        assert all_rows[1].job_id == 7
        assert [e.device for e in audit.query(device="room-*")] == ["room-2", "room-1"]
        assert [e.device for e in audit.query(action="system_reboot")] == ["lobby-1", "room-1"]
        assert [e.device for e in audit.query(outcome="failed")] == ["room-2"]
        assert [e.device for e in audit.query(since=1500, until=3000)] == ["room-2"]
        assert [e.device for e in audit.query(user="bob")] == ["lobby-1"]
        assert [e.device for e in audit.query(job_id=7)] == ["room-2"]
        assert len(audit.query(limit=1)) == 1
        assert all_rows[2].as_dict()["time"] == "1970-01-01T00:16:40Z"


def test_audit_redacts_known_secret_values(tmp_path: Path, journal: Journal) -> None:
    REDACTOR.add("audit-secret-77")
    db = tmp_path / "a.db"
    with journal.audit(db) as audit:
        audit.record(device="d", action="a", params={"note": "audit-secret-77"}, outcome="failed",
                     message="device said audit-secret-77")
    data = journal.stored_bytes(db)
    assert b"device said ********" in data
    assert b"audit-secret-77" not in data


def test_parse_when() -> None:
    assert parse_when("2h", now=10_000.0) == 10_000.0 - 7200
    assert parse_when("1970-01-01T00:01:00") == 60.0
    assert parse_when("1970-01-01T01:00:00+01:00") == 0.0
    with pytest.raises(UsageError):
        parse_when("yesterday")
