"""Seed 002's curl examples, run with real curl against the emulated phone, get the documented
answers; and the avctl command line drives UC phones exactly as it drives VideoOS systems."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from avctl.cli.main import cli
from avctl.emulator.core import EmulatorThread
from avctl.emulator.polyuc import EmulatedPolyUC

needs_curl = pytest.mark.usefixtures("curl_present")
OK = {"Status": "2000"}


def curl(*args: str) -> str:
    done = subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True, text=True, check=True)
    return done.stdout


def phone(emulators: EmulatorThread, password: str = "789", scheme: str = "https", **kw: object) -> EmulatedPolyUC:
    dev = EmulatedPolyUC(f"vvx-{password}-{scheme}", password=password, scheme=scheme, **kw)  # type: ignore[arg-type]
    dev.faults.reboot_seconds = 0.3
    emulators.add(dev)
    return dev


@needs_curl
def test_get_examples(emulators: EmulatorThread) -> None:
    plain = phone(emulators, "789", "http")
    secure = phone(emulators, "777")
    out = curl("-X", "GET", "-H", "Content-Type: application/JSON",
               f"http://Polycom:789@127.0.0.1:{plain.port}/api/v1/mgmt/transferType/get")
    assert json.loads(out) == {"data": {"Type": "Consultative"}, "Status": "2000"}
    out = json.loads(curl("-k", "-X", "GET", "-H", "Content-Type: application/JSON",
                          f"https://Polycom:777@127.0.0.1:{secure.port}/api/v1/mgmt/network/stats"))
    assert out["Status"] == "2000" and set(out["data"]) == {"RxPackets", "TxPackets", "UpTime"}


@needs_curl
def test_dial_then_call_status_then_end_call_by_handle(emulators: EmulatorThread) -> None:
    dev = phone(emulators, "789", "http")
    secure = f"https://Polycom:789@127.0.0.1:{phone(emulators).port}"
    dev.phone.next_handles.append(0x2341880)  # the handle of the FAQ's example
    out = curl("-d", '{"data": {"Dest": 123,"Line": 1,"Type": "SIP"}}', "-H", "Content-Type: application/json",
               f"http://Polycom:789@127.0.0.1:{dev.port}/api/v1/callctrl/dial")
    assert json.loads(out) == OK
    status = json.loads(curl("-X", "GET", "-H", "Content-Type: application/JSON",
                             f"http://Polycom:789@127.0.0.1:{dev.port}/api/v1/webCallControl/callStatus"))
    duration = status["data"].pop("DurationInSeconds")
    assert duration.isdigit()
    assert status == {"data": {"CallHandle": "0x2341880", "LineId": "1", "Type": "Outgoing", "Protocol": "Sip",
                               "CallState": "Connected", "RemotePartyName": "123", "RemotePartyNumber": "123"},
                      "Status": "2000"}
    # "The CallHandle Value without the 0x is the Call_Reference", sent as a JSON number
    ref = int(status["data"]["CallHandle"].removeprefix("0x"))
    out = curl("-d", json.dumps({"data": {"Ref": ref}}), "-H", "Content-Type: application/JSON",
               f"http://Polycom:789@127.0.0.1:{dev.port}/api/v1/callctrl/endCall")
    assert json.loads(out) == OK and dev.phone.calls == {}
    # the same over HTTPS with -k, and paths in any case (clients write WebCallControl)
    idle = json.loads(curl("-k", f"{secure}/api/v1/WebCallControl/callStatus"))
    assert idle == {"Status": "4007"}


@needs_curl
def test_config_set_example(emulators: EmulatorThread) -> None:
    dev = phone(emulators)
    body = '{"data": {"device.set": "1","device.prov.serverName.set": "1","device.prov.serverName": "10.252.149.102" }}'
    out = curl("-k", "-d", body, "-H", "Content-Type: application/json",
               f"https://Polycom:789@127.0.0.1:{dev.port}/api/v1/mgmt/config/set")
    assert json.loads(out) == OK
    assert dev.phone.config["device.prov.serverName"].current == "10.252.149.102"
    got = json.loads(curl("-k", "-d", '{"data": ["device.prov.serverName"]}', "-H", "Content-Type: application/json",
                          f"https://Polycom:789@127.0.0.1:{dev.port}/api/v1/mgmt/config/get"))
    assert got == {"data": {"device.prov.serverName": {"Value": "10.252.149.102", "Source": "web"}},
                   "Status": "2000"}


@needs_curl
def test_safe_restart_needs_d_empty(emulators: EmulatorThread) -> None:
    dev = phone(emulators, "777", "http")
    url = f"http://Polycom:777@127.0.0.1:{dev.port}/api/v1/mgmt/safeRestart"
    # without -d curl sends no Content-Length and the phone answers 411, as the FAQ warns
    code = curl("-X", "POST", "-H", "Content-Type: application/json", "-o", "/dev/null", "-w", "%{http_code}", url)
    assert code == "411" and dev.phone.restarts == 0
    out = curl("-X", "POST", "-H", "Content-Type: application/json", "-d", "", url)
    assert json.loads(out) == OK and dev.phone.restarts == 1


@needs_curl
def test_simulate_touch_tap_and_swipe(emulators: EmulatorThread) -> None:
    dev = phone(emulators)
    url = f"https://Polycom:789@127.0.0.1:{dev.port}/api/v1/mgmt/simulateTouch"
    tap = '{"data": {"Type": "Tap", "Positions": [\n{"X": "70","Y": "34"}\n]}}'
    swipe = ('{\n"data": {"Type": "Swipe", "Positions": [\n{"X": "68","Y": "121"}\n,\n{"X": "320","Y": "156"}\n],\n'
             '"Duration": "100"\n}\n}')
    for body in (tap, swipe):
        assert json.loads(curl("-k", "-d", body, "-H", "Content-Type: application/json", url)) == OK
    assert dev.phone.touch_events == [{"Type": "Tap", "Positions": [(70, 34)]},
                                      {"Type": "Swipe", "Positions": [(68, 121), (320, 156)], "Duration": 100}]


@needs_curl
def test_skype_sign_in_and_out(emulators: EmulatorThread) -> None:
    dev = phone(emulators)
    base = f"https://Polycom:789@127.0.0.1:{dev.port}/api/v1/mgmt/skype"
    body = ('{"data": {"Address": "test.user@poly.com","User": "test.user@poly.com","Password": "MyPassword", '
            '"Domain":"" ,"LockCode":"" }}')
    assert json.loads(curl("-k", "-d", body, "-H", "Content-Type: application/json", f"{base}/signIn")) == OK
    assert dev.phone.skype_address == "test.user@poly.com"
    out = curl("-X", "POST", "-H", "Content-Type: application/json", "-d", "", "-k", f"{base}/signOut")
    assert json.loads(out) == OK and dev.phone.skype_user is None


@needs_curl
def test_update_configuration_batch_line(emulators: EmulatorThread) -> None:
    dev = phone(emulators)
    url = f"https://Polycom:789@127.0.0.1:{dev.port}/api/v1/mgmt/updateConfiguration"
    args = ("-i", "-X", "POST", "-H", "Content-Type: application/json", "-d", "", "-k", url)
    first = curl(*args)  # no provisioning server yet: Status 4006 "URLs not configured"
    assert first.startswith("HTTP/1.1 200") and "Server: Polycom SoundPoint IP Telephone HTTPd" in first
    assert json.loads(first.split("\n\n", 1)[1]) == {"Status": "4006"}
    dev.phone.config_set({"device.set": "1", "device.prov.serverName.set": "1", "device.prov.serverName": "prov"})
    assert json.loads(curl(*args).split("\n\n", 1)[1]) == OK and dev.phone.provisioning_checks == 1


@needs_curl
def test_curl_digest_and_wrong_password(emulators: EmulatorThread) -> None:
    dev = phone(emulators, auth_modes=("digest",))
    url = f"https://127.0.0.1:{dev.port}/api/v2/mgmt/device/info"
    out = json.loads(curl("-k", "--digest", "-u", "Polycom:789", url))
    assert out["data"]["ModelNumber"] == dev.phone.model
    code = curl("-k", "--digest", "-u", "Polycom:nope", "-o", "/dev/null", "-w", "%{http_code}", url)
    assert code == "401" and dev.auth_failures == 1
    basic = curl("-k", "-u", "Polycom:789", "-o", "/dev/null", "-w", "%{http_code}", url)
    assert basic == "401"  # this phone only takes Digest


# --- the command line --------------------------------------------------------------------------------


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_lists_uc_actions_like_any_family() -> None:
    code, out, _ = run("actions", "polyuc", "--json")
    assert code == 0
    listed = {a["id"]: a for a in json.loads(out)}
    assert len(listed) == 44
    assert listed["callctrl_end_call"]["disruptive"] and not listed["call_status"]["disruptive"]
    assert [p["name"] for p in listed["callctrl_dial"]["params"]] == ["Dest", "Line", "Type"]
    code, out, _ = run("actions", "--search", "callctrl_dial")
    assert code == 0 and "polyuc" in out


def test_cli_calls_uc_actions(emulators: EmulatorThread, monkeypatch: pytest.MonkeyPatch) -> None:
    dev = phone(emulators, "pw-uc-1")
    monkeypatch.setenv("UC_PW", "pw-uc-1")
    addr = f"127.0.0.1:{dev.port}"
    code, out, err = run("call", "-f", "polyuc", addr, "callctrl_dial", "Dest=123", "Line=1", "Type=SIP",
                         "--password-env", "UC_PW")
    assert code == 0, err
    code, out, err = run("call", "-f", "polyuc", addr, "call_status", "--json", "--password-env", "UC_PW")
    assert code == 0, err
    calls = json.loads(out)["data"]
    assert [c["RemotePartyNumber"] for c in calls] == ["123"]
    handle = calls[0]["CallHandle"]
    # hang-up is disruptive: it needs --yes without a terminal
    code, _, err = run("call", "-f", "polyuc", addr, "callctrl_end_call", f"Ref={handle}", "--password-env", "UC_PW")
    assert code == 1 and "--yes" in err and len(dev.phone.calls) == 1
    code, _, err = run("call", "-f", "polyuc", addr, "callctrl_end_call", f"Ref=0x{handle}", "--yes",
                       "--password-env", "UC_PW")
    assert code == 0, err
    assert dev.phone.calls == {}
    code, _, err = run("call", "-f", "polyuc", addr, "call_status_v1", "--password-env", "UC_PW")
    assert code == 1 and "Status 4007 (call does not exist)" in err and "Traceback" not in err
    assert "pw-uc-1" not in out + err


def test_cli_validation_sends_nothing(emulators: EmulatorThread, monkeypatch: pytest.MonkeyPatch) -> None:
    dev = phone(emulators)
    monkeypatch.setenv("UC_PW", "789")
    code, _, err = run("call", "-f", "polyuc", f"127.0.0.1:{dev.port}", "callctrl_end_call", "Ref=not-a-handle",
                       "--yes", "--password-env", "UC_PW")
    assert code == 2 and "parameter 'Ref'" in err
    assert dev.requests == []


@needs_curl
def test_avctl_emulate_polyuc_serves_phones(tmp_path: Path) -> None:
    avctl = Path(sys.executable).with_name("avctl")
    proc = subprocess.Popen([str(avctl), "emulate", "polyuc", "--count", "2", "--password", "pw-e", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "AVCTL_HOME": str(tmp_path)})
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.rstrip() == "]":
                break
        devices = json.loads("".join(lines))
        assert [d["family"] for d in devices] == ["polyuc", "polyuc"]
        for d in devices:
            out = json.loads(curl("-k", "-u", "Polycom:pw-e", f"https://{d['address']}/api/v2/mgmt/device/info"))
            assert out["Status"] == "2000" and out["data"]["ModelNumber"]
    finally:
        proc.terminate()
        proc.wait(10)
