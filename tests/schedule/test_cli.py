"""``avctl schedule`` end to end: real scheduled commands (child processes) against emulated codecs,
one start per run, overlap, pause/resume/remove, bad input, and the history read by a new process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from avctl.cli.main import cli
from avctl.emulator.core import EmulatedDevice, EmulatorThread, emulator_class
from avctl.schedule.link import SITES_ENV
from avctl.schedule.runner import Launch, child_command, run_pass
from avctl.schedule.store import open_schedule_store
from avctl.schedule.timing import next_due
from avctl.timestamps import iso_time

from ..server.harness import run_cli, write_inventory

PASSWORD = "sched-fleet-pw-4Kq7"
UTC_ZONE = ZoneInfo("UTC")


def avctl(*args: str, code: int = 0, input: str | None = None) -> str:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def iso(instant: float) -> str:
    return datetime.fromtimestamp(instant, UTC).isoformat()


def requests_to(devices: list[EmulatedDevice]) -> int:
    return sum(len(d.requests) for d in devices)


@pytest.fixture
def fleet(emulators: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[EmulatedDevice]:
    codecs = [emulators.add(emulator_class("videoos")(f"codec-{i}", password=PASSWORD)) for i in range(2)]
    (tmp_path / "fleet.password").write_text(PASSWORD + "\n")
    write_inventory(tmp_path / "fleet.yaml", codecs)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AVCTL_DB", raising=False)
    return codecs


def test_a_scheduled_status_runs_once_at_its_time_with_its_job(fleet: list[EmulatedDevice], avctl_home: Path,
                                                                tmp_path: Path) -> None:
    out = avctl("schedule", "add", "status", "--cron", "0 3 * * *", "--timezone", "UTC", "--",
                "fleet", "status", "-i", "fleet.yaml", "--site", "hq")
    assert "schedule status added" in out and "next run in UTC" in out
    stored = json.loads(avctl("schedule", "list", "--json"))[0]
    assert stored["command"] == ["fleet", "status", "--site", "hq", "--inventory", str(tmp_path / "fleet.yaml")]
    assert stored["cwd"] == str(tmp_path) and stored["disruptive"] is False
    due = next_due("0 3 * * *", UTC_ZONE, time.time())
    assert json.loads(avctl("schedule", "run-due", "--now", iso(due - 60), "--json")) == []
    assert requests_to(fleet) == 0
    (run,) = json.loads(avctl("schedule", "run-due", "--now", iso(due), "--json"))
    assert run["schedule"] == "status" and run["state"] == "ok" and run["exit_code"] == 0
    assert run["job"] is not None and run["due"] == iso_time(due)  # JSON speaks ISO 8601
    assert requests_to(fleet) > 0
    seen = requests_to(fleet)
    # the same instant again (a second cron call, a pass of the server): nothing starts
    assert json.loads(avctl("schedule", "run-due", "--now", iso(due + 30), "--json")) == []
    assert requests_to(fleet) == seen
    # the history, read by a new process
    shown = run_cli(avctl_home, "schedule", "show", "status", "--json")
    assert shown.returncode == 0, shown.stderr
    (listed,) = json.loads(shown.stdout)["runs"]
    assert listed["job"] == run["job"] and listed["state"] == "ok" and listed["counts"]["ok"] == 2
    assert "codec-0" in listed["output"]  # the command's output, kept on the record
    jobs = run_cli(avctl_home, "jobs", "show", str(run["job"]), "--json")
    assert jobs.returncode == 0 and '"ok"' in jobs.stdout
    table = run_cli(avctl_home, "schedule", "show", "status").stdout
    assert f" {run['job']} " in table and "ok 2" in table


def test_a_run_due_while_the_previous_one_runs_is_skipped(fleet: list[EmulatedDevice], avctl_home: Path) -> None:
    avctl("schedule", "add", "often", "--cron", "*/10 * * * *", "--timezone", "UTC", "--",
          "fleet", "status", "-i", "fleet.yaml")
    first_due = next_due("*/10 * * * *", UTC_ZONE, time.time())
    holder = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        with open_schedule_store(None) as store:
            schedule = store.get("often")
            held = store.claim(schedule, "UTC", first_due, trigger="cron", sites=None, now=first_due)
            assert held is not None
            store.started(held.id, holder.pid)
        (run,) = json.loads(avctl("schedule", "run-due", "--now", iso(first_due + 600), "--json"))
        assert run["state"] == "skipped" and run["reason"] == f"the previous run {held.id} is still running"
        assert requests_to(fleet) == 0
    finally:
        holder.communicate(b"")


def test_pause_resume_remove(fleet: list[EmulatedDevice]) -> None:
    avctl("schedule", "add", "hourly", "--cron", "0 * * * *", "--timezone", "UTC", "--", "fleet", "status",
          "-i", "fleet.yaml")
    due = next_due("0 * * * *", UTC_ZONE, time.time())
    assert "paused" in avctl("schedule", "pause", "hourly")
    assert json.loads(avctl("schedule", "list", "--json"))[0]["paused"] is True
    assert "paused" in avctl("schedule", "list")
    assert json.loads(avctl("schedule", "run-due", "--now", iso(due), "--json")) == []
    assert "resumed" in avctl("schedule", "resume", "hourly")
    (run,) = json.loads(avctl("schedule", "run-due", "--now", iso(due + 3600), "--json"))
    assert run["state"] == "ok"
    (now,) = json.loads(avctl("schedule", "run-now", "hourly", "--json"))
    assert now["trigger"] == "manual" and now["state"] == "ok" and now["job"] is not None
    assert "removed" in avctl("schedule", "remove", "hourly")
    assert json.loads(avctl("schedule", "list", "--json")) == []
    assert "no schedule named 'hourly'" in avctl("schedule", "show", "hourly", code=2)


@pytest.mark.parametrize(("args", "error"), [
    (["--cron", "0 2 * *", "--", "fleet", "status"], "expected five fields"),
    (["--cron", "0 26 * * *", "--", "fleet", "status"], "Bad hour"),
    (["--cron", "0 2 * * *", "--timezone", "Mars/Olympus", "--", "fleet", "status"], "unknown time zone"),
    (["--cron", "0 2 * * *", "--grace", "soon", "--", "fleet", "status"], "--grace"),
    (["--cron", "0 2 * * *", "--", "fleet", "status", "--bogus"], "No such option '--bogus'"),
    (["--cron", "0 2 * * *", "--", "fleet", "status", "--timeout", "abc"], "'--timeout'"),
    (["--cron", "0 2 * * *", "--", "fleet", "nosuchverb"], "no such command"),
    (["--cron", "0 2 * * *", "--", "users", "list"], "'users' cannot be scheduled"),
    (["--cron", "0 2 * * *", "--", "config", "history", "x"], "'config history' cannot be scheduled"),
    (["--cron", "0 2 * * *", "--", "fleet", "run", "x", "password=hunter2"], "does not store secret values"),
    (["--cron", "0 2 * * *", "--", "fleet", "run", "x", "password=@prompt"], "no terminal"),
    (["--cron", "0 2 * * *", "--", "fleet", "reboot"], "disruptive: every run will go ahead without asking"),
    (["--cron", "0 2 * * *", "--", "fleet", "status", "--store", "x.db"], "the schedule's database"),
    (["--cron", "0 2 * * *", "--", "config", "apply"], "needs confirmation"),
])
def test_bad_input_is_one_line_and_stores_nothing(fleet: list[EmulatedDevice], args: list[str], error: str) -> None:
    out = avctl("schedule", "add", "bad", *args, code=2)
    assert error in out and "hunter2" not in out
    assert len([line for line in out.splitlines() if line.startswith("avctl: error:")]) == 1
    assert json.loads(avctl("schedule", "list", "--json")) == []


def test_disruptive_work_is_confirmed_once_when_added(fleet: list[EmulatedDevice]) -> None:
    out = avctl("schedule", "add", "nightly-reboot", "--cron", "0 2 * * *", "--timezone", "Europe/Berlin", "--yes",
                "--", "fleet", "reboot", "--site", "hq", "--if-idle", "--yes")
    assert "schedule nightly-reboot added" in out and "next run in Europe/Berlin" in out
    (stored,) = json.loads(avctl("schedule", "list", "--json"))
    assert stored["disruptive"] is True and "--if-idle" in stored["command"]
    out = avctl("schedule", "add", "refs", "--cron", "0 2 * * *", "--", "fleet", "run", "x", "password=@env:PW")
    assert "inventory.yaml does not exist (yet)" in out  # stored all the same: it may be written later


def test_a_run_that_fails_is_recorded_with_its_output(tmp_path: Path, avctl_home: Path) -> None:
    with open_schedule_store(None) as store:
        schedule = store.add(name="broken", cron="0 * * * *", timezone="UTC", grace=60, cwd=str(tmp_path),
                             argv=["fleet", "status", "-i", str(tmp_path / "missing.yaml")], inventory=None,
                             selection=[], disruptive=False, user="t", now=0)
        run = store.claim(schedule, "UTC", 3600, trigger="cron", sites=None, now=3600)
        assert run is not None
        assert run_pass(store, None, [Launch(schedule, run)]) == ["failed"]
        ended = store.get_run(run.id)
    assert ended is not None and ended.exit_code != 0 and ended.reason is not None
    assert "missing.yaml" in (ended.output or "")
    assert not list((avctl_home / "schedule-logs").iterdir())  # the output is on the record, the file gone


def test_the_command_gets_the_run_the_database_and_its_sites(tmp_path: Path, avctl_home: Path) -> None:
    with open_schedule_store(None) as store:
        schedule = store.add(name="zones", cron="0 * * * *", timezone="UTC", grace=60, cwd=str(tmp_path),
                             argv=["fleet", "status"], inventory=None, selection=[], disruptive=False, user="t", now=0)
        limited = store.claim(schedule, "Europe/Berlin", 3600, trigger="cron", sites=["hq", None], now=3600)
        whole = store.claim(schedule, "UTC", 3600, trigger="cron", sites=None, now=3600)
    assert limited is not None and whole is not None
    env_in: dict[str, Any] = {SITES_ENV: "stale", "KEEP": "1"}
    argv, env = child_command(Launch(schedule, limited), None, env_in)
    assert argv == [sys.executable, "-m", "avctl", "fleet", "status"]
    assert env["AVCTL_SCHEDULE_RUN"] == str(limited.id) and env["AVCTL_DB"] == str(avctl_home / "avctl.db")
    assert json.loads(env[SITES_ENV]) == ["hq", None] and env["KEEP"] == "1"
    _argv, env = child_command(Launch(schedule, whole), "postgresql://db/avctl", env_in)
    assert SITES_ENV not in env and env["AVCTL_DB"] == "postgresql://db/avctl"


def test_two_passes_at_once_start_a_run_once(fleet: list[EmulatedDevice], avctl_home: Path) -> None:
    avctl("schedule", "add", "twice", "--cron", "0 4 * * *", "--timezone", "UTC", "--", "fleet", "status",
          "-i", "fleet.yaml")
    due = next_due("0 4 * * *", UTC_ZONE, time.time())
    env = {**os.environ, "AVCTL_HOME": str(avctl_home)}
    passes = [subprocess.Popen([sys.executable, "-m", "avctl", "schedule", "run-due", "--now", iso(due), "--json"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in passes]
    assert [p.returncode for p in passes] == [0, 0], outs
    started = [run for out, _err in outs for run in json.loads(out)]
    assert len(started) == 1 and started[0]["state"] == "ok"
    (shown,) = json.loads(avctl("schedule", "list", "--json"))
    assert shown["last_run"]["job"] == started[0]["job"]
    jobs = run_cli(avctl_home, "jobs", "list", "--json")
    assert len(json.loads(jobs.stdout)) == 1, jobs.stdout


def test_a_schedule_over_two_time_zones_runs_each_zones_sites_at_their_local_time(
        emulators: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    berlin = [emulators.add(emulator_class("videoos")(f"hq-{i}", password=PASSWORD)) for i in range(2)]
    new_york = [emulators.add(emulator_class("videoos")(f"ny-{i}", password=PASSWORD)) for i in range(2)]
    (tmp_path / "fleet.password").write_text(PASSWORD + "\n")
    lines = ["defaults: {password: 'file:fleet.password'}",
             "sites:", "  hq: {timezone: Europe/Berlin}", "  ny: {timezone: America/New_York}", "devices:"]
    lines += [f"  {d.name}: {{family: videoos, address: '127.0.0.1:{d.port}', site: {d.name[:2]}}}"
              for d in berlin + new_york]
    (tmp_path / "fleet.yaml").write_text("\n".join(lines) + "\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AVCTL_DB", raising=False)
    out = avctl("schedule", "add", "morning", "--cron", "0 3 * * *", "--", "fleet", "status", "-i", "fleet.yaml")
    assert "next run in Europe/Berlin" in out and "next run in America/New_York" in out
    at_berlin = next_due("0 3 * * *", ZoneInfo("Europe/Berlin"), time.time())
    at_new_york = next_due("0 3 * * *", ZoneInfo("America/New_York"), at_berlin)
    (run,) = json.loads(avctl("schedule", "run-due", "--now", iso(at_berlin), "--json"))
    assert (run["zone"], run["sites"], run["state"]) == ("Europe/Berlin", ["hq"], "ok")
    assert requests_to(berlin) > 0 and requests_to(new_york) == 0  # 03:00 in Berlin: Berlin's rooms only
    seen = requests_to(berlin)
    (run,) = json.loads(avctl("schedule", "run-due", "--now", iso(at_new_york), "--json"))
    assert (run["zone"], run["sites"], run["state"]) == ("America/New_York", ["ny"], "ok")
    assert requests_to(new_york) > 0 and requests_to(berlin) == seen
