"""Fixtures of the dashboard's browser tests: one Chromium per module, a dashboard per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from avctl.emulator.core import EmulatorThread

from .browser import CHROMIUM_ARGS, chromium_path
from .dashboard import Dashboard, running, start_dashboard


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """A real headless Chromium (Debian's); the run fails, never skips, if it cannot start."""
    path = chromium_path()
    with sync_playwright() as pw:
        try:
            launched = pw.chromium.launch(executable_path=path, args=list(CHROMIUM_ARGS), headless=True)
        except Exception as exc:
            pytest.fail(f"Chromium at {path} did not start: {exc}", pytrace=False)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def module_emulators() -> Iterator[EmulatorThread]:
    with EmulatorThread() as thread:
        yield thread


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory, module_emulators: EmulatorThread) -> Iterator[Dashboard]:
    """The default dashboard (FLEET, one user per role), shared by a module's tests: a test that
    changes the fleet puts it back, or uses its own `start_dashboard`."""
    yield from running(start_dashboard(tmp_path_factory.mktemp("dash"), module_emulators))
