"""A small mixed fleet for the first-hour tests: one codec, one phone, one pod on loopback, an
inventory naming them, and `avctl` run through click's runner."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from avctl.cli.main import cli
from avctl.emulator.core import EmulatorThread
from avctl.emulator.polyuc import EmulatedPolyUC
from avctl.emulator.solstice import EmulatedSolstice
from avctl.emulator.videoos import EmulatedVideoOS

PASSWORD = "first-hour-pw"


@dataclass
class Fleet:
    codec: EmulatedVideoOS
    phone: EmulatedPolyUC
    pod: EmulatedSolstice
    inventory: Path


def mixed_fleet(emulators: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    monkeypatch.setenv("FLEET_PW", PASSWORD)
    codec = emulators.add(EmulatedVideoOS("codec-1", password=PASSWORD))
    phone = emulators.add(EmulatedPolyUC("phone-1", password=PASSWORD))
    pod = emulators.add(EmulatedSolstice("pod-1", password=PASSWORD, v1_http_port="off"))
    inv = tmp_path / "fleet.yaml"
    inv.write_text(
        "defaults: {password: env:FLEET_PW}\n"
        "devices:\n"
        f"  codec-1: {{family: videoos, address: '127.0.0.1:{codec.port}'}}\n"
        f"  phone-1: {{family: polyuc, address: '127.0.0.1:{phone.port}'}}\n"
        f"  pod-1: {{family: solstice, address: '127.0.0.1:{pod.port}', "
        f"ports: {{https: {pod.extra_ports['https']}}}}}\n")
    return Fleet(codec, phone, pod, inv)


def avctl(*args: str, code: int | None = 0) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if code is not None:
        assert result.exit_code == code, result.output
    return result
