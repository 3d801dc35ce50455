"""The alert rules page of a server started without a rules file: it says how to start with one."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from .dashboard import Dashboard
from .test_web_adm import csrf_fetch


def test_without_a_rules_file_the_page_says_how_to_start_with_one(browser: Browser, dashboard: Dashboard) -> None:
    assert dashboard.rules is None
    page = dashboard.page(browser, "admin")
    page.goto("/alerts/rules")
    expect(page.locator("#rules-body")).to_contain_text("This server runs without alert rules")
    expect(page.locator("#rules-body")).to_contain_text("avctl serve -i fleet.yaml --rules rules.yaml")
    expect(page.locator("textarea")).to_have_count(0)
    assert csrf_fetch(page, "POST", "/alerts/rules", "digest=x&text=rules%3A%20%5B%5D%0A") == 409
    assert not (dashboard.home.parent / "rules.yaml").exists()
