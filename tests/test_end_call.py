"""The ``end_call`` verb (a Macro step with ``for_each``): every active call is hung up, by the id
the device lists, against the emulators over real HTTPS on loopback (a pod's end_call, one step
without a list, is in test_first_hour_verbs.py); a device's list is checked like a caller's
parameters before anything is sent."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from avctl.capabilities import MAX_EACH
from avctl.emulator.core import EmulatorThread, reply
from avctl.emulator.polyuc import EmulatedPolyUC
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.emulator.videoos.calls import Conference
from avctl.errors import BadAnswer
from avctl.families import builtin_spec
from avctl.fleet.verbs import MacroTask
from avctl.spec import read_spec
from avctl.transport.tls import TLSPolicy

from .test_capabilities import PASSWORD, SPECS, client


def _now_ms() -> int:
    return int(time.time() * 1000)


def _hangups(emu: Any, method: str, path_part: str) -> int:
    return sum(1 for r in emu.requests if r.method == method and path_part in r.path)


async def test_videoos_end_call_hangs_up_every_conference(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    emu = emulators.add(EmulatedVideoOS("codec-call", password=PASSWORD))
    assert isinstance(emu, EmulatedVideoOS)
    calls = emu.state.calls
    calls.dial(_now_ms(), "far@example.test")
    second = Conference(calls.next_conf, _now_ms())
    calls.conferences[second.id] = second
    calls.next_conf += 1
    calls.dial(_now_ms(), "other@example.test", conf_id=second.id)
    assert len(calls.conferences) == 2
    async with client(emu, tls) as dev:
        results = await dev.run_verb("end_call")
        assert [r.action for r in results] == ["conferences_get", "conferences_hangup", "conferences_hangup"]
        assert calls.conferences == {}
        # idle: the list is read, nothing is hung up
        again = await dev.run_verb("end_call")
        assert [r.action for r in again] == ["conferences_get"]
    assert _hangups(emu, "DELETE", "/rest/conferences/") == 2


async def test_polyuc_end_call_ends_every_call(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    emu = emulators.add(EmulatedPolyUC("phone-call", password=PASSWORD))
    assert isinstance(emu, EmulatedPolyUC)
    emu.inject_incoming_call("1001")
    emu.phone.dial("2002", 1, "SIP")
    assert len(emu.phone.calls) == 2
    async with client(emu, tls) as dev:
        results = await dev.run_verb("end_call")
    assert [r.action for r in results] == ["call_status", "callctrl_end_call", "callctrl_end_call"]
    assert emu.phone.calls == {}


async def test_polyuc_mute_verb_mutes_the_phone(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    emu = emulators.add(EmulatedPolyUC("phone-mute", password=PASSWORD))
    assert isinstance(emu, EmulatedPolyUC)
    async with client(emu, tls) as dev:
        await dev.run_verb("mute")
        assert emu.phone.muted is True
        await dev.run_verb("unmute")
    assert emu.phone.muted is False


def test_end_call_is_disruptive_in_every_family() -> None:
    task = MacroTask("end_call", {})
    for family in ("videoos", "polyuc", "solstice"):  # a pod's session: tests/test_first_hour_verbs.py
        spec = builtin_spec(family)
        assert task.skip_reason(spec) is None
        task.validate(spec)
        assert task.disruptive(spec) and task.changes_state(spec)


def _listing(emu: Any, answer: Any) -> None:
    async def call_status(ctx: Any) -> web.StreamResponse:
        return reply({"Status": "2000", "data": answer})

    emu.on_call_status = call_status


@pytest.mark.parametrize("listing", [
    [{"CallHandle": "not-hex"}],  # does not fit the Ref pattern
    [{"CallHandle": {"nested": 1}}],  # not a scalar
    [{"LineID": "1"}],  # no handle at all
    {"CallHandle": "1a"},  # not a list
    [{"CallHandle": f"{i:x}"} for i in range(1, MAX_EACH + 2)],  # more than avctl follows
])
async def test_a_hostile_call_list_is_refused_and_nothing_is_sent(emulators: EmulatorThread, tls: TLSPolicy,
                                                                  listing: Any) -> None:
    emu = emulators.add(EmulatedPolyUC("phone-hostile", password=PASSWORD))
    _listing(emu, listing)
    async with client(emu, tls) as dev:
        with pytest.raises(BadAnswer):
            await dev.run_verb("end_call")
    assert _hangups(emu, "POST", "/callctrl/endCall") == 0


def test_for_each_needs_a_query_and_each(tmp_path: Path) -> None:
    text = (SPECS / "videoos.md").read_text()
    broken = text.replace("for_each: {action: conferences_get, pointer: /id}",
                          "for_each: {action: conferences_dial, pointer: /id}")
    path = tmp_path / "videoos.md"
    path.write_text(broken)
    issues = [i.message for i in read_spec(path).issues if i.severity == "error"]
    assert any("for_each needs a query" in m for m in issues), issues
    path.write_text(text.replace("params: {conf_id: $each}, for_each: {action: conferences_get, pointer: /id}",
                                 "params: {conf_id: $each}"))
    issues = [i.message for i in read_spec(path).issues if i.severity == "error"]
    assert any("$each needs a for_each" in m for m in issues), issues
