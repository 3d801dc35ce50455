"""`avctl serve` and its poller process under a signal to their whole process group (Ctrl-C in a
terminal, `timeout`, systemd's KillMode=control-group): the poller ignores it, the server stops it
through its pipe, nothing is restarted or logged as an error, the exit code is 0."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from avctl.emulator.core import EmulatorThread
from avctl.emulator.videoos import EmulatedVideoOS

from .harness import ServerProcess, add_admin, wait_for, write_inventory

PASSWORD = "group-pw-7Hq"


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # ended meanwhile
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended, its parent has not collected it yet


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_process_group_stops_the_server_and_its_poller_cleanly(
        emulators: EmulatorThread, tmp_path: Path, any_db_url: str, number: signal.Signals) -> None:
    home = tmp_path / "home"
    codec = emulators.add(EmulatedVideoOS("codec-1", password=PASSWORD))
    (tmp_path / "fleet.password").write_text(PASSWORD + "\n")
    inventory = write_inventory(tmp_path / "fleet.yaml", [codec])
    token = add_admin(home, any_db_url)
    server = ServerProcess(home, ["-i", str(inventory), "--db", any_db_url, "--interval", "60s"],
                           session=True).start().use_token(token)
    assert server.proc is not None
    try:
        wait_for(lambda: server.get("/api/v1/devices", state="online")["total"] == 1, within=90,
                 what="the codec polled")
        pollers = wait_for(lambda: [p for p in children(server.proc.pid) if alive(p)], within=30,
                           what="the poller process")
        # the poller and nothing else: no resource tracker beside it (12 MB for nothing)
        assert len(pollers) == 1, [Path(f"/proc/{p}/cmdline").read_bytes() for p in pollers]
        server.session.close()
        os.killpg(server.proc.pid, number)  # the server leads its own group: every process in it
        assert server.proc.wait(60) == 0
        wait_for(lambda: not any(alive(p) for p in pollers), within=30, what="the poller ended")
    finally:
        server.stop()
    log = server.log_text()
    assert "ERROR" not in log, log[-3000:]
    assert "poller process ended" not in log
