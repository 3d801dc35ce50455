"""The overview and the sites/rooms pages in a real Chromium, against `avctl serve` over emulators:
counts that match the emulators (per state and per site), a device going down seen live (offline on
the overview and the site page, an alert on the overview, no reload), room quick actions that
change the emulators' state, what each role sees and may do, and room names and device text with
markup shown as text."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Dialog, Locator, Page, expect

from avctl.emulator.core import EmulatorThread

from ..server.harness import wait_for
from .browser import screenshot
from .dashboard import FLEET, Dashboard, Spot, running, start_dashboard

XSS_ROOM = "<script>alert(1)</script>"
#: device-reported text with markup (a codec's model name)
XSS_MODEL = '<img src=x onerror="alert(2)">X50'
#: the fleet: the default one, plus a room whose name is markup
OVW_FLEET = (*FLEET, Spot("hq-xss-codec", "videoos", "hq", XSS_ROOM))
RULES = "rules:\n  - {name: device-offline, when: offline for 2s, severity: critical}\n"


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory, module_emulators: EmulatorThread) -> Iterator[Dashboard]:
    """A dashboard of its own (a rules file: offline for 2s is a critical alert)."""
    d = start_dashboard(tmp_path_factory.mktemp("ovw"), module_emulators, fleet=OVW_FLEET, rules=RULES)
    d.devices["hq-xss-codec"].state.model = XSS_MODEL  # type: ignore[attr-defined]
    yield from running(d)


def _no_dialogs(page: Page) -> list[str]:
    """Every dialog the page opens (an executed alert(...) would be one)."""
    seen: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        seen.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return seen


def _all_online(page: Page, dash: Dashboard) -> None:
    page.goto("/")
    expect(page.locator("#count-online")).to_have_text(str(len(dash.spots)), timeout=60_000)


def _site_card(page: Page, site: str, health: str) -> Locator:
    return page.locator(f"#overview-sites article[data-site='{site}'] [data-count='{health}']")


def test_overview_counts_match_the_emulators(browser: Browser, dash: Dashboard) -> None:
    page = dash.page(browser, "viewer")
    dialogs = _no_dialogs(page)
    _all_online(page, dash)
    expect(page.locator("#count-total")).to_have_text(str(len(OVW_FLEET)))
    expect(page.locator("#online-percent")).to_have_text("100")
    per_site: dict[str, int] = {}
    for spot in OVW_FLEET:
        per_site[spot.site] = per_site.get(spot.site, 0) + 1
    for site, n in per_site.items():
        expect(_site_card(page, site, "ok")).to_have_text(str(n))
        expect(_site_card(page, site, "offline")).to_have_text("0")
    expect(page.locator("#attention-none")).to_be_visible()
    # firmware: every codec runs the emulator's one firmware (the newest seen)
    expect(page.locator("#firmware-percent")).to_have_text("100", timeout=30_000)
    expect(page.locator("#alerts-critical")).to_have_text("0")
    assert dialogs == []


def test_device_down_turns_offline_and_alerts_live(browser: Browser, dash: Dashboard) -> None:
    overview = dash.page(browser, "viewer")
    _all_online(overview, dash)
    site_page = dash.page(browser, "operator")
    site_page.goto("/sites/branch")
    target = "br-lobby-phone"
    cell = site_page.locator(f".dev[data-device='{target}'] .badge.state-online")
    expect(cell).to_be_visible(timeout=30_000)
    for p in (overview, site_page):
        p.evaluate("window.__same_page = true")  # gone if the page reloads
    device = dash.devices[target]
    device.faults.down = True
    try:
        expect(overview.locator("#count-offline")).to_have_text("1", timeout=60_000)
        expect(_site_card(overview, "branch", "offline")).to_have_text("1")
        expect(overview.locator(f"#overview-attention tr[data-device='{target}']")).to_contain_text("offline")
        # the rule (offline for 2s, critical) opens an alert: counted, and named in the list
        expect(overview.locator("#alerts-critical")).to_have_text("1", timeout=60_000)
        expect(overview.locator(f"#overview-attention tr[data-device='{target}']")).to_contain_text(
            "open critical alert")
        screenshot(overview, "overview")
        expect(site_page.locator(f".dev[data-device='{target}'] .badge.state-offline")).to_be_visible(
            timeout=60_000)
        expect(site_page.locator("article[data-room='lobby'] .room-health .badge")).to_have_text("offline")
        screenshot(site_page, "site")
        for p in (overview, site_page):
            assert p.evaluate("window.__same_page") is True
        link = overview.locator(f"#overview-attention tr[data-device='{target}'] a")
        expect(link).to_have_attribute("href", f"/devices/{target}")
    finally:
        device.faults.down = False
    expect(overview.locator("#count-online")).to_have_text(str(len(OVW_FLEET)), timeout=90_000)
    expect(overview.locator("#alerts-critical")).to_have_text("0", timeout=60_000)


def test_room_mute_and_volume_change_the_emulators(browser: Browser, dash: Dashboard) -> None:
    page = dash.page(browser, "helpdesk")
    page.goto("/sites/hq")
    codec, phone = dash.devices["hq-board-codec"], dash.devices["hq-board-phone"]
    codec.state.muted = False  # type: ignore[attr-defined]
    phone.phone.muted = False  # type: ignore[attr-defined]
    room = page.locator("article[data-room='boardroom']")
    room.get_by_role("button", name="Mute", exact=True).click()
    result = room.locator(".room-result")
    expect(result).to_contain_text("Mute started on 3 devices")
    expect(result.get_by_role("link", name=re.compile(r"^job #\d+$"))).to_have_attribute(
        "href", re.compile(r"^/jobs/\d+$"))
    expect(result.locator("code")).to_contain_text(
        "avctl fleet mute --select 'name=hq-board-codec|hq-board-phone|hq-board-pod'")
    _wait(lambda: codec.state.muted is True and phone.phone.muted is True)  # type: ignore[attr-defined]
    room.get_by_label("Volume").fill("37")
    room.get_by_role("button", name="Set volume").click()
    _wait(lambda: codec.state.volume == 37)  # type: ignore[attr-defined]
    # the site page shows what the next poll read
    expect(page.locator(".dev[data-device='hq-board-codec'] [data-reading='mic_muted']")).to_have_text(
        "yes", timeout=60_000)
    # a helpdesk user sees no reboot and no end call (both disruptive)
    expect(room.get_by_text("Reboot room")).to_have_count(0)
    expect(room.get_by_text("End call")).to_have_count(0)
    room.get_by_role("button", name="Unmute").click()
    _wait(lambda: codec.state.muted is False and phone.phone.muted is False)  # type: ignore[attr-defined]


def _wait(condition: Callable[[], Any]) -> None:
    """Until the emulators show the effect (the job runs in the server, asynchronously)."""
    wait_for(condition, within=60.0, what="the emulators' state")


def test_viewer_sees_no_room_buttons(browser: Browser, dash: Dashboard) -> None:
    page = dash.page(browser, "viewer")
    page.goto("/sites/hq")
    expect(page.locator("article.room")).to_have_count(3)
    expect(page.locator("article.room button")).to_have_count(0)
    expect(page.locator("article.room form")).to_have_count(0)


def _last_request(dash: Dashboard, names: tuple[str, ...]) -> float:
    return max((r.at for n in names for r in dash.devices[n].requests), default=0.0)


def _acted_since(dash: Dashboard, names: tuple[str, ...], since: float) -> list[str]:
    """Requests after `since` that reboot, mute or hang up (not the polls' reads)."""
    return [f"{n}: {r.method} {r.path}" for n in names for r in dash.devices[n].requests
            if r.at > since and r.method != "GET" and re.search(r"reboot|mute|conferences|endCall", r.path, re.I)]


def _forge(page: Page, body: str) -> int:
    """A room action posted by the page's own session, with its CSRF header: only the role decides."""
    status = page.evaluate("""async (body) => (await fetch('/sites/room-action', {method: 'POST',
        credentials: 'same-origin',
        headers: {'X-CSRF-Token': document.cookie.match(/avctl_csrf=([^;]+)/)[1],
                  'Content-Type': 'application/x-www-form-urlencoded'},
        body})).status""", body)
    assert isinstance(status, int)
    return status


def test_forged_reboot_from_helpdesk_is_refused_and_nothing_is_sent(browser: Browser, dash: Dashboard) -> None:
    room = ("hq-board-codec", "hq-board-phone", "hq-board-pod")
    since = _last_request(dash, room)
    page = dash.page(browser, "helpdesk")
    page.goto("/sites/hq")
    assert _forge(page, "site=hq&room=boardroom&verb=reboot&confirm=3") == 403
    assert _forge(page, "site=hq&room=boardroom&verb=end_call&confirm=3") == 403
    # a viewer may not even mute
    viewer = dash.page(browser, "viewer")
    viewer.goto("/sites/hq")
    assert _forge(viewer, "site=hq&room=boardroom&verb=mute") == 403
    assert _acted_since(dash, room, since) == []
    assert all(not dash.devices[n].is_down for n in room)
    assert dash.devices["hq-board-codec"].state.reboots == 0  # type: ignore[attr-defined]


def test_markup_in_room_names_and_device_text_is_text(browser: Browser, dash: Dashboard) -> None:
    page = dash.page(browser, "admin")
    dialogs = _no_dialogs(page)
    page.goto("/sites/hq")
    heading = page.get_by_role("heading", name=XSS_ROOM, exact=True)
    expect(heading).to_be_visible()
    expect(page.locator(".dev[data-device='hq-xss-codec']")).to_be_visible()
    # the codec's model is shown in the overview's firmware table as text once polled
    page.goto("/")
    expect(page.locator("#overview-firmware")).to_contain_text(XSS_MODEL, timeout=60_000)
    expect(page.locator("#overview-firmware img")).to_have_count(0)
    page.goto("/sites/hq")
    expect(page.locator("article.room script")).to_have_count(0)
    # the room's actions work with that name too (the form carries it as text)
    room = page.locator("article.room").filter(has=page.get_by_role("heading", name=XSS_ROOM, exact=True))
    room.get_by_role("button", name="Mute", exact=True).click()
    expect(room.locator(".room-result")).to_contain_text("Mute started on 1 devices")
    _wait(lambda: dash.devices["hq-xss-codec"].state.muted is True)  # type: ignore[attr-defined]
    page.goto("/sites")
    screenshot(page, "sites")
    assert dialogs == []


def test_scoped_user_sees_only_their_site(browser: Browser, dash: Dashboard) -> None:
    page = dash.page(browser, "hq-helpdesk")
    page.goto("/sites")
    expect(page.locator("article.site-card")).to_have_count(1)
    expect(page.locator("article.site-card[data-site='hq']")).to_be_visible()
    response = page.goto("/sites/branch")
    assert response is not None and response.status == 404


def test_operator_reboots_a_room_with_a_typed_confirmation(browser: Browser, dash: Dashboard) -> None:
    page = dash.page(browser, "operator")
    page.goto("/sites/hq")
    room = page.locator("article[data-room='huddle-2']")
    room.get_by_text("Reboot room…").click()
    button = room.get_by_role("button", name="Reboot room")
    expect(button).to_be_disabled()
    room.get_by_label("Type 2 to confirm").last.fill("2")
    expect(button).to_be_enabled()
    screenshot(page, "site-reboot")
    button.click()
    expect(room.locator(".room-result")).to_contain_text("Reboot room started on 2 devices")
    codec, phone = dash.devices["hq-huddle-codec"], dash.devices["hq-huddle-phone"]
    _wait(lambda: codec.state.reboots == 1 and phone.phone.reboots == 1)  # type: ignore[attr-defined]
