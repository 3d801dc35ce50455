"""The Temporal engine end to end: a Temporal dev server, three sites of emulated devices, one
``avctl worker --site`` process per site, jobs started from the CLI with ``--engine temporal``.

What each test shows is what issue 17 asks: one outcome per device over all sites; a worker killed
(-9) mid-batch and started again calls no device twice for a state-changing action and loses none;
a site without a worker keeps its devices waiting (or ends them skipped after a deadline) while the
other sites finish; a wrong password costs exactly one login in the whole workflow; no password
crosses Temporal.
"""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

from temporalio.api.common.v1 import Payload

from avctl.emulator.core import EmulatorThread
from avctl.emulator.polyuc import EmulatedPolyUC
from avctl.emulator.solstice import EmulatedSolstice
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.temporal.codec import ENCODING
from tests.server.harness import wait_for
from tests.temporal.conftest import PASSWORD, Sites, outcomes_of, requests_to

LOGIN = "/rest/session"  # VideoOS's login
VOLUME = "/rest/audio/volume"


def _temporal(sites: Sites, *more: str) -> list[str]:
    return ["--inventory", str(sites.inventory), "--engine", "temporal", "--temporal", sites.server.address,
            "--json", *more]


def _three_sites(sites: Sites, emulators: EmulatorThread, per_family: int = 1) -> list[str]:
    made = []
    for short in ("berlin", "tokyo", "austin"):
        devices = []
        for n in range(per_family):
            devices += [emulators.add(EmulatedVideoOS(f"cx-{short}-{n}", password=PASSWORD)),
                        emulators.add(EmulatedPolyUC(f"ph-{short}-{n}", password=PASSWORD)),
                        emulators.add(EmulatedSolstice(f"pod-{short}-{n}", password=PASSWORD, v1_http_port="off"))]
        made.append(sites.add(short, devices))
    sites.write_inventory()
    return made


def test_a_job_over_three_sites_ends_with_one_outcome_per_device_and_no_password_crosses_temporal(
        sites: Sites, emulators: EmulatorThread, avctl_home: Path) -> None:
    _three_sites(sites, emulators)
    sites.start_workers()
    run = sites.cli(avctl_home, "fleet", "status", *_temporal(sites))
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    outcomes = outcomes_of(doc)
    every = [d.name for devices in sites.devices.values() for d in devices]
    assert sorted(outcomes) == sorted(every) and len(doc["devices"]) == len(every) == 9
    assert {o["status"] for o in outcomes.values()} == {"ok"}, outcomes
    assert all(o["data"]["reachable"] for o in outcomes.values())
    # the job is in the CLI's store like a local one: finished, every device recorded once
    shown = json.loads(sites.cli(avctl_home, "jobs", "show", str(doc["job"]), "--json").stdout)
    assert shown["state"] == "finished" and shown["pending"] == [] and len(shown["devices"]) == 9
    # each site's devices were run by that site's worker only (its own journal, its own pins)
    for site, worker in sites.workers.items():
        pins = (worker.home / "known_devices").read_text()
        assert all(f"{d.host}:{d.port}" in pins or str(d.port) in pins for d in sites.devices[site])
        others = [d for s, ds in sites.devices.items() if s != site for d in ds]
        assert not any(f":{d.port} " in pins or f":{d.port}\t" in pins for d in others)
    # the workflow history (what Temporal stores) holds password references, never the password
    history = sites.server.cli("workflow", "show", "--workflow-id", doc["workflow"] if "workflow" in doc
                               else _workflow_of(run.stderr), "--output", "json")
    assert history.returncode == 0, history.stderr
    payloads = _payloads(json.loads(history.stdout))
    assert any("file:fleet.password" in p for p in payloads)
    assert not any(PASSWORD in p for p in [history.stdout, *payloads])


def _payloads(node: object) -> list[str]:
    """Every payload of a workflow history, decoded (Temporal's JSON shows them base64-encoded)."""
    found: list[str] = []
    if isinstance(node, dict):
        if isinstance(node.get("data"), str) and isinstance(node.get("metadata"), dict):
            data = base64.b64decode(node["data"])
            if base64.b64decode(node["metadata"].get("encoding", "")) == ENCODING:  # avctl's zlib codec
                inner = Payload()
                inner.ParseFromString(zlib.decompress(data))
                data = inner.data
            found.append(data.decode(errors="replace"))
        for value in node.values():
            found += _payloads(value)
    elif isinstance(node, list):
        for value in node:
            found += _payloads(value)
    return found


def _workflow_of(stderr: str) -> str:
    for line in stderr.splitlines():
        if ": workflow " in line:
            return line.split(": workflow ", 1)[1].split()[0]
    raise AssertionError(f"no workflow named in: {stderr}")


def test_a_worker_killed_mid_batch_calls_no_device_twice_and_loses_none(
        sites: Sites, emulators: EmulatorThread, avctl_home: Path) -> None:
    wrong = emulators.add(EmulatedVideoOS("cx-wrong-pw", password="not-the-fleet-password"))
    held = [emulators.add(EmulatedVideoOS(f"cx-held-{n}", password=PASSWORD)) for n in range(2)]
    rest = [emulators.add(EmulatedVideoOS(f"cx-rest-{n}", password=PASSWORD)) for n in range(3)]
    site = sites.add("berlin", [wrong, *held, *rest])
    sites.write_inventory()
    for dev in held:  # they take the request, and act on it only when released
        dev.faults.paused = True
    worker = sites.worker(site).start()
    # two devices at once: the wrong password first, then the two held ones keep both slots
    job = sites.job(avctl_home, "fleet", "volume", "volume=30", *_temporal(sites, "--concurrency", "2",
                                                                             "--heartbeat", "2", "--yes"))
    wait_for(lambda: all(requests_to(d, "PUT", VOLUME) + requests_to(d, "POST", VOLUME) == 1 for d in held),
             within=60, what="the held devices to receive the volume request")
    worker.kill9()
    for dev in held:
        dev.faults.paused = False  # the device acts on the request its client no longer waits for
    worker.start()
    out, err = job.communicate(timeout=120)
    assert job.returncode == 1, err  # the wrong password fails its device
    outcomes = outcomes_of(json.loads(out))
    every = [wrong, *held, *rest]
    assert sorted(outcomes) == sorted(d.name for d in every)
    for dev in every:  # not one device got the state-changing request twice
        assert requests_to(dev, "PUT", VOLUME) + requests_to(dev, "POST", VOLUME) == (0 if dev is wrong else 1)
    assert outcomes[wrong.name]["status"] == "failed" and outcomes[wrong.name]["reason"] == "auth"
    assert requests_to(wrong, "POST", LOGIN) == 1  # one login attempt in the whole workflow, retry included
    for dev in held:  # sent before the worker died: verified by reading, not sent again
        assert outcomes[dev.name]["status"] == "ok", outcomes[dev.name]
        assert outcomes[dev.name]["reason"] == "verified"
        assert outcomes[dev.name]["data"] == {"verified": {"volume": 30}}
    for dev in rest:
        assert outcomes[dev.name]["status"] == "ok" and outcomes[dev.name]["reason"] is None
    assert "attempt 2" in worker.text()


def test_a_site_without_a_worker_waits_or_ends_skipped_after_its_deadline(
        sites: Sites, emulators: EmulatorThread, avctl_home: Path) -> None:
    berlin, tokyo, austin = _three_sites(sites, emulators)
    sites.start_workers(berlin, tokyo)
    # with a deadline: austin's devices end skipped, the others finish
    run = sites.cli(avctl_home, "fleet", "status", *_temporal(sites, "--site-deadline", "3"))
    outcomes = outcomes_of(json.loads(run.stdout))
    for site, devices in sites.devices.items():
        for d in devices:
            o = outcomes[d.name]
            if site == austin:
                assert (o["status"], o["reason"]) == ("skipped", "site_unreachable"), o
                assert d.requests.total == 0
            else:
                assert o["status"] == "ok", o
    # without one: the job waits for austin while the others are recorded; a worker arriving finishes it
    job = sites.job(avctl_home, "fleet", "status", *_temporal(sites))

    def recorded() -> bool:
        listed = json.loads(sites.cli(avctl_home, "jobs", "list", "--json").stdout)
        latest = max(listed, key=lambda j: j["id"])
        return bool(latest["id"] > json.loads(run.stdout)["job"] and latest["ok"] == 6 and latest["pending"] == 3)

    wait_for(recorded, within=60, what="berlin and tokyo recorded, austin pending")
    assert job.poll() is None  # still waiting for austin
    sites.start_workers(austin)
    out, err = job.communicate(timeout=120)
    assert job.returncode == 0, err
    assert {o["status"] for o in outcomes_of(json.loads(out)).values()} == {"ok"}


def test_plain_text_passwords_are_refused_before_a_job_is_recorded(
        sites: Sites, emulators: EmulatorThread, avctl_home: Path) -> None:
    dev = emulators.add(EmulatedVideoOS("cx-plain", password=PASSWORD))
    sites.add("berlin", [dev])
    sites.write_inventory(passwords={"cx-plain": PASSWORD})
    plain = sites.cli(avctl_home, "fleet", "status", *_temporal(sites))
    assert plain.returncode == 2
    assert "plain-text password" in plain.stderr and "cx-plain" in plain.stderr
    assert PASSWORD not in plain.stderr + plain.stdout
    sites.write_inventory()
    assert dev.requests.total == 0
    assert json.loads(sites.cli(avctl_home, "jobs", "list", "--json").stdout) == []  # nothing recorded


def test_rings_run_in_the_workflow_and_a_failed_gate_sends_nothing_to_later_rings(
        sites: Sites, emulators: EmulatorThread, avctl_home: Path) -> None:
    canary = [emulators.add(EmulatedVideoOS("cx-canary-ok", password=PASSWORD)),
              emulators.add(EmulatedVideoOS("cx-canary-bad", password="not-the-fleet-password"))]
    later = [emulators.add(EmulatedVideoOS(f"cx-later-{n}", password=PASSWORD)) for n in range(2)]
    first = sites.add("berlin", canary)
    sites.add("tokyo", later)
    sites.write_inventory()
    sites.start_workers()
    run = sites.cli(avctl_home, "fleet", "volume", "volume=25",
                    *_temporal(sites, "--rings", f"canary=site:{first},rest", "--gate", "100%", "--soak", "1s",
                               "--yes"))
    outcomes = outcomes_of(json.loads(run.stdout))
    assert outcomes["cx-canary-ok"]["status"] == "ok"
    assert outcomes["cx-canary-bad"]["reason"] == "auth"
    for dev in later:  # the gate failed: skipped, not one request sent
        assert (outcomes[dev.name]["status"], outcomes[dev.name]["reason"]) == ("skipped", "gate"), outcomes
        assert "ring canary: 1 of 2 device(s) ok (50%), below the 100% gate" in outcomes[dev.name]["message"]
        assert dev.requests.total == 0
    history = sites.server.cli("workflow", "show", "--workflow-id", _workflow_of(run.stderr), "--output", "json")
    events = [e.get("eventType") for e in json.loads(history.stdout)["events"]]
    assert "EVENT_TYPE_TIMER_STARTED" in events  # the soak is a durable timer


def test_a_site_waits_for_its_maintenance_window_on_a_durable_timer(
        sites: Sites, emulators: EmulatorThread, avctl_home: Path) -> None:
    import datetime as dt
    from zoneinfo import ZoneInfo

    open_dev = emulators.add(EmulatedVideoOS("cx-open", password=PASSWORD))
    closed_dev = emulators.add(EmulatedVideoOS("cx-closed", password=PASSWORD))
    open_site, closed_site = sites.add("open", [open_dev]), sites.add("closed", [closed_dev])
    now = dt.datetime.now(ZoneInfo("UTC"))
    later = (now + dt.timedelta(hours=6)).strftime("%H:00")
    until = (now + dt.timedelta(hours=7)).strftime("%H:00")
    inventory = sites.write_inventory(timezones={open_site: "UTC", closed_site: "UTC"})
    text = inventory.read_text().replace(
        f"  {open_site}: {{timezone: UTC}}", f"  {open_site}: {{timezone: UTC, window: 'Mon-Sun 00:00-23:59'}}")
    text = text.replace(f"  {closed_site}: {{timezone: UTC}}",
                        f"  {closed_site}: {{timezone: UTC, window: 'Mon-Sun {later}-{until}'}}")
    inventory.write_text(text)
    sites.start_workers()
    job = sites.job(avctl_home, "fleet", "status", *_temporal(sites, "--in-window"))
    wait_for(lambda: open_dev.requests.total > 0, within=60, what="the open site's device")

    def waiting_child() -> list[dict[str, object]]:
        listed = sites.server.cli("workflow", "list", "--query", "WorkflowId STARTS_WITH 'avctl.control.'",
                                  "--output", "json")
        ids = [w.get("execution", {}).get("workflowId", "") for w in json.loads(listed.stdout or "[]")]
        child = next((i for i in ids if i.endswith(f".site.{closed_site}")), None)
        if child is None:
            return []
        shown = json.loads(sites.server.cli("workflow", "show", "--workflow-id", child, "--output", "json").stdout)
        return [e for e in shown["events"] if e.get("eventType") == "EVENT_TYPE_TIMER_STARTED"]

    timers = wait_for(waiting_child, within=60, what="the closed site's window timer")
    seconds = float(str(timers[0]["timerStartedEventAttributes"]["startToFireTimeout"]).rstrip("s"))  # type: ignore[index]
    assert 5 * 3600 < seconds <= 6 * 3600 + 60  # until its window opens, hours from now
    assert closed_dev.requests.total == 0 and job.poll() is None  # nothing sent; the job waits
    job.kill()
    job.wait(30)


def test_passwords_are_resolved_at_the_site_and_never_on_the_control_plane(
        sites: Sites, emulators: EmulatorThread, avctl_home: Path, tmp_path: Path) -> None:
    from tests.temporal.conftest import SiteWorker

    dev = emulators.add(EmulatedVideoOS("cx-env", password=PASSWORD))
    site = sites.add("berlin", [dev])
    sites.write_inventory(passwords={"cx-env": "env:BERLIN_CODEC_PW"})  # set at the site only
    worker = SiteWorker(tmp_path, site, sites.server.address, tmp_path, env={"BERLIN_CODEC_PW": PASSWORD})
    sites.workers[site] = worker.start()
    run = sites.cli(avctl_home, "fleet", "status", *_temporal(sites))
    assert run.returncode == 0, run.stderr
    assert outcomes_of(json.loads(run.stdout))["cx-env"]["status"] == "ok"
    # the same with --engine local on this machine cannot: the reference does not resolve here
    local = sites.cli(avctl_home, "fleet", "status", "--inventory", str(sites.inventory), "--json")
    assert local.returncode == 2 and "BERLIN_CODEC_PW" in local.stderr
    # a device with no reference at all is refused before a job is recorded
    sites.write_inventory(passwords={})
    sites.inventory.write_text(sites.inventory.read_text().replace("defaults: {password: 'file:fleet.password'}\n",
                                                                   ""))
    unset = sites.cli(avctl_home, "fleet", "status", *_temporal(sites))
    assert unset.returncode == 2 and "no password reference" in unset.stderr
    assert len(json.loads(sites.cli(avctl_home, "jobs", "list", "--json").stdout)) == 1


def test_a_firmware_rollout_runs_on_the_sites_and_sends_each_update_once(
        sites: Sites, emulators: EmulatorThread, avctl_home: Path) -> None:
    from avctl.emulator.solstice import EmulatedSolstice as Pod

    outdated = emulators.add(Pod("pod-old", password=PASSWORD, firmware="5.5.3.14", update_to="5.5.4.2",
                                 v1_http_port="off"))
    current = emulators.add(Pod("pod-new", password=PASSWORD, firmware="5.5.4.2", update_to="5.5.5.1",
                                v1_http_port="off"))
    phone = emulators.add(EmulatedPolyUC("phone-old", password=PASSWORD, model="VVX 450", firmware="6.4.3.5156",
                                         provisioned_firmware="7.2.2.1094"))
    for dev in (outdated, current, phone):
        dev.faults.reboot_seconds = 0.2
    sites.add("berlin", [outdated, phone])
    sites.add("tokyo", [current])
    sites.write_inventory(top='firmware: {solstice: {"*": "5.5.4"}, polyuc: {"VVX*": "7.2.2"}}')
    sites.start_workers()
    done = sites.cli(avctl_home, "firmware", "update", *_temporal(sites, "--yes"))
    assert done.returncode == 0, done.stderr
    outcomes = outcomes_of(json.loads(done.stdout))
    assert json.loads(done.stdout)["task"] == "firmware_update"
    assert {name: o["status"] for name, o in outcomes.items()} == {"pod-old": "ok", "phone-old": "ok"}
    assert requests_to(outdated, "GET", "/api/version/update") == 1
    assert requests_to(phone, "POST", "/api/v1/mgmt/updateConfiguration") == 1
    assert requests_to(current, "GET", "/api/version/update") == 0


CONFIG = """\
defaults:
  config:
    videoos:
      system.network.wireless.bt.enabled: false
      device.local.devicename: "${room}-codec"
"""


def test_configuration_backup_apply_and_plan_run_on_the_sites_and_snapshots_land_here(
        sites: Sites, emulators: EmulatorThread, avctl_home: Path) -> None:
    codecs = [emulators.add(EmulatedVideoOS(f"cx-cfg-{n}", password=PASSWORD)) for n in range(2)]
    secret = "Vos-Adm1n-Secret-4471"
    for dev in codecs:
        dev.state.config["device.local.adminpassword"]["value"] = secret
    site = sites.add("berlin", codecs)
    sites.write_inventory(top=CONFIG.replace("defaults:\n", "defaults:\n  password: 'file:fleet.password'\n"))
    text = sites.inventory.read_text().replace("defaults: {password: 'file:fleet.password'}\n", "", 1)
    sites.inventory.write_text(text.replace(f"site: {site}", f"site: {site}, room: r1"))
    sites.start_workers()
    applied = sites.cli(avctl_home, "config", "apply", *_temporal(sites, "--yes"))
    assert applied.returncode == 0, applied.stderr
    doc = json.loads(applied.stdout[applied.stdout.index("{"):])
    assert doc["summary"]["ok"] == 2, doc
    for dev in codecs:
        assert dev.state.config["device.local.devicename"]["value"] == "r1-codec"
        assert dev.state.config["system.network.wireless.bt.enabled"]["value"] == "False"
    # the pre-apply read of each codec is a snapshot in this store, named by the apply job
    history = json.loads(sites.cli(avctl_home, "config", "history", "cx-cfg-0", "--json").stdout)
    assert history[0]["reason"] == "pre-apply" and history[0]["job"] is not None
    assert "device.local.adminpassword" in history[0]["secrets"]
    plan = sites.cli(avctl_home, "config", "plan", *_temporal(sites))
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout[plan.stdout.index("{"):])["changes"] == []
    backup = sites.cli(avctl_home, "config", "backup", *_temporal(sites))
    assert backup.returncode == 0, backup.stderr
    snaps = {d["device"]: d["data"] for d in json.loads(backup.stdout[backup.stdout.index("{"):])["devices"]}
    assert all(isinstance(s["snapshot"], int) and s["snapshot"] > 0 for s in snaps.values())
    # the device's secret is in no output and nowhere in Temporal's history
    assert all(secret not in out for out in (applied.stdout, plan.stdout, backup.stdout))
    listed = sites.server.cli("workflow", "list", "--output", "json", "--limit", "1000")
    ids = {w["execution"]["workflowId"] for w in json.loads(listed.stdout or "[]")}
    jobs = {_workflow_of(run.stderr) for run in (applied, plan, backup)}
    mine = [i for i in ids if any(i.startswith(j) for j in jobs)]  # the jobs and their site workflows
    assert len(mine) == 6, mine
    payloads = []
    for workflow in mine:
        shown = sites.server.cli("workflow", "show", "--workflow-id", workflow, "--output", "json")
        payloads += _payloads(json.loads(shown.stdout))
    assert any("device.local.adminpassword" in p for p in payloads)  # the read did travel, masked
    assert not any(secret in p for p in payloads)


def test_a_spec_given_with_spec_is_the_one_the_sites_use(sites: Sites, emulators: EmulatorThread, avctl_home: Path,
                                                         tmp_path: Path) -> None:
    codec = emulators.add(EmulatedVideoOS("cx-spec", password=PASSWORD))
    sites.add("berlin", [codec])
    sites.write_inventory()
    sites.start_workers()
    # this site's spec: its "mute" also turns the volume down to 7
    text = (Path(__file__).resolve().parents[2] / "src" / "avctl" / "specs" / "videoos.md").read_text()
    mute = "    - {action: audio_muted_set, params: {muted: true}}\n"
    assert text.count(mute) == 1
    own = tmp_path / "videoos-site.md"
    own.write_text(text.replace(mute, mute + "    - {action: audio_volume_set, params: {volume: 7}}\n"))
    run = sites.cli(avctl_home, "fleet", "mute", *_temporal(sites, "--spec", f"videoos={own}", "--yes"))
    assert run.returncode == 0, run.stderr
    assert outcomes_of(json.loads(run.stdout))["cx-spec"]["status"] == "ok"
    assert requests_to(codec, "POST", VOLUME) == 1 and codec.state.volume == 7
