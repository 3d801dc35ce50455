"""Restarts of `avctl serve` (issue 10, Must show): kill -9 during a fleet job and during polling with an
open alert, SIGTERM during a job. Nothing recorded is lost or doubled, the job resumes, polling goes on.

The kill lands mid-job by construction, not by timing: the last devices of the job answer after a
latency far longer than the test (an emulator switch), so the job's login to them is held while the
other devices' outcomes are recorded. A held device has not received the job's action when the
server dies, so the action must reach it exactly once, on resume. (A device whose *action* was in
flight at the kill is another case: see test_kill9_with_an_action_in_flight.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avctl.emulator.core import EmulatedDevice, EmulatorThread, emulator_class

from .harness import (
    ServerProcess,
    WebhookReceiver,
    add_admin,
    db_rows,
    sse_events,
    wait_for,
    write_inventory,
)

PASSWORD = "restart-fleet-pw-8Vb2"
ACTION = "/rest/audio/volume"
#: a held device's latency: longer than any test runs (the emulators cancel what is pending when they stop)
HOLD = 600.0


def logins(dev: EmulatedDevice) -> int:
    return sum(1 for r in dev.requests if r.method == "POST" and r.path == "/rest/session")


def volume_sets(dev: EmulatedDevice) -> int:
    """How many times the job's action reached the device."""
    return sum(1 for r in dev.requests if r.method == "POST" and r.path == ACTION)


def journal(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row a restart must keep as it was: outcomes, audit, alerts and their outbox."""
    return {
        "outcomes": db_rows(url, "SELECT job_id, device, status, attempts, finished FROM outcomes"
                                 " ORDER BY job_id, device"),
        "audit": db_rows(url, "SELECT id, device, action, job_id, outcome, params FROM audit ORDER BY id"),
        "alerts": db_rows(url, "SELECT id, rule, device, state, opened FROM alerts ORDER BY id"),
        "notifications": db_rows(url, "SELECT id, alert_id, event, channel FROM notifications ORDER BY id"),
    }


def job_detail(server: ServerProcess, job: int) -> dict[str, Any]:
    return server.get(f"/api/v1/jobs/{job}")  # type: ignore[no-any-return]


def follow(server: ServerProcess, events: str) -> list[tuple[str, Any]]:
    with server.session.get(server.base + events, stream=True, timeout=120) as stream:
        return list(sse_events(stream))


def fleet(emulators: EmulatorThread, tmp_path: Path, devices: list[EmulatedDevice]) -> Path:
    (tmp_path / "fleet.password").write_text(PASSWORD + "\n")
    return write_inventory(tmp_path / "fleet.yaml", devices)


def test_kill9_during_a_job_then_resume_and_sigterm(emulators: EmulatorThread, tmp_path: Path,
                                                    any_db_url: str) -> None:
    home = tmp_path / "home"
    codecs = [emulators.add(emulator_class("videoos")(f"codec-{i:02}", password=PASSWORD)) for i in range(1, 13)]
    inventory = fleet(emulators, tmp_path, codecs)
    token = add_admin(home, any_db_url)
    # a long interval: after the first polls, what reaches the codecs during the test is the job's
    args = ["-i", str(inventory), "--db", any_db_url, "--interval", "60s"]
    server = ServerProcess(home, args).start().use_token(token)
    try:
        wait_for(lambda: server.get("/api/v1/devices", state="online")["total"] == 12, within=60,
                 what="every codec polled")
        held = codecs[8:]
        for dev in held:
            dev.faults.latency = HOLD
        before_job = {dev.name: logins(dev) for dev in held}
        started = server.post("/api/v1/jobs", {"action": "audio_volume_set", "params": {"volume": 41},
                                               "select": "name=codec-*", "options": {"concurrency": 4}})
        job = started["job"]
        # eight outcomes recorded, the last four devices each held at the job's login
        wait_for(lambda: len(job_detail(server, job)["outcomes"]) == 8
                 and all(logins(d) > before_job[d.name] for d in held), within=90, what="the job half done")
        assert all(volume_sets(d) == 0 for d in held)
        rows = journal(any_db_url)
        assert [(r[1], r[2]) for r in rows["outcomes"]] == [(d.name, "ok") for d in codecs[:8]]
        job_audit = [r for r in rows["audit"] if r[3] == job]
        assert sorted(r[1] for r in job_audit) == [d.name for d in codecs[:8]]

        server.kill9()
        for dev in held:
            dev.faults.latency = 0.0  # the held logins are answered to nobody
        server = ServerProcess(home, args).start().use_token(token)

        # nothing lost, nothing doubled; the job is interrupted
        assert journal(any_db_url) == rows
        detail = job_detail(server, job)
        assert detail["state"] == "interrupted"
        # resumed through the API: the four devices without an outcome, once each
        resumed = server.post(f"/api/v1/jobs/{job}/resume")
        assert resumed["job"] == job
        events = follow(server, resumed["events"])
        assert events[-1][0] == "done" and events[-1][1]["state"] == "finished"
        after = journal(any_db_url)
        outcomes = [(r[1], r[2]) for r in after["outcomes"] if r[0] == job]
        assert outcomes == [(d.name, "ok") for d in codecs]
        assert after["outcomes"][:8] == rows["outcomes"]  # the first eight untouched
        assert {d.name: volume_sets(d) for d in codecs} == {d.name: 1 for d in codecs}
        job_audit = [r for r in after["audit"] if r[3] == job]
        assert sorted(r[1] for r in job_audit) == [d.name for d in codecs]
        assert {r[2] for r in job_audit} == {"audio_volume_set"}

        # -- SIGTERM during a job: exit 0, the job interrupted and resumable
        for dev in held:
            dev.faults.latency = HOLD
        before_job = {dev.name: logins(dev) for dev in held}
        second = server.post("/api/v1/jobs", {"action": "audio_volume_set", "params": {"volume": 42},
                                              "select": "name=codec-*", "options": {"concurrency": 4}})["job"]
        wait_for(lambda: len(job_detail(server, second)["outcomes"]) == 8
                 and all(logins(d) > before_job[d.name] for d in held), within=90, what="the second job half done")
        assert server.stop() == 0, server.log_text()[-3000:]
        for dev in held:
            dev.faults.latency = 0.0
        server = ServerProcess(home, args).start().use_token(token)
        detail = job_detail(server, second)
        assert detail["state"] == "interrupted"
        assert len([o for o in detail["outcomes"] if o["status"] == "ok"]) == 8
        events = follow(server, server.post(f"/api/v1/jobs/{second}/resume")["events"])
        assert events[-1][0] == "done" and events[-1][1]["counts"]["ok"] == 12
        assert {d.name: volume_sets(d) for d in codecs} == {d.name: 2 for d in codecs}
        second_audit = [r for r in journal(any_db_url)["audit"] if r[3] == second]
        assert sorted(r[1] for r in second_audit) == [d.name for d in codecs]
    finally:
        server.stop()


def test_kill9_during_polling_with_an_open_alert(emulators: EmulatorThread, tmp_path: Path, any_db_url: str) -> None:
    home = tmp_path / "home"
    devs = [emulators.add(emulator_class(f)(n, password=PASSWORD))
            for f, n in (("videoos", "codec-1"), ("polyuc", "phone-1"), ("solstice", "pod-1"))]
    codec, phone, _pod = devs
    inventory = fleet(emulators, tmp_path, devs)
    token = add_admin(home, any_db_url)
    hook = WebhookReceiver().start()
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"channels:\n  hook: {{type: webhook, url: '{hook.url}'}}\n"
                     "rules:\n  - {name: device-offline, when: offline for 2s, notify: [hook]}\n")
    args = ["-i", str(inventory), "--db", any_db_url, "--interval", "2s", "--min-interval", "solstice=2s",
            "--backoff", "2s", "--rules", str(rules)]
    server = ServerProcess(home, args).start().use_token(token)
    try:
        wait_for(lambda: server.get("/api/v1/devices", state="online")["total"] == 3, within=60, what="polled")
        phone.faults.down = True
        wait_for(lambda: [b["event"] for b in hook.bodies()] == ["opened"], within=60, what="the alert sent")
        wait_for(lambda: db_rows(any_db_url, "SELECT state FROM notifications") == [("sent",)], within=30,
                 what="its outbox row recorded as sent")
        rows = journal(any_db_url)
        assert [(r[1], r[2], r[3]) for r in rows["alerts"]] == [("device-offline", "phone-1", "open")]

        server.kill9()
        server = ServerProcess(home, args).start().use_token(token)
        # polling resumes: the codec is polled again and the down phone tried again (then evaluated)
        codec_mark, phone_mark = codec.requests.total, phone.requests.total
        wait_for(lambda: codec.requests.total >= codec_mark + 2 * 7 and phone.requests.total > phone_mark,
                 within=60, what="polls after the restart")
        wait_for(lambda: db_rows(any_db_url, "SELECT count(*) FROM device_state WHERE last_poll IS NOT NULL")
                 == [(3,)], within=30, what="state rows")
        open_alerts = server.get("/api/v1/alerts", state="open")["items"]
        assert [(a["id"], a["device"]) for a in open_alerts] == [(rows["alerts"][0][0], "phone-1")]
        assert journal(any_db_url) == rows
        assert [b["event"] for b in hook.bodies()] == ["opened"]  # not sent twice

        phone.faults.down = False
        wait_for(lambda: [b["event"] for b in hook.bodies()] == ["opened", "resolved"], within=60,
                 what="the alert resolved")
        assert server.get("/api/v1/alerts", state="open")["total"] == 0
        assert len(db_rows(any_db_url, "SELECT id FROM alerts")) == 1
    finally:
        server.stop()
        hook.stop()


def test_kill9_with_an_action_in_flight(emulators: EmulatorThread, tmp_path: Path) -> None:
    """An action on the wire when the server dies may have reached the device: a resume leaves that
    device in doubt (listed, not sent again) until someone asks for it with retry_in_doubt."""
    home = tmp_path / "home"
    url = f"sqlite:///{tmp_path / 'server.db'}"
    codecs = [emulators.add(emulator_class("videoos")(f"codec-{i}", password=PASSWORD)) for i in range(1, 4)]
    args = ["-i", str(fleet(emulators, tmp_path, codecs)), "--db", url, "--interval", "60s"]
    token = add_admin(home, url)
    server = ServerProcess(home, args).start().use_token(token)
    try:
        wait_for(lambda: server.get("/api/v1/devices", state="online")["total"] == 3, within=60, what="polled")
        held = codecs[-1]
        held.faults.paused = True  # the VideoOS login is answered; the action is received and held
        job = server.post("/api/v1/jobs", {"action": "audio_volume_set", "params": {"volume": 43},
                                           "select": "name=codec-*"})["job"]
        wait_for(lambda: len(job_detail(server, job)["outcomes"]) == 2 and volume_sets(held) == 1, within=60,
                 what="the action in flight on the held codec")
        server.kill9()
        held.faults.paused = False  # the device acts on it (a real one would too)
        server = ServerProcess(home, args).start().use_token(token)
        events = follow(server, server.post(f"/api/v1/jobs/{job}/resume")["events"])
        assert events[-1][0] == "done"
        assert volume_sets(held) == 1  # not sent again
        detail = job_detail(server, job)
        assert detail["state"] == "interrupted" and detail["pending"] == detail["in_doubt"] == [held.name]
        # the user checked the device and decides: run it again
        events = follow(server, server.post(f"/api/v1/jobs/{job}/resume", {"retry_in_doubt": True})["events"])
        assert events[-1][1]["state"] == "finished" and volume_sets(held) == 2
        assert job_detail(server, job)["in_doubt"] == []
    finally:
        server.stop()
