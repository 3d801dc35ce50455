"""A real PostgreSQL server for the tests, started from Debian's binaries (package `postgresql`).

One server per test session (`postgres_server` in tests/conftest.py), one fresh database per test
(`pg_url`). The server listens on 127.0.0.1 only, on a free port, with trust authentication for
loopback connections (pg_hba from initdb --auth-host=trust); its data directory is a temporary
folder removed at the end. PostgreSQL refuses to run as root: when the tests run as root, initdb and
pg_ctl run as the `postgres` user (created by the Debian package). Durability settings are off
(fsync, full-page writes): the data is thrown away, and it keeps start-up and every commit cheap.

A server that cannot be found or started raises `PostgresUnavailable` with the reason: the fixture
turns it into a failure, never a skip.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from tests.ports import free_port


class PostgresUnavailable(RuntimeError):
    """PostgreSQL is not installed or did not start (the message says which and why)."""


def find_bindir() -> Path:
    """The newest /usr/lib/postgresql/N/bin that has initdb (or PG_BINDIR)."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        on_path = shutil.which("initdb")
        if on_path:
            return Path(on_path).parent
        raise PostgresUnavailable("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
                                  "install Debian's 'postgresql' package (scripts/test does)")
    return Path(found[-1]).parent



class PostgresServer:
    def __init__(self) -> None:
        self.bindir = find_bindir()
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="avctl-pg-"))
        self.root.chmod(0o755)  # the postgres user must reach its data directory
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.started = False

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def start(self) -> None:
        if self._as_postgres:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("running as root and there is no 'postgres' user to run "
                                          "PostgreSQL as (it refuses root)") from None
            self.data.mkdir(mode=0o700)
            os.chown(self.data, user.pw_uid, user.pw_gid)
            self.log.touch()
            os.chown(self.log, user.pw_uid, user.pw_gid)
        init = self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth-local=trust",
                         "--auth-host=trust", "--no-sync", "-E", "UTF8", "--locale=C")
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {init.stderr.strip() or init.stdout.strip()}")
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        ctl = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "60", "start")
        if ctl.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise PostgresUnavailable(f"pg_ctl start failed: {ctl.stderr.strip() or ctl.stdout.strip()}\n{log}")
        self.started = True

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        name = "t_" + uuid.uuid4().hex[:16]
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.started:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
            self.started = False
        with contextlib.suppress(OSError):
            shutil.rmtree(self.root)


def start_server() -> tuple[PostgresServer, float]:
    """A started server and how long starting it took (seconds)."""
    t0 = time.perf_counter()
    server = PostgresServer()
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server, time.perf_counter() - t0
