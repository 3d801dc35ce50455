"""A varied emulated fleet (issue 15): models, older firmware, a room in a call, an offline device and
a wrong password, each on its own device, and what `avctl fleet status` makes of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from avctl.cli.main import cli
from avctl.emulator.fleet import (
    IN_CALL,
    OFFLINE,
    OLD_FIRMWARE,
    WRONG_PASSWORD,
    EmulatedFleet,
    Variety,
    _plan,
)


def test_each_fault_lands_on_its_own_device() -> None:
    plan = _plan({"videoos": 4, "polyuc": 4, "solstice": 4}, 2, Variety(mixed=True, in_call=2, offline=2,
                                                                         wrong_password=2))
    marked = {p.name: p.traits for p in plan if set(p.traits) - {OLD_FIRMWARE}}
    assert [n for n, t in marked.items() if IN_CALL in t] == ["videoos-00001", "videoos-00002"]
    assert sorted(n for n, t in marked.items() if OFFLINE in t) == ["polyuc-00004", "solstice-00004"]
    assert sorted(n for n, t in marked.items() if WRONG_PASSWORD in t) == ["solstice-00003", "videoos-00004"]
    assert all(len(set(t) - {OLD_FIRMWARE}) == 1 for t in marked.values())
    old = {p.name: p.settings["firmware"] for p in plan if OLD_FIRMWARE in p.traits}
    assert old == {"polyuc-00002": "6.3.1.8427", "solstice-00002": "5.4.1.10", "videoos-00002": "4.5.0"}
    assert {p.settings["model"] for p in plan if p.family == "polyuc"} == {"VVX 450", "Trio 8800"}


def test_a_uniform_fleet_stays_uniform() -> None:
    plan = _plan({"videoos": 2, "polyuc": 2}, 1)
    assert all(p.settings == {} and p.traits == () for p in plan)
    calls_without_codecs = _plan({"polyuc": 2}, 1, Variety(in_call=1))
    assert all(p.traits == () for p in calls_without_codecs)  # only video systems hold calls


def test_status_finds_the_variety(tmp_path: Path, avctl_home: Path) -> None:
    with EmulatedFleet({"videoos": 3, "polyuc": 3, "solstice": 3}, workers=1, sites=2,
                       variety=Variety.story()) as fleet:
        inv = fleet.write_inventory(tmp_path / "fleet.yaml")
        assert yaml.safe_load(inv.read_text())["firmware"] == {
            "videoos": {"*": "4.6.2"}, "polyuc": {"*": "6.4.3"}, "solstice": {"*": "5.5.3"}}
        result = CliRunner().invoke(cli, ["fleet", "status", "-i", str(inv), "--json"])
        doc = json.loads(result.output[result.output.index("{"):])
        rows = {d["device"]: d for d in doc["devices"]}
        assert rows["videoos-00001"]["data"]["in_call"] is True
        assert rows["polyuc-00003"]["status"] == "unreachable"
        wrong = rows["videoos-00003"]
        assert (wrong["status"], wrong["reason"], wrong["requests"]) == ("failed", "auth", 1)  # one login attempt
        assert rows["videoos-00002"]["data"]["firmware"] == "4.5.0"
        assert rows["polyuc-00002"]["data"]["model"] == "Trio 8800"
        assert doc["summary"] == {"ok": 7, "failed": 1, "unreachable": 1, "skipped": 0, "total": 9}
        assert [d.name for d in fleet.with_trait(IN_CALL)] == ["videoos-00001"]


def test_emulate_fleet_variety_says_who_got_what(tmp_path: Path, avctl_home: Path) -> None:
    env = {**os.environ, "AVCTL_HOME": str(avctl_home)}
    proc = subprocess.Popen([sys.executable, "-m", "avctl.cli.main", "emulate", "fleet", "--videoos", "2",
                             "--polyuc", "2", "--variety", "-o", str(tmp_path / "f.yaml")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(6)]
    finally:
        proc.terminate()
        proc.wait(30)
    assert proc.returncode == 0
    text = "".join(lines)
    assert "older firmware: polyuc-00002, videoos-00002" in text
    assert "in a call: videoos-00001" in text
    assert "offline: polyuc-00002" in text
    assert "wrong password: videoos-00002" in text
