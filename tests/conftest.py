"""Shared fixtures: emulators on loopback in a background thread, an isolated AVCTL_HOME."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from avctl.emulator.core import EmulatedDevice, EmulatorThread
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


@pytest.fixture
def emulators() -> Iterator[EmulatorThread]:
    """An emulator server running in its own thread; add devices with `.add()` / `.spawn()`."""
    with EmulatorThread() as thread:
        yield thread


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
