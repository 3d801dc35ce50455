"""Jobs in a real Chromium: the wizard's preview (planned by the fleet runner), a disruptive job with
its typed confirmation followed live to the end, roles (viewer, help desk) refused by the server
whatever the browser sends, re-running the failed devices, resuming a job whose server was killed."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlencode

from playwright.sync_api import Browser, Page, expect

from avctl.emulator.core import EmulatorThread

from ..server.harness import wait_for
from .browser import screenshot
from .dashboard import Dashboard, Spot, password_of, start_dashboard

#: a form POSTed by the page's own script with its session and CSRF token: what a forged request can do
FORGE = """async ([path, body]) => (await fetch(path, {method: 'POST', credentials: 'same-origin',
    headers: {'X-CSRF-Token': document.cookie.match(/avctl_csrf=([^;]+)/)[1],
              'Content-Type': 'application/x-www-form-urlencoded'}, body})).status"""

#: generous: a device the test holds (paused) answers when the test says, never by a timeout
HOLD_TIMEOUT = "600"


def forge(page: Page, path: str, **form: str) -> int:
    status: int = page.evaluate(FORGE, [path, urlencode(form)])
    return status


def api_jobs(dash: Dashboard) -> list[dict[str, object]]:
    dash.server.login("admin", password_of("admin"))
    items: list[dict[str, object]] = dash.server.get("/api/v1/jobs", limit=500)["items"]
    return items


def preview(page: Page, path: str, *, timeout: str | None = None) -> None:
    """The wizard at `path`, previewed (with a request timeout, when given)."""
    page.goto(path)
    if timeout is not None:
        page.locator("#run-options summary").click()
        page.locator("input[name='o.timeout']").fill(timeout)
        page.get_by_role("button", name="Preview").click()
        expect(page.locator("#cli-preview")).to_contain_text(f"--timeout {timeout}")
    expect(page.locator("#preview-summary")).to_be_visible()
    # no preview still on its way: a late one would replace what the test types next (the count)
    page.wait_for_function("() => !document.querySelector('.htmx-request')")


def test_disruptive_job_needs_the_typed_count_and_updates_live(browser: Browser, dashboard: Dashboard) -> None:
    phones = ("hq-board-phone", "hq-huddle-phone")
    reboots = {n: dashboard.devices[n].phone.reboots for n in phones}  # type: ignore[attr-defined]
    page = dashboard.page(browser, "operator")
    preview(page, "/jobs/new?" + urlencode({"action": "reboot", "select": "site=hq,family=polyuc"}),
            timeout=HOLD_TIMEOUT)
    expect(page.locator("#preview-run")).to_have_text("2")
    expect(page.locator("#cli-preview")).to_have_text(
        f"avctl fleet reboot --select site=hq,family=polyuc --timeout {HOLD_TIMEOUT}")
    run = page.locator("#run-now")
    expect(run).to_be_disabled()
    page.locator("#confirm").fill("3")
    expect(run).to_be_disabled()
    screenshot(page, "job-preview")
    jobs_before = len(api_jobs(dashboard))
    # the server checks the count too: a forged run with the wrong one is refused and starts nothing
    assert forge(page, "/jobs", action="reboot", mode="verb", select="site=hq,family=polyuc", confirm="3") == 400
    assert forge(page, "/jobs", action="reboot", mode="verb", select="site=hq,family=polyuc") == 400
    assert len(api_jobs(dashboard)) == jobs_before
    page.locator("#confirm").fill("2")
    expect(run).to_be_enabled()
    held = dashboard.devices["hq-huddle-phone"]
    held.faults.paused = True  # the job waits for this phone: the page is seen while the job runs
    try:
        run.click()
        expect(page).to_have_url(re.compile(r"/jobs/\d+$"))
        expect(page.locator("#count-ok")).to_have_text("1", timeout=60_000)
        expect(page.locator("#job-state")).to_have_text("running")
        page.evaluate("window.__same_page = true")  # gone if the page reloads
    finally:
        held.faults.paused = False
    expect(page.locator("#job-state")).to_have_text("finished", timeout=60_000)
    expect(page.locator("#count-ok")).to_have_text("2")
    expect(page.locator("#count-pending")).to_have_text("0")
    assert page.evaluate("window.__same_page") is True
    for name in phones:
        expect(page.locator(f"#job-devices tr[data-device='{name}'] .badge")).to_have_text("ok")
        assert dashboard.devices[name].phone.reboots == reboots[name] + 1  # type: ignore[attr-defined]
    screenshot(page, "job")
    job_id = page.url.rsplit("/", 1)[1]
    page.goto("/jobs")
    row = page.locator(f"#job-row-{job_id}")
    expect(row).to_contain_text("reboot")
    expect(row).to_contain_text("finished")
    expect(row).to_contain_text("web:operator")
    row.get_by_role("link").click()
    expect(page).to_have_url(re.compile(f"/jobs/{job_id}$"))
    page.goto("/jobs")
    screenshot(page, "jobs")


def _disable(dash: Dashboard, name: str) -> None:
    """The inventory with `name` disabled (the server's watcher reloads it)."""
    lines = dash.inventory.read_text().splitlines()
    changed = [line[:-1] + ", disabled: true}" if line.strip().startswith(f"{name}:") else line for line in lines]
    tmp = dash.inventory.with_name("fleet.yaml.tmp")
    tmp.write_text("\n".join(changed) + "\n")
    tmp.replace(dash.inventory)


def test_preview_counts_and_skips_of_a_mixed_selection(browser: Browser, dashboard: Dashboard) -> None:
    selection = "name=hq-*|br-lobby-phone"
    form = {"action": "mute", "mode": "verb", "select": selection}
    _disable(dashboard, "hq-huddle-codec")
    try:
        dashboard.server.login("admin", password_of("admin"))
        wait_for(lambda: "disabled in the inventory" in dashboard.server.session.post(
            dashboard.url("/jobs/new"), data=form, timeout=30).text, what="the inventory reloaded")
        page = dashboard.page(browser, "operator")
        page.goto("/jobs/new?" + urlencode({"action": "mute", "select": selection}))
        expect(page.locator("#preview-run")).to_have_text("4")
        expect(page.locator("#preview-skip")).to_have_text("2")
        families = page.locator("#preview-family tbody tr")
        expect(families).to_have_text([re.compile(r"polyuc\s*3\s*0"), re.compile(r"solstice\s*0\s*1"),
                                       re.compile(r"videoos\s*1\s*1")])
        expect(page.locator("#preview-site tbody tr")).to_have_text([re.compile(r"branch\s*1\s*0"),
                                                                     re.compile(r"hq\s*3\s*2")])
        skipped = page.locator("#preview-skipped")
        expect(skipped.locator("tr[data-device='hq-huddle-codec'] .why")).to_have_text("disabled in the inventory")
        # pods have no microphones to mute; codecs and phones do
        pod = skipped.locator("tr[data-device='hq-board-pod'] .why")
        expect(pod).to_have_text("family solstice has no 'mute' verb")
        for runs in ("hq-board-codec", "hq-board-phone", "br-lobby-phone"):
            expect(skipped.locator(f"tr[data-device='{runs}']")).to_have_count(0)
        expect(page.locator("#cli-preview")).to_have_text("avctl fleet mute --select 'name=hq-*|br-lobby-phone'")
        expect(page.locator("#confirm")).to_have_count(0)  # not disruptive: no typed confirmation
        screenshot(page, "job-new")
        # a user limited to hq: the selection is read among hq's devices only, nothing about the others
        scoped = dashboard.page(browser, "hq-helpdesk")
        scoped.goto("/jobs/new?action=mute")
        expect(scoped.locator("#preview-site tbody tr")).to_have_text([re.compile(r"hq\s*3\s*2")])
        expect(scoped.locator("#preview-skipped")).not_to_contain_text("br-lobby")
    finally:
        dashboard.write_inventory()


def test_help_desk_cannot_run_a_disruptive_job(browser: Browser, dashboard: Dashboard) -> None:
    phones = ("hq-board-phone", "hq-huddle-phone", "br-lobby-phone")
    reboots = {n: dashboard.devices[n].phone.reboots for n in phones}  # type: ignore[attr-defined]
    page = dashboard.page(browser, "helpdesk")
    page.goto("/jobs/new")
    offered = page.locator("#action option").evaluate_all("options => options.map(o => o.value)")
    assert "mute" in offered and "status" in offered
    assert "reboot" not in offered and "system_reboot" not in offered
    page.goto("/jobs/new?action=reboot&select=family=polyuc")
    expect(page.locator("#choice-problem")).to_contain_text("reboot is disruptive")
    expect(page.locator("#run-now")).to_have_count(0)
    jobs_before = len(api_jobs(dashboard))
    assert forge(page, "/jobs", action="reboot", mode="verb", select="family=polyuc", confirm="3") == 403
    assert forge(page, "/jobs", action="system_reboot", mode="action", select="family=videoos", confirm="2") == 403
    assert len(api_jobs(dashboard)) == jobs_before
    assert {n: dashboard.devices[n].phone.reboots for n in phones} == reboots  # type: ignore[attr-defined]


def test_viewer_sees_no_new_job_and_cannot_start_one(browser: Browser, dashboard: Dashboard) -> None:
    page = dashboard.page(browser, "viewer")
    page.goto("/jobs")
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    expect(page.locator("#new-job")).to_have_count(0)
    answer = page.goto("/jobs/new")
    assert answer is not None and answer.status == 403
    jobs_before = len(api_jobs(dashboard))
    assert forge(page, "/jobs", action="mute", mode="verb", select="family=videoos") == 403
    assert len(api_jobs(dashboard)) == jobs_before


def test_rerun_failed_makes_a_job_of_exactly_the_failed_devices(browser: Browser, dashboard: Dashboard) -> None:
    bad, good = dashboard.devices["hq-board-codec"], dashboard.devices["hq-huddle-codec"]
    page = dashboard.page(browser, "operator")
    page.goto("/jobs/new?action=volume&select=family=videoos")
    page.locator("input[name='p.volume']").fill("35")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#cli-preview")).to_have_text("avctl fleet volume --select family=videoos volume=35")
    expect(page.locator("#preview-run")).to_have_text("2")
    bad.faults.fail_next = 1_000_000  # every request answered 500, by count: it fails, whoever asks first
    try:
        page.locator("#run-now").click()
        expect(page.locator("#job-state")).to_have_text("finished", timeout=60_000)
        expect(page.locator("#count-ok")).to_have_text("1")
        expect(page.locator("#job-devices tr[data-device='hq-board-codec'] .badge")).to_have_text(
            re.compile("failed|unreachable"))
    finally:
        bad.faults.fail_next = 0
    assert good.state.volume == 35  # type: ignore[attr-defined]
    first = page.url
    page.locator("#rerun-failed").click()
    expect(page.locator("#rerun-note")).to_be_visible()
    expect(page.locator("input[name='p.volume']")).to_have_value("35")
    expect(page.locator("#preview-run")).to_have_text("1")
    expect(page.locator("#cli-preview")).to_have_text("avctl fleet volume --select name=hq-board-codec volume=35")
    page.locator("#run-now").click()
    expect(page).not_to_have_url(first)
    expect(page.locator("#job-state")).to_have_text("finished", timeout=60_000)
    expect(page.locator("#job-devices tbody tr")).to_have_count(1)
    expect(page.locator("#job-devices tr[data-device='hq-board-codec'] .badge")).to_have_text("ok")
    assert bad.state.volume == 35  # type: ignore[attr-defined]
    job_id = int(page.url.rsplit("/", 1)[1])
    dashboard.server.login("admin", password_of("admin"))
    rerun = dashboard.server.get(f"/api/v1/jobs/{job_id}")
    assert (rerun["selection"], rerun["devices"], rerun["params"]) == ("name=hq-board-codec", 1, {"volume": "35"})
    assert [o["device"] for o in rerun["outcomes"]] == ["hq-board-codec"]


RESUME_FLEET = (
    Spot("rs-phone-1", "polyuc", "hq", "r1"),
    Spot("rs-phone-2", "polyuc", "hq", "r2"),
    Spot("rs-phone-3", "polyuc", "hq", "r3"),
)


def test_resume_a_job_whose_server_was_killed(browser: Browser, module_emulators: EmulatorThread,
                                             tmp_path: Path) -> None:
    dash = start_dashboard(tmp_path, module_emulators, fleet=RESUME_FLEET)
    try:
        held = dash.devices["rs-phone-3"]
        page = dash.page(browser, "operator")
        preview(page, "/jobs/new?action=reboot&select=family=polyuc", timeout=HOLD_TIMEOUT)
        expect(page.locator("#preview-run")).to_have_text("3")
        page.locator("#confirm").fill("3")
        held.faults.paused = True  # the job cannot finish this phone until the test says
        try:
            page.locator("#run-now").click()
            expect(page.locator("#count-ok")).to_have_text("2", timeout=60_000)
            expect(page.locator("#job-state")).to_have_text("running")
            job_url = page.url
            dash.server.kill9()
        finally:
            held.faults.paused = False
        dash.server.start()
        page.goto(job_url)  # sessions are in the database: still signed in
        expect(page.locator("#job-state")).to_have_text("interrupted")
        expect(page.locator("#count-pending")).to_have_text("1")
        # its reboot was on the wire when the server died: in doubt, left alone unless asked
        expect(page.locator("#in-doubt")).to_contain_text("rs-phone-3")
        expect(page.locator("#cli-resume")).to_have_text(f"avctl jobs resume {job_url.rsplit('/', 1)[1]}")
        screenshot(page, "job-resume")
        with page.expect_navigation():  # the page again, once the job has been resumed
            page.locator("#resume-button").click()
        expect(page.locator("#job-state")).to_have_text("interrupted", timeout=60_000)
        expect(page.locator("#count-pending")).to_have_text("1")
        expect(page.locator("#in-doubt")).to_contain_text("rs-phone-3")
        page.locator("#retry-in-doubt").check()
        with page.expect_navigation():
            page.locator("#resume-button").click()
        expect(page.locator("#job-state")).to_have_text("finished", timeout=60_000)
        expect(page.locator("#count-ok")).to_have_text("3")
        expect(page.locator("#resume")).to_have_count(0)
    finally:
        dash.close()
