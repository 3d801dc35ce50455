"""avctl: control and manage fleets of meeting-room devices over their REST APIs.

The public API is small on purpose:

    from avctl import Device, Credentials
    async with Device("videoos", "10.0.0.5", credentials=Credentials("admin", pw)) as dev:
        await dev.call("audio_volume_set", volume=50)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from avctl.errors import (
    AccountLockedError,
    AuthenticationError,
    AvctlError,
    CertificateChanged,
    ConnectError,
    DeviceError,
    DeviceTimeout,
    TLSError,
    TransportError,
    ValidationError,
)

if TYPE_CHECKING:
    from avctl.auth import Credentials
    from avctl.device import Device, Result, SyncDevice
    from avctl.families import builtin_spec
    from avctl.spec import Spec, load_spec
    from avctl.transport.tls import KnownHosts, TLSPolicy

from avctl.version import __version__ as __version__

#: imported on first use: they pull in aiohttp, cryptography and the spec loader, which `avctl --help`
#: (and anything else that only needs `avctl.errors` or `__version__`) does not need
_LAZY = {
    "Credentials": "avctl.auth",
    "Device": "avctl.device",
    "Result": "avctl.device",
    "SyncDevice": "avctl.device",
    "Spec": "avctl.spec",
    "builtin_spec": "avctl.families",
    "load_spec": "avctl.spec",
    "KnownHosts": "avctl.transport.tls",
    "TLSPolicy": "avctl.transport.tls",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'avctl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AccountLockedError",
    "AuthenticationError",
    "AvctlError",
    "CertificateChanged",
    "ConnectError",
    "Credentials",
    "Device",
    "DeviceError",
    "DeviceTimeout",
    "KnownHosts",
    "Result",
    "Spec",
    "SyncDevice",
    "TLSError",
    "TLSPolicy",
    "TransportError",
    "ValidationError",
    "builtin_spec",
    "load_spec",
]
