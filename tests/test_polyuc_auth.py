"""Poly UC wire rules against the emulator over real HTTP(S): Basic and Digest, a wrong password
tried once, the disabled REST API, the 411 rule, one request at a time (403 busy), Status codes,
call handle forms, restart downtime, HTTP, and several families in one emulator process."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import urllib.request
from typing import Any

import pytest

from avctl import AuthenticationError, Credentials, Device, DeviceError, TLSPolicy, TransportError
from avctl.auth.http import parse_challenges
from avctl.emulator.core import EmulatorThread
from avctl.emulator.polyuc import EmulatedPolyUC
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.errors import ApiDisabled, DeviceBusy
from avctl.families import builtin_spec
from avctl.families.polyuc import STATUS_MEANINGS, PolyUC, normalize_handle, status_of
from avctl.request import Response
from avctl.spec import load_spec

from .conftest import DATA, wait_back

SPEC = builtin_spec("polyuc")
PASSWORD = "s3cret-789"


def add_phone(emulators: EmulatorThread, name: str = "vvx", **kwargs: Any) -> EmulatedPolyUC:
    dev = EmulatedPolyUC(name, password=PASSWORD, **kwargs)
    dev.faults.reboot_seconds = 0.5
    emulators.add(dev)
    return dev


def client(dev: EmulatedPolyUC, tls: TLSPolicy, password: str = PASSWORD, **kwargs: Any) -> Device:
    return Device(SPEC, f"127.0.0.1:{dev.port}", credentials=Credentials(None, password), tls=tls, **kwargs)


def auth_headers(dev: EmulatedPolyUC) -> list[str]:
    return [r.headers.get("Authorization", "") for r in dev.requests]


# --- Basic and Digest ------------------------------------------------------------------------------


async def test_basic_up_front_with_default_user(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators)
    async with client(dev, tls) as d:
        await d.call("device_info")
        await d.call("line_info")
    expected = "Basic " + base64.b64encode(f"Polycom:{PASSWORD}".encode()).decode()
    assert auth_headers(dev) == [expected, expected]  # no challenge round trip, no session


async def test_digest_when_the_phone_asks_for_it(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators, auth_modes=("digest",))
    async with client(dev, tls) as d:
        info = await d.call("device_info")
        await d.call("callctrl_dial", Dest="123")
        await d.call("call_status", line=1)
    assert info.data["ModelNumber"] == dev.phone.model and len(dev.phone.calls) == 1
    headers = auth_headers(dev)
    # Basic once, the Digest challenge, then Digest for everything (one nonce, counting up)
    assert headers[0].startswith("Basic ") and all(h.startswith("Digest ") for h in headers[1:])
    assert len(headers) == 4
    digests = [parse_challenges([h])["digest"].params for h in headers[1:]]
    assert [p["nc"] for p in digests] == ["00000001", "00000002", "00000003"]
    assert all(p["qop"] == "auth" and p["algorithm"] == "MD5" and p["realm"] == dev.realm for p in digests)
    assert digests[2]["uri"] == "/api/v2/webCallControl/callStatus?line=1"
    assert dev.auth_failures == 0


async def test_basic_only_phone(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators, auth_modes=("basic",))
    async with client(dev, tls) as d:
        assert (await d.call("transfer_type_get")).data == {"Type": "Consultative"}


async def test_stale_digest_nonce_is_renewed_without_a_password_failure(
    emulators: EmulatorThread, tls: TLSPolicy
) -> None:
    dev = add_phone(emulators, auth_modes=("digest",))
    async with client(dev, tls) as d:
        await d.call("device_info")
        dev.expire_sessions()  # the phone forgets its nonces (as after a restart)
        await d.call("device_info")
    assert dev.auth_failures == 0
    # basic -> 401, digest -> 200, digest with the forgotten nonce -> 401 stale, fresh digest -> 200
    headers = auth_headers(dev)
    assert len(headers) == 4 and headers[0].startswith("Basic ")
    nonces = [parse_challenges([h])["digest"].params["nonce"] for h in headers[1:]]
    assert nonces[0] == nonces[1] != nonces[2]


async def test_401_challenge_offers_both_schemes(emulators: EmulatorThread) -> None:
    dev = add_phone(emulators, scheme="http")
    request = urllib.request.Request(f"http://127.0.0.1:{dev.port}/api/v1/mgmt/device/info")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 401
    challenges = parse_challenges(info.value.headers.get_all("WWW-Authenticate"))
    assert set(challenges) == {"basic", "digest"}
    assert challenges["digest"].params["qop"] == "auth" and challenges["digest"].params["algorithm"] == "MD5"
    assert info.value.headers["Server"] == "Polycom SoundPoint IP Telephone HTTPd"


@pytest.mark.parametrize("modes", [("basic", "digest"), ("digest",), ("basic",)])
async def test_wrong_password_is_tried_once(
    emulators: EmulatorThread, tls: TLSPolicy, modes: tuple[str, ...]
) -> None:
    dev = add_phone(emulators, auth_modes=modes)
    async with client(dev, tls, password="wrong-one") as d:
        with pytest.raises(AuthenticationError) as first:
            await d.call("device_info")
        sent = len(dev.requests)
        with pytest.raises(AuthenticationError):
            await d.call("line_info")  # the verdict is remembered: nothing more is sent
    assert dev.auth_failures == 1
    assert len(dev.requests) == sent
    assert "wrong-one" not in str(first.value) and PASSWORD not in str(first.value)
    assert "apps.restapi.enabled" in str(first.value)  # the other possible cause is named


# --- REST API disabled, 411, busy ------------------------------------------------------------------


async def test_disabled_rest_api_says_how_to_enable(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators)
    async with client(dev, tls) as d:
        await d.call("config_set", values={"apps.restapi.enabled": "0"})  # switch it off over REST
        with pytest.raises(ApiDisabled) as info:
            await d.call("device_info")
    message = str(info.value)
    assert "disabled" in message and 'apps.restapi.enabled="1"' in message
    assert "Settings > Applications > REST API" in message
    assert info.value.status == 404 and info.value.kind == "api_disabled"


async def test_body_less_post_sends_content_length_zero(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators)
    async with client(dev, tls) as d:
        await d.call("skype_sign_out")
    assert dev.requests[-1].headers.get("Content-Length") == "0" and dev.requests[-1].body == b""
    assert dev.length_refusals == 0


async def test_post_without_content_length_gets_411(emulators: EmulatorThread) -> None:
    dev = add_phone(emulators, scheme="http")
    reader, writer = await asyncio.open_connection("127.0.0.1", dev.port)
    token = base64.b64encode(f"Polycom:{PASSWORD}".encode()).decode()
    writer.write(
        f"POST /api/v1/mgmt/safeRestart HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {token}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 411 Length Required")
    assert dev.phone.restarts == 0 and dev.length_refusals == 1


def test_411_maps_to_a_clear_error() -> None:
    action = SPEC.action("safe_restart")
    with pytest.raises(DeviceError) as info:
        PolyUC().unwrap(action, Response(411, body=b"411 Length Required"))
    assert info.value.status == 411 and "Content-Length: 0" in str(info.value)


async def test_a_request_while_another_is_processed_meets_403_and_is_retried(
    emulators: EmulatorThread, tls: TLSPolicy
) -> None:
    """The phone's own rule (not the `busy_next` switch): a request that arrives while another is
    being processed is refused with 403. The other request is held inside the phone until the
    client's retry back-off releases it, so the order is fixed whatever the machine's load."""
    dev = add_phone(emulators)
    held, release = threading.Event(), threading.Event()
    answer_stats = dev.on_device_stats

    async def holding(ctx: Any) -> Any:
        held.set()
        while not release.is_set():  # waits for the test's signal, not for a time
            await asyncio.sleep(0.005)
        return await answer_stats(ctx)

    dev.on_device_stats = holding  # type: ignore[method-assign]
    async with client(dev, tls) as other:
        occupier = asyncio.create_task(other.call("device_stats"))
        while not held.is_set():
            await asyncio.sleep(0.005)

        async def backoff(seconds: float) -> None:
            release.set()
            await occupier  # the phone is free again before the retry goes out

        async with client(dev, tls, sleep=backoff) as d:
            result = await d.call("transfer_type_get")
        assert (await occupier).status == 200
    assert result.data == {"Type": "Consultative"}
    assert dev.busy_refusals == 1 and d.retries == 1


async def test_busy_retries_are_bounded(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators)
    dev.stuck_busy = True
    async with client(dev, tls) as d:
        with pytest.raises(DeviceBusy) as info:
            await d.call("device_info")
    assert len(dev.requests) == PolyUC.retry.attempts
    assert info.value.status == 403 and "one request at a time" in str(info.value)


async def test_calls_to_one_phone_are_serialised(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators, processing_seconds=0.05)
    async with client(dev, tls) as d:
        results = await asyncio.gather(*(d.call(a) for a in ("device_info", "line_info", "network_stats",
                                                              "call_logs", "sip_status", "device_stats")))
    assert all(r.status == 200 for r in results)
    assert dev.busy_refusals == 0 and len(dev.requests) == 6


# --- Status codes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(c for c in STATUS_MEANINGS if c not in ("2000", "4001")))
async def test_every_status_code_maps_to_its_error(
    emulators: EmulatorThread, tls: TLSPolicy, code: str
) -> None:
    dev = add_phone(emulators, status_as_number=code.endswith("0"))  # both forms of Status
    dev.fail_next(code)
    async with client(dev, tls) as d:
        with pytest.raises(DeviceError) as info:
            await d.call("line_info")
    err = info.value
    assert not isinstance(err, DeviceBusy)
    assert err.code == code and err.meaning == STATUS_MEANINGS[code]
    assert f"Status {code} ({STATUS_MEANINGS[code]})" in str(err)
    assert len(dev.requests) == 1  # a device verdict is not retried


async def test_status_4001_is_busy_and_retried(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators)
    dev.fail_next("4001")
    async with client(dev, tls) as d:
        assert (await d.call("transfer_type_get")).data == {"Type": "Consultative"}
        for _ in range(PolyUC.retry.attempts):
            dev.fail_next("4001")
        with pytest.raises(DeviceBusy) as info:
            await d.call("transfer_type_get")
    assert info.value.code == "4001" and info.value.meaning == "device busy"


async def test_real_rule_violations_carry_their_codes(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators)
    async with client(dev, tls) as d:
        with pytest.raises(DeviceError) as no_call:
            await d.call("callctrl_end_call", Ref="0x2341880")
        with pytest.raises(DeviceError) as unregistered:
            await d.call("callctrl_dial", Dest="123", Line="2")
        with pytest.raises(DeviceError) as no_line:
            await d.call("callctrl_dial", Dest="123", Line=7)
        with pytest.raises(DeviceError) as unknown:
            await d.call("config_get", names=["no.such.param"])
        with pytest.raises(DeviceError) as idle:
            await d.call("call_status_v1")
        assert (await d.call("call_status")).data == []  # v2: an empty list when idle
    assert (no_call.value.code, no_call.value.meaning) == ("4007", "call does not exist")
    assert (unregistered.value.code, unregistered.value.meaning) == ("4002", "line not registered")
    assert no_line.value.code == "4005" and idle.value.code == "4007"
    assert unknown.value.code == "4000" and "no.such.param" in str(unknown.value)


def test_status_read_as_string_or_number() -> None:
    assert status_of({"Status": "2000"}) == status_of({"Status": 2000}) == "2000"
    assert status_of({"Status": 4007.0}) == "4007"
    assert status_of({"data": {}}) is None and status_of([1]) is None


# --- call handles ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["0x2341880", "2341880", 2341880, "0X2341880"])
async def test_call_handle_forms(emulators: EmulatorThread, tls: TLSPolicy, ref: str | int) -> None:
    dev = add_phone(emulators)
    call = dev.phone.dial("123", 1, "SIP")
    dev.phone.calls[0x2341880] = dev.phone.calls.pop(call.handle)
    call.handle = 0x2341880
    async with client(dev, tls) as d:
        status = await d.call("call_status", handle=ref if isinstance(ref, str) else str(ref))
        assert [c["CallHandle"] for c in status.data] == ["2341880"]
        await d.call("callctrl_end_call", Ref=ref)
    assert dev.phone.calls == {}
    assert json.loads(dev.requests[-1].body) == {"data": {"Ref": "0x2341880"}}
    assert dev.requests[0].query == "handle=2341880"  # v2 takes the handle without 0x
    assert normalize_handle("41C2C008") == "0x41c2c008"


async def test_incoming_call_answer_hold_resume_end(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators)
    handle = dev.inject_incoming_call("5551234", "Front desk")
    async with client(dev, tls) as d:
        ringing = (await d.call("call_status")).data
        assert [(c["CallHandle"], c["CallState"], c["Ringing"]) for c in ringing] == [(handle, "Offering", "1")]
        await d.call("callctrl_answer_call")  # no Ref: the ringing call
        await d.call("callctrl_hold_call", Ref=handle)
        assert (await d.call("call_status")).data[0]["CallState"] == "Hold"
        with pytest.raises(DeviceError) as twice:
            await d.call("callctrl_hold_call", Ref=handle)
        await d.call("callctrl_resume_call", Ref=handle)
        await d.call("callctrl_mute", state=1)
        muted = await d.call("communication_info")
        await d.call("callctrl_end_call", Ref=handle)
        logs = await d.call("call_logs_by_kind", kind="received")
    assert twice.value.code == "4003"
    assert muted.data["PhoneMuteState"] == "True"
    assert [e["RemotePartyName"] for e in logs.data] == ["Front desk"]


async def test_outgoing_call_rings_before_connecting(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators)
    dev.phone.connect_after = 3600.0
    async with client(dev, tls) as d:
        await d.call("callctrl_dial", Dest="sip:room@example.invalid", Type="SIP")
        first = (await d.call("call_status")).data[0]["CallState"]
        for call in dev.phone.calls.values():
            assert call.connect_at is not None
            call.connect_at -= 3600  # the far end's answer is due now: time injected, not slept
        later = (await d.call("call_status")).data[0]["CallState"]
    assert (first, later) == ("RingBack", "Connected")


# --- restart downtime, HTTP, several families --------------------------------------------------------


async def test_safe_reboot_makes_the_phone_unreachable_for_a_while(
    emulators: EmulatorThread, tls: TLSPolicy
) -> None:
    dev = add_phone(emulators)
    dev.faults.reboot_seconds = 2.0  # the down check follows at once: no race with the downtime
    async with client(dev, tls, timeout=2) as d:
        before = (await d.call("device_info")).data["UpTime"]
        await d.call("safe_reboot")
        with pytest.raises(TransportError):
            await d.call("device_info")
        await wait_back(dev)
        after = (await d.call("device_info")).data["UpTime"]
    assert dev.phone.reboots == 1
    assert (after["Days"], after["Hours"]) == ("0", "0") and before != after


async def test_safe_restart_waits_for_the_call_to_end(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators)
    call = dev.phone.dial("123", 1, "SIP")
    async with client(dev, tls) as d:
        await d.call("safe_restart")
        assert dev.phone.restarts == 0 and (await d.call("device_info")).data["IntendToShutdown"] == "True"
        await d.call("callctrl_end_call", Ref=call.hex)
    assert dev.phone.restarts == 1


async def test_plain_http(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators, scheme="http")
    async with client(dev, tls, scheme="http") as d:
        result = await d.call("network_stats")
    assert int(result.data["RxPackets"]) > 0


async def test_all_families_in_one_emulator_process(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    video_spec = load_spec(DATA / "videoos_min.md")
    studio = emulators.add(EmulatedVideoOS("studio", spec=video_spec, password="pw"))
    phones = [add_phone(emulators, f"vvx-{i}") for i in range(2)]
    async with Device(video_spec, f"127.0.0.1:{studio.port}", credentials=Credentials("admin", "pw"),
                      tls=tls) as video:
        assert (await video.call("system_get")).data["model"]
    for dev in phones:
        async with client(dev, tls) as d:
            assert (await d.call("device_info")).data["MACAddress"] == dev.phone.mac
    assert len({p.phone.mac for p in phones}) == 2


async def test_one_phone_on_https_and_http(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators, http_port=0)
    http_port = dev.extra_ports["http"]
    assert dev.info()["http_address"] == f"127.0.0.1:{http_port}"
    async with client(dev, tls) as secure:
        await secure.call("callctrl_mute", state="1")
    async with Device(SPEC, f"127.0.0.1:{http_port}", scheme="http", credentials=Credentials(None, PASSWORD),
                      tls=tls) as plain:
        assert (await plain.call("communication_info")).data["PhoneMuteState"] == "True"  # one phone, one state


async def test_numeric_status_on_success_is_unwrapped(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators, status_as_number=True)
    async with client(dev, tls) as d:
        assert (await d.call("transfer_type_get")).data == {"Type": "Consultative"}
        assert (await d.call("callctrl_mute", state=0)).data is None
