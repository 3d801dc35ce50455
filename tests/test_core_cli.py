"""The CLI against emulated devices: calls, JSON output, one-line errors, confirmation, trust."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from avctl.cli.main import cli
from avctl.emulator.core import EmulatorThread
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.spec import load_spec

from .conftest import DATA

SPEC = load_spec(DATA / "videoos_min.md")


@pytest.fixture
def studio(emulators: EmulatorThread, monkeypatch: pytest.MonkeyPatch) -> EmulatedVideoOS:
    # the CLI takes family specs from the package; point the family at the small test spec
    monkeypatch.setattr("avctl.cli.call.builtin_spec", lambda family: SPEC)
    monkeypatch.setenv("ROOM_PW", "pw-123")
    dev = emulators.add(EmulatedVideoOS("room", spec=SPEC, password="pw-123"))
    assert isinstance(dev, EmulatedVideoOS)
    return dev


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_call_json_and_password_never_printed(studio: EmulatedVideoOS) -> None:
    addr = f"127.0.0.1:{studio.port}"
    code, out, err = run("call", "-f", "videoos", addr, "audio_volume_set", "volume=12", "--password-env", "ROOM_PW")
    assert code == 0, err
    code, out, err = run("call", "-f", "videoos", addr, "audio_volume_get", "--json", "--password-env", "ROOM_PW")
    assert code == 0 and json.loads(out)["data"] == 12
    assert "pw-123" not in out + err


def test_validation_error_is_one_line_and_nothing_sent(studio: EmulatedVideoOS) -> None:
    code, _, err = run("call", "-f", "videoos", f"127.0.0.1:{studio.port}", "audio_volume_set", "volume=loud",
                         "--password-env", "ROOM_PW")
    assert code == 2
    assert err.splitlines()[0].startswith("avctl: error: audio_volume_set: parameter 'volume'")
    assert "Traceback" not in err
    assert studio.requests == []


def test_disruptive_needs_yes_without_terminal(studio: EmulatedVideoOS) -> None:
    addr = f"127.0.0.1:{studio.port}"
    code, _, err = run("call", "-f", "videoos", addr, "system_reboot", "--password-env", "ROOM_PW")
    assert code == 1 and "needs confirmation" in err and "--yes" in err
    assert studio.requests == [] and studio.state.reboots == 0
    code, _, err = run("call", "-f", "videoos", addr, "system_reboot", "--yes", "--password-env", "ROOM_PW")
    assert code == 0, err
    assert studio.state.reboots == 1


def test_wrong_password_one_line(studio: EmulatedVideoOS, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOM_PW", "nope")
    code, _, err = run("call", "-f", "videoos", f"127.0.0.1:{studio.port}", "system_get", "--password-env", "ROOM_PW")
    assert code == 1 and "login as 'admin' failed" in err and "does not retry" in err
    assert "nope" not in err


def test_changed_certificate_then_trust_replace(studio: EmulatedVideoOS, emulators: EmulatorThread,
                                                avctl_home: Path) -> None:
    addr = f"127.0.0.1:{studio.port}"
    assert run("call", "-f", "videoos", addr, "system_get", "--password-env", "ROOM_PW")[0] == 0
    studio.reset_certificate()
    assert emulators.server is not None
    emulators.run(emulators.server.restart_listener(studio))
    code, _, err = run("call", "-f", "videoos", addr, "system_get", "--password-env", "ROOM_PW")
    assert code == 1 and "certificate of" in err and "changed" in err and "--replace" in err
    code, out, _ = run("call", "-f", "videoos", addr, "system_get", "--insecure", "--password-env", "ROOM_PW")
    assert code == 0
    code, out, err = run("trust", addr)
    assert code == 2 and "--replace" in err
    code, out, err = run("trust", addr, "--replace")
    assert code == 0 and "pinned" in out and "(was SHA256:" in out
    assert run("call", "-f", "videoos", addr, "system_get", "--password-env", "ROOM_PW")[0] == 0
    assert (avctl_home / "known_devices").exists()


def test_unknown_family_and_action_are_clear(studio: EmulatedVideoOS) -> None:
    code, _, err = run("call", "-f", "videoos", "127.0.0.1:1", "sytem_get", "--password-env", "ROOM_PW")
    assert code == 2 and "unknown action 'sytem_get'" in err and "did you mean system_get" in err


def test_state_changing_call_is_audited_without_secrets(studio: EmulatedVideoOS, avctl_home: Path) -> None:
    from avctl.fleet.audit import AuditLog

    addr = f"127.0.0.1:{studio.port}"
    assert run("call", "-f", "videoos", addr, "audio_volume_set", "volume=7", "--password-env", "ROOM_PW")[0] == 0
    assert run("call", "-f", "videoos", addr, "audio_volume_get", "--password-env", "ROOM_PW")[0] == 0  # a query
    with AuditLog() as audit:
        rows = [r.as_dict() for r in audit.query()]
    assert len(rows) == 1
    assert rows[0]["action"] == "audio_volume_set" and rows[0]["outcome"] == "ok"
    assert json.loads(rows[0]["params"]) == {"volume": 7} if isinstance(rows[0]["params"], str) \
        else rows[0]["params"] == {"volume": 7}
    for f in avctl_home.rglob("*"):
        if f.is_file():
            assert b"pw-123" not in f.read_bytes(), f


def test_actions_and_describe_come_from_the_spec() -> None:
    code, out, _ = run("actions", "videoos", "--search", "volume", "--json")
    listed = json.loads(out)
    assert code == 0 and {a["id"] for a in listed} >= {"audio_volume_get", "audio_volume_set"}
    vol = next(a for a in listed if a["id"] == "audio_volume_set")
    assert vol["params"][0]["name"] == "volume" and vol["params"][0]["type"] == "integer 0..100"
    code, out, _ = run("describe", "videoos", "system_reboot")
    assert code == 0 and "disruptive" in out and "restart_all" in out


def test_secret_parameters_never_reach_the_audit_log(emulators: EmulatorThread, avctl_home: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from avctl.emulator.polyuc import EmulatedPolyUC
    from avctl.fleet.audit import AuditLog

    phone = emulators.add(EmulatedPolyUC("desk", password="789"))
    monkeypatch.setenv("PHONE_PW", "789")
    code, _, err = run("call", "-f", "polyuc", f"127.0.0.1:{phone.port}", "skype_sign_in",
                         "Address=a@b.c", "User=a@b.c", "Password=Sfb-Pass-9", "LockCode=Lk-82649137",
                         "--password-env", "PHONE_PW")
    assert code == 0, err
    with AuditLog() as audit:
        (row,) = [r.as_dict() for r in audit.query()]
    params = json.loads(row["params"]) if isinstance(row["params"], str) else row["params"]
    assert set(params["Password"]) == set(params["LockCode"]) == {"*"} and params["Address"] == "a@b.c"
    for f in avctl_home.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert b"Sfb-Pass-9" not in data and b"Lk-82649137" not in data, f
