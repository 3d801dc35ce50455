"""Fixtures of the Temporal engine's tests: a Temporal dev server, sites of emulated devices, site
workers as real processes (``avctl worker --site NAME``), each with its own home (pins, journal)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from avctl.emulator.core import EmulatedDevice
from tests.server.harness import wait_for
from tests.temporal_dev import TemporalDevServer, TemporalUnavailable

PASSWORD = "site-fleet-pw-4Kq"


@pytest.fixture(scope="session")
def temporal_server() -> Iterator[TemporalDevServer]:
    try:
        server = TemporalDevServer().start()
    except TemporalUnavailable as exc:
        pytest.fail(f"Temporal for the tests: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


class SiteWorker:
    """``avctl worker --site NAME`` in its own process, with a home of its own (the site's machine)."""

    def __init__(self, root: Path, site: str, address: str, base_dir: Path, extra: Sequence[str] = (),
                 env: dict[str, str] | None = None) -> None:
        self.site = site
        self.extra = list(extra)
        self.env = dict(env or {})
        self.home = root / f"worker-{site}"
        self.home.mkdir(parents=True, exist_ok=True)
        self.address = address
        self.base_dir = base_dir
        self.log = self.home / "worker.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> SiteWorker:
        self.starts += 1
        env = {**os.environ, "AVCTL_HOME": str(self.home), **self.env}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "avctl.cli.main", "worker", "--site", self.site, "--temporal", self.address,
                 "--base-dir", str(self.base_dir), *self.extra], env=env, stdout=out, stderr=subprocess.STDOUT)
        wait_for(self._ready, within=60, what=f"the worker of site {self.site}")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker of {self.site} exited with {self.proc.returncode}: {self.text()[-2000:]}")
        return self.text().count("avctl worker: site") >= self.starts

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)


class Sites:
    """Sites of emulated devices and their workers; site names unique per test (one Temporal server
    serves the whole session, and a task queue is named after its site)."""

    def __init__(self, root: Path, server: TemporalDevServer) -> None:
        self.root = root
        self.server = server
        self.token = uuid.uuid4().hex[:6]
        self.devices: dict[str, list[EmulatedDevice]] = {}
        self.workers: dict[str, SiteWorker] = {}
        self.inventory = root / "fleet.yaml"
        (root / "fleet.password").write_text(PASSWORD + "\n")

    def name(self, short: str) -> str:
        return f"{short}-{self.token}"

    def add(self, short: str, devices: Sequence[EmulatedDevice]) -> str:
        site = self.name(short)
        self.devices[site] = list(devices)
        return site

    def write_inventory(self, passwords: dict[str, str] | None = None, timezones: dict[str, str] | None = None,
                        top: str = "") -> Path:
        lines = ["defaults: {password: 'file:fleet.password'}", *([top.rstrip("\n")] if top else [])]
        if timezones:
            lines.append("sites:")
            lines += [f"  {site}: {{timezone: {tz}}}" for site, tz in timezones.items()]
        lines.append("devices:")
        for site, devices in self.devices.items():
            for dev in devices:
                ports = {k: v for k, v in getattr(dev, "extra_ports", {}).items() if v}
                extra = f", ports: {ports!r}" if ports else ""
                own = (passwords or {}).get(dev.name)
                pw = f", password: '{own}'" if own else ""
                lines.append(f"  {dev.name}: {{family: {dev.family}, address: '{dev.host}:{dev.port}', "
                             f"site: {site}{extra}{pw}}}")
        self.inventory.write_text("\n".join(lines) + "\n")
        return self.inventory

    def worker(self, site: str) -> SiteWorker:
        if site not in self.workers:
            self.workers[site] = SiteWorker(self.root, site, self.server.address, self.root)
        return self.workers[site]

    def start_workers(self, *sites: str) -> None:
        for site in sites or tuple(self.devices):
            self.worker(site).start()

    def stop(self) -> None:
        for w in self.workers.values():
            w.stop()

    def cli(self, home: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "AVCTL_HOME": str(home)}
        return subprocess.run([sys.executable, "-m", "avctl.cli.main", *args], env=env, capture_output=True,
                              text=True, timeout=timeout, cwd=self.root)

    def job(self, home: Path, *args: str) -> subprocess.Popen[str]:
        """A fleet command in the background (the test acts while it runs)."""
        env = {**os.environ, "AVCTL_HOME": str(home)}
        return subprocess.Popen([sys.executable, "-m", "avctl.cli.main", *args], env=env, cwd=self.root,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def sites(tmp_path: Path, temporal_server: TemporalDevServer) -> Iterator[Sites]:
    s = Sites(tmp_path, temporal_server)
    try:
        yield s
    finally:
        s.stop()


def requests_to(dev: EmulatedDevice, method: str, fragment: str) -> int:
    """How many requests the device received with this method and a path containing ``fragment``."""
    return sum(1 for r in dev.requests if r.method == method and fragment in r.path)


def outcomes_of(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["device"]: o for o in doc["devices"]}


class LinkProxy:
    """A site's WAN link to Temporal: a TCP relay on loopback that the test can cut and restore."""

    def __init__(self, target: str) -> None:
        import asyncio
        import threading

        from tests.ports import free_port

        host, _, port = target.rpartition(":")
        self.target = (host, int(port))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.up = True
        self.loop = asyncio.new_event_loop()
        self._writers: set[Any] = set()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(10)

    async def _listen(self) -> None:
        import asyncio

        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def _client(self, reader: Any, writer: Any) -> None:
        import asyncio
        import contextlib

        if not self.up:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: Any, dst: Any) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        """Every connection through the link dropped, new ones refused (closed at once)."""
        def drop() -> None:
            self.up = False
            for w in list(self._writers):
                w.transport.abort()
            self._writers.clear()

        self.loop.call_soon_threadsafe(drop)

    def restore(self) -> None:
        def up() -> None:
            self.up = True

        self.loop.call_soon_threadsafe(up)

    def close(self) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
