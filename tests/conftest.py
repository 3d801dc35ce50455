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
