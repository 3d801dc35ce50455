"""Two `avctl jobs resume N` processes started together share the job: each pending device is claimed
atomically in the store and called by exactly one of them (the emulators' request logs say so).

Both processes are real subprocesses; the devices hold their requests (paused) until both processes
have devices in flight, so the overlap is certain rather than a matter of timing.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from avctl.emulator.core import EmulatorThread
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.fleet.inventory import load_inventory
from avctl.fleet.jobs import create_job
from avctl.fleet.runner import RunOptions
from avctl.fleet.store import Outcome
from avctl.fleet.verbs import ActionTask

from .conftest import Journal
from .test_fleet_runner import PASSWORD, SPEC_PATH, logins, spawn

AVCTL = [sys.executable, "-c", "from avctl.cli.main import main; main()"]


def volume_posts(dev: EmulatedVideoOS) -> int:
    return sum(1 for r in dev.requests if r.method == "POST" and r.path == "/rest/audio/volume")


def test_two_resumes_started_together_call_every_device_once(emulators: EmulatorThread, tmp_path: Path,
                                                             avctl_home: Path, journal: Journal) -> None:
    devs = spawn(emulators, 8)
    for d in devs:
        d.faults.paused = True
    inv_path = tmp_path / "inventory.yaml"
    inv_path.write_text("defaults: {family: videoos, password: env:FLEET_PW}\ndevices:\n"
                        + "".join(f"  {d.name}: {{address: '127.0.0.1:{d.port}'}}\n" for d in devs))
    inv = load_inventory(inv_path)
    db = avctl_home / "avctl.db"
    with journal.store(db) as store:
        job = create_job(store, ActionTask("audio_volume_set", {"volume": "61"}), selection="all",
                         devices=list(inv), inventory=inv, options=RunOptions(concurrency=2, timeout=120),
                         spec_overrides={"videoos": str(SPEC_PATH)})
        store.set_state(job.id, "interrupted")  # as after a crash: every device pending

    env = {**os.environ, "AVCTL_HOME": str(avctl_home), "FLEET_PW": PASSWORD, "AVCTL_DB": journal.target(db)}
    procs = [subprocess.Popen([*AVCTL, "jobs", "resume", str(job.id), "--json"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    # both processes are running at the same time once each holds claims (on paused devices)
    deadline = time.monotonic() + 90
    while len(_claimers(journal, db, job.id)) < 2:
        for p in procs:
            assert p.poll() is None, p.communicate()
        assert time.monotonic() < deadline, "the two resumes never ran side by side"
        time.sleep(0.02)
    for d in devs:
        d.faults.paused = False
    results = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert "Traceback" not in err

    # every device called exactly once: one login, one volume request, one audit row
    for d in devs:
        assert logins(d) == 1 and volume_posts(d) == 1, d.name
        assert d.state.volume == 61
    ran = [{x["device"] for x in json.loads(out)["devices"]} for out, _err in results]
    assert ran[0] | ran[1] == {d.name for d in devs}
    with journal.store(db) as store:
        assert store.get_job(job.id).state == "finished"
        assert store.pending_devices(job.id) == []
        assert sorted(o.device for o in store.outcomes(job.id)) == sorted(d.name for d in devs)
    with journal.audit(db) as audit:
        rows = audit.query(job_id=job.id)
    assert sorted(e.device for e in rows) == sorted(d.name for d in devs)


def test_claim_rules(tmp_path: Path, journal: Journal) -> None:
    """Own claims hold, a live process's claim is respected, a dead process's claim is taken over,
    another host's claim is respected, a device with an outcome is never claimed."""
    with journal.store(tmp_path / "avctl.db") as store:
        job = store.create_job(action="x", selection="all", params={}, devices=["a", "b", "c", "d", "e"],
                               user="u")
        assert store.claim_device(job.id, "a") and store.claim_device(job.id, "a")
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            host = socket.gethostname()
            for device, pid, on in (("b", live.pid, host), ("c", dead.pid, host), ("d", 1, "elsewhere")):
                journal.execute(tmp_path / "avctl.db", "INSERT INTO claims (job_id, device, pid, host, claimed)"
                                " VALUES (:job, :device, :pid, :host, 0)", job=job.id, device=device, pid=pid, host=on)
            assert not store.claim_device(job.id, "b")
            assert store.claim_device(job.id, "c")
            assert not store.claim_device(job.id, "d")
            assert store.claimed_elsewhere(job.id, ["a", "b", "c", "d"]) == ["b", "d"]
            store.record_outcome(job.id, Outcome("e", "ok"))
            assert not store.claim_device(job.id, "e")
        finally:
            live.kill()
            live.wait()


def _claimers(journal: Journal, db: Path, job_id: int) -> set[object]:
    """The processes holding claims on devices of the job (a look at the real database)."""
    return {row[0] for row in journal.execute(db, "SELECT DISTINCT pid FROM claims WHERE job_id = :job", job=job_id)}
