"""Alerts, alert rules, audit and admin pages in a real Chromium against `avctl serve` as a real process.

The dashboard here has a rules file (an offline device opens a critical alert at once); its tests
put back what they change (devices up again, the rules file's rules, users disabled).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from avctl.db.journal import open_journal_database
from avctl.emulator.core import EmulatorThread
from avctl.server.access import audit

from .browser import screenshot
from .dashboard import Dashboard, login, running, start_dashboard

RULES = """\
rules:
  - name: device-offline
    when: offline
    severity: critical
    description: "<b>bold</b> is text here"
"""


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory, module_emulators: EmulatorThread) -> Iterator[Dashboard]:
    yield from running(start_dashboard(tmp_path_factory.mktemp("dash-adm"), module_emulators, rules=RULES))


def csrf_fetch(page: Page, method: str, path: str, body: str = "") -> int:
    """A request from the page's own session, with its CSRF token (what a forged htmx request sends)."""
    status: int = page.evaluate(
        """async ([method, path, body]) => (await fetch(path, {method, credentials: 'same-origin', body,
            headers: {'Content-Type': 'application/x-www-form-urlencoded',
                      'X-CSRF-Token': document.cookie.match(/avctl_csrf=([^;]+)/)[1]}})).status""",
        [method, path, body])
    return status


def add_user(page: Page, name: str, password: str, role: str, site: str) -> None:
    """Through the admin page's form, as an admin does."""
    page.goto("/admin")
    form = page.locator("#add-user")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Password").fill(password)
    form.get_by_label("Role").select_option(role)
    form.get_by_label("Sites").fill(site)
    form.get_by_role("button", name="Add user").click()
    expect(page.locator("#flash")).to_contain_text(f"User {name} added ({role}, sites {site})")


def test_alert_appears_live_then_ack_silence_unsilence(browser: Browser, dashboard: Dashboard) -> None:
    admin = dashboard.page(browser, "admin")
    admin.goto("/alerts?state=open")
    watcher = dashboard.page(browser, "operator")
    watcher.goto("/alerts?state=open")
    expect(admin.locator("#alert-total")).to_have_text("0", timeout=60_000)
    for page in (admin, watcher):
        page.evaluate("window.__same_page = true")  # gone if the page reloads
    device = dashboard.devices["br-lobby-pod"]
    device.faults.down = True
    try:
        row = admin.locator("tbody tr", has_text="br-lobby-pod")
        expect(row).to_contain_text("device-offline", timeout=90_000)
        expect(row).to_contain_text("critical")
        row.get_by_role("button", name="Acknowledge").click()
        expect(row.locator(".acked")).to_contain_text("web:admin")
        # the other user's page follows without a reload
        expect(watcher.locator("tbody tr", has_text="br-lobby-pod").locator(".acked")).to_contain_text("web:admin")
        row.get_by_label("Silence for").select_option(label="8 h")
        row.get_by_role("button", name="Silence", exact=True).click()
        expect(row.locator(".silenced")).to_contain_text("by web:admin")
        expect(watcher.locator("tbody tr", has_text="br-lobby-pod").locator(".silenced")).to_contain_text("web:admin")
        screenshot(admin, "alerts")
        row.get_by_role("button", name="Unsilence").click()
        expect(row.locator(".silenced")).to_have_text("-")
        # a custom silence that is not a duration is refused, and says how to write one
        row.get_by_label("Silence for").select_option("custom")
        row.get_by_label("Custom duration").fill("soon")
        row.get_by_role("button", name="Silence", exact=True).click()
        expect(admin.locator("#flash")).to_contain_text("not a duration")
        expect(row.locator(".silenced")).to_have_text("-")
        assert admin.evaluate("window.__same_page") is True
        assert watcher.evaluate("window.__same_page") is True
    finally:
        device.faults.down = False
    expect(admin.locator("#alert-total")).to_have_text("0", timeout=90_000)
    # the resolved alert is kept, with who acknowledged it
    admin.goto("/alerts?state=resolved")
    expect(admin.locator("tbody tr", has_text="br-lobby-pod").first.locator(".acked")).to_contain_text("web:admin")


def test_viewer_sees_alerts_without_buttons_and_cannot_ack(browser: Browser, dashboard: Dashboard) -> None:
    viewer = dashboard.page(browser, "viewer")
    viewer.goto("/alerts?state=all")
    expect(viewer.get_by_role("heading", name="Alerts")).to_be_visible()
    expect(viewer.get_by_role("button", name="Acknowledge")).to_have_count(0)
    expect(viewer.get_by_role("button", name="Silence")).to_have_count(0)
    assert csrf_fetch(viewer, "POST", "/alerts/1/ack") == 403
    assert csrf_fetch(viewer, "POST", "/alerts/1/silence", "duration=3600") == 403


def test_rule_edit_error_shows_line_and_writes_nothing_valid_edit_takes_effect(
        browser: Browser, dashboard: Dashboard) -> None:
    assert dashboard.rules is not None
    before = dashboard.rules.read_bytes()
    page = dashboard.page(browser, "admin")
    page.goto("/alerts/rules")
    rules = page.locator("#rule-list")
    expect(rules).to_contain_text("device-offline")
    # a description with markup is text, not markup
    expect(rules).to_contain_text("<b>bold</b> is text here")
    expect(rules.locator("b")).to_have_count(0)
    editor = page.get_by_label("Rules (YAML)")
    expect(editor).to_have_value(RULES)
    # a mistake on line 3: shown with its line, nothing written, nothing changed
    editor.fill(RULES.replace("when: offline", "when: offline for 2 fortnights"))
    page.get_by_role("button", name="Check and save").click()
    expect(page.locator("#flash")).to_contain_text("rules.yaml:3:")
    expect(page.locator("#flash")).to_contain_text("not a duration")
    assert dashboard.rules.read_bytes() == before
    editor.fill("rules:\n  - name: x\n    when: offline\n   severity: bad indent\n")
    page.get_by_role("button", name="Check and save").click()
    expect(page.locator("#flash")).to_contain_text("rules.yaml:4:")
    assert dashboard.rules.read_bytes() == before
    # a good edit: written, in force (listed by the server's rules API too), audited
    added = RULES + "  - name: cert-expiring\n    when: cert_days_left < 30\n    severity: warning\n"
    page.get_by_label("Rules (YAML)").fill(added)
    page.get_by_role("button", name="Check and save").click()
    expect(page.locator("#rules-body")).to_contain_text("Saved and in force: 2 rules")
    expect(page.locator("#rule-list")).to_contain_text("cert-expiring")
    assert dashboard.rules.read_text() == added
    served = page.request.get("/api/v1/rules").json()
    assert [r["name"] for r in served["items"]] == ["device-offline", "cert-expiring"]
    screenshot(page, "rules")
    page.goto("/audit?action=rules.edit")
    expect(page.locator("#audit-total")).to_have_text("1")
    expect(page.locator("#audit-table")).to_contain_text("web:admin")
    # and back as it was (through the editor again)
    page.goto("/alerts/rules")
    page.get_by_label("Rules (YAML)").fill(RULES)
    page.get_by_role("button", name="Check and save").click()
    expect(page.locator("#rules-body")).to_contain_text("Saved and in force: 1 rules")
    assert dashboard.rules.read_bytes() == before


def test_operator_reads_rules_but_cannot_edit(browser: Browser, dashboard: Dashboard) -> None:
    assert dashboard.rules is not None
    before = dashboard.rules.read_bytes()
    page = dashboard.page(browser, "operator")
    page.goto("/alerts/rules")
    expect(page.locator("#rule-list")).to_contain_text("device-offline")
    expect(page.locator("textarea")).to_have_count(0)
    expect(page.get_by_role("button", name="Check and save")).to_have_count(0)
    status = csrf_fetch(page, "POST", "/alerts/rules", "digest=x&text=" + requests.utils.quote("rules: []\n"))
    assert status == 403
    assert dashboard.rules.read_bytes() == before


def test_audit_filter_and_export(browser: Browser, dashboard: Dashboard) -> None:
    # a row as another writer (the CLI on the same database) could leave it: a user that is a
    # spreadsheet formula, parameters with markup
    db = open_journal_database(str(dashboard.home / "avctl.db"))
    try:
        audit.record(db, "=HYPERLINK(\"http://x\")", "export.test", {"note": "<script>alert(1)</script>"})
    finally:
        db.close()
    page = dashboard.page(browser, "viewer")
    page.goto("/audit")
    page.get_by_label("Action").fill("export.*")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"/audit\?.*action=export\.\*"))
    expect(page.locator("#audit-total")).to_have_text("1")
    table = page.locator("#audit-table")
    expect(table).to_contain_text("<script>alert(1)</script>")
    expect(table.locator("script")).to_have_count(0)
    expect(page.locator("#audit-cli")).to_have_text("avctl audit --action 'export.*' --json")
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV").click()
    rows = list(csv.reader(io.StringIO(download.value.path().read_text(encoding="utf-8"))))
    assert rows[0][:4] == ["id", "time", "user", "device"]
    assert len(rows) == 2
    assert rows[1][2] == "'=HYPERLINK(\"http://x\")"  # never a formula
    assert json.loads(rows[1][7]) == {"note": "<script>alert(1)</script>"}
    exported = page.request.get("/audit/export.json?action=export.*")
    assert exported.ok
    entries = exported.json()
    assert [e["user"] for e in entries] == ["=HYPERLINK(\"http://x\")"]
    # no filter: everything the viewer may see, more than one page of the table would show
    everything = page.request.get("/audit/export.json").json()
    assert len(everything) >= 1
    assert len(everything) == int(page.request.get("/api/v1/audit?limit=1").json()["total"])
    # a time filter as the CLI writes it
    page.goto("/audit?action=export.*&since=1h")
    expect(page.locator("#audit-total")).to_have_text("1")
    page.goto("/audit?action=export.*&until=2000-01-01")
    expect(page.locator("#audit-total")).to_have_text("0")
    page.goto("/audit")
    screenshot(page, "audit")
    page.goto("/audit?since=yesterday-ish")
    expect(page.locator("main")).to_contain_text("cannot read time")


def test_admin_adds_a_site_user_who_sees_only_that_site(browser: Browser, dashboard: Dashboard) -> None:
    page = dashboard.page(browser, "admin")
    add_user(page, "branch-viewer", "branch-viewer-pw-81", "viewer", "branch")
    row = page.locator("#user-branch-viewer")
    expect(row.get_by_label("Sites")).to_have_value("branch")
    them = dashboard.page(browser, None)
    login(them, "branch-viewer", "branch-viewer-pw-81")
    seen = them.request.get("/api/v1/devices").json()
    assert sorted(d["name"] for d in seen["items"]) == sorted(
        s.name for s in dashboard.spots.values() if s.site == "branch")
    assert them.goto("/admin").status == 403
    # an admin changes their role, then disables them: their session ends
    row.get_by_label("Role").select_option("helpdesk")
    row.get_by_role("button", name="Save").click()
    expect(page.locator("#flash")).to_contain_text("User branch-viewer changed")
    assert them.request.get("/api/v1/auth/whoami").json()["role"] == "helpdesk"
    # a new password ends their sessions; the new one signs in
    row.get_by_label("New password").fill("branch-viewer-pw-92")
    row.get_by_role("button", name="Set").click()
    expect(page.locator("#flash")).to_contain_text("User branch-viewer given a new password")
    assert them.request.get("/api/v1/auth/whoami").status == 401
    login(them, "branch-viewer", "branch-viewer-pw-92")
    assert them.request.get("/api/v1/auth/whoami").json()["user"] == "branch-viewer"
    row.get_by_role("button", name="Disable").click()
    expect(page.locator("#flash")).to_contain_text("User branch-viewer disabled")
    expect(page.locator("#user-branch-viewer")).to_contain_text("disabled")
    assert them.request.get("/api/v1/auth/whoami").status == 401
    page.goto("/audit?action=users.*")
    expect(page.locator("#audit-table")).to_contain_text("users.add")
    expect(page.locator("#audit-table")).to_contain_text("users.set")


def test_bad_user_input_is_refused_with_the_reason(browser: Browser, dashboard: Dashboard) -> None:
    page = dashboard.page(browser, "admin")
    page.goto("/admin")
    assert csrf_fetch(page, "POST", "/admin/users", "name=shorty&password=short&role=viewer") == 400
    assert csrf_fetch(page, "POST", "/admin/users", "name=x1&password=long-enough-pw-1&role=king") == 400
    assert csrf_fetch(page, "POST", "/admin/users/nobody", "role=viewer") == 404
    users = page.request.get("/api/v1/users").json()
    assert {"shorty", "x1"}.isdisjoint(u["name"] for u in users)


def test_token_shown_once_works_then_revoked(browser: Browser, dashboard: Dashboard) -> None:
    page = dashboard.page(browser, "admin")
    page.goto("/admin")
    form = page.locator("#token-form")
    form.get_by_label("Name").fill("ci pipeline")
    form.get_by_label("Expires after").select_option("30 days")
    form.get_by_role("button", name="Create my token").click()
    shown = page.locator("#new-token")
    expect(shown).to_have_text(re.compile(r"^avctl_[A-Za-z0-9_-]{43}$"))
    secret = shown.inner_text()
    row = page.locator("#token-list tr", has_text="ci pipeline")
    expect(row).to_contain_text(secret[:12])
    bearer = {"Authorization": f"Bearer {secret}"}
    r = requests.get(dashboard.url("/api/v1/devices"), headers=bearer, timeout=30)
    assert r.status_code == 200 and r.json()["total"] == len(dashboard.spots)
    # a token cannot mint its successors through the page
    r = requests.post(dashboard.url("/admin/tokens"), headers=bearer, data={"name": "x", "expires": "never"},
                      timeout=30)
    assert r.status_code == 403
    # shown once: not on the page again
    page.reload()
    expect(page.locator("#token-list")).to_contain_text("ci pipeline")
    screenshot(page, "admin")
    assert secret not in page.content()
    page.locator("#token-list tr", has_text="ci pipeline").get_by_role("button", name="Revoke").click()
    expect(page.locator("#flash")).to_contain_text("Token ci pipeline of admin revoked")
    expect(page.locator("#token-list")).not_to_contain_text("ci pipeline")
    assert requests.get(dashboard.url("/api/v1/devices"), headers=bearer, timeout=30).status_code == 401


def test_non_admins_get_403_on_admin(browser: Browser, dashboard: Dashboard) -> None:
    for user in ("operator", "helpdesk", "viewer", "hq-helpdesk"):
        page = dashboard.page(browser, user)
        answer = page.goto("/admin")
        assert answer is not None and answer.status == 403, user
        expect(page.locator("main")).to_contain_text("may not admin")
        assert csrf_fetch(page, "POST", "/admin/users", "name=sneaky&password=sneaky-pw-123456&role=admin") == 403
        assert csrf_fetch(page, "POST", "/admin/tokens", "name=sneaky&expires=never") == 403
    admin = dashboard.page(browser, "admin")
    assert "sneaky" not in {u["name"] for u in admin.request.get("/api/v1/users").json()}


def test_site_limited_admin_manages_no_users_and_edits_no_rules(browser: Browser, dashboard: Dashboard) -> None:
    assert dashboard.rules is not None
    before = dashboard.rules.read_bytes()
    page = dashboard.page(browser, "admin")
    add_user(page, "hq-admin", "hq-admin-pw-5512", "admin", "hq")
    limited = dashboard.page(browser, None)
    login(limited, "hq-admin", "hq-admin-pw-5512")
    limited.goto("/admin")
    expect(limited.locator("#users")).to_contain_text("Users are managed by an admin of every site")
    expect(limited.locator("#user-table")).to_have_count(0)
    expect(limited.locator("#token-form")).to_be_visible()  # their own tokens, still
    assert csrf_fetch(limited, "POST", "/admin/users", "name=made-by-hq&password=made-by-hq-pw-1&role=admin") == 403
    assert csrf_fetch(limited, "POST", "/admin/users/viewer", "role=admin") == 403
    limited.goto("/alerts/rules")
    expect(limited.locator("#rule-list")).to_be_visible()
    expect(limited.locator("textarea")).to_have_count(0)
    assert csrf_fetch(limited, "POST", "/alerts/rules", "digest=x&text=rules%3A%20%5B%5D%0A") == 403
    assert dashboard.rules.read_bytes() == before
    users = {u["name"]: u for u in page.request.get("/api/v1/users").json()}
    assert "made-by-hq" not in users and users["viewer"]["role"] == "viewer"


def test_unknown_alert_state_is_an_error_page(browser: Browser, dashboard: Dashboard) -> None:
    page = dashboard.page(browser, "viewer")
    answer = page.goto("/alerts?state=burning")
    assert answer is not None and answer.status == 400
    expect(page.locator("main")).to_contain_text("unknown alert state 'burning'")
