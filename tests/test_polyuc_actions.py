"""Every Poly UC action in the spec, called through the client against the emulator over HTTPS.

The test is parametrised from the spec itself: an action without an entry in CASES fails, so a
new spec action cannot go untested. Each case may prepare the phone, gives the parameters, and
checks the result against the emulator's state (not against fixed answers).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from avctl import Credentials, Device, TLSPolicy
from avctl.emulator.core import EmulatorThread, Router
from avctl.emulator.polyuc import EmulatedPolyUC
from avctl.emulator.polyuc.state import Call
from avctl.families import builtin_spec

from .conftest import DATA

SPEC = builtin_spec("polyuc")
PASSWORD = "789"

Phone = EmulatedPolyUC


def dial(dev: Phone, number: str = "123", line: int = 1) -> Call:
    return dev.phone.dial(number, line, "SIP")


def ring(dev: Phone, number: str = "5551234") -> Call:
    return dev.phone.incoming(number, "Caller")


def only_call(dev: Phone) -> Call:
    assert len(dev.phone.calls) == 1
    return next(iter(dev.phone.calls.values()))


def ref_of(dev: Phone) -> str:
    return "0x" + only_call(dev).hex


@dataclass
class Case:
    check: Callable[[Phone, Any], None]
    params: Callable[[Phone], dict[str, Any]] = lambda dev: {}
    setup: Callable[[Phone], Any] = lambda dev: None
    extra: dict[str, Any] = field(default_factory=dict)


def _set(dev: Phone, **values: str) -> None:
    dev.phone.config_set({k.replace("__", "."): v for k, v in values.items()})


def _config(dev: Phone, name: str) -> str:
    return dev.phone.config[name].current


def _check_config_reset_source(dev: Phone, data: Any) -> None:
    assert _config(dev, "lcl.ml.lang") == "English_United_States"  # the web value is gone
    assert _config(dev, "tone.dtmf.level") == "-3"  # the device-menu value stays
    assert dev.phone.config_resets == ["web"]


def _setup_config_reset_source(dev: Phone) -> None:
    dev.phone.config_set({"lcl.ml.lang": "German_Germany", "tone.dtmf.level": "-3"})
    dev.phone.config["tone.dtmf.level"].source = "device"


def _setup_two_lines_calls(dev: Phone) -> None:
    dev.phone.lines[1].registered = True
    dial(dev, "111", 1)
    dial(dev, "222", 2)


CASES: dict[str, Case] = {
    # -- restart, reset, provisioning --
    "safe_restart": Case(lambda dev, data: (dev.phone.restarts == 1 and data is None) or _fail()),
    "safe_reboot": Case(lambda dev, data: (dev.phone.reboots == 1 and data is None) or _fail()),
    "factory_reset": Case(
        lambda dev, data: (dev.phone.factory_resets == 1 and dev.password == "456"
                           and not dev.rest_enabled) or _fail()
    ),
    "update_configuration": Case(
        lambda dev, data: (dev.phone.provisioning_checks == 1) or _fail(),
        setup=lambda dev: _set(dev, device__set="1", device__prov__serverName__set="1",
                               device__prov__serverName="prov.example.invalid"),
    ),
    "config_reset": Case(
        lambda dev, data: (_config(dev, "up.backlight.idleIntensity") == "1"
                           and dev.phone.config["up.backlight.idleIntensity"].source == "default") or _fail(),
        setup=lambda dev: _set(dev, up__backlight__idleIntensity="3"),
    ),
    "config_reset_source": Case(_check_config_reset_source, lambda dev: {"source": "web"},
                                _setup_config_reset_source),
    # -- configuration --
    "config_get": Case(
        lambda dev, data: (data == {n: {"Value": dev.phone.config[n].current, "Source": dev.phone.config[n].source}
                                    for n in ("apps.restapi.enabled", "tone.dtmf.level")}
                           and data["apps.restapi.enabled"]["Value"] == "1") or _fail(),
        lambda dev: {"names": ["apps.restapi.enabled", "tone.dtmf.level"]},
    ),
    "config_set": Case(
        lambda dev, data: (_config(dev, "device.prov.serverName") == "10.252.149.102"
                           and _config(dev, "up.backlight.idleIntensity") == "3"
                           and dev.phone.config["up.backlight.idleIntensity"].source == "web") or _fail(),
        lambda dev: {"values": {"device.set": "1", "device.prov.serverName.set": "1",
                                "device.prov.serverName": "10.252.149.102", "up.backlight.idleIntensity": "3"}},
    ),
    # -- information --
    "device_info": Case(
        lambda dev, data: (data["ModelNumber"] == dev.phone.model and data["MACAddress"] == dev.phone.mac
                           and data["Firmware"]["Application"] == dev.phone.firmware
                           and int(data["UpTime"]["Days"]) == dev.phone.uptime_parts()[0]) or _fail()
    ),
    "device_info_v1": Case(
        lambda dev, data: (data["FirmwareRelease"] == dev.phone.firmware and data["MACAddress"] == dev.phone.mac
                           and data["UpTimeSinceLastReboot"].startswith(f"{dev.phone.uptime_parts()[0]} Day"))
        or _fail()
    ),
    "device_stats": Case(
        lambda dev, data: (0 <= float(data["CPU"]["Current"]) <= 100 and int(data["Memory"]["Total"]) > 0)
        or _fail(),
        setup=dial,
    ),
    "running_config": Case(
        lambda dev, data: (data["Provisioning"]["Server"] == "prov.example.invalid") or _fail(),
        setup=lambda dev: _set(dev, device__set="1", device__prov__serverName__set="1",
                               device__prov__serverName="prov.example.invalid"),
    ),
    "network_info": Case(
        lambda dev, data: (data["IPV4Address"] == dev.host and data["ProvServerAddress"] == "") or _fail()
    ),
    "network_stats": Case(
        lambda dev, data: (int(data["RxPackets"]) > 0 and int(data["TxPackets"]) > 0
                           and data["UpTime"].startswith(str(dev.phone.uptime_parts()[0]))) or _fail()
    ),
    "line_info": Case(
        lambda dev, data: ([(x["LineNumber"], x["RegistrationStatus"]) for x in data]
                           == [(str(n.number), "registered" if n.registered else "unregistered")
                               for n in dev.phone.lines]) or _fail()
    ),
    "line_info_v1": Case(
        lambda dev, data: ([(x["LineNumber"], x["UserID"]) for x in data]
                           == [(str(n.number), n.user) for n in dev.phone.lines]) or _fail()
    ),
    "session_stats": Case(
        lambda dev, data: ([s["Ref"] for s in data] == [ref_of(dev)]
                           and data[0]["Streams"][0]["Category"] == "0:Voice") or _fail(),
        setup=dial,
    ),
    "communication_info": Case(
        lambda dev, data: (data["PhoneMuteState"] == "True" and data["CommunicationType"] == ["SIP"]) or _fail(),
        setup=lambda dev: (dial(dev), setattr(dev.phone, "muted", True)),
    ),
    "call_logs": Case(
        lambda dev, data: ([e["RemotePartyNumber"] for e in data["Placed"]] == ["8001"]
                           and data["Received"] == [] and data["Missed"] == []) or _fail(),
        setup=lambda dev: dev.phone.end(dial(dev, "8001")),
    ),
    "call_logs_by_kind": Case(
        lambda dev, data: ([e["RemotePartyNumber"] for e in data] == ["5551234"]) or _fail(),
        lambda dev: {"kind": "missed"},
        setup=lambda dev: (dev.phone.reject(ring(dev)), dev.phone.end(dial(dev, "9"))),
    ),
    "poll_for_status": Case(lambda dev, data: (data["State"] == "Active") or _fail(), setup=ring),
    "transfer_type_get": Case(
        lambda dev, data: (data == {"Type": "Blind"}) or _fail(),
        setup=lambda dev: _set(dev, call__transfer__blindPreferred="1"),
    ),
    "presence_get": Case(
        lambda dev, data: (data["SignedIn"] == "True" and data["Address"] == "a@b.invalid") or _fail(),
        setup=lambda dev: setattr(dev.phone, "skype_user", "a") or setattr(dev.phone, "skype_address", "a@b.invalid"),
    ),
    "location_info": Case(lambda dev, data: isinstance(data, dict) or _fail()),
    "mrpair_info": Case(lambda dev, data: (data == {"ConnectedDeviceList": []}) or _fail()),
    "upload_bg_capture": Case(
        lambda dev, data: (dev.phone.captures_uploaded == ["https://capture.example.invalid/up"]) or _fail(),
        lambda dev: {"url": "https://capture.example.invalid/up"},
        setup=lambda dev: _set(dev, diags__pcap__enabled="1"),
    ),
    # -- simulated input --
    "simulate_key_event": Case(
        lambda dev, data: (dev.phone.key_events == [{"Type": "Tap", "KeyName": "MicMute"}] and dev.phone.muted)
        or _fail(),
        lambda dev: {"KeyName": "MicMute"},
    ),
    "simulate_text_input": Case(
        lambda dev, data: (dev.phone.text_inputs == [{"Value": "hello", "ReplaceText": "true"}]) or _fail(),
        lambda dev: {"Value": "hello", "ReplaceText": "true"},
    ),
    "simulate_touch": Case(
        lambda dev, data: (dev.phone.touch_events == [{"Type": "Swipe", "Positions": [(68, 121), (320, 156)],
                                                        "Duration": 100}]) or _fail(),
        lambda dev: {"Type": "Swipe", "Positions": [{"X": "68", "Y": "121"}, {"X": 320, "Y": 156}],
                     "Duration": "100"},
    ),
    # -- Skype for Business --
    "skype_sign_in": Case(
        lambda dev, data: (dev.phone.skype_address == "test.user@poly.invalid"
                           and dev.phone.skype_user == "test.user@poly.invalid") or _fail(),
        lambda dev: {"Address": "test.user@poly.invalid", "User": "test.user@poly.invalid",
                     "Password": "MyPassword"},
    ),
    "skype_sign_out": Case(
        lambda dev, data: (dev.phone.skype_user is None) or _fail(),
        setup=lambda dev: setattr(dev.phone, "skype_user", "someone"),
    ),
    # -- call status --
    "call_status": Case(
        lambda dev, data: ([(c["RemotePartyNumber"], c["LineID"], c["CallHandle"]) for c in data]
                           == [(c.remote_number, "2", c.hex) for c in dev.phone.calls.values() if c.line == 2])
        or _fail(),
        lambda dev: {"line": 2},
        setup=_setup_two_lines_calls,
    ),
    "call_status_v1": Case(
        lambda dev, data: (data["CallHandle"] == ref_of(dev) and data["CallState"] == "Connected"
                           and data["RemotePartyNumber"] == "123") or _fail(),
        setup=dial,
    ),
    "sip_status": Case(
        lambda dev, data: (int(data["TotalUser"]) == len(dev.phone.lines)
                           and [u["Events"][0]["RegistrationState"] for u in data["User"]]
                           == ["Registered", "Unregistered"]) or _fail()
    ),
    # -- call control --
    "callctrl_dial": Case(
        lambda dev, data: ((only_call(dev).remote_number, only_call(dev).line, only_call(dev).state)
                           == ("123", 1, "Connected") and data is None) or _fail(),
        lambda dev: {"Dest": 123, "Line": 1, "Type": "SIP"},
    ),
    "callctrl_answer_call": Case(
        lambda dev, data: (only_call(dev).state == "Connected" and not only_call(dev).ringing) or _fail(),
        lambda dev: {"Ref": ref_of(dev)},
        setup=ring,
    ),
    "callctrl_ignore_call": Case(
        lambda dev, data: (only_call(dev).ignored and not only_call(dev).ringing) or _fail(),
        lambda dev: {"Ref": only_call(dev).hex},
        setup=ring,
    ),
    "callctrl_reject_call": Case(
        lambda dev, data: (not dev.phone.calls and len(dev.phone.logs["Missed"]) == 1) or _fail(),
        lambda dev: {"Ref": ref_of(dev)},
        setup=ring,
    ),
    "callctrl_end_call": Case(
        lambda dev, data: (not dev.phone.calls and dev.phone.logs["Placed"][0].number == "123") or _fail(),
        lambda dev: {"Ref": ref_of(dev)},
        setup=dial,
    ),
    "callctrl_hold_call": Case(
        lambda dev, data: (only_call(dev).state == "Hold") or _fail(),
        lambda dev: {"Ref": ref_of(dev)},
        setup=dial,
    ),
    "callctrl_resume_call": Case(
        lambda dev, data: (only_call(dev).state == "Connected") or _fail(),
        lambda dev: {"Ref": ref_of(dev)},
        setup=lambda dev: dev.phone.hold(dial(dev)),
    ),
    "callctrl_transfer_call": Case(
        lambda dev, data: (dev.phone.transfers == [("123", "2000")] and not dev.phone.calls) or _fail(),
        lambda dev: {"Ref": ref_of(dev), "TransferDest": "2000"},
        setup=dial,
    ),
    "callctrl_mute": Case(lambda dev, data: dev.phone.muted or _fail(), lambda dev: {"state": "1"}),
    "callctrl_send_dtmf": Case(
        lambda dev, data: (only_call(dev).dtmf == ["12#"]) or _fail(),
        lambda dev: {"Digits": "12#"},
        setup=dial,
    ),
}


def _fail() -> None:
    raise AssertionError("result does not match the emulator's state")


def client(dev: Phone, tls: TLSPolicy) -> Device:
    return Device(SPEC, f"127.0.0.1:{dev.port}", credentials=Credentials(None, PASSWORD), tls=tls)


@pytest.fixture
def phone(emulators: EmulatorThread) -> Phone:
    dev = EmulatedPolyUC("vvx", password=PASSWORD)
    dev.faults.reboot_seconds = 0.3
    emulators.add(dev)
    return dev


@pytest.mark.parametrize("action_id", sorted(SPEC.actions))
async def test_every_action(action_id: str, phone: Phone, tls: TLSPolicy) -> None:
    case = CASES.get(action_id)
    if case is None:
        pytest.fail(f"spec action {action_id} has no test case in CASES")
    case.setup(phone)
    params = case.params(phone)
    sent_before = len(phone.requests)
    async with client(phone, tls) as dev:
        result = await dev.call(action_id, **params)
    assert result.status == 200
    case.check(phone, result.data)
    # exactly one request went out (Basic up front, no challenge round trip), to the spec's path
    action = SPEC.action(action_id)
    sent = phone.requests[sent_before:]
    assert len(sent) == 1
    assert sent[0].method == action.method
    assert sent[0].headers["Authorization"].startswith("Basic ")
    if action.method == "POST":
        assert sent[0].headers.get("Content-Length") is not None
        body = json.loads(sent[0].body) if sent[0].body else None
        if action.body == "none":
            assert sent[0].body == b""
        else:
            assert isinstance(body, dict) and set(body) == {"data"}  # the envelope


def test_cases_match_the_spec() -> None:
    assert set(CASES) == set(SPEC.actions), set(CASES) ^ set(SPEC.actions)


def test_every_apiref_endpoint_has_an_action() -> None:
    router = Router(SPEC, ignore_case=True)
    lines = [x.split() for x in (DATA / "polyuc_operations.txt").read_text().splitlines()
             if x.strip() and not x.startswith("#")]
    assert len(lines) == 49
    covered = set()
    for method, path in lines:
        resolved = router.resolve(method, path)
        assert not isinstance(resolved, int), f"{method} {path}: no spec action ({resolved})"
        covered.add(resolved[0].id)
    assert covered == set(SPEC.actions)  # and no spec action without an apiref endpoint


def test_disruptive_marks() -> None:
    disruptive = {a.id for a in SPEC.actions.values() if a.disruptive}
    assert disruptive == {"safe_restart", "safe_reboot", "factory_reset", "update_configuration", "config_reset",
                          "config_reset_source", "callctrl_end_call", "callctrl_reject_call"}


def test_spec_lints_clean() -> None:
    from avctl.spec import read_spec

    result = read_spec(Path(SPEC.source))
    assert result.issues == []
