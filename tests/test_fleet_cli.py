"""The fleet command line end to end: secrets, imports, inventory list, fleet verbs, jobs, audit.

The last test runs every command that touches a secret and then searches all output, every file
avctl wrote and the captured logs for the secret values.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from avctl.cli.main import cli
from avctl.emulator.core import EmulatorThread
from avctl.fleet.credentials import generate_key

from .test_fleet_runner import SPEC_PATH, spawn

SPEC_OPT = f"--spec=videoos={SPEC_PATH}"


def avctl(*args: str, input: str | None = None, code: int | None = 0) -> str:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    if code is not None:
        assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    k = generate_key()
    monkeypatch.setenv("AVCTL_SECRETS_KEY", k)
    return k


def test_secrets_commands(key: str, avctl_home: Path) -> None:
    out = avctl("secrets", "set", "hq-admin", input="Tr0ub4dor&3\n")
    assert "secret:hq-admin" in out and "Tr0ub4dor" not in out
    assert avctl("secrets", "list").split("\t")[0] == "hq-admin"
    assert "Tr0ub4dor" not in (avctl_home / "secrets.json").read_text()
    avctl("secrets", "rm", "hq-admin")
    assert "no secret named" in avctl("secrets", "rm", "hq-admin", code=2)
    assert len(avctl("secrets", "keygen").strip()) == 44


def test_import_ip_pass_then_status_against_emulators(emulators: EmulatorThread, tmp_path: Path, key: str) -> None:
    devs = spawn(emulators, 3, password="unused")
    for i, d in enumerate(devs):
        d.password = f"pw-{i}-{d.port}"  # every device its own password, as in IP_Pass.txt
    src = tmp_path / "IP_Pass.txt"
    src.write_text("".join(f"127.0.0.1:{d.port},{d.password}\n" for d in devs))
    inv = tmp_path / "inventory.yaml"
    out = avctl("inventory", "import", "ip-pass", str(src), "-o", str(inv), "--site", "hq", "--tag", "seed")
    assert "imported 3 device(s)" in out
    text = inv.read_text()
    assert all(d.password not in text for d in devs) and "secret:videoos-127-0-0-1-" in text
    listed = json.loads(avctl("inventory", "list", "-i", str(inv), "--site", "hq", "--json"))
    assert [x["address"] for x in listed] == [f"127.0.0.1:{d.port}" for d in devs]
    out = avctl("fleet", "status", "-i", str(inv), SPEC_OPT, "--json")
    doc = json.loads(out[out.index("{"):])
    assert doc["summary"] == {"ok": 3, "failed": 0, "unreachable": 0, "skipped": 0, "total": 3}


def test_import_malformed_reports_line(tmp_path: Path) -> None:
    src = tmp_path / "ip.txt"
    src.write_text("10.0.0.1\n10.0.0.2 extra\n")
    out = avctl("inventory", "import", "ip-list", str(src), "-o", str(tmp_path / "i.yaml"), "--password",
                "env:X", code=2)
    assert f"{src}:2: expected one address per line" in out
    assert not (tmp_path / "i.yaml").exists()


def test_inventory_list_selection_and_bad_inventory(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("defaults: {family: videoos, password: env:P}\nsites: {hq: {}, lab: {}}\ndevices:\n"
                   "  hq-1: {address: 10.0.0.1, site: hq, tags: [lobby]}\n"
                   "  hq-2: {address: 10.0.0.2, site: hq}\n"
                   "  lab-1: {address: 10.0.0.3, site: lab, tags: [lobby]}\n")
    names = [d["name"] for d in json.loads(avctl("inventory", "list", "-i", str(inv), "-s", "site=hq,tag=lobby",
                                                 "--json"))]
    assert names == ["hq-1"]
    names = [d["name"] for d in json.loads(avctl("inventory", "list", "-i", str(inv), "--tag", "lobby",
                                                 "--site", "hq", "--site", "lab", "--json"))]
    assert names == ["hq-1", "lab-1"]
    inv.write_text("devices:\n  a: {address: 10.0.0.1, family: videoos, port: x}\n")
    assert f"{inv}:2: devices.a.port: port 'x' is not a number" in avctl("inventory", "list", "-i", str(inv), code=2)


def _fleet(tmp_path: Path, emulators: EmulatorThread, secret_ref: str, n: int, password: str) -> Path:
    devs = spawn(emulators, n, password=password)
    devs[-1].password = "not-what-the-inventory-says"
    for d in devs:
        d.faults.reboot_seconds = 0.3  # later commands in the test find them back up (with retries)
    inv = tmp_path / "inventory.yaml"
    inv.write_text(f"defaults: {{family: videoos, password: '{secret_ref}'}}\nsites: {{hq: {{}}}}\ndevices:\n"
                   + "".join(f"  {d.name}: {{address: '127.0.0.1:{d.port}', site: hq}}\n" for d in devs))
    return inv


def test_disruptive_needs_confirmation_and_exit_codes(emulators: EmulatorThread, tmp_path: Path, key: str) -> None:
    avctl("secrets", "set", "rooms", input="room-pass-1\n")
    inv = _fleet(tmp_path, emulators, "secret:rooms", 3, "room-pass-1")
    out = avctl("fleet", "reboot", "-i", str(inv), SPEC_OPT, code=1)
    assert "reboot on 3 device(s) (videoos: 3) is disruptive" in out and "--yes" in out
    out = avctl("fleet", "reboot", "-i", str(inv), SPEC_OPT, "--yes", "--csv", code=1)  # one wrong password
    rows = out.strip().splitlines()[1:]
    assert [r.split(",")[2] for r in rows if r.startswith("room-")] == ["ok", "ok", "failed"]
    out = avctl("fleet", "run", "audio_volume_set", "volume=20", "-i", str(inv), SPEC_OPT, "--name", "room-0",
                "--json")
    assert json.loads(out[out.index("{"):])["summary"]["ok"] == 1
    assert "no device" in avctl("fleet", "run", "audio_volume_set", "volume=20", "-i", str(inv), "--site",
                                "nowhere", SPEC_OPT, code=2)
    jobs = json.loads(avctl("jobs", "list", "--json"))
    assert [j["task"] for j in jobs] == ["audio_volume_set", "reboot"]
    assert jobs[1]["ok"] == 2 and jobs[1]["failed"] == 1 and jobs[1]["state"] == "finished"
    shown = json.loads(avctl("jobs", "show", str(jobs[1]["id"]), "--json"))
    assert len(shown["devices"]) == 3 and shown["pending"] == []
    audit = json.loads(avctl("audit", "--json"))
    assert [(e["device"], e["action"]) for e in audit][:1] == [("room-0", "audio_volume_set")]
    assert sorted(e["outcome"] for e in audit if e["action"] == "system_reboot") == ["failed", "ok", "ok"]
    assert json.loads(avctl("audit", "--device", "room-2", "--json"))[0]["error_kind"] == "auth"


def test_single_call_is_audited(emulators: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    devs = spawn(emulators, 1, password="single-call-pw")
    monkeypatch.setenv("CALL_PW", "single-call-pw")
    from avctl.spec import load_spec

    monkeypatch.setattr("avctl.cli.call.builtin_spec", lambda fam: load_spec(SPEC_PATH))
    avctl("call", "-f", "videoos", f"127.0.0.1:{devs[0].port}", "audio_volume_set", "volume=12",
          "--password-env", "CALL_PW")
    avctl("call", "-f", "videoos", f"127.0.0.1:{devs[0].port}", "audio_volume_get", "--password-env", "CALL_PW")
    entries = json.loads(avctl("audit", "--json"))
    assert [(e["action"], e["params"], e["outcome"]) for e in entries] == [("audio_volume_set", {"volume": 12}, "ok")]


def test_no_secret_anywhere(emulators: EmulatorThread, tmp_path: Path, key: str, avctl_home: Path,
                            caplog: pytest.LogCaptureFixture) -> None:
    secret = "S3cret-Never-Shown-42"
    caplog.set_level(logging.DEBUG)
    outputs = [avctl("secrets", "set", "rooms", input=f"{secret}\n")]
    inv = _fleet(tmp_path, emulators, "secret:rooms", 3, secret)
    for args in (["fleet", "status"], ["fleet", "reboot", "--yes"], ["fleet", "run", "audio_volume_set", "volume=9"]):
        outputs.append(avctl(*args, "-i", str(inv), SPEC_OPT, code=None))
        outputs.append(avctl(*args, "-i", str(inv), SPEC_OPT, "--json", "--yes", code=None)
                       if args[1] != "status" else avctl(*args, "-i", str(inv), SPEC_OPT, "--json", code=None))
        outputs.append(avctl(*args, "-i", str(inv), SPEC_OPT, "--csv", "--yes", code=None)
                       if args[1] != "status" else avctl(*args, "-i", str(inv), SPEC_OPT, "--csv", code=None))
    outputs += [avctl("jobs", "list"), avctl("jobs", "show", "1"), avctl("jobs", "show", "2", "--json"),
                avctl("audit"), avctl("audit", "--json"), avctl("inventory", "list", "-i", str(inv)),
                avctl("secrets", "list")]
    # a plaintext password in an inventory works, warns, and still never shows
    plain = "Plain-Text-Pw-77"
    devs = spawn(emulators, 1, prefix="plain", password=plain)
    inv2 = tmp_path / "plain.yaml"
    inv2.write_text(f"devices:\n  p1: {{family: videoos, address: '127.0.0.1:{devs[0].port}', password: {plain}}}\n")
    out = avctl("fleet", "status", "-i", str(inv2), SPEC_OPT, "--json")
    assert "plaintext password" in out
    outputs.append(out)
    outputs.append(avctl("fleet", "run", "audio_volume_set", "volume=3", "-i", str(inv2), SPEC_OPT))
    for text in outputs:
        assert secret not in text and plain not in text
    assert secret not in caplog.text and plain not in caplog.text
    files = [p for p in avctl_home.rglob("*") if p.is_file()]
    assert any(p.name == "avctl.db" for p in files)
    for p in files:
        data = p.read_bytes()
        assert secret.encode() not in data and plain.encode() not in data, p
    # the secret really was used: the devices with it answered
    assert json.loads(avctl("jobs", "show", "1", "--json"))["summary"]["ok"] == 2
