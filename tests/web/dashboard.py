"""The dashboard under test: `avctl serve` as a real process (plain HTTP on loopback) over an
emulated fleet of every family in two sites, with one user per role, and a browser signed in as one.

The emulators run in the test's process (`EmulatorThread`), so a test flips their fault switches
and reads their state; the server polls them like real devices.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, expect

from avctl.emulator.core import EmulatedDevice, EmulatorThread, emulator_class

from ..server.harness import ServerProcess, run_cli

FLEET_PASSWORD = "web-fleet-pw-7Hq2"
INTERVAL = "2s"


@dataclass(frozen=True)
class Spot:
    """Where an emulated device stands: its name, family, site, room and tags."""

    name: str
    family: str
    site: str
    room: str
    tags: tuple[str, ...] = ()


#: the default fleet: two sites, three rooms, every family
FLEET = (
    Spot("hq-board-codec", "videoos", "hq", "boardroom"),
    Spot("hq-board-phone", "polyuc", "hq", "boardroom"),
    Spot("hq-board-pod", "solstice", "hq", "boardroom"),
    Spot("hq-huddle-codec", "videoos", "hq", "huddle-2"),
    Spot("hq-huddle-phone", "polyuc", "hq", "huddle-2"),
    Spot("br-lobby-pod", "solstice", "branch", "lobby", ("lobby",)),
    Spot("br-lobby-phone", "polyuc", "branch", "lobby", ("lobby",)),
)

#: (user, role, sites): one user per role, and a help-desk user limited to one site
USERS = (
    ("admin", "admin", ""),
    ("operator", "operator", ""),
    ("helpdesk", "helpdesk", ""),
    ("viewer", "viewer", ""),
    ("hq-helpdesk", "helpdesk", "hq"),
)


def password_of(user: str) -> str:
    return f"web-{user}-pw-5Lx8"


@dataclass
class Dashboard:
    server: ServerProcess
    emulators: EmulatorThread
    devices: dict[str, EmulatedDevice]
    spots: dict[str, Spot]
    home: Path
    inventory: Path
    rules: Path | None = None
    contexts: list[BrowserContext] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.server.base

    def url(self, path: str) -> str:
        return self.server.base + path

    def write_inventory(self, spots: Sequence[Spot] | None = None) -> None:
        """The inventory of `spots` (default: the dashboard's), written whole then renamed: the
        server's watcher never reads half a file."""
        chosen = list(spots) if spots is not None else list(self.spots.values())
        lines = ["defaults: {password: 'file:fleet.password'}", "devices:"]
        for spot in chosen:
            dev = self.devices[spot.name]
            ports = {k: v for k, v in getattr(dev, "extra_ports", {}).items() if v}
            extra = f", ports: {json.dumps(ports)}" if ports else ""
            tags = f", tags: {json.dumps(list(spot.tags))}" if spot.tags else ""
            lines.append(f"  {spot.name}: {{family: {spot.family}, address: '{dev.host}:{dev.port}', "
                         f"site: {spot.site}, room: {json.dumps(spot.room)}{tags}{extra}}}")
        tmp = self.inventory.with_name(self.inventory.name + ".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(self.inventory)

    def page(self, browser: Browser, user: str | None = "admin") -> Page:
        """A new browser context (its own cookies), signed in as `user` (None: not signed in)."""
        context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=self.base)
        self.contexts.append(context)
        page = context.new_page()
        if user is not None:
            login(page, user)
        return page

    def close(self) -> None:
        try:
            for context in self.contexts:
                # a module's browser may have ended first (fixture teardown follows set-up order,
                # which differs when tests are spread over workers): its contexts went with it
                if context.browser is not None and context.browser.is_connected():
                    context.close()
        finally:
            self.server.stop()


def login(page: Page, user: str, password: str | None = None) -> None:
    page.goto("/login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password or password_of(user))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible(timeout=30_000)


def start_dashboard(tmp: Path, emulators: EmulatorThread, *, fleet: Sequence[Spot] = FLEET,
                    rules: str | None = None, args: Sequence[str] = ()) -> Dashboard:
    """The emulated `fleet`, its inventory, the users, and `avctl serve` on them (started)."""
    home = tmp / "home"
    db = str(home / "avctl.db")
    devices = {s.name: emulators.add(emulator_class(s.family)(s.name, password=FLEET_PASSWORD)) for s in fleet}
    (tmp / "fleet.password").write_text(FLEET_PASSWORD + "\n")
    for user, role, sites in USERS:
        made = run_cli(home, "users", "add", user, "--role", role, *(["--sites", sites] if sites else []),
                       "--password-stdin", "--db", db, stdin=password_of(user) + "\n")
        assert made.returncode == 0, made.stderr
    rules_path = None
    if rules is not None:
        rules_path = tmp / "rules.yaml"
        rules_path.write_text(rules)
    dash = Dashboard(server=ServerProcess(home, ["-i", str(tmp / "fleet.yaml"), "--db", db, "--interval", INTERVAL,
                                                 "--min-interval", f"solstice={INTERVAL}",
                                                 *(["--rules", str(rules_path)] if rules_path else []), *args],
                                          http=True),
                     emulators=emulators, devices=devices, spots={s.name: s for s in fleet}, home=home,
                     inventory=tmp / "fleet.yaml", rules=rules_path)
    dash.write_inventory()
    dash.server.start()
    return dash


def running(dash: Dashboard) -> Iterator[Dashboard]:
    """For fixtures: the dashboard until the test (or module) is done."""
    try:
        yield dash
    finally:
        dash.close()
