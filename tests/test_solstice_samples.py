"""Seed 004's own Python samples, run unmodified against an emulated pod at 127.x.y.z:5443.

The samples hard-code port 5443 and use `requests`. Only their placeholders are filled in (pod
address, password, then the token and meeting id earlier samples printed); each runs with the
test's Python in a subprocess and its printed output is checked against the pod's state. Samples
with `verify=False` skip certificate checks as written; the one without it verifies the pod's
certificate through `REQUESTS_CA_BUNDLE`.
"""

from __future__ import annotations

import ast
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from avctl.emulator.core import EmulatorThread
from avctl.emulator.solstice import EmulatedSolstice

pytest.importorskip("requests", reason="the seed's samples need 'requests' (dev extra; see requirements.lock)")

SAMPLES = Path(__file__).parent / "data" / "solstice_samples"
PASSWORD = "Mersive-Pod-7"


def run_sample(name: str, replacements: dict[str, str], tmp: Path, ca_file: Path) -> dict[str, Any]:
    """Run one sample with its placeholders filled; return its printed values by label."""
    text = (SAMPLES / name).read_text()
    for placeholder, value in replacements.items():
        text = text.replace(placeholder, value)
    script = tmp / name.removesuffix(".txt")
    script.write_text(text)
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(ca_file), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env,
                          cwd=tmp)
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = {}
    for line in done.stdout.splitlines():
        label, sep, value = line.partition(": ")
        if sep and label in ("Status code", "Response", "Access Token"):
            out[label] = value if label == "Access Token" else ast.literal_eval(value)
        else:
            out["printed"] = ast.literal_eval(line)  # the samples that just print(r.json())
    return out


@pytest.fixture
def pod(emulators: EmulatorThread) -> EmulatedSolstice:
    # its own loopback address at the real port, as the samples hard-code :5443
    rng = random.Random()
    host = f"127.{rng.randrange(16, 250)}.{rng.randrange(1, 250)}.{rng.randrange(2, 250)}"
    dev = emulators.add(EmulatedSolstice("pod-samples", host, 5443, password=PASSWORD))
    assert isinstance(dev, EmulatedSolstice)
    return dev


def test_seed_samples_run_unmodified(pod: EmulatedSolstice, tmp_path: Path) -> None:
    ca_file = tmp_path / "pod.pem"
    ca_file.write_bytes(pod.cert_pem)
    address = {"<Replace with Pod IP address>": pod.host, "replace_with_pod_IP_or_host": pod.host}

    # Step 1: authenticate
    auth = run_sample("01_authenticate.py.txt", {**address, "<Replace with Pod Password>": PASSWORD},
                      tmp_path, ca_file)
    assert auth["Status code"] == 200
    assert auth["Response"]["token_type"] == "jwt"
    token = auth["Access Token"]
    assert token == auth["Response"]["access_token"] and token.count(".") == 2
    with_token = {**address, "<Replace with Access Token>": token, "{access-token}": token}

    # Step 2: get digital signage
    signage = run_sample("02_get_digital_signage.py.txt", with_token, tmp_path, ca_file)
    assert signage["Status code"] == 200
    assert signage["Response"] == pod.state.config["display"]["digital_signage"]

    # Step 3: update digital signage
    pod.state.config["display"]["digital_signage"]["enabled"] = True
    update = run_sample("03_update_digital_signage.py.txt", with_token, tmp_path, ca_file)
    assert update["Status code"] == 200
    assert update["Response"]["message"] == "success!"
    assert update["Response"]["device_id"] == pod.state.device_id
    assert pod.state.config["display"]["digital_signage"] == {
        "enabled": False, "external_caching_enabled": False, "instruction_options": "network_only",
        "screen_options": "fullscreen", "start_after": 10, "url": "https://digitalsignage.mersive.com",
    }

    # Calendar: add (the sample posts no body and verifies the certificate), get, delete
    added = run_sample("04_calendar_add.py.txt", with_token, tmp_path, ca_file)["printed"]
    meeting_id = added["id"]
    assert list(added) == ["id"] and meeting_id in pod.state.meetings
    got = run_sample("05_calendar_get.py.txt", {**with_token, "<Replace with Meeting ID>": meeting_id},
                     tmp_path, ca_file)
    assert got["Status code"] == 200
    assert got["Response"] == pod.state.meetings[meeting_id]
    deleted = run_sample("06_calendar_delete.py.txt", {**with_token, "{id}": meeting_id}, tmp_path, ca_file)
    assert deleted["printed"] == {"message": "success!", "reboot_required": False, "restart_required": False}
    assert meeting_id not in pod.state.meetings

    # Camera firmware status
    camera = run_sample("07_camera_status.py.txt", with_token, tmp_path, ca_file)
    assert camera == {"Status code": 200, "Response": {"updateStatus": "idle"}}

    # one token served every sample, as the seed's walk-through intends
    assert pod.tokens_issued == 1
    assert all(r.headers.get("Authorization") == f"Bearer {token}" for r in pod.requests
               if r.path != "/v2/token")
