"""A lean HTTP/1.1 transport for the server's poller: kept connections over non-blocking sockets.

`HttpTransport` (aiohttp) costs ~0.8 ms of CPU per request and ~45 KB per kept TLS connection: a
pure-Python TLS state machine over memory buffers (asyncio's SSLProtocol), its read buffer, a
protocol, a stream and a response object per connection and request. At 10,000 devices polled
every minute that was most of a core and most of a gigabyte. Here TLS runs on the socket itself
(`ssl.SSLSocket`, non-blocking: OpenSSL reads and writes the kernel socket in C) and the event loop
only says when the socket is ready; the answers are parsed by llhttp (Node.js's HTTP parser, in C,
through httptools: the answer's head and its body in each framing), fed what the socket gives, by a
parser lent to the request (as many as requests in flight, not one per kept connection).
Kept-alive connections are checked for a close by the device before they are reused.

It speaks what a poll needs: one request at a time per connection, ``Content-Length``, chunked
and close-delimited bodies, gzip/deflate, no redirects, no downloads (``stream_to``), the same
caps, TLS policy (pins, CA bundle, insecure) and errors as `HttpTransport`, whose device client
stays the one of everything else (the CLI, fleet jobs).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import os
import re
import socket
import ssl
import time
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httptools

from avctl.errors import (
    CertificateChanged,
    ConnectError,
    ConnectionDropped,
    DeviceTimeout,
    TLSError,
    TransportError,
    UsageError,
)
from avctl.request import Request, Response
from avctl.spec.model import DEFAULT_MAX_RESPONSE_BYTES
from avctl.transport.address import SCHEMES
from avctl.transport.files import too_large
from avctl.transport.http import DEFAULT_KEEPALIVE, Endpoint, check_headers, scrub
from avctl.transport.tls import TLSPolicy, fingerprint

#: the longest status line and headers of an answer (a hostile device could send headers forever)
MAX_HEAD_BYTES = 64 * 1024
#: interim (1xx) answers read before an answer, at most
MAX_INTERIM = 8
#: how often the deadlines of the requests in flight are looked at: a timeout is met within this
DEADLINE_GRAIN = 0.25
#: bytes asked of the socket per read: device answers are small, a large one takes more reads
READ_SIZE = 16 * 1024
#: parsers kept for the next answers: the requests a transport has in flight at once, at most
MAX_SPARE_ANSWERS = 1024
_USER_AGENT = "avctl"
_TARGET_SAFE = "/?#[]@!$&'()*+,;=:%-._~"
#: a target with nothing for `quote` to encode
_PLAIN_TARGET = re.compile(r"[A-Za-z0-9/?#\[\]@!$&'()*+,;=:%._~-]*")
#: an HTTP token (a method, a header's name), and what a header's value must not hold
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BLANKS = " \t"
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class _Conn:
    """One connection: its socket (TLS or not) and the event loop's watch on it.

    The socket stays registered for reading for its whole life (no registration per request): while
    a request waits for its answer, readiness wakes it; while the connection is idle, readiness can
    only mean the device closed it (or sent something unasked), and it is closed at once.
    """

    __slots__ = ("_loop", "busy", "closed", "fd", "idle_since", "sock", "waiter")

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self._loop = loop
        self.idle_since = 0.0
        self.busy = True
        self.closed = False
        self.waiter: asyncio.Future[None] | None = None
        loop.add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        if self.waiter is not None:
            _wake(self.waiter)
        elif not self.busy and not self._only_tls_records():
            self.close()

    def _only_tls_records(self) -> bool:
        """Whether what an idle connection got was TLS's own (a TLS 1.3 session ticket after the
        first answer): then it stays; an end, an error or unasked data close it."""
        try:
            self.sock.recv(1)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
            return True  # nothing for us after all
        except OSError:
            return False
        return False

    async def readable(self) -> None:
        """Until the socket has something to read (or its end)."""
        self.waiter = self._loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    async def writable(self) -> None:
        future: asyncio.Future[None] = self._loop.create_future()
        self._loop.add_writer(self.fd, _wake, future)
        try:
            await future
        finally:
            self._loop.remove_writer(self.fd)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._loop.remove_reader(self.fd)
            with contextlib.suppress(OSError):
                self.sock.close()


class _Deadlines:
    """The timeouts of the requests in flight, looked at by one timer every `DEADLINE_GRAIN` seconds.

    `asyncio.timeout` around each request put a timer on the event loop's heap and took it off again
    for every request (~6 % of a poll's CPU in a profile); one timer for all of them costs nothing per
    request. A request past its deadline has its task cancelled, as `asyncio.timeout` does, and
    `leave` says the cancel was this deadline's.
    """

    __slots__ = ("_due", "_expired", "_timer")

    def __init__(self) -> None:
        self._due: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def enter(self, task: asyncio.Task[Any], deadline: float, loop: asyncio.AbstractEventLoop) -> None:
        self._due[task] = deadline
        if self._timer is None:
            self._timer = loop.call_at(loop.time() + DEADLINE_GRAIN, self._look, loop)

    def leave(self, task: asyncio.Task[Any]) -> bool:
        """The request of `task` is over; whether its deadline cancelled it."""
        del self._due[task]
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def _look(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        for task, deadline in self._due.items():
            if deadline <= now and task not in self._expired:
                self._expired.add(task)
                task.cancel()  # delivered at the await the request waits at, inside `send`
        if self._due:
            self._timer = loop.call_at(now + DEADLINE_GRAIN, self._look, loop)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _Dropped(Exception):
    """The connection ended before a whole answer arrived."""


class LeanTransport:
    """HTTP/1.1 client for many devices with kept connections. Create inside a running event loop.

    ``keepalive``: seconds an idle connection is kept for its next request. Same interface as
    `HttpTransport` for what `Device` and the poller use (`send`, `peer_certificate`, `close`).
    """

    def __init__(self, tls: TLSPolicy | None = None, *, keepalive: float | None = None) -> None:
        self.tls = tls or TLSPolicy.pinned()
        self._keepalive = DEFAULT_KEEPALIVE if keepalive is None else keepalive
        #: idle connections per (scheme, host, port): a device's requests go one after the other
        #: over one connection; a second one only while the first is busy
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._open: set[_Conn] = set()
        #: the DER certificate each HTTPS (host, port) presented last
        self.peer_certificates: dict[tuple[str, int], bytes] = {}
        self._unverified: ssl.SSLContext | None = None
        #: when idle connections were last looked over for expiry
        self._swept = time.monotonic()
        self._deadlines = _Deadlines()
        #: parsers ready for an answer, lent to one request at a time: as many as requests in flight
        #: rather than one per kept connection (~1 KB each, 13,000 connections at 10,000 devices),
        #: and reused rather than made per answer (which measured ~15 KB more per device: the
        #: allocator keeps what each answer frees)
        self._answers: list[_Answer] = []

    # -- the interface ----------------------------------------------------------------------------

    async def send(self, endpoint: Endpoint, request: Request, *, timeout: float) -> Response:
        if request.stream_to is not None:
            raise UsageError(f"{request.action_id or request.path}: downloads go through HttpTransport")
        scheme = request.scheme or endpoint.scheme
        ep = Endpoint(scheme, endpoint.host, request.port or endpoint.port)
        started = time.monotonic()
        headers = list(request.headers)
        check_headers(request, headers)
        conn: _Conn | None = None
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        cancelling = task.cancelling()
        self._deadlines.enter(task, loop.time() + timeout, loop)
        expired = False
        try:
            try:
                conn = self._take(ep) or await self._connect(ep, timeout)
                status, response_headers, body, keep = await self._exchange(conn, ep, request, headers)
            finally:
                expired = self._deadlines.leave(task)
        except asyncio.CancelledError:
            self._drop(conn)
            if expired and task.uncancel() <= cancelling:  # our deadline, not someone else's cancel
                raise DeviceTimeout(f"{ep}: no answer within {timeout:g} s") from None
            raise
        except (_Dropped, ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError) as exc:
            self._drop(conn)
            text = scrub(str(exc), request) or type(exc).__name__
            raise ConnectionDropped(f"{ep}: connection dropped: {text}") from None
        except ssl.SSLError as exc:
            self._drop(conn)
            raise TLSError(f"{ep}: TLS failed: {scrub(exc.reason or str(exc), request)}") from None
        except OSError as exc:
            self._drop(conn)
            raise ConnectionDropped(f"{ep}: connection dropped: {exc.strerror or type(exc).__name__}") from None
        except BaseException:
            self._drop(conn)
            raise
        assert conn is not None
        if started - self._swept > self._keepalive / 2:
            self._sweep(started)
        if keep:
            conn.idle_since = time.monotonic()
            conn.busy = False
            self._idle.setdefault((ep.scheme, ep.host, ep.port), []).append(conn)
        else:
            self._drop(conn)
        return Response(status, response_headers, body, None, time.monotonic() - started, request)

    @property
    def connections(self) -> int:
        """Connections open now (kept idle or carrying a request)."""
        return sum(1 for conn in self._open if not conn.closed)

    def peer_certificate(self, host: str, port: int) -> bytes | None:
        """The certificate (DER) the endpoint presented on its last connection; None: none seen."""
        return self.peer_certificates.get((host, port))

    def release(self, endpoint: Endpoint) -> None:
        """Close the idle connections to one endpoint."""
        # by key, not by a look over every endpoint: the poll engine releases each of 10,000
        # devices when it stops or reloads its inventory
        for scheme in SCHEMES:
            for conn in self._idle.pop((scheme, endpoint.host, endpoint.port), ()):
                self._drop(conn)

    async def close(self) -> None:
        self._deadlines.stop()
        for conn in list(self._open):
            self._drop(conn)
        self._idle.clear()

    # -- connections --------------------------------------------------------------------------------

    def _take(self, ep: Endpoint) -> _Conn | None:
        idle = self._idle.get((ep.scheme, ep.host, ep.port))
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self._keepalive:
                conn.busy = True
                return conn
            self._drop(conn)
        return None

    def _sweep(self, now: float) -> None:
        """Close the connections idle for longer than the keep-alive (a device no longer polled, the
        second endpoint of a Solstice pod after its device went): every half keep-alive, at most."""
        self._swept = now
        for key, idle in list(self._idle.items()):
            kept = [c for c in idle if not c.closed and now - c.idle_since < self._keepalive]
            for conn in idle:
                if conn not in kept:
                    self._drop(conn)
            if kept:
                self._idle[key] = kept
            else:
                del self._idle[key]

    def _drop(self, conn: _Conn | None) -> None:
        if conn is not None:
            self._open.discard(conn)
            conn.close()

    async def _connect(self, ep: Endpoint, timeout: float) -> _Conn:
        loop = asyncio.get_running_loop()
        check: ssl.SSLContext | bytes | None = None
        if ep.scheme == "https":
            check = self.tls.known_check_for(ep.host, ep.port) or await self.tls.check_for(ep.host, ep.port)
        infos = _literal(ep.host, ep.port)
        if infos is None:  # a name: asyncio looks it up in a worker thread
            try:
                infos = await loop.getaddrinfo(ep.host, ep.port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise ConnectError(f"{ep}: cannot connect: {exc.strerror or exc}") from None
        sock: socket.socket | None = None
        last: OSError | None = None
        for family, kind, proto, _name, address in infos:
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, address)
                break
            except OSError as exc:
                sock.close()
                sock, last = None, exc
        if sock is None:
            code = last.errno if last is not None else None
            reason = os.strerror(code) if code else (str(last) if last else "no address")
            raise ConnectError(f"{ep}: cannot connect: {reason}")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ep.scheme == "https":
            sock = await self._handshake(sock, ep, check, loop)
        conn = _Conn(sock, loop)
        self._open.add(conn)
        return conn

    def _context(self, check: ssl.SSLContext | bytes | None) -> tuple[ssl.SSLContext, bool]:
        """The context for a connection and whether it checks the host name."""
        if isinstance(check, ssl.SSLContext):
            return check, check.check_hostname
        if self._unverified is None:
            # pinned (the fingerprint is checked below) or --insecure: no CA store needed
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            self._unverified = context
        return self._unverified, False

    async def _handshake(self, raw: socket.socket, ep: Endpoint, check: ssl.SSLContext | bytes | None,
                         loop: asyncio.AbstractEventLoop) -> ssl.SSLSocket:
        context, by_name = self._context(check)
        try:
            sock = context.wrap_socket(raw, server_hostname=ep.host if by_name else None,
                                       do_handshake_on_connect=False)
        except (ssl.SSLError, ValueError) as exc:
            raw.close()
            raise TLSError(f"{ep}: TLS failed: {exc}") from None
        try:
            await _handshaken(sock, loop)
        except ssl.SSLCertVerificationError as exc:
            sock.close()
            raise TLSError(f"{ep}: certificate not trusted: {exc.verify_message or exc.reason}",
                           hint="pin it (default), give --ca-bundle, or --insecure to skip checks") from None
        except ssl.SSLError as exc:
            sock.close()
            raise TLSError(f"{ep}: TLS failed: {exc.reason or exc}") from None
        except OSError as exc:
            sock.close()
            raise ConnectionDropped(f"{ep}: connection dropped during the TLS handshake: "
                                    f"{exc.strerror or type(exc).__name__}") from None
        except BaseException:
            sock.close()
            raise
        der = sock.getpeercert(binary_form=True)
        if isinstance(check, bytes):  # the pin's digest
            got = hashlib.sha256(der or b"").digest()
            if got != check:
                sock.close()
                pinned = self.tls.pinned_fingerprint(ep.host, ep.port) or "?"
                raise CertificateChanged(str(ep), pinned, fingerprint(der or b""), str(self.tls.known_hosts.path))
        if der:
            self.peer_certificates[(ep.host, ep.port)] = der
        return sock

    # -- one request --------------------------------------------------------------------------------

    async def _exchange(self, conn: _Conn, ep: Endpoint, request: Request,
                        headers: list[tuple[str, str]]) -> tuple[int, tuple[tuple[str, str], ...], bytes, bool]:
        await _send_all(conn, _request_bytes(ep, request, headers))

        def body_for(status: int, fields: dict[str, str]) -> _Body:
            return _Body(ep, request, status, fields.get("content-encoding", ""))

        answer = self._answers.pop() if self._answers else _Answer()
        await _Reader(conn, ep, request, answer, body_for).read()
        assert answer.body is not None
        got = answer.status, tuple(answer.headers), answer.body.value(), answer.keep
        if answer.keep and len(self._answers) < MAX_SPARE_ANSWERS:
            # an answer that ended cleanly leaves its parser between messages, as a kept connection's
            # would be: ready for the next answer on any connection (any other is dropped with it)
            answer.start("GET", None)
            self._answers.append(answer)
        return got


def _literal(host: str, port: int) -> list[tuple[Any, ...]] | None:
    """The address of an IP literal without a lookup (most devices are addressed by IP); None: a name."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    return [(family, socket.SOCK_STREAM, 0, "", (host, port))]


class _Body:
    """An answer's body as it arrives: inflated as it is read (gzip, deflate), refused past the cap
    (counted after inflating: a small bomb must not become gigabytes)."""

    def __init__(self, ep: Endpoint, request: Request, status: int, encoding: str) -> None:
        self._ep, self._request, self._status = ep, request, status
        self._cap = request.max_bytes or DEFAULT_MAX_RESPONSE_BYTES
        self._encoding = encoding.strip().lower()
        self._parts: list[bytes] = []
        self._size = 0
        self.inflater: Any = None
        if self._encoding in ("gzip", "x-gzip"):
            self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self._encoding == "deflate":
            self.inflater = zlib.decompressobj(zlib.MAX_WBITS)
        elif self._encoding not in ("", "identity"):
            raise TransportError(f"{ep}: the answer is encoded as {self._encoding[:40]!r}, which avctl does not read")

    def check(self, size: int) -> None:
        if size > self._cap:
            raise too_large(self._request, self._status, self._cap, download=False)

    def feed(self, data: bytes) -> None:
        if self.inflater is not None:
            data = self._inflate(data)
        self._size += len(data)
        self.check(self._size)
        self._parts.append(data)

    def _inflate(self, data: bytes) -> bytes:
        room = self._cap + 1 - self._size  # never more than the cap, whatever the ratio
        try:
            out: bytes = self.inflater.decompress(data, room)
        except zlib.error:
            if self._encoding != "deflate" or self._size or self._parts:
                raise TransportError(f"{self._ep}: the answer's {self._encoding} body is damaged") from None
            self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as some servers send it
            self._encoding = "raw deflate"
            return self._inflate(data)
        if self.inflater.unconsumed_tail:
            self.check(self._cap + 1)  # more than the cap inflates from this piece
        return out

    def value(self) -> bytes:
        return b"".join(self._parts)


def _request_bytes(ep: Endpoint, request: Request, headers: list[tuple[str, str]]) -> bytes:
    """The request's bytes, with the headers a URL library would add. Refused before anything is
    sent: what would break the framing (a method or header name that is not a token, a control
    character in a header value; a line break or NUL is `check_headers`' refusal, with its hint)."""
    names = {k.lower() for k, _ in headers}
    default_port = 443 if ep.scheme == "https" else 80
    host = f"[{ep.host}]" if ":" in ep.host else ep.host
    # what a URL library would do: anything outside printable ASCII percent-encoded (a space or a line
    # break in the request line would split it); what is already encoded stays
    target = request.target or "/"
    if not _PLAIN_TARGET.fullmatch(target):  # as it is when it has nothing to encode (most do)
        target = quote(target, safe=_TARGET_SAFE)
    if not _TOKEN.fullmatch(request.method):
        raise UsageError(f"{ep}: cannot send the method {request.method[:20]!r}: not an HTTP token")
    lines = [f"{request.method} {target} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {host}" if ep.port == default_port else f"Host: {host}:{ep.port}")
    if "accept" not in names:
        lines.append("Accept: */*")
    if "accept-encoding" not in names:
        lines.append("Accept-Encoding: gzip, deflate")
    if "user-agent" not in names:
        lines.append(f"User-Agent: {_USER_AGENT}")
    if "content-length" not in names:
        if request.body is not None:
            lines.append(f"Content-Length: {len(request.body)}")
        elif request.method in ("POST", "PUT", "PATCH"):
            lines.append("Content-Length: 0")
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or _CONTROL.search(value):
            raise UsageError(f"{ep}: cannot send {request.method} {target[:60]}: the {name[:40]!r} header "
                             "is not a valid HTTP header (a name that is not a token, or a control character)")
        lines.append(f"{name}: {value.strip(_BLANKS)}")
    lines.append("\r\n")
    data = "\r\n".join(lines).encode("latin-1", "replace")
    return data + request.body if request.body else data


def _wake(future: asyncio.Future[None]) -> None:
    # level-triggered: the loop may call again before the waiting task has run
    if not future.done():
        future.set_result(None)


async def _handshaken(sock: ssl.SSLSocket, loop: asyncio.AbstractEventLoop) -> None:
    """The TLS handshake of a non-blocking socket, waiting for it to be readable or writable."""
    while True:
        try:
            sock.do_handshake()
            return
        except ssl.SSLWantReadError:
            write = False
        except ssl.SSLWantWriteError:
            write = True
        future: asyncio.Future[None] = loop.create_future()
        (loop.add_writer if write else loop.add_reader)(sock.fileno(), _wake, future)
        try:
            await future
        finally:
            (loop.remove_writer if write else loop.remove_reader)(sock.fileno())


async def _send_all(conn: _Conn, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            sent = conn.sock.send(view)
        except ssl.SSLWantReadError:
            await conn.readable()
            continue
        except (ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
            await conn.writable()
            continue
        view = view[sent:]


class _Stop(Exception):
    """Raised inside the parser's callbacks: the answer is whole, parse no further."""


class _Unread(Exception):
    """Raised inside the parser's callbacks: an answer avctl does not read (a `TransportError`)."""


class _Answer:
    """The parser's callbacks on one connection: what the answer being read has come to.

    llhttp (through httptools) parses; this keeps the head, feeds the body to `_Body` and says when
    the answer is whole and whether the connection can carry another request. Lent to one request
    at a time with its parser, and lent again only after an answer that ended cleanly (the one kind
    after which a connection is kept: nothing is carried over); `start` readies it for the next.
    """

    __slots__ = ("_body_for", "_head_done", "_method", "body", "chunked", "complete", "headers", "interim",
                 "keep", "length", "parser", "status")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self._body_for: Callable[[int, dict[str, str]], _Body] | None = None
        self._method = "GET"
        self.body: _Body | None = None
        self.headers: list[tuple[str, str]] = []
        self.status = 0
        self.interim = 0
        self.length: int | None = None
        self.chunked = False
        self.complete = self.keep = self._head_done = False

    def start(self, method: str, body_for: Callable[[int, dict[str, str]], _Body] | None) -> None:
        self._method, self._body_for = method, body_for
        self.body = None
        self.headers = []
        self.status = self.interim = 0
        self.length = None
        self.chunked = self.complete = self.keep = self._head_done = False

    @property
    def head_done(self) -> bool:
        return self._head_done

    # -- httptools' callbacks -------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            raise _Stop  # unasked bytes after the answer: the connection is not reused

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._head_done:  # after the head: a chunked answer's trailers, not kept
            self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue): the answer comes after it
            self.interim += 1
            if self.interim > MAX_INTERIM:
                raise _Unread(f"more than {MAX_INTERIM} interim answers and no answer")
            self.headers = []
            return
        self.status, self._head_done = status, True
        fields = {k.lower(): v for k, v in self.headers}
        coding = fields.get("transfer-encoding")
        if coding is not None:
            if coding.rsplit(",", 1)[-1].strip().lower() != "chunked":
                raise _Unread(f"the answer's Transfer-Encoding {coding[:40]!r} is not one avctl reads")
            self.chunked = True
        elif "content-length" in fields:
            self.length = int(fields["content-length"])  # llhttp checked it is one number
        assert self._body_for is not None
        self.body = self._body_for(status, fields)
        if self.body.inflater is None and self.length is not None:
            self.body.check(self.length)  # refused before reading it
        if self._method == "HEAD":  # no body follows, whatever the head says
            self.complete = True
            raise _Stop

    def on_body(self, data: bytes) -> None:
        if self.body is not None:
            self.body.feed(data)

    def on_message_complete(self) -> None:
        if self._head_done:
            self.complete = True
            self.keep = self.parser.should_keep_alive()

    # -- the end of the connection ---------------------------------------------------------------------

    def ended(self) -> bool:
        """The connection ended: whether that ends the answer (its body runs until the close)."""
        if self._head_done and not self.complete and not self.chunked and self.length is None:
            self.complete = True  # keep stays False
        return self.complete


class _Reader:
    """Reads one answer from a socket through its connection's parser (llhttp, through httptools),
    which parses the head and the framing (Content-Length, chunked, until the close) and refuses
    what is malformed; the head's size and the bytes read in all are capped here."""

    def __init__(self, conn: _Conn, ep: Endpoint, request: Request, answer: _Answer,
                 body_for: Callable[[int, dict[str, str]], _Body]) -> None:
        self._conn = conn
        self._sock = conn.sock
        self._ep = ep
        self._request = request
        self._answer = answer
        self._answer.start(request.method, body_for)
        #: bytes of the answer received; at most this many (a body's cap, twice for chunks' framing)
        self._received = 0
        self._most = 2 * (request.max_bytes or DEFAULT_MAX_RESPONSE_BYTES) + MAX_HEAD_BYTES

    async def read(self) -> _Answer:
        """The whole answer, after its interim answers (100 Continue), at most `MAX_INTERIM` of them."""
        answer = self._answer
        pending = getattr(self._sock, "pending", None)
        if not (pending is not None and pending()):
            await self._conn.readable()  # an answer cannot be there the moment its request left
        while not answer.complete:
            data = await self._recv()
            if not data:
                if answer.ended():
                    break
                raise _Dropped(self._where())
            self._received += len(data)
            if self._received > self._most or (self._received > MAX_HEAD_BYTES and not answer.head_done):
                raise self._too_much()
            try:
                answer.parser.feed_data(data)
            except httptools.HttpParserCallbackError as exc:
                cause = exc.__context__
                if isinstance(cause, _Stop):
                    answer.keep = False
                    break
                if isinstance(cause, _Unread):
                    raise TransportError(f"{self._ep}: {cause}") from None
                raise cause if isinstance(cause, Exception) else exc from None
            except httptools.HttpParserUpgrade:
                raise TransportError(f"{self._ep}: the device switched protocols (101), which avctl did not ask "
                                     "for") from None
            except httptools.HttpParserError as exc:
                if answer.complete:  # bytes after the answer: it stands, the connection does not
                    answer.keep = False
                    break
                raise TransportError(f"{self._ep}: not a valid HTTP answer: {str(exc)[:80]}") from None
        return answer

    async def _recv(self) -> bytes:
        """What the socket has; b"" at its end."""
        while True:
            try:
                return self._sock.recv(READ_SIZE)
            except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
                await self._conn.readable()
            except ssl.SSLWantWriteError:
                await self._conn.writable()
            except ssl.SSLZeroReturnError:
                return b""

    def _too_much(self) -> Exception:
        if not self._answer.head_done:
            return TransportError(f"{self._ep}: the answer's headers are longer than {MAX_HEAD_BYTES} bytes")
        cap = self._request.max_bytes or DEFAULT_MAX_RESPONSE_BYTES
        return too_large(self._request, self._answer.status, cap, download=False)

    def _where(self) -> str:
        """Where in the answer its connection ended."""
        answer = self._answer
        if not answer.head_done:
            return "closed before an answer" if not self._received else "closed inside the answer's headers"
        if answer.chunked:
            return "closed inside a chunked answer"
        return f"closed before the end of its {answer.length} bytes"


__all__ = ["LeanTransport"]
