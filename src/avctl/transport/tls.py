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
import datetime as dt
import errno
import functools
import hashlib
import ipaddress
import os
import re
import ssl
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal, TypeVar

from avctl.errors import ConnectError, DeviceTimeout, TLSError, UsageError
from avctl.filelock import exclusive_lock
from avctl.paths import avctl_home, open_private

if TYPE_CHECKING:  # imported where used: `avctl --help` and `avctl actions` need neither
    import aiohttp
    from cryptography import x509

TLSMode = Literal["pin", "ca", "insecure"]
_T = TypeVar("_T")
#: how often a writer opens the pins file again after another process replaced it under its feet
_LOCK_ATTEMPTS = 20


def fingerprint(der: bytes) -> str:
    digest = hashlib.sha256(der).hexdigest().upper()
    return "SHA256:" + ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _digest(fp: str) -> bytes:
    return bytes.fromhex(fp.split(":", 1)[1].replace(":", ""))


def endpoint_key(host: str, port: int) -> str:
    """The pin key: the host as typed (no DNS lookup; lower case) and the port; IPv6 in brackets.

    Pins are per typed name: ``localhost:8443`` and ``127.0.0.1:8443`` are two entries, as in SSH's
    known_hosts, because avctl cannot know that two names reach the same device.
    """
    host = host.lower()  # DNS names are case-insensitive; older pin files may hold any case
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_FP_RE = re.compile(r"^SHA256:[0-9A-F]{2}(:[0-9A-F]{2}){31}$")
_KEY_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*):(\d{1,5})$")


@dataclass(frozen=True)
class Pin:
    fingerprint: str
    #: what was odd about the certificate when it was pinned ("" for nothing), kept as a comment
    note: str = ""

    def line(self, endpoint: str) -> str:
        return f"{endpoint} {self.fingerprint}" + (f" # {self.note}" if self.note else "") + "\n"


def _parse_pin_line(line: str) -> tuple[str, Pin] | None:
    """One known-devices line -> (endpoint, pin); None for blank and comment lines.

    Raises ValueError with what is wrong."""
    body, _, note = line.partition("#")
    parts = body.split()
    if not parts:
        return None
    if len(parts) != 2:
        raise ValueError(f"expected 'HOST:PORT SHA256:...', found {len(parts)} field(s)")
    m = _KEY_RE.match(parts[0])
    if not m or not 1 <= int(m.group(2)) <= 65535:
        raise ValueError(f"{parts[0]!r} is not HOST:PORT")
    if not _FP_RE.match(parts[1]):
        raise ValueError("the fingerprint is not 'SHA256:' and 32 hex byte pairs")
    host = m.group(1).strip("[]")
    return endpoint_key(host, int(m.group(2))), Pin(parts[1], note.strip())


def _canonical(endpoint: str) -> str:
    """`::1:443` and `[::1]:443` are one key (older avctl wrote IPv6 pins without brackets)."""
    m = _KEY_RE.match(endpoint)
    return endpoint_key(m.group(1).strip("[]"), int(m.group(2))) if m else endpoint


class KnownHosts:
    """The known-devices file: one `host:port SHA256:... [# note]` line per device.

    Reads are cached; writes take a file lock and re-read first, so several avctl processes
    pinning different devices at the same time do not lose each other's lines. The file is 0600 in
    a 0700 directory (it decides whom avctl trusts).

    A damaged line is an error naming the line, not skipped: a skipped line is a forgotten pin, and
    the next connection would pin whatever certificate it meets without a word, the one thing
    pinning exists to prevent.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else avctl_home() / "known_devices"
        self._pins: dict[str, Pin] | None = None
        self._pins_stamp: tuple[int, int, int] | None = None

    def _read(self) -> dict[str, Pin]:
        pins: dict[str, Pin] = {}
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return pins
        except OSError as exc:
            raise UsageError(f"{self.path}: cannot read the pinned certificates: {exc.strerror}") from None
        fix = (f"correct or delete that line in {self.path}, then re-pin the device with "
               "'avctl trust HOST:PORT --replace' (check its fingerprint on the device first)")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = raw[: exc.start].count(b"\n") + 1
            raise UsageError(f"{self.path}:{bad}: pinned certificates file is damaged: not UTF-8 text",
                             hint=fix) from None
        for n, line in enumerate(text.splitlines(), 1):
            try:
                if "\0" in line:
                    raise ValueError("the line holds a NUL byte")
                parsed = _parse_pin_line(line)
            except ValueError as exc:
                raise UsageError(f"{self.path}:{n}: pinned certificates file is damaged: {exc}",
                                 hint=fix) from None
            if parsed:
                pins[parsed[0]] = parsed[1]  # the last line for an endpoint wins
        return pins

    def _cached(self) -> dict[str, Pin]:
        # another process (the server's poller, a CLI run) may have pinned a device since: a changed
        # file is read again, so this process never pins over, nor shows as unpinned, what it has
        stamp = self._stamp()
        if self._pins is None or stamp != self._pins_stamp:
            self._pins, self._pins_stamp = self._read(), stamp
        return self._pins

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def reload(self) -> None:
        """Read the file again at the next lookup."""
        self._pins = None

    def get(self, endpoint: str) -> str | None:
        pin = self._cached().get(_canonical(endpoint))
        return pin.fingerprint if pin else None

    def note(self, endpoint: str) -> str:
        """What was odd about the pinned certificate when it was pinned ("" if nothing)."""
        pin = self._cached().get(_canonical(endpoint))
        return pin.note if pin else ""

    def pins(self) -> dict[str, Pin]:
        """Every pin, by endpoint, in the file's order (a copy)."""
        return dict(self._cached())

    def set(self, endpoint: str, fp: str, *, replace: bool = False, note: str = "") -> bool:
        """Pin `fp` for `endpoint`; False if it already had a pin and `replace` is not set.

        A first pin appends one line under a file lock, so pinning thousands of devices stays linear
        and concurrent processes lose nothing. A replaced pin rewrites the file without the old
        line: a pins file that still lists the old fingerprint would read as two answers."""
        pins = self._cached()
        endpoint = _canonical(endpoint)
        pin = Pin(fp, " ".join(note.split()))  # one line: a note never breaks the file
        if endpoint in pins:
            if not replace:
                return False
            self._rewrite(lambda current: current.update({endpoint: pin}))
            return True
        try:
            with self._locked(os.O_WRONLY | os.O_APPEND, "a") as fh:
                fh.write(pin.line(endpoint))
        except OSError as exc:
            raise _write_error(self.path, exc) from None
        pins[endpoint] = pin
        # our own line is in the cache: not a change to read the whole file again for (10,000 first
        # pins would read it 10,000 times)
        self._pins_stamp = self._stamp()
        return True

    def remove(self, endpoint: str) -> bool:
        """Forget a pin (rewrites the file without that endpoint's lines); False if there was none."""
        if not self.path.exists():
            return False
        key = _canonical(endpoint)
        return self._rewrite(lambda current: current.pop(key, None)) is not None

    @contextlib.contextmanager
    def _locked(self, flags: int, mode: str) -> Iterator[IO[str]]:
        """The pins file, open and locked. A rewrite replaces the file: a process that waited for the
        lock of the file it replaced opens the new one again, or its line would go to a file that
        no longer has a name."""
        for _attempt in range(_LOCK_ATTEMPTS):
            with os.fdopen(open_private(self.path, flags), mode) as fh, exclusive_lock(fh):
                if os.fstat(fh.fileno()).st_ino == os.stat(self.path).st_ino:
                    yield fh
                    return
        raise OSError(errno.EBUSY, f"replaced {_LOCK_ATTEMPTS} times while avctl waited to write it")

    def _rewrite(self, change: Callable[[dict[str, Pin]], _T]) -> _T:
        """Apply `change` to the pins as the file holds them now (under its lock) and write them back,
        one line each, through a temporary file (a crash leaves the old file or the new one)."""
        try:
            with self._locked(os.O_RDWR, "r+"):
                pins = self._read()
                result = change(pins)
                tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
                with os.fdopen(open_private(tmp, os.O_WRONLY | os.O_TRUNC), "w") as out:
                    out.write("".join(pin.line(k) for k, pin in pins.items()))
                os.replace(tmp, self.path)
        except OSError as exc:
            raise _write_error(self.path, exc) from None
        self._pins, self._pins_stamp = pins, self._stamp()
        return result


def _write_error(path: Path, exc: OSError) -> UsageError:
    # refusing is safe: nothing has been sent to the device yet
    return UsageError(f"{path}: cannot write the pinned certificates: {exc.strerror or exc}",
                      hint="check the path (--known-hosts, AVCTL_HOME) and the disk")


def certificate_oddities(der: bytes, host: str, *, now: dt.datetime | None = None) -> list[str]:
    """What is odd about a certificate met on first use: expired, not yet valid, or issued for
    another name than the one typed. Self-signed is what meeting-room devices have: not odd."""
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return ["the certificate cannot be parsed"]
    now = now or dt.datetime.now(dt.UTC)
    odd: list[str] = []
    if cert.not_valid_after_utc < now:
        odd.append(f"expired {cert.not_valid_after_utc:%Y-%m-%d}")
    if cert.not_valid_before_utc > now:
        odd.append(f"not valid before {cert.not_valid_before_utc:%Y-%m-%d}")
    names = _certificate_names(cert)
    if not _name_matches(host, names):
        # the names come from the device: escape what is not printable, cap the length
        shown = ", ".join(repr(n)[1:-1][:64] if not n.isprintable() else n[:64] for n in names[:3])
        shown = (shown + (", ..." if len(names) > 3 else "")) if names else "no name"
        odd.append(f"issued for {shown}, not {host}")
    return odd


def _certificate_names(cert: x509.Certificate) -> list[str]:
    """The SAN DNS names and IP addresses, else the subject CN (as TLS clients fall back to it)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [*san.get_values_for_type(x509.DNSName),
                 *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))]
    except (x509.ExtensionNotFound, ValueError):
        names = []
    if not names:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return names


def _name_matches(host: str, names: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for name in names:
        if ip is not None:
            with contextlib.suppress(ValueError):
                if ipaddress.ip_address(name) == ip:
                    return True
            continue
        pattern, target = name.lower().rstrip("."), host.lower().rstrip(".")
        if pattern == target:
            return True
        # one wildcard label at the left, as browsers accept it
        if pattern.startswith("*.") and "." in target and target.split(".", 1)[1] == pattern[2:]:
            return True
    return False


@functools.cache
def _unverified() -> ssl.SSLContext:
    """For fetching a certificate to show or pin (made on first use: it reads the system CA store)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def fetch_certificate(host: str, port: int, timeout: float = 10.0) -> bytes:
    """Handshake once, without sending anything, and return the device's certificate (DER)."""
    try:
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=_unverified()), timeout
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
    #: the pins' SHA-256 digests by endpoint, for `LeanTransport` (which never imports aiohttp: ~26 MB
    #: of the poller process's memory)
    _digests: dict[str, bytes] = field(default_factory=dict)
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
        if self.mode != "pin":
            return self._unpinned()
        endpoint = endpoint_key(host, port)
        cached = self._fingerprints.get(endpoint)
        if cached is not None:
            return cached
        digest = await self.pin_digest(host, port)
        # one object per endpoint: aiohttp keys its connection pool on it (identity), so a new
        # Fingerprint per request would mean a new TLS handshake per request
        from avctl.transport.client_lib import aiohttp

        self._fingerprints[endpoint] = aiohttp.Fingerprint(digest)
        return self._fingerprints[endpoint]

    def known_ssl_for(self, host: str, port: int) -> aiohttp.Fingerprint | None:
        """What `ssl_for` would answer for a pinned endpoint it answered before, without awaiting
        (every poll request asks; an await here cost a task per request); None: ask `ssl_for`."""
        return self._fingerprints.get(endpoint_key(host, port)) if self.mode == "pin" else None

    async def check_for(self, host: str, port: int) -> ssl.SSLContext | bytes | None:
        """How `LeanTransport` checks one endpoint's certificate: the CA bundle's context, the SHA-256
        digest of its pin (pinned on first use), or None (``--insecure``)."""
        if self.mode != "pin":
            unpinned = self._unpinned()
            return unpinned if isinstance(unpinned, ssl.SSLContext) else None
        return self.known_check_for(host, port) or await self.pin_digest(host, port)

    def known_check_for(self, host: str, port: int) -> bytes | None:
        """The pin digest `check_for` found before, without awaiting; None: ask `check_for`."""
        return self._digests.get(endpoint_key(host, port)) if self.mode == "pin" else None

    async def pin_digest(self, host: str, port: int) -> bytes:
        """The SHA-256 digest the endpoint's certificate must have; pins it on first use."""
        endpoint = endpoint_key(host, port)
        cached = self._digests.get(endpoint)
        if cached is not None:
            return cached
        fp = self.known_hosts.get(endpoint)
        if fp is None:
            lock = self._locks.setdefault(endpoint, asyncio.Lock())
            async with lock:
                fp = self.known_hosts.get(endpoint)
                if fp is None:
                    fp = self._pin_first_use(endpoint, host, await fetch_certificate(host, port))
        self._digests[endpoint] = digest = _digest(fp)
        return digest

    def _unpinned(self) -> ssl.SSLContext | bool:
        """The ``ca`` mode's context, or False for ``insecure`` (said once per policy)."""
        if self.mode == "insecure":
            if not self._warned:
                self._warned = True
                print("avctl: warning: certificate checks are OFF (--insecure)", file=sys.stderr)
            return False
        if self._context is None:
            self._context = ssl.create_default_context(cafile=self.cafile)
        return self._context

    def _pin_first_use(self, endpoint: str, host: str, der: bytes) -> str:
        """Pin a certificate met for the first time; say once (and note in the pin) what was odd."""
        fp = fingerprint(der)
        odd = "; ".join(certificate_oddities(der, host))
        if not self.known_hosts.set(endpoint, fp, note=f"first use: {odd}" if odd else ""):
            # another process pinned it a moment ago: that pin is the one to check against
            return self.known_hosts.get(endpoint) or fp
        # said once per device: this process checks this pin from now on, and the next run finds it.
        # Flushed: it comes before the results on a shared stream (2>&1), never inside them
        if odd:
            print(f"avctl: warning: pinned NEW fingerprint {fp} for {endpoint} on first use although "
                  f"the certificate is odd: {odd}; if that is not expected, remove the pin with "
                  f"'avctl trust remove {endpoint}' and check the device", file=sys.stderr, flush=True)
        else:
            print(f"avctl: pinned NEW fingerprint {fp} for {endpoint} (first use; "
                  f"'avctl trust list' shows the pins)", file=sys.stderr, flush=True)
        return fp

    def pinned_fingerprint(self, host: str, port: int) -> str | None:
        return self.known_hosts.get(endpoint_key(host, port))

    def forget(self, host: str, port: int) -> None:
        """Forget what this policy holds for the endpoint: its pin is read again from the file (another
        process replaced it), and the next connection checks that one."""
        self._fingerprints.pop(endpoint_key(host, port), None)
        self._digests.pop(endpoint_key(host, port), None)
        self.known_hosts.reload()

    def replace_pin(self, host: str, port: int, fp: str, *, note: str = "") -> str | None:
        """Pin `fp` for the endpoint in place of its pin (re-pinning after a reset), and forget the
        old one this policy holds, so the next connection of this process checks the new one.
        Returns the old fingerprint (None: there was none)."""
        endpoint = endpoint_key(host, port)
        old = self.known_hosts.get(endpoint)
        self.known_hosts.set(endpoint, fp, replace=True, note=note)
        self._fingerprints.pop(endpoint, None)
        self._digests.pop(endpoint, None)
        return old
