"""The device table in a real Chromium, over a fleet larger than one page (60 emulated devices):
filtering with the CLI's selection syntax, sorting, paging (kept while the table refreshes itself),
a bad selection, saved views, the CSV export, multi-select into a job, device text as text."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from avctl.emulator.core import EmulatorThread
from avctl.fleet.inventory import Selection, load_inventory

from .browser import screenshot
from .dashboard import Dashboard, Spot, running, start_dashboard

FAMILIES = ("videoos", "polyuc", "solstice")
SITES = ("hq", "branch", "lab")
#: 60 devices: rooms of three (one per family) in three sites; every fourth device tagged lobby
BIG = tuple(Spot(f"dev-{i:02d}", FAMILIES[i % 3], SITES[i // 3 % 3], f"room-{i // 3:02d}",
                 ("lobby",) if i % 4 == 0 else ())
            for i in range(60))
HOSTILE_CODEC = "dev-00"  # a videoos codec
FORMULA_CODEC = "dev-03"


def names(spots: Iterator[Spot] | tuple[Spot, ...]) -> list[str]:
    return sorted(s.name for s in spots)


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory, module_emulators: EmulatorThread) -> Iterator[Dashboard]:
    yield from running(start_dashboard(tmp_path_factory.mktemp("devtable"), module_emulators, fleet=BIG))


def row_names(page: Page) -> list[str]:
    return page.locator("#device-table tbody a.device-link").all_inner_texts()


def open_table(dash: Dashboard, page: Page, query: str = "") -> None:
    page.goto("/devices" + query)
    expect(page.locator("#device-total")).to_be_visible()


def test_filter_with_the_selection_syntax_and_state(browser: Browser, dash: Dashboard) -> None:
    page = dash.page(browser, "viewer")
    open_table(dash, page)
    expect(page.locator("#device-total")).to_have_text("60")
    page.get_by_label("Selection").fill("site=branch|lab,family=polyuc,tag=lobby")
    page.get_by_role("button", name="Filter").click()
    wanted = names(s for s in BIG if s.site in ("branch", "lab") and s.family == "polyuc" and "lobby" in s.tags)
    expect(page.locator("#device-total")).to_have_text(str(len(wanted)))
    assert row_names(page) == wanted
    # the view is in the URL (only what differs from the defaults): linkable
    assert parse_qs(urlsplit(page.url).query) == {"select": ["site=branch|lab,family=polyuc,tag=lobby"]}
    expect(page.locator("#device-table tbody .badge.state-online")).to_have_count(len(wanted), timeout=60_000)
    screenshot(page, "devices-filtered")
    # the state filter: nothing is offline
    page.get_by_label("State").select_option("offline")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#device-total")).to_have_text("0")
    expect(page).to_have_url(re.compile(r"state=offline"))
    # each name opens the device's page
    page.get_by_label("State").select_option("")
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("link", name=wanted[0], exact=True).click()
    expect(page).to_have_url(dash.url(f"/devices/{wanted[0]}"))
    expect(page.locator("#device-name")).to_have_text(wanted[0])


def test_sort_page_and_refresh_keeps_the_page(browser: Browser, dash: Dashboard) -> None:
    page = dash.page(browser, "admin")
    open_table(dash, page)
    everyone = names(BIG)
    assert row_names(page) == everyone[:50]
    expect(page.locator("#page-of")).to_have_text("page 1 of 2")
    expect(page.locator("#device-table tbody .badge.state-online")).to_have_count(50, timeout=60_000)
    screenshot(page, "devices")
    page.get_by_role("link", name="Name", exact=True).click()
    expect(page.get_by_role("columnheader", name="Name")).to_have_attribute("aria-sort", "descending")
    assert row_names(page) == everyone[::-1][:50]
    page.get_by_role("link", name="Next ›").click()
    expect(page.locator("#page-of")).to_have_text("page 2 of 2")
    assert row_names(page) == everyone[::-1][50:]
    assert parse_qs(urlsplit(page.url).query) == {"sort": ["-name"], "page": ["2"]}
    # a device on this page goes down: the table refreshes itself (no reload) and stays on page 2
    page.evaluate("window.__same_page = true")
    target = everyone[::-1][55]
    dash.devices[target].faults.down = True
    try:
        row = page.locator("#device-table tbody tr", has=page.get_by_role("link", name=target, exact=True))
        expect(row.locator(".badge")).to_have_text("offline", timeout=60_000)
        expect(page.locator("#page-of")).to_have_text("page 2 of 2")
        assert page.evaluate("window.__same_page") is True
    finally:
        dash.devices[target].faults.down = False
    # sorting by state: the offline one comes first, back on page 1
    page.get_by_role("link", name="State", exact=True).click()
    expect(page.get_by_role("columnheader", name="State")).to_have_attribute("aria-sort", "ascending")
    expect(page.locator("#page-of")).to_have_text("page 1 of 2")


def test_a_bad_selection_shows_the_error_next_to_the_box(browser: Browser, dash: Dashboard) -> None:
    page = dash.page(browser, "viewer")
    open_table(dash, page)
    page.get_by_label("Selection").fill("colour=blue")
    page.get_by_role("button", name="Filter").click()
    error = page.locator("#select-error")
    expect(error).to_contain_text("cannot select on 'colour'")
    expect(error).to_contain_text("use one of: name, family, site")
    expect(page.get_by_label("Selection")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#device-total")).to_have_text("0")
    # opened directly: the whole page, answered 400
    answer = page.goto("/devices?select=site%3D")
    assert answer is not None and answer.status == 400
    expect(page.locator("#select-error")).to_contain_text("has no value")
    expect(page.get_by_label("Selection")).to_have_value("site=")


def test_saved_view_round_trip(browser: Browser, dash: Dashboard) -> None:
    page = dash.page(browser, "helpdesk")
    open_table(dash, page, "?select=site%3Dlab&sort=-room")
    wanted = [s for s in BIG if s.site == "lab"]
    expect(page.locator("#device-total")).to_have_text(str(len(wanted)))
    page.get_by_label("Save this view as").fill("lab by room")
    page.get_by_role("button", name="Save view").click()
    link = page.get_by_role("link", name="lab by room")
    expect(link).to_be_visible()
    # another user has views of their own only
    other = dash.page(browser, "viewer")
    open_table(dash, other)
    expect(other.get_by_role("link", name="lab by room")).to_have_count(0)
    # opened again later (a new page load: kept in the database)
    open_table(dash, page)
    expect(page.locator("#device-total")).to_have_text("60")
    page.get_by_role("link", name="lab by room").click()
    expect(page.locator("#device-total")).to_have_text(str(len(wanted)))
    expect(page.get_by_role("columnheader", name="Room")).to_have_attribute("aria-sort", "descending")
    assert parse_qs(urlsplit(page.url).query) == {"select": ["site=lab"], "sort": ["-room"]}
    # removed
    page.get_by_role("button", name="Remove view lab by room").click()
    expect(page.get_by_role("link", name="lab by room")).to_have_count(0)
    open_table(dash, page)
    expect(page.get_by_role("link", name="lab by room")).to_have_count(0)


def test_csv_export_of_every_match_with_formula_cells_defused(browser: Browser, dash: Dashboard) -> None:
    codec = dash.devices[FORMULA_CODEC]
    old = codec.state.model  # type: ignore[attr-defined]
    codec.state.model = "=HYPERLINK(\"http://evil.example\",\"x\")"  # type: ignore[attr-defined]
    try:
        page = dash.page(browser, "viewer")
        open_table(dash, page, "?select=family%3Dvideoos%7Cpolyuc&size=25")
        row = page.locator("#device-table tbody tr", has=page.get_by_role("link", name=FORMULA_CODEC, exact=True))
        expect(row.locator("td.reading-model")).to_have_text(codec.state.model, timeout=60_000)  # type: ignore[attr-defined]
        with page.expect_download() as download:
            page.get_by_role("link", name="Export CSV").click()
        text = download.value.path().read_text(encoding="utf-8")
    finally:
        codec.state.model = old  # type: ignore[attr-defined]
    rows = list(csv.DictReader(io.StringIO(text)))
    wanted = names(s for s in BIG if s.family in ("videoos", "polyuc"))
    assert len(wanted) > 25  # more than the page on screen
    assert [r["name"] for r in rows] == wanted
    by_name = {r["name"]: r for r in rows}
    assert by_name[FORMULA_CODEC]["model"] == "'=HYPERLINK(\"http://evil.example\",\"x\")"
    spot = dash.spots["dev-12"]
    assert (by_name[spot.name]["site"], by_name[spot.name]["room"], by_name[spot.name]["tags"]) == (
        spot.site, spot.room, " ".join(spot.tags))
    assert float(by_name[spot.name]["uptime"]) > 0  # numbers stay numbers
    assert all(not r[k].startswith(("=", "+", "-", "@")) for r in rows for k in r)
    # a user limited to a site exports that site's devices only
    scoped = dash.page(browser, "hq-helpdesk")
    answer = scoped.request.get("/devices.csv")
    assert answer.status == 200
    assert [r["name"] for r in csv.DictReader(io.StringIO(answer.text()))] == names(s for s in BIG if s.site == "hq")


def test_multi_select_links_to_a_job_on_exactly_those_devices(browser: Browser, dash: Dashboard) -> None:
    page = dash.page(browser, "operator")
    open_table(dash, page, "?select=site%3Dhq&size=25")
    run = page.locator("#run-picked")
    expect(run).to_be_hidden()
    first, second = names(s for s in BIG if s.site == "hq")[1:3]
    page.get_by_label(f"Select {second}").check()
    page.get_by_label(f"Select {first}").check()
    expect(run).to_have_text("Run a job on 2 devices")
    # the table refreshes itself live (a swap rewrites the link): wait for exactly this link rather
    # than reading it once, which could fall between a swap and the page script's update
    href = "/jobs/new?select=" + quote(f"name={first},name={second}", safe="")
    expect(run).to_have_attribute("href", href)
    select = parse_qs(urlsplit(href).query)["select"]
    assert select == [f"name={first},name={second}"]
    # the selection syntax ORs repeated name= terms: exactly these two devices of the inventory
    chosen = Selection.parse(select[0])
    assert [d.name for d in load_inventory(dash.inventory) if chosen.matches(d)] == [first, second]
    # every device of the page, kept while the table refreshes and pages
    page.get_by_label("Select all on this page").check()
    on_page = row_names(page)
    expect(run).to_have_text(f"Run a job on {len(on_page)} devices")
    page.get_by_role("button", name="Clear selection").click()
    expect(run).to_be_hidden()
    # the filter itself as a job's selection
    expect(page.locator("#run-matching")).to_have_attribute("href", "/jobs/new?select=site%3Dhq")
    # a viewer gets no checkboxes and no job links
    viewer = dash.page(browser, "viewer")
    open_table(dash, viewer, "?select=site%3Dhq")
    expect(viewer.locator("#device-table input[type=checkbox]")).to_have_count(0)
    expect(viewer.locator("#run-picked, #run-matching")).to_have_count(0)


def test_device_supplied_markup_is_shown_as_text(browser: Browser, dash: Dashboard) -> None:
    codec = dash.devices[HOSTILE_CODEC]
    old = codec.state.model  # type: ignore[attr-defined]
    hostile = "<script>window.__pwned=1</script><b>bold</b>"
    codec.state.model = hostile  # type: ignore[attr-defined]
    try:
        page = dash.page(browser, "viewer")
        open_table(dash, page, f"?select=name%3D{HOSTILE_CODEC}")
        cell = page.locator("#device-table tbody td.reading-model")
        expect(cell).to_have_text(hostile, timeout=60_000)
        expect(cell.locator("b, script")).to_have_count(0)
        assert page.evaluate("window.__pwned") is None
    finally:
        codec.state.model = old  # type: ignore[attr-defined]
