"""The dashboard's frame in a real Chromium: signing in and out, the login redirect, live updates
over server-sent events, CSRF, security headers."""

from __future__ import annotations

import re

import requests
from playwright.sync_api import Browser, expect

from .browser import screenshot
from .dashboard import FLEET, Dashboard, login, password_of


def test_sign_in_wrong_password_then_right(browser: Browser, dashboard: Dashboard) -> None:
    page = dashboard.page(browser, user=None)
    page.goto("/?site=hq")
    # not signed in: the login page, which will come back here
    expect(page).to_have_url(re.compile(r"/login\?next=%2F%3Fsite%3Dhq$"))
    page.get_by_label("User name").fill("viewer")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#login-error")).to_have_text("wrong user name or password")
    page.get_by_label("Password").fill(password_of("viewer"))
    page.get_by_role("button", name="Sign in").click()
    # argon2 checks the password: seconds on a loaded 2-core machine, beyond expect's default 5 s
    expect(page).to_have_url(dashboard.url("/?site=hq"), timeout=30_000)
    expect(page.get_by_role("navigation", name="Main")).to_contain_text("viewer")
    # a viewer's menu has no Admin
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    page.get_by_role("button", name="Sign out").click()
    # the sign-out page, or (when a live refresh raced the sign-out) the login that would come back here
    expect(page).to_have_url(re.compile(r"/login(\?next=%2F.*)?$"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))


def test_overview_counts_and_live_offline(browser: Browser, dashboard: Dashboard) -> None:
    page = dashboard.page(browser, "admin")
    page.goto("/")
    expect(page.locator("#count-total")).to_have_text(str(len(FLEET)))
    expect(page.locator("#count-online")).to_have_text(str(len(FLEET)), timeout=60_000)
    page.evaluate("window.__same_page = true")  # gone if the page reloads
    device = dashboard.devices["br-lobby-phone"]
    device.faults.down = True
    try:
        expect(page.locator("#count-offline")).to_have_text("1", timeout=60_000)
        expect(page.locator("#count-online")).to_have_text(str(len(FLEET) - 1))
        assert page.evaluate("window.__same_page") is True
    finally:
        device.faults.down = False
    expect(page.locator("#count-online")).to_have_text(str(len(FLEET)), timeout=90_000)


def test_state_changing_request_without_csrf_token_is_refused(browser: Browser, dashboard: Dashboard) -> None:
    page = dashboard.page(browser, "admin")
    page.goto("/")
    # the page's own session cookie goes along; only the X-CSRF-Token header is missing
    status = page.evaluate("""async () => (await fetch('/api/v1/alerts/1/ack', {method: 'POST',
        credentials: 'same-origin'})).status""")
    assert status == 403
    with_token = page.evaluate("""async () => (await fetch('/api/v1/alerts/1/ack', {method: 'POST',
        credentials: 'same-origin',
        headers: {'X-CSRF-Token': document.cookie.match(/avctl_csrf=([^;]+)/)[1]}})).status""")
    assert with_token == 404  # past the CSRF check: there is no alert 1


def test_pages_carry_security_headers_and_no_inline_script(dashboard: Dashboard) -> None:
    r = requests.get(dashboard.url("/login"), timeout=30)
    assert r.status_code == 200
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert not re.search(r"<script(?![^>]*\bsrc=)", r.text), "inline script on the login page"


def test_login_never_sends_to_another_site(browser: Browser, dashboard: Dashboard) -> None:
    page = dashboard.page(browser, user=None)
    page.goto("/login?next=//evil.example/x")
    login(page, "viewer")
    expect(page).to_have_url(dashboard.url("/"))


def test_dark_mode_and_tablet_width(browser: Browser, dashboard: Dashboard) -> None:
    context = browser.new_context(color_scheme="dark", viewport={"width": 768, "height": 1024},
                                  base_url=dashboard.base)
    dashboard.contexts.append(context)
    page = context.new_page()
    login(page, "admin")
    page.goto("/")
    expect(page.locator("#count-total")).to_have_text(str(len(FLEET)))
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    red, green, blue = (int(x) for x in re.findall(r"\d+", background)[:3])
    assert red + green + blue < 3 * 80, f"dark mode background is {background}"
    # nothing wider than a tablet's screen: the page does not scroll sideways
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "overview-dark-tablet")


def test_keyboard_skip_link_reaches_the_content(browser: Browser, dashboard: Dashboard) -> None:
    page = dashboard.page(browser, "viewer")
    page.goto("/")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#main$"))
    assert page.evaluate("document.activeElement.id") == "main"
