#!/usr/bin/env python3
"""A status sweep and a volume change through Temporal, side by side with the local engine (issue 17).

One run, one emulated fleet (``EmulatedFleet``: mixed families in equal shares, spread over
``--sites`` sites, ``--latency`` ms per answer, in emulator processes of its own), two phases:

1. local: ``avctl fleet status -i INV --json -q -c C`` and ``avctl fleet volume volume=30 ... --yes``
   as processes (``--engine local``), nothing else running;
2. temporal: a Temporal dev server (``.venv/bin/temporal server start-dev``, 127.0.0.1, free ports,
   its own SQLite file in a temp dir) and one ``avctl worker --site NAME`` process per site, each
   with its own AVCTL_HOME holding a copy of the fleet's pins (``known_devices``: no pin is
   written during the run); then the same two commands with ``--engine temporal --temporal ADDR
   --batch-size B``. The CLI runs the job workflows and records the outcomes; the workers run the
   devices.

Measured per command and engine: wall time; CPU seconds (user+sys) of the CLI (wait4 rusage), of the
site workers and of the Temporal server (/proc/PID/stat before and after), and of the emulators
(context: the load the devices put on the same cores); peak RSS of the CLI (ru_maxrss), of the
workers (largest sum of their RSS, sampled every 0.2 s) and of the server; outcome counts. The
engine's overhead per device is (CPU of the temporal CLI + workers - CPU of the local CLI) / devices,
in ms, and the same with the Temporal server's CPU. The idle CPU of the server and the workers (5 s
before the temporal phase) is printed too: it is inside the temporal figures.

Only videoos has a ``volume`` verb: the other families' devices end ``skipped`` on both engines.
``--concurrency`` bounds each batch's runner: with the Temporal engine, up to ``parallel batches x
batch size`` devices of each site are in flight at once (4 x 25), so ``-c 100`` is not the same
concurrency on both engines; compare CPU per device rather than wall time.

``--blob-limit-mb`` and ``--no-deadlock-detector`` are for measuring an engine that breaks Temporal's
2 MB payload limit or the SDK's 2 s workflow-task deadlock check (the first version did, past
~7,000 devices); today's packs devices into compressed batches and needs neither.

    PYTHONPATH=src .venv/bin/python scripts/bench_temporal.py --devices 600 --sites 3      # quick check
    PYTHONPATH=src .venv/bin/python scripts/bench_temporal.py --devices 10000 --sites 10   # the issue's
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")
MB = 1024.0  # kB per MB
COMMANDS = {"status": ["fleet", "status"], "volume": ["fleet", "volume", "volume=30", "--yes"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of the processes (their threads included); a process gone counts 0."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def rss_kb(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


class Procs:
    """Every process this script starts (each in a session of its own): stopped on exit, whatever happens."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.last: list[subprocess.Popen[bytes]] = []  # the Temporal server: after its workers and CLI

    def start(self, cmd: list[str], *, env: dict[str, str], log: Path, cwd: Path | None = None,
              stdout: Path | None = None, last: bool = False) -> subprocess.Popen[bytes]:
        with open(log, "ab") as err, open(stdout or log, "ab") as out:
            proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.procs.append(proc)
        if last:
            self.last.append(proc)
        return proc

    def stop_all(self) -> None:
        self.stop([p for p in self.procs if p not in self.last])
        self.stop(list(self.procs))

    def stop(self, which: Sequence[subprocess.Popen[bytes]], grace: float = 20.0) -> None:
        for p in which:
            if p.poll() is None:
                with contextlib.suppress(OSError):
                    p.terminate()
        deadline = time.monotonic() + grace
        for p in which:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    os.killpg(p.pid, signal.SIGKILL)  # the session this script gave it
                p.wait(10)
            if p in self.procs:
                self.procs.remove(p)


class RssPeaks:
    """The largest sum of RSS per group of processes, sampled every `every` seconds in a thread."""

    def __init__(self, groups: dict[str, list[int]], every: float = 0.2) -> None:
        self.groups, self.every = groups, every
        self.peak_kb = dict.fromkeys(groups, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pids in self.groups.items():
                self.peak_kb[name] = max(self.peak_kb[name], rss_kb(pids))
            self._stop.wait(self.every)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {name: kb / MB for name, kb in self.peak_kb.items()}


def run_cli(procs: Procs, cmd: list[str], env: dict[str, str], tmp: Path, tag: str, groups: dict[str, list[int]],
            timeout: float) -> dict[str, Any]:
    """One avctl command as a process: wall, its rusage, the other groups' CPU and peak RSS, its outcomes."""
    out, log = tmp / f"{tag}.json", tmp / f"{tag}.log"
    before = {name: cpu_seconds(pids) for name, pids in groups.items()}
    peaks = RssPeaks({k: v for k, v in groups.items() if k != "emulators"})
    t0 = time.perf_counter()
    proc = procs.start(cmd, env=env, log=log, stdout=out, cwd=tmp)
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - t0 > timeout:
            procs.stop([proc])
            raise SystemExit(f"{tag}: no end after {timeout:g} s; its log: {log}")
        if int(time.perf_counter() - t0) % 5 == 0 and "_DeadlockError" in log.read_text(errors="replace"):
            procs.stop([proc])
            raise SystemExit(f"{tag}: the job's workflow fails with the SDK's deadlock error (decoding its input took "
                             "over 2 s) and would be retried for ever; --no-deadlock-detector measures anyway")
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    procs.procs.remove(proc)
    peak = peaks.stop()
    res: dict[str, Any] = {"wall_s": wall, "exit": proc.returncode, "cli_cpu_s": usage.ru_utime + usage.ru_stime,
                           "cli_rss_mb": usage.ru_maxrss / MB,
                           **{f"{k}_cpu_s": cpu_seconds(p) - before[k] for k, p in groups.items()},
                           **{f"{k}_rss_mb": v for k, v in peak.items()}}
    try:  # the report is the JSON document from its first "{" line: lines before it are noise on stdout
        text = out.read_text(errors="replace")
        at = 0 if text.startswith("{") else text.index("\n{\n") + 1
        doc = json.loads(text[at:])
        res["stdout_noise"] = [re.sub(r"\x1b\[[0-9;]*m", "", line)[:160] for line in text[:at].splitlines()]
    except (OSError, ValueError):
        text = log.read_text(errors="replace")
        hint = "\n(a larger payload limit: --blob-limit-mb 8)" if "Blob data size exceeds limit" in text else ""
        head = out.read_text(errors="replace")[:300] if out.exists() else "(none)"
        raise SystemExit(f"{tag}: exit {proc.returncode}, no JSON report (stdout: {head!r}); its log:\n"
                         f"{text[-3000:]}{hint}") from None
    res["summary"] = {k: v for k, v in doc.get("summary", {}).items() if v}
    res["not_ok"] = Counter(f"{d.get('status')} {d.get('family')} {d.get('reason') or ''}".strip()
                            for d in doc.get("devices", []) if d.get("status") != "ok").most_common(8)
    return res


def start_temporal(procs: Procs, root: Path, blob_limit_mb: float | None,
                   tries: int = 3) -> tuple[subprocess.Popen[bytes], str]:
    """The dev server on free ports; started again on others if it exits at once (on a shared machine a
    free port can be taken before the server binds it)."""
    binary = Path(sys.executable).parent / "temporal"
    if not binary.exists():
        binary = Path(shutil.which("temporal") or binary)
    log = root / "temporal.log"
    for attempt in range(1, tries + 1):
        port = free_port()
        address = f"127.0.0.1:{port}"
        proc = procs.start([str(binary), "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port",
                            str(port), "--http-port", str(free_port()), "--metrics-port", str(free_port()),
                            "--db-filename", str(root / f"temporal-{attempt}.db"),
                            *(f"--dynamic-config-value=limit.blobSize.{k}={int(blob_limit_mb * 2**20)}"
                              for k in ("error", "warn") if blob_limit_mb)],
                           env=dict(os.environ), log=log, last=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            health = subprocess.run([str(binary), "operator", "cluster", "health", "--address", address],
                                    capture_output=True, timeout=30, check=False)
            if health.returncode == 0:
                return proc, address
            time.sleep(0.2)
        exited = proc.poll() is not None  # a port taken meanwhile (in use; a crash binding): others
        procs.stop([proc])
        if not exited:
            break
    raise SystemExit(f"the Temporal dev server did not start: {log.read_text(errors='replace')[-2000:]}")


def start_workers(procs: Procs, root: Path, sites: list[str], per_site: int, address: str, known: Path,
                  base_dir: Path) -> list[subprocess.Popen[bytes]]:
    started: list[tuple[subprocess.Popen[bytes], Path]] = []
    for site in sites:
        for n in range(per_site):
            home = root / f"worker-{site}-{n}"
            home.mkdir(mode=0o700)
            shutil.copy2(known, home / "known_devices")  # the fleet's pins: no first-use pinning measured
            log = home / "worker.log"
            proc = procs.start([sys.executable, "-m", "avctl.cli.main", "worker", "--site", site, "--temporal",
                                address, "--base-dir", str(base_dir)],
                               env={**os.environ, "AVCTL_HOME": str(home)}, log=log)
            started.append((proc, log))
    deadline = time.monotonic() + 120
    for proc, log in started:
        while "avctl worker: site" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"a site worker did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
    return [p for p, _log in started]


@contextlib.contextmanager
def sigterm_exits() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C does, so every `finally` below stops what it started."""
    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def report(args: argparse.Namespace, res: dict[str, dict[str, Any]], info: dict[str, Any]) -> dict[str, Any]:
    n = args.devices
    for r in res.values():
        r["cpu_total_s"] = r["cli_cpu_s"] + r.get("workers_cpu_s", 0.0)
        r["cpu_total_incl_server_s"] = r["cpu_total_s"] + r.get("server_cpu_s", 0.0)
        r["rss_total_mb"] = r["cli_rss_mb"] + r.get("workers_rss_mb", 0.0)
        r["rss_total_incl_server_mb"] = r["rss_total_mb"] + r.get("server_rss_mb", 0.0)
    figures: dict[str, Any] = {}
    for cmd in COMMANDS:
        loc, tem = res[f"local.{cmd}"], res[f"temporal.{cmd}"]
        figures[cmd] = {"overhead_ms_per_device": 1000 * (tem["cpu_total_s"] - loc["cli_cpu_s"]) / n,
                        "overhead_ms_per_device_incl_server": 1000 * (tem["cpu_total_incl_server_s"]
                                                                      - loc["cli_cpu_s"]) / n,
                        "ratio_wall": tem["wall_s"] / loc["wall_s"],
                        "ratio_cpu": tem["cpu_total_s"] / loc["cli_cpu_s"],
                        "ratio_cpu_incl_server": tem["cpu_total_incl_server_s"] / loc["cli_cpu_s"],
                        "ratio_rss": tem["rss_total_mb"] / loc["cli_rss_mb"],
                        "ratio_rss_incl_server": tem["rss_total_incl_server_mb"] / loc["cli_rss_mb"]}
    rows: list[tuple[str, str, str]] = [
        ("wall time", "wall_s", "{:.1f} s"), ("CPU, the CLI process", "cli_cpu_s", "{:.1f} s"),
        ("CPU, site workers (sum)", "workers_cpu_s", "{:.1f} s"), ("CPU, Temporal server", "server_cpu_s", "{:.1f} s"),
        ("CPU, emulators (context)", "emulators_cpu_s", "{:.1f} s"), ("peak RSS, the CLI", "cli_rss_mb", "{:.0f} MB"),
        ("peak RSS, site workers (sum)", "workers_rss_mb", "{:.0f} MB"),
        ("peak RSS, Temporal server", "server_rss_mb", "{:.0f} MB"),
        ("CPU, CLI + workers", "cpu_total_s", "{:.1f} s"), ("CPU, CLI + workers + server", "cpu_total_incl_server_s",
                                                            "{:.1f} s"),
        ("peak RSS, CLI + workers", "rss_total_mb", "{:.0f} MB"),
        ("peak RSS, CLI + workers + server", "rss_total_incl_server_mb", "{:.0f} MB")]
    print()
    print(f"{n} devices ({info['families']}) in {args.sites} sites, {args.latency:g} ms latency; "
          f"concurrency -c {args.concurrency} on both engines; temporal: batch size {args.batch_size}, "
          f"{info['workers']} site worker process(es), 4 batches at once per site (workflow) and per worker; "
          f"payload limit {f'{args.blob_limit_mb:g} MB (raised)' if args.blob_limit_mb else '2 MB (default)'}"
          + ("; SDK deadlock detector off (TEMPORAL_DEBUG=1 for the CLI)" if args.no_deadlock_detector else ""))
    print(f"{os.cpu_count()} cores; load average at start {info['load_start']}, before the temporal phase "
          f"{info['load_mid']}, at end {info['load_end']}; emulators: {info['emulators']} process(es)")
    print(f"idle before the temporal phase ({info['idle_s']:.0f} s): Temporal server "
          f"{100 * info['idle_server_cpu_s'] / info['idle_s']:.1f} % of a core, workers "
          f"{100 * info['idle_workers_cpu_s'] / info['idle_s']:.1f} % (in the temporal figures below)")
    print()
    w = 32
    head = "".join(f"{c + ' ' + e:>16}" for c in COMMANDS for e in ("local", "temporal"))
    print(f"{'':{w}}{head}")
    for label, key, form in rows:
        cells = ""
        for cmd in COMMANDS:
            for eng in ("local", "temporal"):
                v = res[f"{eng}.{cmd}"].get(key)
                cells += f"{(form.format(v) if v is not None else '-'):>16}"
        print(f"{label:{w}}{cells}")
    counts = {key: " ".join(f"{st}={v}" for st, v in r["summary"].items() if st != "total") for key, r in res.items()}
    print("outcomes: " + "; ".join(f"{key.replace('.', ' ')} {c}" for key, c in counts.items()))
    for key, r in res.items():
        if r["not_ok"] or r["exit"]:
            print(f"  {key}: exit {r['exit']}; not ok: " + "; ".join(f"{k}: {v}" for k, v in r["not_ok"]))
        if r["stdout_noise"]:
            print(f"  {key}: {len(r['stdout_noise'])} line(s) on stdout before the JSON report, e.g. "
                  f"{r['stdout_noise'][0][28:]!r}")
    print()
    print("temporal / local:")
    for cmd, f in figures.items():
        print(f"  {cmd:<7} wall {f['ratio_wall']:.2f}x; CPU {f['ratio_cpu']:.2f}x (CLI + workers), "
              f"{f['ratio_cpu_incl_server']:.2f}x with the server; peak memory {f['ratio_rss']:.2f}x (CLI + workers), "
              f"{f['ratio_rss_incl_server']:.2f}x with the server")
        print(f"          overhead per device: {f['overhead_ms_per_device']:.2f} ms CPU (CLI + workers - local CLI), "
              f"{f['overhead_ms_per_device_incl_server']:.2f} ms with the Temporal server")
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=10_000, help="devices in all, the families in equal shares")
    ap.add_argument("--sites", type=int, default=10, help="sites (one task queue and worker each)")
    ap.add_argument("--latency", type=float, default=50.0, help="emulated latency per answer, ms")
    ap.add_argument("--workers-per-site", type=int, default=1, help="avctl worker processes per site")
    ap.add_argument("--emulators", type=int, default=0, help="emulator processes [default: auto]")
    ap.add_argument("--families", default="videoos,polyuc,solstice")
    ap.add_argument("--concurrency", type=int, default=100, help="-c of both engines (the CLI's default)")
    ap.add_argument("--batch-size", type=int, default=25, help="--batch-size of the temporal engine (its default)")
    ap.add_argument("--blob-limit-mb", type=float, help="raise the dev server's payload limit (limit.blobSize.error, "
                    "Temporal's default 2 MB: a job's workflow input carries every device, ~280 bytes each)")
    ap.add_argument("--no-deadlock-detector", action="store_true",
                    help="TEMPORAL_DEBUG=1 for the temporal CLI, which runs the workflows: the SDK's 2 s deadlock "
                    "detector fails a job whose workflow input takes longer to decode (~0.2 ms per device)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds one command may take")
    ap.add_argument("--keep", action="store_true", help="keep the run's directory (logs, reports, worker homes)")
    ap.add_argument("--json", dest="json_file", help="also write the figures to this file")
    args = ap.parse_args()

    import avctl
    from avctl.emulator.fleet import EmulatedFleet

    families = [f.strip() for f in args.families.split(",") if f.strip()]
    counts = {f: args.devices // len(families) + (1 if i < args.devices % len(families) else 0)
              for i, f in enumerate(families)}
    info: dict[str, Any] = {"families": ", ".join(f"{f} {c}" for f, c in counts.items()),
                            "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    print(f"avctl from {Path(avctl.__file__).parent}", flush=True)
    procs = Procs()
    res: dict[str, dict[str, Any]] = {}
    t_start = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="avctl-bench-temporal-"))
    if args.keep:
        print(f"keeping the run's files (logs, reports, homes) in {tmp}", flush=True)
    with sigterm_exits():
        fleet = EmulatedFleet(counts, latency_ms=args.latency, workers=args.emulators, sites=args.sites)
        try:
            t0 = time.monotonic()
            fleet.start(timeout=1800)
            known = tmp / "known_devices"
            inv = fleet.write_inventory(tmp / "fleet.yaml", known_hosts=known)
            sites = sorted({d.site for d in fleet.devices})
            info["emulators"] = len(fleet.pids)
            print(f"{len(fleet.devices)} emulated devices in {len(fleet.pids)} process(es), sites {', '.join(sites)}, "
                  f"up in {time.monotonic() - t0:.0f} s", flush=True)
            groups: dict[str, list[int]] = {"emulators": fleet.pids}
            for engine in ("local", "temporal"):
                home = tmp / f"cli-{engine}"
                home.mkdir(mode=0o700)
                shutil.copy2(known, home / "known_devices")
                env = {**os.environ, "AVCTL_HOME": str(home)}
                extra = ["-c", str(args.concurrency), "--engine", engine]
                if engine == "temporal":
                    info["load_mid"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
                    server, address = start_temporal(procs, tmp, args.blob_limit_mb)
                    workers = start_workers(procs, tmp, sites, args.workers_per_site, address, known, tmp)
                    info["workers"] = len(workers)
                    groups = {**groups, "server": [server.pid], "workers": [w.pid for w in workers]}
                    print(f"Temporal dev server at {address}, {len(workers)} site worker(s) up", flush=True)
                    c_srv, c_wrk = cpu_seconds(groups["server"]), cpu_seconds(groups["workers"])
                    info["idle_s"] = 5.0
                    time.sleep(info["idle_s"])
                    info["idle_server_cpu_s"] = cpu_seconds(groups["server"]) - c_srv
                    info["idle_workers_cpu_s"] = cpu_seconds(groups["workers"]) - c_wrk
                    extra += ["--temporal", address, "--batch-size", str(args.batch_size)]
                    env = {**env, **({"TEMPORAL_DEBUG": "1"} if args.no_deadlock_detector else {})}
                for cmd, words in COMMANDS.items():
                    print(f"{engine}: avctl {' '.join(words)} ...", flush=True)
                    argv = [sys.executable, "-m", "avctl.cli.main", *words, "-i", str(inv), "--json", "-q", *extra]
                    r = run_cli(procs, argv, env, tmp, f"{engine}-{cmd}", groups, args.timeout)
                    res[f"{engine}.{cmd}"] = r
                    print(f"  {r['wall_s']:.1f} s wall, CLI {r['cli_cpu_s']:.1f} s CPU, {r['summary']}", flush=True)
                    for pid in (p for k in ("server", "workers") for p in groups.get(k, [])):
                        if not Path(f"/proc/{pid}").exists():
                            raise SystemExit(f"a {'worker' if pid != groups['server'][0] else 'server'} process "
                                             f"(pid {pid}) died during {engine} {cmd}; logs in {tmp}")
            info["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        finally:
            procs.stop_all()  # the CLI if interrupted and the workers, then the server
            fleet.stop()
            if not args.keep:
                shutil.rmtree(tmp, ignore_errors=True)
    figures = report(args, res, info)
    print(f"\nthe whole run took {time.monotonic() - t_start:.0f} s")
    if args.json_file:
        doc = {"args": vars(args), "cores": os.cpu_count(), "info": info, "results": res, "figures": figures}
        Path(args.json_file).write_text(json.dumps(doc, indent=2, default=str) + "\n")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted: every process this run started is stopped")
