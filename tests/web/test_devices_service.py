"""The device table without a browser: saved views on SQLite and PostgreSQL (migration 0002, each
user's own, removed with the user), CSV cells, and the table's speed with 15,000 devices (a real
SQLite file, the real app in this process on a loopback socket)."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from alembic import command
from alembic.config import Config
from fastapi import Request
from sqlalchemy import insert, inspect, select

from avctl.db import Database, open_database
from avctl.db.engine import MIGRATIONS
from avctl.db.models import DeviceState, SavedView
from avctl.errors import UsageError
from avctl.fleet.audit import AuditLog
from avctl.fleet.inventory import DeviceEntry, Inventory
from avctl.fleet.store import SqliteJobStore
from avctl.server.access import users
from avctl.server.access.deps import current_principal
from avctl.server.api.app import create_app
from avctl.server.context import ServerContext
from avctl.server.jobs import JobProgress, LocalJobExecutor
from avctl.server.metrics import ServerMetrics
from avctl.server.model import Principal
from avctl.server.service import NotFound, views
from avctl.server.web import mount_web
from avctl.server.web.pages.devices import csv_cell
from avctl.transport.address import Address
from avctl.transport.tls import KnownHosts, TLSPolicy

from ..server.conftest import _serve

FAMILIES = ("videoos", "polyuc", "solstice")


def context(db: Database, tmp: Path, devices: tuple[DeviceEntry, ...] = ()) -> ServerContext:
    """The server's context over `db` and an inventory of `devices` (never contacted)."""
    store = SqliteJobStore(tmp / "journal.db")
    progress = JobProgress()
    inventory = Inventory(devices)
    return ServerContext(db=db, inventory=lambda: inventory,
                         executor=LocalJobExecutor(store=store, audit=lambda: AuditLog(tmp / "journal.db"),
                                                   progress=progress, tls=TLSPolicy.pinned(KnownHosts(tmp / "known"))),
                         jobs=store, audit=lambda: AuditLog(tmp / "journal.db"), rules=list, metrics=ServerMetrics(),
                         progress=progress)


@pytest.fixture
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    from argon2 import PasswordHasher

    monkeypatch.setattr(users, "HASHER", PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1))


def principal_of(info: users.UserInfo) -> Principal:
    return info.principal("session")


def test_saved_views_are_each_users_own_and_go_with_the_user(any_db_url: str, tmp_path: Path,
                                                             cheap_hashes: None) -> None:
    db = open_database(any_db_url)
    try:
        ctx = context(db, tmp_path)
        alice = principal_of(users.add(db, "alice", "alice-pw-long-enough", "helpdesk"))
        bob = principal_of(users.add(db, "bob", "bob-pw-long-enough-2", "viewer"))
        saved = views.save_view(ctx, alice, " lobby phones ", selection="tag=lobby,family=polyuc", state="online",
                                sort="-last_poll")
        assert (saved.name, saved.selection, saved.state, saved.sort) == (
            "lobby phones", "tag=lobby,family=polyuc", "online", "-last_poll")
        # saved again under the same name: replaced, not doubled
        again = views.save_view(ctx, alice, "lobby phones", selection="tag=lobby")
        assert again.id == saved.id and views.list_views(ctx, alice) == [again]
        assert views.list_views(ctx, bob) == []
        with pytest.raises(NotFound):
            views.get_view(ctx, bob, saved.id)
        with pytest.raises(NotFound):
            views.delete_view(ctx, bob, saved.id)
        # checked as the device list checks a request: a saved view always opens
        for bad in ({"selection": "colour=red"}, {"state": "sleepy"}, {"sort": "password"}):
            with pytest.raises(UsageError):
                views.save_view(ctx, alice, "bad", **bad)  # type: ignore[arg-type]
        with pytest.raises(UsageError):
            views.save_view(ctx, alice, "\x1b[2Jwiped")
        views.save_view(ctx, bob, "mine")
        # a removed user's views are removed with them (the database cascades, on both engines)
        users.remove(db, "alice")
        with db.session() as s:
            assert [r.name for r in s.scalars(select(SavedView))] == ["mine"]
    finally:
        db.close()


def test_a_database_at_0001_gets_the_views_table_and_keeps_its_rows(any_db_url: str, cheap_hashes: None) -> None:
    db = open_database(any_db_url, migrate=False)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.commit()
    assert "saved_views" not in inspect(db.engine).get_table_names()
    users.add(db, "carol", "carol-pw-long-enough", "admin")
    db.close()
    db = open_database(any_db_url)
    try:
        assert "saved_views" in inspect(db.engine).get_table_names()
        assert [u.name for u in users.list_users(db)] == ["carol"]
    finally:
        db.close()


def test_csv_cells_that_a_spreadsheet_would_run_are_defused() -> None:
    assert [csv_cell(v) for v in ("=1+2", "+1", "-cmd", "@SUM(A1)", "\tx", "plain", "a=b")] == [
        "'=1+2", "'+1", "'-cmd", "'@SUM(A1)", "'\tx", "plain", "a=b"]
    assert [csv_cell(v) for v in (-3.5, 0, True, None)] == [-3.5, 0, "true", ""]


# --- 15,000 devices ---------------------------------------------------------------------------------

BIG = 15_000
#: a page of the table must answer within this (measured: tens of milliseconds; the bound is
#: generous so a loaded machine passes, and still far below what a user would wait for)
PAGE_SECONDS = 2.0


def big_fleet() -> tuple[DeviceEntry, ...]:
    return tuple(DeviceEntry(name=f"dev-{i:05d}", family=FAMILIES[i % 3], address=Address("127.0.0.1", 9),
                             site=f"site-{i % 20:02d}", room=f"room-{i // 3:05d}",
                             tags=frozenset({"lobby"}) if i % 7 == 0 else frozenset())
                 for i in range(BIG))


def fill_states(db: Database, fleet: tuple[DeviceEntry, ...], now: float) -> None:
    readings = json.dumps({"model": "StudioX50", "firmware": "4.6.2", "uptime": 86_400.5, "in_call": False,
                           "mic_muted": False, "sip_registered": True, "cert_days_left": 200.2})
    rows = [{"device": d.name, "family": d.family, "site": d.site, "room": d.room, "address": str(d.address),
             "state": "offline" if i % 50 == 0 else "online", "since": now - 3600, "last_poll": now - i % 60,
             "last_ok": now - i % 60, "readings": readings, "consecutive_failures": 0}
            for i, d in enumerate(fleet)]
    with db.session() as s:
        s.execute(insert(DeviceState), rows)


@pytest.fixture
def big_table(tmp_path: Path) -> Iterator[str]:
    db = open_database(str(tmp_path / "big.db"))
    fleet = big_fleet()
    fill_states(db, fleet, time.time())
    app = create_app(context(db, tmp_path, fleet))
    mount_web(app)

    def admin(request: Request) -> Principal:
        return Principal(user_id=1, user="admin", role="admin")

    app.dependency_overrides[current_principal] = admin
    server, thread, url = _serve(app)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(30)
        db.close()


def test_the_table_answers_quickly_with_15000_devices(big_table: str) -> None:
    http = requests.Session()
    http.trust_env = False
    timings = {}
    for label, query in (("first page", ""), ("filtered", "?select=site%3Dsite-03%2Cfamily%3Dpolyuc&state=online"),
                         ("sorted, deep page", "?sort=-last_poll&page=120&size=100")):
        http.get(big_table + "/devices" + query, timeout=60)  # warm (the first request imports the templates)
        t0 = time.perf_counter()
        r = http.get(big_table + "/devices" + query, timeout=60)
        timings[label] = time.perf_counter() - t0
        assert r.status_code == 200, r.text[:500]
        assert r.text.count('class="device-link"') == (100 if "size=100" in query else 50) or label == "filtered"
    print("15,000 devices: " + ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in timings.items()))
    assert max(timings.values()) < PAGE_SECONDS, timings
    # the export is every matching device, streamed
    t0 = time.perf_counter()
    with http.get(big_table + "/devices.csv?select=tag%3Dlobby", timeout=120, stream=True) as r:
        assert r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.content.decode())))
    print(f"CSV of {len(rows)} devices: {1000 * (time.perf_counter() - t0):.0f} ms")
    assert len(rows) == len([i for i in range(BIG) if i % 7 == 0])
