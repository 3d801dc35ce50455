"""Issue 12's must-show, over real HTTPS against emulators of all three families, through the CLI.

Backup -> a key changed behind avctl's back -> drift shows exactly it -> apply sends exactly one
change to exactly that device -> plan is empty; restore; a refused value fails one device and
leaves the others applied; secrets are nowhere in what avctl writes; invalid desired state is
refused with file:line before any device is contacted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from avctl.cli.main import cli
from avctl.emulator.core import EmulatedDevice, EmulatorThread, Recorded
from avctl.emulator.polyuc import EmulatedPolyUC
from avctl.emulator.solstice import EmulatedSolstice
from avctl.emulator.videoos import EmulatedVideoOS

PASSWORD = "Fleet-Login-Pw-7731"
#: secrets the devices hold: none may appear in any file avctl writes or in its output
VIDEOOS_ADMIN = "Vos-Adm1n-Secret-5520"
PHONE_SIP = "Sip-Auth-Secret-8841"

CONFIG = """\
defaults:
  config:
    videoos:
      system.network.wireless.bt.enabled: false
      device.local.devicename: "${room}-codec"
    polyuc:
      up.backlight.idleIntensity: 2
      reg.1.label: "${room}"
    solstice:
      display.presence_bar.show_name: false
      display.name: "${room} pod"
"""


def avctl(*args: str, code: int | None = 0, input: str | None = None) -> str:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    if code is not None:
        assert result.exit_code == code, result.output
    return result.output


def _json(out: str) -> Any:
    return json.loads(out[out.index("{"):])


@pytest.fixture
def fleet(emulators: EmulatorThread, tmp_path: Path, avctl_home: Path) -> Iterator[dict[str, EmulatedDevice]]:
    devs: dict[str, EmulatedDevice] = {}
    for i in range(2):
        devs[f"codec-{i}"] = emulators.add(EmulatedVideoOS(f"codec-{i}", password=PASSWORD, seed=40 + i))
        devs[f"phone-{i}"] = emulators.add(EmulatedPolyUC(f"phone-{i}", password=PASSWORD, seed=50 + i))
        devs[f"pod-{i}"] = emulators.add(EmulatedSolstice(f"pod-{i}", password=PASSWORD, seed=60 + i))
    for d in devs.values():
        if isinstance(d, EmulatedVideoOS):
            d.state.config["device.local.adminpassword"]["value"] = VIDEOOS_ADMIN
        if isinstance(d, EmulatedPolyUC):
            d.phone.config["reg.1.auth.password"].value = PHONE_SIP
    yield devs


def write_inventory(path: Path, devs: dict[str, EmulatedDevice], config: str = CONFIG) -> Path:
    (path.parent / "fleet.password").write_text(PASSWORD + "\n")
    lines = [config.rstrip("\n").replace("defaults:\n", "defaults:\n  password: 'file:fleet.password'\n", 1),
             "devices:"]
    for name, dev in devs.items():
        ports = {k: v for k, v in dev.extra_ports.items() if v}
        extra = f", ports: {json.dumps(ports)}" if ports else ""
        lines.append(f"  {name}: {{family: {dev.family}, address: '{dev.host}:{dev.port}', site: hq, "
                     f"room: r{name[-1]}{name[:2]}{extra}}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _is_write(dev: EmulatedDevice, r: Recorded) -> bool:
    if isinstance(dev, EmulatedVideoOS):
        return r.path == "/rest/config" and b'"vars"' in r.body
    if isinstance(dev, EmulatedPolyUC):
        return r.path.endswith("/mgmt/config/set")
    return r.method in ("PATCH", "POST") and r.path in ("/v2/config", "/api/config")


def writes(dev: EmulatedDevice) -> list[Recorded]:
    """The configuration writes a device received (each family's own form)."""
    return [r for r in dev.requests if _is_write(dev, r)]


def test_backup_drift_apply_then_plan_is_empty(fleet: dict[str, EmulatedDevice], tmp_path: Path,
                                               avctl_home: Path) -> None:
    inv = str(write_inventory(tmp_path / "inventory.yaml", fleet))
    applied = _json(avctl("config", "apply", "-i", inv, "--yes", "--json"))
    assert applied["summary"]["ok"] == 6, applied
    assert fleet["codec-0"].state.config["device.local.devicename"]["value"] == "r0co-codec"  # ${room}
    assert _json(avctl("config", "plan", "-i", inv, "--json"))["changes"] == []

    backup = _json(avctl("config", "backup", "-i", inv, "--json"))
    assert backup["summary"]["ok"] == 6
    assert all(d["data"]["new"] for d in backup["devices"])
    again = _json(avctl("config", "backup", "-i", inv, "--json"))
    assert not any(d["data"]["new"] for d in again["devices"])  # nothing changed: deduplicated

    # behind avctl's back: Bluetooth switched on, on one codec only
    fleet["codec-1"].state.config["system.network.wireless.bt.enabled"]["value"] = "True"
    drift = _json(avctl("config", "drift", "-i", inv, "--json"))
    assert [(r["device"], r["key"], r["current"], r["desired"]) for r in drift["drift"]] == [
        ("codec-1", "system.network.wireless.bt.enabled", "True", "False")]
    assert drift["keys"] == {"system.network.wireless.bt.enabled": 1}

    for d in fleet.values():
        d.requests.clear()
    avctl("config", "apply", "-i", inv, "--yes")
    sent = {name: writes(d) for name, d in fleet.items()}
    assert {name: len(w) for name, w in sent.items() if w} == {"codec-1": 1}
    body = json.loads(sent["codec-1"][0].body)
    assert body == {"vars": [{"name": "system.network.wireless.bt.enabled", "value": "False"}]}
    assert fleet["codec-1"].state.config["system.network.wireless.bt.enabled"]["value"] == "False"
    assert _json(avctl("config", "plan", "-i", inv, "--json"))["changes"] == []
    # the audit log has the one write, under the apply job the journal lists
    rows = json.loads(avctl("audit", "--json", "--since", "1h"))
    last = [r for r in rows if r["job_id"] == max(r["job_id"] for r in rows)]
    assert [(r["device"], r["action"], r["outcome"]) for r in last] == [("codec-1", "config_set", "ok")]
    assert "config-apply" in avctl("jobs", "show", str(last[0]["job_id"]))

    history = json.loads(avctl("config", "history", "codec-1", "--json"))
    assert [h["reason"] for h in history][:2] == ["pre-apply", "backup"]
    diff = _json(avctl("config", "diff", "codec-1", str(history[1]["id"]), str(history[0]["id"]), "--json"))
    assert diff["changes"] == [{"key": "system.network.wireless.bt.enabled", "a": "False", "b": "True"}]


def test_restore_returns_a_device_to_an_earlier_snapshot(fleet: dict[str, EmulatedDevice], tmp_path: Path,
                                                         avctl_home: Path) -> None:
    inv = str(write_inventory(tmp_path / "inventory.yaml", fleet))
    avctl("config", "backup", "-i", inv, "--name", "pod-0", "--name", "phone-0")
    pod, phone = fleet["pod-0"], fleet["phone-0"]
    before_name = pod.state.config["display"]["name"]
    before_light = phone.phone.config["up.backlight.idleIntensity"].current
    avctl("config", "apply", "-i", inv, "--yes", "--name", "pod-0", "--name", "phone-0")
    assert pod.state.config["display"]["name"] == "r0po pod" != before_name
    assert phone.phone.config["up.backlight.idleIntensity"].current == "2" != before_light

    for name in ("pod-0", "phone-0"):
        first = json.loads(avctl("config", "history", name, "--json"))[-1]
        assert first["reason"] == "backup"
        avctl("config", "restore", name, str(first["id"]), "-i", inv, "--yes")
    assert pod.state.config["display"]["name"] == before_name
    assert phone.phone.config["up.backlight.idleIntensity"].current == before_light
    # restored means: the desired state now differs again, on exactly those keys
    plan = _json(avctl("config", "plan", "-i", inv, "--json", "--name", "pod-0", "--name", "phone-0"))
    assert sorted((c["device"], c["key"]) for c in plan["changes"]) == [
        ("phone-0", "reg.1.label"), ("phone-0", "up.backlight.idleIntensity"),
        ("pod-0", "display.name"), ("pod-0", "display.presence_bar.show_name")]


def test_a_refused_value_fails_that_device_and_the_others_are_applied(
        fleet: dict[str, EmulatedDevice], tmp_path: Path, avctl_home: Path) -> None:
    inv = str(write_inventory(tmp_path / "inventory.yaml", fleet))
    # the device refuses the write of this variable (as a system in a partner mode does)
    fleet["codec-0"].state.config["system.network.wireless.bt.enabled"]["isEditable"] = False
    out = _json(avctl("config", "apply", "-i", inv, "--yes", "--json", code=1))
    by = {d["device"]: d for d in out["devices"]}
    assert by["codec-0"]["status"] == "failed"
    assert "system.network.wireless.bt.enabled refused: NOTEDITABLE" in by["codec-0"]["message"]
    assert "applied: device.local.devicename" in by["codec-0"]["message"]
    assert all(by[n]["status"] == "ok" for n in fleet if n != "codec-0")
    assert fleet["codec-1"].state.config["system.network.wireless.bt.enabled"]["value"] == "False"
    assert fleet["pod-1"].state.config["display"]["presence_bar"]["show_name"] is False


def test_secrets_are_in_no_file_and_no_output(fleet: dict[str, EmulatedDevice], tmp_path: Path,
                                              avctl_home: Path) -> None:
    inv = str(write_inventory(tmp_path / "inventory.yaml", fleet))
    # one codec answers its admin password in clear (a firmware that forgets to hide it): the
    # catalogue marks the variable secret, so avctl keeps it out all the same
    fleet["codec-0"].state.config["device.local.adminpassword"]["isSecure"] = False
    codec = fleet["codec-0"]
    revealed = avctl("call", "-f", "videoos", f"{codec.host}:{codec.port}", "config_get",
                     'names=["device.local.adminpassword"]', "--password-file", str(tmp_path / "fleet.password"))
    assert VIDEOOS_ADMIN in revealed  # the device really sends it
    outputs = [avctl("config", "backup", "-i", inv, "--json"),
               avctl("config", "apply", "-i", inv, "--yes", "--json"),
               avctl("config", "drift", "-i", inv, "--csv"),
               avctl("config", "backup", "-i", inv)]
    for name in ("codec-0", "phone-0", "pod-0"):
        history = json.loads(avctl("config", "history", name, "--json"))
        outputs.append(json.dumps(history))
        outputs.append(avctl("config", "diff", name, str(history[-1]["id"]), "-i", inv, "--json"))
    pod_hash = json.dumps(fleet["pod-0"].state.config["security"]["admin_password"])
    salt_hash = [v for v in fleet["pod-0"].state.config["security"]["admin_password"].values()]
    needles = [PASSWORD, VIDEOOS_ADMIN, PHONE_SIP, *salt_hash]
    for text in outputs:
        for needle in needles:
            assert needle not in text, needle
    written = [p for p in [*avctl_home.rglob("*"), *tmp_path.rglob("*")]
               if p.is_file() and p.name not in ("fleet.password",)]
    assert any(p.name.startswith("avctl.db") for p in written)
    for path in written:
        data = path.read_bytes()
        for needle in needles:
            assert needle.encode() not in data, (needle, path)
    snap = json.loads(avctl("config", "history", "codec-0", "--json"))[0]
    assert "device.local.adminpassword" in snap["secrets"]  # said so in the snapshot
    assert pod_hash  # the pod has a password (the needles above were real)


def test_invalid_desired_state_is_refused_with_file_line_before_any_request(
        fleet: dict[str, EmulatedDevice], tmp_path: Path, avctl_home: Path) -> None:
    bad = CONFIG.replace("up.backlight.idleIntensity: 2", "up.backlight.idleIntensity: 9") \
        .replace("display.presence_bar.show_name: false", "display.presence_bar.show_nam: false") \
        .replace("system.network.wireless.bt.enabled: false", "system.network.wireless.bt.enabled: maybe")
    inv = write_inventory(tmp_path / "inventory.yaml", fleet, config=bad)
    lines = inv.read_text().splitlines()

    def line_of(text: str) -> int:
        return next(i for i, line in enumerate(lines, 1) if text in line)

    for command in ("plan", "apply", "drift"):
        out = avctl("config", command, "-i", str(inv), "--yes", code=2)
        assert f"inventory.yaml:{line_of('idleIntensity')}:" in out and "between 0 and 3" in out, out
        assert f"inventory.yaml:{line_of('show_nam:')}:" in out and "show_name" in out, out  # did you mean
        assert f"inventory.yaml:{line_of('bt.enabled')}:" in out, out
        assert "nothing was sent" in out
    assert all(len(d.requests) == 0 for d in fleet.values())


def test_a_scheduled_apply_leaves_a_pod_in_use_alone_when_the_change_restarts_it(
        fleet: dict[str, EmulatedDevice], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a schedule, a change that restarts the device gets --if-idle by default (issue 13)."""
    pods = {name: d for name, d in fleet.items() if name.startswith("pod-")}
    inv = str(write_inventory(tmp_path / "inventory.yaml", pods,
                              config="defaults:\n  config:\n    solstice:\n      display.output_mode: mirror\n"))
    busy = pods["pod-0"]
    assert isinstance(busy, EmulatedSolstice)
    busy.state.connected_users = 1  # someone is sharing to it
    monkeypatch.setenv("AVCTL_SCHEDULE_RUN", "1")  # started by a schedule: no --yes needed, guard on
    result = CliRunner().invoke(cli, ["config", "apply", "-i", inv, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    applied = {d["device"]: d for d in _json(result.stdout)["devices"]}
    assert (applied["pod-0"]["status"], applied["pod-0"]["reason"]) == ("skipped", "in_call")
    assert applied["pod-1"]["status"] == "ok"
    assert writes(busy) == [] and len(writes(pods["pod-1"])) == 1
    assert "devices in a call are skipped" in result.stderr
