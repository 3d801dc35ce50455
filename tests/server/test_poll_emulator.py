"""The emulator switches the poll tests use: a device taken down, an unplugged peripheral."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from avctl.auth import Credentials
from avctl.device import Device
from avctl.emulator.core import EmulatorThread
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.errors import ConnectionDropped
from avctl.retry import RetryPolicy
from avctl.transport.http import HttpTransport
from avctl.transport.tls import KnownHosts, TLSPolicy


async def test_a_device_taken_down_closes_every_connection_until_it_is_back(
        emulators: EmulatorThread, tmp_path: Path) -> None:
    emu = emulators.add(EmulatedVideoOS("codec-1", password="pw-1"))
    transport = HttpTransport(TLSPolicy.pinned(KnownHosts(tmp_path / "known_devices")))
    async with Device("videoos", f"127.0.0.1:{emu.port}", credentials=Credentials("admin", "pw-1"),
                      transport=transport, retry=RetryPolicy()) as dev:
        await dev.call("system_get")  # a kept-alive connection now exists
        emu.faults.down = True
        for _ in range(3):  # the kept connection and new ones alike
            with pytest.raises(ConnectionDropped):
                await dev.call("system_get")
        assert emu.state.reboots == 0  # nothing was acted on
        emu.faults.down = False
        assert (await dev.call("system_get")).status == 200
        # the certificate the transport saw is the device's own
        pem = emu.cert_pem.decode() if isinstance(emu.cert_pem, bytes) else emu.cert_pem
        assert transport.peer_certificate("127.0.0.1", emu.port) == ssl.PEM_cert_to_DER_cert(pem)
    await transport.close()


async def test_unplugged_peripherals_leave_the_list(emulators: EmulatorThread, tmp_path: Path) -> None:
    emu = emulators.add(EmulatedVideoOS("codec-1", password="pw-1"))
    assert isinstance(emu, EmulatedVideoOS)
    async with Device("videoos", f"127.0.0.1:{emu.port}", credentials=Credentials("admin", "pw-1"),
                      tls=TLSPolicy.pinned(KnownHosts(tmp_path / "known_devices"))) as dev:
        kinds = [p["deviceType"] for p in (await dev.call("devicemanagement_devices_get")).data]
        assert kinds == ["CODEC", "TOUCHCONTROL", "CAMERA", "REMOTE"]
        emu.state.detached = {"CAMERA"}
        kinds = [p["deviceType"] for p in (await dev.call("devicemanagement_devices_get")).data]
        assert kinds == ["CODEC", "TOUCHCONTROL", "REMOTE"]
