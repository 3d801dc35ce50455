#!/usr/bin/env python3
"""Benchmark: a configuration drift report over an emulated fleet vs. reading the same keys with
``avctl fleet run`` of each family's config-read action.

    .venv/bin/python scripts/bench_config.py --devices 1000 --latency 50

The emulated devices (mixed families) run in worker processes (``EmulatedFleet``); every client is
the real ``avctl`` command in its own process, so its wall time, CPU seconds and peak memory
(``wait4``'s rusage) belong to it alone. Measured side by side in one run:

- ``config drift``: one job over the whole fleet: desired state from the inventory's ``config:``
  block, checked against each family's catalogue, the desired keys read (VideoOS and Poly UC by
  name, Solstice its whole tree), compared, the report with counts per key.
- ``fleet run``: the same reads as plain fleet jobs, one per family (``config_get`` takes names on
  VideoOS and Poly UC and none on Solstice, so one command cannot serve all three); their times
  are summed.

Each drift run finds a known number of drifted keys: the script changes nothing on the devices,
so the drift found is what the desired state sets away from the emulators' defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: desired keys per family (the same keys the baseline reads); values chosen so that some differ
DESIRED: dict[str, dict[str, Any]] = {
    "videoos": {"system.network.wireless.bt.enabled": False, "system.network.wireless.wifi.enabled": True,
                "cast.airplay.enabled": True, "comm.nics.h323nic.h323name": "${name}"},
    "polyuc": {"up.backlight.idleIntensity": 2, "tone.dtmf.level": -15, "diags.pcap.enabled": False,
               "reg.1.label": "${room}"},
    "solstice": {"sharing.airplay.enabled": False, "sharing.miracast.wifi_direct_enabled": False,
                 "display.splash.screen_key.enabled": True, "display.name": "${room}"},
}


def run(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run one avctl command; its wall time, CPU seconds and peak RSS (of that process alone)."""
    # output to files, not pipes: a report larger than a pipe's buffer would block the client
    with tempfile.TemporaryFile("w+") as out_file, tempfile.TemporaryFile("w+") as err_file:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out_file, stderr=err_file, text=True)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read(), err_file.read()
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"{' '.join(cmd[3:])} failed ({code}):\n{err[-2000:]}")
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "maxrss_mb": ru.ru_maxrss / 1024, "out": out,
            "code": code}


def avctl(*args: str) -> list[str]:
    return [sys.executable, "-c", "from avctl.cli.main import main; main()", *args]


def fleet_arguments(doc: str | None) -> argparse.Namespace:
    """The options every emulated-fleet benchmark takes: size, latency, concurrency, workers."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--latency", type=float, default=50.0, help="emulated latency per request, ms")
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--workers", type=int, default=0, help="emulator processes [default: auto]")
    return ap.parse_args()


def main() -> None:
    args = fleet_arguments(__doc__)

    import yaml

    from avctl.emulator.fleet import EmulatedFleet
    from avctl.safeyaml import write_yaml

    families = list(DESIRED)
    counts = {f: args.devices // 3 + (1 if i < args.devices % 3 else 0) for i, f in enumerate(families)}
    home = Path(tempfile.mkdtemp(prefix="avctl-bench-config-"))
    env = {**os.environ, "AVCTL_HOME": str(home)}
    os.environ["AVCTL_HOME"] = str(home)
    print(f"starting {args.devices} emulated devices ({counts}), {args.latency:g} ms latency ...", flush=True)
    with EmulatedFleet(counts, latency_ms=args.latency, workers=args.workers) as fleet:
        inv = fleet.write_inventory(home / "fleet.yaml")
        doc = yaml.safe_load(inv.read_text())
        doc["defaults"]["config"] = DESIRED
        write_yaml(inv, doc)
        common = ["-i", str(inv), "-c", str(args.concurrency), "--quiet"]
        print(f"  {len(fleet.devices)} devices in {len(fleet.pids)} emulator process(es)", flush=True)
        print("  config drift ...", flush=True)
        drift = run(avctl("config", "drift", *common[:-1], "--json"), env)
        report = json.loads(drift["out"][drift["out"].index("{"):])
        runs = []
        for fam in families:
            names = [f"names={json.dumps(list(DESIRED[fam]))}"] if fam != "solstice" else []
            print(f"  fleet run config_get --family {fam} ...", flush=True)
            runs.append(run(avctl("fleet", "run", "config_get", *names, "--family", fam, *common), env))
    fleet_run = {"wall": sum(r["wall"] for r in runs), "cpu": sum(r["cpu"] for r in runs),
                 "maxrss_mb": max(r["maxrss_mb"] for r in runs)}
    print()
    print(f"configuration read of {args.devices} devices ({', '.join(f'{k} {v}' for k, v in counts.items())}), "
          f"{args.latency:g} ms latency, concurrency {args.concurrency}, {os.cpu_count()} CPU(s)")
    print(f"{'client':<34}{'wall s':>10}{'CPU s':>10}{'peak MB':>10}")
    print(f"{'avctl config drift (one job)':<34}{drift['wall']:>10.2f}{drift['cpu']:>10.2f}{drift['maxrss_mb']:>10.1f}")
    for fam, r in zip(families, runs, strict=True):
        print(f"{'  fleet run config_get, ' + fam:<34}{r['wall']:>10.2f}{r['cpu']:>10.2f}{r['maxrss_mb']:>10.1f}")
    print(f"{'avctl fleet run (3 jobs, summed)':<34}{fleet_run['wall']:>10.2f}{fleet_run['cpu']:>10.2f}"
          f"{fleet_run['maxrss_mb']:>10.1f}")
    print()
    print(f"drift vs fleet run: wall {drift['wall'] / fleet_run['wall']:.2f}x, "
          f"CPU {drift['cpu'] / fleet_run['cpu']:.2f}x, peak memory {drift['maxrss_mb'] / fleet_run['maxrss_mb']:.2f}x")
    print(f"drift found: {report['devices_drifted']} of {report['devices_checked']} devices checked "
          f"({report['counts']}); keys: {report['keys']}")


if __name__ == "__main__":
    main()
