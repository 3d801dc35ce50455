"""`avctl serve` started the first time, as a new user does (issue 15's walkthrough): on a fresh home
it says in one line that it created the database (not Alembic's dozen INFO lines), and, with no
user yet, that nobody can sign in and how to add the first admin. A real server process.
"""

from __future__ import annotations

import socket
from pathlib import Path

from avctl.emulator.core import EmulatorThread
from avctl.emulator.videoos import EmulatedVideoOS

from .harness import ServerProcess, add_admin, run_cli, write_inventory

PASSWORD = "first-run-pw-8Hq"


def test_a_first_start_says_what_it_made_and_that_no_one_can_sign_in_yet(emulators: EmulatorThread,
                                                                            tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    codec = emulators.add(EmulatedVideoOS("codec-1", password=PASSWORD))
    (tmp_path / "fleet.password").write_text(PASSWORD + "\n")
    inventory = write_inventory(tmp_path / "fleet.yaml", [codec])
    server = ServerProcess(home, ["-i", str(inventory)]).start()
    try:
        # every attempt's log: a port taken by another program on a loaded machine makes the harness
        # start the server again on another one, and only the first attempt creates the schema
        log = "".join(p.read_text(errors="replace") for p in sorted(home.glob("server-*.log")))
        assert "database: schema created" in log
        assert "setup plugin" not in log and "alembic" not in log.lower()
        assert "no users yet, so nobody can sign in: add the first admin with " \
               "'avctl users add NAME --role admin'" in log
    finally:
        server.stop()
    # the same database again, now with an admin: nothing to create, nothing to say about users
    add_admin(home, str(home / "avctl.db"))
    server = ServerProcess(home, ["-i", str(inventory)]).start()
    try:
        log = server.log_text()
        assert "database: schema" not in log and "no users yet" not in log
    finally:
        server.stop()


def test_a_taken_port_is_one_error_line(tmp_path: Path) -> None:
    """uvicorn exits when it cannot bind: avctl says where and what to do, exit 2, no traceback."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text("devices:\n  codec-1: {family: videoos, address: '127.0.0.1:1', password: env:NOPE}\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(home, "serve", "-i", str(inventory), "--listen", f"127.0.0.1:{port}")
    assert done.returncode == 2, done.stderr
    assert f"avctl: error: cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "choose another with --listen" in done.stderr and "Traceback" not in done.stderr
