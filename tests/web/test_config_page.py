"""The Configuration page in a real Chromium against `avctl serve` over emulators: an operator's
"check now" shows exactly the key changed behind avctl's back, on exactly that device, with where
its desired value is written; the device page shows it too; a viewer sees the report, not the button."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from avctl.emulator.core import EmulatorThread

from ..server.harness import run_cli, wait_for
from ..server.test_config_drift_e2e import BT, CONFIG
from .dashboard import Dashboard, running, start_dashboard

DRIFTED = "hq-board-codec"


def write_desired(dash: Dashboard) -> str:
    """The dashboard's inventory with desired configuration, and a tag that shows it was read."""
    lines = ["defaults:", "  password: 'file:fleet.password'", *CONFIG.rstrip("\n").splitlines(), "devices:"]
    for spot in dash.spots.values():
        dev = dash.devices[spot.name]
        ports = {k: v for k, v in getattr(dev, "extra_ports", {}).items() if v}
        extra = f", ports: {json.dumps(ports)}" if ports else ""
        lines.append(f"  {spot.name}: {{family: {spot.family}, address: '{dev.host}:{dev.port}', "
                     f"site: {spot.site}, room: {json.dumps(spot.room)}, tags: [cfg]{extra}}}")
    tmp = dash.inventory.with_name(dash.inventory.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(dash.inventory)
    return str(dash.inventory)


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory, module_emulators: EmulatorThread) -> Iterator[Dashboard]:
    yield from running(start_dashboard(tmp_path_factory.mktemp("config-page"), module_emulators))


def desired_in_force(dash: Dashboard, page: Page) -> None:
    """The inventory with desired state written, the fleet brought to it, the server reading it."""
    inv = write_desired(dash)
    done = run_cli(dash.home, "config", "apply", "-i", inv, "--yes", "--store", str(dash.home / "avctl.db"))
    assert done.returncode == 0, done.stdout + done.stderr
    wait_for(lambda: page.request.get("/api/v1/devices?select=tag%3Dcfg").json()["total"] == len(dash.spots),
             what="the server reading the inventory with desired configuration")


def test_check_now_shows_the_drifted_key(browser: Browser, dash: Dashboard) -> None:
    page = dash.page(browser, "operator")
    desired_in_force(dash, page)
    dash.devices[DRIFTED].state.config[BT]["value"] = "True"  # behind avctl's back

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Configuration").click()
    expect(page.get_by_role("heading", name="Configuration")).to_be_visible()
    # the answer to the click says the check started; the page may already show the finished
    # check by the time it is looked at (the section fetches itself again when the job ends)
    with page.expect_response(lambda r: r.url.endswith("/config/check")) as answer:
        page.get_by_role("button", name="Check now").click()
    assert "Check started" in answer.value.text()
    # the section fetches itself again when the job ends
    rows = page.locator("#drift-rows tbody tr")
    expect(rows).to_have_count(1, timeout=90_000)
    expect(rows.first).to_contain_text(DRIFTED)
    expect(rows.first).to_contain_text(BT)
    expect(rows.first).to_contain_text('"True"')
    expect(rows.first).to_contain_text('"False"')
    expect(rows.first).to_contain_text(f"{dash.inventory}:")
    expect(page.locator("#drift-counts tbody td")).to_have_text([BT, "1"])
    expect(page.locator("#drift-summary")).to_contain_text(f"1 of {len(dash.spots)} devices drifted")

    page.locator("#drift-rows").get_by_role("link", name=DRIFTED).click()
    section = page.locator("#device-config")
    expect(section.locator("#device-drift tbody tr")).to_have_count(1)
    expect(section.locator("#device-drift")).to_contain_text(BT)
    expect(section.locator("#device-snapshots tbody tr").first).to_contain_text("pre-apply")

    viewer = dash.page(browser, "viewer")
    viewer.goto("/config")
    expect(viewer.locator("#drift-rows tbody tr")).to_have_count(1)
    expect(viewer.get_by_role("button", name="Check now")).to_have_count(0)
