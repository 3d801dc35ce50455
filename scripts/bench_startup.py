#!/usr/bin/env python3
"""Benchmark: how long `avctl` takes to start, side by side with curl doing the same request.

    .venv/bin/python scripts/bench_startup.py            # median of 20 runs each
    .venv/bin/python scripts/bench_startup.py --runs 50 --json

Measured, each in a fresh process, interleaved round by round so machine load hits all alike:

- ``python -c pass``: the interpreter's own start (the floor for any Python command line);
- ``avctl --help``;
- ``avctl actions videoos`` (the spec is read: from the on-disk cache when there is one);
- ``avctl call -f videoos 127.0.0.1:PORT system_get`` against an emulated VideoOS system on loopback
  (certificate pinned beforehand with ``avctl trust``, password from an environment variable);
- ``curl`` doing the same exchange in one process on one connection: ``POST /rest/session``
  (JSON login, cookie kept), ``GET /rest/system`` with the cookie, ``DELETE /rest/session``
  (avctl logs out too), trusting only the emulator's certificate (``--cacert``).

The emulated system runs firmware 4.5.0, which needs no XSRF header: curl cannot echo a cookie as a
header within one process, and on 4.6.2+ both would send the same three requests anyway.

State (pins) and the spec cache live in a temporary directory (AVCTL_HOME, XDG_CACHE_HOME), warmed
by one unmeasured run of each command, which also writes bytecode as an installed package has it
(PYTHONDONTWRITEBYTECODE is dropped for the runs); nothing in your home is touched.
Targets (issue 9, 2-core machine): ``avctl --help`` under 150 ms, one call within 300 ms of curl.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

PASSWORD_ENV = "BENCH_AVCTL_PASSWORD"


def _avctl() -> list[str]:
    """The avctl of the interpreter running this script (its venv), as a user would call it."""
    exe = Path(sys.executable).parent / "avctl"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "avctl.cli.main"]


def _timed(argv: Sequence[str], env: dict[str, str]) -> float:
    """Wall seconds of one run; a failing run stops the benchmark (a fast error proves nothing)."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"bench: {' '.join(argv)} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    return elapsed


def _curl_argv(address: str, password: str, cacert: Path) -> list[str]:
    base = f"https://{address}"
    common = ["-sS", "--fail", "--cacert", str(cacert), "-b", "", "-o", "/dev/null"]
    login = json.dumps({"user": "admin", "password": password})
    return ["curl", *common, "-X", "POST", "-H", "Content-Type: application/json", "-d", login,
            f"{base}/rest/session",
            "--next", *common, f"{base}/rest/system",
            "--next", *common, "-X", "DELETE", f"{base}/rest/session"]


def _commands(address: str, password: str, cacert: Path) -> dict[str, list[str]]:
    avctl = _avctl()
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "avctl --help": [*avctl, "--help"],
        "avctl actions videoos": [*avctl, "actions", "videoos"],
        "avctl call system_get": [*avctl, "call", "-f", "videoos", address, "system_get",
                                  "--password-env", PASSWORD_ENV],
        "curl (same exchange)": _curl_argv(address, password, cacert),
    }


def _report(times: dict[str, list[float]], as_json: bool) -> None:
    med = {name: statistics.median(t) * 1000 for name, t in times.items()}
    curl_ms, call_ms = med["curl (same exchange)"], med["avctl call system_get"]
    if as_json:
        print(json.dumps({"runs": len(next(iter(times.values()))), "median_ms": med,
                          "min_ms": {n: min(t) * 1000 for n, t in times.items()},
                          "call_minus_curl_ms": call_ms - curl_ms, "call_over_curl": call_ms / curl_ms},
                         indent=2))
        return
    runs = len(next(iter(times.values())))
    print(f"{'command':<24} {'median ms':>10} {'min ms':>8} {'max ms':>8}   (runs: {runs})")
    for name, t in times.items():
        print(f"{name:<24} {med[name]:>10.0f} {min(t) * 1000:>8.0f} {max(t) * 1000:>8.0f}")
    print(f"avctl --help: {med['avctl --help']:.0f} ms (target < 150 ms); "
          f"{med['avctl --help'] - med['python -c pass']:.0f} ms above the bare interpreter")
    print(f"avctl call vs curl: +{call_ms - curl_ms:.0f} ms, {call_ms / curl_ms:.1f}x (target: within 300 ms)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20, help="Runs of each command (median reported).")
    ap.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    args = ap.parse_args()
    if shutil.which("curl") is None:
        sys.exit("bench: curl is not installed")

    from avctl.emulator.core import EmulatorThread

    with tempfile.TemporaryDirectory(prefix="avctl-bench-") as tmp, EmulatorThread() as emulators:
        password = "bench-" + os.urandom(6).hex()
        [dev] = emulators.spawn("videoos", password=password, firmware="4.5.0")
        address = f"127.0.0.1:{dev.port}"
        cacert = Path(tmp) / "emulator.pem"
        cacert.write_bytes(dev.cert_pem)
        env = {**os.environ, "AVCTL_HOME": f"{tmp}/home", "XDG_CACHE_HOME": f"{tmp}/cache",
               PASSWORD_ENV: password}
        env.pop("AVCTL_PASSWORD", None)
        # an installed avctl has bytecode (pip compiles it); without it every run compiles source
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        _timed([*_avctl(), "trust", address], env)
        commands = _commands(address, password, cacert)
        for argv in commands.values():  # warm-up: caches filled, files in the page cache
            _timed(argv, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                times[name].append(_timed(argv, env))
    _report(times, args.json)


if __name__ == "__main__":
    main()
