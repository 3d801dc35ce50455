"""A job another process runs on the server's database (the CLI's journal) is live in a real Chromium:
its page and the jobs list follow its outcomes and its end without a reload."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from avctl.emulator.core import EmulatorThread

from ..server.jobs_writer import JobsWriter
from .dashboard import Dashboard, running, start_dashboard


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory, module_emulators: EmulatorThread) -> Iterator[Dashboard]:
    yield from running(start_dashboard(tmp_path_factory.mktemp("dash-cli-jobs"), module_emulators))


def test_a_cli_job_is_live_on_its_page_and_in_the_list(browser: Browser, dashboard: Dashboard) -> None:
    writer = JobsWriter(str(dashboard.home / "avctl.db"))
    try:
        job = writer.create("hq-board-codec", "hq-huddle-codec")
        page = dashboard.page(browser, "operator")
        listing = dashboard.page(browser, "viewer")
        page.goto(f"/jobs/{job}")
        listing.goto("/jobs")
        expect(page.locator("#job-state")).to_have_text("running")
        row = listing.locator(f"#job-row-{job}")
        expect(row).to_contain_text("running")
        for p in (page, listing):
            p.evaluate("window.__same_page = true")  # gone if the page reloads

        writer.send("outcome", job, "hq-board-codec", "ok")
        expect(page.locator("#count-ok")).to_have_text("1", timeout=30_000)
        expect(page.locator("#count-pending")).to_have_text("1")
        writer.send("outcome", job, "hq-huddle-codec", "failed")
        writer.send("finish", job)
        expect(page.locator("#job-state")).to_have_text("finished", timeout=30_000)
        expect(page.locator("#count-failed")).to_have_text("1")
        expect(row).to_contain_text("finished", timeout=30_000)
        for p in (page, listing):
            assert p.evaluate("window.__same_page") is True
    finally:
        writer.close()
