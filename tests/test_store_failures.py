"""A job store or audit log that cannot be written: refused before any device is contacted, and a
disk that fills up mid-job stops the job loudly (exit 1, what was known still printed).

How the storage faults are made, since the tests run as root and root ignores file permissions
(chmod 0500 would prove nothing): see `Home` (a tmpfs remounted read-only or filled to the last
byte; without mount rights, chattr +i and RLIMIT_FSIZE). If no method works these tests FAIL with
the reason instead of skipping, so a run that cannot prove the behaviour is never green. A database
path that is a directory gives the "cannot open the file" case without any privilege.

Devices are VideoOS and Poly UC emulators on loopback; "in flight" is made deterministic by pausing
a device (its request waits, unanswered) rather than by timing.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from avctl.emulator.core import EmulatorThread
from avctl.emulator.polyuc import EmulatedPolyUC
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.fleet.store import Outcome, SqliteJobStore, StoreError, check_writable

from .test_fleet_resume import finished_outcomes
from .test_fleet_runner import PASSWORD, SPEC_PATH, spawn

AVCTL = [sys.executable, "-c", "from avctl.cli.main import main; main()"]
UC_PASSWORD = "uc-store-pw-7"


class Home:
    """AVCTL_HOME on a disk the test can make read-only or full, in a way that fails root too.

    Preferred: a small tmpfs, remounted read-only (EROFS) or filled to the last byte (ENOSPC).
    Where mounting is not permitted (or AVCTL_TEST_NO_MOUNT=1): a plain directory made immutable
    with ``chattr +i`` (EPERM, root included) for read-only, and RLIMIT_FSIZE on the avctl process
    for full (a write past the limit fails with EFBIG, root included; SQLite reports it as a disk
    error). If neither works the test fails with the reason: it never passes without proving it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.limit: int | None = None  # fallback "full": max file size for avctl processes
        path.mkdir(parents=True, exist_ok=True)
        why = "AVCTL_TEST_NO_MOUNT is set" if os.environ.get("AVCTL_TEST_NO_MOUNT") else ""
        if not why:
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(path)],
                                  capture_output=True, text=True)
            why = "" if done.returncode == 0 else done.stderr.strip() or "mount failed"
        self.mounted = not why
        self.why_not_mounted = why

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=False)
        else:
            subprocess.run(["chattr", "-i", str(self.path)], check=False, capture_output=True)

    def read_only(self) -> None:
        if self.mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)
        else:
            done = subprocess.run(["chattr", "+i", str(self.path)], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.fail(f"cannot make {self.path} read-only for root: no tmpfs ({self.why_not_mounted}) "
                            f"and no chattr +i ({done.stderr.strip()})")
        with pytest.raises(OSError) as info:  # prove the fault holds for root before relying on it
            (self.path / "probe").write_text("x")
        assert info.value.errno in (errno.EROFS, errno.EPERM, errno.EACCES)

    def fill(self, proc: subprocess.Popen[str] | None = None) -> None:
        """No byte more fits: for avctl processes started later, and for `proc` if given."""
        if self.mounted:
            with open(self.path / "filler", "wb", buffering=0) as f:
                for chunk in (b"\0" * 65536, b"\0"):
                    with contextlib.suppress(OSError):
                        while True:
                            f.write(chunk)
            with pytest.raises(OSError) as info:
                (self.path / "probe").write_bytes(b"x" * 4096)
            assert info.value.errno == errno.ENOSPC
            return
        # files may not grow: the WAL file, where every commit is appended, is full as it stands
        wal = self.path / "avctl.db-wal"
        self.limit = wal.stat().st_size if proc is not None and wal.exists() else 0
        if proc is not None:
            resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (self.limit, self.limit))

    def popen(self, args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
        limit = self.limit

        def limits() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=limits)


@contextlib.contextmanager
def small_disk(path: Path) -> Iterator[Home]:
    home = Home(path)
    try:
        yield home
    finally:
        home.close()


def videoos_inventory(tmp_path: Path, devs: list[EmulatedVideoOS]) -> Path:
    inv = tmp_path / "inventory.yaml"
    inv.write_text("defaults: {family: videoos, password: env:FLEET_PW}\ndevices:\n"
                   + "".join(f"  {d.name}: {{address: '127.0.0.1:{d.port}'}}\n" for d in devs))
    return inv


def env_for(home: Path, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "AVCTL_HOME": str(home), "FLEET_PW": PASSWORD, "UC_PW": UC_PASSWORD,
            "AVCTL_KNOWN_HOSTS": str(tmp_path / "known_devices")}


def fleet_volume(tmp_path: Path, home: Home, inv: Path, *extra: str) -> subprocess.Popen[str]:
    return home.popen([*AVCTL, "fleet", "run", "audio_volume_set", "volume=33", "-i", str(inv),
                       f"--spec=videoos={SPEC_PATH}", "--json", *extra], env_for(home.path, tmp_path))


def uc_dial(tmp_path: Path, home: Home, dev: EmulatedPolyUC) -> subprocess.Popen[str]:
    return home.popen([*AVCTL, "call", "-f", "polyuc", f"127.0.0.1:{dev.port}", "callctrl_dial", "Dest=55",
                       "Line=1", "--password-env", "UC_PW"], env_for(home.path, tmp_path))


def assert_clean_refusal(proc: subprocess.Popen[str]) -> str:
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "avctl: error: cannot" in err and "Traceback" not in err, err
    return err


def make_store(tmp_path: Path, home: Home, emulators: EmulatorThread) -> None:
    """A database with a finished job in it, as a user would have."""
    [dev] = spawn(emulators, 1, prefix="earlier")
    first = tmp_path / "first"
    first.mkdir()
    proc = fleet_volume(tmp_path, home, videoos_inventory(first, [dev]))
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


# --- read-only, unopenable, full before the start: nothing is sent --------------------------------


@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "existing-db"])
def test_fleet_refuses_a_read_only_store_before_contacting_any_device(emulators: EmulatorThread, tmp_path: Path,
                                                                     existing: bool) -> None:
    with small_disk(tmp_path / "home") as home:
        if existing:
            make_store(tmp_path, home, emulators)
        home.read_only()
        devs = spawn(emulators, 3)
        err = assert_clean_refusal(fleet_volume(tmp_path, home, videoos_inventory(tmp_path, devs)))
        assert "avctl.db" in err and "avctl: hint:" in err
        assert all(not d.requests and d.state.volume == 50 for d in devs)


def test_fleet_refuses_a_store_that_is_a_directory(emulators: EmulatorThread, tmp_path: Path) -> None:
    home = Home.__new__(Home)  # a plain folder: no mount, no limit
    home.path, home.limit = tmp_path / "home", None
    (home.path / "avctl.db").mkdir(parents=True)  # fails for root as for anyone
    devs = spawn(emulators, 2)
    assert "it is a directory" in assert_clean_refusal(fleet_volume(tmp_path, home, videoos_inventory(tmp_path, devs)))
    assert all(not d.requests for d in devs)


def test_fleet_refuses_a_full_disk_before_contacting_any_device(emulators: EmulatorThread, tmp_path: Path) -> None:
    with small_disk(tmp_path / "home") as home:
        make_store(tmp_path, home, emulators)
        home.fill()
        devs = spawn(emulators, 3)
        err = assert_clean_refusal(fleet_volume(tmp_path, home, videoos_inventory(tmp_path, devs)))
        assert "the disk is full" in err or not home.mounted  # RLIMIT_FSIZE leaves the disk itself free
        assert all(not d.requests for d in devs)


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_call_refuses_before_changing_the_device(emulators: EmulatorThread, tmp_path: Path, fault: str) -> None:
    dev = emulators.add(EmulatedPolyUC("vvx", password=UC_PASSWORD))
    assert isinstance(dev, EmulatedPolyUC)
    with small_disk(tmp_path / "home") as home:
        first = uc_dial(tmp_path, home, dev)  # creates the audit log, as earlier use would have
        assert first.wait(60) == 0
        dev.requests.clear()
        dev.phone.calls.clear()
        home.read_only() if fault == "read-only" else home.fill()
        assert_clean_refusal(uc_dial(tmp_path, home, dev))
    assert not dev.requests and not dev.phone.calls


def test_write_probe_is_a_real_write_that_is_rolled_back(tmp_path: Path) -> None:
    path = tmp_path / "avctl.db"
    with SqliteJobStore(path) as store:
        store.check_writable()
    conn = sqlite3.connect(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert not any("probe" in t for t in tables)  # nothing left behind
    # a file SQLite can only read (here opened read-only by URI; elsewhere a 0444 file for a
    # non-root user or an immutable file) passes every open but fails the probe
    ro = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        with pytest.raises(StoreError, match="readonly"):
            check_writable(ro, path)
    finally:
        ro.close()


# --- the disk fills up while the job runs ------------------------------------------------------------


def test_fleet_disk_full_mid_job_stops_new_devices_and_exits_non_zero(emulators: EmulatorThread,
                                                                      tmp_path: Path) -> None:
    devs = spawn(emulators, 4)
    for d in devs[1:]:
        d.faults.paused = True  # devs[1] will be in flight when the disk fills
    with small_disk(tmp_path / "home") as home:
        proc = fleet_volume(tmp_path, home, videoos_inventory(tmp_path, devs), "--concurrency", "1")
        deadline = time.monotonic() + 60
        while len(finished_outcomes(home.path / "avctl.db")) < 1 or not devs[1].requests:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the job made no progress"
            time.sleep(0.02)
        home.fill(proc)
        for d in devs[1:]:
            d.faults.paused = False
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    assert "could not be written" in err or "cannot write" in err, err
    assert "no new device was started" in err
    report = {d["device"]: d for d in json.loads(out)["devices"]}
    # what was known is still reported: the first device, and the one in flight, which finished
    assert report[devs[0].name]["status"] == "ok" and report[devs[1].name]["status"] == "ok"
    assert devs[0].state.volume == devs[1].state.volume == 33
    for d in devs[2:]:
        assert report[d.name]["status"] == "skipped" and report[d.name]["reason"] == "not_run"
        assert not d.requests and d.state.volume == 50  # never contacted


def test_call_disk_full_after_the_change_says_it_was_not_recorded(emulators: EmulatorThread,
                                                                  tmp_path: Path) -> None:
    dev = emulators.add(EmulatedPolyUC("vvx", password=UC_PASSWORD))
    assert isinstance(dev, EmulatedPolyUC)
    dev.faults.paused = True
    with small_disk(tmp_path / "home") as home:
        proc = uc_dial(tmp_path, home, dev)
        deadline = time.monotonic() + 60
        while not dev.requests:  # the audit log was checked, the request is on the device
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        home.fill(proc)
        dev.faults.paused = False
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    assert "the change WAS MADE" in err and "could NOT be recorded in the audit log" in err, err
    assert len(dev.phone.calls) == 1


def test_a_database_from_before_request_counts_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE outcomes (job_id INTEGER NOT NULL, device TEXT NOT NULL, family TEXT,"
                       " status TEXT NOT NULL, reason TEXT, message TEXT, data TEXT, attempts INTEGER NOT NULL,"
                       " started REAL, finished REAL NOT NULL, PRIMARY KEY (job_id, device));"
                       "INSERT INTO outcomes VALUES (1, 'a', 'videoos', 'ok', NULL, NULL, NULL, 1, 0, 1);")
    conn.close()
    with SqliteJobStore(path) as store:
        [old] = store.outcomes(1)
        assert old.device == "a" and old.requests is None
        store.record_outcome(1, Outcome("b", "ok", requests=4))
        assert [o.requests for o in store.outcomes(1)] == [None, 4]
