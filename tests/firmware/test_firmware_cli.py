"""``avctl firmware report`` and ``update`` against a mixed emulated fleet over real HTTPS.

The fleet: VideoOS codecs (no update action in their API), Poly UC phones (provisioning-triggered
update) and Solstice pods (the v1 update call), some outdated, some compliant, some unknown, in two
sites; one device does not answer at all.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from avctl.cli.main import cli
from avctl.db.factory import open_store
from avctl.emulator.core import EmulatedDevice, EmulatorThread, Recorded
from avctl.emulator.polyuc import EmulatedPolyUC
from avctl.emulator.solstice import EmulatedSolstice
from avctl.emulator.videoos import EmulatedVideoOS

from ..conftest import wait_back
from ..ports import free_port

PASSWORD = "Firmware-Fleet-Pw-4471"

FIRMWARE = """\
firmware:
  videoos: {"Studio X30": "4.6.2", "*": "4.5.0"}
  solstice: {"*": "5.5.4"}
sites:
  hq:
    firmware:
      polyuc: {"VVX*": "7.2.2"}
  lab: {}
"""


def run(*args: str, code: int | None = 0) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if code is not None:
        assert result.exit_code == code, result.output
    return result


@pytest.fixture
def fleet(emulators: EmulatorThread, avctl_home: Path) -> Iterator[dict[str, EmulatedDevice]]:
    codec0 = EmulatedVideoOS("codec-0", password=PASSWORD, seed=70, firmware="4.5.0")
    codec0.state.model = "StudioX30"  # what a Studio X30 reports: the inventory writes "Studio X30"
    devs: dict[str, EmulatedDevice] = {
        "codec-0": codec0,
        "codec-1": EmulatedVideoOS("codec-1", password=PASSWORD, seed=71, firmware="4.6.2"),
        "phone-0": EmulatedPolyUC("phone-0", password=PASSWORD, seed=72, model="VVX 450", firmware="6.4.3.5156",
                                  provisioned_firmware="7.2.2.1094"),
        "phone-1": EmulatedPolyUC("phone-1", password=PASSWORD, seed=73, model="Trio 8800", firmware="7.0.0.100",
                                  provisioned_firmware="7.2.2.1094"),
        "phone-2": EmulatedPolyUC("phone-2", password=PASSWORD, seed=74, firmware="5.9.0.1"),
        "pod-0": EmulatedSolstice("pod-0", password=PASSWORD, seed=75, firmware="5.5.3.14", update_to="5.5.4.2"),
        "pod-1": EmulatedSolstice("pod-1", password=PASSWORD, seed=76, firmware="5.5.4.2", update_to="5.5.5.1"),
    }
    for d in devs.values():
        emulators.add(d)
        d.faults.reboot_seconds = 0.2
    yield devs


SITES = {"codec-0": "hq", "phone-0": "hq", "phone-1": "hq", "pod-0": "hq",
         "codec-1": "lab", "phone-2": "lab", "pod-1": "lab", "gone-0": "lab"}


def write_inventory(path: Path, devs: dict[str, EmulatedDevice], *, unreachable: bool = True) -> str:
    (path.parent / "fleet.password").write_text(PASSWORD + "\n")
    lines = ["defaults: {password: 'file:fleet.password'}", FIRMWARE.rstrip("\n"), "devices:"]
    for name, dev in devs.items():
        ports = {k: v for k, v in dev.extra_ports.items() if v}
        extra = f", ports: {json.dumps(ports)}" if ports else ""
        lines.append(f"  {name}: {{family: {dev.family}, address: '{dev.host}:{dev.port}', site: {SITES[name]}"
                     f"{extra}}}")
    if unreachable:  # nothing listens there
        lines.append(f"  gone-0: {{family: videoos, address: '127.0.0.1:{free_port()}', site: lab}}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def by_device(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["device"]: d for d in doc["devices"]}


def test_report_classifies_a_mixed_fleet(fleet: dict[str, EmulatedDevice], tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "inventory.yaml", fleet)
    result = run("firmware", "report", "-i", inv, "--json", "--retries", "0", code=1)  # gone-0 is unreachable
    doc = json.loads(result.stdout)
    rows = by_device(doc)
    assert {n: (r["compliance"], r["detail"]) for n, r in rows.items()} == {
        "codec-0": ("outdated", "older than the baseline 4.6.2"),
        "codec-1": ("compliant", "newer than the baseline 4.5.0"),
        "phone-0": ("outdated", "older than the baseline 7.2.2"),
        "phone-1": ("unknown", "no baseline for model Trio 8800"),
        "phone-2": ("unknown", "no firmware baseline for polyuc in the inventory"),
        "pod-0": ("outdated", "older than the baseline 5.5.4"),
        "pod-1": ("compliant", "same as the baseline 5.5.4"),
        "gone-0": ("unknown", rows["gone-0"]["detail"]),
    }
    assert rows["gone-0"]["detail"].startswith("unreachable: ")
    assert rows["codec-0"] | {"update": ""} == {
        "device": "codec-0", "family": "videoos", "site": "hq", "model": "StudioX30", "firmware": "4.5.0",
        "baseline": "4.6.2", "baseline_model": "Studio X30", "compliance": "outdated",
        "detail": "older than the baseline 4.6.2", "update": "", "updatable": False}
    assert rows["codec-0"]["update"].startswith("no update action in the VideoOS REST API")
    assert rows["phone-0"]["baseline_model"] == "VVX*" and rows["phone-0"]["updatable"] is True
    assert rows["pod-0"]["update"].startswith("firmware_update: ") and rows["pod-0"]["updatable"] is True
    assert doc["total"] == {"compliant": 2, "outdated": 3, "unknown": 3, "total": 8}
    assert {s["site"]: (s["compliant"], s["outdated"], s["unknown"]) for s in doc["sites"]} == {
        "hq": (0, 3, 1), "lab": (2, 0, 2)}
    models = {(m["family"], m["model"]): (m["compliant"], m["outdated"], m["unknown"]) for m in doc["models"]}
    assert models == {("videoos", "StudioX30"): (0, 1, 0), ("videoos", "StudioX50"): (1, 0, 0),
                      ("videoos", None): (0, 0, 1), ("polyuc", "VVX 450"): (0, 1, 1),
                      ("polyuc", "Trio 8800"): (0, 0, 1), ("solstice", "Solstice Pod"): (1, 1, 0)}
    # the report's status read is a job in the store, like 'fleet status'
    jobs = json.loads(run("jobs", "list", "--json").stdout)
    assert jobs[0]["id"] == doc["job"] and jobs[0]["task"] == "status" and jobs[0]["devices"] == 8
    # nothing but reads reached any device
    for dev in fleet.values():
        assert not [r for r in dev.requests if _changes(dev, r)], dev.name


LOGINS = ("session_login", "session_logout", "token_request")


def _changes(dev: EmulatedDevice, r: Recorded) -> bool:
    """A request for a state-changing action of the device's spec (logging in or out is not one)."""
    found = dev.router.resolve(r.method, dev.normalize_path(r.path))
    return not isinstance(found, int) and found[0].kind == "action" and found[0].id not in LOGINS


def test_report_table_csv_and_exit_codes(fleet: dict[str, EmulatedDevice], tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "inventory.yaml", fleet, unreachable=False)
    fleet["codec-1"].state.model = "=cmd()|X50 [bold]"  # hostile text stays text
    table = run("firmware", "report", "-i", inv).stdout
    assert "no update action in the VideoOS REST API" in table
    assert "=cmd()|X50 [bold]" in table
    assert "per model" in table and "per site" in table
    assert table.rstrip().endswith("7 device(s): 2 compliant, 3 outdated, 2 unknown")

    rows = list(csv.DictReader(io.StringIO(run("firmware", "report", "-i", inv, "--csv").stdout)))
    assert list(rows[0]) == ["device", "family", "site", "model", "firmware", "baseline", "baseline_model",
                             "compliance", "detail", "update"]
    got = {r["device"]: r for r in rows}
    assert got["pod-0"]["compliance"] == "outdated" and got["pod-0"]["firmware"] == "5.5.3.14"
    assert got["codec-1"]["model"] == "'=cmd()|X50 [bold]"  # never a spreadsheet formula
    assert got["phone-1"]["baseline"] == ""

    run("firmware", "report", "-i", inv, "--quiet", "--fail-on-outdated", code=3)
    run("firmware", "report", "-i", inv, "--quiet", "--name", "pod-1", "--fail-on-outdated", code=0)
    quiet = run("firmware", "report", "-i", inv, "--quiet", "--name", "codec-0", code=0)
    assert quiet.output == "", quiet.output  # nothing but errors: not even the counts


def test_update_reaches_only_outdated_devices_with_an_update_action(fleet: dict[str, EmulatedDevice],
                                                                    tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "inventory.yaml", fleet, unreachable=False)
    for dev in fleet.values():
        dev.requests.clear()

    # --dry-run: the plan, nothing sent
    plan = json.loads(run("firmware", "update", "-i", inv, "--dry-run", "--json").stdout)
    assert plan["update"] == ["phone-0", "pod-0"]
    left = {x["device"]: x["reason"] for x in plan["left_out"]}
    assert left["codec-0"].startswith("outdated, but no update action in the VideoOS REST API")
    assert left["pod-1"] == "compliant: same as the baseline 5.5.4"
    assert left["phone-1"] == "unknown: no baseline for model Trio 8800"
    text = run("firmware", "update", "-i", inv, "--dry-run")
    assert [line.split(" (")[0] for line in text.stdout.splitlines()] == ["would update phone-0", "would update pod-0"]
    assert "2 outdated device(s) with an update action, 5 left out" in text.stderr
    # disruptive: without a terminal and without --yes nothing is sent
    refused = run("firmware", "update", "-i", inv, code=1)
    assert "--yes" in refused.output
    for dev in fleet.values():
        assert not [r for r in dev.requests if _changes(dev, r)], dev.name

    # through rings: the update job carries them (the runner acts on them), the status read does not
    result = run("firmware", "update", "-i", inv, "--yes", "--json", "--rings", "canary=name:pod-*,all",
                 "--gate", "100%")
    assert "left out codec-0 (videoos): outdated, but no update action in the VideoOS REST API" in result.stderr
    done = json.loads(result.stdout)
    assert done["task"] == "firmware_update"
    assert {d["device"]: d["status"] for d in done["devices"]} == {"phone-0": "ok", "pod-0": "ok"}
    with closing(open_store(None)) as store:
        update_job, read_job = store.list_jobs(2)
    assert update_job.id == done["job"] and update_job.action == "firmware_update"
    assert sorted(update_job.devices) == ["phone-0", "pod-0"]
    assert update_job.options["run"]["rings"] == [["canary", "name=pod-*"], ["all", ""]]
    assert update_job.options["run"]["gate"] == 1.0
    assert read_job.action == "status" and len(read_job.devices) == 7
    assert read_job.options["run"]["rings"] == [] and read_job.options["run"]["gate"] is None

    sent = {name: [(r.method, r.path) for r in dev.requests if _changes(dev, r)] for name, dev in fleet.items()}
    assert sent == {"codec-0": [], "codec-1": [], "phone-0": [("POST", "/api/v1/mgmt/updateConfiguration")],
                    "phone-1": [], "phone-2": [], "pod-0": [("GET", "/api/version/update")], "pod-1": []}

    for name in ("phone-0", "pod-0"):
        asyncio.run(wait_back(fleet[name]))
    after = by_device(json.loads(run("firmware", "report", "-i", inv, "--json").stdout))
    assert (after["pod-0"]["firmware"], after["pod-0"]["compliance"]) == ("5.5.4.2", "compliant")
    assert (after["phone-0"]["firmware"], after["phone-0"]["compliance"]) == ("7.2.2.1094", "compliant")
    assert after["codec-0"]["compliance"] == "outdated"  # VideoOS: listed, never sent anything

    # nothing left to do: no job, exit 0
    again = run("firmware", "update", "-i", inv, "--yes")
    assert "0 outdated device(s) with an update action" in again.stderr
    assert len(json.loads(run("jobs", "list", "--json").stdout)) == 7  # 6 status reads, 1 update


def test_emulator_update_settings() -> None:
    """What `avctl emulate ... --set` hands over (YAML-typed text): no update, a model, a provisioned build."""
    assert EmulatedSolstice("p", update_to="none").state.update_available_to is None
    assert EmulatedSolstice("p", update_to=None).state.update_available_to is None
    pod = EmulatedSolstice("p", update_to="5.6.0.1", model="Solstice Pod Gen3", firmware=5.5)
    assert (pod.state.update_available_to, pod.state.model, pod.state.firmware) == ("5.6.0.1", "Solstice Pod Gen3",
                                                                                   "5.5")
    phone = EmulatedPolyUC("ph", provisioned_firmware="7.2.2.1094")
    # a phone its provisioning server offers a build to has one configured, so the update can reach it
    assert phone.phone.config["device.prov.serverName"].current
    assert not EmulatedPolyUC("ph2").phone.config["device.prov.serverName"].current


def test_a_phone_without_a_provisioning_server_fails_the_update(emulators: EmulatorThread, tmp_path: Path,
                                                               avctl_home: Path) -> None:
    phone = EmulatedPolyUC("phone-0", password=PASSWORD, seed=80, firmware="6.4.3.5156")
    emulators.add(phone)
    phone.phone.provisioned_firmware = "7.2.2.1094"  # offered, but the phone knows no server to ask
    inv = write_inventory(tmp_path / "inventory.yaml", {"phone-0": phone}, unreachable=False)
    done = json.loads(run("firmware", "update", "-i", inv, "--yes", "--json", code=1).stdout)
    [outcome] = done["devices"]
    assert outcome["status"] == "failed" and "4006" in json.dumps(outcome)
    assert phone.phone.firmware == "6.4.3.5156" and not phone.is_down


def test_update_leaves_a_pod_in_use_alone_with_if_idle(fleet: dict[str, EmulatedDevice], tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "inventory.yaml", fleet, unreachable=False)
    pod = fleet["pod-0"]
    assert isinstance(pod, EmulatedSolstice)
    pod.state.connected_users = 2  # someone is sharing to the screen
    done = json.loads(run("firmware", "update", "-i", inv, "--yes", "--json", "--if-idle").stdout)
    rows = {d["device"]: (d["status"], d["reason"]) for d in done["devices"]}
    assert rows == {"phone-0": ("ok", None), "pod-0": ("skipped", "in_call")}
    assert not [r for r in pod.requests if r.path == "/api/version/update"]
    assert pod.state.firmware == "5.5.3.14" and pod.state.update_available_to == "5.5.4.2"


def test_a_failed_canary_stops_the_update_before_the_next_ring(fleet: dict[str, EmulatedDevice],
                                                              tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "inventory.yaml", fleet, unreachable=False)
    phone, pod = fleet["phone-0"], fleet["pod-0"]
    assert isinstance(phone, EmulatedPolyUC) and isinstance(pod, EmulatedSolstice)
    phone.phone.config["device.prov.serverName"].value = ""  # its update fails (Status 4006)
    result = run("firmware", "update", "-i", inv, "--yes", "--json", "--rings", "canary=name:phone-*,all",
                 "--gate", "100%", code=1)
    rows = {d["device"]: (d["status"], d["reason"]) for d in json.loads(result.stdout)["devices"]}
    assert rows["phone-0"][0] == "failed" and rows["pod-0"] == ("skipped", "gate")
    assert "rollout stopped" in result.stderr
    assert not [r for r in pod.requests if r.path == "/api/version/update"]
    assert pod.state.firmware == "5.5.3.14"
