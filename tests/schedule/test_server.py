"""``avctl serve`` runs the schedules: a run due 2 s after the start (the schedules' clock injected with
AVCTL_CLOCK_START) starts its command, which records its job; after a restart the history is there, the
run is not repeated, the next one runs, and a run left by a dead scheduler is closed as interrupted."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import update

from avctl.emulator.core import EmulatorThread, emulator_class
from avctl.schedule.store import INTERRUPTED, RUNS, open_schedule_store
from avctl.schedule.timing import next_due

from ..server.harness import ServerProcess, add_admin, db_rows, run_cli, wait_for, write_inventory

PASSWORD = "sched-serve-pw-7Yh3"


def iso(instant: float) -> str:
    return datetime.fromtimestamp(instant, UTC).isoformat()


def runs(db: str) -> list[tuple[object, ...]]:
    return db_rows(db, "SELECT id, due, state, job_id, reason FROM schedule_runs ORDER BY id")


def test_the_server_runs_schedules_and_keeps_their_history_across_a_restart(emulators: EmulatorThread,
                                                                           tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = str(tmp_path / "avctl.db")
    codecs = [emulators.add(emulator_class("videoos")(f"codec-{i}", password=PASSWORD)) for i in range(2)]
    (tmp_path / "fleet.password").write_text(PASSWORD + "\n")
    inventory = write_inventory(tmp_path / "fleet.yaml", codecs)
    added = run_cli(home, "schedule", "add", "nightly", "--cron", "0 3 * * *", "--timezone", "UTC", "--store", db,
                    "--", "fleet", "status", "-i", str(inventory))
    assert added.returncode == 0, added.stderr
    # a run left "running" by a scheduler that died, its command gone too
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with open_schedule_store(db) as store:
        stale = store.claim(store.get("nightly"), "UTC", 1.0, trigger="manual", sites=None, now=1.0)
        assert stale is not None
        with store.db.engine.begin() as conn:
            conn.execute(update(RUNS).where(RUNS.c.id == stale.id).values(scheduler_pid=gone.pid, pid=gone.pid))
    first = next_due("0 3 * * *", ZoneInfo("UTC"), time.time())
    args = ["-i", str(inventory), "--db", db, "--interval", "60s"]
    server = ServerProcess(home, args, env={"AVCTL_CLOCK_START": iso(first - 2)}).start()
    try:
        wait_for(lambda: [r[2:4] for r in runs(db) if r[1] == first and r[2] == "ok" and r[3] is not None],
                 within=90, what=f"the 03:00 run ended ok with its job ({server.log_text()[-2000:]})")
        assert runs(db)[0][2:] == ("failed", None, INTERRUPTED)
        assert any(r.method == "POST" for c in codecs for r in c.requests)
    finally:
        assert server.stop() == 0
    before = runs(db)
    # a restart at the next night's run: the first is not repeated, the second runs
    second = next_due("0 3 * * *", ZoneInfo("UTC"), first)
    token = add_admin(home, db)
    server = ServerProcess(home, args, env={"AVCTL_CLOCK_START": iso(second - 2)}).start().use_token(token)
    try:
        wait_for(lambda: [r for r in runs(db) if r[1] == second and r[2] == "ok"], within=90,
                 what=f"the next night's run ({server.log_text()[-2000:]})")
        (listed,) = server.get("/api/v1/schedules")["items"]
        assert listed["name"] == "nightly" and listed["last_run"]["due"] == second
        detail = server.get("/api/v1/schedules/nightly")
        assert [(r["due"], r["state"]) for r in detail["runs"][:2]] == [(second, "ok"), (first, "ok")]
        assert all(r["job"] for r in detail["runs"][:2])
    finally:
        assert server.stop() == 0
    after = runs(db)
    assert after[:len(before)] == before and len(after) == len(before) + 1
    shown = run_cli(home, "schedule", "show", "nightly", "--json", "--store", db)
    assert [r["state"] for r in json.loads(shown.stdout)["runs"]] == ["ok", "ok", "failed"]
