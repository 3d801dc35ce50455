"""A rules file with secrets written in it, in a real Chromium against `avctl serve` as a real process:
no page ever carries a secret (the admin's editor shows placeholders), a save keeps them, and a save
that moves one or sends it elsewhere writes nothing and says why."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from avctl.emulator.core import EmulatorThread

from .dashboard import Dashboard, running, start_dashboard

SECRETS = ("sekrit-hook-token", "hunter2-mail-pw")
RULES = """\
channels:
  ops: {type: webhook, url: 'http://127.0.0.1:9/hook/sekrit-hook-token'}
  mail:
    type: email
    host: 127.0.0.1
    port: 9
    user: av
    password: hunter2-mail-pw
    from: av@example.org
    to: ops@example.org
rules:
  - name: device-offline
    when: offline for 1h
    notify: [ops, mail]
"""


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory, module_emulators: EmulatorThread) -> Iterator[Dashboard]:
    yield from running(start_dashboard(tmp_path_factory.mktemp("dash-rules-secrets"), module_emulators, rules=RULES))


def no_secret_in(page: Page) -> None:
    """Neither in the page's HTML nor in what the textarea holds (its value is not in the HTML)."""
    seen = page.content() + page.locator("body").inner_text()
    if page.locator("#rules-text").count():
        seen += page.locator("#rules-text").input_value()
    for secret in SECRETS:
        assert secret not in seen


def test_the_editor_shows_placeholders_and_a_save_keeps_the_secrets(browser: Browser, dashboard: Dashboard) -> None:
    assert dashboard.rules is not None
    page = dashboard.page(browser, "admin")
    page.goto("/alerts/rules")
    editor = page.locator("#rules-text")
    expect(editor).to_be_visible()
    expect(page.locator("#rules-hidden")).to_contain_text("channels.ops.url (line 2)")
    expect(page.locator("#rules-hidden")).to_contain_text("channels.mail.password (line 8)")
    assert 'url: "<hidden secret #1>"' in editor.input_value()
    assert 'password: "<hidden secret #2>"' in editor.input_value()
    no_secret_in(page)

    # an edit elsewhere: written with both secrets where they were, and shown again masked
    editor.fill(editor.input_value().replace("when: offline for 1h", "when: offline for 2h"))
    page.get_by_role("button", name="Check and save").click()
    expect(page.locator("#rules-body")).to_contain_text("Saved and in force: 1 rules")
    assert dashboard.rules.read_text() == RULES.replace("offline for 1h", "offline for 2h")
    no_secret_in(page)

    # the password sent to another host: refused, with the line and what to do; nothing written
    before = dashboard.rules.read_bytes()
    page.locator("#rules-text").fill(page.locator("#rules-text").input_value().replace(
        "host: 127.0.0.1", "host: mail.attacker.example"))
    page.get_by_role("button", name="Check and save").click()
    expect(page.locator("#flash")).to_contain_text("rules.yaml:8: channels.mail: host changed")
    expect(page.locator("#flash")).to_contain_text("secret:NAME")
    assert dashboard.rules.read_bytes() == before
    no_secret_in(page)

    # a placeholder moved into a description (shown to every reader): refused
    page.goto("/alerts/rules")
    editor = page.locator("#rules-text")
    editor.fill(editor.input_value().replace('url: "<hidden secret #1>"', "url: env:OPS_HOOK").replace(
        "notify: [ops, mail]", 'notify: [ops, mail]\n    description: "<hidden secret #1>"'))
    page.get_by_role("button", name="Check and save").click()
    expect(page.locator("#flash")).to_contain_text("hidden secret #1 was moved")
    assert dashboard.rules.read_bytes() == before
    dashboard.rules.write_text(RULES)  # put back what this test changed


@pytest.mark.parametrize("user", ["operator", "viewer", "hq-helpdesk"])
def test_other_roles_read_the_rules_never_the_file(browser: Browser, dashboard: Dashboard, user: str) -> None:
    page = dashboard.page(browser, user)
    page.goto("/alerts/rules")
    expect(page.locator("#rule-list")).to_contain_text("device-offline")
    expect(page.locator("#rules-text")).to_have_count(0)
    no_secret_in(page)
    api = page.request.get("/api/v1/rules")
    assert api.ok and not any(s in api.text() for s in SECRETS)
