"""Shared fixtures: emulators on loopback in a background thread, an isolated AVCTL_HOME."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from avctl.emulator.core import EmulatedDevice, EmulatorThread
from avctl.emulator.hostile import HostileDevice
from avctl.fleet.audit import AuditSink
from avctl.fleet.store import JobStore
from avctl.redact import REDACTOR
from avctl.transport.tls import KnownHosts, TLSPolicy

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(autouse=True)
def avctl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own AVCTL_HOME: no test reads or writes the user's real state."""
    home = tmp_path / "avctl-home"
    monkeypatch.setenv("AVCTL_HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # nor the user's spec cache
    monkeypatch.delenv("AVCTL_PASSWORD", raising=False)
    return home


@pytest.fixture(autouse=True)
def forget_secrets() -> Iterator[None]:
    """Secrets one test registers with the process-wide redactor are not masked in the next one
    (a short test password such as "789" would mask the digits of a later test's random port)."""
    yield
    REDACTOR.forget_all()


@pytest.fixture
def emulators() -> Iterator[EmulatorThread]:
    """An emulator server running in its own thread; add devices with `.add()` / `.spawn()`."""
    with EmulatorThread() as thread:
        yield thread


@pytest.fixture
def hostile() -> Iterator[HostileDevice]:
    """A device that misbehaves as told (`hostile.hostility`), over HTTP and HTTPS on loopback."""
    with HostileDevice() as dev:
        yield dev


@pytest.fixture
def tls(tmp_path: Path) -> TLSPolicy:
    """Pinning TLS policy with a fresh known-devices file."""
    return TLSPolicy.pinned(KnownHosts(tmp_path / "known_devices"))


async def wait_back(dev: EmulatedDevice, within: float = 10.0) -> None:
    """Until a rebooted emulator is up and its socket accepts connections again: waits for that
    condition (checked every 50 ms), never for a guessed downtime."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not dev.is_down:
            try:
                socket.create_connection((dev.host, dev.port), timeout=0.5).close()
                return
            except OSError:
                pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"{dev.name} did not come back within {within} s")


@pytest.fixture
def curl_present() -> str:
    """The documented curl examples run real curl: a missing curl fails the test, never skips it."""
    import shutil

    path = shutil.which("curl")
    if path is None:
        pytest.fail("curl is not installed: scripts/test installs it (apt-get install curl)")
    return path


# --- databases (the db part of issue 10) -------------------------------------------------------------
# `postgres_server`: one real PostgreSQL per test session (tests/pg.py), started on first use. If it is
# not installed or cannot start, every test that uses it FAILS with the reason (never skips).
# `pg_url`: a fresh, empty PostgreSQL database for one test (dropped afterwards), as a
# ``postgresql://`` URL. `any_db_url`: the same test once on SQLite (a new file, as a
# ``sqlite:///`` URL) and once on PostgreSQL: use it for anything that talks to the database
# through `avctl.db.open_database(url)`, e.g.
#
#     def test_something(any_db_url: str) -> None:
#         db = open_database(any_db_url)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[object]:
    from .pg import PostgresUnavailable, start_server

    try:
        server, _seconds = start_server()
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL for the tests: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(postgres_server: object) -> Iterator[str]:
    from .pg import PostgresServer

    assert isinstance(postgres_server, PostgresServer)
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'server.db'}"
    return str(request.getfixturevalue("pg_url"))


class Journal:
    """One kind of job store / audit log for the shared store and audit tests (`journal` fixture):
    ``raw`` (the CLI's SqliteJobStore/AuditLog on a path), ``sqlite`` or ``postgresql`` (the SQL
    versions through `avctl.db.factory`, by URL). A path names one database within a test."""

    def __init__(self, kind: str, url_for: Callable[[Path], str]) -> None:
        self.kind = kind
        self._url_for = url_for

    def target(self, path: Path) -> str:
        return str(path) if self.kind == "raw" else self._url_for(path)

    def store(self, path: Path) -> contextlib.closing[JobStore]:
        from avctl.db.factory import open_store

        return contextlib.closing(open_store(self.target(path)))

    def audit(self, path: Path) -> contextlib.closing[AuditSink]:
        from avctl.db.factory import open_audit

        return contextlib.closing(open_audit(self.target(path)))

    def execute(self, path: Path, sql: str, **params: object) -> list[tuple[Any, ...]]:
        """Run SQL on the database directly (as another program would); rows if it returns any."""
        from sqlalchemy import create_engine, text

        from avctl.db.engine import database_url

        engine = create_engine(database_url(self.target(path)))
        try:
            with engine.begin() as conn:
                result = conn.execute(text(sql), params)
                return [tuple(r) for r in result] if result.returns_rows else []
        finally:
            engine.dispose()

    def stored_bytes(self, path: Path) -> bytes:
        """Everything the database holds on disk (SQLite: its files; PostgreSQL: every row of ours)."""
        if self.kind != "postgresql":
            return b"".join(p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name))
        rows = [self.execute(path, f"SELECT * FROM {t}") for t in ("jobs", "job_devices", "outcomes", "audit")]
        return repr(rows).encode()


@pytest.fixture(params=["raw", "sqlite", "postgresql"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Journal:
    if request.param == "raw":
        return Journal("raw", str)
    if request.param == "sqlite":
        return Journal("sqlite", lambda p: f"sqlite:///{p}")
    url = str(request.getfixturevalue("pg_url"))
    return Journal("postgresql", lambda _p: url)
