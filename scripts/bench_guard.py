#!/usr/bin/env python3
"""Benchmark: what the in-call guard and rollout rings cost, side by side in one run.

    .venv/bin/python scripts/bench_guard.py --devices 1000 --latency 50

The emulated devices (mixed families) run in worker processes; every client is the real ``avctl``
command in its own process (wall time, CPU seconds and peak memory of that process alone). The
same verb (``mute``: VideoOS codecs and Poly UC phones; pods have no microphone to mute and are
skipped) runs three times:

- plain: ``avctl fleet mute``;
- ``--if-idle``: each device is first asked whether it is in a call (one more query);
- ``--rings canary=site:site-1,all --gate 95%``: site-1 first, the rest after its gate.

Requests are the devices' own counts (``requests`` in each outcome: logins, reads, the mute; the
logout after the outcome is not counted), summed from the JSON report. A first, unmeasured
``fleet status`` pins every device's certificate, so no measured run pays for first contact.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_config import avctl, fleet_arguments, run  # the scripts folder is not a package


def requests_of(result: dict[str, Any]) -> tuple[int, int]:
    """(requests sent, devices that ran) from a fleet job's JSON report."""
    doc = json.loads(result["out"][result["out"].index("{"):])
    ran = [d for d in doc["devices"] if d["status"] != "skipped"]
    return sum(d["requests"] or 0 for d in doc["devices"]), len(ran)


def main() -> None:
    args = fleet_arguments(__doc__)

    from avctl.emulator.fleet import EmulatedFleet

    families = ("videoos", "polyuc", "solstice")
    counts = {f: args.devices // 3 + (1 if i < args.devices % 3 else 0) for i, f in enumerate(families)}
    home = Path(tempfile.mkdtemp(prefix="avctl-bench-guard-"))
    env = {**os.environ, "AVCTL_HOME": str(home)}
    os.environ["AVCTL_HOME"] = str(home)
    print(f"starting {args.devices} emulated devices ({counts}), {args.latency:g} ms latency ...", flush=True)
    runs: dict[str, dict[str, Any]] = {}
    with EmulatedFleet(counts, latency_ms=args.latency, workers=args.workers) as fleet:
        inv = fleet.write_inventory(home / "fleet.yaml")
        common = ["-i", str(inv), "-c", str(args.concurrency), "--json"]
        print("  warm-up: fleet status (pins every certificate, so no measured run pays for that) ...", flush=True)
        run(avctl("fleet", "status", *common), env)
        variants = {"fleet mute": [], "fleet mute --if-idle": ["--if-idle"],
                    "fleet mute --rings (2) --gate 95%": ["--rings", "canary=site:site-1,all", "--gate", "95%"]}
        for label, extra in variants.items():
            print(f"  {label} ...", flush=True)
            runs[label] = run(avctl("fleet", "mute", *common, *extra), env)
    print()
    print(f"mute on {args.devices} devices ({', '.join(f'{k} {v}' for k, v in counts.items())}), "
          f"{args.latency:g} ms latency, concurrency {args.concurrency}, {os.cpu_count()} CPU(s)")
    print(f"{'client':<36}{'wall s':>9}{'CPU s':>9}{'peak MB':>9}{'requests':>10}{'per device':>11}")
    base = runs["fleet mute"]
    for label, r in runs.items():
        sent, ran = requests_of(r)
        print(f"{label:<36}{r['wall']:>9.2f}{r['cpu']:>9.2f}{r['maxrss_mb']:>9.1f}{sent:>10}{sent / ran:>11.2f}")
    print()
    for label, r in list(runs.items())[1:]:
        print(f"{label} vs plain: wall {r['wall'] / base['wall']:.2f}x, CPU {r['cpu'] / base['cpu']:.2f}x, "
              f"requests {requests_of(r)[0] / requests_of(base)[0]:.2f}x")


if __name__ == "__main__":
    main()
