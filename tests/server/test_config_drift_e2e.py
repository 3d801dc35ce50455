"""Configuration drift in `avctl serve` (issue 12): a real server process against emulators of all
three families, the configuration changed behind avctl's back, the drift check run by the API's
"check now" and by the schedule; what the API shows, to whom, and what it never shows.

The emulators run in this process; the CLI (`avctl config apply`, `avctl config backup`) runs as
its own process on the server's database. Every wait is for a condition.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests

from avctl.emulator.core import EmulatedDevice, EmulatorThread, emulator_class
from avctl.emulator.videoos import EmulatedVideoOS

from .harness import ServerProcess, WebhookReceiver, add_admin, run_cli, wait_for

PASSWORD = "drift-fleet-pw-6Qp2"
VIDEOOS_ADMIN = "Vos-Drift-Secret-3391"
BT = "system.network.wireless.bt.enabled"
CONFIG = """\
  config:
    videoos:
      system.network.wireless.bt.enabled: false
    polyuc:
      up.backlight.idleIntensity: 2
    solstice:
      display.presence_bar.show_name: false
"""
#: a key no family has, at line 3 of the inventory
BROKEN = CONFIG.replace("system.network.wireless.bt.enabled", "system.network.wireless.bt.enabledd")


def fleet(emulators: EmulatorThread) -> dict[str, EmulatedDevice]:
    cls = emulator_class
    devs = {d.name: d for d in (
        emulators.add(cls("videoos")("br-codec-1", password=PASSWORD, seed=11)),
        emulators.add(cls("videoos")("hq-codec-1", password=PASSWORD, seed=12)),
        emulators.add(cls("polyuc")("hq-phone-1", password=PASSWORD, seed=13)),
        emulators.add(cls("solstice")("hq-pod-1", password=PASSWORD, seed=14)),
        # no desired configuration reaches a disabled device: it is never read
        emulators.add(cls("videoos")("hq-codec-off", password=PASSWORD, seed=15)),
    )}
    for d in devs.values():
        if isinstance(d, EmulatedVideoOS):
            d.state.config["device.local.adminpassword"]["value"] = VIDEOOS_ADMIN
    return devs


def write_inventory(path: Path, devs: dict[str, EmulatedDevice], config: str = CONFIG) -> Path:
    (path.parent / "fleet.password").write_text(PASSWORD + "\n")
    lines = ["defaults:", "  password: 'file:fleet.password'", *config.rstrip("\n").splitlines(), "devices:"]
    for name, dev in devs.items():
        ports = {k: v for k, v in dev.extra_ports.items() if v}
        extra = f", ports: {json.dumps(ports)}" if ports else ""
        off = ", disabled: true" if name.endswith("-off") else ""
        lines.append(f"  {name}: {{family: {dev.family}, address: '{dev.host}:{dev.port}', "
                     f"site: {name.split('-')[0]}, room: {name}{extra}{off}}}")
    tmp = path.with_name(path.name + ".tmp")  # the server's watcher never reads a half-written file
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return path


def cli(home: Path, *args: str) -> str:
    done = run_cli(home, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def reads_of(dev: EmulatedDevice) -> int:
    return dev.requests.total


def hook_events(hook: WebhookReceiver, device: str) -> list[str]:
    return [b["event"] for b in hook.bodies() if b["alert"]["device"] == device]


def finished(server: ServerProcess, job: int) -> dict[str, Any] | None:
    body: dict[str, Any] = server.get(f"/api/v1/jobs/{job}")
    return body if body["state"] == "finished" else None


def user_session(server: ServerProcess, home: Path, db: str, name: str, role: str,
                 sites: str | None) -> requests.Session:
    """A user made with the CLI, signed in through the API (a browser session with its CSRF token)."""
    pw = f"{name}-drift-pw-Zk81x"
    args = ["users", "add", name, "--role", role, "--password-stdin", "--db", db,
            *(["--sites", sites] if sites else [])]
    made = run_cli(home, *args, stdin=pw + "\n")
    assert made.returncode == 0, made.stderr
    s = requests.Session()
    s.trust_env = False
    s.verify = server.session.verify
    r = s.post(server.base + "/api/v1/auth/login", json={"name": name, "password": pw}, timeout=10)
    r.raise_for_status()
    s.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return s


def test_drift_check_now_shows_exactly_the_drifted_key(emulators: EmulatorThread, tmp_path: Path) -> None:
    home, db = tmp_path / "home", str(tmp_path / "server.db")
    devs = fleet(emulators)
    inv = str(write_inventory(tmp_path / "fleet.yaml", devs))
    # the fleet in its desired state, and a snapshot of each device (the CLI, on the server's database)
    cli(home, "config", "apply", "-i", inv, "--yes", "--store", db)
    cli(home, "config", "backup", "-i", inv, "--store", db)
    token = add_admin(home, db)
    server = ServerProcess(home, ["-i", inv, "--db", db, "--interval", "60s", "--min-interval", "solstice=60s"])
    try:
        server.start()
        server.use_token(token)
        before = server.get("/api/v1/config/drift")
        assert (before["job"], before["items"], before["error"]) == (None, [], None)  # no check yet

        # behind avctl's back: Bluetooth on, on one codec only
        devs["hq-codec-1"].state.config[BT]["value"] = "True"
        off_reads = reads_of(devs["hq-codec-off"])
        job = server.post("/api/v1/config/drift")["job"]
        detail = wait_for(lambda: finished(server, job), what=f"drift job {job}")
        assert (detail["action"], detail["user"], detail["devices"]) == ("config-drift", "token:admin", 4)
        drift = server.get("/api/v1/config/drift")
        assert drift["job"] == job and drift["finished"] is not None
        assert [(i["device"], i["key"], i["current"], i["desired"]) for i in drift["items"]] == \
            [("hq-codec-1", BT, "True", "False")]
        assert drift["items"][0]["where"].startswith(f"{inv}:")
        assert drift["counts"] == {BT: 1}
        assert (drift["checked"], drift["drifted"], drift["failed"]) == (4, 1, 0)
        assert reads_of(devs["hq-codec-off"]) == off_reads  # a disabled device is never read
        assert server.get("/api/v1/config/drift", device="br-codec-1")["items"] == []
        # "check now" is in the audit log with who asked
        audit = server.get("/api/v1/audit", action="config.drift")["items"]
        assert [(a["user"], a["params"]) for a in audit] == [("token:admin", {"job": job})]

        # a viewer of site br: its codec only, and no "check now"
        viewer = user_session(server, home, db, "br-viewer", "viewer", "br")
        seen = viewer.get(server.base + "/api/v1/config/drift", timeout=30).json()
        assert (seen["items"], seen["checked"], seen["counts"]) == ([], 1, {})
        assert "hq-" not in json.dumps(seen)
        assert viewer.post(server.base + "/api/v1/config/drift", timeout=30).status_code == 403
        assert viewer.get(server.base + "/api/v1/config/drift?device=hq-codec-1", timeout=30).status_code == 404
        helpdesk = user_session(server, home, db, "desk", "helpdesk", None)
        assert helpdesk.post(server.base + "/api/v1/config/drift", timeout=30).status_code == 403
        operator = user_session(server, home, db, "op", "operator", "br")
        devs["hq-pod-1"].faults.paused = True  # the check cannot end before the test lets it
        try:
            started = operator.post(server.base + "/api/v1/config/drift", timeout=30)
            assert started.status_code == 202, started.text
            again = operator.post(server.base + "/api/v1/config/drift", timeout=30)  # one check at a time
            assert again.status_code == 409 and f"drift check {started.json()['job']}" in again.json()["error"]
        finally:
            devs["hq-pod-1"].faults.paused = False
        wait_for(lambda: finished(server, started.json()["job"]), what="the operator's check")

        # snapshots: as stored, never a secret; out of scope = missing
        snaps = server.get("/api/v1/devices/hq-codec-1/config/snapshots")["items"]
        assert snaps and snaps[0]["device"] == "hq-codec-1"
        one = server.get(f"/api/v1/devices/hq-codec-1/config/snapshots/{snaps[0]['id']}")
        assert one["values"][BT] == "False"  # the backup's value: before the change behind our back
        assert "device.local.adminpassword" in one["secrets"]
        assert VIDEOOS_ADMIN not in json.dumps(one)
        other = server.get("/api/v1/devices/br-codec-1/config/snapshots")["items"][0]["id"]
        missing = server.session.get(f"{server.base}/api/v1/devices/hq-codec-1/config/snapshots/{other}", timeout=30)
        assert missing.status_code == 404  # another device's snapshot is not this one's
        url = f"{server.base}/api/v1/devices/hq-codec-1/config/snapshots"
        assert viewer.get(url, timeout=30).status_code == 404
        assert viewer.get(f"{server.base}/api/v1/devices/no-such/config/snapshots", timeout=30).status_code == 404
        assert viewer.get(f"{server.base}/api/v1/devices/br-codec-1/config/snapshots", timeout=30).json()["items"]

        # invalid desired state: refused with file:line, no job, shown in the report
        write_inventory(tmp_path / "fleet.yaml", devs, BROKEN)
        jobs_before = len(server.get("/api/v1/jobs", limit=500)["items"])

        def refused() -> dict[str, Any] | None:
            r = server.session.post(server.base + "/api/v1/config/drift", json={}, timeout=30)
            return r.json() if r.status_code == 400 else None

        problem = wait_for(refused, what="the broken inventory read and refused")
        assert f"{inv}:5" in problem["error"] and "bt.enabledd" in problem["error"], problem
        reported = server.get("/api/v1/config/drift")
        assert f"{inv}:5" in reported["error"]
        assert reported["job"] is not None  # the last good report stays
        # while the broken inventory was being read, earlier posts may have started checks; none after
        assert len(server.get("/api/v1/jobs", limit=500)["items"]) >= jobs_before
        after = len(server.get("/api/v1/jobs", limit=500)["items"])
        assert server.session.post(server.base + "/api/v1/config/drift", json={}, timeout=30).status_code == 400
        assert len(server.get("/api/v1/jobs", limit=500)["items"]) == after
        assert VIDEOOS_ADMIN not in server.log_text()
    finally:
        server.stop()


def test_scheduled_drift_check(emulators: EmulatorThread, tmp_path: Path) -> None:
    home, db = tmp_path / "home", str(tmp_path / "server.db")
    devs = fleet(emulators)
    inv = str(write_inventory(tmp_path / "fleet.yaml", devs))
    cli(home, "config", "apply", "-i", inv, "--yes", "--store", db)
    devs["br-codec-1"].state.config[BT]["value"] = "True"
    token = add_admin(home, db)
    config = tmp_path / "server.yaml"
    config.write_text("config_drift: {every: 1s}\n")
    hook = WebhookReceiver().start()
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"channels:\n  hook: {{type: webhook, url: '{hook.url}'}}\n"
                     "rules:\n  - {name: drifted, when: config_drift > 0, severity: warning, notify: [hook]}\n")
    server = ServerProcess(home, ["-i", inv, "--db", db, "--config", str(config), "--interval", "60s",
                                 "--min-interval", "solstice=60s", "--rules", str(rules)])
    try:
        server.start()
        server.use_token(token)
        assert "config_drift" not in server.log_text()  # a reading the rules know: no warning

        def drifted() -> list[tuple[str, str]] | None:
            d = server.get("/api/v1/config/drift")
            return [(i["device"], i["key"]) for i in d["items"]] if d["job"] else None

        assert wait_for(drifted, what="a scheduled drift check") == [("br-codec-1", BT)]
        first = server.get("/api/v1/config/drift")["job"]
        assert server.get(f"/api/v1/jobs/{first}")["user"] == "server"
        # the drifted keys are the device's config_drift reading: the rule opens, the webhook hears it
        wait_for(lambda: hook_events(hook, "br-codec-1") == ["opened"], what="the drift alert's webhook")
        assert all(hook_events(hook, d) == [] for d in devs if d != "br-codec-1")
        assert server.get("/api/v1/devices/br-codec-1")["readings"]["config_drift"] == 1
        assert server.get("/api/v1/devices/hq-codec-1")["readings"]["config_drift"] == 0
        assert "config_drift" not in server.get("/api/v1/devices/hq-codec-off")["readings"]
        metrics = server.session.get(server.base + "/metrics", timeout=30).text
        assert any(line.startswith("avctl_reading{") and 'device="br-codec-1"' in line
                   and 'reading="config_drift"' in line and line.endswith(" 1.0") for line in metrics.splitlines())
        cli(home, "config", "apply", "-i", inv, "--yes", "--store", db)
        assert devs["br-codec-1"].state.config[BT]["value"] == "False"
        # a later check (one that started after the apply) shows nothing drifted
        applied = max(j["id"] for j in server.get("/api/v1/jobs", limit=50)["items"] if j["action"] == "config-apply")
        wait_for(lambda: (d := server.get("/api/v1/config/drift"))["job"] > applied and d["items"] == [],
                 what="a scheduled check after the apply")
        wait_for(lambda: hook_events(hook, "br-codec-1") == ["opened", "resolved"], what="the drift alert resolved")
        assert server.get("/api/v1/devices/br-codec-1")["readings"]["config_drift"] == 0
    finally:
        server.stop()
        hook.stop()
