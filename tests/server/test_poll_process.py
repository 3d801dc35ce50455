"""The poll engine in its own process: a real child process polling real emulators over HTTPS.

Waits are for conditions (observations arriving), never for fixed windows: the child polls on its
own clock, so the tests only ask what it reported.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from avctl.emulator.core import EmulatorThread
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.fleet.inventory import DeviceEntry
from avctl.server.poll import PollSettings
from avctl.server.poll.process import POLLER_NICE, ChildConfig, PollProcess
from tests.server.polling import Sink, entry_for

#: polls of the same device at most this often (the tests wait for a few of them)
INTERVAL = 0.3
WITHIN = 60.0


def config(tmp_path: Path) -> ChildConfig:
    settings = PollSettings(interval=INTERVAL, jitter=0.0, family_min_interval={"videoos": INTERVAL},
                            start_rate=1000.0)
    return ChildConfig(settings=settings, base_dir=tmp_path, known_hosts=tmp_path / "known_devices")


async def until(condition: Callable[[], bool], what: str, within: float = WITHIN) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.05)


def codecs(emulators: EmulatorThread, n: int) -> list[EmulatedVideoOS]:
    return [emulators.add(EmulatedVideoOS(f"codec-{i}", password="pw-poll")) for i in range(1, n + 1)]


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    # the child resolves the reference itself, from the environment it inherits
    monkeypatch.setenv("POLL_PW", "pw-poll")


async def test_observations_and_lag_come_back_and_targets_change(emulators: EmulatorThread, tmp_path: Path) -> None:
    one, two, three = codecs(emulators, 3)
    sink, lags = Sink(), []
    poller = PollProcess(config(tmp_path), sink=sink, on_lag=lambda family, s: lags.append((family, s)))
    poller.set_poll_targets([entry_for(one), entry_for(two)])  # before the start: handed over at once
    await poller.start()
    try:
        assert poller.pid is not None and poller.pid != os.getpid()
        # polling yields the CPU to the server's API and pages when the host is busy
        own = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, poller.pid) == min(19, own + POLLER_NICE)
        await until(lambda: "online" in sink.states("codec-1") and "online" in sink.states("codec-2"),
                    "both codecs online")
        assert sink.last("codec-1").readings["model"] == one.state.model
        assert lags and all(family == "videoos" and s >= 0 for family, s in lags)
        # it polls (HTTPS, pins, logins) without ever loading aiohttp: ~11 MB of its memory
        assert "/aiohttp/" not in Path(f"/proc/{poller.pid}/maps").read_text()
        # the pin was taken on first use by the child, in the file the server reads too
        assert (tmp_path / "known_devices").read_text().count("127.0.0.1:") == 2

        poller.set_poll_targets([entry_for(one), entry_for(three)])
        await until(lambda: "online" in sink.states("codec-3"), "codec-3 polled once added")
        seen_two = len(sink.by["codec-2"])
        mark = len(sink.by["codec-1"])
        await until(lambda: len(sink.by["codec-1"]) >= mark + 3, "codec-1 polled on")
        assert len(sink.by["codec-2"]) <= seen_two + 1  # at most the poll in flight at the change
        assert not two.sessions  # the removed codec was logged out
    finally:
        await poller.stop()


async def test_a_killed_poller_is_started_again_with_its_targets(emulators: EmulatorThread, tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    (one,) = codecs(emulators, 1)
    sink = Sink()
    poller = PollProcess(config(tmp_path), sink=sink, restart_delays=(0.0,))
    poller.set_poll_targets([entry_for(one)])
    await poller.start()
    try:
        await until(lambda: "online" in sink.states("codec-1"), "polled")
        first = poller.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await until(lambda: poller.starts == 2, "a second poller started")
        assert poller.pid != first
        mark = len(sink.by["codec-1"])
        await until(lambda: len(sink.by["codec-1"]) > mark + 1, "the new poller polls the same targets")
        assert sink.last("codec-1").state == "online"
        assert "the poller process ended (exit code -9)" in caplog.text
    finally:
        await poller.stop()


async def test_a_rejected_login_is_not_tried_again_by_a_restarted_poller(
        emulators: EmulatorThread, tmp_path: Path) -> None:
    (good,) = codecs(emulators, 1)
    locked = emulators.add(EmulatedVideoOS("codec-locked", password="another-password"))
    sink = Sink()
    poller = PollProcess(config(tmp_path), sink=sink, restart_delays=(0.0,))
    poller.set_poll_targets([entry_for(good), entry_for(locked)])
    await poller.start()
    try:
        await until(lambda: "auth_failed" in sink.states("codec-locked"), "the login rejected")
        assert len(locked.lockout.failures) == 1
        assert poller.pid is not None
        os.kill(poller.pid, signal.SIGKILL)
        await until(lambda: poller.starts == 2, "a second poller started")
        mark = len(sink.by["codec-1"])
        await until(lambda: len(sink.by["codec-1"]) > mark + 2, "the new poller polls")
        assert len(locked.lockout.failures) == 1  # the rejected login was not sent again
        assert sink.states("codec-locked") == ["auth_failed"]
        # a changed entry is a reason to try once more (the poller's environment is the one it
        # started with: the new secret comes from a file, read by the poller)
        (tmp_path / "codec-locked.pw").write_text("another-password\n")
        poller.set_poll_targets([entry_for(good), entry_for(locked, password=f"file:{tmp_path}/codec-locked.pw")])
        await until(lambda: "online" in sink.states("codec-locked"), "the right password taken")
    finally:
        await poller.stop()


async def test_stop_logs_out_of_every_device_and_ends_the_child(emulators: EmulatorThread, tmp_path: Path) -> None:
    devices = codecs(emulators, 2)
    sink = Sink()
    poller = PollProcess(config(tmp_path), sink=sink, restart_delays=(0.0,))
    poller.set_poll_targets([entry_for(d) for d in devices])
    await poller.start()
    await until(lambda: all("online" in sink.states(d.name) for d in devices), "polled")
    assert all(d.sessions for d in devices)
    pid = poller.pid
    await poller.stop()
    assert pid is not None and not _alive(pid)
    assert not any(d.sessions for d in devices)  # logged out, not left to expire
    assert poller.starts == 1  # a stop is not a death: nothing started again


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


SERVER = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from avctl.fleet.inventory import DeviceEntry, parse_address
    from avctl.server.poll import PollSettings
    from avctl.server.poll.process import POLLER_NICE, ChildConfig, PollProcess

    async def main() -> None:
        tmp = Path(sys.argv[1])
        settings = PollSettings(interval=0.3, family_min_interval={"videoos": 0.3})
        async def sink(observation) -> None:
            print("observed", observation.device, observation.state, flush=True)
        poller = PollProcess(ChildConfig(settings, tmp, tmp / "known_devices"), sink=sink)
        poller.set_poll_targets([DeviceEntry("codec-1", "videoos", parse_address(sys.argv[2]),
                                             password="env:POLL_PW")])
        await poller.start()
        print("child", poller.pid, flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
""")


async def test_the_poller_ends_when_the_server_is_killed(emulators: EmulatorThread, tmp_path: Path) -> None:
    (one,) = codecs(emulators, 1)
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(tmp_path), f"127.0.0.1:{one.port}"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        child = int(server.stdout.readline().split()[1])
        assert server.stdout.readline().startswith("observed codec-1")  # it polls
        server.kill()
        server.wait()
        await until(lambda: not _alive(child), "the orphaned poller ended")
    finally:
        server.kill()
        server.wait()


def test_entries_cross_to_the_child_unchanged(tmp_path: Path) -> None:
    """Inventory entries hold read-only mappings (data, ports, schemes): they arrive equal and read-only."""
    from multiprocessing import Pipe

    from avctl.fleet.inventory import parse_address
    from avctl.server.poll.process import _receive, _send

    entry = DeviceEntry("pod-1", "solstice", parse_address("127.0.0.1:4443"), site="hq", tags=frozenset({"a"}),
                        data=_ro({"floor": 3, "nested": _ro({"x": 1})}), ports=_ro({"http": 8080}),
                        schemes=_ro({"https": "http"}), password="env:POD_PW")
    read, write = Pipe(duplex=False)
    _send(write, ("targets", [entry]))
    (_kind, (back,)) = _receive(read)
    assert back == entry
    with pytest.raises(TypeError):
        back.ports["http"] = 1  # type: ignore[index]


def _ro(d: dict[str, object]) -> object:
    from types import MappingProxyType

    return MappingProxyType(d)
