"""The README's main job, run to the end as CI runs it (issue 15): `scripts/demo.py --keep`.

Checks the story its output tells (each JSON once, something said after a change, skips explained,
a varied fleet that `fleet status` finds things in), then runs the commands it says to try while the
fleet keeps running, then stops it with Ctrl-C (SIGINT) and checks the emulators are gone.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
READY = "Ctrl-C stops the emulated fleet"


def _read_until(proc: subprocess.Popen[str], mark: str, within: float) -> str:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith(mark):
            return "".join(lines)
    raise AssertionError(f"the demo did not reach {mark!r}; its output:\n{''.join(lines)}")


def test_the_demo_runs_to_the_end_tells_its_story_and_keeps_the_fleet(tmp_path: Path) -> None:
    """One run (the demo takes a minute or two): every check below reads its output."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "demo.py"), "--keep"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "AVCTL_DEMO_OUT": str(tmp_path / "demo-out")})
    try:
        demo = (proc, _read_until(proc, READY, within=900))
        check_single_devices_json_once_and_a_change_is_acknowledged(demo)
        check_status_finds_what_makes_the_fleet_varied(demo)
        check_skips_are_rare_and_explained(demo)
        check_config_and_the_server_tell_the_same_story(demo)
        check_keep_prints_commands_that_work_and_ctrl_c_stops_the_fleet(demo)
    finally:
        if proc.poll() is None:  # SIGTERM, as Ctrl-C: the demo stops its emulators (a kill would orphan them)
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)


def check_single_devices_json_once_and_a_change_is_acknowledged(demo: tuple[subprocess.Popen[str], str]) -> None:
    _proc, text = demo
    assert text.count('"serialNumber"') == 1  # one system's details, not the same JSON three times
    change = text.split("audio_volume_set volume=35", 1)[1]
    after = change.splitlines()[1:5]
    assert "ok" in after  # avctl call acknowledges a change that answers nothing
    assert any(line.startswith("  -> done") for line in after), after
    assert re.search(r"audio_volume_get.*\n35\n", change)  # read back
    assert "parameter 'volume': 150 is greater than the maximum of 100" in text
    assert "never retried" in text and "login as 'admin' failed" in text


def check_status_finds_what_makes_the_fleet_varied(demo: tuple[subprocess.Popen[str], str]) -> None:
    _proc, text = demo
    status = text.split("$ avctl fleet status", 1)[1].split("\n# ", 1)[0]
    table = {m.group(1): m.group(0) for m in re.finditer(r"^((?:videoos|polyuc|solstice)-\d+)\s.*$", status, re.M)}
    assert len(table) == 12
    assert table["videoos-00001"].count(" yes ") == 2  # reachable, and in a call
    assert table["videoos-00003"].count(" yes ") == 1
    assert " unreachable " in table["polyuc-00004"]
    assert " failed " in table["videoos-00004"] and "[auth]" in table["videoos-00004"]
    models = {m for m in ("StudioX30", "G7500", "StudioX50", "VVX 450", "Trio 8800", "Solstice Pod") if m in status}
    assert len(models) == 6
    # ... and the demo says in words what it found
    assert "videoos-00001 is in a call" in status
    assert "polyuc-00004 is unreachable" in status
    assert "videoos-00004 refused the inventory's password: auth_failed after 1 login attempt" in status
    for device, firmware in (("videoos-00002", "4.5.0"), ("polyuc-00002", "6.3.1.8427"),
                             ("solstice-00002", "5.4.1.10")):
        assert f"{device} runs firmware {firmware}, the baseline is" in status
    report = text.split("$ avctl firmware report", 1)[1].split("\n# ", 1)[0]
    assert "outdated" in report and "compliant" in report


def check_skips_are_rare_and_explained(demo: tuple[subprocess.Popen[str], str]) -> None:
    _proc, text = demo
    skipped = re.findall(r"^(\S+)\s+\S+\s+skipped\s+(.*?)\s*$", text, re.M)
    assert [device for device, _detail in skipped] == ["videoos-00001"]  # only the room in a meeting
    assert skipped[0][1].startswith("[in_call]")
    assert "'skipped' means left alone on purpose, not failed" in text
    assert "left alone: videoos-00001 (in_call)" in text
    assert re.search(r"-> muted on 6 of 8 device\(s\)", text)  # a sentence after each fleet change


def check_config_and_the_server_tell_the_same_story(demo: tuple[subprocess.Popen[str], str]) -> None:
    _proc, text = demo
    assert "applied and verified" in text and "0 change(s) on 0 device(s)" in text
    served = text.split("/api/v1/devices\n", 1)[1].split("$ curl -X POST", 1)[0]
    assert re.search(r"videoos-00004\s+videoos\s+auth_failed", served)
    assert re.search(r"polyuc-00004\s+polyuc\s+offline", served)
    assert "demo finished" in text


def check_keep_prints_commands_that_work_and_ctrl_c_stops_the_fleet(
        demo: tuple[subprocess.Popen[str], str]) -> None:
    proc, text = demo
    block = text.split("try these in another terminal:\n", 1)[1].split(READY, 1)[0]
    commands = [line.strip() for line in block.splitlines() if line.strip()]
    setup = [c for c in commands if c.startswith(("cd ", "export "))]
    assert any("AVCTL_HOME=" in c for c in setup) and any("AVCTL_PASSWORD=" in c for c in setup)
    status = next(c for c in commands if c.startswith("avctl fleet status -i "))
    call = next(c for c in commands if c.startswith("avctl call -f videoos "))
    ran = subprocess.run(["bash", "-c", "\n".join([*setup, status, call])], capture_output=True, text=True,
                         timeout=300, env={k: v for k, v in os.environ.items() if not k.startswith("AVCTL_")})
    assert re.search(r"^videoos-00001\s+videoos\s+ok", ran.stdout, re.M), ran.stdout + ran.stderr
    assert '"systemName": "videoos-00001"' in ran.stdout, ran.stderr
    address = call.split()[4]
    host, port = address.rsplit(":", 1)
    socket.create_connection((host, int(port)), timeout=10).close()  # still running

    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, rest
    assert "the emulated fleet is stopped" in rest and "Traceback" not in rest
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=10).close()


def _demo_module() -> object:
    spec = importlib.util.spec_from_file_location("avctl_demo_script", ROOT / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_keep_the_closing_words_name_no_command_that_needs_the_fleet() -> None:
    module: Any = _demo_module()
    words = "\n".join(module.closing(keep=False))
    assert "./scripts/demo --keep" in words
    assert "avctl " not in words and "-i " not in words


def test_the_paths_to_paste_are_absolute_when_the_demo_runs_in_the_checkout() -> None:
    """In the checkout (./scripts/demo writes demo-out/ there) the --keep lines stay short but must
    give an absolute AVCTL_HOME: avctl refuses a relative one (a first-hour finding)."""
    module: Any = _demo_module()
    line = f'cd {ROOT} && export AVCTL_HOME="{module.absolute(ROOT / "demo-out" / "home")}" && echo "$AVCTL_HOME"'
    assert "$PWD/demo-out/home" in line
    echoed = subprocess.run(["bash", "-c", line], capture_output=True, text=True, check=True).stdout.strip()
    assert echoed == str(ROOT / "demo-out" / "home")
