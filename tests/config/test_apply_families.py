"""Apply as each family's API wants it: Poly UC's .set companions, Solstice's restart and network keys
(confirmation, network_config_update), a key that changed after the plan; a rejected login; jobs
that are not resumed."""

from __future__ import annotations

import json
from pathlib import Path

from avctl.config.device_config import Change
from avctl.emulator.core import EmulatorThread
from avctl.emulator.polyuc import EmulatedPolyUC
from avctl.emulator.solstice import EmulatedSolstice
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.transport.tls import TLSPolicy

from .test_config_e2e import PASSWORD, _json, avctl, write_inventory


def test_polyuc_device_parameters_go_with_their_set_companions(emulators: EmulatorThread, tmp_path: Path,
                                                                 avctl_home: Path) -> None:
    phone = emulators.add(EmulatedPolyUC("phone-0", password=PASSWORD, seed=7))
    config = "defaults:\n  config:\n    polyuc:\n      device.prov.serverName: prov.example.test\n"
    inv = str(write_inventory(tmp_path / "inventory.yaml", {"phone-0": phone}, config=config))
    phone.requests.clear()
    out = _json(avctl("config", "apply", "-i", inv, "--yes", "--json"))
    assert out["summary"]["ok"] == 1, out
    sets = [json.loads(r.body)["data"] for r in phone.requests if r.path.endswith("/config/set")]
    assert sets == [{"device.prov.serverName": "prov.example.test", "device.set": "1",
                     "device.prov.serverName.set": "1"}]
    assert phone.phone.config["device.prov.serverName"].current == "prov.example.test"  # it took


def test_solstice_restart_and_network_keys(emulators: EmulatorThread, tmp_path: Path, avctl_home: Path) -> None:
    pod = emulators.add(EmulatedSolstice("pod-0", password=PASSWORD, seed=8))
    config = ("defaults:\n  config:\n    solstice:\n      sharing.airplay.enabled: false\n"
              "      connection.lldp.enabled: true\n      display.name: Board room\n")
    inv = str(write_inventory(tmp_path / "inventory.yaml", {"pod-0": pod}, config=config))
    pod.requests.clear()
    out = avctl("config", "apply", "-i", inv, code=1)  # no terminal and no --yes: nothing is sent
    assert "changing 2 key(s) that take effect only after a restart or reboot" in out
    assert "--yes" in out
    assert not [r for r in pod.requests if r.method == "PATCH"]

    done = _json(avctl("config", "apply", "-i", inv, "--yes", "--json"))
    assert done["summary"]["ok"] == 1, done
    data = done["devices"][0]["data"]
    assert data["reboot_required"] is True and data["restart_required"] is True
    patches = [json.loads(r.body) for r in pod.requests if r.method == "PATCH"]
    # one PATCH per writing action: network settings through network_config_update only
    assert sorted(patches, key=lambda p: "connection" in p) == [
        {"display": {"name": "Board room"}, "sharing": {"airplay": {"enabled": False}}},
        {"connection": {"lldp": {"enabled": True}}}]
    assert pod.state.config["connection"]["lldp"]["enabled"] is True
    assert avctl("config", "plan", "-i", inv).strip().endswith("0 change(s) on 0 device(s)")


def test_a_restart_key_that_changed_after_the_plan_is_not_sent(emulators: EmulatorThread, tmp_path: Path,
                                                              avctl_home: Path, tls: TLSPolicy) -> None:
    import asyncio

    from avctl.config.desired import desired_fleet
    from avctl.config.engine import ConfigJobs
    from avctl.config.store import open_snapshot_store
    from avctl.families import builtin_spec
    from avctl.fleet.credentials import CredentialResolver
    from avctl.fleet.inventory import load_inventory
    from avctl.fleet.runner import FleetRunner
    from avctl.fleet.store import SqliteJobStore

    pod = emulators.add(EmulatedSolstice("pod-0", password=PASSWORD, seed=9))
    config = "defaults:\n  config:\n    solstice:\n      sharing.airplay.enabled: false\n"
    path = write_inventory(tmp_path / "inventory.yaml", {"pod-0": pod}, config=config)
    inv = load_inventory(path)
    desired = desired_fleet(inv.devices, builtin_spec)
    store, snaps = SqliteJobStore(None), open_snapshot_store(None)
    jobs = ConfigJobs(store, snaps, lambda: FleetRunner(store=store, specs=builtin_spec, tls=tls,
                                                        resolver=CredentialResolver(base_dir=path.parent)),
                      inv)
    report = asyncio.run(jobs.apply(inv.devices, desired, confirmed={}))  # the plan confirmed nothing
    outcome = report.outcomes[0]
    assert outcome.status == "failed" and "changed after the plan was confirmed" in str(outcome.message)
    assert not [r for r in pod.requests if r.method == "PATCH"]
    assert pod.state.config["sharing"]["airplay"]["enabled"] is True
    snaps.close()
    store.close()


def test_a_rejected_login_is_tried_once_and_ends_the_device(emulators: EmulatorThread, tmp_path: Path,
                                                            avctl_home: Path) -> None:
    codec = emulators.add(EmulatedVideoOS("codec-0", password="not-the-inventory-password", seed=10))
    inv = str(write_inventory(tmp_path / "inventory.yaml", {"codec-0": codec}))
    out = _json(avctl("config", "backup", "-i", inv, "--json", code=1))
    assert out["devices"][0]["status"] == "failed" and out["devices"][0]["reason"] == "auth"
    assert sum(1 for r in codec.requests if r.method == "POST" and r.path == "/rest/session") == 1


def test_configuration_jobs_are_not_resumed(tmp_path: Path, avctl_home: Path) -> None:
    from avctl.fleet.store import SqliteJobStore

    inv = tmp_path / "inventory.yaml"
    inv.write_text("devices: {codec-0: {family: videoos, address: '127.0.0.1:9'}}\n")
    store = SqliteJobStore(None)
    job = store.create_job(action="config-apply", selection="all", params={}, devices=["codec-0"], user="t",
                           inventory=str(inv), options={"mode": "config", "run": {}, "specs": {}})
    store.set_state(job.id, "interrupted")  # a process that died mid-job
    store.close()
    out = avctl("jobs", "resume", str(job.id), code=2)
    assert "config-apply jobs are not resumed: run 'avctl config apply' again" in out


def test_change_is_plain_data() -> None:
    c = Change("k", "a", "b", "f:1")
    assert c.as_dict() == {"key": "k", "current": "a", "desired": "b", "where": "f:1", "applies": "live",
                           "settable": True, "reported": True}
