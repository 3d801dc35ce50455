#!/usr/bin/env python3
"""CPU time per poll, per family, of the server's poll engine; and the cost of writing state.

Emulators run in their own processes (``EmulatedFleet``), so the figures are the poller's own CPU
time (``time.process_time`` of the measuring process): the first round (logins, TLS handshakes)
apart from the steady rounds that follow (sessions and connections kept), and its memory per
polled device. The clock is injected: rounds run back to back, each as one step of the engine.

Variants run side by side, each in a fresh process (memory figures are per process), and are
compared with the first: a variant is ``+``-joined words, ``aiohttp`` (the CLI's transport instead of
the poller's `LeanTransport`), ``uvloop`` (its event loop), ``arena2`` (``MALLOC_ARENA_MAX=2``),
``mmap16`` (``MALLOC_MMAP_THRESHOLD_=16384``: OpenSSL's 17 KB record buffers mapped and unmapped
per use instead of taken from the heap),
``freeze`` (``gc.freeze()`` after start-up), ``trim`` (``malloc_trim`` before measuring memory),
``every`` (every reading on every poll: no slow tier), ``nogc`` (with ``--live``: CPython's collector
thresholds, nothing frozen, instead of the poller's `avctl.server.heap.settle`), ``prof`` (a cProfile
of the measured window, with a CPU clock, written to the temporary directory: its figures include
the profiler's own cost).

    .venv/bin/python scripts/bench_poll.py --devices 300 --rounds 5 --variants aiohttp,lean,lean+uvloop
    .venv/bin/python scripts/bench_poll.py --devices 2000 --live 60 --latency-ms 50 --variants aiohttp,lean

``--live SECONDS`` runs the engine as the server does instead (mixed families, ``--devices`` in all,
the real clock, the first sweep spread at `start_rate`) and measures that long after the first sweep.
``uvloop`` is not a dependency of avctl: install it to measure that variant.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import ctypes
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from avctl.fleet.credentials import CredentialResolver
from avctl.fleet.inventory import DeviceEntry, load_inventory, parse_address
from avctl.server.heap import settle
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


async def bench_family(family: str, devices: int, rounds: int, latency_ms: float,
                       variant: set[str]) -> dict[str, float]:
    from avctl.emulator.fleet import EmulatedFleet
    from avctl.transport.http import HttpTransport

    with tempfile.TemporaryDirectory() as tmp, EmulatedFleet({family: devices}, latency_ms=latency_ms) as fleet:
        inv_path = fleet.write_inventory(Path(tmp) / "inventory.yaml", known_hosts=Path(tmp) / "known_devices")
        inventory = load_inventory(inv_path)
        entries = list(inventory.devices)
        seen: list[Observation] = []

        async def sink(observation: Observation) -> None:
            seen.append(observation)

        clock = Clock()
        tls = TLSPolicy.pinned(KnownHosts(Path(tmp) / "known_devices"))
        settings = PollSettings(interval=60, jitter=0.0, concurrency=200,
                                slow_interval=60 if "every" in variant else 600)
        transport = HttpTransport(tls, keepalive=settings.keepalive()) if "aiohttp" in variant else None
        engine = PollEngine(sink=sink, tls=tls, resolver=CredentialResolver(base_dir=Path(tmp)),
                            settings=settings, clock=clock, transport=transport)
        if "freeze" in variant:
            gc.collect()
            gc.freeze()
        rss0 = rss_kb()
        try:
            engine.set_targets(entries)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await engine.step()
            first_cpu, first_wall = time.process_time() - cpu0, time.perf_counter() - wall0
            profiler = _profiler(variant)
            cpu0, wall0, times0 = time.process_time(), time.perf_counter(), os.times()
            for _ in range(rounds):
                clock.t += 60
                await engine.step()
            cpu, wall, times = time.process_time() - cpu0, time.perf_counter() - wall0, os.times()
            _profiled(profiler, f"{family}-{'+'.join(sorted(variant))}")
            if "trim" in variant:
                ctypes.CDLL("libc.so.6").malloc_trim(0)
            rss = rss_kb() - rss0
        finally:
            await engine.close()
        online = sum(1 for o in seen if o.state == "online")
        return {"devices": devices, "rounds": rounds, "online_share": round(online / max(len(seen), 1), 3),
                "first_round_cpu_ms_per_poll": round(first_cpu / devices * 1000, 2),
                "first_round_wall_s": round(first_wall, 2),
                "steady_cpu_ms_per_poll": round(cpu / (devices * rounds) * 1000, 2),
                # the kernel's share: on loopback a send also does the receiving side's work
                "steady_sys_ms_per_poll": round((times.system - times0.system) / (devices * rounds) * 1000, 2),
                "steady_wall_s_per_round": round(wall / rounds, 2),
                # connections kept, sessions, coordinators: what each polled device costs in memory
                "rss_kb_per_device": round(rss / devices, 1)}


async def bench_live(devices: int, window: float, latency_ms: float, variant: set[str],
                     interval: float) -> dict[str, float]:
    """The engine as the server runs it: mixed families, the real clock, the first sweep spread at
    `start_rate`, answers arriving one by one; CPU over `window` seconds after the first sweep."""
    from avctl.emulator.fleet import EmulatedFleet
    from avctl.transport.http import HttpTransport

    third = devices // 3
    with tempfile.TemporaryDirectory() as tmp, EmulatedFleet(
            {"videoos": third, "polyuc": third, "solstice": devices - 2 * third}, latency_ms=latency_ms) as fleet:
        inv_path = fleet.write_inventory(Path(tmp) / "inventory.yaml", known_hosts=Path(tmp) / "known_devices")
        polls = 0

        async def sink(_observation: Observation) -> None:
            nonlocal polls
            polls += 1

        tls = TLSPolicy.pinned(KnownHosts(Path(tmp) / "known_devices"))
        settings = PollSettings(interval=interval, slow_interval=interval if "every" in variant else 600)
        transport = HttpTransport(tls, keepalive=settings.keepalive()) if "aiohttp" in variant else None
        engine = PollEngine(sink=sink, tls=tls, resolver=CredentialResolver(base_dir=Path(tmp)), settings=settings,
                            transport=transport, on_lag=lambda _family, _seconds: None)
        rss0 = rss_kb()
        engine.set_targets(list(load_inventory(inv_path).devices))
        if "nogc" not in variant:  # as the poller process does
            settle()
        collecting = _GcClock()
        runner = asyncio.create_task(engine.run())
        try:
            # the first sweep: spread over at most one interval (`PollSettings.first_delay`)
            await asyncio.sleep(min(interval, devices / settings.start_rate) + 10)
            if "freeze" in variant:
                gc.collect()
                gc.freeze()
            profiler = _profiler(variant)
            polls0, cpu0, times0, gc0 = polls, time.process_time(), os.times(), collecting.seconds
            await asyncio.sleep(window)
            cpu, times, done = time.process_time() - cpu0, os.times(), polls - polls0
            gc_seconds = collecting.seconds - gc0
            _profiled(profiler, f"live-{'+'.join(sorted(variant))}")
            if "trim" in variant:
                ctypes.CDLL("libc.so.6").malloc_trim(0)
            rss = rss_kb() - rss0
            trim0 = time.perf_counter()  # one return of free memory at this size (the server's `trim_every`)
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            trim_ms = (time.perf_counter() - trim0) * 1000
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
            await engine.close()
        return {"devices": devices, "rounds": 0, "polls": done,
                "cpu_pct_of_a_core": round(cpu / window * 100, 1),
                "cpu_ms_per_poll": round(cpu / max(done, 1) * 1000, 2),
                "sys_ms_per_poll": round((times.system - times0.system) / max(done, 1) * 1000, 2),
                "gc_ms_per_poll": round(gc_seconds / max(done, 1) * 1000, 3),
                "rss_kb_per_device": round(rss / devices, 1), "trim_ms": round(trim_ms, 2)}


class _GcClock:
    """The time the garbage collector takes, summed (wall clock: a collection does not wait)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


def _profiler(variant: set[str]) -> cProfile.Profile | None:
    """``prof``: a CPU-clock profile of the measured window (its figures then include the profiler's cost)."""
    if "prof" not in variant:
        return None
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    return profiler


def _profiled(profiler: cProfile.Profile | None, label: str) -> None:
    if profiler is not None:
        profiler.disable()
        path = Path(tempfile.gettempdir()) / f"bench_poll-{label}.prof"
        profiler.dump_stats(path)
        print(f"profile: {path}", file=sys.stderr)


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


def run_variant(variant: set[str], family: str, devices: int, rounds: int, latency_ms: float,
                live: float, interval: float) -> dict[str, float]:
    """In this process: one family (or the live mixed fleet) under one variant."""
    main = (bench_live(devices, live, latency_ms, variant, interval) if live
            else bench_family(family, devices, rounds, latency_ms, variant))
    if "uvloop" in variant:
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


def compare(variants: list[str], results: dict[str, dict[str, dict[str, float]]]) -> None:
    """One table per family: each figure under each variant, and its ratio to the first variant."""
    base = variants[0]
    for family in results[base]:
        first_figures = results[base][family]
        print(f"\n{family}: {first_figures['devices']} devices, {first_figures['rounds']} steady rounds")
        print(f"{'figure':32}" + "".join(f"{v:>22}" for v in variants))
        for key, first in results[base][family].items():
            if key in ("devices", "rounds"):
                continue
            cells = []
            for v in variants:
                value = results[v][family][key]
                ratio = f" ({value / first:.2f}x)" if v != base and first else ""
                cells.append(f"{value:>22}" if not ratio else f"{str(value) + ratio:>22}")
            print(f"{key:32}" + "".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50, help="devices per family")
    parser.add_argument("--rounds", type=int, default=5, help="steady rounds after the first")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--families", default="videoos,polyuc,solstice")
    parser.add_argument("--state-devices", type=int, default=10_000, help="observations per state batch (0: skip)")
    parser.add_argument("--variants", default="lean", help="comma-separated, compared with the first (see above)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--live", type=float, default=0.0, metavar="SECONDS",
                        help="run the engine as the server does (mixed families, --devices in all, the real "
                        "clock) and measure this long after the first sweep")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run the variants in turn this many times; figures are the medians")
    parser.add_argument("--interval", type=float, default=60.0,
                        help="with --live: the poll interval (12 s at 2,000 devices: the request rate of 10,000 "
                        "at 60 s)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one variant, in this process
    args = parser.parse_args()
    families = ["mixed"] if args.live else args.families.split(",")
    if args.child is not None:  # one family, one variant: memory is per process
        print(json.dumps(run_variant(set(args.child.split("+")), families[0], args.devices, args.rounds,
                                     args.latency_ms, args.live, args.interval)))
        return
    variants = args.variants.split(",")
    results: dict[str, dict[str, dict[str, float]]] = {v: {} for v in variants}
    for family in families:
        runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
        for _ in range(args.repeat):  # side by side: each family's variants in turn, `--repeat` times
            for variant in variants:
                env = dict(os.environ)
                if "arena2" in variant.split("+"):
                    env["MALLOC_ARENA_MAX"] = "2"
                if "mmap16" in variant.split("+"):
                    env["MALLOC_MMAP_THRESHOLD_"] = "16384"
                child = subprocess.run([sys.executable, __file__, "--child", variant, "--devices", str(args.devices),
                                        "--rounds", str(args.rounds), "--latency-ms", str(args.latency_ms),
                                        "--families", family, "--live", str(args.live),
                                        "--interval", str(args.interval)],
                                       env=env, check=True, capture_output=True, text=True)
                runs[variant].append(json.loads(child.stdout.strip().splitlines()[-1]))
        for variant in variants:  # the median of each figure over the repeats
            results[variant][family] = {key: statistics.median(run[key] for run in runs[variant])
                                        for key in runs[variant][0]}
    report: dict[str, object] = dict(results)
    if args.state_devices:
        report["state_store"] = bench_state(args.state_devices)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    compare(variants, results)
    if args.state_devices:
        print("\nstate store:", json.dumps(report["state_store"]))


if __name__ == "__main__":
    main()
