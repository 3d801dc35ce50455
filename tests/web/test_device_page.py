"""The device page in a real Chromium against `avctl serve` over emulated devices: live status,
charts, actions run from their forms (with the request preview, secrets masked, disruptive ones
confirmed), what each role may do (and the server's refusal of forged requests), downloads,
certificate re-pinning, and device text shown as text."""

from __future__ import annotations

import http.client
import re
import time

from playwright.sync_api import Browser, Page, expect

from avctl.emulator.core import EmulatedDevice
from avctl.transport.tls import KnownHosts

from ..server.harness import wait_for
from .browser import screenshot
from .dashboard import Dashboard

CODEC = "hq-board-codec"
POD = "hq-board-pod"
PHONE = "hq-board-phone"
ONLINE_WITHIN = 60_000


def online(page: Page, name: str) -> None:
    page.goto(f"/devices/{name}")
    expect(page.locator("#device-state")).to_contain_text("online", timeout=ONLINE_WITHIN)


def forged_post(page: Page, path: str, body: str) -> int:
    """A POST from the page's own session, with its CSRF token: only the role can refuse it."""
    status: int = page.evaluate("""async ([path, body]) => (await fetch(path, {method: 'POST',
        credentials: 'same-origin', body: body, headers: {'Content-Type': 'application/x-www-form-urlencoded',
        'HX-Request': 'true', 'X-CSRF-Token': document.cookie.match(/avctl_csrf=([^;]+)/)[1]}})).status""",
                                [path, body])
    return status


def raw_get(dashboard: Dashboard, page: Page, path: str) -> int:
    """GET `path` byte for byte, with the page's session (a browser or Playwright would resolve
    dot segments before the server sees them)."""
    cookies = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
    conn = http.client.HTTPConnection("127.0.0.1", dashboard.server.port, timeout=30)
    try:
        conn.request("GET", path, headers={"Cookie": cookies})
        return conn.getresponse().status
    finally:
        conn.close()


def sent_since(device: EmulatedDevice, method: str, path: str, t0: float) -> int:
    return sum(1 for r in device.requests if r.method == method and r.path == path and r.at >= t0)


def test_volume_set_from_the_device_page_changes_the_codec(browser: Browser, dashboard: Dashboard) -> None:
    codec = dashboard.devices[CODEC]
    page = dashboard.page(browser, "operator")
    online(page, CODEC)
    page.get_by_role("link", name="audio_volume_set", exact=True).click()
    expect(page).to_have_url(dashboard.url(f"/devices/{CODEC}/actions/audio_volume_set"))
    page.locator("input[name='p.volume']").fill("23")
    preview = page.locator("#request-preview")
    expect(preview).to_contain_text(re.compile(r"POST https://127\.0\.0\.1:\d+/rest/audio/volume"))
    expect(preview).to_contain_text("23")
    expect(page.locator("#cli")).to_have_text(f"avctl fleet run audio_volume_set --select name={CODEC} volume=23")
    try:
        page.locator("#run-action").click()
        expect(page.locator("#outcome-result")).to_contain_text("ok", timeout=60_000)
        assert codec.state.volume == 23
        screenshot(page, "device-action")
        # the live status follows the device's next poll, without a reload
        online(page, CODEC)
        page.evaluate("window.__same_page = true")
        expect(page.locator("#reading-volume")).to_have_text("23", timeout=ONLINE_WITHIN)
        assert page.evaluate("window.__same_page") is True
        # the run is in the device's audit trail, by this user
        page.reload()
        expect(page.locator("#device-audit")).to_contain_text("audio_volume_set")
        expect(page.locator("#device-audit")).to_contain_text("web:operator")
    finally:
        codec.state.volume = 50


def test_preview_masks_a_secret_parameter(browser: Browser, dashboard: Dashboard) -> None:
    secret = "Hunter2-conference-pw"
    page = dashboard.page(browser, "operator")
    page.goto(f"/devices/{CODEC}/actions/conferences_dial")
    page.locator("input[name='p.address']").fill("sip:room@example.com")
    page.locator("input[name='p.password']").fill(secret)
    preview = page.locator("#preview")
    expect(preview.locator("#request-preview")).to_contain_text('"password": "********"')
    expect(preview.locator("#request-preview")).to_contain_text('"address": "sip:room@example.com"')
    expect(page.locator("#cli")).to_contain_text("password=***")
    assert secret not in preview.inner_text()
    assert secret not in page.locator("#cli").inner_text()
    # a form far larger than any action's parameters is refused
    assert forged_post(page, f"/devices/{CODEC}/actions/audio_volume_set/preview", "p.volume=" + "1" * 300_000) == 413
    # nothing was sent: a preview is built, never run
    assert not any(r.path == "/rest/conferences" and r.method == "POST" for r in dashboard.devices[CODEC].requests)


def test_a_disruptive_action_needs_the_typed_device_name(browser: Browser, dashboard: Dashboard) -> None:
    pod = dashboard.devices[POD]
    page = dashboard.page(browser, "operator")
    online(page, POD)
    page.goto(f"/devices/{POD}/actions/calendar_clear")
    expect(page.locator("#disruptive-note")).to_be_visible()
    run = page.locator("#run-action")
    expect(run).to_be_disabled()
    confirm = page.get_by_label(re.compile("Type the device name"))
    confirm.fill("hq-board")
    expect(run).to_be_disabled()
    # the server asks for the confirmation too: a request without it sends nothing
    t0 = time.time()
    assert forged_post(page, f"/devices/{POD}/actions/calendar_clear/run", "confirm=nope") == 400
    assert sent_since(pod, "DELETE", "/v2/calendar", t0) == 0
    confirm.fill(POD)
    expect(run).to_be_enabled()
    run.click()
    expect(page.locator("#outcome-result")).to_contain_text("ok", timeout=60_000)
    assert sent_since(pod, "DELETE", "/v2/calendar", t0) == 1


def test_viewer_sees_no_forms_and_a_forged_run_is_refused(browser: Browser, dashboard: Dashboard) -> None:
    codec = dashboard.devices[CODEC]
    page = dashboard.page(browser, "viewer")
    online(page, CODEC)
    expect(page.locator("#actions")).to_contain_text("may look at the actions but not run them")
    expect(page.locator("#repin-form")).to_have_count(0)
    page.goto(f"/devices/{CODEC}/actions/audio_volume_set")
    expect(page.locator("#no-form")).to_contain_text("may not run actions")
    expect(page.locator("form")).to_have_count(0)
    expect(page.locator("#cli")).to_contain_text("avctl fleet run audio_volume_set")
    t0 = time.time()
    assert forged_post(page, f"/devices/{CODEC}/actions/audio_volume_set/run", "p.volume=7") == 403
    assert forged_post(page, f"/devices/{CODEC}/actions/audio_volume_set/preview", "p.volume=7") == 403
    assert sent_since(codec, "POST", "/rest/audio/volume", t0) == 0
    assert codec.state.volume != 7


def test_helpdesk_runs_no_disruptive_action_even_forged(browser: Browser, dashboard: Dashboard) -> None:
    pod = dashboard.devices[POD]
    page = dashboard.page(browser, "helpdesk")
    page.goto(f"/devices/{CODEC}/actions/audio_volume_set")
    expect(page.locator("#action-form")).to_be_visible()
    page.goto(f"/devices/{POD}")
    expect(page.locator("#action-calendar_clear")).to_contain_text("operator or admin")
    page.goto(f"/devices/{POD}/actions/calendar_clear")
    expect(page.locator("#no-form")).to_contain_text("an operator or admin runs it")
    expect(page.locator("#action-form")).to_have_count(0)
    t0 = time.time()
    assert forged_post(page, f"/devices/{POD}/actions/calendar_clear/run", f"confirm={POD}") == 403
    assert sent_since(pod, "DELETE", "/v2/calendar", t0) == 0
    # a help-desk user of one site: other sites' devices do not exist for them
    scoped = dashboard.page(browser, "hq-helpdesk")
    response = scoped.goto("/devices/br-lobby-pod")
    assert response is not None and response.status == 404
    assert forged_post(scoped, "/devices/br-lobby-pod/actions/calendar_clear/run", "confirm=br-lobby-pod") == 404


def test_a_chart_renders_for_a_numeric_reading(browser: Browser, dashboard: Dashboard) -> None:
    page = dashboard.page(browser, "viewer")
    online(page, CODEC)
    # uptime is read on every poll: two polls make a line
    line = page.locator("#chart-uptime svg polyline.line")

    def drawn() -> bool:
        page.goto(f"/devices/{CODEC}?range=1h")  # charts are drawn with the page: load it again
        return line.count() == 1

    wait_for(drawn, within=90, every=0.5, what="a line in the uptime chart")
    figure = page.locator("#chart-uptime")
    expect(figure.locator("figcaption")).to_contain_text("uptime (s)")
    expect(figure.locator("text.tick")).not_to_have_count(0)
    expect(page.locator(".ranges a[aria-current]")).to_have_text("1h")
    expect(page.locator("#chart-volume")).to_be_visible()
    screenshot(page, "device")


def test_a_download_is_listed_and_served_and_nothing_else(browser: Browser, dashboard: Dashboard) -> None:
    name = "hq-huddle-codec"
    page = dashboard.page(browser, "operator")
    online(page, name)
    page.goto(f"/devices/{name}/actions/system_logs_get")
    run, outcome = page.locator("#run-action"), page.locator("#outcome-result")
    run.click()
    expect(outcome).to_contain_text("ok", timeout=60_000)
    filename = page.locator("#outcome-file a[download]").inner_text()
    assert re.fullmatch(r"logs_\w+\.tar", filename), filename
    # the same file again is not replaced unless asked
    run.click()
    expect(outcome).to_contain_text("exists; not replaced", timeout=60_000)
    page.get_by_label("Replace a downloaded file of the same name").check()
    run.click()
    expect(page.locator("#outcome-file a[download]")).to_have_text(filename, timeout=60_000)
    page.goto(f"/devices/{name}")
    expect(page.locator("#device-downloads a")).to_have_text([filename])
    on_disk = dashboard.home / "downloads" / name / filename
    answer = page.request.get(f"/devices/{name}/downloads/{filename}")
    assert answer.status == 200
    assert answer.headers["content-disposition"].startswith("attachment")
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.body() == on_disk.read_bytes()
    # a link and a dot file in the folder, another device's folder, other folders: never served
    folder = on_disk.parent
    (folder / "db-link").symlink_to(dashboard.home / "avctl.db")
    (folder / ".hidden").write_text("x")
    try:
        for bad in ("db-link", ".hidden", "..%2F..%2Favctl.db", "%2E%2E", "..", "..%2Fhq-board-codec", "x%00y",
                    f"..%2F{name}%2F{filename}"):
            assert raw_get(dashboard, page, f"/devices/{name}/downloads/{bad}") == 404, bad
        assert raw_get(dashboard, page, f"/devices/{name}/downloads/{filename}") == 200
        assert page.request.get(f"/devices/{CODEC}/downloads/{filename}").status == 404
        page.reload()
        expect(page.locator("#device-downloads")).not_to_contain_text("db-link")
    finally:
        (folder / "db-link").unlink()
        (folder / ".hidden").unlink()


def test_repin_after_a_reset_is_for_admins_and_audited(browser: Browser, dashboard: Dashboard) -> None:
    phone = dashboard.devices[PHONE]
    endpoint = f"{phone.host}:{phone.port}"
    admin = dashboard.page(browser, "admin")
    online(admin, PHONE)
    old = KnownHosts(dashboard.home / "known_devices").get(endpoint)
    assert old is not None
    expect(admin.locator("#device-pins")).to_contain_text(old)
    expect(admin.locator("#cert-expires")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d$"))
    # a factory reset gives the phone a new certificate: the server's polls refuse it
    phone.reset_certificate()
    assert dashboard.emulators.server is not None
    dashboard.emulators.run(dashboard.emulators.server.restart_listener(phone))
    expect(admin.locator("#device-error")).to_contain_text("changed", timeout=ONLINE_WITHIN)
    # not an admin: no form, and the server refuses the request
    operator = dashboard.page(browser, "operator")
    operator.goto(f"/devices/{PHONE}")
    expect(operator.locator("#repin-form")).to_have_count(0)
    assert forged_post(operator, f"/devices/{PHONE}/pin", "reason=let+me") == 403
    assert KnownHosts(dashboard.home / "known_devices").get(endpoint) == old
    admin.get_by_label("Reason for re-pinning").fill("factory reset, ticket 4711")
    admin.get_by_role("button", name="Re-pin the device's certificate").click()
    done = admin.locator("#device-pins .flash")
    expect(done).to_contain_text(f"Re-pinned {endpoint}")
    expect(done).to_contain_text(f"(was {old})")
    new = KnownHosts(dashboard.home / "known_devices").get(endpoint)
    assert new is not None and new != old
    expect(done).to_contain_text(new)
    # the running server checks the new pin at once: the phone is back on its next poll
    admin.goto(f"/devices/{PHONE}")
    expect(admin.locator("#device-state")).to_contain_text("online", timeout=ONLINE_WITHIN)
    audit = admin.locator("#device-audit")
    expect(audit).to_contain_text("trust.repin")
    expect(audit).to_contain_text("factory reset, ticket 4711")
    expect(audit).to_contain_text(old)
    expect(audit).to_contain_text(new)
    expect(audit).to_contain_text("web:admin")
    expect(audit).not_to_contain_text("let me")
    expect(admin.locator("#device-pins")).to_contain_text("re-pinned by web:admin")


def test_device_text_is_shown_as_text(browser: Browser, dashboard: Dashboard) -> None:
    name = "hq-huddle-codec"
    codec = dashboard.devices[name]
    markup = '<img src=x id="pwn"><b id="bold">StudioX</b>'
    before = codec.state.model
    codec.state.model = markup
    try:
        page = dashboard.page(browser, "viewer")
        page.goto(f"/devices/{name}")
        expect(page.locator("#reading-model")).to_have_text(markup, timeout=ONLINE_WITHIN)
        expect(page.locator("#pwn")).to_have_count(0)
        expect(page.locator("#bold")).to_have_count(0)
        html = page.request.get(f"/devices/{name}").text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script on the device page"
        assert " style=" not in html
    finally:
        codec.state.model = before
