"""Issue 15, inventories: every problem of a file at once (file:line each), an unknown family refused
at load with did-you-mean, and `avctl inventory check`, which contacts no device."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from avctl.cli.main import cli
from avctl.fleet.credentials import generate_key
from avctl.fleet.inventory import InventoryError, InventoryProblems, load_inventory

BROKEN = """\
defaults: {family: videoos, password: env:FH_INV_PW}
sites:
  hq: {timezone: Mars/Olympus, window: "Mon-Fri 01:00-04:00"}
  lab: {timezone: Europe/Berlin, window: "Mon-Fry 01:00-04:00"}
devices:
  a: {family: vidoeos, address: 10.0.0.1}
  b: {adress: 10.0.0.2}
  c: {address: 10.0.0.3, site: nowhere}
  d: {address: 10.0.0.9}
  e: {address: "10.0.0.9:443"}
  f: {address: 10.0.0.10, site: hq}
  g: {address: 10.0.0.11, groups: [missing]}
  h: {address: 10.0.0.12}
bogus: 1
"""


def run(*args: str, code: int = 0, env: dict[str, str | None] | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, env=env)
    assert result.exit_code == code, result.output
    return result


def test_every_problem_is_reported_each_with_file_line(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(BROKEN)
    with pytest.raises(InventoryProblems) as info:
        load_inventory(path)
    where = [(p.line, p.message.split(": ", 2)[1]) for p in info.value.problems]
    assert where == [
        (3, "sites.hq.timezone"), (4, "sites.lab.window"), (6, "devices.a"), (7, "devices.b"), (8, "devices.c"),
        (10, "devices.e"), (12, "devices.g"), (14, "unknown top-level key 'bogus'"),
    ]
    assert all(p.message.startswith(f"{path}:{p.line}: ") for p in info.value.problems)
    # devices of a site whose block is wrong (f) are not blamed again; a good device (h) is not mentioned
    assert not any("devices.f" in p.message or "devices.h" in p.message for p in info.value.problems)
    assert "8 problems; nothing was sent" in str(info.value.hint)
    # the command line prints each on its own line, then the count
    r = run("inventory", "list", "-i", str(path), code=2)
    errors = [line for line in r.stderr.splitlines() if line.startswith("avctl: error: ")]
    assert len(errors) == 8 and errors[0] == f"avctl: error: {path}:3: sites.hq.timezone: unknown time zone " \
                                               "'Mars/Olympus' (use an IANA name such as Europe/Berlin or " \
                                               "America/New_York)"


def test_one_problem_is_raised_as_itself(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text("devices:\n  a: {family: videoos, adress: 10.0.0.1}\n")
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert not isinstance(info.value, InventoryProblems)
    assert str(info.value).startswith(f"{path}:2: devices.a: unknown key 'adress'")


def test_an_unknown_family_is_refused_at_load_where_it_is_written(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text("sites:\n  hq:\n    family: polycom\ndevices:\n  a: {address: 10.0.0.1, site: hq}\n"
                    "  b: {address: 10.0.0.2, family: solstise}\n")
    with pytest.raises(InventoryProblems) as info:
        load_inventory(path)
    first, second = info.value.problems
    assert first.message == f"{path}:3: sites.hq: unknown family 'polycom'"
    assert first.hint == "did you mean 'polyuc'? known families: polyuc, solstice, videoos"
    assert second.message == f"{path}:6: devices.b: unknown family 'solstise'"
    assert second.hint is not None and second.hint.startswith("did you mean 'solstice'?")
    # refused before any action is looked at: not blamed on the action name
    r = run("fleet", "run", "audio_volume_set", "volume=3", "-i", str(path), code=2)
    assert "unknown family 'polycom'" in r.stderr and "audio_volume_set" not in r.stderr
    # a family a --spec file brings is known
    spec = Path(__file__).parent / "data" / "videoos_min.md"
    r = run("inventory", "check", "-i", str(path), f"--spec=polycom={spec}", f"--spec=solstise={spec}")
    assert "ok: 2 device(s)" in r.stderr


def test_inventory_check_lists_every_problem_without_contacting_devices(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("pw\n")
    path = tmp_path / "inv.yaml"
    path.write_text("""\
defaults: {family: videoos, password: file:pw}
sites:
  hq: {password: env:FH_HQ_PW, timezone: Europe/Berlin, window: "Mon-Fri 01:00-04:00"}
  lab: {password: secret:lab-admin}
  far: {password: file:missing.txt}
devices:
  a: {address: "127.0.0.1:9", site: hq, config: {videoos: {system.network.wireless.bt.enabld: false}}}
  b: {address: "127.0.0.2:9", site: lab}
  c: {address: "127.0.0.3:9", site: far}
  d: {address: "127.0.0.4:9"}
""")
    r = run("inventory", "check", "-i", str(path), code=1, env={"FH_HQ_PW": None, "AVCTL_SECRETS_KEY": generate_key()})
    lines = r.stdout.splitlines()
    problems = [line for line in lines if not line.startswith("  hint:")]
    assert len(problems) == 4, r.stdout
    assert problems[0].startswith(f"{path}:7: videoos (device a): unknown configuration key "
                                  "'system.network.wireless.bt.enabld'")
    assert "password env:FH_HQ_PW of a: environment variable FH_HQ_PW" in problems[1]
    assert "password secret:lab-admin of b: no secret named 'lab-admin'" in problems[2]
    assert "password file:missing.txt of c: cannot read credential file" in problems[3]
    assert "4 problem(s) in" in r.stderr and "nothing was contacted" in r.stderr
    # corrected: exit 0 and a one-line summary
    path.write_text("defaults: {family: videoos, password: file:pw}\nsites: {hq: {timezone: Europe/Berlin, "
                    "window: \"Mon-Fri 01:00-04:00\"}}\ndevices:\n  a: {address: \"127.0.0.1:9\", site: hq}\n")
    r = run("inventory", "check", "-i", str(path))
    assert r.stdout == "" and "ok: 1 device(s), 1 site(s), every password reference resolves" in r.stderr


def test_inventory_check_reports_load_problems_and_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(BROKEN)
    r = run("inventory", "check", "-i", str(path), code=1)
    assert len([line for line in r.stdout.splitlines() if line.startswith(str(path))]) == 8
    r = run("inventory", "check", "-i", str(tmp_path / "none.yaml"), code=1)
    assert "cannot read inventory" in r.stdout
