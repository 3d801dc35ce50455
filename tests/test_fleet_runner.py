"""The fleet runner against emulated VideoOS fleets over real HTTPS on loopback, with faults injected.

Every test checks the runner's promises: one definite outcome per device, at most one failed login
per device per job, retries only for transient failures, summary counts that add up, outcomes in
the job store as they complete, state-changing calls in the audit log.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from avctl.emulator.core import EmulatorThread
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.errors import ValidationError
from avctl.fleet.audit import AuditLog
from avctl.fleet.credentials import CredentialResolver
from avctl.fleet.inventory import Inventory, parse_inventory
from avctl.fleet.jobs import create_job, execute, spec_provider
from avctl.fleet.results import Outcome, summarize
from avctl.fleet.runner import FleetRunner, RunOptions
from avctl.fleet.store import SqliteJobStore
from avctl.fleet.verbs import ActionTask, MacroTask, StatusTask
from avctl.spec import load_spec
from avctl.transport.tls import KnownHosts, TLSPolicy

from .conftest import DATA

SPEC_PATH = DATA / "videoos_min.md"
SPEC = load_spec(SPEC_PATH)
PASSWORD = "fleet-pw-Zq81x"


def lite_spec(tmp_path: Path) -> Path:
    """A second spec of the same family without Feedbacks, Macros or volume actions."""
    text = SPEC_PATH.read_text()
    text = text.split("## Feedbacks")[0].replace("avctl/test-videoos-min", "avctl/test-videoos-lite")
    text = text.replace("- id: audio_volume_set", "- id: audio_level_set")
    path = tmp_path / "videoos_lite.md"
    path.write_text(text)
    return path


def spawn(emulators: EmulatorThread, n: int, *, prefix: str = "room", password: str = PASSWORD,
          **kwargs: Any) -> list[EmulatedVideoOS]:
    return [emulators.add(EmulatedVideoOS(f"{prefix}-{i}", spec=SPEC, password=password, seed=1000 + i, **kwargs))
            for i in range(n)]


def inventory_for(devs: list[EmulatedVideoOS], extra: str = "", site_of: Any = None) -> Inventory:
    lines = ["defaults: {family: videoos, password: env:FLEET_PW}", "devices:"]
    for d in devs:
        site = f", site: {site_of(d)}" if site_of else ""
        lines.append(f"  {d.name}: {{address: '127.0.0.1:{d.port}'{site}}}")
    return parse_inventory("\n".join(lines) + "\n" + extra)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def logins(dev: EmulatedVideoOS) -> int:
    return sum(1 for r in dev.requests if r.method == "POST" and r.path == "/rest/session")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_PW", PASSWORD)


async def no_sleep(_seconds: float) -> None:
    """Injected backoff: faults are counted, so a test never waits out (or races) a real delay."""


def runner(tmp_path: Path, *, store: SqliteJobStore | None = None, audit: AuditLog | None = None,
           specs: dict[str, str] | None = None, sleep: Any = None, **opts: Any) -> FleetRunner:
    return FleetRunner(store=store, audit=audit, specs=spec_provider(specs or {"videoos": str(SPEC_PATH)}),
                       tls=TLSPolicy.pinned(KnownHosts(tmp_path / "known_devices")),
                       resolver=CredentialResolver(base_dir=tmp_path), options=RunOptions(**opts),
                       **({"sleep": sleep} if sleep else {}))


def check_one_outcome_each(inv: Inventory, outcomes: list[Outcome]) -> dict[str, Outcome]:
    names = [o.device for o in outcomes]
    assert sorted(names) == sorted(d.name for d in inv.devices)
    assert len(set(names)) == len(names)
    counts = summarize(outcomes)
    assert counts["ok"] + counts["failed"] + counts["unreachable"] + counts["skipped"] == counts["total"] == len(inv)
    return {o.device: o for o in outcomes}


async def test_status_sweep_all_ok(emulators: EmulatorThread, tmp_path: Path, env: None) -> None:
    devs = spawn(emulators, 12)
    inv = inventory_for(devs)
    store = SqliteJobStore(tmp_path / "avctl.db")
    r = runner(tmp_path, store=store)
    task = StatusTask()
    job = create_job(store, task, selection="all", devices=list(inv), inventory=inv, options=r.options)
    report = await execute(store, job, r, task, list(inv))
    by = check_one_outcome_each(inv, report.outcomes)
    for d in devs:
        o = by[d.name]
        assert o.status == "ok", o
        assert o.data == {"reachable": True, "model": "StudioX50", "volume": 50}
        assert logins(d) == 1  # one session per device for the whole job
        assert d.sessions == {}  # and logged out at the end
    assert store.get_job(job.id).state == "finished"
    assert [o.device for o in store.outcomes(job.id)] == [d.name for d in devs]


async def test_fault_injection_every_device_one_definite_outcome(emulators: EmulatorThread, tmp_path: Path,
                                                                 env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    devs = spawn(emulators, 12)
    ok_slow = devs[0:3]
    for d in ok_slow:
        d.faults.latency = 0.05
    always_500, always_reset = devs[3], devs[4]
    always_500.faults.error_rate = 1.0
    always_reset.faults.drop_rate = 1.0
    wrong_pw = devs[5:7]
    for d in wrong_pw:
        d.password = "something-else"
    expiring, rebooting, flaky = devs[7], devs[8], devs[9]
    # every fault is counted, none timed, so the outcome is the same however loaded the machine is
    expiring.faults.expire_at_request = 2  # the session expires right after the login
    rebooting.faults.drop_next = 2  # down for its first two requests (a reboot), then back
    flaky.faults.fail_next = 2
    locked = devs[10]
    locked.password = "another-one"
    locked.lockout_after = 1  # the first failure locks the account: a second try would be a disaster
    lite, nocreds = spawn(emulators, 2, prefix="extra")  # one address listed twice is refused
    extra = (
        f"  gone: {{address: '127.0.0.1:{closed_port()}'}}\n"
        f"  benched: {{address: '127.0.0.1:{devs[11].port}', disabled: true}}\n"
        f"  lite: {{address: '127.0.0.1:{lite.port}', family: videoos_lite}}\n"
        f"  nocreds: {{address: '127.0.0.1:{nocreds.port}', password: env:NOT_SET_ANYWHERE}}\n"
    )
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    inv = inventory_for(devs[:11], extra)
    store = SqliteJobStore(tmp_path / "avctl.db")
    r = runner(tmp_path, store=store, specs={"videoos": str(SPEC_PATH), "videoos_lite": str(lite_spec(tmp_path))},
               retries=4, backoff=0.3, timeout=5, sleep=no_sleep)
    task = StatusTask()
    job = create_job(store, task, selection="all", devices=list(inv), inventory=inv, options=r.options)
    report = await execute(store, job, r, task, list(inv))
    by = check_one_outcome_each(inv, report.outcomes)

    for d in ok_slow:
        assert by[d.name].status == "ok"
    assert by[always_500.name].status == "failed" and by[always_500.name].reason == "device"
    assert by[always_500.name].attempts == 5  # 1 + 4 retries of a transient 5xx
    # the outcome counts what the device received (five failed logins, nothing else)
    assert by[always_500.name].requests == len(always_500.requests) == 5
    assert by[always_reset.name].status == "unreachable"
    assert by[always_reset.name].reason == "connection_dropped"
    for d in [*wrong_pw, locked]:
        assert by[d.name].status == "failed" and by[d.name].reason in ("auth", "locked_out")
        assert d.login_attempts == 1  # never retried
    assert by[expiring.name].status == "ok" and logins(expiring) == 2  # re-login once after expiry
    assert by[rebooting.name].status == "ok" and by[rebooting.name].attempts == 3
    assert by[flaky.name].status == "ok" and by[flaky.name].attempts == 3
    assert by["gone"].status == "unreachable" and by["gone"].reason == "unreachable"
    assert by["benched"].status == "skipped" and by["benched"].reason == "excluded"
    assert by["lite"].status == "skipped" and by["lite"].reason == "no_such_action"
    assert by["nocreds"].status == "failed" and by["nocreds"].reason == "credentials"
    # no device saw more than one failed login in this job
    for d in devs:
        bad = [q for q in d.requests if q.method == "POST" and q.path == "/rest/session"
               and json.loads(q.body).get("password") != d.password]
        assert len(bad) <= 1
    counts = report.counts
    assert counts == {"ok": 6, "failed": 5, "unreachable": 2, "skipped": 2, "total": 15}
    assert store.counts(job.id) == {k: v for k, v in counts.items() if k != "total"}


async def test_reboot_verb_wait_audit_and_no_retry_of_disruptive_reset(emulators: EmulatorThread,
                                                                       tmp_path: Path, env: None) -> None:
    devs = spawn(emulators, 4)
    for d in devs:
        d.faults.reboot_seconds = 0.8
    resets = devs[3]
    resets.faults.drop_rate = 1.0
    inv = inventory_for(devs)
    db = tmp_path / "avctl.db"
    store, audit = SqliteJobStore(db), AuditLog(db)
    r = runner(tmp_path, store=store, audit=audit, wait=True, wait_grace=3.0, poll_interval=0.2,
               wait_timeout=20, retries=3, backoff=0.1)
    task = MacroTask("reboot", {})
    assert r.plan(task, list(inv)) == {"videoos": {"run": 4, "skip": 0, "disruptive": 1}}
    job = create_job(store, task, selection="all", devices=list(inv), inventory=inv, options=r.options)
    report = await execute(store, job, r, task, list(inv))
    by = check_one_outcome_each(inv, report.outcomes)
    for d in devs[:3]:
        assert by[d.name].status == "ok"
        assert 0.5 <= by[d.name].data["back_after"] < 10
        assert d.state.reboots == 1
    # a reset may mean the reboot happened: it is reported, not sent again
    assert by[resets.name].status == "unreachable"
    assert sum(1 for q in resets.requests if q.path == "/rest/system/reboot") <= 1
    entries = audit.query(job_id=job.id)
    assert sorted(e.device for e in entries) == sorted(d.name for d in devs)
    assert {e.action for e in entries} == {"system_reboot"}
    assert Counter(e.outcome for e in entries) == Counter({"ok": 3, "unreachable": 1})
    # every reboot request any device received is in the audit log
    received = sum(1 for d in devs for q in d.requests if q.path == "/rest/system/reboot")
    assert received == 3 + sum(1 for q in resets.requests if q.path == "/rest/system/reboot")
    assert len(entries) == 4


async def test_action_validation_before_io_and_skips(emulators: EmulatorThread, tmp_path: Path, env: None) -> None:
    *devs, spare = spawn(emulators, 3)  # its own device: one address listed twice is refused
    inv = inventory_for(devs, f"  lite: {{address: '127.0.0.1:{spare.port}', family: videoos_lite}}\n")
    r = runner(tmp_path, specs={"videoos": str(SPEC_PATH), "videoos_lite": str(lite_spec(tmp_path))})
    with pytest.raises(ValidationError):
        r.plan(ActionTask("audio_volume_set", {"volume": "300"}), list(inv))
    assert all(len(d.requests) == 0 for d in devs)
    outcomes = await r.run(ActionTask("audio_volume_set", {"volume": "35"}), list(inv))
    by = {o.device: o for o in outcomes}
    assert by["lite"].status == "skipped" and "no action audio_volume_set" in (by["lite"].message or "")
    assert [d.state.volume for d in devs] == [35, 35] and not spare.requests


async def until_reached(devs: list[EmulatedVideoOS], run: asyncio.Future[Any]) -> None:
    """Until every device in `devs` holds a request of `run` (a condition, polled; never a guessed delay)."""
    deadline = time.monotonic() + 30
    while not all(d.requests.total for d in devs):
        assert not run.done(), "the run ended before every device was reached"
        assert time.monotonic() < deadline, f"only {sum(1 for d in devs if d.requests.total)} devices reached"
        await asyncio.sleep(0.01)


async def test_global_and_per_site_limits(emulators: EmulatorThread, tmp_path: Path, env: None) -> None:
    devs = spawn(emulators, 6)
    inv = inventory_for(devs, site_of=lambda d: "hq" if int(d.name.split("-")[1]) < 4 else "branch")
    # no limit: every device holds a request before any is answered (paused devices answer nothing
    # until released), which a run that limits itself could never reach, however loaded the machine
    for d in devs:
        d.faults.paused = True
    run = asyncio.ensure_future(runner(tmp_path).run(StatusTask(), list(inv)))
    await until_reached(devs, run)
    for d in devs:
        d.faults.paused = False
    assert [o.status for o in await run] == ["ok"] * 6

    for d in devs:
        d.faults.latency = 0.1  # login + 2 reads + logout = 0.4 s per device

    async def timed(**opts: Any) -> float:
        t0 = time.monotonic()
        out = await runner(tmp_path, **opts).run(StatusTask(), list(inv))
        assert [o.status for o in out] == ["ok"] * 6
        return time.monotonic() - t0

    # limits as lower bounds on the time: a loaded machine only makes a run slower, never faster
    assert await timed(concurrency=2) >= 1.15         # three waves of two
    # hq has 4 devices, one at a time: 4 waves; branch runs beside it
    assert await timed(per_site=1) >= 1.55


async def test_downloads_go_to_one_folder_per_device(emulators: EmulatorThread, tmp_path: Path, env: None) -> None:
    # the built-in VideoOS spec this time (the minimal one has no downloads)
    devs = [emulators.add(EmulatedVideoOS(f"cam-{i}", password=PASSWORD)) for i in range(2)]
    inv = inventory_for(devs)
    r = FleetRunner(tls=TLSPolicy.pinned(KnownHosts(tmp_path / "known_devices")),
                    resolver=CredentialResolver(base_dir=tmp_path),
                    options=RunOptions(output_dir=str(tmp_path / "out")))
    outcomes = await r.run(ActionTask("cameras_snapshot_get", {"snapshot_id": "near_image_1.jpg"}), list(inv))
    for o in outcomes:
        assert o.status == "ok", o
        path = Path(o.data["file"])
        assert path.parent == tmp_path / "out" / o.device and path.stat().st_size > 0


async def test_device_deadline_gives_a_definite_outcome(emulators: EmulatorThread, tmp_path: Path,
                                                        env: None) -> None:
    devs = spawn(emulators, 3)
    # never answers while the run lasts: only the device deadline can end it (the request timeout
    # is far longer), and the others have ample time to finish however loaded the machine is
    devs[0].faults.paused = True
    inv = inventory_for(devs)
    outcomes = await runner(tmp_path, device_timeout=3, timeout=60).run(StatusTask(), list(inv))
    by = {o.device: o for o in outcomes}
    assert by[devs[0].name].status == "unreachable" and by[devs[0].name].reason == "timeout"
    assert "deadline of 3" in (by[devs[0].name].message or "")
    assert [by[d.name].status for d in devs[1:]] == ["ok", "ok"]
    devs[0].faults.paused = False


def test_resume_asks_again_for_a_secret_parameter(tmp_path: Path) -> None:
    from avctl.errors import UsageError
    from avctl.fleet.jobs import plan_resume

    inv_path = tmp_path / "inv.yaml"
    inv_path.write_text("devices:\n  a: {family: polyuc, address: 10.0.0.1}\n"
                        "  b: {family: polyuc, address: 10.0.0.2}\n")
    inv = parse_inventory(inv_path.read_text(), file=str(inv_path), path=inv_path)
    store = SqliteJobStore(tmp_path / "db")
    task = ActionTask("skype_sign_in", {"Address": "a@example.com", "Password": "sfb-9", "LockCode": "4711"})
    r = FleetRunner()
    r.plan(task, list(inv))  # validates against the built-in Poly UC spec and learns its secret params
    assert r.secret_params == {"Password", "LockCode"}
    job = create_job(store, task, selection="all", devices=list(inv), inventory=inv, options=RunOptions(),
                     secret_params=r.secret_params)
    assert store.get_job(job.id).params == {"Address": "a@example.com", "Password": "********",
                                            "LockCode": "********"}
    store.record_outcome(job.id, Outcome("a", "ok"))
    store.set_state(job.id, "interrupted")
    with pytest.raises(UsageError, match="secret parameters that were not stored: LockCode, Password"):
        plan_resume(store, job.id)
    plan = plan_resume(store, job.id, params={"LockCode": "4711", "Password": "sfb-9"})
    assert [d.name for d in plan.devices] == ["b"] and plan.task.params["LockCode"] == "4711"
