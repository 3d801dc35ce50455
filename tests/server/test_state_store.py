"""The state store on a real SQLite file: current state, events, readings; the batching writer;
and the whole path from emulators through the poll engine into the database."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from sqlalchemy import func, select

from avctl.db.engine import Database
from avctl.db.models import DeviceState, Event, Reading
from avctl.emulator.core import EmulatorThread
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.fleet.inventory import DeviceEntry, parse_address
from avctl.redact import REDACTOR
from avctl.server.model import DeviceView, Observation
from avctl.server.state import StateStore, StateWriter

from .conftest import POLL_PASSWORD
from .polling import Clock, engine_for, entry_for, tick


def entry(name: str, *, site: str = "hq", room: str | None = "101", tags: frozenset[str] = frozenset({"t"}),
          port: int = 443) -> DeviceEntry:
    return DeviceEntry(name=name, family="videoos", address=parse_address(f"127.0.0.1:{port}"), site=site,
                       room=room, tags=tags)


def events(db: Database, device: str) -> list[tuple[str, str, object, object]]:
    with db.session() as s:
        rows = s.scalars(select(Event).where(Event.device == device).order_by(Event.id)).all()
        return [(r.kind, r.field, json.loads(r.old or "null"), json.loads(r.new or "null")) for r in rows]


def readings(db: Database, device: str, metric: str) -> list[float]:
    with db.session() as s:
        return list(s.scalars(select(Reading.value).where(Reading.device == device, Reading.metric == metric)
                              .order_by(Reading.id)))


def test_sync_inventory_adds_refreshes_and_marks_removed(poll_db: Database) -> None:
    clock = Clock(100.0)
    store = StateStore(poll_db, clock=clock)
    store.sync_inventory([entry("a"), entry("b")])
    assert [(v.name, v.state, v.since, v.site, v.tags) for v in store.views()] == [
        ("a", "unknown", 100.0, "hq", frozenset({"t"})), ("b", "unknown", 100.0, "hq", frozenset({"t"}))]
    clock.t = 200.0
    store.sync_inventory([entry("a", site="lab", room="7", port=8443)])
    a = store.view("a")
    assert a is not None and (a.site, a.room, a.address, a.since) == ("lab", "7", "127.0.0.1:8443", 100.0)
    assert [v.name for v in store.views()] == ["a"]
    with poll_db.session() as s:
        assert s.get(DeviceState, "b").removed == 200.0  # type: ignore[union-attr]
    # a fresh store on the same file (a restart) knows the rows; "b" comes back
    again = StateStore(poll_db, clock=clock)
    again.sync_inventory([entry("a"), entry("b")])
    assert [v.name for v in again.views()] == ["a", "b"]


def test_apply_writes_state_changes_events_and_numeric_readings(poll_db: Database) -> None:
    store = StateStore(poll_db)
    a = entry("a")
    store.sync_inventory([a])
    on1 = Observation("a", 10.0, "online", {"firmware": "1.0", "in_call": False, "uptime": 5.0, "volume": 40},
                      poll_seconds=0.2)
    on2 = Observation("a", 70.0, "online", {"firmware": "1.0", "in_call": True, "uptime": 65.0, "volume": 40})
    on3 = Observation("a", 130.0, "online", {"firmware": "2.0", "in_call": True, "uptime": 5.0, "volume": 41})
    views = store.apply([(a, on1), (a, on2)])
    assert [v.state for v in views] == ["online", "online"]
    assert views[-1].since == 10.0 and views[-1].last_ok == 70.0 and views[-1].readings["in_call"] is True
    store.apply([(a, on3)])
    REDACTOR.add("hunter2-Secret")
    off = Observation("a", 190.0, "offline", error="cannot connect\nwith hunter2-Secret " + "x" * 1000)
    off2 = Observation("a", 250.0, "offline", error="cannot connect")
    store.apply([(a, off)])
    [view] = store.apply([(a, off2)])
    assert view.state == "offline" and view.since == 190.0 and view.last_ok == 130.0
    assert view.readings["firmware"] == "2.0"  # the last readings stay while it is offline
    assert events(poll_db, "a") == [
        ("state", "state", "unknown", "online"),
        ("reading", "in_call", False, True),  # the first contact is not a change
        ("reading", "firmware", "1.0", "2.0"),
        ("state", "state", "online", "offline"),
    ]
    assert readings(poll_db, "a", "uptime") == [5.0, 65.0, 5.0]
    assert readings(poll_db, "a", "volume") == [40.0, 40.0, 41.0]
    assert readings(poll_db, "a", "in_call") == []  # a boolean is not a number
    with poll_db.session() as s:
        row = s.get(DeviceState, "a")
        assert row is not None and row.consecutive_failures == 2 and row.last_poll == 250.0
        first_error = s.scalars(select(Event.message).where(Event.field == "state", Event.new == '"offline"')).one()
    assert first_error is not None and "hunter2" not in first_error and "\n" not in first_error
    assert len(first_error) <= 300
    back = store.apply([(a, Observation("a", 310.0, "online", {"firmware": "2.0"}))])[0]
    assert (back.state, back.since, back.error) == ("online", 310.0, None)
    assert store.view("a") == back


def test_current_rows_are_snapshots_and_current_views_match_the_database(poll_db: Database) -> None:
    """What the API and the alert sweep read without the database: a mapping a later write does
    not change (a reader in another thread never sees half a batch), and the same views as the
    database holds, removed devices left out."""
    store = StateStore(poll_db, clock=Clock(5.0))
    a, b, c = entry("a"), entry("b", site="lab"), entry("c")
    store.sync_inventory([a, b, c])
    store.apply([(a, Observation("a", 10.0, "online", {"volume": 40})), (b, Observation("b", 10.0, "offline"))])
    before = store.current()
    store.apply([(a, Observation("a", 70.0, "offline", error="gone"))])
    assert before["a"].state == "online" and before["a"].readings == {"volume": 40}
    assert store.current()["a"].state == "offline" and store.current()["a"].since == 70.0
    assert store.current_views() == store.views()
    store.sync_inventory([a, b])  # c leaves the inventory
    assert [v.name for v in store.current_views()] == ["a", "b"] == [v.name for v in store.views()]
    assert store.current()["c"].removed == 5.0 and "c" in before
    # a restarted store (the same file) starts from what the database holds
    assert StateStore(poll_db).current()["a"].state == "offline"


def test_a_device_polled_before_it_was_synced_gets_its_row(poll_db: Database) -> None:
    store = StateStore(poll_db)
    [view] = store.apply([(entry("new", tags=frozenset({"x"})), Observation("new", 5.0, "auth_failed",
                                                                          error="login rejected"))])
    assert (view.state, view.tags, view.error) == ("auth_failed", frozenset({"x"}), "login rejected")
    with poll_db.session() as s:
        assert s.scalar(select(func.count()).select_from(DeviceState)) == 1


async def test_the_writer_batches_and_keeps_a_batch_the_database_refused(poll_db: Database) -> None:
    store = StateStore(poll_db)
    devices = [entry(f"d{i}") for i in range(5)]
    store.sync_inventory(devices)
    told: list[list[DeviceView]] = []

    async def on_views(views: list[DeviceView]) -> None:
        told.append(views)

    writer = StateWriter(store, on_views=on_views, max_items=3, max_delay=0.5)
    for i in range(2):
        await writer(Observation(f"d{i}", 1.0, "online", {"uptime": 1}))
    assert writer.pending == 2 and told == []
    await writer(Observation("d2", 1.0, "online"))  # the third: a batch
    assert writer.pending == 0 and [len(t) for t in told] == [3]
    await writer(Observation("unknown-device", 1.0, "online"))  # not in the inventory: not recorded
    assert writer.pending == 0
    # the database refuses a write: nothing is lost, the batch goes with the next one
    real_apply = store.apply
    failures = iter([RuntimeError("disk full")])

    def flaky(batch: object) -> list[DeviceView]:
        for exc in failures:
            raise exc
        return real_apply(batch)  # type: ignore[arg-type]

    store.apply = flaky  # type: ignore[method-assign]
    await writer(Observation("d3", 2.0, "offline", error="down"))
    assert await writer.flush() == [] and writer.failures == 1 and writer.pending == 1
    assert writer.last_error and "disk full" in writer.last_error
    await writer(Observation("d4", 2.0, "online"))
    assert [v.name for v in await writer.flush()] == ["d3", "d4"]
    assert store.view("d3").state == "offline"  # type: ignore[union-attr]


async def test_the_writer_flushes_on_its_timer(poll_db: Database) -> None:
    store = StateStore(poll_db)
    store.sync_inventory([entry("a")])
    ticks = asyncio.Queue[None]()
    slept = asyncio.Event()

    async def sleep(_seconds: float) -> None:
        slept.set()
        await ticks.get()

    writer = StateWriter(store, max_items=100, max_delay=0.5, sleep=sleep)
    task = asyncio.create_task(writer.run())
    await slept.wait()
    await writer(Observation("a", 1.0, "online"))
    slept.clear()
    ticks.put_nowait(None)  # the timer fires
    await slept.wait()
    assert writer.pending == 0 and store.view("a").state == "online"  # type: ignore[union-attr]
    await writer(Observation("a", 2.0, "offline"))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert store.view("a").state == "offline"  # type: ignore[union-attr]  # flushed on the way out


async def test_emulated_device_taken_down_is_recorded_offline_and_back_online(
        emulators: EmulatorThread, tmp_path: Path, poll_env: str, poll_db: Database) -> None:
    codec = emulators.add(EmulatedVideoOS("codec-1", password=POLL_PASSWORD))
    e = entry_for(codec, site="hq")
    clock = Clock()
    store = StateStore(poll_db, clock=clock)
    store.sync_inventory([e])
    writer = StateWriter(store)
    engine = engine_for(tmp_path, writer, clock)
    try:
        engine.set_targets([e])
        await tick(engine, clock)
        codec.faults.down = True
        await tick(engine, clock)
        await writer.flush()
        view = store.view("codec-1")
        assert view is not None and view.state == "offline" and view.readings["firmware"]
        codec.faults.down = False
        await tick(engine, clock)
        await writer.flush()
    finally:
        await engine.close()
    assert [(k, old, new) for k, f, old, new in events(poll_db, "codec-1") if k == "state"] == [
        ("state", "unknown", "online"), ("state", "online", "offline"), ("state", "offline", "online")]
    assert len(readings(poll_db, "codec-1", "cert_days_left")) == 2
    assert store.view("codec-1").state == "online"  # type: ignore[union-attr]


def test_a_hostile_reading_is_kept_printable_and_capped() -> None:
    from avctl.capabilities import Status
    from avctl.server.poll.health import MAX_READING_CHARS, readings_of

    status = Status(reachable=True, model="Studio X30", firmware="\x1b]0;pwned\x07" + "9" * 100_000,
                    uptime=12.0, declared=("model", "firmware", "uptime"))
    readings = readings_of(status)
    assert readings["model"] == "Studio X30" and readings["uptime"] == 12.0
    assert len(readings["firmware"]) == MAX_READING_CHARS and "\x1b" not in readings["firmware"]
    assert readings["firmware"].startswith("\\x1b]0;pwned\\x07")


def test_unchanged_readings_keep_the_previous_polls_objects(poll_db: Database) -> None:
    """What a poll repeats is kept as the previous poll's objects (the new ones are freed at once):
    the same dict when nothing changed, the same values otherwise; a value that changed type (1 to
    True, 40 to 40.0) is a change."""
    store = StateStore(poll_db)
    a = entry("a")
    store.sync_inventory([a])

    def poll(ts: float, **readings: object) -> dict[str, object]:
        # fresh objects, as unpickled from the poller's message: equal, never identical
        fresh = {"".join(k): (json.loads(json.dumps(v)) if isinstance(v, str) else v) for k, v in readings.items()}
        store.apply([(a, Observation("a", ts, "online", fresh))])
        return store.current()["a"].readings

    first = poll(10.0, firmware="8.1.0.1", model="G7500", muted=1)
    assert poll(70.0, firmware="8.1.0.1", model="G7500", muted=1) is first
    third = poll(130.0, firmware="8.1.0.1", model="G7500", muted=True, uptime=5.0)
    assert third is not first and third == {"firmware": "8.1.0.1", "model": "G7500", "muted": True, "uptime": 5.0}
    assert third["firmware"] is first["firmware"] and third["model"] is first["model"]
    assert type(third["muted"]) is bool
    assert all(name is sys.intern(name) for name in third)
    fourth = poll(190.0, firmware="8.1.0.1", model="G7500", muted=True, uptime=5)
    assert type(fourth["uptime"]) is int and fourth["muted"] is third["muted"]
