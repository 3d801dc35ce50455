"""The authorization matrix's server (authz_...), imported by conftest.py.

The real app as ``avctl serve`` wires it (`ServerRuntime._build`: the SQL job store and audit log,
the job executor, the inventory watcher, the access settings) on a real SQLite file, served by uvicorn
on 127.0.0.1 from its own event loop in a thread. Only the poll loop is not started: every request
an emulator logs then comes from a request of the test, so "a refused request sends nothing" is a
count that cannot be disturbed by a poll. The access clock is the test's (sessions, tokens expire
when the test moves it).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import text

from avctl.db import Database
from avctl.emulator.core import EmulatedDevice, EmulatorThread, emulator_class
from avctl.server.access import tokens, users
from avctl.server.access.settings import AccessSettings
from avctl.server.config import ServerConfig
from avctl.server.context import ServerContext
from avctl.server.runtime import ServerRuntime
from tests.server.access_fixtures import AccessClock
from tests.server.harness import wait_for

AUTHZ_PASSWORD = "authz-users-pw-Qm27"
DEVICE_PASSWORD = "authz-fleet-pw-4Lp"
IN_SITE, OUT_SITE = "branch", "hq"
#: (name, site): the scoped users' site, and the other one
AUTHZ_DEVICES = (("br-codec-1", IN_SITE), ("br-codec-2", IN_SITE), ("hq-codec-1", OUT_SITE),
                 ("hq-codec-2", OUT_SITE))
RULES = ("rules:\n  - {name: offline, when: offline for 5m, severity: critical}\n"
         "  - {name: old-firmware, when: 'firmware != \"9.9.9\"', severity: warning,\n"
         "     scope: 'name=hq-codec-1|hq-codec-2'}\n")

#: what a refused request must leave as it was: every row (the audit log, append-only and the largest
#: table, by its count and last id; api_tokens without last_used, which records that a valid token
#: was seen)
SNAPSHOT_TABLES = {
    "jobs": "SELECT * FROM jobs", "job_devices": "SELECT * FROM job_devices", "outcomes": "SELECT * FROM outcomes",
    "claims": "SELECT * FROM claims", "audit": "SELECT count(*), max(id) FROM audit",
    "device_state": "SELECT * FROM device_state",
    "events": "SELECT * FROM events", "alerts": "SELECT * FROM alerts", "notifications": "SELECT * FROM notifications",
    "users": "SELECT * FROM users",
    "api_tokens": "SELECT id, name, user_id, token_hash, prefix, created, expires, revoked FROM api_tokens",
}


class _NoCookies(requests.Session):
    """Sends only the credentials a request names: a login's Set-Cookie is never kept and replayed."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False  # no proxy from the environment: 127.0.0.1 only
        self.cookies = requests.cookies.RequestsCookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
        # a kept-alive connection to uvicorn waits ~40 ms per request here (delayed ACK); a new one 2 ms
        self.headers["Connection"] = "close"


HTTP = _NoCookies()


@dataclass
class AuthzServer:
    url: str
    runtime: ServerRuntime
    db: Database
    clock: AccessClock
    devices: dict[str, EmulatedDevice]
    #: made by the matrix as it goes (unique names)
    counter: list[int] = field(default_factory=lambda: [0])

    @property
    def ctx(self) -> ServerContext:
        return self.runtime.ctx

    def call(self, method: str, path: str, headers: dict[str, str] | None = None, json: Any = None,
             **kw: Any) -> requests.Response:
        return HTTP.request(method, self.url + path, headers=headers or {}, json=json, timeout=60, **kw)

    def unique(self, stem: str) -> str:
        self.counter[0] += 1
        return f"{stem}-{self.counter[0]}"

    def add_user(self, name: str, role: str, sites: tuple[str, ...] = ()) -> None:
        users.add(self.db, name, AUTHZ_PASSWORD, role, sites, clock=self.clock)

    def login(self, name: str) -> dict[str, str]:
        """A new browser session: its cookie and CSRF header."""
        r = self.call("POST", "/api/v1/auth/login", json={"name": name, "password": AUTHZ_PASSWORD})
        assert r.status_code == 200, r.text
        return {"Cookie": f"avctl_session={r.cookies['avctl_session']}", "X-CSRF-Token": r.json()["csrf_token"]}

    def token(self, user: str, *, expires: float | None = None) -> tuple[int, str]:
        issued = tokens.create(self.db, user, self.unique("t"), expires, clock=self.clock)
        return issued.info.id, issued.secret

    def snapshot(self) -> dict[str, Any]:
        """Every row a refused request must not touch, and every request each emulator has logged."""
        with self.db.session() as s:
            rows: dict[str, Any] = {t: s.execute(text(q)).all() for t, q in SNAPSHOT_TABLES.items()}
        rows["device requests"] = {n: d.requests.total for n, d in self.devices.items()}
        return rows

    def new_rows(self, table: str, before: dict[str, Any]) -> list[Any]:
        """The rows of `table` (audit or jobs) added since the snapshot `before`."""
        if table == "audit":
            last = before["audit"][0][1] or 0
            with self.db.session() as s:
                return list(s.execute(text("SELECT * FROM audit WHERE id > :last"), {"last": last}).all())
        return [row for row in self.snapshot()[table] if row not in before[table]]

    def settle(self) -> None:
        """Wait until no job runs (an allowed request's job must not count as a later refused one's)."""
        wait_for(lambda: all(j.effective_state != "running" for j in self.ctx.jobs.list_jobs(limit=50)),
                 within=60, what="the jobs to end")


def _start(runtime: ServerRuntime, clock: AccessClock, sock: socket.socket) -> Any:
    """In the server's loop: `ServerRuntime.run` without its signal handlers and the poll loop."""

    async def start() -> tuple[Any, asyncio.Task[None]]:
        runtime._build()
        runtime.app.state.access = AccessSettings(clock=clock)
        runtime.watcher.load_first()
        await runtime.executor.jobs.start()
        server = runtime._uvicorn(None)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            assert not serving.done(), serving.result()
            await asyncio.sleep(0.01)
        return server, serving

    return start()


@pytest.fixture
def authz_server(emulators: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 access_fast_hashes: None) -> Iterator[AuthzServer]:
    monkeypatch.setenv("AUTHZ_FLEET_PW", DEVICE_PASSWORD)
    devices: dict[str, EmulatedDevice] = {}
    lines = ["defaults: {password: env:AUTHZ_FLEET_PW}", "devices:"]
    for name, site in AUTHZ_DEVICES:
        dev = devices[name] = emulators.add(emulator_class("videoos")(name, password=DEVICE_PASSWORD))
        dev.faults.reboot_seconds = 0
        lines.append(f"  {name}: {{family: videoos, address: '127.0.0.1:{dev.port}', site: {site}}}")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("\n".join(lines) + "\n")
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    runtime = ServerRuntime(ServerConfig(inventory=str(inventory), db=str(tmp_path / "server.db"),
                                         listen=f"127.0.0.1:{port}", http=True, rules=str(rules)))
    clock = AccessClock()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="avctl-authz-server", daemon=True)
    thread.start()
    server, serving = asyncio.run_coroutine_threadsafe(_start(runtime, clock, sock), loop).result(60)

    async def stop() -> None:
        server.should_exit = True
        await serving
        await runtime.executor.jobs.stop()

    try:
        yield AuthzServer(f"http://127.0.0.1:{port}", runtime, runtime.db, clock, devices)
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
        sock.close()
        runtime.db.close()
