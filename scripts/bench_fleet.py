#!/usr/bin/env python3
"""Benchmark: a status sweep of an emulated fleet with avctl vs. two hand-written baselines.

    .venv/bin/python scripts/bench_fleet.py --devices 1000 --latency 50
    .venv/bin/python scripts/bench_fleet.py --devices 10000 --latency 50 --sequential-sample 200

The emulated devices run in worker processes (``avctl.emulator.fleet.EmulatedFleet``); each client
runs in its own fresh process so CPU seconds and peak memory (ru_maxrss) belong to it alone:

- ``sequential``: one device at a time, log in, read, log out, like the seeds' scripts (aiohttp,
  one request after another). With ``--sequential-sample N`` only N devices are swept and the
  wall time is extrapolated to the fleet (marked ``*``).
- ``raw-async``: a minimal hand-written asyncio loop with aiohttp, same requests, same
  concurrency, same certificate pins, none of avctl's layers (no spec, validation, job store,
  audit, retries).
- ``avctl``: the fleet runner as ``avctl fleet status`` uses it: spec Feedbacks, the job store
  with one SQLite commit per device, credentials by reference, retries, limits.

Every client does the same requests per device: login, each status action of the spec, logout.
Targets (2-core machine): avctl >= 50x faster than sequential, within 1.3x of raw-async in wall
time and client CPU, 1,000 devices < 10 s, peak client memory < 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = ROOT / "tests" / "data" / "videoos_min.md"


# --- clients (each runs in its own process: `bench_fleet.py --client NAME ...`) --------------------


def _devices(inventory: str, limit: int | None) -> list[Any]:
    from avctl.fleet.inventory import load_inventory

    devs = list(load_inventory(inventory))
    if not limit or limit >= len(devs):
        return devs
    step = len(devs) / limit  # an even sample: every family in its share
    return [devs[int(i * step)] for i in range(limit)]


def _spec_for(family: str, overrides: dict[str, str]) -> Any:
    from avctl.fleet.jobs import spec_provider

    return spec_provider(overrides)(family)


def _status_requests(spec: Any) -> list[dict[str, Any]]:
    """What every client reads per device: the spec's status actions, with their auth and scheme."""
    from avctl.capabilities import status_plan

    out = []
    for action_id in status_plan(spec):
        a = spec.action(action_id)
        out.append({"method": a.method, "path": a.path, "auth": a.auth or spec.transport.auth_type,
                    "scheme": a.scheme})
    return out


_KNOWN: Any = None


def _pin(host: str, port: int) -> Any:
    import aiohttp

    from avctl.transport.tls import KnownHosts, _digest

    global _KNOWN
    if _KNOWN is None:
        _KNOWN = KnownHosts()
    fp = _KNOWN.get(f"{host}:{port}")
    return aiohttp.Fingerprint(_digest(fp)) if fp else False


async def _raw_device(session: Any, dev: Any, password: str, reads: list[dict[str, Any]]) -> bool:
    """One device by hand: each family's login written out, then the same reads avctl makes."""
    import base64

    scheme = dev.scheme or "https"
    user = dev.user
    headers: dict[str, str] = {}
    ok = True
    session_cookie = False
    pins: dict[int, Any] = {}

    def where(read: dict[str, Any]) -> tuple[str, Any]:
        sch = read["scheme"] or scheme
        port = dev.ports.get(sch, dev.port) if read["scheme"] and read["scheme"] != scheme else dev.port
        if port not in pins:
            pins[port] = _pin(dev.host, port) if sch == "https" else False
        return f"{sch}://{dev.host}:{port}", pins[port]

    for read in reads:
        base, ssl_arg = where(read)
        auth = read["auth"]
        params: dict[str, str] = {}
        h = dict(headers)
        if auth == "videoos_session" and not session_cookie:
            async with session.post(f"{base}/rest/session", json={"user": user or "admin", "password": password},
                                    ssl=ssl_arg) as r:
                await r.read()
                if r.status != 200:
                    return False
                cookies = {k: v.value for k, v in r.cookies.items()}
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
            if "XSRF-TOKEN" in cookies:
                headers["X-XSRF-TOKEN"] = cookies["XSRF-TOKEN"]
            session_cookie = True
            h = dict(headers)
        elif auth == "http_basic_digest":
            h["Authorization"] = "Basic " + base64.b64encode(f"{user or 'Polycom'}:{password}".encode()).decode()
        elif auth == "solstice_oauth2":
            if "Authorization" not in headers:
                form = {"grant_type": "password", "username": user or "admin", "password": password}
                async with session.post(f"{base}/v2/token", data=form, ssl=ssl_arg) as r:
                    body = await r.json(content_type=None)
                    if r.status != 200:
                        return False
                headers["Authorization"] = f"Bearer {body['access_token']}"
            h = dict(headers)
        elif auth == "solstice_v1_password":
            params["password"] = password
        async with session.request(read["method"], base + read["path"], headers=h, params=params,
                                   ssl=ssl_arg) as r:
            await r.read()
            ok = ok and r.status == 200
    if session_cookie:  # VideoOS: log out, as avctl does
        base, ssl_arg = where({"scheme": None})
        async with session.delete(f"{base}/rest/session", headers=headers, ssl=ssl_arg) as r:
            await r.read()
    return ok


async def client_raw(inventory: str, concurrency: int, limit: int | None, overrides: dict[str, str],
                     sequential: bool) -> dict[str, Any]:
    import aiohttp

    devs = _devices(inventory, limit)
    password = (Path(inventory).with_name(Path(inventory).stem + ".password")).read_text().strip()
    reads = {fam: _status_requests(_spec_for(fam, overrides)) for fam in {d.family for d in devs}}
    ok = 0
    t0, c0 = time.perf_counter(), time.process_time()
    if sequential:
        # like a script: a fresh client per device, one request after another
        for d in devs:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s:
                ok += await _raw_device(s, d, password, reads[d.family])
    else:
        sem = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                         connector=aiohttp.TCPConnector(limit=0)) as s:
            async def one(d: Any) -> bool:
                async with sem:
                    try:
                        return await _raw_device(s, d, password, reads[d.family])
                    except Exception:
                        return False

            ok = sum(await asyncio.gather(*(one(d) for d in devs)))
    # the sweep alone (no imports, no inventory parsing): what a sample is extrapolated from
    return {"devices": len(devs), "ok": ok, "loop_wall": time.perf_counter() - t0,
            "loop_cpu": time.process_time() - c0}


async def client_avctl(inventory: str, concurrency: int, limit: int | None,
                       overrides: dict[str, str]) -> dict[str, Any]:
    from avctl.fleet.audit import AuditLog
    from avctl.fleet.credentials import CredentialResolver
    from avctl.fleet.inventory import load_inventory
    from avctl.fleet.jobs import create_job, execute, spec_provider
    from avctl.fleet.runner import FleetRunner, RunOptions
    from avctl.fleet.store import SqliteJobStore
    from avctl.fleet.verbs import StatusTask

    inv = load_inventory(inventory)
    devs = list(inv)[:limit] if limit else list(inv)
    with SqliteJobStore() as store, AuditLog() as audit:
        runner = FleetRunner(store=store, audit=audit, specs=spec_provider(overrides),
                             resolver=CredentialResolver(base_dir=inv.base_dir),
                             options=RunOptions(concurrency=concurrency))
        task = StatusTask()
        job = create_job(store, task, selection="all", devices=devs, inventory=inv, options=runner.options,
                         spec_overrides=overrides)
        report = await execute(store, job, runner, task, devs)
    return {"devices": len(devs), "ok": report.counts["ok"]}


def run_client(args: argparse.Namespace) -> None:
    overrides = dict(p.split("=", 1) for p in args.spec)
    t0 = time.perf_counter()
    if args.client == "avctl":
        res = asyncio.run(client_avctl(args.inventory, args.concurrency, args.limit, overrides))
    else:
        res = asyncio.run(client_raw(args.inventory, args.concurrency, args.limit, overrides,
                                     sequential=args.client == "sequential"))
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    res.update(wall=wall, cpu=ru.ru_utime + ru.ru_stime, maxrss_mb=ru.ru_maxrss / 1024)
    print(json.dumps(res))


# --- the driver ------------------------------------------------------------------------------------


def spawn_client(name: str, inventory: Path, concurrency: int, limit: int | None, spec: list[str],
                 env: dict[str, str]) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--client", name, "--inventory", str(inventory), "--concurrency",
           str(concurrency)] + [f"--spec={s}" for s in spec]
    if limit:
        cmd += ["--limit", str(limit)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{name} client failed:\n{out.stderr}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--latency", type=float, default=50.0, help="emulated latency per request, ms")
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--workers", type=int, default=0, help="emulator processes [default: auto]")
    ap.add_argument("--families", default="videoos,polyuc,solstice", help="comma list, devices split evenly")
    ap.add_argument("--spec", action="append", default=[], metavar="FAMILY=FILE",
                    help=f"spec override [default: videoos={DEFAULT_SPEC.relative_to(ROOT)} if no built-in]")
    ap.add_argument("--sequential-sample", type=int, default=0,
                    help="sweep only N devices sequentially and extrapolate (0: all)")
    ap.add_argument("--skip", action="append", default=[], choices=["sequential", "raw-async", "avctl"])
    # client mode (internal)
    ap.add_argument("--client", choices=["sequential", "raw-async", "avctl"])
    ap.add_argument("--inventory")
    ap.add_argument("--limit", type=int)
    args = ap.parse_args()
    if args.client:
        run_client(args)
        return

    from avctl.emulator.fleet import EmulatedFleet
    from avctl.families import family_names

    families = [f.strip() for f in args.families.split(",") if f.strip()]
    spec = list(args.spec)
    for fam in families:
        if fam not in family_names() and fam == "videoos" and not any(s.startswith("videoos=") for s in spec):
            spec.append(f"videoos={DEFAULT_SPEC}")  # before the full VideoOS spec ships
    counts = {f: args.devices // len(families) + (1 if i < args.devices % len(families) else 0)
              for i, f in enumerate(families)}
    home = Path(tempfile.mkdtemp(prefix="avctl-bench-"))
    env = {**os.environ, "AVCTL_HOME": str(home)}
    os.environ["AVCTL_HOME"] = str(home)
    overrides = dict(s.split("=", 1) for s in spec)
    print(f"starting {args.devices} emulated devices ({counts}), {args.latency:g} ms latency ...", flush=True)
    t0 = time.monotonic()
    with EmulatedFleet(counts, latency_ms=args.latency, workers=args.workers, spec_paths=overrides) as fleet:
        inv = fleet.write_inventory(home / "fleet.yaml")
        print(f"  {len(fleet.devices)} devices in {len(fleet.pids)} emulator process(es), "
              f"up in {time.monotonic() - t0:.1f} s; clients run in their own processes", flush=True)
        results: dict[str, dict[str, Any]] = {}
        for name in ("raw-async", "avctl", "sequential"):
            if name in args.skip:
                continue
            limit = args.sequential_sample if name == "sequential" and args.sequential_sample else None
            print(f"  running {name} ...", flush=True)
            res = spawn_client(name, inv, args.concurrency, limit, spec, env)
            if limit and limit < args.devices:
                res["sampled"] = limit
                extra = args.devices / limit - 1  # setup counted once, the sweep scaled to the fleet
                res["wall"] += res["loop_wall"] * extra
                res["cpu"] += res["loop_cpu"] * extra
            results[name] = res
    print()
    print(f"status sweep of {args.devices} devices, {args.latency:g} ms latency, concurrency "
          f"{args.concurrency}, {os.cpu_count()} CPU(s)")
    print(f"{'client':<12}{'wall s':>10}{'dev/s':>10}{'CPU s':>10}{'peak MB':>10}{'ok':>10}")
    for name, r in results.items():
        mark = "*" if r.get("sampled") else " "
        print(f"{name:<12}{r['wall']:>9.2f}{mark}{args.devices / r['wall']:>10.1f}{r['cpu']:>9.2f}{mark}"
              f"{r['maxrss_mb']:>10.1f}{r['ok']:>7}/{r['devices']}")
    if any(r.get("sampled") for r in results.values()):
        print("* extrapolated from a sample of "
              f"{next(r['sampled'] for r in results.values() if r.get('sampled'))} devices")
    if "avctl" in results:
        a = results["avctl"]
        print()
        if "sequential" in results:
            print(f"avctl vs sequential: {results['sequential']['wall'] / a['wall']:.1f}x faster (target >= 50x)")
        if "raw-async" in results:
            b = results["raw-async"]
            print(f"avctl vs raw-async: wall {a['wall'] / b['wall']:.2f}x, CPU {a['cpu'] / b['cpu']:.2f}x "
                  "(target <= 1.3x)")
        print(f"avctl: {a['wall']:.2f} s for {args.devices} devices, peak {a['maxrss_mb']:.0f} MB "
              "(targets: < 10 s per 1,000, < 300 MB)")


if __name__ == "__main__":
    main()
