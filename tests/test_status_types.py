"""`fleet status` checks each Feedback against its declared type: an answer of the wrong shape is
reported as unavailable (with the reason), never read as a made-up value; a device none of whose
answers fit ends `failed [bad_answer]`, not `ok`.

The end-to-end tests run the fleet runner against emulated devices of every family over real
HTTPS on loopback, one action (or every action) patched to answer an HTML page.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from avctl.capabilities import read_feedback
from avctl.emulator.core import Ctx, EmulatedDevice, EmulatorThread
from avctl.emulator.polyuc import EmulatedPolyUC
from avctl.emulator.solstice import EmulatedSolstice
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.families import builtin_spec
from avctl.fleet.credentials import CredentialResolver
from avctl.fleet.inventory import parse_inventory
from avctl.fleet.jobs import spec_provider
from avctl.fleet.results import Outcome
from avctl.fleet.runner import FleetRunner, RunOptions
from avctl.fleet.verbs import StatusTask
from avctl.spec.model import Feedback
from avctl.transport.tls import KnownHosts, TLSPolicy

PASSWORD = "status-pw-7Qe"
GARBAGE = "<html><body><h1>It works!</h1></body></html>"

#: per family: its emulator, the action that feeds in_call, a reading from another action
FAMILIES: dict[str, tuple[type[EmulatedDevice], str, str]] = {
    "videoos": (EmulatedVideoOS, "conferences_get", "model"),
    "polyuc": (EmulatedPolyUC, "call_status", "model"),
    "solstice": (EmulatedSolstice, "v1_stats_get", "model"),
}


async def garbage(ctx: Ctx) -> web.StreamResponse:
    return web.Response(text=GARBAGE, content_type="text/html")


def answer_garbage_for(dev: EmulatedDevice, action_id: str) -> None:
    setattr(dev, f"on_{action_id}", garbage)


def answer_garbage_always(dev: EmulatedDevice) -> None:
    async def dispatch(ctx: Ctx) -> web.StreamResponse:
        return await garbage(ctx)

    dev.dispatch = dispatch  # type: ignore[method-assign]


async def run_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, devs: list[EmulatedDevice]) -> dict[str, Outcome]:
    monkeypatch.setenv("STATUS_PW", PASSWORD)
    lines = ["defaults: {password: env:STATUS_PW}", "devices:"]
    for d in devs:
        ports = "".join(f", ports: {{http: {d.extra_ports['http']}, https: {d.extra_ports['https']}}}"
                        for _ in [0] if d.family == "solstice")
        lines.append(f"  {d.name}: {{family: {d.family}, address: '127.0.0.1:{d.port}'{ports}}}")
    inv = parse_inventory("\n".join(lines) + "\n")
    runner = FleetRunner(specs=spec_provider(), tls=TLSPolicy.pinned(KnownHosts(tmp_path / "known_devices")),
                         resolver=CredentialResolver(base_dir=tmp_path), options=RunOptions(retries=0))
    return {o.device: o for o in await runner.run(StatusTask(), list(inv))}


@pytest.mark.parametrize("family", list(FAMILIES))
async def test_garbage_for_one_reading_is_unavailable_not_made_up(
    emulators: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, family: str
) -> None:
    cls, in_call_action, other = FAMILIES[family]
    dev = emulators.add(cls(f"{family}-garbled", password=PASSWORD))
    answer_garbage_for(dev, in_call_action)
    clean = emulators.add(cls(f"{family}-clean", password=PASSWORD))
    by = await run_status(tmp_path, monkeypatch, [dev, clean])
    out = by[dev.name]
    assert out.status == "ok", out
    assert out.data["reachable"] is True and out.data["in_call"] is None
    assert out.data["unavailable"]["in_call"] == f"{in_call_action}: answer is not JSON"
    assert isinstance(out.data[other], str) and out.data[other]  # what did fit is still reported
    assert GARBAGE not in str(out.data)
    # the same family answering properly: nothing unavailable because of the check
    good = by[clean.name]
    assert good.status == "ok" and "in_call" not in good.data.get("unavailable", {}), good.data


@pytest.mark.parametrize("family", list(FAMILIES))
async def test_garbage_for_every_reading_fails_the_device(
    emulators: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, family: str
) -> None:
    cls, _, _ = FAMILIES[family]
    dev = emulators.add(cls(f"{family}-garbled", password=PASSWORD))
    answer_garbage_always(dev)
    out = (await run_status(tmp_path, monkeypatch, [dev]))[dev.name]
    assert out.status == "failed" and out.reason == "bad_answer", out
    assert "answer is not JSON" in (out.message or "")
    assert out.attempts == 1  # a wrong answer is not retried


def fb(type_: str, pointer: str = "", how: str | None = None) -> Feedback:
    return Feedback(id="x", type=type_, action="a", pointer=pointer, transform=how)


QUERY = builtin_spec("videoos").action("system_get")


@pytest.mark.parametrize(("data", "feedback", "expected"), [
    # fits
    ({"model": "G7500"}, fb("string", "/model"), ("G7500", None)),
    ({"uptime": 12.5}, fb("number", "/uptime"), (12.5, None)),
    (31, fb("integer"), (31, None)),
    ([], fb("boolean", "", "nonempty"), (False, None)),
    ({"M": "True"}, fb("boolean", "/M", "bool"), (True, None)),
    ({"UpTime": {"Days": "1", "Hours": "0", "Minutes": "0", "Seconds": "5"}}, fb("integer", "/UpTime", "seconds"),
     (86405.0, None)),
    ({"n": "3"}, fb("integer", "/n", "int"), (3, None)),
    ({}, fb("string", "/model"), (None, None)),  # absent: devices differ in what they report
    # does not fit
    ("<html>", fb("boolean", "", "nonempty"), (None, "answer is not JSON")),
    ([1, 2], fb("string", "/model"), (None, "the answer is an array, not an object with /model")),
    ({"a": "text"}, fb("string", "/a/b"), (None, "/a is text, not an object with /a/b")),
    ({"model": 7}, fb("string", "/model"), (None, "/model is a number, not string")),
    ({"uptime": "soon"}, fb("number", "/uptime"), (None, "/uptime is text, not number")),
    ({"uptime": True}, fb("number", "/uptime"), (None, "/uptime is a boolean, not number")),
    ("loud", fb("integer"), (None, "answer is not JSON")),
    ({"M": "maybe"}, fb("boolean", "/M", "bool"), (None, "/M is text, which does not read as boolean (bool)")),
    ({"M": [1]}, fb("boolean", "/M", "bool"), (None, "/M is an array, which does not read as boolean (bool)")),
    ({"n": "lots"}, fb("integer", "/n", "int"), (None, "/n is text, which does not read as integer (int)")),
    ({"UpTime": {"a": 1}}, fb("integer", "/UpTime", "seconds"),
     (None, "/UpTime is an object, which does not read as integer (seconds)")),
    ({"c": "yes please"}, fb("boolean", "/c", "nonempty"),
     (None, "/c is text, which does not read as boolean (nonempty)")),
])
def test_read_feedback_checks_the_declared_type(data: Any, feedback: Feedback, expected: tuple[Any, Any]) -> None:
    assert read_feedback(QUERY, data, feedback) == expected


def test_json_text_is_a_value_when_the_action_answers_text() -> None:
    text_action = dataclasses.replace(QUERY, response="text")
    assert read_feedback(text_action, "hello", fb("string")) == ("hello", None)
