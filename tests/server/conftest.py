"""Fixtures of the server's tests (each part's are named after it: ``poll_...``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from avctl.db.engine import Database, open_database

POLL_PASSWORD = "poll-pw-Kx73q"


@pytest.fixture
def poll_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """The emulators' password, where the inventory entries' ``env:POLL_PW`` finds it."""
    monkeypatch.setenv("POLL_PW", POLL_PASSWORD)
    return POLL_PASSWORD


@pytest.fixture
def poll_db(tmp_path: Path) -> Iterator[Database]:
    """A real SQLite file with the schema."""
    db = open_database(str(tmp_path / "poll.db"))
    yield db
    db.close()
