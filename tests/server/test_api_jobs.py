"""The server's job executor on its own: outcomes to the store and the broker, audit rows with the
job's user, a stop that leaves the job interrupted and resumable."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from avctl.emulator.core import EmulatorThread
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.fleet.audit import AuditLog
from avctl.fleet.inventory import parse_inventory
from avctl.fleet.jobs import create_job
from avctl.fleet.runner import RunOptions
from avctl.fleet.store import SqliteJobStore
from avctl.fleet.verbs import ActionTask
from avctl.server.executor import Executor, JobSubmission
from avctl.server.jobs import JobProgress, LocalJobExecutor
from avctl.transport.tls import KnownHosts, TLSPolicy

PW = "executor-pw-3Lm"


async def held_at(dev: EmulatedVideoOS, path: str) -> None:
    """Until the device has the request (a paused device holds it unanswered): a condition, not a timer."""
    while not any(r.path == path for r in dev.requests):
        await asyncio.sleep(0.01)


async def test_stop_interrupts_a_job_keeping_its_outcomes_and_audit_user(
        emulators: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXEC_PW", PW)
    devs = [emulators.add(EmulatedVideoOS(f"room-{i}", password=PW)) for i in range(2)]
    inv = parse_inventory("defaults: {family: videoos, password: env:EXEC_PW}\ndevices:\n" + "".join(
        f"  {d.name}: {{address: '127.0.0.1:{d.port}'}}\n" for d in devs))
    db = tmp_path / "avctl.db"
    store = SqliteJobStore(db)
    progress = JobProgress()
    executor = LocalJobExecutor(store=store, audit=lambda: AuditLog(db), progress=progress,
                                tls=TLSPolicy.pinned(KnownHosts(tmp_path / "known")))
    _: Executor = executor  # it is the job half of the executor interface
    task = ActionTask("audio_volume_set", {"volume": "12"})
    options = RunOptions(retries=0, concurrency=1)
    job = create_job(store, task, selection="all", devices=list(inv), inventory=inv, options=options,
                     user="web:carol")
    devs[1].faults.paused = True  # the second device holds its answer: the job cannot finish
    with progress.subscribe(job.id) as events:
        executor.submit_job(JobSubmission(job.id, task, list(inv), options, user="web:carol"))
        first = await asyncio.wait_for(events.get(), 60)
        assert first["event"] == "outcome" and first["outcome"]["device"] == "room-0"
        assert executor.running() == [job.id]
        await asyncio.wait_for(held_at(devs[1], "/rest/audio/volume"), 60)
        await executor.stop()
        done = await asyncio.wait_for(events.get(), 60)
    devs[1].faults.paused = False
    assert done == {"event": "done", "job": job.id, "state": "interrupted",
                    "counts": {"ok": 1, "failed": 0, "unreachable": 0, "skipped": 0, "total": 1}}
    assert executor.running() == []
    assert store.get_job(job.id).state == "interrupted"
    assert store.pending_devices(job.id) == ["room-1"]
    with AuditLog(db) as audit:
        rows = audit.query(limit=None)
    assert [(r.user, r.device, r.job_id) for r in rows] == [("web:carol", "room-0", job.id)]
    assert devs[0].state.volume == 12
    store.close()
