"""A site with more rooms than one page, in a real Chromium against `avctl serve`: the rooms needing
attention first, paging, filters on the room name and the health, roll-up counts over every room
(not the page), and the live refresh keeping the page and the filter the user is on.

The site has 64 rooms of one device each: an offline codec (its emulator down), a phone that
refuses the fleet's password (a fault), two healthy emulated devices, and 60 inventory-only
devices that are disabled (never polled: "not polled").
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from avctl.emulator.core import EmulatorThread, emulator_class
from avctl.server.model import DeviceStateName, DeviceView
from avctl.server.web.pages.sites import ROOMS_PAGE, RoomQuery, rooms_in_view
from avctl.server.web.rollup import fleet_health

from .browser import screenshot
from .dashboard import Dashboard, Spot, running, start_dashboard

SITE = "big"
EMULATED = (
    Spot("down-codec", "videoos", SITE, "zz-down"),
    Spot("ok-a-pod", "solstice", SITE, "room-ok-a"),
    Spot("ok-b-phone", "polyuc", SITE, "room-ok-b"),
)
FAULT = Spot("fault-phone", "polyuc", SITE, "zz-fault")
QUIET = 60  # disabled, inventory-only rooms room-000 .. room-059
ROOMS = len(EMULATED) + 1 + QUIET


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory, module_emulators: EmulatorThread) -> Iterator[Dashboard]:
    d = start_dashboard(tmp_path_factory.mktemp("sites-paging"), module_emulators, fleet=EMULATED)
    d.devices["down-codec"].faults.down = True
    # a phone whose password is not the fleet's: the server's login is refused (auth_failed)
    wrong = module_emulators.add(emulator_class(FAULT.family)(FAULT.name, password="not-the-fleet-password"))
    lines = [f"  {FAULT.name}: {{family: {FAULT.family}, address: '{wrong.host}:{wrong.port}', "
             f"site: {SITE}, room: {FAULT.room}}}"]
    lines += [f"  quiet-{i:03d}: {{family: polyuc, address: '127.0.0.1:{20000 + i}', site: {SITE}, "
              f"room: room-{i:03d}, disabled: true}}" for i in range(QUIET)]
    tmp = d.inventory.with_name("whole.tmp")
    tmp.write_text(d.inventory.read_text() + "\n".join(lines) + "\n")
    tmp.replace(d.inventory)
    yield from running(d)


def room_names(page: Page) -> list[str]:
    return [n or "" for n in (a.get_attribute("data-room") for a in page.locator("article.room").all())]


def open_site(page: Page, query: str = "") -> None:
    """The site page once every room is in and every polled device has its state."""
    page.goto(f"/sites/{SITE}{query}")
    expect(page.locator("#room-total")).to_have_text(str(ROOMS), timeout=60_000)
    expect(page.locator("#site-summary [data-count='ok']")).to_have_text("2", timeout=60_000)
    expect(page.locator("#site-summary [data-count='offline']")).to_have_text("1", timeout=60_000)
    expect(page.locator("#site-summary [data-count='fault']")).to_have_text("1", timeout=60_000)


def test_first_page_shows_faulty_rooms_first_then_pages_and_filters(browser: Browser, dash: Dashboard) -> None:
    page = dash.page(browser, "viewer")
    open_site(page)
    # the server's order: offline, fault, (warning), not polled, ok; by name within each
    expected = ["zz-down", "zz-fault", *(f"room-{i:03d}" for i in range(QUIET)), "room-ok-a", "room-ok-b"]
    expect(page.locator("article.room")).to_have_count(ROOMS_PAGE)
    assert room_names(page) == expected[:ROOMS_PAGE]
    expect(page.locator("article[data-room='zz-down'] .room-health .badge")).to_have_text("offline")
    expect(page.locator("article[data-room='zz-fault'] .room-health .badge")).to_have_text("fault")
    expect(page.locator("#room-range")).to_have_text(f"1–{ROOMS_PAGE}")
    expect(page.locator("#page-of")).to_have_text("page 1 of 2")
    # the roll-up counts are over every room of the site, not the page
    counts = [int(t) for t in page.locator("#site-summary [data-count]").all_inner_texts()]
    assert sum(counts) == ROOMS
    expect(page.locator("#site-summary [data-count='unknown']")).to_have_text(str(QUIET))
    expect(page.locator("#site-summary [data-rooms='unknown']")).to_have_text(str(QUIET))

    page.get_by_role("link", name="Next").click()
    expect(page.locator("#page-of")).to_have_text("page 2 of 2")
    assert parse_qs(urlsplit(page.url).query) == {"page": ["2"]}
    expect(page.locator("#room-range")).to_have_text(f"{ROOMS_PAGE + 1}–{ROOMS}")
    assert room_names(page) == expected[ROOMS_PAGE:]
    assert sum(int(t) for t in page.locator("#site-summary [data-count]").all_inner_texts()) == ROOMS

    # filter by name: from any page back to the first of the matches; the counts stay the site's
    page.get_by_label("Room name").fill("ZZ")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("article.room")).to_have_count(2)
    assert room_names(page) == ["zz-down", "zz-fault"]
    assert parse_qs(urlsplit(page.url).query) == {"room": ["ZZ"]}
    expect(page.locator("#room-matching")).to_have_text("2")
    expect(page.locator("#page-of")).to_have_count(0)
    assert sum(int(t) for t in page.locator("#site-summary [data-count]").all_inner_texts()) == ROOMS
    expect(page.locator("#room-total")).to_have_text(str(ROOMS))
    screenshot(page, "site-rooms")

    # filter by health, then page within the filter: the links keep it
    page.get_by_label("Room name").fill("")
    page.get_by_label("Health").select_option("unknown")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#room-matching")).to_have_text(str(QUIET))
    page.get_by_role("link", name="Next").click()
    expect(page.locator("#page-of")).to_have_text("page 2 of 2")
    assert parse_qs(urlsplit(page.url).query) == {"health": ["unknown"], "page": ["2"]}
    assert room_names(page) == [f"room-{i:03d}" for i in range(ROOMS_PAGE, QUIET)]


def test_live_refresh_keeps_the_page_and_the_filter(browser: Browser, dash: Dashboard) -> None:
    page = dash.page(browser, "viewer")
    open_site(page, "?room=room-&page=2")
    # rooms named room-*: 60 not polled, then the two ok ones; page 2 holds the last 12
    matching = QUIET + 2
    expect(page.locator("#room-range")).to_have_text(f"{ROOMS_PAGE + 1}–{matching}")
    assert room_names(page) == [*(f"room-{i:03d}" for i in range(ROOMS_PAGE, QUIET)), "room-ok-a", "room-ok-b"]
    page.evaluate("window.__same_page = true")  # gone if the page reloads
    pod = dash.devices["ok-a-pod"]
    pod.faults.down = True
    try:
        # the pod's room is offline now: first of all, so on page 1; page 2 takes the next room up
        expect(page.locator("article[data-room='room-ok-a']")).to_have_count(0, timeout=60_000)
        expect(page.locator(f"article[data-room='room-{ROOMS_PAGE - 1:03d}']")).to_be_visible()
        expect(page.locator("#page-of")).to_have_text("page 2 of 2")
        expect(page.locator("#site-summary [data-count='offline']")).to_have_text("2")
        assert room_names(page) == [*(f"room-{i:03d}" for i in range(ROOMS_PAGE - 1, QUIET)), "room-ok-b"]
        assert parse_qs(urlsplit(page.url).query) == {"room": ["room-"], "page": ["2"]}
        assert page.evaluate("window.__same_page") is True
    finally:
        pod.faults.down = False
    expect(page.locator("article[data-room='room-ok-a']")).to_be_visible(timeout=90_000)
    assert page.evaluate("window.__same_page") is True


def test_unknown_health_is_an_error_and_a_page_past_the_end_is_the_last(browser: Browser, dash: Dashboard) -> None:
    page = dash.page(browser, "viewer")
    answer = page.goto(f"/sites/{SITE}?health=purple")
    assert answer is not None and answer.status == 400
    expect(page.locator("main")).to_contain_text("unknown health 'purple'")
    page.goto(f"/sites/{SITE}?page=99")
    expect(page.locator("#page-of")).to_have_text("page 2 of 2")


def _view(name: str, room: str, state: DeviceStateName) -> DeviceView:
    return DeviceView(name=name, family="polyuc", site="s", room=room, tags=frozenset(), address="127.0.0.1:1",
                      state=state, since=0.0)


def test_rooms_order_filter_and_urls() -> None:
    site = fleet_health([_view("a", "Alpha", "online"), _view("b", "beta", "offline"), _view("c", "Gamma", "error"),
                         _view("d", "delta", "unknown"), _view("e", "alpha-2", "online")], []).sites["s"]
    order = [r.name for r in rooms_in_view(site, RoomQuery("s"))]
    assert order == ["beta", "Gamma", "delta", "Alpha", "alpha-2"]
    assert [r.name for r in rooms_in_view(site, RoomQuery("s", room="ALPHA"))] == ["Alpha", "alpha-2"]
    assert [r.name for r in rooms_in_view(site, RoomQuery("s", health="ok"))] == ["Alpha", "alpha-2"]
    assert RoomQuery("hq").url() == "/sites/hq"
    assert RoomQuery("a b&c", room="x&y", health="ok", page=3).url(page=1) == "/sites/a%20b%26c?room=x%26y&health=ok"
    assert RoomQuery("hq", page=2).url() == "/sites/hq?page=2"
