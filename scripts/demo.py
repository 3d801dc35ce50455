"""The README's main job: emulated VideoOS systems on loopback, driven with the real `avctl` CLI.

Everything runs as a user would run it: `avctl emulate` in its own process, `avctl call` per step,
TLS pinning on (fresh AVCTL_HOME under demo-out/), passwords passed through the environment.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
AVCTL = str(ROOT / ".venv" / "bin" / "avctl")
OUT = ROOT / "demo-out"


def avctl(*args: str, password: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AVCTL_HOME": str(OUT / "home")}
    if password is not None:
        env["DEMO_PASSWORD"] = password
    print(f"$ avctl {' '.join(args)}", flush=True)
    done = subprocess.run([AVCTL, *args], capture_output=True, text=True, env=env, timeout=120)
    if done.stdout.strip():
        print(done.stdout.rstrip())
    if done.stderr.strip():
        print(done.stderr.rstrip(), file=sys.stderr)
    if check and done.returncode != 0:
        raise SystemExit(f"demo: step failed with exit code {done.returncode}")
    return done


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    emulator = subprocess.Popen([AVCTL, "emulate", "videoos", "--count", "3", "--json"], stdout=subprocess.PIPE,
                                text=True, env={**os.environ, "AVCTL_HOME": str(OUT / "home")})
    try:
        assert emulator.stdout is not None
        text = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = emulator.stdout.readline()
            if not line:
                raise SystemExit("demo: the emulator stopped before listing its devices")
            text += line
            if line.startswith("]"):
                break
        devices = json.loads(text)
        print(f"started {len(devices)} emulated Poly VideoOS systems:")
        for d in devices:
            print(f"  {d['name']:<10} {d['scheme']}://{d['address']}")
        first = devices[0]
        pw = ["--password-env", "DEMO_PASSWORD"]
        avctl("actions", "videoos", "--search", "volume")
        for d in devices:
            avctl("call", "-f", "videoos", d["address"], "system_get", *pw, password=d["password"])
        avctl("call", "-f", "videoos", first["address"], "audio_volume_set", "volume=35", *pw,
              password=first["password"])
        avctl("call", "-f", "videoos", first["address"], "audio_volume_get", "--json", *pw,
              password=first["password"])
        print("\n# a validation error is caught before anything is sent:")
        avctl("call", "-f", "videoos", first["address"], "audio_volume_set", "volume=150", *pw,
              password=first["password"], check=False)
        print("\n# a wrong password is tried once and reported (never retried):")
        avctl("call", "-f", "videoos", first["address"], "system_get", *pw, password="wrong", check=False)
        print("\n# certificates were pinned on first use:")
        print((OUT / "home" / "known_devices").read_text().rstrip())
        print("\n# disruptive actions need confirmation (--yes here):")
        avctl("call", "-f", "videoos", first["address"], "system_reboot", "--yes", *pw,
              password=first["password"])
        time.sleep(0.5)
        avctl("call", "-f", "videoos", first["address"], "system_get", "--timeout", "3", *pw,
              password=first["password"], check=False)
        print("\ndemo finished: every step above ran against emulated devices over HTTPS on loopback")
    finally:
        emulator.terminate()
        emulator.wait(10)


def fleet_demo() -> None:
    """The fleet part of the main job: all three families at once, driven with `avctl fleet`."""
    inv = str(OUT / "fleet.yaml")
    env = {**os.environ, "AVCTL_HOME": str(OUT / "home")}
    emulator = subprocess.Popen([AVCTL, "emulate", "fleet", "--videoos", "6", "--polyuc", "6", "--solstice", "6",
                                 "--latency", "20", "--sites", "2", "-o", inv], stdout=subprocess.PIPE, text=True,
                                env=env)
    try:
        assert emulator.stdout is not None
        for _ in range(2):
            print(emulator.stdout.readline().rstrip())
        deadline = time.monotonic() + 60
        while not Path(inv).exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        print("\n# an emulated fleet of all three families; every verb maps to each family's spec:")
        avctl("inventory", "list", "-i", inv, "--site", "site-1")
        avctl("fleet", "status", "-i", inv, check=False)
        avctl("fleet", "volume", "volume=35", "-i", inv, check=False)
        avctl("fleet", "mute", "-i", inv, "--site", "site-2", check=False)
        avctl("fleet", "reboot", "-i", inv, "--family", "polyuc", "--yes", "--wait", "--wait-grace", "3", check=False)
        avctl("jobs", "list")
        avctl("audit", "-n", "8")
        guard_demo(inv)
        config_demo(inv)
        server_demo(inv)
    finally:
        emulator.terminate()
        emulator.wait(20)


def guard_demo(inv: str) -> None:
    """The in-call guard and a rollout in rings (docs/schedules.md)."""
    devices = yaml.safe_load(Path(inv).read_text())["devices"]
    codecs = [name for name, d in devices.items() if d["family"] == "videoos" and d.get("site") == "site-1"]
    print(f"\n# the in-call guard: {codecs[0]} joins a meeting; a reboot with --if-idle leaves that room alone")
    avctl("fleet", "run", "conferences_dial", "address=bob@example.com", "-i", inv, "--name", codecs[0], "--quiet")
    avctl("fleet", "reboot", "-i", inv, "--family", "videoos", "--site", "site-1", "--if-idle", "--yes", "--wait",
          "--wait-grace", "3", check=False)
    avctl("fleet", "end_call", "-i", inv, "--name", codecs[0], "--quiet", "--yes", check=False)
    print("\n# a rollout in rings: site-1 first; the rest only if at least 95% of site-1 succeeded")
    avctl("fleet", "mute", "-i", inv, "--family", "videoos|polyuc", "--rings", "canary=site:site-1,all", "--gate",
          "95%", check=False)


def config_demo(inv: str) -> None:
    """Configuration as desired state: the shipped baselines on the whole fleet."""
    cfg = OUT / "fleet-config.yaml"
    baselines = ROOT / "docs" / "baselines"
    text = Path(inv).read_text().replace(
        "defaults:\n", "defaults:\n  config:\n    templates:\n"
        f"    - {baselines / 'secure-rooms.yaml'}\n    - {baselines / 'room-names.yaml'}\n", 1)
    cfg.write_text(text)
    print("\n# configuration as desired state: the shipped baselines (docs/baselines) on the whole fleet")
    avctl("config", "backup", "-i", str(cfg), "--quiet")
    avctl("config", "plan", "-i", str(cfg), "--site", "site-1", "--family", "solstice", check=False)
    print("\n# apply sends only the differences and reads each one back (read-only keys are reported, not sent):")
    avctl("config", "apply", "-i", str(cfg), "--yes", "--quiet", check=False)
    avctl("config", "drift", "-i", str(cfg), "--family", "solstice|polyuc", check=False)
    name = next(line.split(":")[0].strip() for line in text.splitlines() if line.strip().startswith("solstice-"))
    avctl("config", "history", name)


def api(base: str, path: str, token: str, ctx: ssl.SSLContext, body: Any = None) -> Any:
    """One call of the server's REST API (what curl or a script would send)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method="GET" if body is None else "POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=ctx, timeout=60) as answer:
        return json.loads(answer.read() or b"null")


def dashboard(base: str, ctx: ssl.SSLContext) -> None:
    """The web dashboard of the same server: signed in as a browser would, the overview's headline."""
    login = urllib.request.Request(base + "/api/v1/auth/login", method="POST",
                                   data=json.dumps({"name": "admin", "password": "demo-admin-password"}).encode(),
                                   headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(login, context=ctx, timeout=60) as answer:
        cookies = "; ".join(c.split(";", 1)[0] for c in answer.headers.get_all("Set-Cookie") or [])
    with urllib.request.urlopen(urllib.request.Request(base + "/", headers={"Cookie": cookies}), context=ctx,
                                timeout=60) as answer:
        page = answer.read().decode()
    online = re.search(r'id="online-percent">(\d+)<', page)
    print(f"\n# the web dashboard of the same server: open {base}/ and sign in as admin")
    print(f"  overview: {online.group(1) if online else '?'}% online "
          "(pages: overview, sites, devices, jobs, alerts, audit, admin; docs/dashboard.md)")


def server_demo(inv: str) -> None:
    """The same fleet watched by `avctl serve`: state in the database, the REST API, a job through it."""
    env = {**os.environ, "AVCTL_HOME": str(OUT / "home")}
    print("\n# the fleet service: a first admin user and an API token, then avctl serve")
    subprocess.run([AVCTL, "users", "add", "admin", "--role", "admin", "--password-stdin"], env=env, check=True,
                   input="demo-admin-password\n", text=True, timeout=60)
    token = subprocess.run([AVCTL, "tokens", "create", "demo", "--user", "admin"], env=env, check=True,
                           capture_output=True, text=True, timeout=60).stdout.strip()
    print("$ avctl serve -i fleet.yaml --listen 127.0.0.1:18443 --interval 5s --min-interval solstice=5s")
    log = open(OUT / "server.log", "w")  # noqa: SIM115 - open for the server's whole life
    server = subprocess.Popen([AVCTL, "serve", "-i", inv, "--listen", "127.0.0.1:18443", "--interval", "5s",
                               "--min-interval", "solstice=5s"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = "https://127.0.0.1:18443"
    try:
        cert = OUT / "home" / "server" / "tls-cert.pem"
        deadline = time.monotonic() + 60
        while not (cert.exists() and "API at" in (OUT / "server.log").read_text()):
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("demo: the server did not start:\n" + (OUT / "server.log").read_text())
            time.sleep(0.2)
        print((OUT / "server.log").read_text().strip())
        ctx = ssl.create_default_context(cafile=str(cert))  # its self-signed certificate, pinned by file
        deadline = time.monotonic() + 60
        while True:
            page = api(base, "/api/v1/devices?limit=100", token, ctx)
            if all(d["state"] != "unknown" for d in page["items"]) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        print(f"$ curl -H 'Authorization: Bearer ...' {base}/api/v1/devices")
        for d in page["items"][:6]:
            r = d["readings"]
            print(f"  {d['name']:<15} {d['family']:<9} {d['state']:<8} {r.get('model', '')!s:<20} "
                  f"firmware {r.get('firmware', '')}")
        print(f"  ... {page['total']} devices, "
              f"{sum(d['state'] == 'online' for d in page['items'])} online")
        print(f"$ curl -X POST {base}/api/v1/jobs -d '{{\"verb\": \"volume\", ...}}'")
        job = api(base, "/api/v1/jobs", token, ctx, {"verb": "volume", "params": {"volume": 30},
                                                   "select": "site=site-1"})
        deadline = time.monotonic() + 60
        while (detail := api(base, f"/api/v1/jobs/{job['job']}", token, ctx))["state"] == "running":
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        print(f"  job {job['job']}: {detail['state']}, {detail['counts']}")
        print("  (the same job in the CLI's journal:)")
        avctl("jobs", "list", "-n", "3")
        dashboard(base, ctx)
    finally:
        server.terminate()
        server.wait(30)
        log.close()


if __name__ == "__main__":
    main()
    fleet_demo()
