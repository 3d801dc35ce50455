"""Resume after kill -9: a real `avctl fleet` subprocess is SIGKILLed part-way through a job.

The resumed job must finish exactly the devices that had no outcome: no finished outcome is lost,
changed or repeated, and devices that had finished receive no further request.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy

from avctl.emulator.core import EmulatorThread

from .conftest import Journal
from .test_fleet_runner import PASSWORD, SPEC_PATH, spawn

AVCTL = [sys.executable, "-c", "from avctl.cli.main import main; main()"]
#: avctl as a terminal's foreground process, where Ctrl-C is delivered: a suite started in the
#: background (`cmd &`, CI runners) hands its children SIGINT *ignored*, and Ctrl-C would never land
AVCTL_FOREGROUND = [sys.executable, "-c", "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                    "from avctl.cli.main import main; main()"]


def finished_outcomes(db: Path, journal: Journal | None = None) -> dict[str, tuple[str, float]]:
    journal = journal or Journal("raw", str)
    if journal.kind != "postgresql" and not db.exists():
        return {}
    try:
        rows = journal.execute(db, "SELECT device, status, finished FROM outcomes")
    except sqlalchemy.exc.SQLAlchemyError:  # schema not there yet
        return {}
    return {str(r[0]): (str(r[1]), float(r[2])) for r in rows}


def test_sigkill_then_resume_finishes_exactly_the_rest(emulators: EmulatorThread, tmp_path: Path,
                                                       avctl_home: Path, journal: Journal) -> None:
    devs = spawn(emulators, 12)
    for d in devs:
        d.faults.latency = 0.12  # about half a second per device
    inv = tmp_path / "inventory.yaml"
    inv.write_text("defaults: {family: videoos, password: env:FLEET_PW}\ndevices:\n"
                   + "".join(f"  {d.name}: {{address: '127.0.0.1:{d.port}'}}\n" for d in devs))
    db = avctl_home / "avctl.db"
    env = {**os.environ, "AVCTL_HOME": str(avctl_home), "FLEET_PW": PASSWORD, "AVCTL_DB": journal.target(db)}
    proc = subprocess.Popen([*AVCTL, "fleet", "run", "audio_volume_set", "volume=77", "-i", str(inv),
                             f"--spec=videoos={SPEC_PATH}", "--concurrency", "2", "--json"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while len(finished_outcomes(db, journal)) < 4:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the job made no progress"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    time.sleep(0.5)  # let requests already on the wire land before taking the snapshot
    before = finished_outcomes(db, journal)
    assert 4 <= len(before) < len(devs)
    requests_before = {d.name: len(d.requests) for d in devs}

    with journal.store(db) as store:
        (job,) = store.list_jobs()
        assert job.state == "running" and job.effective_state == "interrupted"  # the pid is dead
        pending = store.pending_devices(job.id)
    assert sorted(pending) == sorted(set(requests_before) - set(before))

    shown = json.loads(subprocess.run([*AVCTL, "jobs", "show", str(job.id), "--json"], env=env, check=True,
                                      capture_output=True, text=True).stdout)
    assert shown["state"] == "interrupted" and sorted(shown["pending"]) == sorted(pending)

    resumed = subprocess.run([*AVCTL, "jobs", "resume", str(job.id), "--json"], env=env, capture_output=True,
                             text=True, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["summary"]["total"] == len(devs) and report["summary"]["ok"] == len(devs)

    after = finished_outcomes(db, journal)
    assert sorted(after) == sorted(d.name for d in devs)  # every device exactly one outcome (primary key)
    for name, (status, finished) in before.items():
        assert after[name] == (status, finished)  # nothing finished was lost or rewritten
    for d in devs:
        if d.name in before:
            assert len(d.requests) == requests_before[d.name], f"{d.name} was touched again"
        else:
            assert len(d.requests) > requests_before[d.name], f"{d.name} was not resumed"
        assert d.state.volume == 77
    with journal.store(db) as store:
        assert store.get_job(job.id).state == "finished"
        assert store.pending_devices(job.id) == []
    # the resumed calls are audited under the same job; the killed process may have sent a call
    # whose audit row never got written, so each device has one or two rows but at least one ok
    audit = json.loads(subprocess.run([*AVCTL, "audit", "--job", str(job.id), "--json", "-n", "100"], env=env,
                                      check=True, capture_output=True, text=True).stdout)
    assert {e["device"] for e in audit if e["outcome"] == "ok"} == {d.name for d in devs}
    again = subprocess.run([*AVCTL, "jobs", "resume", str(job.id)], env=env, capture_output=True, text=True)
    assert again.returncode == 2 and "finished" in again.stderr


def test_ctrl_c_keeps_outcomes_marks_interrupted_and_resumes(emulators: EmulatorThread, tmp_path: Path,
                                                             avctl_home: Path, journal: Journal) -> None:
    devs = spawn(emulators, 8)
    # deterministic: two devices answer, the rest hold their requests until released, so Ctrl-C
    # lands while the third device is in flight whatever the machine's load
    for d in devs[2:]:
        d.faults.paused = True
    inv = tmp_path / "inventory.yaml"
    inv.write_text("defaults: {family: videoos, password: env:FLEET_PW}\ndevices:\n"
                   + "".join(f"  {d.name}: {{address: '127.0.0.1:{d.port}'}}\n" for d in devs))
    db = avctl_home / "avctl.db"
    env = {**os.environ, "AVCTL_HOME": str(avctl_home), "FLEET_PW": PASSWORD, "AVCTL_DB": journal.target(db)}
    proc = subprocess.Popen([*AVCTL_FOREGROUND, "fleet", "status", "-i", str(inv), f"--spec=videoos={SPEC_PATH}",
                             "--concurrency", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while len(finished_outcomes(db, journal)) < 2 or not devs[2].requests:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the job made no progress"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "avctl jobs resume 1" in err
    kept = finished_outcomes(db, journal)
    assert sorted(kept) == [devs[0].name, devs[1].name]
    with journal.store(db) as store:
        assert store.get_job(1).state == "interrupted"  # recorded, not only inferred from a dead pid
    for d in devs[2:]:
        d.faults.paused = False
    resumed = subprocess.run([*AVCTL, "jobs", "resume", "1", "--csv"], env=env, capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    rows = resumed.stdout.strip().splitlines()[1:]
    assert len(rows) == len(devs) and all(",ok," in r for r in rows)
    after = finished_outcomes(db, journal)
    assert all(after[k] == v for k, v in kept.items())
