"""The alerts table refreshing itself while a user types a custom silence, in a real Chromium against
`avctl serve`: the refresh waits while the focus is in the form (nothing typed is lost), runs once
the user leaves the form (what they typed is carried over) or sends it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from avctl.emulator.core import EmulatorThread

from .dashboard import Dashboard, running, start_dashboard
from .test_web_adm import csrf_fetch

RULES = "rules:\n  - {name: device-offline, when: offline, severity: critical}\n"
TYPING, OTHER = "br-lobby-pod", "hq-huddle-phone"


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory, module_emulators: EmulatorThread) -> Iterator[Dashboard]:
    yield from running(start_dashboard(tmp_path_factory.mktemp("alerts-live"), module_emulators, rules=RULES))


def row(page: Page, device: str) -> Locator:
    return page.locator("#alert-list tbody tr", has_text=device)


def alert_id(page: Page, device: str) -> int:
    ident = row(page, device).get_attribute("id") or ""
    return int(ident.removeprefix("alert-"))


def open_alerts(dash: Dashboard, browser: Browser, user: str) -> Page:
    """The open alerts, as `user`, once none is open."""
    page = dash.page(browser, user)
    page.goto("/alerts?state=open")
    expect(page.locator("#alert-total")).to_have_text("0", timeout=60_000)
    return page


def test_typed_silence_survives_live_refreshes(browser: Browser, dash: Dashboard) -> None:
    page, other = open_alerts(dash, browser, "admin"), open_alerts(dash, browser, "operator")
    page.evaluate("window.__same_page = true")  # gone if the page reloads
    for name in (TYPING, OTHER):
        dash.devices[name].faults.down = True
    try:
        expect(page.locator("#alert-total")).to_have_text("2", timeout=90_000)
        expect(other.locator("#alert-total")).to_have_text("2", timeout=60_000)
        typing, elsewhere = row(page, TYPING), row(page, OTHER)
        other_id = alert_id(page, OTHER)
        # the user starts a custom silence: the focus stays in the custom field
        typing.get_by_label("Silence for").select_option("custom")
        custom = typing.get_by_label("Custom duration")
        custom.press_sequentially("90")
        # meanwhile another user acknowledges the other alert: the live stream says alerts changed
        assert csrf_fetch(other, "POST", f"/alerts/{other_id}/ack") == 200
        expect(page.locator("#alert-list")).to_have_attribute("data-live-held", "", timeout=30_000)
        expect(custom).to_have_value("90")
        expect(custom).to_be_focused()
        expect(elsewhere.locator(".acked")).to_have_text("-")  # the refresh waits
        custom.press_sequentially("m")
        # the user leaves the form without sending it: the table refreshes once, the text stays
        page.get_by_role("heading", name="Alerts").click()
        expect(elsewhere.locator(".acked")).to_contain_text("web:operator", timeout=30_000)
        expect(page.locator("#alert-list")).not_to_have_attribute("data-live-held", "")
        expect(custom).to_have_value("90m")
        expect(typing.get_by_label("Silence for")).to_have_value("custom")

        # back in the form; another change waits again, until the user sends the silence
        custom.click()
        assert csrf_fetch(other, "POST", f"/alerts/{other_id}/silence", "duration=3600") == 200
        expect(page.locator("#alert-list")).to_have_attribute("data-live-held", "", timeout=30_000)
        expect(elsewhere.locator(".silenced")).to_have_text("-")
        typing.get_by_role("button", name="Silence", exact=True).click()
        expect(typing.locator(".silenced")).to_contain_text("by web:admin")
        expect(elsewhere.locator(".silenced")).to_contain_text("by web:operator", timeout=30_000)
        expect(page.locator("#alert-list")).not_to_have_attribute("data-live-held", "")
        assert page.evaluate("window.__same_page") is True
    finally:
        for name in (TYPING, OTHER):
            dash.devices[name].faults.down = False
    expect(page.locator("#alert-total")).to_have_text("0", timeout=90_000)


def test_without_a_form_in_use_the_table_refreshes_at_once(browser: Browser, dash: Dashboard) -> None:
    page = open_alerts(dash, browser, "admin")
    device = dash.devices[OTHER]
    device.faults.down = True
    try:
        expect(row(page, OTHER)).to_contain_text("device-offline", timeout=90_000)
        expect(page.locator("#alert-list")).not_to_have_attribute("data-live-held", "")
    finally:
        device.faults.down = False
    expect(page.locator("#alert-total")).to_have_text("0", timeout=90_000)
