"""Fixtures of the server's tests, named after their part: poll_* (the poller), api_* (the REST API on a
real uvicorn server on loopback)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn
from fastapi import Request
from fastapi.exceptions import HTTPException

from avctl.db import Database, open_database
from avctl.emulator.core import EmulatedDevice, EmulatorThread, emulator_class
from avctl.fleet.audit import AuditLog
from avctl.fleet.inventory import Inventory, load_inventory
from avctl.fleet.store import SqliteJobStore
from avctl.server.access.deps import current_principal
from avctl.server.api.app import create_app
from avctl.server.context import ServerContext
from avctl.server.jobs import JobProgress, LocalJobExecutor
from avctl.server.metrics import ServerMetrics
from avctl.server.model import ROLES, Principal
from avctl.transport.tls import KnownHosts, TLSPolicy

POLL_PASSWORD = "poll-pw-Kx73q"


@pytest.fixture
def poll_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """The emulators' password, where the inventory entries' ``env:POLL_PW`` finds it."""
    monkeypatch.setenv("POLL_PW", POLL_PASSWORD)
    return POLL_PASSWORD


@pytest.fixture
def poll_db(tmp_path: Path) -> Iterator[Database]:
    """A real SQLite file with the schema."""
    db = open_database(str(tmp_path / "poll.db"))
    yield db
    db.close()


API_PASSWORD = "api-fleet-pw-7Qx"
#: (name, family, site, room): two sites, three families
API_DEVICES = (
    ("hq-codec-1", "videoos", "hq", "board"),
    ("hq-codec-2", "videoos", "hq", "lobby"),
    ("hq-phone-1", "polyuc", "hq", "lobby"),
    ("br-codec-1", "videoos", "branch", "huddle"),
    ("br-codec-2", "videoos", "branch", "training"),
)


def api_principal(request: Request) -> Principal:
    """Stands in for the access module's authentication: who asks comes from test headers.

    ``X-Test-Role`` (none: 401, as without a session or token), ``X-Test-Sites`` (comma list),
    ``X-Test-User``, ``X-Test-Via`` (session | token).
    """
    role = request.headers.get("x-test-role")
    if role not in ROLES:
        raise HTTPException(status_code=401, detail="not authenticated")
    sites = frozenset(s for s in request.headers.get("x-test-sites", "").split(",") if s)
    return Principal(user_id=1, user=request.headers.get("x-test-user", role), role=role,  # type: ignore[arg-type]
                     sites=sites, via=request.headers.get("x-test-via", "session"))


#: no proxy from the environment: the tests talk to 127.0.0.1 only
HTTP = requests.Session()
HTTP.trust_env = False


def as_(role: str, *sites: str, user: str | None = None, via: str = "session") -> dict[str, str]:
    headers = {"X-Test-Role": role, "X-Test-Via": via}
    if sites:
        headers["X-Test-Sites"] = ",".join(sites)
    if user:
        headers["X-Test-User"] = user
    return headers


@dataclass
class ApiServer:
    url: str
    ctx: ServerContext
    db: Database
    db_path: Path
    devices: dict[str, EmulatedDevice]
    inventory_path: Path
    rules: list[dict[str, Any]] = field(default_factory=list)

    def get(self, path: str, who: dict[str, str] | None = None, **kw: Any) -> requests.Response:
        return HTTP.get(self.url + path, headers=who or {}, timeout=30, **kw)

    def post(self, path: str, who: dict[str, str] | None = None, json: Any = None, **kw: Any) -> requests.Response:
        return HTTP.post(self.url + path, headers=who or {}, json=json if json is not None else {},
                             timeout=60, **kw)

    def audit_rows(self) -> list[Any]:
        with AuditLog(self.db_path) as audit:
            return audit.query(limit=None)


def _serve(app: Any) -> tuple[uvicorn.Server, threading.Thread, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="avctl-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.01)
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture
def api_server(emulators: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiServer]:
    """The API over a real SQLite file and five emulated devices (three families, two sites)."""
    monkeypatch.setenv("API_FLEET_PW", API_PASSWORD)
    devices = {name: emulators.add(emulator_class(family)(name, password=API_PASSWORD))
               for name, family, _site, _room in API_DEVICES}
    lines = ["defaults: {password: env:API_FLEET_PW}", "devices:"]
    for name, family, site, room in API_DEVICES:
        lines.append(f"  {name}: {{family: {family}, address: '127.0.0.1:{devices[name].port}', site: {site}, "
                     f"room: {room}, tags: [{'spare' if name.endswith('-2') else 'live'}]}}")
    inventory_path = tmp_path / "inventory.yaml"
    inventory_path.write_text("\n".join(lines) + "\n")
    inventory: Inventory = load_inventory(inventory_path)
    db_path = tmp_path / "server.db"
    db = open_database(str(db_path))
    store = SqliteJobStore(db_path)
    progress = JobProgress()
    executor = LocalJobExecutor(store=store, audit=lambda: AuditLog(db_path), progress=progress,
                                tls=TLSPolicy.pinned(KnownHosts(tmp_path / "known_devices")))
    rules: list[dict[str, Any]] = [{"name": "offline", "when": "offline for 5m", "severity": "critical"}]
    ctx = ServerContext(db=db, inventory=lambda: inventory, executor=executor, jobs=store,
                        audit=lambda: AuditLog(db_path), rules=lambda: rules, metrics=ServerMetrics(),
                        progress=progress, downloads=tmp_path / "downloads")
    app = create_app(ctx)
    app.dependency_overrides[current_principal] = api_principal
    server, thread, url = _serve(app)
    try:
        yield ApiServer(url, ctx, db, db_path, devices, inventory_path, rules)
    finally:
        server.should_exit = True
        thread.join(30)
        store.close()
        db.close()


# the access part's fixtures live in their own module: FastAPI must read its dummy endpoints'
# annotations unpostponed (no `from __future__ import annotations` there)
from tests.server.access_fixtures import (  # noqa: E402
    access_fast_hashes,
    access_server,
    access_server_factory,
)

__all__ = ["access_fast_hashes", "access_server", "access_server_factory"]
from tests.server.authz_fixtures import authz_server  # noqa: E402

__all__ += ["authz_server"]
