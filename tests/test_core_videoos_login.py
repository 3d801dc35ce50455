"""VideoOS login paths, TLS pinning and validation against the emulator over real HTTPS on loopback.

These use a small spec (tests/data/videoos_min.md) so the core is tested apart from the full spec.
"""

from __future__ import annotations

import ssl

import aiohttp
import pytest

from avctl import (
    CertificateChanged,
    Credentials,
    Device,
    TLSPolicy,
    TransportError,
    ValidationError,
)
from avctl.emulator.core import EmulatorThread
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.spec import load_spec
from avctl.transport.tls import fingerprint

from .conftest import DATA, wait_back

SPEC = load_spec(DATA / "videoos_min.md")
PASSWORD = "s3cret-pw"


def videoos(emulators: EmulatorThread, **kwargs: object) -> EmulatedVideoOS:
    dev = EmulatedVideoOS("studio", spec=SPEC, password=PASSWORD, **kwargs)  # type: ignore[arg-type]
    emulators.add(dev)
    return dev


def client(dev: EmulatedVideoOS, tls: TLSPolicy, password: str = PASSWORD) -> Device:
    return Device(SPEC, f"127.0.0.1:{dev.port}", credentials=Credentials("admin", password), tls=tls)


def logins(dev: EmulatedVideoOS) -> int:
    return sum(1 for r in dev.requests if r.method == "POST" and r.path == "/rest/session")


async def test_xsrf_token_is_echoed_and_required(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = videoos(emulators, firmware="4.6.2")
    async with client(dev, tls) as d:
        await d.call("audio_volume_set", volume=31)
        assert (await d.call("audio_volume_get")).data == 31
    assert dev.state.volume == 31
    calls = [r for r in dev.requests if r.path == "/rest/audio/volume"]
    assert all(r.headers.get("X-XSRF-TOKEN") for r in calls)
    assert logins(dev) == 1  # one session for all calls
    # without the header the device refuses, as real 4.6.2+ firmware does
    session_id = next(iter(dev.sessions), None)
    assert session_id is None  # logged out on close


async def test_missing_xsrf_header_is_refused(emulators: EmulatorThread) -> None:
    dev = videoos(emulators, firmware="4.6.2")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        base = f"https://127.0.0.1:{dev.port}"
        async with http.post(f"{base}/rest/session", json={"user": "admin", "password": PASSWORD},
                             ssl=False) as resp:
            assert resp.status == 200
            assert "XSRF-TOKEN" in resp.cookies
        async with http.get(f"{base}/rest/system", ssl=False) as resp:
            assert resp.status == 403


async def test_old_firmware_without_xsrf(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = videoos(emulators, firmware="4.5.0")
    async with client(dev, tls) as d:
        result = await d.call("system_get")
        assert result.data["softwareVersion"] == "4.5.0"
    calls = [r for r in dev.requests if r.path == "/rest/system"]
    assert calls and not any("X-XSRF-TOKEN" in r.headers for r in calls)


async def test_reboot_makes_device_unreachable_then_back(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = videoos(emulators)
    dev.faults.reboot_seconds = 2.0  # the down check follows at once: no race with the downtime
    async with client(dev, tls) as d:
        await d.call("system_reboot", restart_all=True)
        with pytest.raises(TransportError):  # dropped, or refused once its socket has closed
            await d.call("system_get")
        await wait_back(dev)
        assert (await d.call("system_get")).data["model"] == "StudioX50"
    assert dev.state.reboots == 1


@pytest.mark.parametrize(
    ("action", "params", "message"),
    [
        ("audio_volume_sett", {}, "unknown action 'audio_volume_sett'"),
        ("audio_volume_set", {"volum": 5}, "parameter 'volum': unknown parameter"),
        ("audio_volume_set", {}, "parameter 'volume': is required"),
        ("audio_volume_set", {"volume": "loud"}, "parameter 'volume'"),
        ("audio_volume_set", {"volume": 101}, "101 is greater than the maximum of 100"),
        ("audio_muted_set", {"muted": "yes"}, "'yes' is not of type 'boolean'"),
        ("system_reboot", {"action": "halt"}, "is fixed to 'reboot'"),
        ("config_get", {"names": "system.name"}, "parameter 'names'"),
    ],
)
async def test_validation_errors_send_nothing(emulators: EmulatorThread, tls: TLSPolicy, action: str,
                                              params: dict[str, object], message: str) -> None:
    dev = videoos(emulators)
    async with client(dev, tls) as d:
        with pytest.raises(ValidationError) as exc:
            await d.call(action, **params)
        assert message in str(exc.value)
    assert dev.requests == []
    assert not tls.known_hosts.path.exists()  # not even a TLS handshake happened


async def test_first_use_pins_and_same_device_passes(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = videoos(emulators)
    async with client(dev, tls) as d:
        await d.call("system_get")
    expected = fingerprint(ssl.PEM_cert_to_DER_cert(dev.cert_pem.decode()))
    assert tls.known_hosts.path.read_text() == f"127.0.0.1:{dev.port} {expected}\n"
    fresh = TLSPolicy.pinned(tls.known_hosts.path)  # a new process reading the same file
    async with client(dev, fresh) as d:
        await d.call("system_get")
    assert tls.known_hosts.path.read_text().count("\n") == 1


async def test_changed_certificate_fails_with_both_fingerprints(emulators: EmulatorThread,
                                                                tls: TLSPolicy) -> None:
    dev = videoos(emulators)
    async with client(dev, tls) as d:
        await d.call("system_get")
    old = tls.pinned_fingerprint("127.0.0.1", dev.port)
    dev.reset_certificate()
    assert emulators.server is not None
    emulators.run(emulators.server.restart_listener(dev))
    new = fingerprint(ssl.PEM_cert_to_DER_cert(dev.cert_pem.decode()))
    seen = len(dev.requests)
    async with client(dev, TLSPolicy.pinned(tls.known_hosts.path)) as d:
        with pytest.raises(CertificateChanged) as exc:
            await d.call("system_get")
    assert exc.value.pinned == old and exc.value.presented == new
    assert old in str(exc.value) and new in str(exc.value) and "avctl trust" in str(exc.value)
    assert len(dev.requests) == seen  # the password never went to the impostor
    async with client(dev, TLSPolicy.insecure()) as d:  # only when asked for by name
        assert (await d.call("system_get")).status == 200


async def test_one_connection_serves_many_calls(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = videoos(emulators)
    async with client(dev, tls) as d:
        for _ in range(5):
            await d.call("audio_get")
    peers = {r.peer for r in dev.requests}
    assert len(peers) == 1 and "" not in peers  # keep-alive: one TLS handshake for the session
