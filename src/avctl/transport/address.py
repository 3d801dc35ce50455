"""Device addresses as people type them, parsed once for `avctl call`, `avctl trust` and inventories.

Accepted: ``host``, ``host:port``, ``[v6]``, ``[v6]:port``, a bare IPv6 address, and any of those
after ``http://`` or ``https://`` with an optional trailing ``/``. The result is canonical: host
names in lower case (DNS names are case-insensitive), IP addresses in their standard form, so the
same device typed two ways compares equal (:meth:`Address.identity`).

Refused, with what is wrong: ports outside 1-65535 or not plain digits, a path or query, and a
user name or password (``user:pw@host``), which would otherwise ride along into messages, logs
and pin files; credentials have their own options and references.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

__all__ = ["SCHEMES", "Address", "check_port", "parse_address"]

SCHEMES = ("https", "http")
_HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                          r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")
_PORT_RE = re.compile(r"^[0-9]{1,5}$")


@dataclass(frozen=True)
class Address:
    host: str
    port: int | None = None
    scheme: str | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port else host

    def identity(self, port: int | None) -> tuple[str, int | None]:
        """(host, port) that is equal for two spellings of the same socket: ``port`` is the one
        used when the address has none; an IPv4-mapped IPv6 address is its IPv4 address; a trailing
        dot on a name is dropped."""
        host = self.host.rstrip(".")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                host = str(ip.ipv4_mapped)
        return host, self.port or port


def check_port(text: str | int) -> int:
    """A port number 1-65535 from an int or plain digits (no sign, spaces or underscores)."""
    if isinstance(text, bool):
        raise ValueError(f"port {text!r} is not a number")
    if isinstance(text, str):
        if not _PORT_RE.match(text):
            shown = text if len(text) <= 20 else text[:20] + "..."
            raise ValueError(f"port {shown!r} is not a number 1-65535")
        text = int(text)
    if not isinstance(text, int):
        raise ValueError(f"port {text!r} is not a number")
    if not 1 <= text <= 65535:
        raise ValueError(f"port {text} is out of range 1-65535")
    return text


def _check_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    # an all-numeric last label (10.0.0.300, 127.000.000.001) is a mistyped IPv4 address, not a name
    if not _HOSTNAME_RE.match(host) or host.rstrip(".").rsplit(".", 1)[-1].isdigit():
        shown = host if len(host) <= 80 else host[:80] + "..."
        raise ValueError(f"{shown!r} is not an IP address or host name"
                         + (" (IPv4 addresses have no leading zeros)" if re.match(r"^[\d.]+$", host) else ""))
    return host.lower()


def parse_address(text: str) -> Address:
    """Parse an address (see the module docstring). Raises ValueError with what is wrong."""
    s = text.strip()
    if not s:
        raise ValueError("address is empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in s):
        raise ValueError("address holds a control character")
    scheme = None
    if "://" in s:
        scheme, _, s = s.partition("://")
        scheme = scheme.lower()
        if scheme not in SCHEMES:
            raise ValueError(f"scheme {scheme[:20]!r} is not http or https")
        s = s.rstrip("/")
        if "/" in s or "?" in s or "#" in s:
            raise ValueError("an address has no path; give only scheme://host:port")
    if "@" in s:
        # never echo the part before '@': it may be a password
        raise ValueError(f"address '...@{s.rpartition('@')[2][:80]}' holds a user name or password; "
                         "give the host only (the user and password have their own options)")
    port: int | None = None
    if s.startswith("["):
        end = s.find("]")
        if end < 0:
            raise ValueError(f"{s[:80]!r}: '[' without ']'")
        host, rest = s[1:end], s[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{s[:80]!r}: expected ':port' after ']'")
            port = check_port(rest[1:])
        try:
            host = str(ipaddress.IPv6Address(host))
        except ValueError:
            raise ValueError(f"{host[:80]!r} in brackets is not an IPv6 address") from None
        return Address(host, port, scheme)
    if s.count(":") == 1:
        host, _, p = s.partition(":")
        port = check_port(p)
    elif s.count(":") > 1:
        try:
            host = str(ipaddress.IPv6Address(s))  # bare IPv6: no port possible without brackets
        except ValueError:
            raise ValueError(f"{s[:80]!r} is not an IPv6 address (write [v6]:port for a port)") from None
        return Address(host, None, scheme)
    else:
        host = s
    return Address(_check_host(host), port, scheme)
