"""TLS policy: trust on first use with pinned fingerprints, a CA bundle, or (only by name) insecure.

Meeting-room devices present self-signed certificates, so CA validation alone would force users to
switch checks off, which is what the scripts in the field do. Pinning instead keeps the first seen
certificate per device in a known-devices file (like SSH's known_hosts) and refuses a changed one,
showing both fingerprints; VideoOS changes its certificate after a reset, so the error says how to
accept the new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import ssl
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import aiohttp

from avctl.errors import ConnectError, DeviceTimeout, TLSError, UsageError

TLSMode = Literal["pin", "ca", "insecure"]


def avctl_home() -> Path:
    """Where avctl keeps its state (known devices, jobs, secrets): $AVCTL_HOME or ~/.config/avctl."""
    env = os.environ.get("AVCTL_HOME")
    return Path(env) if env else Path.home() / ".config" / "avctl"


def fingerprint(der: bytes) -> str:
    digest = hashlib.sha256(der).hexdigest().upper()
    return "SHA256:" + ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _digest(fp: str) -> bytes:
    return bytes.fromhex(fp.split(":", 1)[1].replace(":", ""))


class KnownHosts:
    """The known-devices file: one `host:port SHA256:...` line per device.

    Reads are cached; writes take a file lock and re-read first, so several avctl processes
    pinning different devices at the same time do not lose each other's lines.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or avctl_home() / "known_devices"
        self._pins: dict[str, str] | None = None

    def _read(self) -> dict[str, str]:
        pins: dict[str, str] = {}
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return pins
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 2 and not line.startswith("#"):
                pins[parts[0]] = parts[1]
        return pins

    def get(self, endpoint: str) -> str | None:
        if self._pins is None:
            self._pins = self._read()
        return self._pins.get(endpoint)

    def set(self, endpoint: str, fp: str, *, replace: bool = False) -> None:
        """Pin `fp` for `endpoint`. Appends one line under a file lock (the last line for an endpoint
        wins), so pinning thousands of devices stays linear and concurrent processes lose nothing."""
        if self._pins is None:
            self._pins = self._read()
        if endpoint in self._pins and not replace:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.write(f"{endpoint} {fp}\n")
        self._pins[endpoint] = fp

    def remove(self, endpoint: str) -> bool:
        """Forget a pin (rewrites the file without that endpoint's lines)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            pins = self._read()
            found = pins.pop(endpoint, None) is not None
            tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
            tmp.write_text("".join(f"{k} {v}\n" for k, v in sorted(pins.items())))
            os.replace(tmp, self.path)
        self._pins = pins
        return found


_UNVERIFIED = ssl.create_default_context()
_UNVERIFIED.check_hostname = False
_UNVERIFIED.verify_mode = ssl.CERT_NONE


async def fetch_certificate(host: str, port: int, timeout: float = 10.0) -> bytes:
    """Handshake once, without sending anything, and return the device's certificate (DER)."""
    try:
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=_UNVERIFIED), timeout
        )
    except TimeoutError:
        raise DeviceTimeout(f"{host}:{port}: no TLS handshake within {timeout:g} s") from None
    except ssl.SSLError as exc:
        raise TLSError(f"{host}:{port}: TLS handshake failed: {exc.reason or exc}") from None
    except OSError as exc:
        raise ConnectError(f"{host}:{port}: cannot connect: {exc.strerror or exc}") from None
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    if not der:
        raise TLSError(f"{host}:{port}: the device presented no certificate")
    return bytes(der)


@dataclass
class TLSPolicy:
    """How certificates are checked. Build with `pinned()`, `ca_bundle()` or `insecure()`."""

    mode: TLSMode = "pin"
    known_hosts: KnownHosts = field(default_factory=KnownHosts)
    cafile: str | None = None
    _context: ssl.SSLContext | None = None
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _fingerprints: dict[str, aiohttp.Fingerprint] = field(default_factory=dict)
    _warned: bool = False

    @classmethod
    def pinned(cls, known_hosts: KnownHosts | Path | None = None) -> TLSPolicy:
        kh = known_hosts if isinstance(known_hosts, KnownHosts) else KnownHosts(known_hosts)
        return cls(mode="pin", known_hosts=kh)

    @classmethod
    def ca_bundle(cls, cafile: str) -> TLSPolicy:
        if not Path(cafile).is_file():
            raise UsageError(f"CA bundle {cafile!r} does not exist", hint="give the path of a PEM file")
        return cls(mode="ca", cafile=cafile)

    @classmethod
    def insecure(cls) -> TLSPolicy:
        """No certificate checks at all. Only ever built when a user asks for it by name."""
        return cls(mode="insecure")

    async def ssl_for(self, host: str, port: int) -> ssl.SSLContext | aiohttp.Fingerprint | bool:
        """What to hand aiohttp for one endpoint; pins on first use (before any credential is sent)."""
        if self.mode == "insecure":
            if not self._warned:
                self._warned = True
                print("avctl: warning: certificate checks are OFF (--insecure)", file=sys.stderr)
            return False
        if self.mode == "ca":
            if self._context is None:
                self._context = ssl.create_default_context(cafile=self.cafile)
            return self._context
        endpoint = f"{host}:{port}"
        cached = self._fingerprints.get(endpoint)
        if cached is not None:
            return cached
        fp = self.known_hosts.get(endpoint)
        if fp is None:
            lock = self._locks.setdefault(endpoint, asyncio.Lock())
            async with lock:
                fp = self.known_hosts.get(endpoint)
                if fp is None:
                    fp = fingerprint(await fetch_certificate(host, port))
                    self.known_hosts.set(endpoint, fp)
        # one object per endpoint: aiohttp keys its connection pool on it (identity), so a new
        # Fingerprint per request would mean a new TLS handshake per request
        self._fingerprints[endpoint] = aiohttp.Fingerprint(_digest(fp))
        return self._fingerprints[endpoint]

    def pinned_fingerprint(self, host: str, port: int) -> str | None:
        return self.known_hosts.get(f"{host}:{port}")
