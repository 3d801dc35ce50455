"""Seed 000's curl flow with real curl against the emulator; `avctl spec lint` over the catalog sample."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from avctl.cli.main import cli
from avctl.emulator.core import EmulatorThread
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.spec import load_spec, read_spec

from .conftest import DATA, SHARED

SPEC = load_spec(DATA / "videoos_min.md")
CATALOG = SHARED / "ai4av-sample" / "specs"


def curl(*args: str) -> str:
    done = subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True, text=True,
                          check=True)
    return done.stdout


def xsrf_from_jar(jar: Path) -> str:
    """What the FAQ's `for /f "tokens=6,7"` loop does: the XSRF-TOKEN line's 6th and 7th fields."""
    for line in jar.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 7 and fields[5] == "XSRF-TOKEN":
            return fields[6]
    raise AssertionError(f"no XSRF-TOKEN in {jar}")


@pytest.mark.usefixtures("curl_present")
def test_seed_000_curl_flow(emulators: EmulatorThread, tmp_path: Path) -> None:
    dev = emulators.add(EmulatedVideoOS("StudioX50-50626DFB", spec=SPEC, password="123"))
    assert isinstance(dev, EmulatedVideoOS)
    base = f"https://127.0.0.1:{dev.port}"
    jar = tmp_path / "cookies.txt"
    # login exactly as the FAQ writes it: -d with a JSON body, cookie jar in and out
    login = json.loads(curl("-b", str(jar), "-c", str(jar), "-d", '{"user": "admin","password": "123"}',
                            "-H", "Content-Type: application/json", "-k", f"{base}/rest/session"))
    assert login["success"] is True and login["loginStatus"]["loginResult"] == "NOLOCKOUT"
    assert "#HttpOnly_127.0.0.1" in jar.read_text()  # session_id is HttpOnly, as on the device
    token = xsrf_from_jar(jar)
    common = ["-k", "-b", str(jar), "-c", str(jar), "-H", "Content-Type: application/json",
              "-H", f"X-XSRF-TOKEN: {token}", "-H", "X-Requested-With: XMLHttpRequest"]
    system = json.loads(curl(*common, "-X", "GET", f"{base}/rest/system"))
    assert system["systemName"] == "StudioX50-50626DFB" and system["state"] == "READY"
    config = json.loads(curl(*common, "-X", "POST", "-d", '{"names": ["system.network.wireless.wifi.enabled"]}',
                             f"{base}/rest/config"))
    assert config == {"vars": [{"name": "system.network.wireless.wifi.enabled", "result": "NOERROR",
                                "value": "True", "isEditable": True, "isHidden": False, "isSecure": False}]}
    # the same session without the token is refused (4.6.2+ rule)
    no_token = curl("-k", "-b", str(jar), "-o", "/dev/null", "-w", "%{http_code}", f"{base}/rest/system")
    assert no_token == "403"
    status = curl(*common, "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                  "-d", '{"action":"reboot","restartAll":"True"}', f"{base}/rest/system/reboot")
    assert status == "200"
    assert dev.state.reboots == 1


def test_login_body_without_content_type_is_accepted(emulators: EmulatorThread, tmp_path: Path) -> None:
    dev = emulators.add(EmulatedVideoOS("x", spec=SPEC, password="123"))
    out = curl("-k", "-X", "POST", "--data-binary", '{"user":"admin","password":"123"}',
               "-H", "Content-Type:", f"https://127.0.0.1:{dev.port}/rest/session")
    assert json.loads(out)["success"] is True


needs_shared = pytest.mark.skipif(not CATALOG.is_dir(), reason="../shared (catalog sample, seeds) not beside the repo")


@needs_shared
def test_lint_whole_catalog_sample_without_crashing() -> None:
    files = sorted(CATALOG.rglob("*.md"))
    assert len(files) == 33
    result = CliRunner().invoke(cli, ["spec", "lint", "--json", str(CATALOG)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    report = json.loads(result.output)
    assert report["summary"]["files"] == 33
    errors = sum(1 for f in report["files"] for i in f["issues"] if i["severity"] == "error")
    warnings = sum(1 for f in report["files"] for i in f["issues"] if i["severity"] == "warning")
    assert (report["summary"]["errors"], report["summary"]["warnings"]) == (errors, warnings)
    assert errors > 0 and result.exit_code == 1  # the sample has real YAML defects; lint says so
    # best effort: every file still yields a spec, and broken items do not hide the good ones
    assert all(read_spec(f).spec is not None for f in files)
    medea = next(f for f in report["files"] if f["file"].endswith("barco_medea_ip.md"))
    assert medea["actions"] > 50


def test_lint_reports_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.md"
    bad.write_text((DATA / "videoos_min.md").read_text()
                   .replace("method: GET\n  path: /rest/audio/volume", "method: FETCH\n  path: /rest/audio/volume")
                   .replace("{name: volume, in: body, type: integer", "{name: volume, in: body, type: integr"))
    result = CliRunner().invoke(cli, ["spec", "lint", str(bad)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(f"{bad}:" in ln and "method 'FETCH'" in ln for ln in lines), result.output
    assert any("unknown type 'integr'" in ln for ln in lines)
    assert lines[-1] == "1 file(s): 2 error(s), 0 warning(s)"
    line_no = int(next(ln for ln in lines if "FETCH" in ln).split(":")[1])
    assert "audio_volume_get" in bad.read_text().splitlines()[line_no - 1]


@needs_shared
def test_flattened_seed_001_loads_all_98_actions() -> None:
    """Seed 001 is the AI4AV VideoOS spec with its Markdown and indentation flattened away."""
    result = read_spec(SHARED / "seeds" / "001_05481c0a5c4dd576.txt")
    assert result.spec is not None and result.errors == []
    spec = result.spec
    assert len(spec.actions) == 98
    assert spec.transport.base_url == "/rest" and spec.transport.auth_type == "basic"
    assert [p.name for p in spec.action("calendar_meetings_get_one").params] == ["meetingId"]
    entry = spec.action("directory_local_entries_add")
    assert {"type", "displayName", "favorite"} <= {p.name for p in entry.params}
    assert spec.action("audio_volume_set").body == "value"
