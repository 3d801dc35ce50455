"""avctl: control and manage fleets of meeting-room devices over their REST APIs.

The public API is small on purpose:

    from avctl import Device, Credentials
    async with Device("videoos", "10.0.0.5", credentials=Credentials("admin", pw)) as dev:
        await dev.call("audio_volume_set", volume=50)
"""

from avctl.auth import Credentials
from avctl.device import Device, Result, SyncDevice
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
from avctl.families import builtin_spec
from avctl.spec import Spec, load_spec
from avctl.transport.tls import KnownHosts, TLSPolicy

__version__ = "0.1.0"

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
