#!/usr/bin/env python3
"""`avctl serve` polling an emulated fleet, side by side with `avctl fleet status` run every interval.

One run, two phases on the same fleet and for the same duration:

1. `avctl serve` as a process (its own AVCTL_HOME, SQLite, HTTPS with its self-signed certificate)
   polls every device at ``--interval``. Measured from outside, the server and its poller process
   together (and the server alone): CPU (/proc/PID/stat utime+stime; "sustained" = after the first
   sweep, which logs in to every device), peak memory (the largest sum of their RSS samples),
   the API's latency (device list page and one device, spread over the run, with a viewer's token),
   the poll lag (``avctl_poll_lag_seconds`` from /metrics: how late polls started after they were
   due) and the time from one device going down to the alert webhook reaching a receiver here.
2. ``avctl fleet status -i INV --json`` as a process every ``--interval``: CPU and peak memory per
   sweep (wait4 rusage), wall time per sweep.

The fleet's emulators run in their own processes (`EmulatedFleet`), except the one device that is
taken down: it runs in this process (`EmulatorThread`) so its fault switch can be flipped. The
machine's load average is printed: the emulators share the cores with the server.

    .venv/bin/python scripts/bench_server.py --devices 1000 --minutes 2
    .venv/bin/python scripts/bench_server.py --devices 10000 --minutes 5     # the issue's benchmark
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml

from avctl.safeyaml import write_yaml
from avctl.transport.tls import KnownHosts, fingerprint

TICK = os.sysconf("SC_CLK_TCK")
PAGE = 1024
DOWN = "bench-down-codec"
FAMILIES = ("videoos", "polyuc", "solstice")
# the targets
TARGET_CPU_PCT = 25.0
TARGET_MEM_MB = 500.0
TARGET_P99_MS = 100.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def pss_kb(pid: int) -> int:
    """The process's proportional set size: its private pages, and its share of the shared ones."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; NaN if empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


class Hook:
    """A webhook receiver on 127.0.0.1: the arrival time of each alert event, by (event, device)."""

    def __init__(self) -> None:
        self.arrived: dict[tuple[str, str], float] = {}
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                alert = body.get("alert") or {}
                hook.arrived.setdefault((str(body.get("event")), str(alert.get("device"))), time.time())
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()


def process_tree(pid: int) -> list[int]:
    """A process and its descendants (the server and its poller process)."""
    pids, i = [pid], 0
    while i < len(pids):
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pids[i]}/task").iterdir():
                with contextlib.suppress(OSError):
                    pids += [int(x) for x in (task / "children").read_text().split()]
        i += 1
    return pids


class Sampler:
    """Samples CPU time and memory of a process and its children every `every` seconds in a thread:
    per sample (time, CPU s of all, RSS kB of all, CPU s of the process alone, its RSS kB, PSS kB of
    all). RSS counts the pages the processes share (libpython, OpenSSL, extension modules) once per
    process; PSS splits them between the processes, so its sum is what they take together."""

    def __init__(self, pid: int, every: float = 1.0) -> None:
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float, int, float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, ValueError, IndexError):
                cpu, rss = cpu_seconds(self.pid), status_kb(self.pid, "VmRSS")
                all_cpu, all_rss, all_pss = cpu, rss, pss_kb(self.pid)
                for child in process_tree(self.pid)[1:]:
                    with contextlib.suppress(OSError, ValueError, IndexError):
                        all_cpu += cpu_seconds(child)
                        all_rss += status_kb(child, "VmRSS")
                        all_pss += pss_kb(child)
                self.samples.append((time.time(), all_cpu, all_rss, cpu, rss, all_pss))
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def cpu_between(self, t0: float, t1: float, col: int = 1) -> float:
        """CPU share of one core (%) between two times (nearest samples); col 3: the main process alone."""
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        if len(inside) < 2:
            return float("nan")
        return 100.0 * (inside[-1][col] - inside[0][col]) / (inside[-1][0] - inside[0][0])

    def cpu_seconds_between(self, t0: float, t1: float) -> float:
        """CPU seconds used between two times (nearest samples)."""
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        return inside[-1][1] - inside[0][1] if len(inside) >= 2 else float("nan")


def counts_for(total: int) -> dict[str, int]:
    """A mixed fleet: the families in equal shares (one device goes to the in-process codec)."""
    n = total - 1
    return {f: n // 3 + (1 if i < n % 3 else 0) for i, f in enumerate(FAMILIES)}


def add_down_device(inv: Path, known: Path, password: str, latency: float) -> Any:
    """The device the run takes down: an emulated codec in this process, listed in the inventory."""
    from avctl.emulator.core import EmulatorThread
    from avctl.emulator.videoos import EmulatedVideoOS

    thread = EmulatorThread().start()
    dev = thread.add(EmulatedVideoOS(DOWN, password=password))
    dev.faults.latency = latency
    doc = yaml.safe_load(inv.read_text())
    doc["devices"][DOWN] = {"family": "videoos", "address": f"{dev.host}:{dev.port}", "site": "site-1",
                            "room": "room-down", "tags": ["emulated"]}
    write_yaml(inv, doc)
    KnownHosts(known).set(f"{dev.host}:{dev.port}", fingerprint(ssl.PEM_cert_to_DER_cert(dev.cert_pem.decode())),
                          replace=True)
    return thread, dev


def cli(home: Path, *args: str, stdin: str | None = None) -> str:
    env = {**os.environ, "AVCTL_HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "avctl.cli.main", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=300, check=False)
    if done.returncode:
        raise SystemExit(f"avctl {args[0]} {args[1]} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def lag_histogram(text: str) -> dict[float, float]:
    """Cumulative bucket counts of avctl_poll_lag_seconds over every family: {le: count}."""
    out: dict[float, float] = {}
    for m in re.finditer(r'^avctl_poll_lag_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} (\S+)$', text, re.M):
        le = float(m.group(1))
        out[le] = out.get(le, 0.0) + float(m.group(2))
    return out


def bucket_quantile(hist: dict[float, float], q: float) -> str:
    """The bucket bound at quantile q of a cumulative histogram ('<= 0.05 s')."""
    total = hist.get(float("inf"), 0.0)
    if total <= 0:
        return "n/a"
    for le in sorted(hist):
        if hist[le] >= q * total:
            return f"<= {le:g} s" if le != float("inf") else "> 60 s"
    return "n/a"


def server_phase(args: argparse.Namespace, home: Path, inv: Path, hook: Hook, token: str,
                 down: Any) -> dict[str, Any]:
    port = free_port()
    rules = home / "rules.yaml"
    rules.write_text(f"""channels:
  bench: {{type: webhook, url: env:BENCH_HOOK}}
rules:
  - name: bench-offline
    when: offline
    severity: critical
    scope: {{name: {DOWN}}}
    notify: [bench]
""")
    log = open(home / "server.log", "wb")  # noqa: SIM115 (open for the server's whole life)
    env = {**os.environ, "AVCTL_HOME": str(home), "BENCH_HOOK": hook.url}
    started = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "avctl.cli.main", "serve", "-i", str(inv), "--rules", str(rules),
                             "--interval", f"{args.interval}s", "--listen", f"127.0.0.1:{port}"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    sampler = Sampler(proc.pid)
    base = f"https://127.0.0.1:{port}"
    http = requests.Session()
    http.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would override the server's certificate
    http.headers["Authorization"] = f"Bearer {token}"
    try:
        while True:
            if proc.poll() is not None or time.time() - started > 600:
                raise SystemExit(f"the server did not start: {(home / 'server.log').read_text()[-2000:]}")
            with contextlib.suppress(requests.RequestException, OSError):
                if (home / "server" / "tls-cert.pem").exists():
                    http.verify = str(home / "server" / "tls-cert.pem")
                    if http.get(f"{base}/healthz", timeout=5).ok:
                        break
            time.sleep(0.2)
        t0 = time.time()
        print(f"  server up in {t0 - started:.1f} s (pid {proc.pid})", flush=True)
        end = t0 + args.minutes * 60
        first_sweep_end = t0 + args.interval * 1.2
        metrics_after_first: str | None = None
        #: (when it was sent, seconds) per kind: the first sweep (logins, handshakes) is told apart
        latencies: dict[str, list[tuple[float, float]]] = {"list": [], "one": []}
        errors = 0
        one = "videoos-00001" if args.devices > 3 else DOWN
        gap = (end - t0) / max(args.requests, 1)
        down_at: float | None = None
        # after the first sweep, with two intervals left for the alert (a short run: as soon as it is up)
        down_after = t0 + min(max(args.interval * 1.5, (end - t0) * 0.3), (end - t0) - 2 * args.interval - 10)
        next_req = t0 + gap / 2
        i = 0
        while time.time() < end:
            now = time.time()
            if metrics_after_first is None and now >= first_sweep_end:
                metrics_after_first = http.get(f"{base}/metrics", timeout=300).text
            if down_at is None and now >= down_after:
                state = None
                with contextlib.suppress(requests.RequestException):  # a saturated server: ask again
                    state = http.get(f"{base}/api/v1/devices/{DOWN}", timeout=30).json().get("state")
                if state == "online":  # seen online first, else the alert would time nothing
                    down.faults.down = True
                    down_at = time.time()
                    print(f"  {DOWN} taken down at +{down_at - t0:.0f} s", flush=True)
                else:
                    down_after = now + 1.0
            if now >= next_req:
                for kind, url in (("list", f"{base}/api/v1/devices?limit=50&offset={(i * 50) % max(args.devices, 1)}"),
                                  ("one", f"{base}/api/v1/devices/{one}")):
                    sent, r0 = time.time(), time.perf_counter()
                    try:
                        ok = http.get(url, timeout=30).ok
                    except requests.RequestException:
                        ok = False
                    latencies[kind].append((sent, time.perf_counter() - r0))
                    errors += 0 if ok else 1
                i += 1
                next_req += gap
            time.sleep(0.05)
        t_end = time.time()
        at_end = http.get(f"{base}/metrics", timeout=300).text
        # a late alert is still measured (up to three intervals after the device went down)
        while down_at is not None and ("opened", DOWN) not in hook.arrived:
            if time.time() > down_at + 3 * args.interval:
                break
            time.sleep(0.2)
        states: dict[str, int] = {}
        for st in ("online", "offline", "error", "unknown", "auth_failed"):
            states[st] = http.get(f"{base}/api/v1/devices?limit=1&state={st}", timeout=60).json()["total"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        sampler.stop()
        log.close()
    if args.samples:
        with open(args.samples, "w", encoding="utf-8") as out:
            out.write("seconds,cpu_s_all,rss_kb_all,cpu_s_api,rss_kb_api,pss_kb_all\n")
            for t, *rest in sampler.samples:
                shown = (f"{v:.2f}" if isinstance(v, float) else str(v) for v in rest)
                out.write(",".join([f"{t - started:.1f}", *shown]) + "\n")
    peak_kb = max((s[2] for s in sampler.samples), default=0)
    peak_main_kb = max((s[4] for s in sampler.samples), default=0)
    peak_pss_kb = max((s[5] for s in sampler.samples), default=0)
    alert_at = hook.arrived.get(("opened", DOWN))
    lag_all = lag_histogram(at_end)
    lag_first = lag_histogram(metrics_after_first or "")
    lag_steady = {le: lag_all.get(le, 0.0) - lag_first.get(le, 0.0) for le in lag_all}
    lag_sum = sum(float(m.group(1)) for m in re.finditer(r"^avctl_poll_lag_seconds_sum\{[^}]*\} (\S+)$", at_end, re.M))
    polls = lag_all.get(float("inf"), 0.0)
    steady_polls = lag_steady.get(float("inf"), 0.0)
    cpu_steady_s = sampler.cpu_seconds_between(first_sweep_end, t_end)

    def ms(kind: str, q: float, steady: bool) -> float:
        return 1000 * pct([d for sent, d in latencies[kind] if (sent >= first_sweep_end) == steady], q)

    return {
        "cpu_first_sweep_pct": sampler.cpu_between(t0, first_sweep_end),
        "cpu_sustained_pct": sampler.cpu_between(first_sweep_end, t_end),
        "cpu_sustained_main_pct": sampler.cpu_between(first_sweep_end, t_end, col=3),
        "cpu_whole_pct": sampler.cpu_between(t0, t_end),
        # the sampler's window starts at the first-sweep scrape, the polls' at that scrape too
        "cpu_ms_per_poll": 1000 * cpu_steady_s / steady_polls if steady_polls else float("nan"),
        "peak_rss_mb": peak_kb / PAGE,
        "peak_rss_main_mb": peak_main_kb / PAGE,
        "peak_pss_mb": peak_pss_kb / PAGE,
        **{f"api_{kind}_{phase}_p{q}_ms": ms(kind, q / 100, phase == "steady")
           for kind in ("list", "one") for phase in ("first", "steady") for q in (50, 99)},
        "api_requests": len(latencies["list"]) + len(latencies["one"]), "api_errors": errors,
        "polls": polls, "lag_mean_s": lag_sum / polls if polls else float("nan"),
        "lag_p50_first": bucket_quantile(lag_first, 0.5), "lag_p99_first": bucket_quantile(lag_first, 0.99),
        "lag_p50_steady": bucket_quantile(lag_steady, 0.5), "lag_p99_steady": bucket_quantile(lag_steady, 0.99),
        "alert_s": None if alert_at is None or down_at is None else alert_at - down_at,
        "down_at": down_at, "states": states, "duration_s": t_end - t0,
    }


def cli_phase(args: argparse.Namespace, home: Path, inv: Path) -> dict[str, Any]:
    env = {**os.environ, "AVCTL_HOME": str(home)}
    sweeps: list[tuple[float, float, float]] = []  # (wall s, cpu s, peak MB)
    t0 = time.time()
    end = t0 + args.minutes * 60
    due = t0
    while due < end:
        time.sleep(max(0.0, due - time.time()))
        w0 = time.time()
        proc = subprocess.Popen([sys.executable, "-m", "avctl.cli.main", "fleet", "status", "-i", str(inv), "--json",
                                 "-c", str(args.concurrency)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        _pid, _status, usage = os.wait4(proc.pid, 0)
        wall = time.time() - w0
        sweeps.append((wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / PAGE))
        print(f"  fleet status sweep {len(sweeps)}: {wall:.1f} s wall, {sweeps[-1][1]:.1f} s CPU, "
              f"{sweeps[-1][2]:.0f} MB", flush=True)
        due += args.interval
        while due < time.time():
            due += args.interval  # a sweep longer than the interval: the next starts at the next tick
    t_end = max(time.time(), end)
    cpu = sum(s[1] for s in sweeps)
    return {"sweeps": len(sweeps), "wall_mean_s": statistics.mean(s[0] for s in sweeps),
            "wall_max_s": max(s[0] for s in sweeps), "cpu_per_sweep_s": cpu / len(sweeps),
            "cpu_pct": 100.0 * cpu / (t_end - t0), "peak_rss_mb": max(s[2] for s in sweeps)}


@contextlib.contextmanager
def fleet_up(args: argparse.Namespace, tmp: Path) -> Iterator[tuple[Any, Path, Path]]:
    from avctl.emulator.fleet import EmulatedFleet

    home = tmp / "home"
    home.mkdir()
    t = time.time()
    fleet = EmulatedFleet(counts_for(args.devices), latency_ms=args.latency_ms)
    fleet.start(timeout=1800)
    try:
        known = home / "known_devices"
        inv = fleet.write_inventory(tmp / "inventory.yaml", known_hosts=known)
        print(f"  {len(fleet.devices)} emulated devices in {len(fleet.pids)} processes in {time.time() - t:.0f} s",
              flush=True)
        yield fleet, home, inv
    finally:
        fleet.stop()


def fmt(v: Any, unit: str = "", digits: int = 1) -> str:
    if v is None:
        return "none"
    if isinstance(v, float):
        return "n/a" if v != v else f"{v:.{digits}f}{unit}"
    return f"{v}{unit}"


def report(args: argparse.Namespace, s: dict[str, Any], c: dict[str, Any], load: tuple[str, str]) -> None:
    def met(ok: bool) -> str:
        return "met" if ok else "MISSED"

    rows = [
        ("CPU, % of one core (sustained)", fmt(s["cpu_sustained_pct"], " %"), fmt(c["cpu_pct"], " %"),
         fmt(c["cpu_pct"] / s["cpu_sustained_pct"], "x") if s["cpu_sustained_pct"] else "n/a"),
        ("  of which the API process (not polling)", fmt(s["cpu_sustained_main_pct"], " %"), "", ""),
        ("CPU, first sweep (logins)", fmt(s["cpu_first_sweep_pct"], " %"), "", ""),
        ("CPU s per sweep (interval)", fmt(s["cpu_sustained_pct"] * args.interval / 100, " s"),
         fmt(c["cpu_per_sweep_s"], " s"),
         fmt(c["cpu_per_sweep_s"] / (s["cpu_sustained_pct"] * args.interval / 100), "x")
         if s["cpu_sustained_pct"] else "n/a"),
        ("peak memory", fmt(s["peak_rss_mb"], " MB", 0), fmt(c["peak_rss_mb"], " MB", 0),
         fmt(c["peak_rss_mb"] / s["peak_rss_mb"], "x") if s["peak_rss_mb"] else "n/a"),
        ("  of which the API process (not polling)", fmt(s["peak_rss_main_mb"], " MB", 0), "", ""),
        ("peak memory, PSS (shared pages once)", fmt(s["peak_pss_mb"], " MB", 0), "", ""),
        ("sweep wall time (mean / max)", "continuous", f"{c['wall_mean_s']:.1f} / {c['wall_max_s']:.1f} s", ""),
        ("poll lag p50 / p99 (steady)", f"{s['lag_p50_steady']} / {s['lag_p99_steady']}", "", ""),
        ("poll lag p50 / p99 (first sweep)", f"{s['lag_p50_first']} / {s['lag_p99_first']}", "", ""),
        ("poll lag mean (all)", fmt(s["lag_mean_s"], " s", 3), "", ""),
        ("CPU ms per poll (sustained)", fmt(s["cpu_ms_per_poll"], " ms", 2), "", ""),
        *((f"API {what} p50 / p99 ({phase})",
           f"{fmt(s[f'api_{kind}_{phase}_p50_ms'], ' ms')} / {fmt(s[f'api_{kind}_{phase}_p99_ms'], ' ms')}", "", "")
          for kind, what in (("list", "device list"), ("one", "one device")) for phase in ("steady", "first")),
        ("device down -> alert webhook", fmt(s["alert_s"], " s"), "", ""),
    ]
    print()
    print(f"{args.devices} devices ({', '.join(f'{k} {v}' for k, v in counts_for(args.devices).items())} + 1 codec "
          f"taken down), {args.latency_ms:g} ms latency, interval {args.interval:g} s, {args.minutes:g} min per phase, "
          f"{os.cpu_count()} cores")
    print(f"load average at start {load[0]}, at end {load[1]}")
    print(f"polls: {s['polls']:.0f}; API requests {s['api_requests']} ({s['api_errors']} failed); "
          f"states at the end: {s['states']}")
    print()
    w = max(len(r[0]) for r in rows)
    print(f"{'':{w}}  {'avctl serve':>22}  {'fleet status /interval':>22}  {'ratio cli/serve':>15}")
    for name, a, b, r in rows:
        print(f"{name:{w}}  {a:>22}  {b:>22}  {r:>15}")
    print()
    p99 = max(s["api_list_steady_p99_ms"], s["api_one_steady_p99_ms"])
    print("targets (on 2 cores):")
    print(f"  CPU under {TARGET_CPU_PCT:g} % of one core sustained: {fmt(s['cpu_sustained_pct'], ' %')} "
          f"{met(s['cpu_sustained_pct'] < TARGET_CPU_PCT)}")
    mem = s["peak_rss_mb"]
    print(f"  memory under {TARGET_MEM_MB:g} MB: {fmt(mem, ' MB', 0)} {met(mem < TARGET_MEM_MB)} "
          f"(PSS, the shared pages counted once: {fmt(s['peak_pss_mb'], ' MB', 0)})")
    print(f"  API p99 under {TARGET_P99_MS:g} ms (after the first sweep): {fmt(p99, ' ms')} {met(p99 < TARGET_P99_MS)}")
    p99_first = max(s["api_list_first_p99_ms"], s["api_one_first_p99_ms"])
    print(f"    (during the first sweep, logins to every device: {fmt(p99_first, ' ms')})")
    alert = s["alert_s"]
    print(f"  alert within two poll intervals ({2 * args.interval:g} s): {fmt(alert, ' s')} "
          f"{met(alert is not None and alert <= 2 * args.interval)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000, help="devices in all (mixed families)")
    parser.add_argument("--minutes", type=float, default=5.0, help="duration of each phase")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="emulated latency per answer")
    parser.add_argument("--interval", type=float, default=60.0, help="poll interval, seconds")
    parser.add_argument("--requests", type=int, default=200, help="API requests of each kind, spread over the run")
    parser.add_argument("--concurrency", type=int, default=200, help="fleet status -c (the server's default)")
    parser.add_argument("--skip-cli", action="store_true", help="the server phase only")
    parser.add_argument("--samples", type=Path, help="write the server's samples (time from its start, CPU, RSS, PSS) "
                        "to this CSV file")
    args = parser.parse_args()
    load0 = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="avctl-bench-") as tmp_s, fleet_up(args, Path(tmp_s)) as (fleet, home, inv):
        down_thread, down = add_down_device(inv, home / "known_devices", fleet.password, args.latency_ms / 1000)
        hook = Hook()
        try:
            cli(home, "users", "add", "bench", "--role", "viewer", "--password-stdin",
                stdin="bench-password-not-secret\n")
            token = cli(home, "tokens", "create", "bench", "--user", "bench").splitlines()[-1]
            print("phase 1: avctl serve", flush=True)
            s = server_phase(args, home, inv, hook, token, down)
            down.faults.down = False
            if args.skip_cli:
                c = {"sweeps": 0, "wall_mean_s": float("nan"), "wall_max_s": float("nan"),
                     "cpu_per_sweep_s": float("nan"), "cpu_pct": float("nan"), "peak_rss_mb": float("nan")}
            else:
                print("phase 2: avctl fleet status every interval", flush=True)
                c = cli_phase(args, home, inv)
        finally:
            hook.close()
            down_thread.stop()
        load1 = " ".join(f"{x:.2f}" for x in os.getloadavg())
        report(args, s, c, (load0, load1))


if __name__ == "__main__":
    main()
