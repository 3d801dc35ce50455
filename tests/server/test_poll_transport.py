"""The poller's `LeanTransport` over real HTTP(S) on loopback: against the emulators (kept connections,
a device that goes down, a changed certificate) and against the hostile device (caps, bombs, header
injection), with the same outcomes as the CLI's aiohttp transport."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from avctl.auth import Credentials
from avctl.device import Device
from avctl.emulator.core import EmulatorThread
from avctl.emulator.hostile import HostileDevice
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.errors import CertificateChanged, ConnectError, ConnectionDropped, ResponseTooLarge, ValidationError
from avctl.request import Request
from avctl.retry import RetryPolicy
from avctl.transport.http import Endpoint
from avctl.transport.lean import LeanTransport
from avctl.transport.tls import KnownHosts, TLSPolicy, endpoint_key

PASSWORD = "lean-pw-Q4z"
MIB = 1 << 20


@pytest.fixture
async def lean(tmp_path: Path) -> AsyncIterator[LeanTransport]:
    """The poller's transport, pinning into a fresh known-devices file, keeping idle connections 60 s."""
    transport = LeanTransport(TLSPolicy.pinned(KnownHosts(tmp_path / "known_devices")), keepalive=60)
    yield transport
    await transport.close()


def codec(emulators: EmulatorThread, name: str = "codec-1") -> EmulatedVideoOS:
    emu = emulators.add(EmulatedVideoOS(name, password=PASSWORD))
    assert isinstance(emu, EmulatedVideoOS)
    return emu


async def until(condition: Callable[[], bool], within: float = 30.0) -> None:
    """Until `condition` holds, letting the event loop run (a generous deadline: a loaded machine)."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true"
        await asyncio.sleep(0.01)


def codec_device(emu: EmulatedVideoOS, transport: LeanTransport) -> Device:
    return Device("videoos", f"127.0.0.1:{emu.port}", credentials=Credentials("admin", PASSWORD),
                  transport=transport, retry=RetryPolicy())


async def test_requests_share_one_kept_connection_and_note_the_certificate(emulators: EmulatorThread,
                                                                           lean: LeanTransport) -> None:
    emu = codec(emulators)
    dev = codec_device(emu, lean)
    for _ in range(4):
        assert (await dev.call("system_get")).data["model"]
        assert (await dev.call("audio_volume_get")).status == 200
    assert lean.connections == 1  # login and eight queries, one TCP and TLS connection
    assert lean.peer_certificate("127.0.0.1", emu.port)
    await dev.close()  # logs out and lets go of the device's idle connection
    assert lean.connections == 0
    assert any(r.method == "DELETE" and r.path == "/rest/session" for r in emu.requests)


async def test_a_device_taken_down_fails_each_request_and_is_reached_again_when_back(
        emulators: EmulatorThread, lean: LeanTransport) -> None:
    emu = codec(emulators)
    dev = codec_device(emu, lean)
    await dev.call("system_get")  # a kept connection now exists
    emu.faults.down = True
    for _ in range(3):  # the kept connection and new ones alike
        with pytest.raises((ConnectionDropped, ConnectError)):
            await dev.call("system_get")
    assert lean.connections == 0  # a failed connection is never kept
    emu.faults.down = False
    assert (await dev.call("system_get")).status == 200


async def test_a_connection_the_device_closed_while_idle_is_not_reused(emulators: EmulatorThread,
                                                                       lean: LeanTransport) -> None:
    emu = codec(emulators)
    dev = codec_device(emu, lean)
    await dev.call("system_get")
    assert emulators.server is not None
    emulators.run(emulators.server.restart_listener(emu))  # drops its open connections, as a reboot
    await until(lambda: lean.connections == 0)  # seen as closed while idle, before any request
    assert (await dev.call("system_get")).status == 200  # a new connection, no error
    assert lean.connections == 1


async def test_a_connection_idle_past_the_keepalive_is_closed(emulators: EmulatorThread, tmp_path: Path) -> None:
    first, second = codec(emulators), codec(emulators, "codec-2")
    transport = LeanTransport(TLSPolicy.pinned(KnownHosts(tmp_path / "known_devices")), keepalive=0.5)
    try:
        await codec_device(first, transport).call("system_get")  # a device no longer polled after this
        other = codec_device(second, transport)
        await other.call("system_get")
        assert transport.connections == 2

        async def poll_the_other() -> bool:
            await other.call("system_get")
            return transport.connections == 1

        deadline = time.monotonic() + 30
        while not await poll_the_other():  # each request looks over the idle ones now and then
            assert time.monotonic() < deadline, "the idle connection was never closed"
            await asyncio.sleep(0.05)
    finally:
        await transport.close()


async def test_a_certificate_other_than_the_pinned_one_is_refused(emulators: EmulatorThread,
                                                                  tmp_path: Path) -> None:
    emu = codec(emulators)
    known = KnownHosts(tmp_path / "known_devices")
    known.set(endpoint_key("127.0.0.1", emu.port), "SHA256:" + ":".join(["AB"] * 32))
    transport = LeanTransport(TLSPolicy.pinned(known))
    try:
        with pytest.raises(CertificateChanged) as caught:
            await transport.send(Endpoint("https", "127.0.0.1", emu.port), Request("GET", "/rest/system"),
                                 timeout=5)
        assert "AB:AB" in caught.value.message
        assert transport.connections == 0
    finally:
        await transport.close()
    assert list(emu.requests) == []  # nothing was sent over it


def hostile_device(hostile: HostileDevice, transport: LeanTransport, **kwargs: int) -> Device:
    return Device("videoos", hostile.address("https"), credentials=Credentials(None, PASSWORD),
                  transport=transport, ports={"https": hostile.ports["https"]}, retry=RetryPolicy(), **kwargs)


async def test_a_huge_answer_stops_at_the_cap(hostile: HostileDevice, tls: TLSPolicy) -> None:
    hostile.hostility.body_bytes = 64 * MIB
    transport = LeanTransport(tls)
    try:
        with pytest.raises(ResponseTooLarge) as caught:
            await hostile_device(hostile, transport, max_response_bytes=MIB).call("audio_get")
        assert caught.value.cap == MIB and "--max-response" in (caught.value.hint or "")
        assert transport.connections == 0  # the rest is never read: not reusable
    finally:
        await transport.close()


async def test_an_endless_chunked_answer_stops_at_the_cap(hostile: HostileDevice, tls: TLSPolicy) -> None:
    hostile.hostility.endless = True
    transport = LeanTransport(tls)
    try:
        with pytest.raises(ResponseTooLarge):
            await hostile_device(hostile, transport, max_response_bytes=MIB).call("audio_get")
    finally:
        await transport.close()


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compressed_bomb_is_capped_after_inflating(hostile: HostileDevice, tls: TLSPolicy,
                                                           encoding: str) -> None:
    hostile.hostility.gzip_bomb = 1 << 30
    hostile.hostility.encoding = encoding
    transport = LeanTransport(tls)
    try:
        with pytest.raises(ResponseTooLarge):
            await hostile_device(hostile, transport, max_response_bytes=2 * MIB).call("audio_get")
    finally:
        await transport.close()


async def test_answers_of_every_framing_are_read_whole(hostile: HostileDevice, tls: TLSPolicy) -> None:
    transport = LeanTransport(tls)
    try:
        dev = hostile_device(hostile, transport)
        assert (await dev.call("audio_get")).data == {"ok": True}  # after a login
        hostile.hostility.body_bytes = 300_000  # with a Content-Length, longer than one read
        result = await transport.send(dev.endpoint, Request("GET", "/rest/audio"), timeout=5)
        assert len(result.body) == 300_000
        hostile.hostility.body_bytes = 0
        hostile.hostility.gzip_bomb = 200_000  # chunked and gzipped, inflating under the cap
        result = await transport.send(dev.endpoint, Request("GET", "/rest/audio"), timeout=5)
        assert len(result.body) == 200_000
    finally:
        await transport.close()


async def test_a_header_that_would_split_the_request_is_refused(hostile: HostileDevice) -> None:
    transport = LeanTransport(TLSPolicy.insecure())
    try:
        with pytest.raises(ValidationError, match="line break"):
            await transport.send(Endpoint("http", hostile.host, hostile.ports["http"]),
                                 Request("GET", "/x", headers=(("X-Note", "a\r\nX-Injected: 1"),)), timeout=5)
    finally:
        await transport.close()
    assert list(hostile.requests) == []


async def test_a_space_or_line_break_in_the_path_is_encoded_not_sent(hostile: HostileDevice) -> None:
    transport = LeanTransport(TLSPolicy.insecure())
    endpoint = Endpoint("http", hostile.host, hostile.ports["http"])
    try:
        assert (await transport.send(endpoint, Request("GET", "/x y"), timeout=5)).status == 200
        # one request line, whose path (decoded) holds a line break: the device's router finds no such page
        answer = await transport.send(endpoint, Request("GET", "/x\r\nX-Injected: 1"), timeout=5)
        assert answer.status == 404
        assert (await transport.send(endpoint, Request("GET", "/after"), timeout=5)).status == 200
    finally:
        await transport.close()
    assert [r.path_qs for r in hostile.requests] == ["/x%20y", "/after"]
    assert all("X-Injected" not in r.headers for r in hostile.requests)
