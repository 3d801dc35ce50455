"""Issue 15, jobs: resume with other limits, rerun of the failed devices as a new job, prune (the
CLI's store, SQLite and PostgreSQL), audit --csv. The real `avctl` against emulated codecs over
HTTPS on loopback."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from avctl.cli.fleet import _changed_options
from avctl.cli.main import cli
from avctl.emulator.core import EmulatorThread
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.fleet.jobs import plan_resume
from avctl.fleet.results import Outcome
from avctl.fleet.store import SqliteJobStore

from .conftest import Journal
from .test_fleet_runner import SPEC_PATH, spawn

SPEC_OPT = f"--spec=videoos={SPEC_PATH}"
PW = "jobs-pw-4Rt"
ENV = {"FH_PW": PW}
DAY = 86400.0


def run(*args: str, code: int = 0, env: Mapping[str, str | None] | None = ENV) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, env=env)
    assert result.exit_code == code, result.output
    return result


def inventory(tmp_path: Path, devs: list[EmulatedVideoOS]) -> Path:
    inv = tmp_path / "inventory.yaml"
    inv.write_text("defaults: {family: videoos, password: env:FH_PW}\nsites: {hq: {}}\ndevices:\n"
                   + "".join(f"  {d.name}: {{address: '127.0.0.1:{d.port}', site: hq}}\n" for d in devs))
    return inv


def jobs() -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = json.loads(run("jobs", "list", "--json").stdout)
    return listed


def test_rerun_failed_starts_a_new_job_with_only_those_devices(emulators: EmulatorThread, tmp_path: Path) -> None:
    devs = spawn(emulators, 3, password=PW)
    devs[1].password = "not-the-inventory-one"
    inv = inventory(tmp_path, devs)
    run("fleet", "run", "audio_volume_set", "volume=25", "-i", str(inv), SPEC_OPT, "-q", code=1)
    assert [d.state.volume for d in devs] == [25, 50, 25]
    first = jobs()[0]
    assert (first["ok"], first["failed"]) == (2, 1)
    r = run("jobs", "rerun", str(first["id"]), code=2)
    assert "--failed" in r.stderr
    devs[1].password = PW  # the administrator fixed the password
    before = [d.requests.total for d in devs]
    r = run("jobs", "rerun", str(first["id"]), "--failed", "--concurrency", "1", "--json")
    doc = json.loads(r.stdout)
    assert [d["device"] for d in doc["devices"]] == ["room-1"] and doc["summary"]["ok"] == 1
    assert [d.state.volume for d in devs] == [25, 25, 25]
    assert [d.requests.total - b for d, b in zip(devs, before, strict=True)][::2] == [0, 0]  # the others: untouched
    listed = jobs()
    assert len(listed) == 2 and listed[0]["id"] == doc["job"] != first["id"]
    assert (listed[0]["task"], listed[0]["devices"], listed[0]["selection"]) == (
        "audio_volume_set", 1, f"rerun of job {first['id']} (failed)")
    shown = json.loads(run("jobs", "show", str(doc["job"]), "--json").stdout)
    assert shown["params"] == {"volume": "25"}
    # nothing failed in the new job: nothing to rerun
    r = run("jobs", "rerun", str(doc["job"]), "--failed", code=2)
    assert "has no failed or unreachable device" in r.stderr


def test_rerun_and_resume_check_credentials_first(emulators: EmulatorThread, tmp_path: Path) -> None:
    devs = spawn(emulators, 2, password=PW)
    devs[0].password = "wrong"
    inv = inventory(tmp_path, devs)
    run("fleet", "status", "-i", str(inv), SPEC_OPT, "-q", code=1)
    before = sum(d.requests.total for d in devs)
    r = run("jobs", "rerun", str(jobs()[0]["id"]), "--failed", code=2, env={"FH_PW": None})
    assert "password env:FH_PW of room-0: environment variable FH_PW" in r.stderr
    assert sum(d.requests.total for d in devs) == before and len(jobs()) == 1


def test_resume_changes_concurrency_per_site_and_timeout(emulators: EmulatorThread, tmp_path: Path,
                                                          avctl_home: Path) -> None:
    devs = spawn(emulators, 3, password=PW)
    inv = inventory(tmp_path, devs)
    with SqliteJobStore(avctl_home / "avctl.db") as store:
        job = store.create_job(action="status", selection="all", params={}, devices=[d.name for d in devs],
                               user="test", inventory=str(inv),
                               options={"mode": "verb", "run": {"concurrency": 100, "timeout": 15.0},
                                        "specs": {"videoos": str(SPEC_PATH)}})
        store.record_outcome(job.id, Outcome("room-0", "ok", family="videoos"))
        store.set_state(job.id, "interrupted")
        plan = plan_resume(store, job.id)
    changed = _changed_options(plan, {"concurrency": 2, "per_site": 1, "timeout": 4.0})
    assert (changed.concurrency, changed.per_site, changed.timeout) == (2, 1, 4.0)
    assert _changed_options(plan, {"concurrency": None, "per_site": None, "timeout": None}) == plan.options
    r = run("jobs", "resume", str(job.id), "--timeout", "0", code=2)
    assert "--timeout" in r.stderr
    r = run("jobs", "resume", str(job.id), "--concurrency", "1", "--per-site", "1", "--timeout", "5", "--json")
    doc = json.loads(r.stdout)
    assert doc["summary"]["ok"] == 3 and devs[0].requests.total == 0  # room-0 had its outcome already


def test_prune_removes_old_finished_jobs_only(journal: Journal, tmp_path: Path) -> None:
    db = tmp_path / "avctl.db"
    with journal.store(db) as store:
        ids = [store.create_job(action="status", selection="all", params={}, devices=["a", "b"], user="t").id
               for _ in range(4)]
        for job_id in ids:
            store.record_outcome(job_id, Outcome("a", "ok", family="videoos"))
        for job_id in ids[:3]:
            store.set_state(job_id, "finished")
        store.set_state(ids[3], "interrupted")
    old = time.time() - 40 * DAY
    journal.execute(db, "UPDATE jobs SET finished = :t WHERE id IN (:a, :b)", t=old, a=ids[0], b=ids[1])
    journal.execute(db, "UPDATE jobs SET created = :t, finished = :t WHERE id = :c", t=old, c=ids[3])
    r = run("jobs", "prune", "--older-than", "30d", "--store", journal.target(db))
    assert r.stdout.strip() == "removed 2 finished job(s) older than 30 day(s)"
    with journal.store(db) as store:
        assert [j.id for j in store.list_jobs()] == [ids[3], ids[2]]  # the new one, and the interrupted one
        assert [o.device for o in store.outcomes(ids[2])] == ["a"]
    for table in ("outcomes", "job_devices"):
        left = {row[0] for row in journal.execute(db, f"SELECT DISTINCT job_id FROM {table}")}
        assert left == {ids[2], ids[3]}
    assert run("jobs", "prune", "--older-than", "30d", "--store", journal.target(db)).stdout.startswith("removed 0")
    r = run("jobs", "prune", "--older-than", "soon", "--store", journal.target(db), code=2)
    assert "not a duration" in r.stderr


def test_audit_csv(emulators: EmulatorThread, tmp_path: Path) -> None:
    devs = spawn(emulators, 2, password=PW)
    inv = inventory(tmp_path, devs)
    run("fleet", "run", "audio_volume_set", "volume==1", "-i", str(inv), SPEC_OPT, "-q", code=2)  # refused: a typo
    run("fleet", "run", "audio_volume_set", "volume=33", "-i", str(inv), SPEC_OPT, "-q")
    rows = list(csv.DictReader(io.StringIO(run("audit", "--csv").stdout)))
    assert sorted((r["device"], r["action"], r["outcome"], r["params"]) for r in rows) == [
        ("room-0", "audio_volume_set", "ok", '{"volume":33}'), ("room-1", "audio_volume_set", "ok", '{"volume":33}')]
    assert all(r["time"].endswith("Z") and r["job_id"] == str(jobs()[0]["id"]) for r in rows)
