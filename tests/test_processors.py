"""Runner events (nornir-style processors) against emulated fleets over real HTTPS on loopback.

The order promise: job_started first, job_finished last, every device started then finished
exactly once with its calls in between. A processor that raises never ends a device's run nor
keeps the other processors from their events; a StoreError from one still stops new devices.
Resume tells the processors of devices gone from the inventory through the same public path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from avctl.device import CallEvent
from avctl.emulator.core import EmulatorThread
from avctl.fleet.audit import AuditLog
from avctl.fleet.inventory import DeviceEntry, Inventory, load_inventory, parse_inventory
from avctl.fleet.jobs import create_job, execute, plan_resume, run_resume
from avctl.fleet.processors import BaseProcessor, JobInfo
from avctl.fleet.results import Outcome
from avctl.fleet.store import SqliteJobStore, StoreError
from avctl.fleet.verbs import ActionTask, MacroTask

from .test_fleet_runner import closed_port, env, runner, spawn  # noqa: F401 - env is a fixture

Event = tuple[Any, ...]


class Recorder(BaseProcessor):
    def __init__(self) -> None:
        self.events: list[Event] = []

    def job_started(self, job: JobInfo) -> None:
        self.events.append(("job_started", job.id, job.task, job.devices))

    def device_started(self, job: JobInfo, device: DeviceEntry) -> None:
        self.events.append(("device_started", device.name))

    def call_finished(self, job: JobInfo, device: DeviceEntry, call: CallEvent) -> None:
        self.events.append(("call_finished", device.name, call.action.id, call.error is None))

    def device_finished(self, job: JobInfo, outcome: Outcome) -> None:
        self.events.append(("device_finished", outcome.device, outcome.status))

    def job_finished(self, job: JobInfo, outcomes: Sequence[Outcome]) -> None:
        self.events.append(("job_finished", [o.device for o in outcomes]))


class Boom(BaseProcessor):
    """Fails on every event."""

    def job_started(self, job: JobInfo) -> None:
        raise RuntimeError("boom")

    def device_started(self, job: JobInfo, device: DeviceEntry) -> None:
        raise RuntimeError("boom")

    def call_finished(self, job: JobInfo, device: DeviceEntry, call: CallEvent) -> None:
        raise RuntimeError("boom")

    def device_finished(self, job: JobInfo, outcome: Outcome) -> None:
        raise RuntimeError("boom")

    def job_finished(self, job: JobInfo, outcomes: Sequence[Outcome]) -> None:
        raise RuntimeError("boom")


def small_fleet(emulators: EmulatorThread) -> Inventory:
    """Two devices that answer, one disabled, one that refuses connections."""
    a, b, c = spawn(emulators, 3)
    return parse_inventory(
        "defaults: {family: videoos, password: env:FLEET_PW}\ndevices:\n"
        f"  a: {{address: '127.0.0.1:{a.port}'}}\n"
        f"  b: {{address: '127.0.0.1:{b.port}'}}\n"
        f"  off: {{address: '127.0.0.1:{c.port}', disabled: true}}\n"
        f"  gone: {{address: '127.0.0.1:{closed_port()}'}}\n")


def check_order(events: list[Event], devices: Sequence[str]) -> None:
    assert events[0][0] == "job_started" and events[-1][0] == "job_finished"
    assert [e[0] for e in events].count("job_started") == 1 and [e[0] for e in events].count("job_finished") == 1
    for name in devices:
        mine = [i for i, e in enumerate(events) if len(e) > 1 and e[1] == name]
        kinds = [events[i][0] for i in mine]
        assert kinds[0] == "device_started" and kinds[-1] == "device_finished", (name, kinds)
        assert Counter(kinds)["device_started"] == 1 and Counter(kinds)["device_finished"] == 1, (name, kinds)
        assert set(kinds[1:-1]) <= {"call_finished"}, (name, kinds)


async def test_events_for_a_small_fleet(emulators: EmulatorThread, tmp_path: Path, env: None) -> None:  # noqa: F811
    inv = small_fleet(emulators)
    store, audit, rec = SqliteJobStore(tmp_path / "db"), AuditLog(tmp_path / "db"), Recorder()
    r = runner(tmp_path, store=store, audit=audit, retries=0)
    r.processors.append(rec)
    task = ActionTask("audio_volume_set", {"volume": "35"})
    job = create_job(store, task, selection="all", devices=list(inv), inventory=inv, options=r.options)
    report = await execute(store, job, r, task, list(inv))
    assert {o.device: o.status for o in report.outcomes} == {
        "a": "ok", "b": "ok", "off": "skipped", "gone": "unreachable"}
    check_order(rec.events, ["a", "b", "off", "gone"])
    assert rec.events[0] == ("job_started", job.id, "audio_volume_set", ("a", "b", "off", "gone"))
    assert rec.events[-1] == ("job_finished", ["a", "b", "off", "gone"])
    calls = [e for e in rec.events if e[0] == "call_finished"]
    assert sorted(calls) == [("call_finished", "a", "audio_volume_set", True),
                             ("call_finished", "b", "audio_volume_set", True),
                             ("call_finished", "gone", "audio_volume_set", False)]
    # the store and the audit log are processors too, and saw the same: one row per state-changing call
    assert sorted(o.device for o in store.outcomes(job.id)) == ["a", "b", "gone", "off"]
    assert sorted((e.device, e.outcome) for e in audit.query(job_id=job.id)) == [
        ("a", "ok"), ("b", "ok"), ("gone", "unreachable")]


async def test_a_failing_processor_ends_no_run_and_silences_no_other(
        emulators: EmulatorThread, tmp_path: Path, env: None) -> None:  # noqa: F811
    inv = small_fleet(emulators)
    store, rec = SqliteJobStore(tmp_path / "db"), Recorder()
    r = runner(tmp_path, store=store, retries=0)
    r.processors[:0] = [Boom()]  # before the store, too: the store still records every outcome
    r.processors.append(rec)
    task = MacroTask("reboot", {})
    job = create_job(store, task, selection="all", devices=list(inv), inventory=inv, options=r.options)
    report = await execute(store, job, r, task, list(inv))
    assert [o.status for o in report.outcomes] == ["ok", "ok", "skipped", "unreachable"]
    assert report.store_error is None and not report.counts["failed"]
    check_order(rec.events, ["a", "b", "off", "gone"])
    assert {(e[0], e[1]) for e in r.processor_errors} == {
        ("Boom", "job_started"), ("Boom", "device_started"), ("Boom", "call_finished"),
        ("Boom", "device_finished"), ("Boom", "job_finished")}
    assert store.pending_devices(job.id) == [] and store.get_job(job.id).state == "finished"


class FullDisk(BaseProcessor):
    def device_finished(self, job: JobInfo, outcome: Outcome) -> None:
        raise StoreError("cannot write: the disk is full")


async def test_a_store_error_from_a_processor_starts_no_new_device(
        emulators: EmulatorThread, tmp_path: Path, env: None) -> None:  # noqa: F811
    devs = spawn(emulators, 3)
    inv = parse_inventory("defaults: {family: videoos, password: env:FLEET_PW}\ndevices:\n" + "".join(
        f"  {d.name}: {{address: '127.0.0.1:{d.port}'}}\n" for d in devs))
    r = runner(tmp_path, concurrency=1)
    r.processors.append(FullDisk())
    outcomes = await r.run(ActionTask("audio_volume_set", {"volume": "12"}), list(inv))
    assert [o.status for o in outcomes] == ["ok", "skipped", "skipped"]
    assert [o.reason for o in outcomes[1:]] == ["not_run", "not_run"]
    assert r.store_error is not None and [d.state.volume for d in devs] == [12, 50, 50]


async def test_resume_tells_the_processors_through_the_public_path(
        emulators: EmulatorThread, tmp_path: Path, env: None) -> None:  # noqa: F811
    a, b = spawn(emulators, 2)
    inv_path = tmp_path / "inventory.yaml"
    head = "defaults: {family: videoos, password: env:FLEET_PW}\ndevices:\n"
    inv_path.write_text(head + f"  a: {{address: '127.0.0.1:{a.port}'}}\n  b: {{address: '127.0.0.1:{b.port}'}}\n"
                        "  c: {address: '127.0.0.1:9'}\n")
    inv = load_inventory(inv_path)
    store = SqliteJobStore(tmp_path / "db")
    task = ActionTask("audio_volume_set", {"volume": "41"})
    job = create_job(store, task, selection="all", devices=list(inv), inventory=inv, options=runner(tmp_path).options)
    store.record_outcome(job.id, Outcome("a", "ok"))
    store.set_state(job.id, "interrupted")
    inv_path.write_text(head + f"  a: {{address: '127.0.0.1:{a.port}'}}\n  b: {{address: '127.0.0.1:{b.port}'}}\n")
    plan = plan_resume(store, job.id)
    rec = Recorder()
    r = runner(tmp_path, store=store)
    r.processors.append(rec)
    report = await run_resume(store, plan, r)
    assert {o.device: (o.status, o.reason) for o in report.outcomes} == {
        "a": ("ok", None), "b": ("ok", None), "c": ("failed", "inventory")}
    assert rec.events[0] == ("job_started", job.id, "audio_volume_set", ("b",))
    # a device gone from the inventory is decided without running: finished, never started
    assert rec.events[1] == ("device_finished", "c", "failed")
    check_order(rec.events, ["b"])
    assert not any(e[1] == "a" for e in rec.events[1:-1])  # finished before: never touched again
    assert (a.state.volume, b.state.volume) == (50, 41) and store.get_job(job.id).state == "finished"


def test_outcome_still_imports_from_the_store() -> None:
    from avctl.fleet import results, store

    assert store.Outcome is results.Outcome
