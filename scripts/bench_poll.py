#!/usr/bin/env python3
"""CPU time per poll, per family, of the server's poll engine; and the cost of writing state.

Emulators run in their own processes (``EmulatedFleet``), so the figures are the poller's own CPU
time (``time.process_time`` of this process): the first round (logins, TLS handshakes) apart from
the steady rounds that follow (sessions and connections kept). The clock is injected: rounds run
back to back, each as one step of the engine.

    .venv/bin/python scripts/bench_poll.py --devices 50 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from avctl.fleet.credentials import CredentialResolver
from avctl.fleet.inventory import DeviceEntry, load_inventory, parse_address
from avctl.server.model import Observation
from avctl.server.poll import PollEngine, PollSettings
from avctl.transport.tls import KnownHosts, TLSPolicy


def rss_kb() -> int:
    """This process's resident memory (kB), from /proc (0 where there is none)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Clock:
    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t


async def bench_family(family: str, devices: int, rounds: int, latency_ms: float) -> dict[str, float]:
    from avctl.emulator.fleet import EmulatedFleet

    with tempfile.TemporaryDirectory() as tmp, EmulatedFleet({family: devices}, latency_ms=latency_ms) as fleet:
        inv_path = fleet.write_inventory(Path(tmp) / "inventory.yaml", known_hosts=Path(tmp) / "known_devices")
        inventory = load_inventory(inv_path)
        entries = list(inventory.devices)
        seen: list[Observation] = []

        async def sink(observation: Observation) -> None:
            seen.append(observation)

        clock = Clock()
        engine = PollEngine(sink=sink, tls=TLSPolicy.pinned(KnownHosts(Path(tmp) / "known_devices")),
                            resolver=CredentialResolver(base_dir=Path(tmp)),
                            settings=PollSettings(interval=60, jitter=0.0, concurrency=200), clock=clock)
        rss0 = rss_kb()
        try:
            engine.set_targets(entries)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await engine.step()
            first_cpu, first_wall = time.process_time() - cpu0, time.perf_counter() - wall0
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for _ in range(rounds):
                clock.t += 60
                await engine.step()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            rss = rss_kb() - rss0
        finally:
            await engine.close()
        online = sum(1 for o in seen if o.state == "online")
        return {"devices": devices, "rounds": rounds, "online_share": round(online / max(len(seen), 1), 3),
                "first_round_cpu_ms_per_poll": round(first_cpu / devices * 1000, 2),
                "first_round_wall_s": round(first_wall, 2),
                "steady_cpu_ms_per_poll": round(cpu / (devices * rounds) * 1000, 2),
                "steady_wall_s_per_round": round(wall / rounds, 2),
                # connections kept, sessions, coordinators: what each polled device costs in memory
                "rss_kb_per_device": round(rss / devices, 1)}


def bench_state(devices: int) -> dict[str, float]:
    """One batch of `devices` observations through `StateStore.apply` into a SQLite file."""
    from avctl.db.engine import open_database
    from avctl.server.state import StateStore

    with tempfile.TemporaryDirectory() as tmp:
        db = open_database(str(Path(tmp) / "bench.db"))
        store = StateStore(db)
        entries = [DeviceEntry(name=f"d{i:05d}", family="videoos", address=parse_address(f"10.0.{i // 250}.{i % 250}"))
                   for i in range(devices)]
        store.sync_inventory(entries)
        out = {}
        for label, ts, fw in (("first", 1.0, "1.0"), ("steady", 61.0, "1.0"), ("firmware_change", 121.0, "2.0")):
            batch = [(e, Observation(e.name, ts, "online", {"firmware": fw, "in_call": False, "uptime": ts,
                                                              "volume": 40, "cert_days_left": 300.0}))
                     for e in entries]
            cpu0, wall0 = time.process_time(), time.perf_counter()
            store.apply(batch)
            out[f"apply_{label}_wall_s"] = round(time.perf_counter() - wall0, 3)
            out[f"apply_{label}_cpu_s"] = round(time.process_time() - cpu0, 3)
        db.close()
        return {"devices": devices, **out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50, help="devices per family")
    parser.add_argument("--rounds", type=int, default=5, help="steady rounds after the first")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--families", default="videoos,polyuc,solstice")
    parser.add_argument("--state-devices", type=int, default=10_000, help="observations per state batch (0: skip)")
    args = parser.parse_args()
    report: dict[str, object] = {}
    for family in args.families.split(","):
        report[family] = asyncio.run(bench_family(family, args.devices, args.rounds, args.latency_ms))
    if args.state_devices:
        report["state_store"] = bench_state(args.state_devices)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
