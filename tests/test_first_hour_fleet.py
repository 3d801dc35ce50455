"""Issue 15, fleet commands: credentials checked before a job, --password-env/--password-file,
--dry-run (nothing sent: the emulators count the requests), prompts that name the devices,
--json with --csv refused, -q silent, did-you-mean for actions and verbs.

Every command is the real `avctl` (click's runner) against emulated codecs over HTTPS on loopback.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from click.testing import CliRunner, Result

from avctl.cli.main import cli
from avctl.emulator.core import EmulatorThread
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.redact import MASK

from .test_fleet_runner import SPEC_PATH, spawn

SPEC_OPT = f"--spec=videoos={SPEC_PATH}"
PW = "first-hour-pw-7Qx"


def run(*args: str, code: int | None = 0, env: Mapping[str, str | None] | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, env=env)
    if code is not None:
        assert result.exit_code == code, result.output
    return result


def inventory(tmp_path: Path, devs: list[EmulatedVideoOS], defaults: str = "family: videoos",
              extra: str = "") -> Path:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(f"defaults: {{{defaults}}}\nsites: {{hq: {{}}, lab: {{}}}}\ndevices:\n"
                   + "".join(f"  {d.name}: {{address: '127.0.0.1:{d.port}', site: {'hq' if i % 2 else 'lab'}}}\n"
                             for i, d in enumerate(devs)) + extra)
    return inv


def requests(devs: list[EmulatedVideoOS]) -> int:
    return sum(d.requests.total for d in devs)


def jobs() -> list[dict[str, object]]:
    listed: list[dict[str, object]] = json.loads(run("jobs", "list", "--json").stdout)
    return listed


def test_unresolvable_references_fail_once_listing_every_one_before_anything_is_sent(
        emulators: EmulatorThread, tmp_path: Path) -> None:
    devs = spawn(emulators, 4, password=PW)
    inv = tmp_path / "inventory.yaml"
    inv.write_text("defaults: {family: videoos}\nsites:\n  hq: {password: env:FH_HQ_PW}\n"
                   "  lab: {password: secret:lab-admin}\ndevices:\n"
                   + "".join(f"  {d.name}: {{address: '127.0.0.1:{d.port}', site: {'hq' if i < 3 else 'lab'}}}\n"
                             for i, d in enumerate(devs)))
    unset = {"FH_HQ_PW": None}
    r = run("fleet", "status", "-i", str(inv), SPEC_OPT, code=2, env=unset)
    errors = [line for line in r.stderr.splitlines() if line.startswith("avctl: error:")]
    assert len(errors) == 2, r.stderr
    assert "password env:FH_HQ_PW of room-0, room-1, room-2: environment variable FH_HQ_PW" in errors[0]
    assert "password secret:lab-admin of room-3: no secret named 'lab-admin'" in errors[1]
    assert "4 device(s) have no usable password; nothing was sent to any device" in r.stderr
    assert requests(devs) == 0 and jobs() == []
    # the same for every disruptive command and the config commands: checked before any prompt or I/O
    r = run("fleet", "reboot", "-i", str(inv), SPEC_OPT, "--yes", code=2, env=unset)
    assert "FH_HQ_PW" in r.stderr and requests(devs) == 0
    r = run("config", "apply", "-i", str(inv), SPEC_OPT, "--yes", code=2, env=unset)
    assert "FH_HQ_PW" in r.stderr and requests(devs) == 0


def test_password_env_and_file_give_the_devices_without_one_a_password(
        emulators: EmulatorThread, tmp_path: Path) -> None:
    devs = spawn(emulators, 2, password=PW)
    inv = inventory(tmp_path, devs)
    r = run("fleet", "status", "-i", str(inv), SPEC_OPT, "--password-env", "FH_PW", "--json", env={"FH_PW": PW})
    assert json.loads(r.stdout)["summary"]["ok"] == 2
    assert PW not in r.output
    pw_file = tmp_path / "pw.txt"
    pw_file.write_text(PW + "\n")
    r = run("fleet", "run", "audio_volume_set", "volume=30", "-i", str(inv), SPEC_OPT, "--password-file",
            str(pw_file), "--json")
    assert json.loads(r.stdout)["summary"]["ok"] == 2
    assert [d.state.volume for d in devs] == [30, 30]
    # an unset variable or a missing file: one error before anything is sent
    before = requests(devs)
    r = run("fleet", "status", "-i", str(inv), SPEC_OPT, "--password-env", "FH_NOT_SET", code=2)
    assert "password env:FH_NOT_SET of room-0, room-1: environment variable FH_NOT_SET" in r.stderr
    r = run("fleet", "status", "-i", str(inv), SPEC_OPT, "--password-file", str(tmp_path / "nope"), code=2)
    assert "cannot read credential file" in r.stderr and requests(devs) == before
    r = run("fleet", "status", "-i", str(inv), SPEC_OPT, "--password-file", str(pw_file), "--password-env", "X",
            code=2)
    assert "contradict" in r.stderr


def test_dry_run_sends_nothing_records_nothing_and_masks_secrets(emulators: EmulatorThread, tmp_path: Path) -> None:
    devs = spawn(emulators, 3, password=PW)
    inv = inventory(tmp_path, devs, defaults="family: videoos, password: env:FH_PW",
                    extra="  off: {address: '127.0.0.1:9', disabled: true}\n")
    env = {"FH_PW": PW}
    r = run("fleet", "reboot", "-i", str(inv), SPEC_OPT, "--dry-run", env=env)  # no --yes needed: nothing is sent
    assert "dry run: reboot would be sent to 3 device(s); 1 skipped; nothing sent, no job recorded" in r.stdout
    assert "  send  room-0 (videoos, site lab) at 127.0.0.1:" in r.stdout and "[disruptive]" in r.stdout
    assert "  skip  off (videoos): excluded: disabled in the inventory" in r.stdout
    r = run("fleet", "run", "audio_volume_set", "volume=40", "-i", str(inv), SPEC_OPT, "--dry-run", "--json",
            env=env)
    doc = json.loads(r.stdout)
    assert doc["task"] == "audio_volume_set" and doc["params"] == {"volume": "40"}
    assert [d["device"] for d in doc["run"]] == ["room-0", "room-1", "room-2"]
    assert [(s["device"], s["reason"]) for s in doc["skip"]] == [("off", "excluded")]
    # a parameter the spec marks secret is masked (the built-in spec: calendar_discover's password)
    r = run("fleet", "run", "calendar_discover", "domain=email", "email=a@example.com", "password=@env:FH_PW",
            "-i", str(inv), "--dry-run", "--json", env=env)
    assert PW not in r.output and json.loads(r.stdout)["params"]["password"] == MASK
    # the task is validated per family as for a real run
    r = run("fleet", "run", "audio_volume_set", "volume=400", "-i", str(inv), SPEC_OPT, "--dry-run", code=2, env=env)
    assert "volume" in r.stderr
    r = run("fleet", "status", "-i", str(inv), SPEC_OPT, "--dry-run", env=env)
    assert "dry run: status would be sent to 3 device(s)" in r.stdout
    r = run("config", "apply", "-i", str(inv), SPEC_OPT, "--dry-run", code=2, env=env)
    assert "no selected device has a desired configuration" in r.stderr
    assert requests(devs) == 0 and jobs() == []


def test_config_apply_and_restore_dry_run(emulators: EmulatorThread, tmp_path: Path) -> None:
    devs = spawn(emulators, 2, password=PW)
    key = "system.network.wireless.bt.enabled"
    inv = inventory(tmp_path, devs,
                    defaults=f"family: videoos, password: env:FH_PW, config: {{videoos: {{{key}: false}}}}")
    r = run("config", "apply", "-i", str(inv), "--dry-run", env={"FH_PW": PW})
    assert "dry run: config-apply on 2 device(s); nothing sent, no job recorded" in r.stdout
    assert f'  send  room-0 (videoos, site lab) at 127.0.0.1:{devs[0].port}: {key}="False"' in r.stdout
    doc = json.loads(run("config", "apply", "-i", str(inv), "--dry-run", "--json", env={"FH_PW": PW}).stdout)
    assert [(d["device"], d["keys"]) for d in doc["devices"]] == [("room-0", {key: "False"}),
                                                                  ("room-1", {key: "False"})]
    assert requests(devs) == 0 and jobs() == []
    run("config", "backup", "-i", str(inv), "--name", "room-0", "-q", env={"FH_PW": PW})  # reads: a snapshot
    before, recorded = requests(devs), len(jobs())
    r = run("config", "restore", "room-0", "latest", "-i", str(inv), "--dry-run", env={"FH_PW": PW})
    assert "dry run: config-restore on 1 device(s); nothing sent, no job recorded" in r.stdout
    assert "  send  room-0 (videoos, site lab)" in r.stdout
    assert requests(devs) == before and len(jobs()) == recorded


def test_prompt_names_the_first_devices_and_where_to_see_all(emulators: EmulatorThread, tmp_path: Path) -> None:
    devs = spawn(emulators, 12, password=PW)
    inv = inventory(tmp_path, devs, defaults="family: videoos, password: env:FH_PW")
    r = run("fleet", "reboot", "-i", str(inv), SPEC_OPT, code=1, env={"FH_PW": PW})  # no terminal, no --yes
    listed = [line.strip() for line in r.stderr.splitlines() if line.startswith("  ")]
    assert listed[:10] == [f"room-{i} (videoos, site {'hq' if i % 2 else 'lab'})" for i in range(10)]
    assert listed[10] == "... and 2 more (the full list: the same command with --dry-run)"
    assert "reboot on 12 device(s) (videoos: 12) is disruptive and needs confirmation" in r.stderr
    assert requests(devs) == 0 and jobs() == []


def test_json_with_csv_is_refused_and_quiet_prints_nothing(emulators: EmulatorThread, tmp_path: Path) -> None:
    devs = spawn(emulators, 2, password=PW)
    inv = inventory(tmp_path, devs, defaults="family: videoos, password: env:FH_PW",
                    extra="  gone: {address: '127.0.0.1:9'}\n")
    env = {"FH_PW": PW}
    for args in (["fleet", "status", "-i", str(inv), SPEC_OPT], ["jobs", "show", "1"], ["audit"],
                 ["config", "drift", "-i", str(inv)], ["firmware", "report", "-i", str(inv)]):
        r = run(*args, "--json", "--csv", code=2, env=env)
        assert "avctl: error: --json and --csv cannot be used together" in r.stderr, args
    assert requests(devs) == 0
    r = run("fleet", "status", "-i", str(inv), SPEC_OPT, "-q", "--timeout", "5", "--retries", "0", code=1, env=env)
    # one device unreachable: only the exit code says so (a first pin is still said: it is about trust)
    notices = [line for line in r.stderr.splitlines() if not line.startswith("avctl: pinned NEW fingerprint")]
    assert r.stdout == "" and notices == []
    r = run("fleet", "status", "-i", str(inv), SPEC_OPT, "-q", "--name", "room-*", env=env)
    assert r.stdout == "" and r.stderr == ""
    assert requests(devs) > 0


def test_did_you_mean_for_actions_and_verbs(emulators: EmulatorThread, tmp_path: Path) -> None:
    devs = spawn(emulators, 1, password=PW)
    inv = inventory(tmp_path, devs, defaults="family: videoos, password: env:FH_PW")
    r = run("fleet", "run", "audio_volume_sett", "volume=3", "-i", str(inv), SPEC_OPT, code=2, env={"FH_PW": PW})
    assert "no selected device can run 'audio_volume_sett'" in r.stderr
    assert "did you mean 'audio_volume_set'" in r.stderr
    r = run("fleet", "rebot", "-i", str(inv), SPEC_OPT, code=2, env={"FH_PW": PW})
    assert "did you mean 'reboot'?" in r.stderr
    r = run("fleet", "statuss", "-i", str(inv), SPEC_OPT, code=2, env={"FH_PW": PW})
    assert "did you mean 'status'?" in r.stderr
    assert requests(devs) == 0
