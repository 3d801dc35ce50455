"""The guard, window and ring options of every fleet job command, end to end through the CLI against
emulated codecs (real HTTPS on loopback), and what changes when a schedule starts the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from avctl.cli.main import cli
from avctl.emulator.core import EmulatorThread
from avctl.emulator.videoos import EmulatedVideoOS

PASSWORD = "guard-cli-pw-77"


def avctl(*args: str, code: int | None = 0) -> tuple[str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if code is not None:
        assert result.exit_code == code, result.output + result.stderr
    return result.stdout, result.stderr


def report(stdout: str) -> dict[str, dict[str, object]]:
    doc = json.loads(stdout[stdout.index("{"):])
    return {d["device"]: d for d in doc["devices"]}


@pytest.fixture
def fleet(emulators: EmulatorThread, tmp_path: Path, avctl_home: Path,
          monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, EmulatedVideoOS]]:
    monkeypatch.setenv("GUARD_PW", PASSWORD)
    devs = {n: emulators.add(EmulatedVideoOS(n, password=PASSWORD if n != "hq-bad" else "other-pw", seed=3))
            for n in ("hq-canary", "hq-bad", "hq-room", "lab-room")}
    lines = ["defaults: {family: videoos, password: env:GUARD_PW}",
             "sites:\n  hq: {timezone: Europe/Berlin, window: 'daily 00:00-24:00'}\n  lab: {}", "devices:"]
    for name, emu in devs.items():
        tags = ", tags: [canary]" if name in ("hq-canary", "hq-bad") else ""
        lines.append(f"  {name}: {{address: '127.0.0.1:{emu.port}', site: {name.split('-')[0]}{tags}}}")
    inv = tmp_path / "inventory.yaml"
    inv.write_text("\n".join(lines) + "\n")
    return inv, devs


def reboots(emu: EmulatedVideoOS) -> int:
    return int(emu.state.reboots)


def mutes(emu: EmulatedVideoOS) -> int:
    return sum(1 for r in emu.requests if r.method == "POST" and r.path == "/rest/audio/muted")


def test_a_failed_gate_stops_the_rollout(fleet: tuple[Path, dict[str, EmulatedVideoOS]]) -> None:
    inv, devs = fleet
    out, err = avctl("fleet", "mute", "-i", str(inv), "--site", "hq", "--rings", "canary=tag:canary,all",
                     "--gate", "95%", "--json", code=1)
    rows = report(out)
    assert rows["hq-canary"]["status"] == "ok" and rows["hq-bad"]["status"] == "failed"
    assert (rows["hq-room"]["status"], rows["hq-room"]["reason"]) == ("skipped", "gate")
    assert json.loads(out[out.index("{"):])["stopped"].startswith("ring canary: 1 of 2 device(s) ok (50%)")
    assert "rollout stopped: ring canary" in err
    assert devs["hq-room"].requests == []


def test_the_in_call_guard_from_the_command_line(fleet: tuple[Path, dict[str, EmulatedVideoOS]]) -> None:
    inv, devs = fleet
    room = devs["hq-room"]
    room.state.calls.dial(room.state.now_ms(), "bob@example.com", 1024, "SIP")
    out, _ = avctl("fleet", "reboot", "-i", str(inv), "--name", "hq-room", "--name", "hq-canary", "--if-idle",
                   "--yes", "--json")
    rows = report(out)
    assert (rows["hq-room"]["status"], rows["hq-room"]["reason"]) == ("skipped", "in_call")
    assert rows["hq-canary"]["status"] == "ok"
    assert reboots(room) == 0 and reboots(devs["hq-canary"]) == 1


def test_a_schedule_guards_disruptive_work_by_default(fleet: tuple[Path, dict[str, EmulatedVideoOS]],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    inv, devs = fleet
    room = devs["hq-room"]
    room.state.calls.dial(room.state.now_ms(), "bob@example.com", 1024, "SIP")
    monkeypatch.setenv("AVCTL_SCHEDULE_RUN", "1")  # as a schedule starts it: no --yes, no --if-idle
    out, err = avctl("fleet", "reboot", "-i", str(inv), "--name", "hq-room", "--json")
    assert report(out)["hq-room"]["reason"] == "in_call" and reboots(room) == 0
    assert "devices in a call are skipped (--if-idle" in err
    avctl("fleet", "reboot", "-i", str(inv), "--name", "hq-room", "--ignore-calls", "--json")
    assert reboots(room) == 1
    # a read is not disruptive: no guard is added
    out, err = avctl("fleet", "status", "-i", str(inv), "--name", "lab-room", "--json")
    assert "--if-idle" not in err


def test_a_schedule_run_covers_only_its_time_zones_sites(fleet: tuple[Path, dict[str, EmulatedVideoOS]],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    inv, devs = fleet
    monkeypatch.setenv("AVCTL_SCHEDULE_RUN", "1")
    monkeypatch.setenv("AVCTL_SCHEDULE_SITES", '["lab"]')
    out, _ = avctl("fleet", "mute", "-i", str(inv), "--json")
    assert list(report(out)) == ["lab-room"]
    assert [mutes(devs[n]) for n in ("hq-canary", "hq-room", "lab-room")] == [0, 0, 1]
    monkeypatch.setenv("AVCTL_SCHEDULE_SITES", "hq")
    _, err = avctl("fleet", "mute", "-i", str(inv), code=2)
    assert "AVCTL_SCHEDULE_SITES is not a JSON list of site names" in err


def test_in_window_runs_inside_an_open_window(fleet: tuple[Path, dict[str, EmulatedVideoOS]]) -> None:
    inv, devs = fleet
    out, err = avctl("fleet", "mute", "-i", str(inv), "--name", "hq-room", "--in-window", "--json")
    assert report(out)["hq-room"]["status"] == "ok"
    assert "site hq: window daily 00:00-24:00 (Europe/Berlin): open until" in err
    _, err = avctl("fleet", "mute", "-i", str(inv), "--in-window", code=2)
    assert "--in-window: no maintenance window for site(s) lab" in err
    assert mutes(devs["lab-room"]) == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--rings", "canary=tag:canary,all,pilot=site:hq"], "ring 'all' takes every device left, so it must be the last"),
    (["--rings", "canary=canary"], "'canary' in ring 'canary' is not key:glob"),
    (["--rings", "a=tag:x,a=tag:y"], "ring 'a' is given twice"),
    (["--rings", "a=tag:x", "--gate", "150%"], "--gate: '150%' is not between 0 and 100 %"),
    (["--rings", "a=tag:x", "--gate", "most"], "--gate: 'most' is not a success rate"),
    (["--gate", "95%"], "a gate or a soak time needs rings"),
    (["--wait-idle", "forever"], "'forever' is not a duration"),
])
def test_bad_rollout_options_say_what_to_write(fleet: tuple[Path, dict[str, EmulatedVideoOS]], args: list[str],
                                               message: str) -> None:
    inv, devs = fleet
    _, err = avctl("fleet", "mute", "-i", str(inv), *args, code=2)
    assert message in err
    assert all(mutes(d) == 0 for d in devs.values())
