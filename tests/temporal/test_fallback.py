"""A site-critical schedule during a WAN outage: the site's worker, cut off from Temporal, runs the
schedule's due time itself (the devices get the request once), and reports it when the link is
back: the control plane records it as the schedule's run for that due time, with a job of the
site's outcomes, the user ``site:NAME``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from avctl.emulator.core import EmulatorThread
from avctl.emulator.videoos import EmulatedVideoOS
from tests.server.harness import wait_for
from tests.temporal.conftest import PASSWORD, LinkProxy, Sites, SiteWorker, requests_to
from tests.temporal.test_schedules import _control_worker

VOLUME = "/rest/audio/volume"


def test_a_site_runs_its_critical_schedule_itself_during_a_wan_outage_and_reports_it(
        sites: Sites, emulators: EmulatorThread, avctl_home: Path, tmp_path: Path) -> None:
    devices = [emulators.add(EmulatedVideoOS(f"cx-remote-{n}", password=PASSWORD)) for n in range(2)]
    site = sites.add("remote", devices)
    inventory = sites.write_inventory(timezones={site: "UTC"})
    db, address = str(tmp_path / "control.db"), sites.server.address
    now = datetime.now(UTC)
    next_3am = (now + timedelta(days=1) if now.hour >= 3 else now).replace(hour=3, minute=0, second=0, microsecond=0)
    offset = (next_3am - now).total_seconds() + 120  # the worker's clock is past that due time: no waiting
    link = LinkProxy(address)
    worker = SiteWorker(tmp_path, site, link.address, tmp_path,
                        extra=["--fallback-after", "1s", "--fallback-every", "0.5s", "--clock-offset", str(offset)])
    control = SiteWorker(tmp_path, "control", address, tmp_path)
    control.home.mkdir(parents=True, exist_ok=True)
    try:
        worker.start()
        _control_worker(sites, control, db)
        added = sites.cli(avctl_home, "schedule", "add", "remote-volume", "--cron", "0 3 * * *", "--timezone", "UTC",
                          "--engine", "temporal", "--site-critical", "--yes", "--temporal", address, "--store", db,
                          "--", "fleet", "volume", "volume=20", "--inventory", str(inventory), "--engine", "temporal",
                          "--temporal", address)
        assert added.returncode == 0, added.stderr
        # a first run through Temporal: the site keeps the plan
        assert sites.cli(avctl_home, "schedule", "run-now", "remote-volume", "--store", db, "--temporal",
                         address).returncode == 0
        wait_for(lambda: all(requests_to(d, "POST", VOLUME) == 1 for d in devices), within=90,
                 what="the run through Temporal")

        def runs() -> list[dict[str, object]]:
            shown = sites.cli(avctl_home, "schedule", "show", "remote-volume", "--json", "--store", db,
                              "--temporal", address)
            return list(json.loads(shown.stdout)["runs"])

        wait_for(lambda: [r["state"] for r in runs()] == ["ok"], within=60, what="the first run recorded")

        link.cut()  # the WAN link goes down: the site runs the 03:00 due time on its own
        wait_for(lambda: all(requests_to(d, "POST", VOLUME) == 2 for d in devices), within=60,
                 what="the site's own run")
        assert "running schedule remote-volume" in worker.text()
        link.restore()

        def reported() -> dict[str, object] | None:
            return next((r for r in runs() if r["trigger"] == "fallback" and r["state"] != "running"), None)

        run = wait_for(reported, within=120, what="the site's run reported")
        assert run["state"] == "ok" and run["sites"] == [site], run
        due = datetime.fromisoformat(str(run["due"]).replace("Z", "+00:00"))
        assert due == next_3am
        job = json.loads(sites.cli(avctl_home, "jobs", "show", str(run["job"]), "--json", "--store", db).stdout)
        assert job["user"] == f"site:{site}" and job["state"] == "finished"
        assert {d["device"]: d["status"] for d in job["devices"]} == {d.name: "ok" for d in devices}
        audit = json.loads(sites.cli(avctl_home, "audit", "--job", str(run["job"]), "--json", "--store", db).stdout)
        assert sorted(r["device"] for r in audit) == sorted(d.name for d in devices)
        for dev in devices:  # the run through Temporal and the site's own: no more
            assert requests_to(dev, "POST", VOLUME) == 2
    finally:
        worker.stop()
        control.stop()
        link.close()
