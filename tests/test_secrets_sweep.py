"""The secrets sweep: run real commands of every family with the right and a wrong password, then
search every byte they printed and every file they wrote for every secret of the run.

Secrets: each password (right and wrong), its HTTP Basic form, a secret action parameter, and the
credentials the emulators handed out (Solstice access tokens, VideoOS session ids), read back from
what the client sent them. Any hit fails with the file (or the command) and the offset.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote_plus

import pytest

from avctl.emulator.core import EmulatedDevice, EmulatorThread


@dataclass
class Family:
    name: str
    read: list[str]
    change: list[str]
    fleet_change: list[str]
    #: extra inventory fields for the device (v1 goes to the pod's v1 port)
    inventory: dict[str, object] = field(default_factory=dict)
    #: `avctl call` options
    call_options: list[str] = field(default_factory=list)


def _families(dev: EmulatedDevice) -> Family:
    name = dev.family
    if name == "videoos":
        return Family("videoos", ["audio_volume_get"], ["audio_volume_set", "volume=20"],
                      ["audio_volume_set", "volume=21"])
    if name == "polyuc":
        # a secret action parameter, from the environment, in a single call and in a fleet job
        sign_in = ["skype_sign_in", "Address=a@b.c", "Password=@env:SWEEP_PARAM"]
        return Family("polyuc", ["device_info"], sign_in, sign_in)
    raise AssertionError(name)


def _solstice(dev: EmulatedDevice, v1: bool) -> Family:
    if not v1:
        # status reads v1 fields too: the inventory names the pod's v1 (HTTPS) port
        return Family("solstice", ["config_get"], ["hdmi_input_set", "force_off=false"],
                      ["hdmi_input_set", "force_off=false"], inventory={"ports": {"https": dev.extra_ports["https"]}})
    v1_https = dev.extra_ports["https"]
    return Family("solstice", ["v1_config_get"], ["v1_control_wake"], ["v1_control_wake"],
                  inventory={"ports": {"https": v1_https}},
                  # the v1 API goes over HTTPS: the password never crosses plain HTTP
                  call_options=["--port", f"https={v1_https}"])


def _run(args: list[str], env: dict[str, str]) -> tuple[str, bytes, bytes]:
    proc = subprocess.run([sys.executable, "-m", "avctl.cli.main", *args], env=env, capture_output=True,
                          timeout=120, check=False)
    assert b"Traceback" not in proc.stderr, (args, proc.stderr.decode(errors="replace"))
    return " ".join(args), proc.stdout, proc.stderr


def _issued_credentials(dev: EmulatedDevice) -> set[str]:
    """Tokens and session ids the emulator handed out, as the client sent them back."""
    found: set[str] = set(getattr(dev, "sessions", {}) or {})
    for r in dev.requests:
        auth = r.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            found.add(auth[7:])
        for m in re.finditer(r"session_id=([^;\s]+)", r.headers.get("Cookie", "")):
            found.add(m.group(1))
    return {s for s in found if len(s) >= 8}


def _hits(blob: bytes, secrets: dict[str, str]) -> list[str]:
    out = []
    text = blob.decode("latin-1")
    decoded = unquote_plus(text)
    for label, secret in secrets.items():
        at = text.find(secret)
        if at >= 0:
            out.append(f"{label} at offset {at}")
        elif secret in decoded:
            out.append(f"{label} (URL-encoded) near offset {decoded.find(secret)}")
    return out


@pytest.mark.parametrize("case", ["videoos", "polyuc", "solstice-v2", "solstice-v1"])
def test_no_secret_in_any_output_or_file(case: str, emulators: EmulatorThread, tmp_path: Path,
                                         avctl_home: Path) -> None:
    family = case.split("-")[0]
    right, wrong = f"Sw33p-Right-{family}!", f"Sw33p-Wrong-{family}?"
    param_secret = "Sw33p-Param-Skype-Pw"
    dev = emulators.spawn(family, password=right)[0]
    fam = _solstice(dev, case.endswith("v1")) if family == "solstice" else _families(dev)
    inv_dir = tmp_path / "inventory"
    inv_dir.mkdir()
    inv = inv_dir / "inventory.yaml"
    entry = {"family": family, "address": f"127.0.0.1:{dev.port}", "password": "env:SWEEP_PW",
             **fam.inventory}
    inv.write_text(json.dumps({"devices": {f"{family}-room": entry}}))
    out_dir = tmp_path / "out"
    address = f"127.0.0.1:{dev.port}"
    runs: list[tuple[str, bytes, bytes]] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVCTL_")}
    env.update(AVCTL_HOME=str(avctl_home), SWEEP_PARAM=param_secret, COLUMNS="200")
    first_ok = False
    for password in (right, wrong):
        env["SWEEP_PW"] = password
        # every output format once per password, spread over the commands (subprocesses are slow)
        first = password == right
        call = ["call", "-f", family, address, "--password-env", "SWEEP_PW", "-y", *fam.call_options]
        runs.append(_run([*call[:4], *fam.read, *call[4:], *([] if first else ["--json"])], env))
        first_ok = first_ok or (first and b"HTTP 200" in runs[-1][2])
        runs.append(_run([*call[:4], *fam.change, *call[4:], *(["--json"] if first else [])], env))
        for fmt in (["--json"], ["--csv"] if first else []):  # the wrong round: JSON and the table
            runs.append(_run(["fleet", "status", "-i", str(inv), *fmt], env))
        runs.append(_run(["fleet", "run", *fam.fleet_change, "-i", str(inv), "-y", "-o", str(out_dir),
                          *([] if first else ["--csv"])], env))
    jobs = [j["id"] for j in json.loads(_run(["jobs", "list", "--json"], env)[1])]
    # the readers only read: run them side by side
    readers = [["audit"], ["audit", "--json"], ["jobs", "list"], ["jobs", "show", str(jobs[0])],
               ["jobs", "show", str(jobs[-1]), "--csv"], *(["jobs", "show", str(j), "--json"] for j in jobs)]
    with ThreadPoolExecutor(4) as pool:
        runs += pool.map(lambda args: _run(args, env), readers)
    # the run really used the right password (a sweep of failures proves little): the first
    # command, a read with the right password, succeeded
    assert first_ok, runs[0]
    status_right = next(r for r in runs if r[0].startswith("fleet status") and "--json" in r[0])
    assert b'"status": "ok"' in status_right[1], status_right  # fleet commands reached the device too
    issued = _issued_credentials(dev)
    if family in ("videoos", "solstice") and not case.endswith("v1"):
        assert issued, "the emulator handed out no session or token to look for"
    user = dev.user
    secrets = {"right password": right, "wrong password": wrong, "secret parameter": param_secret}
    for label, pw in (("right", right), ("wrong", wrong)):
        secrets[f"Basic form of the {label} password"] = base64.b64encode(f"{user}:{pw}".encode()).decode()
    secrets.update({f"issued credential {s[:6]}...": s for s in issued})
    # the search itself finds what it looks for, in clear and URL-encoded
    assert _hits(b"x" + right.encode() + b"y", secrets) and _hits(f"?p={quote(wrong)}".encode(), secrets)
    problems = []
    for args, stdout, stderr in runs:
        for stream, blob in (("stdout", stdout), ("stderr", stderr)):
            problems += [f"'avctl {args}' {stream}: {h}" for h in _hits(blob, secrets)]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "avctl.db" for p in files) and inv in files
    for path in files:
        problems += [f"{path}: {h}" for h in _hits(path.read_bytes(), secrets)]
    assert problems == []
