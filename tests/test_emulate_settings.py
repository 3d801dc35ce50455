"""`avctl emulate FAMILY --set KEY=VALUE` and `--list-settings` (issue 15): unknown settings and wrong
types are one clear line naming what is known; the list comes from the emulator's constructors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from avctl.cli.main import cli


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused setting is refused before any device listens."""
    monkeypatch.setattr("avctl.emulator.core._bind", lambda *_: pytest.fail("bound a socket"))


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["emulate", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_an_unknown_setting_is_refused_with_the_known_ones() -> None:
    code, out = _run("videoos", "--set", "foo=bar")
    assert code == 2
    assert "avctl: error: --set foo: the videoos emulator has no setting 'foo'" in out
    assert "known: firmware, lockout_after" in out and "request_log" in out  # base-class settings too
    assert "avctl emulate videoos --list-settings" in out
    assert "TypeError" not in out and "__init__" not in out


def test_a_misspelt_setting_gets_a_did_you_mean() -> None:
    code, out = _run("videoos", "--set", "firmwre=4.5.0")
    assert code == 2 and "did you mean 'firmware'?" in out
    code, out = _run("solstice", "--set", "token_lifetme=60")
    assert code == 2 and "did you mean 'token_lifetime'?" in out


@pytest.mark.parametrize(("family", "setting", "words"), [
    ("videoos", "lockout_after=abc", "lockout_after takes a value of type integer, not 'abc'"),
    ("videoos", "lockout_window=soon", "number | none"),
    ("polyuc", "status_as_number=maybe", "true/false"),
    ("polyuc", "auth_modes=", "comma-separated list"),
    ("polyuc", "processing_seconds=inf", "number"),
    ("videoos", "novalue", "expected KEY=VALUE"),
])
def test_a_value_of_the_wrong_type_is_refused_clearly(family: str, setting: str, words: str) -> None:
    code, out = _run(family, "--set", setting)
    assert code == 2 and words in out, out
    assert "hint:" in out


@pytest.mark.parametrize("family", ["videoos", "polyuc", "solstice"])
def test_list_settings_names_type_and_default_of_each(family: str) -> None:
    code, out = _run(family, "--list-settings")
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines() if line and not line.startswith("set with")}
    assert {"firmware", "model", "lockout_after", "scheme", "seed", "request_log"} <= set(rows)
    assert not {"name", "host", "port", "password", "spec"} & set(rows)  # options of their own, or objects
    assert "integer" in rows["lockout_after"] and "default 5" in rows["lockout_after"]
    code, text = _run(family, "--list-settings", "--json")
    listed = json.loads(text[text.index("["):])
    assert {s["name"] for s in listed} == set(rows)


def test_polyuc_settings_list_its_own_and_the_base_class_ones() -> None:
    _code, out = _run("polyuc", "--list-settings")
    assert "auth_modes" in out and "comma-separated list" in out and "('basic', 'digest')" in out
    assert out.index("auth_modes") < out.index("request_log")  # the family's own first, then the base's


def test_settings_reach_a_running_device(tmp_path: Path) -> None:
    """A real `avctl emulate` process with --set: the device answers with what was set."""
    env = {**os.environ, "AVCTL_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "avctl.cli.main", "emulate", "polyuc", "--json",
                             "--set", "model=Trio 8800", "--set", "firmware=7.2.2.1094", "--set", "auth_modes=digest"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert proc.stdout is not None
        text = ""
        while not text.rstrip().endswith("]"):
            line = proc.stdout.readline()
            assert line, "the emulator stopped before listing its device"
            text += line
        dev = json.loads(text)[0]
        done = subprocess.run([sys.executable, "-m", "avctl.cli.main", "call", "-f", "polyuc", dev["address"],
                               "device_info", "--json", "--password-env", "PW"],
                              env={**env, "PW": dev["password"]}, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        answer = json.dumps(json.loads(done.stdout))
        assert "Trio 8800" in answer and "7.2.2.1094" in answer
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.parametrize("family", ["videoos", "solstice"])
def test_the_try_line_of_an_emulator_works_as_printed(family: str, tmp_path: Path) -> None:
    """`avctl emulate FAMILY` ends with a command to try on its device (issue 15's walkthrough: a new
    user had addresses and passwords but no next step); run as printed, it reads the device."""
    env = {**os.environ, "AVCTL_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "avctl.cli.main", "emulate", family],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        line = ""
        while not line.startswith("try, in another terminal: "):
            line = proc.stderr.readline()
            assert line, "the emulator stopped before its try line"
        command = line.removeprefix("try, in another terminal: ").split("   (", 1)[0]
        assert "avctl emulate fleet -o fleet.yaml" in line
        bin_dir = str(Path(sys.executable).parent)
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120,
                              env={**env, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)  # the device's answer, as JSON
    finally:
        proc.terminate()
        proc.wait(30)
