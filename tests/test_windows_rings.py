"""Maintenance windows and rollout rings in the fleet runner, against emulated VideoOS codecs over
real HTTPS on loopback, with time injected (a fake clock that moves only when the runner sleeps or a
processor says so: no test waits for a real window).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from avctl.emulator.core import EmulatorThread
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.errors import UsageError
from avctl.fleet.inventory import Inventory, load_inventory, parse_inventory
from avctl.fleet.jobs import create_job, execute, plan_resume, run_resume
from avctl.fleet.processors import BaseProcessor, JobInfo
from avctl.fleet.results import Outcome
from avctl.fleet.runner import FleetRunner, RunOptions, gate_failure, ring_of
from avctl.fleet.store import SqliteJobStore
from avctl.fleet.verbs import MacroTask
from avctl.transport.tls import TLSPolicy

PASSWORD = "rings-pw-Hq27"
BERLIN_WINDOW = "Mon-Fri 01:00-04:00"


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class AdvanceAfter(BaseProcessor):
    """Moves the clock forward once, after the n-th device finished (a window closing mid-job)."""

    def __init__(self, clock: FakeClock, n: int, seconds: float) -> None:
        self.clock, self.n, self.seconds, self.seen = clock, n, seconds, 0

    def device_finished(self, job: JobInfo, outcome: Outcome) -> None:
        self.seen += 1
        if self.seen == self.n:
            self.clock.now += self.seconds


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RINGS_PW", PASSWORD)


def spawn(emulators: EmulatorThread, names: list[str]) -> dict[str, EmulatedVideoOS]:
    """Codecs with the inventory's password, except "bad" (its login is rejected: a failed device)."""
    return {n: emulators.add(EmulatedVideoOS(n, password="another-password" if n == "bad" else PASSWORD, seed=7))
            for n in names}


def inventory(devs: dict[str, EmulatedVideoOS], tags: dict[str, str] | None = None,
              tmp: Path | None = None) -> Inventory:
    lines = ["defaults: {family: videoos, password: env:RINGS_PW}",
             "sites:",
             f"  hq: {{timezone: Europe/Berlin, window: '{BERLIN_WINDOW}'}}",
             "  ny: {timezone: America/New_York, window: 'daily 02:00-03:00'}",
             "devices:"]
    for name, emu in devs.items():
        site = "ny" if name.startswith("ny") else "hq"
        tag = f", tags: [{tags[name]}]" if tags and name in tags else ""
        lines.append(f"  {name}: {{address: '127.0.0.1:{emu.port}', site: {site}{tag}}}")
    text = "\n".join(lines) + "\n"
    if tmp is None:
        return parse_inventory(text)
    path = tmp / "inventory.yaml"
    path.write_text(text)
    return load_inventory(path)


def mutes(emu: EmulatedVideoOS) -> int:
    return sum(1 for r in emu.requests if r.method == "POST" and r.path == "/rest/audio/muted")


def runner_for(tls: TLSPolicy, clock: FakeClock, **options: Any) -> FleetRunner:
    return FleetRunner(tls=tls, options=RunOptions(retries=0, concurrency=1, **options),
                       sleep=clock.sleep, clock=clock)


# --- windows ---------------------------------------------------------------------------------------


async def test_in_window_waits_for_the_window_then_runs(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    devs = spawn(emulators, ["hq-1", "hq-2"])
    inv = inventory(devs)
    # Tuesday 2027-03-02 23:00 UTC = Wednesday 00:00 in Berlin: the window opens in one hour
    clock = FakeClock(datetime(2027, 3, 2, 23, 0, tzinfo=UTC))
    runner = runner_for(tls, clock, in_window=True)
    task = MacroTask("mute", {})
    runner.plan(task, list(inv))
    outcomes = await runner.run(task, list(inv))
    assert [o.status for o in outcomes] == ["ok", "ok"]
    assert clock.sleeps and clock.sleeps[0] == 3600.0
    assert all(mutes(e) == 1 for e in devs.values())


async def test_a_window_closing_mid_job_leaves_the_rest_skipped_and_resumable(
        emulators: EmulatorThread, tls: TLSPolicy, tmp_path: Path) -> None:
    names = [f"hq-{i}" for i in range(5)]
    devs = spawn(emulators, names)
    inv = inventory(devs, tmp=tmp_path)
    store = SqliteJobStore(tmp_path / "jobs.db")
    # Wednesday 02:30 in Berlin (CET, UTC+1): open until 04:00; after the 2nd device, 2 hours pass
    clock = FakeClock(datetime(2027, 3, 3, 1, 30, tzinfo=UTC))
    task = MacroTask("mute", {})
    options = RunOptions(retries=0, concurrency=1, in_window=True)
    runner = FleetRunner(tls=tls, store=store, options=options, sleep=clock.sleep, clock=clock,
                         processors=[AdvanceAfter(clock, 2, 2 * 3600)])
    runner.plan(task, list(inv))
    job = create_job(store, task, selection="site=hq", devices=list(inv), inventory=inv, options=options)
    report = await execute(store, job, runner, task, list(inv))
    by = {o.device: o for o in report.outcomes}
    assert [by[n].status for n in names] == ["ok", "ok", "skipped", "skipped", "skipped"]
    assert {by[n].reason for n in names[2:]} == {"window_closed"}
    assert "closed at 2027-03-03 04:00 CET" in (by["hq-2"].message or "")
    assert [mutes(devs[n]) for n in names] == [1, 1, 0, 0, 0]  # nothing sent after the close

    # the next night's window: a resume runs exactly the three that were left, nothing twice
    clock.now = datetime(2027, 3, 4, 1, 0, tzinfo=UTC).timestamp()  # Thursday 02:00 in Berlin
    plan = plan_resume(store, job.id)
    assert [d.name for d in plan.devices] == names[2:]
    assert plan.options.in_window
    resumed = FleetRunner(tls=tls, store=store, options=plan.options, sleep=clock.sleep, clock=clock)
    report = await run_resume(store, plan, resumed)
    assert report.counts["ok"] == 5 and store.pending_devices(job.id) == []
    assert [mutes(devs[n]) for n in names] == [1, 1, 1, 1, 1]
    assert store.get_job(job.id).state == "finished"
    store.close()


def test_in_window_needs_a_window_for_every_selected_site(tls: TLSPolicy) -> None:
    inv = parse_inventory("defaults: {family: videoos}\nsites:\n  lab: {}\n"
                          "devices:\n  a: {address: 127.0.0.1, site: lab}\n")
    runner = FleetRunner(tls=tls, options=RunOptions(in_window=True))
    with pytest.raises(UsageError, match=r"no maintenance window for site\(s\) lab"):
        runner.plan(MacroTask("mute", {}), list(inv))


# --- rings -----------------------------------------------------------------------------------------


async def test_a_failed_gate_stops_the_rollout_before_the_next_ring(
        emulators: EmulatorThread, tls: TLSPolicy) -> None:
    devs = spawn(emulators, ["hq-canary", "bad", "hq-pilot", "hq-rest"])
    inv = inventory(devs, tags={"hq-canary": "canary", "bad": "canary", "hq-pilot": "pilot"})
    clock = FakeClock(datetime(2027, 3, 3, 12, 0, tzinfo=UTC))
    runner = runner_for(tls, clock, rings=(("canary", "tag=canary"), ("pilot", "tag=pilot"), ("all", "")),
                        gate=0.95, soak=1800.0)
    task = MacroTask("mute", {})
    runner.plan(task, list(inv))
    outcomes = {o.device: o for o in await runner.run(task, list(inv))}
    assert outcomes["hq-canary"].status == "ok" and outcomes["bad"].status == "failed"
    assert runner.stopped == "ring canary: 1 of 2 device(s) ok (50%), below the 95% gate"
    for later in ("hq-pilot", "hq-rest"):
        assert (outcomes[later].status, outcomes[later].reason) == ("skipped", "gate")
        assert devs[later].requests == []  # not even a login
    assert clock.sleeps == [1800.0]  # the canary ring soaked before it was judged


async def test_rings_run_in_order_when_every_gate_passes(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    devs = spawn(emulators, ["hq-a", "hq-b", "hq-c"])
    inv = inventory(devs, tags={"hq-a": "canary"})
    order: list[str] = []

    class Order(BaseProcessor):
        def device_finished(self, job: JobInfo, outcome: Outcome) -> None:
            order.append(outcome.device)

    clock = FakeClock(datetime(2027, 3, 3, 12, 0, tzinfo=UTC))
    runner = FleetRunner(tls=tls, options=RunOptions(retries=0, concurrency=10, rings=(("canary", "tag=canary"),
                                                                                          ("all", "")), gate=1.0),
                         sleep=clock.sleep, clock=clock, processors=[Order()])
    task = MacroTask("mute", {})
    runner.plan(task, list(inv))
    outcomes = await runner.run(task, list(inv))
    assert [o.status for o in outcomes] == ["ok"] * 3 and runner.stopped is None
    assert order[0] == "hq-a" and sorted(order[1:]) == ["hq-b", "hq-c"]


def test_ring_assignment_and_gate_rules() -> None:
    inv = parse_inventory("defaults: {family: videoos}\ndevices:\n"
                          "  a: {address: 10.0.0.1, tags: [canary]}\n  b: {address: 10.0.0.2, site: hq}\n"
                          "  c: {address: 10.0.0.3, site: hq, tags: [canary]}\n  d: {address: 10.0.0.4}\n")
    rings = ring_of(list(inv), (("canary", "tag=canary"), ("pilot", "site=hq"), ("all", "")))
    assert {k: [d.name for d in v] for k, v in rings.items()} == {"canary": ["a", "c"], "pilot": ["b"], "all": ["d"]}
    ok, bad, skip = (Outcome("x", "ok"), Outcome("y", "failed"), Outcome("z", "skipped", reason="in_call"))
    assert gate_failure("r", [ok, ok, skip], 1.0) is None  # a room in a meeting does not count against it
    assert gate_failure("r", [skip], 0.5) == "ring r: no device ran, so the 50% gate cannot be judged"
    assert gate_failure("r", [ok] * 19 + [bad], 0.95) is None
    assert gate_failure("r", [ok] * 18 + [bad] * 2, 0.95) is not None
