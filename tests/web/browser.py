"""A real headless Chromium (Debian's `chromium`, installed by scripts/test) driven by Playwright.

Playwright's own browser download is not used (and not possible here): `chromium_path()` finds the
system's browser, and the run fails, never skips, when there is none.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page

#: the flags a headless Chromium needs in a container (as root, no GPU) and to stay off the network:
#: without the background-networking ones it tries Google's services at every start
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
)

#: where tests save screenshots of the pages (scripts/screenshots sets it to docs/screenshots)
SCREENSHOTS = "AVCTL_SCREENSHOTS"


def chromium_path() -> str:
    found = os.environ.get("AVCTL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("no Chromium: the dashboard's tests need a real browser. Install Debian's chromium "
                    "(apt-get install chromium; scripts/test does) or set AVCTL_CHROMIUM to one", pytrace=False)
    return found


def screenshot(page: Page, name: str) -> None:
    """The page as docs/screenshots/NAME.png, when screenshots are asked for (AVCTL_SCREENSHOTS=DIR)."""
    folder = os.environ.get(SCREENSHOTS)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
