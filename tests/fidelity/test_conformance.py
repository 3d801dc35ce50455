"""`avctl conformance`: the same checks against the emulator and a device, read-only, side by side.

The "device" here is an emulator too (over real HTTPS on loopback, started by the test), once as
it is and once changed the way a real device could differ (another status for an unknown session,
a member the emulator lacks, a number where the emulator sends text): the report must find
exactly those differences, and the device must only ever be read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from aiohttp import web

from avctl.emulator.core import Ctx, EmulatedDevice, EmulatorThread, emulator_class, reply
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.profile import load_profile, shipped_profiles

FAMILIES = ("videoos", "polyuc", "solstice")
PASSWORD = "Conformance-Pw-1"


def _avctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "avctl", *args], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "DEV_PW": PASSWORD})


def _against(dev: EmulatedDevice, *extra: str) -> subprocess.CompletedProcess[str]:
    ports = [f"--port={scheme}={port}" for scheme, port in dev.extra_ports.items()
             if dev.family == "solstice"]
    return _avctl("conformance", "-f", dev.family, f"{dev.host}:{dev.port}", "--user", dev.user,
                  "--password-env", "DEV_PW", *ports, *extra)


def _read_only(dev: EmulatedDevice) -> list[str]:
    """Requests the device saw that were neither a read, a login/logout nor a credential-less probe."""
    changes = []
    for request in dev.requests:
        resolved = dev.router.resolve(request.method, dev.normalize_path(request.path))
        if isinstance(resolved, int):
            continue
        action = resolved[0]
        if action.kind != "query" and not any(w in action.id for w in ("session", "login", "logout", "token")):
            changes.append(f"{request.method} {request.path} ({action.id})")
    return changes


@pytest.mark.parametrize("family", FAMILIES)
def test_the_emulator_alone_passes_its_family_checks(family: str) -> None:
    done = _avctl("conformance", "-f", family, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["clean"] and report["device"] is None
    assert len(report["checks"]) >= 6 and all(c["emulator"]["ok"] is not False for c in report["checks"])
    assert all(c["evidence"] for c in report["checks"])


@pytest.mark.parametrize("family", FAMILIES)
def test_an_emulated_device_matches_the_emulator_and_is_only_read(family: str) -> None:
    with EmulatorThread() as emu:
        dev = emu.add(emulator_class(family)("dut", "127.0.0.61", password=PASSWORD))
        done = _against(dev)
        changes = _read_only(dev)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the emulator answers as the device does" in done.stdout
    assert "0 differences in form" in done.stdout
    assert changes == []
    assert PASSWORD not in done.stdout + done.stderr


class DifferentCodec(EmulatedVideoOS):
    """A system that differs from the emulator as a real one could: 401 for an unknown session,
    an extra member in /rest/system and a number where the emulator sends text."""

    async def authenticate(self, request: web.Request, action: Any, body: bytes) -> web.StreamResponse | None:
        if "avctl-conformance-unknown" in request.headers.get("Cookie", ""):
            return reply({"success": False}, 401)
        return await super().authenticate(request, action, body)

    async def on_system_get(self, ctx: Ctx) -> web.StreamResponse:
        answer = json.loads((await super().on_system_get(ctx)).body)  # type: ignore[union-attr, arg-type]
        answer["hardwareRevision"] = "B"
        answer["systemName"] = 42
        return reply(answer)


def test_the_report_names_each_difference_and_fails() -> None:
    with EmulatorThread() as emu:
        dev = emu.add(DifferentCodec("odd", "127.0.0.62", password=PASSWORD))
        done = _against(dev)
        as_json = _against(dev, "--json")
    assert done.returncode == 1
    out = done.stdout
    assert "unknown_session_403" in out and "device fails (HTTP 401)" in out and "<- differs" in out
    assert "system_get /hardwareRevision: device string, emulator missing" in out
    assert "system_get /systemName: device number, emulator string" in out
    # the number where a name belongs also breaks the client's `name` reading
    assert "readings_fit" in out and "device fails (name: /systemName is a number, not string)" in out
    assert "the emulator differs from the device in 4 places" in out
    report = json.loads(as_json.stdout)
    assert not report["clean"]
    assert {(d["read"], d["at"]) for d in report["differences"]} == {("system_get", "/hardwareRevision"),
                                                                     ("system_get", "/systemName")}


def test_a_wrong_password_costs_one_login_and_reads_nothing() -> None:
    with EmulatorThread() as emu:
        dev = emu.add(EmulatedVideoOS("locked", "127.0.0.63", password="not-the-one"))
        done = _against(dev)
    assert done.returncode not in (0, 1) or "error" in done.stderr
    assert done.returncode != 0
    assert dev.login_attempts == 1
    assert "Traceback" not in done.stderr and "avctl: error:" in done.stderr


def test_host_and_profile_together_are_refused() -> None:
    done = _avctl("conformance", "-f", "polyuc", "127.0.0.1:1", "--profile", "x.json")
    assert done.returncode == 2 or "not both" in done.stderr
    assert "give a HOST or --profile, not both" in done.stderr


@pytest.mark.parametrize("name", sorted(shipped_profiles()))
def test_the_suite_passes_against_every_shipped_profile(name: str) -> None:
    """Each shipped profile stands in for a real device (two of them hold recorded answers of a
    Studio X30 and a Trio 8800): the emulator, set up as that model, must answer as it does, down
    to the members (a Trio's empty AttachedHardware, no canStartUpdate before VideoOS 4)."""
    family = load_profile(name).family
    done = _avctl("conformance", "-f", family, "--profile", name, "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 0, json.dumps(report["differences"]) + json.dumps(
        [c for c in report["checks"] if c["differs"]])
    assert report["clean"] and report["reads_compared"] >= 15
    assert all(c["device"]["ok"] is not False for c in report["checks"])
