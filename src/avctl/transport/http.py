"""The HTTP transport: carries a `Request` to one endpoint and returns a `Response`.

One `HttpTransport` (one aiohttp session and connection pool) serves any number of devices; it
knows nothing of logins or envelopes. Cookies are not kept here: a shared jar would mix devices
and refuses IP-address hosts, so the auth flow of each device holds its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp

from avctl.errors import (
    CertificateChanged,
    ConnectError,
    ConnectionDropped,
    DeviceTimeout,
    TLSError,
    TransportError,
)
from avctl.request import Request, Response
from avctl.transport.tls import TLSPolicy, fingerprint


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def url(self, target: str) -> str:
        return f"{self.scheme}://{self}{target}"


class Transport(Protocol):
    """What a device needs from a transport (the emulator tests use the real one)."""

    async def send(self, endpoint: Endpoint, request: Request, *, timeout: float) -> Response: ...

    async def close(self) -> None: ...


class HttpTransport:
    """aiohttp-backed transport with a TLS policy. Create inside a running event loop, or lazily."""

    def __init__(self, tls: TLSPolicy | None = None, *, max_connections: int = 0) -> None:
        self.tls = tls or TLSPolicy.pinned()
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=0, enable_cleanup_closed=True, ttl_dns_cache=None
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True,
                skip_auto_headers=("Content-Type",),
            )
        return self._session

    async def send(self, endpoint: Endpoint, request: Request, *, timeout: float) -> Response:
        scheme = request.scheme or endpoint.scheme
        ep = Endpoint(scheme, endpoint.host, request.port or endpoint.port)
        started = time.monotonic()
        ssl_arg: ssl.SSLContext | aiohttp.Fingerprint | bool = False
        try:
            if scheme == "https":
                ssl_arg = await asyncio.wait_for(self.tls.ssl_for(ep.host, ep.port), timeout)
            headers = list(request.headers)
            if request.body is not None and not any(k.lower() == "content-length" for k, _ in headers):
                headers.append(("Content-Length", str(len(request.body))))
            async with self._client().request(
                request.method,
                ep.url(request.target),
                headers=headers,
                data=request.body,
                ssl=ssl_arg,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as resp:
                response_headers = tuple(resp.headers.items())
                if request.stream_to is not None and 200 <= resp.status < 300:
                    path = await _stream_to_file(resp, request.stream_to)
                    return Response(
                        resp.status, response_headers, b"", path, time.monotonic() - started, request
                    )
                body = await resp.read()
                return Response(
                    resp.status, response_headers, body, None, time.monotonic() - started, request
                )
        except aiohttp.ServerFingerprintMismatch as exc:
            pinned = self.tls.pinned_fingerprint(ep.host, ep.port) or "?"
            raise CertificateChanged(
                str(ep), pinned, fingerprint_from_digest(exc.got), str(self.tls.known_hosts.path)
            ) from None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise DeviceTimeout(f"{ep}: no answer within {timeout:g} s") from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise TLSError(
                f"{ep}: certificate not trusted: {exc.certificate_error}",
                hint="pin it (default), give --ca-bundle, or --insecure to skip checks",
            ) from None
        except aiohttp.ClientSSLError as exc:
            raise TLSError(f"{ep}: TLS failed: {exc}") from None
        except aiohttp.ClientConnectorError as exc:
            errno = exc.os_error.errno
            reason = os.strerror(errno) if errno else str(exc.os_error)
            raise ConnectError(f"{ep}: cannot connect: {reason}") from None
        except (
            aiohttp.ServerDisconnectedError,
            aiohttp.ClientPayloadError,
            aiohttp.ClientOSError,
            ConnectionResetError,
        ) as exc:
            raise ConnectionDropped(f"{ep}: connection dropped: {exc or type(exc).__name__}") from None
        except aiohttp.ClientError as exc:
            raise TransportError(f"{ep}: {type(exc).__name__}: {exc}") from None

    def release(self, endpoint: Endpoint) -> None:
        """Close the idle pooled connections to one endpoint (a device that is done).

        In a fleet sweep a finished device's keep-alive connection would otherwise hold its TLS
        buffers until the keep-alive timeout: a thousand of them add up to hundreds of MB.
        aiohttp has no public call for this, so it degrades to a no-op if the pool changes shape.
        """
        connector = self._session.connector if self._session is not None else None
        pool = getattr(connector, "_conns", None)
        if not isinstance(pool, dict):
            return
        for key in [k for k in pool if getattr(k, "host", None) == endpoint.host
                    and getattr(k, "port", None) == endpoint.port]:
            for proto, _ in pool.pop(key, ()):
                proto.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def fingerprint_from_digest(digest: bytes) -> str:
    hexed = digest.hex().upper()
    return "SHA256:" + ":".join(hexed[i : i + 2] for i in range(0, len(hexed), 2))


async def _stream_to_file(resp: aiohttp.ClientResponse, target: Path) -> Path:
    """Write the body to `target`, or into it with the server's file name when it is a folder."""
    if target.is_dir():
        name = resp.content_disposition.filename if resp.content_disposition else None
        target = target / Path(name or resp.url.name or "download.bin").name
    tmp = target.with_name(f".{target.name}.part{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            async for chunk in resp.content.iter_chunked(1 << 16):
                fh.write(chunk)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return target


__all__ = ["Endpoint", "HttpTransport", "Transport", "fingerprint"]
