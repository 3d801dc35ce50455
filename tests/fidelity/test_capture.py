"""Capture -> redact -> emulate: the round trip of issue 14's device profiles.

Over real HTTPS on loopback: `avctl.capture` (and the `avctl capture` command) reads an emulated
device of each family, the profile is written and read back, `avctl emulate --profile` serves it,
and a second capture of the served device gives the same reads. Nothing identifying survives
redaction; state changes still show through a served profile; bad profile files are refused with
where and why.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from avctl import Credentials, Device, TLSPolicy
from avctl.capture import capture, plan_reads
from avctl.emulator.core import EmulatedDevice, EmulatorThread, emulator_class
from avctl.emulator.profiled import attach, profile_settings
from avctl.errors import AuthenticationError, UsageError
from avctl.families import builtin_spec
from avctl.profile import Profile, load_profile, save_profile

FAMILIES = ("videoos", "polyuc", "solstice")
PASSWORD = "Capture-Pw-4711"
#: a loopback address of its own, so that the device's address in an answer is recognisable
HOST = "127.0.0.47"


def _device(emu: EmulatorThread, family: str, **settings: Any) -> EmulatedDevice:
    return emu.add(emulator_class(family)(f"{family}-cap", HOST, password=PASSWORD, **settings))


def _client(dev: EmulatedDevice, password: str = PASSWORD) -> Device:
    return Device(dev.family, dev.host, port=dev.port, credentials=Credentials(dev.user, password),
                  tls=TLSPolicy.insecure(), ports=dict(dev.extra_ports) or None)


async def _capture(dev: EmulatedDevice) -> Profile:
    async with _client(dev) as client:
        return await capture(client)


def _reads(profile: Profile) -> dict[str, tuple[int, Any]]:
    return {e.key(): (e.status, e.answer) for e in profile.exchanges}


def _identifiers(dev: EmulatedDevice) -> list[str]:
    """Values of the emulated device that must not be in its profile."""
    out = [PASSWORD, HOST]
    state: Any = getattr(dev, "state", None)
    phone: Any = getattr(dev, "phone", None)
    if dev.family == "videoos":
        out += [state.serial, state.system_name]
    if dev.family == "polyuc":
        out += [phone.mac, *(line.address for line in phone.lines if getattr(line, "address", ""))]
    return [v for v in out if v]


@pytest.mark.parametrize("family", FAMILIES)
def test_round_trip_serves_every_captured_read_identically(family: str, tmp_path: Path) -> None:
    with EmulatorThread() as emu:
        original = _device(emu, family)
        first = asyncio.run(_capture(original))
        assert len(first.exchanges) >= 15 and first.model and first.firmware
        path = tmp_path / f"{family}.json"
        save_profile(first, path)
        loaded = load_profile(path)
        assert _reads(loaded) == _reads(first)
        cls = emulator_class(family)
        served = emu.add(attach(cls("served", "127.0.0.48", password="other-pw-0815",
                                    **profile_settings(loaded, {})), loaded))

        async def again() -> Profile:
            async with Device(family, served.host, port=served.port,
                              credentials=Credentials(served.user, "other-pw-0815"),
                              tls=TLSPolicy.insecure(), ports=dict(served.extra_ports) or None) as client:
                return await capture(client)

        second = asyncio.run(again())
    assert _reads(second) == _reads(first)
    assert {r.placeholder for r in second.redactions} <= {r.placeholder for r in first.redactions}


@pytest.mark.parametrize("family", FAMILIES)
def test_nothing_identifying_survives_and_the_report_says_where(family: str, tmp_path: Path) -> None:
    with EmulatorThread() as emu:
        dev = _device(emu, family)
        profile = asyncio.run(_capture(dev))
        secrets = _identifiers(dev)
    path = tmp_path / "p.json"
    save_profile(profile, path)
    text = path.read_text()
    for value in secrets:
        assert value not in text, f"{value!r} survived redaction"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    kinds = {r.kind for r in profile.redactions}
    assert "address" in kinds
    assert all(r.where for r in profile.redactions)
    doc = json.loads(text)
    assert doc["redacted"] and all(item["placeholder"] in text for item in doc["redacted"])
    if family == "videoos":
        assert {"serial", "name"} <= kinds
    if family == "polyuc":
        assert {"mac", "user"} <= kinds
    if family == "solstice":
        assert "secret" in kinds  # the admin password's hash and salt


def test_the_plan_reads_only_queries_and_says_what_it_leaves_out() -> None:
    for family in FAMILIES:
        spec = builtin_spec(family)
        reads, skipped = plan_reads(spec)
        assert all(spec.action(r.action).kind == "query" for r in reads)
        reasons = {s.action: s.reason for s in skipped}
        assert all(spec.action(a).kind == "query" for a in reasons)
    reads, skipped = plan_reads(builtin_spec("videoos"))
    reasons = {s.action: s.reason for s in skipped}
    assert reasons["system_logs_get"] == "a download: not kept in a profile"
    assert reasons["conferences_get_one"] == "needs a value for conf_id"
    assert "system_network_ping" in reasons  # a ping needs a destination: never guessed
    # Poly UC reads its catalogue's parameters by name, about 20 per request
    uc_reads, _ = plan_reads(builtin_spec("polyuc"))
    names = [n for r in uc_reads if r.action == "config_get" for n in r.params["names"]]
    assert "apps.restapi.enabled" in names


def test_a_rejected_login_stops_the_capture_after_one_attempt(tmp_path: Path) -> None:
    with EmulatorThread() as emu:
        dev = _device(emu, "videoos")

        async def run() -> None:
            async with _client(dev, password="wrong-password") as client:
                await capture(client)

        with pytest.raises(AuthenticationError):
            asyncio.run(run())
        assert dev.login_attempts == 1  # type: ignore[attr-defined]


def test_state_changes_show_through_a_served_profile() -> None:
    with EmulatorThread() as emu:
        profile = asyncio.run(_capture(_device(emu, "videoos")))
        # what a recording says wins over the emulator where nothing changed it
        for i, e in enumerate(profile.exchanges):
            if e.action == "system_get":
                profile.exchanges[i] = type(e)(**{**e.__dict__, "answer": {**e.answer, "softwareVersion": "9.9.9-rec",
                                                                          "recordedOnly": "kept"}})
        served = emu.add(attach(emulator_class("videoos")("served", "127.0.0.49", password=PASSWORD), profile))

        async def run() -> tuple[Any, Any, Any, Any]:
            async with _client(served) as client:
                before = (await client.call("audio_muted_get")).data
                await client.call("audio_muted_set", muted=not before)
                after = (await client.call("audio_muted_get")).data
                system = (await client.call("system_get")).data
                return before, after, system, await client.status()

        before, after, system, status = asyncio.run(run())
    assert after == (not before)
    assert system["softwareVersion"] == "9.9.9-rec" and system["recordedOnly"] == "kept"
    assert status.firmware == "9.9.9-rec"


def test_a_call_on_a_served_phone_shows_in_the_call_status() -> None:
    with EmulatorThread() as emu:
        profile = asyncio.run(_capture(_device(emu, "polyuc")))
        served = emu.add(attach(emulator_class("polyuc")("served", "127.0.0.50", password=PASSWORD,
                                                        **profile_settings(profile, {})), profile))

        async def run() -> tuple[Any, Any, Any]:
            async with _client(served) as client:
                idle = (await client.call("call_status")).data
                await client.call("callctrl_dial", Dest="1234", Line=1)
                busy = (await client.call("call_status")).data
                info = (await client.call("device_info")).data
                return idle, busy, info

        idle, busy, info = asyncio.run(run())
    recorded_info = next(e.answer["data"] for e in profile.exchanges if e.action == "device_info")
    assert idle != busy and "1234" in json.dumps(busy)
    assert info["MACAddress"] == recorded_info["MACAddress"] == "00005e005301"


def test_a_read_the_profile_lacks_is_answered_by_the_emulator() -> None:
    with EmulatorThread() as emu:
        profile = asyncio.run(_capture(_device(emu, "solstice")))
        profile.exchanges = [e for e in profile.exchanges if e.action != "info_get"]
        served = emu.add(attach(emulator_class("solstice")("served", "127.0.0.51", password=PASSWORD), profile))

        async def run() -> Any:
            async with _client(served) as client:
                return (await client.call("info_get")).data

        assert isinstance(asyncio.run(run()), dict)


@pytest.mark.parametrize(("content", "words"), [
    ("{not json", "p.json:1:2: not JSON"),
    ('{"avctl_profile": 1, "family": "polyuc", "reads": [{"action": "x", "request": {"method": "GET"},'
     ' "response": {"status": 200, "json": {}}}]}', "at reads/0/request: 'path' is a required property"),
    ('{"avctl_profile": 2, "family": "polyuc", "reads": []}', "at avctl_profile: 1 was expected"),
    ("[]", "a JSON object is expected"),
])
def test_a_bad_profile_file_is_refused_with_where_and_why(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(UsageError) as err:
        load_profile(path)
    assert words in str(err.value)


def test_a_profile_with_a_route_the_spec_lacks_is_refused() -> None:
    profile = Profile.from_json({"avctl_profile": 1, "family": "polyuc", "reads": [
        {"action": "made_up", "request": {"method": "GET", "path": "/api/v9/nothing"},
         "response": {"status": 200, "json": {}}}]})
    dev = emulator_class("polyuc")("p")
    with pytest.raises(UsageError, match="no such route"):
        attach(dev, profile)
    with pytest.raises(UsageError, match="profile is of a polyuc device, not videoos"):
        attach(emulator_class("videoos")("v"), profile)


def _avctl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "avctl", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_the_capture_command_writes_the_profile_and_shows_what_it_redacted(tmp_path: Path) -> None:
    out = tmp_path / "phone.json"
    with EmulatorThread() as emu:
        dev = _device(emu, "polyuc")
        env = {"PHONE_PW": PASSWORD}
        done = _avctl("capture", "-f", "polyuc", f"{dev.host}:{dev.port}", "-o", str(out), "--user", dev.user,
                      "--password-env", "PHONE_PW", env=env)
        again = _avctl("capture", "-f", "polyuc", f"{dev.host}:{dev.port}", "-o", str(out), "--user", dev.user,
                       "--password-env", "PHONE_PW", env=env)
        mac = dev.phone.mac  # type: ignore[attr-defined]
    assert done.returncode == 0, done.stderr
    assert "reads of a polyuc VVX 450" in done.stdout
    assert "mac      -> 00005e005301  at device_info /data/MACAddress" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr and mac not in done.stdout + done.stderr
    assert load_profile(out).model == "VVX 450"
    assert again.returncode != 0 and "exists" in again.stderr and "--overwrite" in again.stderr
    assert "Traceback" not in again.stderr


def test_emulate_refuses_a_profile_of_another_family(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"avctl_profile": 1, "family": "polyuc", "reads": []}))
    done = _avctl("emulate", "videoos", "--profile", str(path))
    assert done.returncode != 0
    assert "a profile of a polyuc device, not videoos" in done.stderr and "Traceback" not in done.stderr
    missing = _avctl("emulate", "videoos", "--profile", "no-such-model")
    assert "no profile file or shipped profile named 'no-such-model'" in missing.stderr


def test_a_capture_stops_keeping_answers_past_its_size_cap() -> None:
    with EmulatorThread() as emu:
        dev = _device(emu, "solstice")

        async def run() -> Profile:
            async with _client(dev) as client:
                return await capture(client, max_bytes=2000)

        profile = asyncio.run(run())
    capped = [s for s in profile.skipped if "passed 2000 bytes" in s.reason]
    assert profile.exchanges and capped
    assert len(profile.exchanges) + len(capped) == len(plan_reads(builtin_spec("solstice"))[0])


def test_avctl_emulate_serves_a_captured_profile_over_https(tmp_path: Path) -> None:
    import signal

    with EmulatorThread() as emu:
        profile = asyncio.run(_capture(_device(emu, "polyuc", model="Trio 8800", firmware="7.2.2.1094")))
    path = tmp_path / "trio.json"
    save_profile(profile, path)
    recorded = next(e.answer["data"] for e in profile.exchanges if e.action == "device_info")
    proc = subprocess.Popen([sys.executable, "-m", "avctl", "emulate", "polyuc", "--profile", str(path), "--json",
                             "--host", "127.0.0.52"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = []
        while not lines or lines[-1].rstrip() != "]":
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            lines.append(line)
        info = json.loads("".join(lines))[0]
        assert info["profile"] == f"Trio 8800 7.2.2.1094 ({len(profile.exchanges)} reads)"
        assert info["model"] == "Trio 8800"
        host, port = info["address"].rsplit(":", 1)

        async def read() -> Any:
            async with Device("polyuc", host, port=int(port), credentials=Credentials(info["user"], info["password"]),
                              tls=TLSPolicy.insecure()) as client:
                return (await client.call("device_info")).data, await client.status()

        served, status = asyncio.run(read())
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert proc.returncode == 0
    assert served == recorded
    assert (status.model, status.firmware) == ("Trio 8800", "7.2.2.1094")


def test_a_value_found_again_inside_other_text_is_replaced_and_reported() -> None:
    from avctl.profile import Scrubber

    scrubber = Scrubber()
    first = scrubber.scrub({"serialNumber": "8L19A4450626DF", "systemName": "Boardroom-4th-Floor"}, "system_get ")
    later = scrubber.scrub({"url": "https://example.net/device/8L19A4450626DF/logs",
                            "note": "Boardroom-4th-Floor codec"}, "status_get ")
    done = scrubber.finish(later, "status_get ")
    assert first == {"serialNumber": "X0000000000001", "systemName": "name-1"}
    assert "8L19A4450626DF" not in json.dumps(done) and "Boardroom-4th-Floor" not in json.dumps(done)
    places = {r.placeholder: r.where for r in scrubber.report()}
    assert "status_get /url" in places["X0000000000001"] and "status_get /note" in places["name-1"]
