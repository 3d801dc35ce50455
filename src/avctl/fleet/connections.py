"""Connection handling tuned for fleets: reuse within a device, nothing kept after it.

Two things the single-device core does not need but a sweep of thousands of devices does:

- :class:`FleetTLSPolicy` hands aiohttp the *same* ``Fingerprint`` object for every request to an
  endpoint. aiohttp pools connections by a key that includes the ssl argument, and a fresh
  ``Fingerprint`` per request never matches, so every request paid a new TLS handshake and left
  one more idle connection in the pool (4 handshakes and 4 sockets per device for a status read).
- :class:`FleetTransport` asks the device to close the connection on the device's last request
  (the logout), so the pool does not keep one idle TLS connection per finished device: memory
  stays bounded by the concurrency, not by the fleet size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp

from avctl.request import Request, Response
from avctl.transport.http import Endpoint, HttpTransport
from avctl.transport.tls import TLSPolicy


@dataclass
class FleetTLSPolicy(TLSPolicy):
    _pins: dict[tuple[str, int], Any] = field(default_factory=dict)

    @classmethod
    def wrap(cls, policy: TLSPolicy | None) -> FleetTLSPolicy:
        p = policy or TLSPolicy.pinned()
        return cls(mode=p.mode, known_hosts=p.known_hosts, cafile=p.cafile)

    async def ssl_for(self, host: str, port: int) -> Any:
        hit = self._pins.get((host, port))
        if hit is not None:
            return hit
        value = await super().ssl_for(host, port)
        if isinstance(value, aiohttp.Fingerprint):
            self._pins[(host, port)] = value
        return value


class FleetTransport:
    """An ``HttpTransport`` that can be told an endpoint is finishing (its connections then close)."""

    def __init__(self, tls: TLSPolicy | None = None) -> None:
        self.inner = HttpTransport(FleetTLSPolicy.wrap(tls))
        self._closing: set[tuple[str, int]] = set()

    def closing(self, endpoint: Endpoint) -> None:
        self._closing.add((endpoint.host, endpoint.port))

    def closed(self, endpoint: Endpoint) -> None:
        self._closing.discard((endpoint.host, endpoint.port))

    async def send(self, endpoint: Endpoint, request: Request, *, timeout: float) -> Response:
        if (endpoint.host, endpoint.port) in self._closing:
            request = request.with_headers(Connection="close")
        return await self.inner.send(endpoint, request, timeout=timeout)

    async def close(self) -> None:
        await self.inner.close()
