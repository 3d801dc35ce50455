"""Schedules fired by Temporal Schedules (``avctl schedule add --engine temporal``): one per time zone
of the selected sites, each at the right local time; each due time runs the command through a
control worker (``avctl worker --control``) and is recorded as a run of the schedule, with the job of
that zone's sites only. The local scheduler (run-due) leaves such schedules alone."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from avctl.emulator.core import EmulatorThread
from avctl.emulator.polyuc import EmulatedPolyUC
from avctl.emulator.videoos import EmulatedVideoOS
from tests.server.harness import wait_for
from tests.temporal.conftest import PASSWORD, Sites, SiteWorker

ZONES = {"berlin": "Europe/Berlin", "tokyo": "Asia/Tokyo"}


def test_a_schedule_fires_in_two_time_zones_at_their_local_times(sites: Sites, emulators: EmulatorThread,
                                                                  avctl_home: Path, tmp_path: Path) -> None:
    made = {}
    for short in ZONES:
        made[short] = sites.add(short, [emulators.add(EmulatedVideoOS(f"cx-{short}", password=PASSWORD)),
                                        emulators.add(EmulatedPolyUC(f"ph-{short}", password=PASSWORD))])
    inventory = sites.write_inventory(timezones={made[s]: tz for s, tz in ZONES.items()})
    db = str(tmp_path / "control.db")
    address = sites.server.address
    sites.start_workers()
    control = SiteWorker(tmp_path, "control", address, tmp_path)
    control.home.mkdir(parents=True, exist_ok=True)
    added = sites.cli(avctl_home, "schedule", "add", "daily-status", "--cron", "0 9 * * *", "--engine", "temporal",
                      "--temporal", address, "--store", db, "--", "fleet", "status", "--inventory", str(inventory),
                      "--engine", "temporal", "--temporal", address)
    assert added.returncode == 0, added.stderr
    assert added.stdout.count(".schedule.daily-status.") == 2, added.stdout

    shown = json.loads(sites.cli(avctl_home, "schedule", "show", "daily-status", "--json", "--store", db,
                                 "--temporal", address).stdout)
    assert shown["engine"] == "temporal"
    by_zone = {z["zone"]: z for z in shown["temporal"]}
    assert set(by_zone) == set(ZONES.values())
    for tz, z in by_zone.items():  # Temporal's next times are 09:00 in each zone
        for text in z["next"][:2]:
            local = datetime.fromisoformat(text).astimezone(ZoneInfo(tz))
            assert (local.hour, local.minute) == (9, 0), (tz, text)

    # the local scheduler leaves it alone
    due = sites.cli(avctl_home, "schedule", "run-due", "--json", "--store", db)
    assert due.returncode == 0 and json.loads(due.stdout) == []

    # the last 24 hours' due times run now: one per zone, each at its own 09:00
    control_proc = _control_worker(sites, control, db)
    try:
        back = sites.cli(avctl_home, "schedule", "backfill", "daily-status", "--from", "24h", "--store", db,
                         "--temporal", address)
        assert back.returncode == 0, back.stderr

        def finished_runs() -> list[dict[str, object]]:
            doc = json.loads(sites.cli(avctl_home, "schedule", "show", "daily-status", "--json", "--store", db,
                                       "--temporal", address).stdout)
            runs = [r for r in doc["runs"] if r["state"] != "running"]
            return runs if len(runs) == 2 else []

        runs = wait_for(finished_runs, within=120, what="a run in each zone")
    finally:
        control_proc.stop()
    assert sorted(r["zone"] for r in runs) == sorted(ZONES.values())
    for run in runs:
        assert run["state"] == "ok" and run["trigger"] == "temporal", run
        zone = str(run["zone"])
        local = datetime.fromisoformat(str(run["due"]).replace("Z", "+00:00")).astimezone(ZoneInfo(zone))
        assert (local.hour, local.minute) == (9, 0), run
        site = next(made[s] for s, tz in ZONES.items() if tz == zone)
        assert run["sites"] == [site]
        job = json.loads(sites.cli(avctl_home, "jobs", "show", str(run["job"]), "--json", "--store", db).stdout)
        assert sorted(d["device"] for d in job["devices"]) == sorted(d.name for d in sites.devices[site])
        assert {d["status"] for d in job["devices"]} == {"ok"}


def _control_worker(sites: Sites, control: SiteWorker, db: str) -> SiteWorker:
    """``avctl worker --control --store DB`` (the control plane's long-lived worker)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "AVCTL_HOME": str(control.home)}
    with open(control.log, "ab") as out:
        control.proc = subprocess.Popen([sys.executable, "-m", "avctl.cli.main", "worker", "--control", "--store", db,
                                         "--temporal", sites.server.address], env=env, stdout=out,
                                        stderr=subprocess.STDOUT, cwd=sites.root)
    wait_for(lambda: "avctl worker: control queue" in control.text(), within=60, what="the control worker")
    return control
