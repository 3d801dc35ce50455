"""Fixtures of the access tests (access_...), imported by conftest.py.

No ``from __future__ import annotations`` here: FastAPI reads the dummy endpoints' annotations,
which name a dependency made in a local scope.
"""

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pytest
import uvicorn
from argon2 import PasswordHasher
from fastapi import Depends, FastAPI

from avctl.db import Database, open_database
from avctl.server.access import users
from avctl.server.access.deps import current_principal, require
from avctl.server.access.routes import router
from avctl.server.access.settings import AccessSettings
from avctl.server.model import PERMISSIONS, Principal

#: every permission a role can have
ACCESS_PERMISSIONS = sorted(set().union(*PERMISSIONS.values()))


@dataclass
class AccessClock:
    """The clock the access code reads (sessions, tokens, rate limit): moved by the test, never slept."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class AccessServer:
    url: str
    db: Database
    db_path: Path
    clock: AccessClock
    #: what the dummy state-changing endpoints did: (permission, user) per request that got through
    effects: list[tuple[str, str]] = field(default_factory=list)


def create_test_app(db: Database, settings: AccessSettings, effects: list[tuple[str, str]]) -> FastAPI:
    """The access routes plus, per permission, a reading and a state-changing dummy endpoint."""
    app = FastAPI()
    app.state.db = db
    app.state.access = settings
    app.include_router(router)

    def add(permission: str) -> None:
        Allowed = Annotated[Principal, Depends(require(permission))]

        @app.get(f"/test/{permission}")
        def look(principal: Allowed) -> dict[str, str]:
            return {"user": principal.user}

        @app.api_route(f"/test/{permission}", methods=["POST", "PUT", "PATCH", "DELETE"])
        def change(principal: Allowed) -> dict[str, str]:
            effects.append((permission, principal.user))
            return {"user": principal.user}

    for permission in ACCESS_PERMISSIONS:
        add(permission)

    @app.get("/test/me")
    def me(principal: Annotated[Principal, Depends(current_principal)]) -> dict[str, Any]:
        return {"user": principal.user, "role": principal.role, "sites": sorted(principal.sites),
                "via": principal.via, "audit_name": principal.audit_name}

    return app


def _serve(app: FastAPI) -> Iterator[str]:
    """Run `app` under a real uvicorn on 127.0.0.1 (a free port) in a thread; its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:  # start-up only: no test timing depends on this
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture
def access_fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2id parameters: the tests log in hundreds of times on two shared cores. (One test
    checks the real parameters; the CLI tests run with them.)"""
    cheap = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    monkeypatch.setattr(users, "HASHER", cheap)
    monkeypatch.setattr(users, "_DUMMY_HASH", cheap.hash("avctl: no such user"))


@pytest.fixture
def access_server_factory(tmp_path: Path, access_fast_hashes: None) -> Iterator[Callable[..., AccessServer]]:
    """Start a test server on a fresh SQLite file (or `db_path`): ``factory(db_path, **AccessSettings fields)``."""
    stack: list[Iterator[str]] = []
    opened: list[Database] = []

    def start(db_path: Path | None = None, **settings: Any) -> AccessServer:
        path = db_path or tmp_path / f"access{len(opened)}.db"
        db = open_database(str(path))
        opened.append(db)
        clock = AccessClock()
        effects: list[tuple[str, str]] = []
        runner = _serve(create_test_app(db, AccessSettings(clock=clock, **settings), effects))
        stack.append(runner)
        return AccessServer(url=next(runner), db=db, db_path=path, clock=clock, effects=effects)

    yield start
    for runner in stack:
        next(runner, None)
    for db in opened:
        db.close()


@pytest.fixture
def access_server(access_server_factory: Callable[..., AccessServer]) -> AccessServer:
    return access_server_factory()
