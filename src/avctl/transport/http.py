"""The HTTP transport: carries a `Request` to one endpoint and returns a `Response`.

One `HttpTransport` (one aiohttp session and connection pool) serves any number of devices; it
knows nothing of logins or envelopes. Cookies are not kept here: a shared jar would mix devices
and refuses IP-address hosts, so the auth flow of each device holds its own.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlencode

from avctl.errors import (
    CertificateChanged,
    ConnectError,
    ConnectionDropped,
    DeviceTimeout,
    TLSError,
    TransportError,
    UsageError,
    ValidationError,
)
from avctl.request import Request, Response
from avctl.spec.model import DEFAULT_MAX_RESPONSE_BYTES
from avctl.transport.files import capped_chunks, label, save_download
from avctl.transport.tls import TLSPolicy, fingerprint

if TYPE_CHECKING:  # imported where used: the poller's process (LeanTransport) never loads aiohttp (~26 MB)
    import aiohttp


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


#: seconds an idle connection is kept by default (aiohttp's own default)
DEFAULT_KEEPALIVE = 15.0


class HttpTransport:
    """aiohttp-backed transport with a TLS policy. Create inside a running event loop, or lazily."""

    def __init__(self, tls: TLSPolicy | None = None, *, max_connections: int = 0,
                 keepalive: float | None = None) -> None:
        """``keepalive``: seconds an idle connection is kept for its next request (default
        `DEFAULT_KEEPALIVE`); a poller that comes back every minute keeps them longer, else every poll is a new
        TCP and TLS handshake."""
        self.tls = tls or TLSPolicy.pinned()
        self._max_connections = max_connections
        self._keepalive = keepalive
        self._session: aiohttp.ClientSession | None = None
        #: the DER certificate each HTTPS (host, port) presented last (what the server's certificate
        #: expiry reading looks at: the transport is the one place that sees it without a handshake of
        #: its own)
        self.peer_certificates: dict[tuple[str, int], bytes] = {}

    def _client(self) -> aiohttp.ClientSession:
        from avctl.transport.client_lib import aiohttp

        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=0, enable_cleanup_closed=True, ttl_dns_cache=None,
                keepalive_timeout=DEFAULT_KEEPALIVE if self._keepalive is None else self._keepalive,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True,
                skip_auto_headers=("Content-Type",),
            )
            # aiohttp resends an idempotent-method request once, silently, when its connection
            # drops. Device requests are not idempotent in practice (Solstice v1 changes state with
            # GET) and every request must be counted: retries belong to `avctl.retry` alone.
            if hasattr(self._session, "_retry_connection"):
                self._session._retry_connection = False
        return self._session

    async def send(self, endpoint: Endpoint, request: Request, *, timeout: float) -> Response:
        from avctl.transport.client_lib import aiohttp

        scheme = request.scheme or endpoint.scheme
        ep = Endpoint(scheme, endpoint.host, request.port or endpoint.port)
        started = time.monotonic()
        ssl_arg: ssl.SSLContext | aiohttp.Fingerprint | bool = False
        headers = list(request.headers)
        check_headers(request, headers)
        try:
            if scheme == "https":
                known = self.tls.known_ssl_for(ep.host, ep.port)
                ssl_arg = known if known is not None else await asyncio.wait_for(
                    self.tls.ssl_for(ep.host, ep.port), timeout)
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
                if scheme == "https":
                    self._note_certificate(ep, resp)
                response_headers = tuple(resp.headers.items())
                if request.stream_to is not None and 200 <= resp.status < 300:
                    path = await save_download(resp, request)
                    return Response(
                        resp.status, response_headers, b"", path, time.monotonic() - started, request
                    )
                body = await _read_capped(resp, request)
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
                f"{ep}: certificate not trusted: {scrub(str(exc.certificate_error), request)}",
                hint="pin it (default), give --ca-bundle, or --insecure to skip checks",
            ) from None
        except aiohttp.ClientSSLError as exc:
            raise TLSError(f"{ep}: TLS failed: {scrub(str(exc), request)}") from None
        except aiohttp.ClientConnectorError as exc:
            errno = exc.os_error.errno
            # a positive errno has a standard text; name lookups fail with negative codes and their own
            reason = os.strerror(errno) if errno and errno > 0 else scrub(
                exc.os_error.strerror or str(exc.os_error), request
            )
            raise ConnectError(f"{ep}: cannot connect: {reason}") from None
        except (
            aiohttp.ServerDisconnectedError,
            aiohttp.ClientPayloadError,
            aiohttp.ClientOSError,
            ConnectionResetError,
        ) as exc:
            text = scrub(str(exc), request) or type(exc).__name__
            raise ConnectionDropped(f"{ep}: connection dropped: {text}") from None
        except aiohttp.ClientError as exc:
            raise TransportError(f"{ep}: {type(exc).__name__}: {scrub(str(exc), request)}") from None
        except ValueError as exc:  # the URL cannot be built: a 300-character host name (idna), ...
            raise UsageError(f"{ep}: not a usable address: {scrub(str(exc), request)}") from None

    def _note_certificate(self, ep: Endpoint, resp: aiohttp.ClientResponse) -> None:
        # a small answer arrives whole with its headers and aiohttp has released the connection
        # already (``resp.connection`` is None); its protocol still holds the TLS transport. No
        # public call reaches it, so this degrades to noting nothing if aiohttp changes shape.
        protocol = getattr(resp, "_protocol", None)
        transport = getattr(protocol, "transport", None)
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            self.peer_certificates[(ep.host, ep.port)] = der

    def peer_certificate(self, host: str, port: int) -> bytes | None:
        """The certificate (DER) the endpoint presented on its last HTTPS answer; None: none seen."""
        return self.peer_certificates.get((host, port))

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


def check_headers(request: Request, headers: list[tuple[str, str]]) -> None:
    """A line break or NUL in a header would split the request: refuse before anything is sent."""
    for name, value in headers:
        if any(c in value for c in "\r\n\0"):
            raise ValidationError(
                f"the {name} header carries a line break or NUL; nothing was sent",
                action=label(request),
                hint="header values come from parameters or from the device's login answer",
            )


async def _read_capped(resp: aiohttp.ClientResponse, request: Request) -> bytes:
    """The body, read in chunks up to the request's cap (decompressed: aiohttp inflates as we read)."""
    cap = request.max_bytes or DEFAULT_MAX_RESPONSE_BYTES
    return b"".join([chunk async for chunk in capped_chunks(resp, request, cap, download=False)])


#: a URL inside a library's error text: keep scheme, host and path; drop user:password@, query, fragment
_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)(?:[^\s/@'\"<>]*@)?([^\s?#'\"<>]*)(?:[?#][^\s'\"<>]*)?")
#: a bare request target (`/api/config?password=...`): keep the path
_TARGET_QUERY = re.compile(r"(/[^\s?#'\"<>]*)[?#][^\s'\"<>]*")


def scrub(text: str, request: Request) -> str:
    """`text` without credentials a URL may carry (Solstice v1 sends the password as `?password=`).

    Messages are built from the endpoint and path; only library texts need this, and they may quote
    the URL (InvalidURL, ClientResponseError) or the bare request target. They may also span lines
    (a parser's caret diagram): an error message is one line.
    """
    text = _TARGET_QUERY.sub(r"\1", _URL.sub(r"\1\2", text))
    if request.query:
        text = text.replace("?" + urlencode(request.query), "").replace(urlencode(request.query), "")
    return " ".join(text.split())


__all__ = ["Endpoint", "HttpTransport", "Transport", "fingerprint"]
