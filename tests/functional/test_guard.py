"""The in-call guard, for every family: a device in a call (or sharing) is never sent a disruptive
request under ``--if-idle``, and ``--wait-idle`` runs it once the room is idle.

Observations are the emulator's own: its request log (nothing disruptive reached it) and its state
(the reboot happened, or not). Time is a fake clock: waiting sleeps advance it, and the call ends
after a counted number of waits, never on a real timer.
"""

from __future__ import annotations

from typing import Any

import pytest

from avctl.capabilities import describe_verb
from avctl.emulator.core import EmulatorThread
from avctl.fleet.runner import FleetRunner, RunOptions
from avctl.fleet.verbs import MacroTask
from avctl.transport.tls import TLSPolicy

from .adapter import FamilyAdapter
from .families import ADAPTERS

PW_ENV = "AVCTL_GUARD_PW"


class FakeClock:
    """Wall-clock seconds that move only when the runner sleeps; ``on_sleep`` sees each sleep."""

    def __init__(self, start: float = 1_800_000_000.0, on_sleep: Any = None) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(len(self.sleeps))


@pytest.fixture(params=ADAPTERS, ids=repr)
def adapter(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> FamilyAdapter:
    monkeypatch.setenv(PW_ENV, request.param.password)
    return request.param  # type: ignore[no-any-return]


def reboot_requests(adapter: FamilyAdapter, emu: Any) -> list[Any]:
    """Requests the emulator received for any step of the family's reboot verb."""
    spec = adapter.spec
    targets = {(spec.action(step).method, spec.action(step).path) for step in describe_verb(spec, "reboot").steps}
    return [r for r in emu.requests if (r.method, r.path) in targets]


async def run_reboot(adapter: FamilyAdapter, emu: Any, tls: TLSPolicy, clock: FakeClock, **options: Any) -> Any:
    runner = FleetRunner(tls=tls, options=RunOptions(retries=0, **options), sleep=clock.sleep, clock=clock)
    entry = adapter.entry(emu, f"env:{PW_ENV}")
    task = MacroTask("reboot", {})
    runner.plan(task, [entry])
    [outcome] = await runner.run(task, [entry])
    return outcome


async def test_if_idle_sends_nothing_disruptive_to_a_room_in_a_call(
        adapter: FamilyAdapter, emulators: EmulatorThread, tls: TLSPolicy) -> None:
    emu = adapter.spawn(emulators)
    adapter.start_call(emu)
    outcome = await run_reboot(adapter, emu, tls, FakeClock(), if_idle=True)
    assert (outcome.status, outcome.reason) == ("skipped", "in_call"), outcome
    assert "not touched" in (outcome.message or "")
    assert reboot_requests(adapter, emu) == []
    assert len(emu.requests) > 0  # it was asked whether it is in a call: the guard really looked
    assert not emu.is_down


async def test_if_idle_runs_an_idle_room(adapter: FamilyAdapter, emulators: EmulatorThread, tls: TLSPolicy) -> None:
    emu = adapter.spawn(emulators)
    outcome = await run_reboot(adapter, emu, tls, FakeClock(), if_idle=True)
    assert outcome.status == "ok", outcome
    assert len(reboot_requests(adapter, emu)) >= 1


async def test_wait_idle_runs_once_the_call_ends(adapter: FamilyAdapter, emulators: EmulatorThread,
                                                 tls: TLSPolicy) -> None:
    emu = adapter.spawn(emulators)
    adapter.start_call(emu)
    seen_while_busy: list[int] = []

    def after_wait(n: int) -> None:
        seen_while_busy.append(len(reboot_requests(adapter, emu)))
        if n == 3:  # the meeting ends during the third wait
            adapter.end_call(emu)

    clock = FakeClock(on_sleep=after_wait)
    outcome = await run_reboot(adapter, emu, tls, clock, wait_idle=3600.0, idle_poll=60.0)
    assert outcome.status == "ok", outcome
    assert clock.sleeps == [60.0, 60.0, 60.0]
    assert seen_while_busy == [0, 0, 0]  # nothing disruptive while the call lasted
    assert len(reboot_requests(adapter, emu)) >= 1


async def test_wait_idle_gives_up_after_max(adapter: FamilyAdapter, emulators: EmulatorThread,
                                            tls: TLSPolicy) -> None:
    emu = adapter.spawn(emulators)
    adapter.start_call(emu)
    clock = FakeClock()
    outcome = await run_reboot(adapter, emu, tls, clock, wait_idle=600.0, idle_poll=120.0)
    assert (outcome.status, outcome.reason) == ("skipped", "in_call"), outcome
    assert "after waiting 10 min" in (outcome.message or "")
    assert sum(clock.sleeps) <= 600.0 and len(clock.sleeps) == 5
    assert reboot_requests(adapter, emu) == []
