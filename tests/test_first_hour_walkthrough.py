"""Issue 15, what going through the first hour on a fresh clone found (each a test):

- a device without any password is found before a job starts, once, for every device (it was one
  failure per device after the job had started); `inventory check` notes such devices;
- a selection that matches nothing says which value no device has, and the close values devices do
  have (``--family vidoeos``);
- a verb or action no selected family has says which families have it;
- no inventory at all (``avctl fleet status`` with neither -i nor ``inventory.yaml``) says how to
  give or make one.

Every command is the real `avctl` (click's runner) against emulated codecs over HTTPS on loopback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from avctl.emulator.core import EmulatorThread
from avctl.fleet.inventory import Selection, parse_inventory

from .test_first_hour_fleet import PW, SPEC_OPT, inventory, jobs, requests, run
from .test_fleet_runner import spawn


def test_devices_without_any_password_fail_once_before_the_job(emulators: EmulatorThread, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AVCTL_PASSWORD", raising=False)
    devs = spawn(emulators, 3, password=PW)
    inv = inventory(tmp_path, devs)  # no password anywhere
    r = run("fleet", "status", "-i", str(inv), SPEC_OPT, code=2)
    errors = [line for line in r.stderr.splitlines() if line.startswith("avctl: error:")]
    assert errors == ["avctl: error: no password for room-0, room-1, room-2"], r.stderr
    assert "--password-env VAR or --password-file FILE" in r.stderr
    assert requests(devs) == 0 and jobs() == []
    # a disabled device is never contacted, so it needs none; the others still do
    first = f"'127.0.0.1:{devs[0].port}'"
    inv.write_text(inv.read_text().replace(first, f"{first}, disabled: true"))
    r = run("fleet", "reboot", "-i", str(inv), SPEC_OPT, "--yes", code=2)
    assert "no password for room-1, room-2" in r.stderr and requests(devs) == 0
    # inventory check: not a mistake of the file (a run can give one), but said
    r = run("inventory", "check", "-i", str(inv), SPEC_OPT)
    assert "2 device(s) have no password in the inventory (room-1, room-2)" in r.stderr
    assert "--password-env VAR or --password-file FILE" in r.stderr
    # given at run time, the job runs
    r = run("fleet", "status", "-i", str(inv), SPEC_OPT, "--password-env", "FH_PW", env={"FH_PW": PW})
    assert "2 ok" in r.stdout


def test_a_selection_that_matches_nothing_names_the_close_values(emulators: EmulatorThread, tmp_path: Path) -> None:
    devs = spawn(emulators, 2, password=PW)
    inv = inventory(tmp_path, devs, defaults="family: videoos, password: env:FH_PW")
    r = run("fleet", "status", "-i", str(inv), SPEC_OPT, "--family", "vidoeos", "--site", "hg", code=2,
            env={"FH_PW": PW})
    assert "the selection family=vidoeos,site=hg matches no device" in r.stderr
    assert "no device has family 'vidoeos' (did you mean 'videoos'?)" in r.stderr
    assert "no device has site 'hg' (did you mean 'hq'?)" in r.stderr
    assert requests(devs) == 0


def test_near_misses_skip_what_matches_and_what_is_excluded() -> None:
    inv = parse_inventory("devices:\n  hq-codec: {family: videoos, address: 127.0.0.1, site: hq, tags: [lobby]}\n"
                          "  lab-phone: {family: polyuc, address: 127.0.0.2, site: lab}\n", file="x.yaml")
    assert Selection.parse("site=hq,tag=lobyy").near_misses(inv.devices) == [
        "no device has tag 'lobyy' (did you mean 'lobby'?)"]
    # each value on its own: 'hq' exists (only the combination matches nothing), '!=' never suggests
    assert Selection.parse("site=hq,family=polyuc,tag!=nothing").near_misses(inv.devices) == []
    assert Selection.parse("name=zzz*").near_misses(inv.devices) == ["no device has name 'zzz*'"]


def test_a_verb_of_other_families_says_which(emulators: EmulatorThread, tmp_path: Path) -> None:
    devs = spawn(emulators, 1, password=PW)
    inv = inventory(tmp_path, devs, defaults="family: videoos, password: env:FH_PW")
    inv.write_text(inv.read_text() + "  phone: {family: polyuc, address: '127.0.0.1:1', site: hq}\n")
    # the built-in specs (the test spec of SPEC_OPT has no verbs)
    r = run("fleet", "volume", "volume=30", "-i", str(inv), "--family", "polyuc", code=2, env={"FH_PW": PW})
    assert "no selected device can run 'volume'" in r.stderr
    assert "'volume' is for videoos, not polyuc: select family=videoos" in r.stderr
    r = run("fleet", "run", "audio_get", "-i", str(inv), "--family", "polyuc", code=2, env={"FH_PW": PW})
    assert "'audio_get' is for videoos, not polyuc" in r.stderr
    assert requests(devs) == 0


def test_no_inventory_says_how_to_give_or_make_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AVCTL_INVENTORY", raising=False)
    r = run("fleet", "status", code=2)
    assert "inventory.yaml: cannot read inventory: no such file" in r.stderr
    assert "-i FILE or set AVCTL_INVENTORY" in r.stderr and "avctl emulate fleet -o FILE" in r.stderr


def test_selection_options_complete_from_the_inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.shell_completion import BashComplete

    from avctl.cli.main import cli

    inv = tmp_path / "rooms.yaml"
    inv.write_text("devices:\n  hq-101: {family: videoos, address: 127.0.0.1, site: hq, room: '101', tags: [lobby]}\n"
                   "  lab-1: {family: polyuc, address: 127.0.0.2, site: lab, tags: [canary, Lobby-2]}\n")

    def words(*args: str, incomplete: str) -> list[str]:
        return [c.value for c in BashComplete(cli, {}, "avctl", "_AVCTL_COMPLETE").get_completions(
            list(args), incomplete)]

    assert words("fleet", "status", "-i", str(inv), "--site", incomplete="") == ["hq", "lab"]
    assert words("fleet", "reboot", "-i", str(inv), "--name", incomplete="h") == ["hq-101"]
    assert words("fleet", "run", "-i", str(inv), "--tag", incomplete="lob") == ["Lobby-2", "lobby"]
    monkeypatch.setenv("AVCTL_INVENTORY", str(inv))
    assert words("fleet", "mute", "--room", incomplete="") == ["101"]
    # no inventory, or a broken one: nothing offered, nothing printed
    assert words("fleet", "status", "-i", str(tmp_path / "none.yaml"), "--site", incomplete="") == []


def test_rerun_and_resume_have_a_dry_run_too(emulators: EmulatorThread, tmp_path: Path) -> None:
    devs = spawn(emulators, 2, password=PW)
    inv = inventory(tmp_path, devs, defaults="family: videoos, password: env:FH_PW")
    inv.write_text(inv.read_text() + "  gone: {address: '127.0.0.1:1', site: hq}\n")
    env = {"FH_PW": PW}
    run("fleet", "run", "audio_volume_set", "volume=20", "-i", str(inv), SPEC_OPT, "--retries", "0", code=1, env=env)
    job = jobs()[0]["id"]
    before, known = requests(devs), len(jobs())
    r = run("jobs", "rerun", str(job), "--failed", "--dry-run", env=env)
    assert "dry run: audio_volume_set {\"volume\": \"20\"} would be sent to 1 device(s)" in r.stdout
    assert "send  gone (videoos, site hq) at 127.0.0.1:1" in r.stdout
    assert requests(devs) == before and len(jobs()) == known
    r = run("jobs", "resume", str(job), "--dry-run", code=2, env=env)
    assert f"job {job} is finished" in r.stderr
