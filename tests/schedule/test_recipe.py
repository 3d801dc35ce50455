"""docs/schedules.md's nightly-reboot recipe, step by step, against emulated codecs over real HTTPS:
the seeds' IP_Pass.txt imported, sites with time zones and windows, a canary ring, a room in a
meeting, and the schedule run at its due instant by ``avctl schedule run-due`` (a real child
process). Only the soak is left out (it would wait for real)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from avctl.cli.main import cli
from avctl.emulator.core import EmulatorThread
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.fleet.credentials import generate_key
from avctl.fleet.windows import zone
from avctl.schedule.timing import next_due

ROOMS = ("room-a", "room-b", "room-c", "room-d")
#: the reboot options of the recipe (docs/schedules.md), without --soak
REBOOT = ["--family", "videoos", "restart_all=true", "--if-idle", "--in-window", "--rings", "canary=tag:canary,all",
          "--gate", "95%", "--wait", "--wait-grace", "2"]


def avctl(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output + result.stderr
    return result.stdout


def report(out: str) -> dict[str, dict[str, object]]:
    return {d["device"]: d for d in json.loads(out[out.index("{"):])["devices"]}


@pytest.fixture
def codecs(emulators: EmulatorThread) -> dict[str, EmulatedVideoOS]:
    found = {name: emulators.add(EmulatedVideoOS(name, password=f"pw-{name}-77", seed=11)) for name in ROOMS}
    for e in found.values():
        e.faults.reboot_seconds = 0.5
    return found


def test_the_nightly_reboot_recipe(codecs: dict[str, EmulatedVideoOS], tmp_path: Path, avctl_home: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVCTL_SECRETS_KEY", generate_key())
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AVCTL_DB", raising=False)
    # 1. the seeds' file: one "IP,Password" line per codec
    (tmp_path / "IP_Pass.txt").write_text("".join(f"127.0.0.1:{e.port},{e.password}\n" for e in codecs.values()))
    avctl("inventory", "import", "ip-pass", "IP_Pass.txt", "-o", "rooms.yaml", "--site", "hq", "--tag", "seed")
    # 2. the site's time zone and a window open all day (the test runs now), one canary room
    doc = yaml.safe_load(Path("rooms.yaml").read_text())
    doc["sites"] = {"hq": {"timezone": "Europe/Berlin", "window": "daily 00:00-24:00"}}
    names = list(doc["devices"])
    by_port = {e.port: n for n, e in codecs.items()}
    room = {name: by_port[int(doc["devices"][name]["address"].rsplit(":", 1)[1])] for name in names}
    canary = next(n for n in names if room[n] == "room-a")
    doc["devices"][canary]["tags"] = ["seed", "canary"]
    Path("rooms.yaml").write_text(yaml.safe_dump(doc))
    # 3. pin every certificate, then the job by hand with a room in a meeting
    avctl("fleet", "status", "-i", "rooms.yaml", "--quiet")
    busy = codecs["room-b"]
    busy.state.calls.dial(busy.state.now_ms(), "bob@example.com", 1024, "SIP")
    rows = report(avctl("fleet", "reboot", "-i", "rooms.yaml", *REBOOT, "--yes", "--json"))
    by_room = {room[n]: rows[n] for n in names}
    assert (by_room["room-b"]["status"], by_room["room-b"]["reason"]) == ("skipped", "in_call")
    assert all(by_room[r]["status"] == "ok" for r in ("room-a", "room-c", "room-d")), by_room
    assert [codecs[r].state.reboots for r in ROOMS] == [1, 0, 1, 1]
    assert not any(q.path == "/rest/system/reboot" for q in busy.requests)
    reboots = [q for q in codecs["room-a"].requests if q.path == "/rest/system/reboot"]
    assert json.loads(reboots[0].body) == {"action": "reboot", "restartAll": True}  # the seeds' body

    # 4. every night at 02:00 in the site's time: the run at its due instant, as cron would start it
    out = avctl("schedule", "add", "nightly-reboot", "--cron", "0 2 * * *", "--yes", "--",
                "fleet", "reboot", "-i", "rooms.yaml", *REBOOT)
    assert "schedule nightly-reboot added" in out
    due = next_due("0 2 * * *", zone("Europe/Berlin"), time.time())
    assert datetime.fromtimestamp(due, zone("Europe/Berlin")).hour == 2
    (run,) = json.loads(avctl("schedule", "run-due", "--now", datetime.fromtimestamp(due, UTC).isoformat(),
                              "--json"))
    assert run["state"] == "ok" and run["job"] is not None, run
    assert [codecs[r].state.reboots for r in ROOMS] == [2, 0, 2, 2]  # the meeting is still on: room-b is left
    shown = json.loads(avctl("schedule", "show", "nightly-reboot", "--json"))
    assert [(r["job"], r["state"]) for r in shown["runs"]] == [(run["job"], "ok")]
    job = json.loads(avctl("jobs", "show", str(run["job"]), "--json"))
    skipped = {d["device"]: d["reason"] for d in job["devices"] if d["status"] == "skipped"}
    assert skipped == {n: "in_call" for n in names if room[n] == "room-b"}
