"""`avctl emulate fleet`: devices in worker processes, a matching inventory, pins, and a sweep over it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from avctl.cli.main import cli
from avctl.emulator.fleet import EmulatedFleet
from avctl.fleet.inventory import load_inventory
from avctl.transport.tls import KnownHosts

from .test_fleet_runner import SPEC_PATH


def test_emulated_fleet_in_processes_and_status_sweep(tmp_path: Path, avctl_home: Path) -> None:
    with EmulatedFleet({"videoos": 9}, workers=2, latency_ms=5, sites=3,
                       spec_paths={"videoos": str(SPEC_PATH)}) as fleet:
        assert len(fleet.pids) == 2 and os.getpid() not in fleet.pids
        inv_path = fleet.write_inventory(tmp_path / "fleet.yaml")
        inv = load_inventory(inv_path)
        assert len(inv) == 9 and {d.site for d in inv} == {"site-1", "site-2", "site-3"}
        assert fleet.password not in inv_path.read_text()  # referenced via file:, not pasted
        pw_file = tmp_path / "fleet.password"
        assert oct(pw_file.stat().st_mode & 0o777) == "0o600"
        kh = KnownHosts(avctl_home / "known_devices")
        assert all(kh.get(f"{d.host}:{d.port}") == d.fingerprint for d in fleet.devices)
        result = CliRunner().invoke(cli, ["fleet", "status", "-i", str(inv_path), f"--spec=videoos={SPEC_PATH}",
                                          "--json", "--site", "site-1", "--site", "site-2"])
        assert result.exit_code == 0, result.output
        doc = json.loads(result.output[result.output.index("{"):])
        assert doc["summary"]["ok"] == 6 and all(d["data"]["reachable"] for d in doc["devices"])
        pids = fleet.pids
    time.sleep(0.2)
    for pid in pids:  # the workers are gone
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        assert not alive


def test_emulate_fleet_command_serves_until_sigterm(tmp_path: Path, avctl_home: Path) -> None:
    inv = tmp_path / "demo.yaml"
    env = {**os.environ, "AVCTL_HOME": str(avctl_home)}
    proc = subprocess.Popen([sys.executable, "-c", "from avctl.cli.main import main; main()", "emulate", "fleet",
                             "--videoos", "4", "--spec", f"videoos={SPEC_PATH}", "-o", str(inv)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("4 emulated devices (4 videoos)"), first + (proc.stderr.read() if proc.stderr else "")
        status = subprocess.run([sys.executable, "-c", "from avctl.cli.main import main; main()", "fleet", "status",
                                 "-i", str(inv), f"--spec=videoos={SPEC_PATH}", "--csv"],
                                env=env, capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        rows = status.stdout.strip().splitlines()
        assert rows[0].startswith("device,family,outcome") and len(rows) == 5
        assert all(",ok," in r for r in rows[1:])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert proc.returncode == 0


def test_all_three_families_status_reboot_and_verbs(tmp_path: Path, avctl_home: Path) -> None:
    with EmulatedFleet({"videoos": 2, "polyuc": 2, "solstice": 2}, workers=2, sites=2) as fleet:
        inv_path = fleet.write_inventory(tmp_path / "fleet.yaml")
        inv = load_inventory(inv_path)
        pod = next(d for d in inv if d.family == "solstice")
        assert set(pod.ports) == {"http", "https"}  # v1 sockets written into the inventory
        runner = CliRunner()
        result = runner.invoke(cli, ["fleet", "status", "-i", str(inv_path), "--json"])
        doc = json.loads(result.output[result.output.index("{"):])
        assert doc["summary"]["ok"] == 6, result.output
        by = {d["device"]: d for d in doc["devices"]}
        assert by["polyuc-00001"]["data"]["model"] and by["solstice-00001"]["data"]["firmware"]
        assert by["videoos-00001"]["data"]["model"]
        result = runner.invoke(cli, ["fleet", "volume", "volume=25", "-i", str(inv_path), "--csv"])
        rows = [r.split(",") for r in result.output.strip().splitlines()[1:] if "-0000" in r]
        assert sorted((r[1], r[2]) for r in rows) == sorted(
            [("videoos", "ok")] * 2 + [("polyuc", "skipped")] * 2 + [("solstice", "skipped")] * 2)
        result = runner.invoke(cli, ["fleet", "reboot", "-i", str(inv_path), "--json", "--yes"])
        doc = json.loads(result.output[result.output.index("{"):])
        assert doc["summary"]["ok"] == 6, result.output
        audit = json.loads(runner.invoke(cli, ["audit", "--json", "--action", "*reboot*"]).output)
        assert sorted({(e["family"], e["action"]) for e in audit}) == [
            ("polyuc", "safe_reboot"), ("solstice", "v1_control_reboot"), ("videoos", "system_reboot")]


def test_emulated_fleet_faults_reach_every_device(tmp_path: Path, avctl_home: Path) -> None:
    with EmulatedFleet({"videoos": 1, "polyuc": 2}, workers=1, faults={"error_rate": 1.0}) as fleet:
        inv_path = fleet.write_inventory(tmp_path / "fleet.yaml")
        result = CliRunner().invoke(cli, ["fleet", "status", "-i", str(inv_path), "--retries", "0", "--json"])
        assert result.exit_code == 1  # something failed: the exit code says so
        doc = json.loads(result.output[result.output.index("{"):])
        assert doc["summary"] == {"ok": 0, "failed": 3, "unreachable": 0, "skipped": 0, "total": 3}
        assert all(d["attempts"] == 1 for d in doc["devices"])  # --retries 0
