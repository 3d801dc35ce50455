"""`avctl serve` as a real process against emulated devices of all three families (issue 10, Must show).

The emulators run in this process (their fault switches are flipped here); the server, the webhook
receiver and the SMTP server are real servers on 127.0.0.1. Every wait is for a condition with a
generous deadline; the one timing bound (state within two poll intervals) is measured from the
moment the server answers /healthz.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import requests

from avctl.emulator.core import EmulatedDevice, EmulatorThread, emulator_class

from .harness import (
    ServerProcess,
    SmtpServer,
    WebhookReceiver,
    add_admin,
    free_port,
    run_cli,
    sse_events,
    wait_for,
    write_inventory,
)

PASSWORD = "e2e-fleet-pw-4Kd9"
INTERVAL = 2.0
#: state must show within two intervals of readiness. The first polls start at the engine's start,
#: before the API listens, spread over 10% of an interval, so two intervals already hold one whole
#: interval to spare; the tolerance covers what lies between a poll and the API showing it: the state
#: writer's batch (every 0.5 s) and this test's look every 0.1 s, with 0.4 s for a loaded machine.
TOLERANCE = 1.0


def logins(dev: EmulatedDevice) -> int:
    """VideoOS logins the device received (accepted or refused)."""
    return sum(1 for r in dev.requests if r.method == "POST" and r.path == "/rest/session")


def rules_file(path: Path, hook: WebhookReceiver, smtp: SmtpServer) -> Path:
    path.write_text(f"""\
channels:
  hook: {{type: webhook, url: '{hook.url}'}}
  mail: {{type: email, host: 127.0.0.1, port: {smtp.port}, from: avctl@example.org, to: [av@example.org]}}
rules:
  - name: device-offline
    when: offline for 2s
    severity: critical
    notify: [hook, mail]
""")
    return path


def states(server: ServerProcess) -> dict[str, str]:
    return {d["name"]: d["state"] for d in server.get("/api/v1/devices", limit=100)["items"]}


def hook_events(hook: WebhookReceiver, device: str) -> list[str]:
    return [b["event"] for b in hook.bodies() if b["alert"]["device"] == device]


def polls_of(dev: EmulatedDevice) -> int:
    """Requests the device received: grows with every poll."""
    return dev.requests.total


def test_serve_end_to_end(emulators: EmulatorThread, tmp_path: Path, any_db_url: str) -> None:
    home = tmp_path / "home"
    cls = emulator_class
    devs = {d.name: d for d in (
        emulators.add(cls("videoos")("codec-1", password=PASSWORD)),
        emulators.add(cls("videoos")("codec-2", password=PASSWORD)),
        emulators.add(cls("polyuc")("phone-1", password=PASSWORD)),
        emulators.add(cls("solstice")("pod-1", password=PASSWORD)),
        # wrong passwords in the inventory: one fixed by editing the inventory, one by fixing the
        # secret behind its reference and SIGHUP (the inventory file unchanged)
        emulators.add(cls("videoos")("bad-codec-1", password=PASSWORD)),
        emulators.add(cls("videoos")("bad-codec-2", password=PASSWORD)),
    )}
    for dev in devs.values():
        dev.lockout.after = 0  # count the server's logins, not the emulator's lockout
    (tmp_path / "fleet.password").write_text(PASSWORD + "\n")
    (tmp_path / "wrong.password").write_text("not-the-password\n")
    (tmp_path / "wrong2.password").write_text("not-the-password-either\n")
    inventory = tmp_path / "fleet.yaml"
    wrong = {"bad-codec-1": "file:wrong.password", "bad-codec-2": "file:wrong2.password"}
    write_inventory(inventory, list(devs.values()), passwords=wrong)
    token = add_admin(home, any_db_url)

    hook, smtp = WebhookReceiver().start(), SmtpServer().start()
    server = ServerProcess(home, ["-i", str(inventory), "--db", any_db_url, "--interval", "2s",
                                  "--min-interval", "solstice=2s", "--backoff", "2s",
                                  "--rules", str(rules_file(tmp_path / "rules.yaml", hook, smtp))])
    try:
        server.start()
        ready = time.monotonic()
        server.use_token(token)

        # -- state for every device within two poll intervals of readiness
        expected = {**dict.fromkeys(devs, "online"), "bad-codec-1": "auth_failed", "bad-codec-2": "auth_failed"}
        wait_for(lambda: states(server) == expected, within=60, every=0.1, what=f"states {expected}")
        took = time.monotonic() - ready
        assert took <= 2 * INTERVAL + TOLERANCE, f"state took {took:.2f} s after readiness"

        # -- /metrics (authenticated) has every device's avctl_device_up
        metrics = server.session.get(server.base + "/metrics", timeout=30)
        assert metrics.status_code == 200
        for name in devs:
            assert f'avctl_device_up{{device="{name}"' in metrics.text, name
        assert requests.get(server.base + "/metrics", verify=str(server.certfile), timeout=30).status_code == 401

        # -- a session expiring mid-poll costs exactly one re-login
        codec = devs["codec-2"]
        assert logins(codec) == 1
        # expires just before the 3rd request of the next poll (a VideoOS poll makes 7)
        codec.faults.expire_at_request = codec.requests.total + 3
        mark = polls_of(codec)
        wait_for(lambda: polls_of(codec) >= mark + 3 * 7, within=60, what="three more polls of codec-2")
        assert logins(codec) == 2
        assert states(server)["codec-2"] == "online"

        # -- a device taken down: offline, an alert that reaches the webhook and the mail server
        phone = devs["phone-1"]
        phone.faults.down = True
        wait_for(lambda: states(server)["phone-1"] == "offline", within=60, what="phone-1 offline")
        wait_for(lambda: "opened" in hook_events(hook, "phone-1"), within=60, what="the opened webhook")
        wait_for(lambda: any("device-offline on phone-1" in m[2] for m in smtp.messages), within=60,
                 what="the opened e-mail")
        opened = server.get("/api/v1/alerts", state="open")["items"]
        assert [(a["rule"], a["device"]) for a in opened] == [("device-offline", "phone-1")]
        phone.faults.down = False
        wait_for(lambda: states(server)["phone-1"] == "online", within=60, what="phone-1 online again")
        wait_for(lambda: hook_events(hook, "phone-1") == ["opened", "resolved"], within=60,
                 what="the resolved webhook")
        wait_for(lambda: any("[RESOLVED]" in m[2] and "phone-1" in m[2] for m in smtp.messages), within=60,
                 what="the resolved e-mail")
        assert server.get("/api/v1/alerts", state="open")["total"] == 0
        assert len(smtp.messages) == 2
        assert smtp.messages[0][1] == ["av@example.org"]

        # -- the wrong passwords: exactly one refused login each, over many intervals
        assert logins(devs["bad-codec-1"]) == 1
        assert logins(devs["bad-codec-2"]) == 1
        assert states(server)["bad-codec-1"] == "auth_failed"
        assert states(server)["bad-codec-2"] == "auth_failed"

        # the inventory fixed (the reference changed): reloaded on the file change, polled again
        write_inventory(inventory, list(devs.values()), passwords={"bad-codec-2": wrong["bad-codec-2"]})
        wait_for(lambda: states(server)["bad-codec-1"] == "online", within=60, what="bad-codec-1 polled again")
        assert logins(devs["bad-codec-1"]) == 2
        # the other one's entry and secret did not change: not tried again
        assert logins(devs["bad-codec-2"]) == 1

        # the secret behind bad-codec-2's reference fixed: the file is unchanged, so only SIGHUP reads it
        (tmp_path / "wrong2.password").write_text(PASSWORD + "\n")
        mark = polls_of(devs["codec-1"])
        wait_for(lambda: polls_of(devs["codec-1"]) >= mark + 2 * 7, within=60, what="two more polls")
        assert logins(devs["bad-codec-2"]) == 1
        # SIGHUP also reads the rules file again
        rules = tmp_path / "rules.yaml"
        rules.write_text(rules.read_text() + "  - {name: cert-expired, when: cert_days_left < 1}\n")
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGHUP)
        wait_for(lambda: states(server)["bad-codec-2"] == "online", within=60, what="bad-codec-2 after SIGHUP")
        assert logins(devs["bad-codec-2"]) == 2
        wait_for(lambda: len(server.get("/api/v1/rules")["items"]) == 2, within=30, what="the rules reloaded")
        # a rules file with a mistake keeps the rules in force and says why
        rules.write_text(rules.read_text() + "  - {name: broken, when: offline for 2 fortnights}\n")
        os.kill(server.proc.pid, signal.SIGHUP)
        wait_for(lambda: "rules not reloaded" in server.log_text(), within=30, what="the rules error logged")
        assert [r["name"] for r in server.get("/api/v1/rules")["items"]] == ["device-offline", "cert-expired"]

        # -- a fleet job through the API: runs, its event stream ends with done
        started = server.post("/api/v1/jobs", {"action": "audio_volume_set", "params": {"volume": 33},
                                               "select": "name=codec-*"})
        job = started["job"]
        with server.session.get(server.base + started["events"], stream=True, timeout=60) as stream:
            events = list(sse_events(stream))
        assert [e for e, _ in events][-1] == "done"
        assert sorted(d["outcome"]["device"] for e, d in events if e == "outcome") == ["codec-1", "codec-2"]
        assert events[-1][1]["state"] == "finished"
        assert events[-1][1]["counts"]["ok"] == 2
        for name in ("codec-1", "codec-2"):
            sets = [r for r in devs[name].requests if r.method == "POST" and r.path == "/rest/audio/volume"]
            assert len(sets) == 1, name

        # -- the CLI sees the server's job in the same database
        listed = run_cli(home, "jobs", "list", "--store", any_db_url)
        assert listed.returncode == 0, listed.stderr
        assert any(line.split()[:1] == [str(job)] for line in listed.stdout.splitlines()), listed.stdout
        assert "audio_volume_set" in listed.stdout

        # SIGTERM with our kept-alive connections still open (one served an event stream): it ends
        # cleanly, within the graceful-shutdown wait
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0, server.log_text()[-3000:]
    finally:
        server.stop()
        hook.stop()
        smtp.stop()
    log = server.log_text()
    assert PASSWORD not in log and "not-the-password" not in log
    assert token not in log


def test_serve_database_that_cannot_be_opened(tmp_path: Path) -> None:
    """One clear line, the password hidden, and nothing started."""
    home = tmp_path / "home"
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text("devices: {}\n")
    url = f"postgresql://avctl:hunter2-pw@127.0.0.1:{free_port()}/avctl"
    done = run_cli(home, "serve", "-i", str(inventory), "--db", url, "--listen", f"127.0.0.1:{free_port()}")
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("avctl: error: cannot open postgresql://avctl:***@127.0.0.1:"), done.stderr
    assert "Traceback" not in done.stderr and "hunter2-pw" not in done.stderr
