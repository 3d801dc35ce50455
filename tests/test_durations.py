"""Durations that would switch a timeout off (0, negative, nan, inf) or are absurd are refused: on the
command line (exit 2, nothing sent) and for library users at construction."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from avctl import Device
from avctl.cli.main import cli
from avctl.emulator.core import EmulatorThread
from avctl.emulator.polyuc import EmulatedPolyUC
from avctl.errors import UsageError
from avctl.fleet.runner import RunOptions

from .test_fleet_runner import SPEC_PATH, spawn

BAD = ["0", "-1", "nan", "inf", "-inf", "1e9", "soon"]


@pytest.mark.parametrize("value", BAD)
def test_call_refuses_a_timeout_that_is_not_one(emulators: EmulatorThread, value: str) -> None:
    dev = emulators.add(EmulatedPolyUC("vvx", password="pw"))
    result = CliRunner().invoke(cli, ["call", "-f", "polyuc", f"127.0.0.1:{dev.port}", "device_info",
                                      "--timeout", value])
    assert result.exit_code == 2
    assert "--timeout" in result.stderr and "Traceback" not in result.stderr
    assert not dev.requests


@pytest.mark.parametrize("option", ["--timeout", "--device-timeout", "--wait-timeout", "--wait-grace"])
@pytest.mark.parametrize("value", ["-1", "nan", "inf", "1e9"])
def test_fleet_refuses_bad_durations(emulators: EmulatorThread, tmp_path: Path, option: str, value: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    [dev] = spawn(emulators, 1)
    inv = tmp_path / "inventory.yaml"
    inv.write_text(f"defaults: {{family: videoos, password: env:FLEET_PW}}\ndevices:\n"
                   f"  {dev.name}: {{address: '127.0.0.1:{dev.port}'}}\n")
    monkeypatch.setenv("FLEET_PW", "x")
    result = CliRunner().invoke(cli, ["fleet", "reboot", "-y", "-i", str(inv), f"--spec=videoos={SPEC_PATH}",
                                      option, value])
    assert result.exit_code == 2, result.output
    assert option in result.stderr and "Traceback" not in result.stderr
    assert not dev.requests


@pytest.mark.parametrize("option", ["--timeout", "--device-timeout", "--wait-timeout"])
def test_fleet_refuses_zero_where_it_would_mean_no_timeout(tmp_path: Path, option: str) -> None:
    result = CliRunner().invoke(cli, ["fleet", "reboot", "-i", str(tmp_path / "none.yaml"), option, "0"])
    assert result.exit_code == 2 and option in result.stderr


def test_zero_grace_is_a_valid_choice() -> None:
    assert RunOptions(wait_grace=0).wait_grace == 0


@pytest.mark.parametrize("field", ["timeout", "device_timeout", "wait_timeout", "poll_interval"])
@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf, 10**9])
def test_run_options_refuse_at_construction(field: str, value: float) -> None:
    kwargs: dict[str, Any] = {field: value}
    with pytest.raises(UsageError, match=field):
        RunOptions(**kwargs)


@pytest.mark.parametrize("kwargs", [{"retries": -1}, {"retries": 50}, {"backoff": math.nan}])
def test_run_options_refuse_a_bad_retry_policy(kwargs: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        RunOptions(**kwargs)


@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf, "15"])
def test_device_refuses_a_bad_timeout(value: Any) -> None:
    with pytest.raises(UsageError, match="timeout"):
        Device("polyuc", "127.0.0.1:9", timeout=value)
