"""The README's main job: emulated devices on loopback, driven with the real `avctl` CLI, telling a story.

Everything runs as a user would run it: `avctl emulate` in its own process, one `avctl` command per
step, TLS pinning on (a fresh AVCTL_HOME under demo-out/), passwords from the environment or a file.
First three emulated video systems one by one, then a fleet of all three families that looks like a
real one (models, firmware, a room in a call, a device offline, a wrong password) for `avctl fleet
status` to find, then configuration, then the same fleet watched by `avctl serve`.

`--keep` leaves the emulated fleet running afterwards and prints the commands to try on it; Ctrl-C
(or SIGTERM) stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
#: the avctl of the Python running the demo (.venv's, from ./scripts/demo)
AVCTL = str(Path(sys.executable).parent / "avctl")
#: everything the demo makes (inventory, state home, logs); tests point it elsewhere
OUT = Path(os.environ.get("AVCTL_DEMO_OUT") or ROOT / "demo-out").resolve()
HOME = OUT / "home"
INVENTORY = OUT / "fleet.yaml"


def shown(path: Path) -> str:
    """A path as the user types it: relative to the checkout when it lies inside it."""
    return os.path.relpath(path, ROOT) if path.is_relative_to(ROOT) else str(path)


def absolute(path: Path) -> str:
    """A path for a shell line run in the checkout, absolute as AVCTL_HOME must be: ``$PWD/...``
    inside the checkout (short to read), else the path itself."""
    return f"$PWD/{shown(path)}" if path.is_relative_to(ROOT) else str(path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_with(**extra: str) -> dict[str, str]:
    return {**os.environ, "AVCTL_HOME": str(HOME), **extra}


def say(text: str) -> None:
    print(f"\n# {text}", flush=True)


def avctl(*args: str, password: str | None = None, check: bool = True,
          show: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one avctl command as a user would; show the command and what it printed."""
    env = env_with(**({"DEMO_PASSWORD": password} if password is not None else {}))
    if show:
        print(f"$ avctl {' '.join(shlex.quote(a) for a in args)}", flush=True)
    done = subprocess.run([AVCTL, *args], capture_output=True, text=True, env=env, timeout=300)
    if show and done.stdout.strip():
        print(done.stdout.rstrip())
    if show and done.stderr.strip():
        print(done.stderr.rstrip(), flush=True)
    if check and done.returncode != 0:
        raise SystemExit(f"demo: step failed with exit code {done.returncode}:\n{done.stderr}")
    return done


def job_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The job a fleet command just ran, as `avctl jobs show --json` has it (not printed)."""
    found = re.search(r"^job (\d+)", done.stdout + "\n" + done.stderr, re.MULTILINE)
    if found is None:
        raise SystemExit("demo: the fleet command did not say which job it ran")
    return dict(json.loads(avctl("jobs", "show", found.group(1), "--json", show=False).stdout))


def outcome_line(job: dict[str, Any], what: str) -> str:
    """One sentence about a job: what worked, what did not and why (in the words of the table)."""
    rows = job["devices"]
    ok = [r["device"] for r in rows if r["status"] == "ok"]
    parts = [f"{what} on {len(ok)} of {len(rows)} device(s)"]
    for status, why in (("failed", "failed"), ("unreachable", "unreachable"), ("skipped", "left alone")):
        names = [f"{r['device']} ({r['reason']})" for r in rows if r["status"] == status]
        if names:
            parts.append(f"{why}: {', '.join(names)}")
    return "; ".join(parts)


# -- part 1: single devices -------------------------------------------------------------------------

def single_devices() -> None:
    emulator = subprocess.Popen([AVCTL, "emulate", "videoos", "--count", "3", "--json"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, env=env_with())
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
        say("what can a video system do? the actions come from its spec, parameters checked before sending")
        avctl("actions", "videoos", "--search", "volume")
        say("one system's details (password from $DEMO_PASSWORD; its certificate is pinned on first use)")
        avctl("call", "-f", "videoos", first["address"], "system_get", *pw, password=first["password"])
        say("a change: set the volume to 35 ...")
        avctl("call", "-f", "videoos", first["address"], "audio_volume_set", "volume=35", *pw,
              password=first["password"])
        print("  -> done: the system accepted it (HTTP 200), and the change is in the audit log; read back:")
        avctl("call", "-f", "videoos", first["address"], "audio_volume_get", *pw, password=first["password"])
        say("a validation error is caught before anything is sent:")
        avctl("call", "-f", "videoos", first["address"], "audio_volume_set", "volume=150", *pw,
              password=first["password"], check=False)
        say("a wrong password is tried once and reported (never retried: devices lock accounts out):")
        avctl("call", "-f", "videoos", first["address"], "system_get", *pw, password="wrong", check=False)
        say("certificates were pinned on first use (like SSH's known_hosts):")
        print((HOME / "known_devices").read_text().rstrip())
        say("disruptive actions ask for confirmation (--yes here):")
        avctl("call", "-f", "videoos", first["address"], "system_reboot", "--yes", *pw, password=first["password"])
        print("  -> done: the system is restarting")
    finally:
        emulator.terminate()
        emulator.wait(10)


# -- part 2: a fleet ----------------------------------------------------------------------------------

def start_fleet() -> subprocess.Popen[str]:
    """`avctl emulate fleet --variety`: its summary shown, its own hints (for a terminal) kept in a log."""
    log = open(OUT / "emulators.log", "w")  # noqa: SIM115 - the emulators write to it for their whole life
    fleet = subprocess.Popen([AVCTL, "emulate", "fleet", "--videoos", "4", "--polyuc", "4", "--solstice", "4",
                              "--variety", "--latency", "20", "--sites", "2", "-o", str(INVENTORY)],
                             stdout=subprocess.PIPE, stderr=log, text=True, env=env_with())
    log.close()
    assert fleet.stdout is not None
    print(f"$ avctl emulate fleet --videoos 4 --polyuc 4 --solstice 4 --variety --sites 2 -o {shown(INVENTORY)}")
    for _ in range(2):  # "12 emulated devices ...", "inventory: ..."; what it made different is for status to find
        line = fleet.stdout.readline()
        if not line:
            raise SystemExit("demo: the emulated fleet did not start:\n" + (OUT / "emulators.log").read_text())
        print(line.rstrip())
    return fleet


def fleet_story() -> None:
    inv = str(INVENTORY)
    say("an emulated fleet of all three families, as a real one is: several models, firmware versions, "
        "people in meetings, a device that is off, a password someone changed. The inventory, one site:")
    avctl("inventory", "list", "-i", inv, "--site", "site-1")
    say("what state is the fleet in?")
    status = job_of(avctl("fleet", "status", "-i", inv, check=False))
    tell_status(status)
    say("firmware against the inventory's baseline (firmware: in fleet.yaml):")
    avctl("firmware", "report", "-i", inv, "--family", "videoos|polyuc", check=False)
    say("mute every video system and phone (pods have no microphone: the selection names the families that "
        "have the verb, so no device is listed as skipped)")
    job = job_of(avctl("fleet", "mute", "-i", inv, "--family", "videoos|polyuc", check=False))
    print(f"  -> {outcome_line(job, 'muted')}")
    say("the volume of the video systems of site-1:")
    job = job_of(avctl("fleet", "volume", "volume=35", "-i", inv, "--family", "videoos", "--site", "site-1",
                       check=False))
    print(f"  -> {outcome_line(job, 'volume 35')}")
    in_call = [r["device"] for r in status["devices"] if (r.get("data") or {}).get("in_call")]
    say(f"the in-call guard: a reboot with --if-idle leaves the room in a meeting alone ({', '.join(in_call)}); "
        "'skipped' means left alone on purpose, not failed")
    job = job_of(avctl("fleet", "reboot", "-i", inv, "--family", "videoos", "--if-idle", "--yes", "--wait",
                       "--wait-grace", "3", check=False))
    print(f"  -> {outcome_line(job, 'rebooted and back')}")
    say("a rollout in rings: site-1 first; the rest only if at least 95% of site-1 succeeded")
    job = job_of(avctl("fleet", "unmute", "-i", inv, "--family", "videoos|polyuc", "--rings",
                       "canary=site:site-1,all", "--gate", "95%", check=False))
    print(f"  -> {outcome_line(job, 'unmuted')}")
    say("every job is journaled, every change audited:")
    avctl("jobs", "list", "-n", "6")
    avctl("audit", "-n", "6")


def tell_status(job: dict[str, Any]) -> None:
    """What `fleet status` found, said in words (from the job it recorded)."""
    rows = job["devices"]
    baseline = yaml.safe_load(INVENTORY.read_text()).get("firmware", {})
    print("  what status found:")
    for r in rows:
        data = r.get("data") or {}
        if data.get("in_call"):
            print(f"  - {r['device']} is in a call: a reboot with --if-idle will not disturb that room")
    for r in rows:
        if r["status"] == "unreachable":
            print(f"  - {r['device']} is unreachable ({r['reason']}, {r['attempts']} attempts): offline?")
        elif r["status"] == "failed" and r["reason"] == "auth":
            print(f"  - {r['device']} refused the inventory's password: auth_failed after {r['requests']} login "
                  "attempt, never repeated in this job; each later job tries once, and after 5 refusals in a "
                  "row the device locks the account (as real ones do): fix its password in the inventory")
    models = sorted({f"{r['family']} {r['data']['model']}" for r in rows if (r.get("data") or {}).get("model")})
    print(f"  - models: {', '.join(models)}")
    for r in rows:
        data = r.get("data") or {}
        want = (baseline.get(r["family"]) or {}).get("*")
        if want and data.get("firmware") and not str(data["firmware"]).startswith(str(want)):
            print(f"  - {r['device']} runs firmware {data['firmware']}, the baseline is {want}")


def config_demo() -> None:
    """Configuration as desired state: the shipped baselines on the whole fleet."""
    cfg = OUT / "fleet-config.yaml"
    baselines = ROOT / "docs" / "baselines"
    text = INVENTORY.read_text().replace(
        "defaults:\n", "defaults:\n  config:\n    templates:\n"
        f"    - {baselines / 'secure-rooms.yaml'}\n    - {baselines / 'room-names.yaml'}\n", 1)
    cfg.write_text(text)
    say("configuration as desired state: the shipped baselines (docs/baselines) on the pods of site-1; "
        "snapshots first, then apply: it shows the plan, sends only the differences and reads each one back")
    avctl("config", "backup", "-i", str(cfg), "--quiet", check=False)
    done = avctl("config", "apply", "-i", str(cfg), "--site", "site-1", "--family", "solstice", "--yes", check=False)
    if done.returncode == 0:
        print("  -> applied and verified; drift is now empty for them:")
    avctl("config", "drift", "-i", str(cfg), "--site", "site-1", "--family", "solstice", check=False)


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
    say(f"the web dashboard of the same server: {base}/ (sign in as admin)")
    print(f"  overview: {online.group(1) if online else '?'}% online "
          "(pages: overview, sites, devices, jobs, alerts, audit, admin; docs/dashboard.md)")


def server_demo() -> None:
    """The same fleet watched by `avctl serve`: state in the database, the REST API, a job through it."""
    say("the fleet service: a first admin user and an API token, then avctl serve")
    subprocess.run([AVCTL, "users", "add", "admin", "--role", "admin", "--password-stdin"], env=env_with(),
                   check=True, input="demo-admin-password\n", text=True, timeout=60, capture_output=True)
    token = subprocess.run([AVCTL, "tokens", "create", "demo", "--user", "admin"], env=env_with(), check=True,
                           capture_output=True, text=True, timeout=60).stdout.strip()
    listen = f"127.0.0.1:{free_port()}"
    print(f"$ avctl serve -i {shown(INVENTORY)} --listen {listen} --interval 5s --min-interval solstice=5s")
    log = open(OUT / "server.log", "w")  # noqa: SIM115 - open for the server's whole life
    server = subprocess.Popen([AVCTL, "serve", "-i", str(INVENTORY), "--listen", listen, "--interval",
                               "5s", "--min-interval", "solstice=5s"], env=env_with(), stdout=log,
                              stderr=subprocess.STDOUT)
    base = f"https://{listen}"
    try:
        cert = HOME / "server" / "tls-cert.pem"
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
        for d in page["items"]:
            r = d["readings"]
            firmware = f"firmware {r['firmware']}" if r.get("firmware") else ""
            print(f"  {d['name']:<15} {d['family']:<9} {d['state']:<11} {r.get('model', '')!s:<14} {firmware}".rstrip())
        states: dict[str, int] = {}
        for d in page["items"]:
            states[d["state"]] = states.get(d["state"], 0) + 1
        print(f"  ... {page['total']} devices: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
        print(f"$ curl -X POST {base}/api/v1/jobs -d '{{\"verb\": \"volume\", \"select\": \"family=videoos\"}}'")
        job = api(base, "/api/v1/jobs", token, ctx, {"verb": "volume", "params": {"volume": 30},
                                                   "select": "family=videoos"})
        deadline = time.monotonic() + 60
        while (detail := api(base, f"/api/v1/jobs/{job['job']}", token, ctx))["state"] == "running":
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        counts = ", ".join(f"{n} {k}" for k, n in detail["counts"].items() if n)
        print(f"  -> job {job['job']}: {detail['state']} ({counts}); the same job in the CLI's journal:")
        avctl("jobs", "list", "-n", "1")
        dashboard(base, ctx)
    finally:
        server.terminate()
        server.wait(30)
        log.close()


# -- the end ------------------------------------------------------------------------------------------

def try_commands() -> list[str]:
    """The commands a user can paste while the fleet runs (--keep): set-up lines first."""
    devices = yaml.safe_load(INVENTORY.read_text())["devices"]
    codec = next(d for d in devices.values() if d["family"] == "videoos")
    inv, pw = shown(INVENTORY), shown(INVENTORY.with_name(INVENTORY.stem + ".password"))
    return [
        f"cd {shlex.quote(str(ROOT))}",
        f'export PATH="{absolute(Path(AVCTL).parent)}:$PATH" AVCTL_HOME="{absolute(HOME)}"',
        f"avctl fleet status -i {inv}",
        f"avctl firmware report -i {inv}",
        f"avctl fleet mute -i {inv} --site site-1 --family 'videoos|polyuc'",
        "avctl jobs list",
        "avctl audit -n 10",
        f'export AVCTL_PASSWORD="$(cat {pw})"',
        f"avctl call -f videoos {codec['address']} system_get",
    ]


def closing(keep: bool) -> list[str]:
    """The last words: without --keep the devices are gone, so no command that needs them is named."""
    lines = ["", "demo finished: every step above ran against emulated devices over HTTPS on loopback"]
    if not keep:
        return [*lines, "the emulated devices are stopped now; to try commands yourself on a running fleet: "
                        "./scripts/demo --keep"]
    return [*lines, "", "the emulated fleet keeps running; try these in another terminal:",
            *(f"  {line}" for line in try_commands()), "Ctrl-C stops the emulated fleet"]


def stop_now(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def wait_for_signal(fleet: subprocess.Popen[str]) -> None:
    stop = {"signal": 0}

    def on_signal(signum: int, _frame: object) -> None:
        stop["signal"] = signum

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop["signal"] and fleet.poll() is None:
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true",
                        help="leave the emulated fleet running afterwards (Ctrl-C stops it) and print commands to try")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, stop_now)  # like Ctrl-C: the emulators are stopped on the way out
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    single_devices()
    fleet = start_fleet()
    try:
        fleet_story()
        config_demo()
        server_demo()
        if args.keep:
            print("\n".join(closing(keep=True)), flush=True)
            wait_for_signal(fleet)
            print("\nstopping the emulated fleet ...", flush=True)
    finally:
        fleet.terminate()
        fleet.wait(30)
    if args.keep:
        print("the emulated fleet is stopped", flush=True)
    else:
        print("\n".join(closing(keep=False)), flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("\ndemo: interrupted; the emulated devices are stopped", file=sys.stderr)
        sys.exit(130)
