"""Helpers of the poll tests: a clock tests move, a sink that keeps what it is told, entries for emulators."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from avctl.emulator.core import EmulatedDevice
from avctl.fleet.credentials import CredentialResolver
from avctl.fleet.inventory import DeviceEntry, parse_address
from avctl.server.executor import ObservationSink
from avctl.server.model import Observation
from avctl.server.poll import PollEngine, PollSettings
from avctl.transport.tls import KnownHosts, TLSPolicy


class Clock:
    """Time as the test sets it: nothing in the engine waits for real."""

    def __init__(self, t: float | None = None) -> None:
        # today (certificates' expiry is read against it), then only moved by the test
        self.t = time.time() if t is None else t

    def __call__(self) -> float:
        return self.t


class Sink:
    """Keeps every observation, in order and per device."""

    def __init__(self) -> None:
        self.all: list[Observation] = []
        self.by: dict[str, list[Observation]] = defaultdict(list)

    async def __call__(self, observation: Observation) -> None:
        self.all.append(observation)
        self.by[observation.device].append(observation)

    def last(self, name: str) -> Observation:
        return self.by[name][-1]

    def states(self, name: str) -> list[str]:
        return [o.state for o in self.by[name]]


def entry_for(dev: EmulatedDevice, *, site: str | None = None, password: str = "env:POLL_PW",
              **kwargs: Any) -> DeviceEntry:
    """The inventory entry of an emulated device (Solstice: its v1 sockets too)."""
    ports = {k: v for k, v in getattr(dev, "extra_ports", {}).items() if v}
    return DeviceEntry(name=dev.name, family=dev.family, address=parse_address(f"{dev.host}:{dev.port}"),
                       site=site, password=password, ports=ports, **kwargs)


def engine_for(tmp_path: Path, sink: ObservationSink, clock: Clock, **settings: Any) -> PollEngine:
    async def no_sleep(_seconds: float) -> None:
        return None

    settings.setdefault("jitter", 0.0)
    # a seeded jitter: every run of a test sees the same schedule
    return PollEngine(sink=sink, tls=TLSPolicy.pinned(KnownHosts(tmp_path / "known_devices")),
                      resolver=CredentialResolver(base_dir=tmp_path), settings=PollSettings(**settings),
                      clock=clock, sleep=no_sleep, rng=random.Random(7))


async def tick(engine: PollEngine, clock: Clock) -> int:
    """Move the clock to the next due poll and run every poll due then."""
    due = engine.next_due()
    assert due is not None, "nothing scheduled"
    clock.t = max(clock.t, due)
    return await engine.step()


def logins(dev: EmulatedDevice) -> int:
    """Logins the device received: VideoOS sessions, Solstice v2 tokens."""
    paths = {"videoos": "/rest/session", "solstice": "/v2/token"}
    return sum(1 for r in dev.requests if r.method == "POST" and r.path == paths[dev.family])
