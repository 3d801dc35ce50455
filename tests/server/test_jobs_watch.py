"""The jobs watcher against a real SQLite file that a real second process writes jobs to: what it
publishes after each of that process's steps, and what its look costs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from avctl.db.engine import Database
from avctl.db.journal import open_journal_database
from avctl.emulator.core import EmulatorThread, emulator_class
from avctl.server.jobs import JobProgress, ProgressEvent
from avctl.server.jobs_watch import JobMark, JobsWatch, marker_query, read_marker
from avctl.server.live import ChangeFeed

from .harness import run_cli, write_inventory
from .jobs_writer import JobsWriter


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[Database, str]]:
    path = str(tmp_path / "avctl.db")
    db = open_journal_database(path)
    try:
        yield db, path
    finally:
        db.close()


@pytest.fixture
def writer(database: tuple[Database, str]) -> Iterator[JobsWriter]:
    w = JobsWriter(database[1])
    try:
        yield w
    finally:
        w.close()


def drained(queue: asyncio.Queue[ProgressEvent]) -> list[ProgressEvent]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


def test_a_job_another_process_runs_is_published_step_by_step(database: tuple[Database, str],
                                                               writer: JobsWriter) -> None:
    db, _ = database

    async def scenario() -> None:
        changes = ChangeFeed()
        watch = JobsWatch(db, JobProgress(changes), changes)
        assert await watch.step() is False  # the first look is the baseline
        jobs_version = changes.versions()["jobs"]

        job = writer.create("hq-1", "hq-2", "hq-3")
        assert await watch.step() is True
        assert changes.versions()["jobs"] > jobs_version
        with watch.progress.subscribe(job) as queue:
            writer.send("outcome", job, "hq-1", "ok")
            assert await watch.step() is True
            assert drained(queue) == [{"event": "progress", "job": job, "outcomes": 1}]

            jobs_version = changes.versions()["jobs"]
            assert await watch.step() is False  # nothing moved: nothing published
            assert drained(queue) == [] and changes.versions()["jobs"] == jobs_version

            writer.send("outcome", job, "hq-2", "failed")
            writer.send("outcome", job, "hq-3", "ok")
            writer.send("finish", job)
            assert await watch.step() is True
            (done,) = drained(queue)
            assert done["event"] == "done" and done["state"] == "finished"
            assert done["counts"]["ok"] == 2 and done["counts"]["failed"] == 1

            assert await watch.step() is False  # a finished job is no longer looked at
            assert drained(queue) == []

    asyncio.run(scenario())


def test_the_servers_own_jobs_are_left_to_it(database: tuple[Database, str], writer: JobsWriter) -> None:
    db, _ = database
    mine: set[int] = set()

    async def scenario() -> None:
        changes = ChangeFeed()
        watch = JobsWatch(db, JobProgress(changes), changes, lambda: mine)
        await watch.step()
        job = writer.create("hq-1", "hq-2")
        mine.add(job)  # as if this server's executor ran it
        with watch.progress.subscribe(job) as queue:
            assert await watch.step() is True  # the list moved (a new job) ...
            writer.send("outcome", job, "hq-1", "ok")
            assert await watch.step() is False
            writer.send("outcome", job, "hq-2", "ok")
            writer.send("finish", job)
            mine.discard(job)  # the executor forgets it when it ends
            assert await watch.step() is False
            assert drained(queue) == []  # ... its progress, the executor published itself

    asyncio.run(scenario())


def test_a_look_reads_outcomes_by_their_key_only(database: tuple[Database, str], writer: JobsWriter) -> None:
    db, _ = database
    job = writer.create("hq-1", "hq-2")
    writer.send("outcome", job, "hq-1", "ok")
    marker = read_marker(db, {job})
    assert marker.newest == job and marker.jobs[job].outcomes == 1 and marker.running() == {job}
    sql = marker_query({job}).compile(db.engine, compile_kwargs={"literal_binds": True})
    with db.engine.connect() as conn:
        plan = " | ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
    # the count walks one job's entries of the outcomes' key; the table itself is never read through
    assert "SCAN outcomes" not in plan and "SEARCH outcomes USING COVERING INDEX" in plan, plan
    assert "SCAN jobs" not in plan, plan  # the running ones found by the index on state (0003)


def test_a_job_the_cli_ran_on_the_database_is_noticed(database: tuple[Database, str], tmp_path: Path) -> None:
    db, path = database
    with EmulatorThread() as emulators:
        device = emulators.add(emulator_class("videoos")("hq-1", password="watch-pw-3Kq"))
        (tmp_path / "fleet.password").write_text("watch-pw-3Kq\n")
        inventory = write_inventory(tmp_path / "fleet.yaml", [device])

        async def scenario() -> None:
            changes = ChangeFeed()
            watch = JobsWatch(db, JobProgress(changes), changes)
            await watch.step()
            before = changes.versions()["jobs"]
            ran = await asyncio.to_thread(run_cli, tmp_path / "home", "fleet", "status", "-i", str(inventory),
                                          "--store", path)
            assert ran.returncode == 0, ran.stderr
            assert await watch.step() is True
            assert changes.versions()["jobs"] > before
            assert watch.last is not None and watch.last.jobs[watch.last.newest] == JobMark("finished", 1)

        asyncio.run(scenario())
