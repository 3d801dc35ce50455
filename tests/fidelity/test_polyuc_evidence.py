"""The Poly UC emulator against recorded answers of real phones (issue 14, first slice).

Every test names the public evidence its expectation comes from:

- MIV: HL727/Meeting `endpoint/tests/mock_data/poly_trio.py`, responses captured from a Trio 8800
  on UC Software 7.2.2 (runningConfig, device/stats, v2 callStatus, callLogs).
- POSH: rdbahm/Posh-UCS `Posh-UCS/UcsRest.psm1` (Start-UcsRestCallAnswer and the hold/resume
  cmdlet post an empty body when they have no handle; Get-UcsRestStatus parses pollForStatus) and
  `Posh-UCS/UcsRestUtil.psm1` (Convert-UcsRestDuration: "1 day 2 hours 3 mins 1 sec").
- AVT: AVI-SPL Symphony adapter `com/avispl/symphony/dal/communicator/polycom/trio/PolycomTrio.java`,
  the recorded sessionStats stream in parseAudioChannelStats ("TxCodec": "3:G.722.1").
- S002: seed 002, a v1 callStatus answer with "Protocol": "Sip".

Real HTTP(S) on loopback: the avctl client (or raw urllib for body forms the client never sends)
against the emulator. Durations are set by moving a call's connect time, never by sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import re
import time
import urllib.request
from typing import Any

import pytest

from avctl import Credentials, Device, DeviceError, TLSPolicy
from avctl.emulator.core import EmulatorThread
from avctl.emulator.polyuc import EmulatedPolyUC
from avctl.emulator.polyuc.state import uc_duration
from avctl.families import builtin_spec

SPEC = builtin_spec("polyuc")
PASSWORD = "s3cret-789"
#: Posh-UCS Convert-UcsRestDuration reads these parts, in this order (each followed by a space
#: here, so that a span ending in any unit matches)
DURATION = re.compile(r"^(\d+ days? )?(\d+ hours? )?(\d+ mins? )?(\d+ secs? )?$")


def add_phone(emulators: EmulatorThread, **kwargs: Any) -> EmulatedPolyUC:
    dev = EmulatedPolyUC("vvx", password=PASSWORD, **kwargs)
    emulators.add(dev)
    return dev


def client(dev: EmulatedPolyUC, tls: TLSPolicy) -> Device:
    return Device(SPEC, f"127.0.0.1:{dev.port}", credentials=Credentials(None, PASSWORD), tls=tls)


async def raw_post(dev: EmulatedPolyUC, path: str, body: bytes) -> dict[str, Any]:
    """A POST with exactly `body` (the client always wraps parameters in `data`)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{dev.port}{path}", data=body, method="POST",
        headers={"Content-Type": "application/json",
                 "Authorization": "Basic " + base64.b64encode(f"Polycom:{PASSWORD}".encode()).decode()},
    )

    def send() -> dict[str, Any]:
        with urllib.request.urlopen(request, timeout=10) as answer:
            result: dict[str, Any] = json.loads(answer.read())
            return result

    return await asyncio.to_thread(send)


# --- 1. call control without Ref (POSH) -------------------------------------------------------------


async def test_call_control_without_ref_acts_on_the_current_call(emulators: EmulatorThread,
                                                                 tls: TLSPolicy) -> None:
    dev = add_phone(emulators)
    async with client(dev, tls) as d:
        dev.inject_incoming_call("5551000", "Caller one")
        await d.call("callctrl_ignore_call")  # stops the ringing, the call stays offered
        [ignored] = dev.phone.calls.values()
        assert ignored.ignored and not ignored.ringing
        await d.call("callctrl_reject_call")
        assert dev.phone.calls == {}
        dev.inject_incoming_call("5551001", "Caller two")
        await d.call("callctrl_answer_call")
        await d.call("callctrl_hold_call")
        assert [c.state for c in dev.phone.calls.values()] == ["Hold"]
        await d.call("callctrl_resume_call")
        assert [c.state for c in dev.phone.calls.values()] == ["Connected"]
    # the client sent no Ref at all: the emulator picked the call
    bodies = [r.body for r in dev.requests if r.method == "POST"]
    assert all(b"Ref" not in body for body in bodies)


@pytest.mark.parametrize("body", [b"", b"{}", b'{"data": {}}', b'{"data": {"Ref": ""}}'])
async def test_empty_bodies_name_the_current_call(emulators: EmulatorThread, body: bytes) -> None:
    dev = add_phone(emulators, scheme="http")
    dev.inject_incoming_call("5551002")
    assert await raw_post(dev, "/api/v1/callctrl/answerCall", body) == {"Status": "2000"}
    assert await raw_post(dev, "/api/v1/callctrl/holdCall", body) == {"Status": "2000"}
    assert [c.state for c in dev.phone.calls.values()] == ["Hold"]


@pytest.mark.parametrize("action", ["callctrl_answer_call", "callctrl_ignore_call", "callctrl_reject_call",
                                    "callctrl_hold_call", "callctrl_resume_call"])
async def test_without_ref_and_without_a_call_is_4007(emulators: EmulatorThread, tls: TLSPolicy,
                                                      action: str) -> None:
    dev = add_phone(emulators)
    async with client(dev, tls) as d:
        with pytest.raises(DeviceError) as refused:
            await d.call(action)
    assert refused.value.code == "4007"  # "Call Does Not Exist" (AVT's quoted status list)


async def test_without_ref_a_call_in_another_state_is_4003(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators)
    dev.phone.dial("123", 1, "SIP")  # connected at once: nothing rings, nothing is held
    async with client(dev, tls) as d:
        for action in ("callctrl_answer_call", "callctrl_resume_call"):
            with pytest.raises(DeviceError) as refused:
                await d.call(action)
            assert refused.value.code == "4003"


# --- 2. units, poll-for-status, session statistics, value formats ----------------------------------


async def test_memory_is_reported_in_bytes(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators)
    async with client(dev, tls) as d:
        stats = (await d.call("device_stats")).data
    memory = stats["Memory"]
    # MIV: "Total": "519995392", "RAMDiskSize": "67108864" (bytes; kB would be under a million)
    assert int(memory["Total"]) > 100 * 1024 * 1024
    assert int(memory["Used"]) + int(memory["Free"]) == int(memory["Total"])
    assert int(stats["RAMDiskSize"]) % (1024 * 1024) == 0 and int(stats["RAMDiskSize"]) >= 1024 * 1024
    for process in ("polyapp", "pgui"):  # MIV: one heap summary per process
        assert set(memory[process]) == {"arena", "uordblks", "fordblks", "hblkhd"}
    assert re.fullmatch(r"\d+\.\d", stats["CPU"]["Current"])  # MIV: "35.5"


async def test_poll_for_status_idle_and_active(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators)
    async with client(dev, tls) as d:
        idle = (await d.call("poll_for_status")).data
        call = dev.phone.dial("123", 1, "SIP")
        assert call.connected_at is not None
        call.connected_at -= 65
        active = (await d.call("poll_for_status")).data
        dev.phone.end(call)
        after = (await d.call("poll_for_status")).data
    # POSH Get-UcsRestStatus: State "Active" -> StateData minus "Active call duration" is a span;
    # State "Idle" -> StateData minus "Time of last call" is a date
    assert active == {"State": "Active", "StateData": "Active call duration 1 min 5 secs"}
    for answer in (idle, after):
        assert answer["State"] == "Idle" and answer["StateData"].startswith("Time of last call ")
    last = datetime.datetime.fromisoformat(after["StateData"].removeprefix("Time of last call "))
    assert abs(last.timestamp() - time.time()) < 120
    booted = datetime.datetime.fromisoformat(idle["StateData"].removeprefix("Time of last call "))
    assert booted.timestamp() < last.timestamp()


async def test_session_stats_fields_and_codecs(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators)
    call = dev.phone.dial("123", 1, "SIP")
    async with client(dev, tls) as d:
        [session] = (await d.call("session_stats")).data
    [stream] = session["Streams"]
    # AVT's recorded sessionStats (PolycomTrio.java, populateInCallStats): the session's Ref is the
    # call handle ("0xb53e57c0", the CallHandle of the recorded callStatus), the voice stream has a
    # Ref of its own ("0xb4e5dfa0"), "TxCodec": "3:G.722.1", payload sizes both ways
    assert session["Ref"] == f"0x{call.hex}"
    assert re.fullmatch(r"0x[0-9a-f]+", stream["Ref"]) and stream["Ref"] != session["Ref"]
    assert re.fullmatch(r"\d+:G\.722", stream["TxCodec"]) and stream["RxCodec"] == stream["TxCodec"]
    recorded = {"Ref", "RxPayloadSize", "Jitter", "Category", "PacketsSent", "PacketsExpected",
                "TxPayloadSize", "TxMOSCQ", "OctetsSent", "MaxJitter", "PacketsReceived", "RxCodec",
                "OctetsReceived", "PacketsLost", "Latency", "TxCodec", "RxMOSCQ", "RxMOSLQ", "TxMOSLQ"}
    assert set(stream) == recorded
    assert all(isinstance(v, str) for v in stream.values())


async def test_protocol_words_v1_and_v2(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators)
    dev.phone.dial("123", 1, "SIP")
    async with client(dev, tls) as d:
        v2 = (await d.call("call_status")).data
        v1 = (await d.call("call_status_v1")).data
    assert v2[0]["Protocol"] == "SIP"  # MIV v2 callStatus
    assert v1["Protocol"] == "Sip"  # S002 v1 callStatus


def test_duration_words() -> None:
    # MIV callLogs: "4 mins 49 secs", "26 secs"; POSH: "1 day 2 hours 3 mins 1 sec"
    assert uc_duration(289) == "4 mins 49 secs"
    assert uc_duration(26) == "26 secs"
    assert uc_duration(86400 + 2 * 3600 + 3 * 60 + 1) == "1 day 2 hours 3 mins 1 sec"
    assert uc_duration(3600) == "1 hour"
    for seconds in (0, 1, 59, 60, 61, 3599, 90061, 10 ** 6):
        assert DURATION.fullmatch(uc_duration(seconds) + " "), seconds


async def test_call_log_durations(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators)
    dev.phone.connect_after = 3600.0  # the far end never answers within the test
    unanswered = dev.phone.dial("200", 1, "SIP")
    dev.phone.end(unanswered)
    dev.phone.connect_after = 0.0
    talked = dev.phone.dial("300", 1, "SIP")
    assert talked.connected_at is not None
    talked.connected_at -= 289
    dev.phone.end(talked)
    dev.inject_incoming_call("400")
    dev.phone.reject(next(iter(dev.phone.calls.values())))
    async with client(dev, tls) as d:
        logs = (await d.call("call_logs")).data
    # MIV: placed calls that never connected and every missed call have "Duration": ""
    assert [(e["RemotePartyNumber"], e["Duration"]) for e in logs["Placed"]] == [
        ("300", "4 mins 49 secs"), ("200", "")]
    assert [e["Duration"] for e in logs["Missed"]] == [""]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", e["StartTime"]) for e in logs["Placed"])


# --- 3. runningConfig keys (MIV) -----------------------------------------------------------------------

#: the groups and keys of MIV's runningConfig capture (Trio 8800, UC 7.2.2)
RUNNING_CONFIG_KEYS = {
    "Network": {"IPAddress", "VLANFiltering", "SubnetMask", "IPv6ULAAddress", "IPv6AddressDiscovery",
                "IPGateway", "StormFilterPPS", "StormFiltering", "IPv6Gateway", "IPv6Address",
                "IPv6LinkAddress", "VLAN", "IPStack", "PreferredNetwork", "CDP", "LLDP"},
    "DHCP": {"Option60Format", "Feature", "OfferTimeout", "BootServerOption", "BootServerUseOption",
             "BootServerOptionType", "VLANDiscovery", "VLANDiscoveryOption"},
    "Provisioning": {"FileTxTries", "ServerType", "MaxServers", "RetryWait", "Server", "User", "NetworkEnv",
                     "TagSerialNo"},
    "DNS": {"Domain", "PrimaryServer", "Feature", "SecondaryServer"},
    "SNTP": {"GMTOffsetHours", "Server", "GMTOffsetSeconds"},
    "Syslog": {"RenderLevel", "Server", "PrependMAC", "Facility", "Transport"},
}


async def test_running_config_keys(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators)
    async with client(dev, tls) as d:
        before = (await d.call("running_config")).data
        await d.call("config_set", values={"device.set": "1", "device.prov.serverName.set": "1",
                                           "device.prov.serverName": "prov.example.invalid"})
        after = (await d.call("running_config")).data
    assert {group: set(keys) for group, keys in before.items()} == RUNNING_CONFIG_KEYS
    assert before["Network"]["IPAddress"] == dev.host
    assert before["Provisioning"]["ServerType"] == "HTTP"  # a word (MIV "FTP"), the default type 2
    assert all(isinstance(v, str) for group in before.values() for v in group.values())
    assert (before["Provisioning"]["Server"], after["Provisioning"]["Server"]) == ("", "prov.example.invalid")


# --- the client's readings still work on the corrected answers ------------------------------------


async def test_feedbacks_read_the_corrected_emulator(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators)
    async with client(dev, tls) as d:
        idle = await d.status()
        dev.phone.dial("123", 1, "SIP")
        busy = await d.status()
    assert idle.reachable and idle.in_call is False and idle.uptime is not None and idle.uptime > 0
    assert busy.in_call is True and busy.mic_muted is False
    assert idle.model == "VVX 450" and not idle.unavailable


# --- v1 device info's uptime words (AVT; a Trio simulator's README; a Rust client's comment) ----------------


@pytest.mark.parametrize(("seconds", "words"), [
    (22 * 3600 + 2 * 60 + 9, "0 Day 22:02:09"),  # AVT, a Trio on UC Software 5.7.1
    (6 * 3600 + 16 * 60 + 10, "0 Day 6:16:10"),  # a VVX 411 on 5.5.0: the hour is not padded
    (20 * 86400 + 16 * 3600 + 11 * 60 + 42, "20 Days 16:11:42"),  # a Trio on 5.5.4: plural
])
async def test_v1_uptime_words(emulators: EmulatorThread, tls: TLSPolicy, seconds: int, words: str) -> None:
    dev = add_phone(emulators)
    dev.phone.uptime = lambda now=None: float(seconds)  # type: ignore[method-assign]  # time held still
    async with client(dev, tls) as d:
        info = (await d.call("device_info_v1")).data
    assert info["UpTimeSinceLastReboot"] == words


# --- a Trio's lines and v1 call status (MIV's Trio 8800 lineInfo; AVT's recorded Trio callStatus) ----------


async def test_a_trio_says_auto_where_a_vvx_says_sip(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    trio, vvx = add_phone(emulators, model="Trio 8800"), add_phone(emulators)
    answers = {}
    for dev in (trio, vvx):
        dev.phone.dial("123", 1, "SIP")
        async with client(dev, tls) as d:
            answers[dev.phone.model] = ((await d.call("line_info_v1")).data[0],
                                        (await d.call("call_status_v1")).data)
    (trio_line, trio_call), (vvx_line, vvx_call) = answers["Trio 8800"], answers["VVX 450"]
    assert (trio_line["Protocol"], trio_line["Port"]) == ("Auto", "0")  # MIV
    assert trio_call["Protocol"] == "Auto"  # AVT: {"CallHandle": "0xb53e57c0", ..., "Protocol": "Auto"}
    assert (vvx_line["Protocol"], vvx_line["Port"]) == ("SIP", "5060")
    assert vvx_call["Protocol"] == "Sip"  # seed 002
