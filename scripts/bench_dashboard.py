#!/usr/bin/env python3
"""The dashboard's pages in Chromium with a large fleet in the server, while it polls.

`avctl serve` (its own AVCTL_HOME, SQLite, HTTPS with its self-signed certificate) polls an emulated
fleet (`EmulatedFleet`: the emulators in their own processes, as scripts/bench_server.py runs them).
Once every device has been polled once, Debian's Chromium (Playwright), signed in as a viewer, opens
each page ``--repeats`` times and measures from the browser's Navigation Timing:

- time to first byte: ``responseStart`` (the server's answer begins);
- fully rendered: the load event's end, or the last htmx swap the page made by itself (a part loaded
  after the page) if later; refreshes triggered by the live stream (``sse:*``) are not the page's
  loading and are left out.

Pages: the overview ``/``, the device table (first page; a filtered page) and a device page
``/devices/NAME`` (answered 404 on a branch without the device page: its status is printed).
The machine's load average is printed: the emulators share the cores with the server.

    .venv/bin/python scripts/bench_dashboard.py --devices 1000 --repeats 10
    .venv/bin/python scripts/bench_dashboard.py --devices 10000 --repeats 20     # the issue's benchmark
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench_server import cli, pct
from playwright.sync_api import BrowserContext, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.server.harness import ServerProcess  # noqa: E402
from tests.web.browser import CHROMIUM_ARGS  # noqa: E402

FAMILIES = ("videoos", "polyuc", "solstice")
TARGET_MS = 500.0
#: a load that takes longer than this is counted as failed (and as this long)
LOAD_TIMEOUT_MS = 60_000.0
USER, PASSWORD = "bench-viewer", "bench-viewer-password-not-secret"

#: counts htmx requests the page makes by itself, and when the last one settled (run before the
#: page's own scripts; the live stream's refreshes are not part of loading the page)
TRACKER = """
window.__bench = {inflight: 0, settled: 0};
document.addEventListener("htmx:beforeRequest", (e) => {
  const cause = e.detail.requestConfig && e.detail.requestConfig.triggeringEvent;
  if (cause && String(cause.type).startsWith("sse:")) return;
  e.detail.elt.__benchCounted = true;
  window.__bench.inflight += 1;
});
document.addEventListener("htmx:afterSettle", (e) => {
  if (!e.detail.elt.__benchCounted) return;
  e.detail.elt.__benchCounted = false;
  window.__bench.inflight = Math.max(0, window.__bench.inflight - 1);
  window.__bench.settled = performance.now();
});
"""
LOADED = """() => { const nav = performance.getEntriesByType("navigation")[0];
  return nav && nav.loadEventEnd > 0 && window.__bench && window.__bench.inflight === 0; }"""
TIMES = """() => { const nav = performance.getEntriesByType("navigation")[0];
  return [nav.responseStart - nav.startTime, Math.max(nav.loadEventEnd, window.__bench.settled) - nav.startTime]; }"""


def counts_for(total: int) -> dict[str, int]:
    return {f: total // 3 + (1 if i < total % 3 else 0) for i, f in enumerate(FAMILIES)}


@contextlib.contextmanager
def fleet_up(devices: int, latency_ms: float, tmp: Path) -> Iterator[tuple[Path, Path]]:
    from avctl.emulator.fleet import EmulatedFleet

    home = tmp / "home"
    home.mkdir()
    t = time.time()
    fleet = EmulatedFleet(counts_for(devices), latency_ms=latency_ms)
    fleet.start(timeout=1800)
    try:
        inv = fleet.write_inventory(tmp / "inventory.yaml", known_hosts=home / "known_devices")
        print(f"  {len(fleet.devices)} emulated devices in {len(fleet.pids)} processes in {time.time() - t:.0f} s",
              flush=True)
        yield home, inv
    finally:
        fleet.stop()


def wait_first_sweep(server: ServerProcess, devices: int, within: float) -> dict[str, int]:
    """Until no device is left unpolled (or `within` s): the server's state counts then."""
    server.login(USER, PASSWORD)
    t0 = time.time()
    while True:
        unknown = server.get("/api/v1/devices", limit=1, state="unknown")["total"]
        if unknown == 0 or time.time() - t0 > within:
            break
        time.sleep(2)
    print(f"  first sweep: {devices - unknown} of {devices} devices polled in {time.time() - t0:.0f} s", flush=True)
    return {st: server.get("/api/v1/devices", limit=1, state=st)["total"]
            for st in ("online", "offline", "error", "unknown")}


def sign_in(context: BrowserContext, base: str) -> None:
    page = context.new_page()
    page.goto(f"{base}/login")
    page.get_by_label("User name").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Main").wait_for(timeout=60_000)
    page.close()


def measure(context: BrowserContext, url: str, repeats: int) -> dict[str, Any]:
    page = context.new_page()
    page.set_default_timeout(LOAD_TIMEOUT_MS)
    ttfb: list[float] = []
    rendered: list[float] = []
    status = None
    failed = 0
    try:
        with contextlib.suppress(PlaywrightTimeout):
            page.goto(url)  # once before measuring: the browser caches the static files, as a user's would
        for _ in range(repeats):
            try:
                answer = page.goto(url, wait_until="load")
                page.wait_for_function(LOADED)
            except PlaywrightTimeout:
                failed += 1  # counted, and the load's time is the timeout: the table shows it
                ttfb.append(LOAD_TIMEOUT_MS)
                rendered.append(LOAD_TIMEOUT_MS)
                continue
            status = answer.status if answer else None
            first, done = page.evaluate(TIMES)
            ttfb.append(first)
            rendered.append(done)
    finally:
        page.close()
    return {"status": status, "ttfb": ttfb, "rendered": rendered, "failed": failed}


def chromium() -> str:
    found = os.environ.get("AVCTL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise SystemExit("no Chromium: apt-get install chromium, or set AVCTL_CHROMIUM")
    return found


def report(args: argparse.Namespace, results: dict[str, dict[str, Any]], states: dict[str, int],
           load: tuple[str, str]) -> None:
    print()
    print(f"{args.devices} devices ({', '.join(f'{k} {v}' for k, v in counts_for(args.devices).items())}), "
          f"{args.latency_ms:g} ms emulated latency, poll interval {args.interval:g} s, {args.repeats} loads per page, "
          f"{os.cpu_count()} cores")
    print(f"load average at start {load[0]}, at end {load[1]}; device states: {states}")
    print()
    w = max(len(k) for k in results)
    print(f"{'page':{w}}  {'status':>6}  {'first byte p50 / p95 / max ms':>30}  "
          f"{'rendered p50 / p95 / max ms':>30}  target")
    for name, r in results.items():
        def cols(values: list[float]) -> str:
            return f"{pct(values, 0.5):.0f} / {pct(values, 0.95):.0f} / {max(values, default=float('nan')):.0f}"

        met = "met" if pct(r["rendered"], 0.95) < TARGET_MS and not r["failed"] else "MISSED"
        failed = f"  ({r['failed']} loads timed out)" if r["failed"] else ""
        print(f"{name:{w}}  {r['status']!s:>6}  {cols(r['ttfb']):>30}  {cols(r['rendered']):>30}  {met}{failed}")
    print(f"\ntarget: fully rendered under {TARGET_MS:g} ms (p95 of the loads; a timed-out load misses it)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000, help="devices in all (the families in equal shares)")
    parser.add_argument("--repeats", type=int, default=20, help="loads of each page")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="emulated latency per answer")
    parser.add_argument("--interval", type=float, default=60.0, help="poll interval, seconds")
    parser.add_argument("--sweep-wait", type=float, default=900.0, help="longest wait for the first sweep, seconds")
    args = parser.parse_args()
    load0 = " ".join(f"{x:.2f}" for x in os.getloadavg())
    device = f"{FAMILIES[0]}-00001"
    pages = {
        "overview /": "/",
        "devices, first page": "/devices",
        "devices, filtered": "/devices?select=site%3Dsite-2%2Cfamily%3Dpolyuc&state=online&sort=-last_poll",
        f"device /devices/{device}": f"/devices/{device}",
    }
    with tempfile.TemporaryDirectory(prefix="avctl-bench-web-") as tmp, \
            fleet_up(args.devices, args.latency_ms, Path(tmp)) as (home, inv):
        cli(home, "users", "add", USER, "--role", "viewer", "--password-stdin", stdin=PASSWORD + "\n")
        server = ServerProcess(home, ["-i", str(inv), "--interval", f"{args.interval:g}s"])
        try:
            t0 = time.time()
            server.start(within=900)
            base = server.base  # after the start: a port taken meanwhile moves the server to another
            print(f"  server up in {time.time() - t0:.1f} s", flush=True)
            states = wait_first_sweep(server, args.devices, args.sweep_wait)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium(), args=list(CHROMIUM_ARGS), headless=True)
                try:
                    # the server's self-signed certificate: this browser is the benchmark's own
                    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
                    context.add_init_script(TRACKER)
                    sign_in(context, base)
                    results = {}
                    for name, path in pages.items():
                        results[name] = measure(context, base + path, args.repeats)
                        print(f"  {name}: measured", flush=True)
                finally:
                    browser.close()
        finally:
            server.stop()
        load1 = " ".join(f"{x:.2f}" for x in os.getloadavg())
        report(args, results, states, (load0, load1))


if __name__ == "__main__":
    main()
