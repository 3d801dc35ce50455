"""Scheduler passes on a real SQLite file: once per zone across DST, one start per run, overlap,
missed instants and the grace, pause and resume, and the job id a scheduled command writes back."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import update

from avctl.schedule.link import RUN_ENV, note_job
from avctl.schedule.runner import SUPERSEDED, Zones, due_runs, schedule_zones
from avctl.schedule.store import INTERRUPTED, RUNS, Schedule, ScheduleStore, open_schedule_store

TWO_ZONES: Zones = {"Europe/Berlin": ["hq"], "America/New_York": ["ny", None]}


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


@pytest.fixture
def store(any_db_url: str) -> Iterator[ScheduleStore]:
    """On SQLite and on PostgreSQL."""
    with open_schedule_store(any_db_url) as s:
        yield s


def add(store: ScheduleStore, cron: str, now: float, name: str = "nightly", grace: float = 3600.0) -> Schedule:
    return store.add(name=name, cron=cron, timezone="UTC", grace=grace, argv=["fleet", "status"], cwd="/",
                     inventory=None, selection=[], disruptive=False, user="t", now=now)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def passes(store: ScheduleStore, start: float, end: float, every: float, zones: Zones) -> list[tuple[str, str]]:
    """Passes from start to end; each started run ends at once. The (zone, UTC due) of the runs started."""
    started = []
    now = start
    while now <= end:
        launches, skipped = due_runs(store, now, zones=lambda _s: zones)
        assert skipped == []
        for launch in launches:
            assert launch.run.sites == tuple(zones[launch.run.zone] or ())
            store.finish(launch.run.id, state="ok", reason=None, exit_code=0, output="", now=now)
            started.append((launch.run.zone, datetime.fromtimestamp(launch.run.due, UTC).strftime("%m-%d %H:%M")))
        now += every
    return started


def test_once_per_zone_at_local_time_across_each_zones_dst_change(store: ScheduleStore) -> None:
    add(store, "30 2 * * *", utc(2026, 3, 6, 12))
    # New York springs forward on Mar 8: 02:30 does not exist, the run is at 03:00 EDT (07:00Z)
    first = passes(store, utc(2026, 3, 6, 12), utc(2026, 3, 9, 12), 1200, TWO_ZONES)
    assert first == [("Europe/Berlin", "03-07 01:30"), ("America/New_York", "03-07 07:30"),
                     ("Europe/Berlin", "03-08 01:30"), ("America/New_York", "03-08 07:00"),
                     ("Europe/Berlin", "03-09 01:30"), ("America/New_York", "03-09 06:30")]
    store.set_paused("nightly", True, now=utc(2026, 3, 9, 12))
    store.set_paused("nightly", False, now=utc(2026, 3, 27, 12))  # nothing from the pause is run or recorded
    # Berlin springs forward on Mar 29: once, at 03:00 CEST (01:00Z)
    second = passes(store, utc(2026, 3, 27, 12), utc(2026, 3, 30, 12), 1200, TWO_ZONES)
    assert second == [("Europe/Berlin", "03-28 01:30"), ("America/New_York", "03-28 06:30"),
                      ("Europe/Berlin", "03-29 01:00"), ("America/New_York", "03-29 06:30"),
                      ("Europe/Berlin", "03-30 00:30"), ("America/New_York", "03-30 06:30")]
    runs = store.runs(store.get("nightly").id, limit=100)
    assert len(runs) == 12 and {r.state for r in runs} == {"ok"}


def test_fall_back_nights_run_once_in_both_zones(store: ScheduleStore) -> None:
    add(store, "30 1 * * *", utc(2026, 10, 23, 12))
    ran = passes(store, utc(2026, 10, 23, 12), utc(2026, 11, 2, 12), 900, TWO_ZONES)
    by_zone = {z: [d for zz, d in ran if zz == z] for z in TWO_ZONES}
    assert by_zone["America/New_York"][-2:] == ["11-01 05:30", "11-02 06:30"]  # 01:30 EDT, then EST
    assert by_zone["Europe/Berlin"][1:4] == ["10-24 23:30", "10-26 00:30", "10-27 00:30"]
    assert all(len(v) == 10 for v in by_zone.values())  # once a night, ten nights


def test_a_second_pass_at_the_same_instant_starts_nothing(store: ScheduleStore) -> None:
    add(store, "0 2 * * *", utc(2026, 6, 1))
    at = utc(2026, 6, 1, 2)
    launches, _ = due_runs(store, at, zones=lambda _s: {"UTC": None})
    assert len(launches) == 1
    assert due_runs(store, at, zones=lambda _s: {"UTC": None}) == ([], [])
    assert due_runs(store, at + 300, zones=lambda _s: {"UTC": None}) == ([], [])


def test_a_run_due_while_the_previous_one_runs_is_skipped(store: ScheduleStore) -> None:
    add(store, "*/10 * * * *", utc(2026, 6, 1))
    one = {"UTC": None}
    (first,), _ = due_runs(store, utc(2026, 6, 1, 0, 10), zones=lambda _s: one)
    store.set_job(first.run.id, 7)
    holder = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        store.started(first.run.id, holder.pid)
        # its scheduler gone, its command alive: still running
        with store.db.engine.begin() as conn:
            conn.execute(update(RUNS).where(RUNS.c.id == first.run.id).values(scheduler_pid=dead_pid()))
        launches, (skipped,) = due_runs(store, utc(2026, 6, 1, 0, 20), zones=lambda _s: one)
        assert launches == [] and skipped.state == "skipped" and skipped.job_id == 7
        assert skipped.reason == f"the previous run {first.run.id} (job 7) is still running"
        # another zone of the same schedule is not held up
        two = {"UTC": None, "Asia/Tokyo": ["tk"]}
        launches, skipped_too = due_runs(store, utc(2026, 6, 1, 0, 30), zones=lambda _s: two)
        assert [launch.run.zone for launch in launches] == ["Asia/Tokyo"] and len(skipped_too) == 1
    finally:
        holder.communicate(b"")
    # both processes gone: the next pass closes it as interrupted and starts the new one
    (nxt,), _ = due_runs(store, utc(2026, 6, 1, 0, 40), zones=lambda _s: one)
    closed = store.get_run(first.run.id)
    assert closed is not None and closed.state == "failed" and closed.reason == INTERRUPTED
    assert nxt.run.state == "running"


def test_missed_instants_only_the_newest_within_the_grace_runs(store: ScheduleStore) -> None:
    add(store, "0 * * * *", utc(2026, 6, 1), grace=600)
    one = {"UTC": None}
    launches, _ = due_runs(store, utc(2026, 6, 1, 5, 10), zones=lambda _s: one)
    assert [datetime.fromtimestamp(launch.run.due, UTC).hour for launch in launches] == [5]
    runs = store.runs(store.get("nightly").id, limit=50)
    missed = [r for r in runs if r.state == "missed"]
    assert [datetime.fromtimestamp(r.due, UTC).hour for r in missed] == [4, 3, 2, 1]
    assert {r.reason for r in missed} == {SUPERSEDED}
    store.finish(launches[0].run.id, state="ok", reason=None, exit_code=0, output=None, now=0)
    # down for two days, the newest due instant 30 min old: past its grace, nothing runs; the cap holds
    launches, _ = due_runs(store, utc(2026, 6, 3, 2, 30), zones=lambda _s: one)
    assert launches == []
    newer = [r for r in store.runs(store.get("nightly").id, limit=50) if r.due > utc(2026, 6, 1, 5)]
    assert len(newer) == 6 and {r.state for r in newer} == {"missed"}
    assert newer[0].reason == "not run: no scheduler ran within its grace (600s)"
    assert {r.reason for r in newer[1:]} == {SUPERSEDED}
    assert due_runs(store, utc(2026, 6, 3, 2, 30), zones=lambda _s: one) == ([], [])


def test_the_first_evaluation_starts_at_creation(store: ScheduleStore) -> None:
    add(store, "0 * * * *", utc(2026, 6, 1, 5, 30))
    assert due_runs(store, utc(2026, 6, 1, 5, 59), zones=lambda _s: {"UTC": None}) == ([], [])
    assert store.runs(store.get("nightly").id) == []


def test_paused_schedules_start_nothing(store: ScheduleStore) -> None:
    add(store, "0 * * * *", utc(2026, 6, 1))
    store.set_paused("nightly", True, now=utc(2026, 6, 1))
    assert due_runs(store, utc(2026, 6, 1, 1), zones=lambda _s: {"UTC": None}) == ([], [])
    store.set_paused("nightly", False, now=utc(2026, 6, 1, 1, 30))
    assert due_runs(store, utc(2026, 6, 1, 1, 45), zones=lambda _s: {"UTC": None}) == ([], [])
    assert len(due_runs(store, utc(2026, 6, 1, 2), zones=lambda _s: {"UTC": None})[0]) == 1


def test_note_job_writes_the_job_on_the_run(store: ScheduleStore, any_db_url: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    add(store, "0 * * * *", utc(2026, 6, 1))
    (launch,), _ = due_runs(store, utc(2026, 6, 1, 1), zones=lambda _s: {"UTC": None})
    note_job(any_db_url, 41)  # outside a schedule: nothing
    monkeypatch.setenv(RUN_ENV, str(launch.run.id))
    note_job(any_db_url, 42)
    run = store.get_run(launch.run.id)
    assert run is not None and run.job_id == 42
    note_job(any_db_url, 43)  # a command that reads, then acts: the run is known by the job that acts
    run = store.get_run(launch.run.id)
    assert run is not None and run.job_id == 43
    (tmp_path / "dir.db").mkdir()
    note_job(str(tmp_path / "dir.db"), 44)  # a database that cannot be opened: a warning, the job goes on
    assert "job 44 not recorded" in capsys.readouterr().err


def test_zones_come_from_the_selected_devices_sites(store: ScheduleStore, tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text("sites:\n  hq: {timezone: Europe/Berlin}\n  ny: {timezone: America/New_York}\n  lab: {}\n"
                   "devices:\n"
                   "  a: {family: videoos, address: '127.0.0.1:1001', site: hq}\n"
                   "  b: {family: videoos, address: '127.0.0.1:1002', site: ny}\n"
                   "  c: {family: videoos, address: '127.0.0.1:1003', site: lab}\n"
                   "  d: {family: videoos, address: '127.0.0.1:1004'}\n")
    base = add(store, "0 2 * * *", 0.0)

    def zones(selection: list[str], inventory: Path | None = inv) -> Zones:
        from dataclasses import replace

        return schedule_zones(replace(base, selection=tuple(selection),
                                      inventory=None if inventory is None else str(inventory)))

    assert zones([]) == {"America/New_York": ["ny"], "Europe/Berlin": ["hq"], "UTC": ["lab", None]}
    assert zones(["site=hq|lab"]) == {"Europe/Berlin": ["hq"], "UTC": ["lab"]}
    assert zones(["site=hq"]) == {"Europe/Berlin": None}  # one zone: no limit passed
    assert zones(["site=nowhere"]) == {"UTC": None}
    assert zones([], tmp_path / "missing.yaml") == {"UTC": None}  # the command will report it


def test_a_schedule_that_cannot_be_evaluated_holds_up_no_other(store: ScheduleStore) -> None:
    from avctl.schedule.store import SCHEDULES

    add(store, "0 * * * *", utc(2026, 6, 1), name="broken")
    add(store, "0 * * * *", utc(2026, 6, 1), name="fine")
    with store.db.engine.begin() as conn:
        conn.execute(update(SCHEDULES).where(SCHEDULES.c.name == "broken").values(cron="0 99 * * *"))
    launches, _ = due_runs(store, utc(2026, 6, 1, 1), zones=lambda s: {"UTC": None})
    assert [launch.schedule.name for launch in launches] == ["fine"]
