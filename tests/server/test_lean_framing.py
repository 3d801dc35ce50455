"""The poller's `LeanTransport` reading answers byte for byte as a hostile or odd device sends them:
a plain TCP server on loopback that answers each request with scripted bytes. Every framing is read
whole; what is malformed is refused as a `TransportError` (never a hang, never an unbounded read);
a connection is kept only when its answer ended cleanly and said it could be."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from avctl.errors import (
    ConnectionDropped,
    DeviceTimeout,
    ResponseTooLarge,
    TransportError,
    UsageError,
    ValidationError,
)
from avctl.request import Request
from avctl.transport.http import Endpoint
from avctl.transport.lean import MAX_HEAD_BYTES, LeanTransport
from avctl.transport.tls import TLSPolicy

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class ScriptedDevice:
    """Answers the n-th request (over all connections) with ``replies[n]``; ``close_after`` closes the
    connection after that reply; a request for a path in ``held`` is answered once its event is set
    (never, if it is not). Counts connections and keeps the request heads it read."""

    def __init__(self) -> None:
        self.replies: list[bytes] = []
        self.close_after: set[int] = set()
        self.held: dict[str, threading.Event] = {}
        self.heads: list[bytes] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stopped = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            pending = b""
            while True:
                while b"\r\n\r\n" not in pending:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    pending += data
                head, _, pending = pending.partition(b"\r\n\r\n")
                index = len(self.heads)
                self.heads.append(head)
                held = self.held.get(head.split(b" ")[1].decode())
                if held is not None and not held.wait(60):
                    return
                reply = self.replies[index] if index < len(self.replies) else OK
                try:
                    conn.sendall(reply)
                except OSError:
                    return
                if index in self.close_after:
                    conn.shutdown(socket.SHUT_WR)
                    return

    def close(self) -> None:
        self._stopped = True
        self._listener.close()


@pytest.fixture
def device() -> Iterator[ScriptedDevice]:
    dev = ScriptedDevice()
    yield dev
    dev.close()


@pytest.fixture
async def lean() -> AsyncIterator[LeanTransport]:
    transport = LeanTransport(TLSPolicy.insecure(), keepalive=60)
    yield transport
    await transport.close()


async def get(lean: LeanTransport, device: ScriptedDevice, path: str = "/x", *, cap: int | None = None,
              method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    answer = await lean.send(Endpoint("http", "127.0.0.1", device.port), Request(method, path, max_bytes=cap),
                             timeout=10)
    return answer.status, {k.lower(): v for k, v in answer.headers}, answer.body


@pytest.mark.parametrize(("reply", "body", "kept"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello", True),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nhel\r\n2\r\nlo\r\n0\r\nX-Trailer: t\r\n\r\n",
     b"hello", True),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
     b"hello", True),
    (b"HTTP/1.1 204 No Content\r\n\r\n", b"", True),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello", b"hello", False),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello", False),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\n", b"hello", False),  # unasked bytes
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\x00\x01garbage", b"hello", False),
], ids=["length", "chunked", "interim", "no-content", "close", "http10", "unasked-answer", "unasked-garbage"])
async def test_each_framing_is_read_whole_and_kept_only_when_it_may_be(
        lean: LeanTransport, device: ScriptedDevice, reply: bytes, body: bytes, kept: bool) -> None:
    device.replies = [reply]
    status, headers, got = await get(lean, device)
    assert got == body and status in (200, 204)
    assert "x-trailer" not in headers  # trailers are not the answer's headers
    assert (await get(lean, device))[2] == b"ok"
    assert device.connections == (1 if kept else 2)


async def test_a_body_that_runs_until_the_close_is_read_whole(lean: LeanTransport, device: ScriptedDevice) -> None:
    device.replies = [b"HTTP/1.1 200 OK\r\n\r\n" + b"z" * 100_000]
    device.close_after = {0}
    assert (await get(lean, device))[2] == b"z" * 100_000
    assert (await get(lean, device))[2] == b"ok" and device.connections == 2


@pytest.mark.parametrize(("reply", "message"), [
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n", "switched protocols"),
    (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "not a valid HTTP answer"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello", "Transfer-Encoding 'gzip'"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     "not a valid HTTP answer"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", "not a valid HTTP answer"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\nhello", "not a valid HTTP answer"),
    (b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", "not a valid HTTP answer"),
    (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not a valid HTTP answer"),
    (b"HTTP/1.1 200 OK\r\nX-A: 1\nX-B: 2\r\nContent-Length: 0\r\n\r\n", "not a valid HTTP answer"),
    (b"HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 0\r\n\r\n", "not a valid HTTP answer"),
    (b"HTTP/1.1 200 OK\r\nX-A: \x01\r\nContent-Length: 0\r\n\r\n", "not a valid HTTP answer"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "not a valid HTTP answer"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n", "not a valid HTTP answer"),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\nok", "encoded as 'br'"),
    (b"HTTP/1.1 100 Continue\r\n\r\n" * 9, "more than 8 interim answers"),
    (b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * (MAX_HEAD_BYTES + 10) + b"\r\n\r\n", "headers are longer than"),
], ids=["upgrade", "bare-101", "te-gzip", "te-and-length", "two-lengths", "bad-length", "bad-status", "not-http",
        "bare-lf", "space-before-colon", "control-in-value", "bad-chunk-size", "chunk-size-overflow",
        "unknown-encoding", "endless-interim", "endless-head"])
async def test_a_malformed_answer_is_refused_and_its_connection_dropped(
        lean: LeanTransport, device: ScriptedDevice, reply: bytes, message: str) -> None:
    device.replies = [reply]
    with pytest.raises(TransportError, match=message) as caught:
        await get(lean, device)
    assert type(caught.value) is TransportError  # not a drop or a timeout: the answer itself is refused
    assert f"127.0.0.1:{device.port}" in str(caught.value)
    assert lean.connections == 0
    assert (await get(lean, device))[2] == b"ok"  # a new connection serves the next request


@pytest.mark.parametrize(("reply", "where"), [
    (b"", "closed before an answer"),
    (b"HTTP/1.1 200 OK\r\nContent-Le", "closed inside the answer's headers"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "closed before the end of its 10 bytes"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "closed inside a chunked answer"),
], ids=["nothing", "in-head", "in-body", "in-chunk"])
async def test_a_connection_that_ends_inside_the_answer_is_a_drop(
        lean: LeanTransport, device: ScriptedDevice, reply: bytes, where: str) -> None:
    device.replies = [reply]
    device.close_after = {0}
    with pytest.raises(ConnectionDropped, match=where):
        await get(lean, device)
    assert lean.connections == 0


async def test_a_length_over_the_cap_is_refused_before_the_body_is_read(
        lean: LeanTransport, device: ScriptedDevice) -> None:
    device.replies = [b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"z" * 10]
    with pytest.raises(ResponseTooLarge):
        await get(lean, device, cap=1000)


@pytest.mark.parametrize("reply", [
    # one-byte chunks: a body under the cap, six bytes on the wire for each of its bytes
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1\r\nz\r\n" * 90_000,
    # a trailer without end, after a small body
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: " + b"t" * 300_000,
], ids=["tiny-chunks", "endless-trailer"])
async def test_what_is_read_in_all_is_capped_not_only_the_body(
        lean: LeanTransport, device: ScriptedDevice, reply: bytes) -> None:
    device.replies = [reply]
    with pytest.raises(ResponseTooLarge):
        await get(lean, device, cap=100_000)
    assert lean.connections == 0


async def test_a_head_request_ends_with_the_head(lean: LeanTransport, device: ScriptedDevice) -> None:
    device.replies = [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"]
    status, headers, body = await get(lean, device, method="HEAD")
    assert (status, headers["content-length"], body) == (200, "5", b"")
    assert (await get(lean, device))[2] == b"ok"  # over a new connection: nothing half-read is reused
    assert device.connections == 2


@pytest.mark.parametrize(("request_", "error"), [
    (Request("GET", "/x", headers=(("X-Note", "a\r\nX-Injected: 1"),)), ValidationError),
    (Request("GET", "/x", headers=(("X-Note", "a\x07b"),)), UsageError),
    (Request("GET", "/x", headers=(("X Note", "a"),)), UsageError),
    (Request("GET", "/x", headers=(("X-Note:", "a"),)), UsageError),
    (Request("GET /y HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET", "/x"), UsageError),
], ids=["line-break", "control", "space-in-name", "colon-in-name", "method"])
async def test_a_request_that_would_break_its_framing_is_never_sent(
        lean: LeanTransport, device: ScriptedDevice, request_: Request, error: type[Exception]) -> None:
    with pytest.raises(error):
        await lean.send(Endpoint("http", "127.0.0.1", device.port), request_, timeout=10)
    assert (await get(lean, device))[2] == b"ok"
    assert len(device.heads) == 1 and b"Injected" not in device.heads[0]


async def test_the_request_carries_what_a_url_library_would_add(lean: LeanTransport, device: ScriptedDevice) -> None:
    await lean.send(Endpoint("http", "127.0.0.1", device.port),
                    Request("POST", "/a b", headers=(("X-Note", "  padded\t"),), body=b"{}"), timeout=10)
    line, *fields = device.heads[0].decode("latin-1").split("\r\n")
    assert line == "POST /a%20b HTTP/1.1"
    assert dict(f.split(": ", 1) for f in fields) == {
        "Host": f"127.0.0.1:{device.port}", "Accept": "*/*", "Accept-Encoding": "gzip, deflate",
        "User-Agent": "avctl", "Content-Length": "2", "X-Note": "padded"}


async def test_a_device_that_never_answers_times_out_and_only_that_request(
        lean: LeanTransport, device: ScriptedDevice) -> None:
    device.held = {"/silent": threading.Event(), "/slow": threading.Event()}
    endpoint = Endpoint("http", "127.0.0.1", device.port)
    slow = asyncio.create_task(lean.send(endpoint, Request("GET", "/slow"), timeout=60))
    with pytest.raises(DeviceTimeout, match=r"no answer within 0\.3 s"):
        await lean.send(endpoint, Request("GET", "/silent"), timeout=0.3)
    device.held["/slow"].set()  # answered only after the other request timed out: it waited on
    assert (await slow).body == b"ok"
    assert (await get(lean, device))[2] == b"ok"
    device.held["/silent"].set()


async def test_a_cancel_from_outside_stays_a_cancel(lean: LeanTransport, device: ScriptedDevice) -> None:
    device.held = {"/silent": threading.Event()}
    endpoint = Endpoint("http", "127.0.0.1", device.port)
    request = asyncio.create_task(lean.send(endpoint, Request("GET", "/silent"), timeout=60))
    while not device.heads:
        await asyncio.sleep(0.01)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    with pytest.raises(TimeoutError):  # the caller's own deadline, shorter than the request's
        async with asyncio.timeout(0.3):
            await lean.send(endpoint, Request("GET", "/silent"), timeout=60)
    assert lean.connections == 0
    device.held["/silent"].set()
