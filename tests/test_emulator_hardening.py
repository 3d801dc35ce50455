"""The emulators as test harnesses: bounded request log, body cap before reading, malformed bodies
answered in each family's shape, account lockout on an injected clock, loopback-only by default.

Everything runs over real sockets on 127.0.0.1. Bodies larger than a cap are announced with a
`Content-Length` but never sent: an emulator that tried to read them would hang, and the test would
time out instead of getting the answer.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import socket
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

from avctl import AccountLockedError, AuthenticationError, Credentials, Device, TLSPolicy
from avctl.cli.main import cli
from avctl.emulator.core import EmulatedDevice, EmulatorThread, RequestLog, is_loopback
from avctl.emulator.fleet import EmulatedFleet
from avctl.emulator.polyuc import EmulatedPolyUC
from avctl.emulator.solstice import EmulatedSolstice
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.errors import UsageError
from avctl.families import builtin_spec

PASSWORD = "emu-pw-1"


class Clock:
    """The emulator's clock, moved by hand: no test sleeps through a lockout."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def add(emulators: EmulatorThread, cls: type[EmulatedDevice], **kwargs: Any) -> Any:
    return emulators.add(cls("dut", scheme="http", password=PASSWORD, **kwargs))


def raw(port: int, head: str, body: bytes = b"", timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 exchange on a plain socket: `head` is sent as is (its Content-Length may promise
    more than `body`); returns status, headers (lower-case names) and the body read."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed without an answer: {data!r}"
            data += chunk
        top, _, rest = data.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return int(lines[0].split()[1]), headers, rest[:length]


def post_head(path: str, length: int, *extra: str, content_type: str = "application/json") -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Type: {content_type}",
             f"Content-Length: {length}", *extra]
    return "\n".join(lines) + "\n"


def basic(dev: EmulatedPolyUC) -> str:
    return "Authorization: Basic " + base64.b64encode(f"{dev.user}:{dev.password}".encode()).decode()


async def videoos_session(dev: EmulatedVideoOS) -> list[str]:
    """Log in over HTTP; the headers that authenticate a call."""
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{dev.port}/rest/session"
        async with http.post(url, json={"user": dev.user, "password": PASSWORD}) as resp:
            assert resp.status == 200
            session, xsrf = resp.cookies["session_id"].value, resp.cookies["XSRF-TOKEN"].value
    return [f"Cookie: session_id={session}", f"X-XSRF-TOKEN: {xsrf}"]


async def solstice_token(pod: EmulatedSolstice) -> list[str]:
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{pod.port}/v2/token"
        form = {"grant_type": "password", "username": "admin", "password": PASSWORD}
        async with http.post(url, data=form) as resp:
            token = (await resp.json())["access_token"]
    return [f"Authorization: Bearer {token}"]


# -- 1. the request log ------------------------------------------------------------------------------


def test_request_log_keeps_the_last_n_and_counts_all(emulators: EmulatorThread) -> None:
    dev = add(emulators, EmulatedVideoOS, request_log=5)
    for i in range(12):
        raw(dev.port, f"GET /rest/x{i} HTTP/1.1\nHost: a\nConnection: close\n")
    assert len(dev.requests) == 5 and dev.requests.total == 12
    assert [r.path for r in dev.requests] == [f"/rest/x{i}" for i in range(7, 12)]
    assert dev.requests[-1].path == "/rest/x11" and dev.requests[1:3][0].path == "/rest/x8"
    dev.requests.clear()
    assert dev.requests == [] and dev.requests.total == 0


def test_request_log_default_is_bounded_and_the_server_can_set_it(emulators: EmulatorThread) -> None:
    assert RequestLog().limit == 1000
    with pytest.raises(UsageError):
        RequestLog(0)
    assert add(emulators, EmulatedPolyUC).requests.limit == 1000
    assert emulators.server is not None
    emulators.server.request_log = 3
    assert add(emulators, EmulatedPolyUC).requests.limit == 3


def test_logged_bodies_are_capped_and_marked(emulators: EmulatorThread) -> None:
    pod = add(emulators, EmulatedSolstice)
    big = json.dumps({"password": "wrong", "pad": "x" * 200_000}).encode()
    # a v1 call: the password may be in the body, so the pod reads it (and ignores the command)
    status, _, _ = raw(pod.v1_http_port, post_head("/api/config", len(big)), big)
    assert status == 200 and pod.v1_ignored == 1
    entry = pod.requests[-1]
    assert entry.size == len(big) and entry.truncated and len(entry.body) == 64 * 1024
    assert big.startswith(entry.body)


# -- 2. body cap before reading ------------------------------------------------------------------------

HUGE = 100 * 1024 * 1024  # announced, never sent


def test_unauthenticated_bodies_are_refused_unread(emulators: EmulatorThread) -> None:
    studio = add(emulators, EmulatedVideoOS)
    phone = add(emulators, EmulatedPolyUC)
    pod = add(emulators, EmulatedSolstice)
    # a VideoOS system answers a call without a session 403, as real ones do (tests/fidelity)
    cases = [(studio, "/rest/system/reboot", 403), (phone, "/api/v1/mgmt/config/set", 401),
             (pod, "/v2/calendar", 401)]
    for dev, path, refused in cases:
        status, headers, _ = raw(dev.port, post_head(path, HUGE))
        assert status == refused, dev.family
        assert headers.get("connection") == "close"  # the unread body is not drained into memory
        assert dev.requests[-1].size == HUGE and dev.requests[-1].body == b""


async def test_oversized_bodies_get_each_familys_answer_unread(emulators: EmulatorThread) -> None:
    studio = add(emulators, EmulatedVideoOS)
    phone = add(emulators, EmulatedPolyUC)
    pod = add(emulators, EmulatedSolstice)
    # VideoOS: the login body is read before anything else, so the cap comes first (10 MB)
    status, _, body = raw(studio.port, post_head("/rest/session", studio.max_body + 1))
    assert status == 413 and json.loads(body) == {"success": False, "reason": "payload larger than 10 MB"}
    status, _, body = raw(studio.port, post_head("/rest/audio/volume", HUGE, *await videoos_session(studio)))
    assert status == 413 and json.loads(body)["success"] is False
    # Poly UC: Status 4009 "input size limit exceeded" in the usual envelope
    status, _, body = raw(phone.port, post_head("/api/v1/mgmt/config/set", HUGE, basic(phone)))
    assert status == 200 and json.loads(body) == {"Status": "4009"}
    # Solstice: 413 in the Errors shape
    status, _, body = raw(pod.port, post_head("/v2/calendar", HUGE, *await solstice_token(pod)))
    assert status == 413 and json.loads(body)["errors"][0]["error"] == "invalid_request"
    assert phone.requests[-1].body == b"" and pod.requests[-1].body == b""


def test_chunked_body_is_read_only_up_to_the_cap(emulators: EmulatorThread) -> None:
    phone = add(emulators, EmulatedPolyUC)
    chunk = b"x" * 65536
    head = ("POST /api/v1/mgmt/config/set HTTP/1.1\nHost: a\nContent-Type: application/json\n"
            f"Transfer-Encoding: chunked\n{basic(phone)}\n")
    # just over the 1 MiB cap, with no terminating chunk: the phone must stop reading on its own
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(17))
    status, _, answer = raw(phone.port, head, body)
    assert status == 200 and json.loads(answer) == {"Status": "4009"}


# -- 3. malformed bodies -------------------------------------------------------------------------------

MALFORMED: list[tuple[str, bytes, str]] = [
    ("deeply nested", b"[" * 200_000 + b"]" * 200_000, "application/json"),
    ("deeply nested object", b'{"data":' * 100_000 + b"1" + b"}" * 100_000, "application/json"),
    ("invalid UTF-8", b'{"data": {"a": "\xff\xfe"}}', "application/json"),
    ("not JSON, wrong Content-Type", b"volume=30&mute=1", "application/x-www-form-urlencoded"),
    ("a list for an object", b'[{"data": 1}, 2, 3]', "application/json"),
    ("huge float", b'{"data": {"volume": 1e999}, "volume": 1e999, "meetings": 1e999}', "application/json"),
    ("huge integer", b'{"volume": ' + b"9" * 5000 + b"}", "application/json"),
    ("NaN", b'{"volume": NaN, "data": NaN}', "application/json"),
]

#: (device class, path, the authentication headers, check of the answer)
Check = Callable[[int, Any], bool]


def videoos_400(status: int, body: Any) -> bool:
    return status == 400 and body["success"] is False and isinstance(body["reason"], str)


def polyuc_4000(status: int, body: Any) -> bool:
    return status == 200 and body == {"Status": "4000"}


def solstice_400(status: int, body: Any) -> bool:
    return status == 400 and body["errors"][0]["error"] == "invalid_request"


@pytest.mark.parametrize("label,payload,content_type", MALFORMED, ids=[m[0] for m in MALFORMED])
async def test_malformed_bodies_are_answered_like_the_device(
    emulators: EmulatorThread, label: str, payload: bytes, content_type: str, caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    studio = add(emulators, EmulatedVideoOS)
    phone = add(emulators, EmulatedPolyUC)
    pod = add(emulators, EmulatedSolstice)
    cases: list[tuple[EmulatedDevice, str, list[str], Check]] = [
        (studio, "/rest/audio/volume", await videoos_session(studio), videoos_400),
        (studio, "/rest/session", [], videoos_400),  # the login: SessionRequestInvalid
        (phone, "/api/v1/mgmt/config/set", [basic(phone)], polyuc_4000),
        (phone, "/api/v1/callctrl/dial", [basic(phone)], polyuc_4000),
        (pod, "/v2/calendar", await solstice_token(pod), solstice_400),
    ]
    caplog.set_level(logging.DEBUG)
    for dev, path, auth, check in cases:
        head = post_head(path, len(payload), *auth, content_type=content_type)
        status, _, body = raw(dev.port, head, payload)
        assert check(status, json.loads(body)), (dev.family, path, status, body)
    # PATCH and PUT too, on the pod
    for method in ("PATCH", "PUT"):
        head = post_head("/v2/config" if method == "PATCH" else "/v2/calendar", len(payload),
                         *await solstice_token(pod), content_type=content_type).replace("POST", method, 1)
        status, _, body = raw(pod.port, head, payload)
        assert solstice_400(status, json.loads(body)), (method, status, body)
    assert not any(d.crashes for d in (studio, phone, pod))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "Traceback" not in capfd.readouterr().err


FUZZ = [b"[" * 100_000, b'{"data": {"a": "\xff"}}', b"[1, 2]", b'{"data": {"volume": 1e999, "Ref": 1e400}}',
        b'{"data": [123456789012345678901234567890], "volume": 123456789012345678901234567890}', b'"text"']


async def test_no_action_of_any_family_crashes_on_a_malformed_body(
    emulators: EmulatorThread, capfd: pytest.CaptureFixture[str]
) -> None:
    studio = add(emulators, EmulatedVideoOS)
    phone = add(emulators, EmulatedPolyUC)
    pod = add(emulators, EmulatedSolstice)
    auth = {studio: await videoos_session(studio), phone: [basic(phone)], pod: await solstice_token(pod)}
    sent = 0
    async with aiohttp.ClientSession() as http:
        for dev, lines in auth.items():
            headers = dict(line.split(": ", 1) for line in lines)
            for action in dev.spec.actions.values():
                if action.method in (None, "", "GET") or action.disruptive:
                    continue
                port = pod.v1_http_port if dev is pod and action.path.startswith("/api/") else dev.port
                path = re.sub(r"\{[^}]+\}", "1", action.path)
                for payload in FUZZ:
                    async with http.request(action.method, f"http://127.0.0.1:{port}{path}", data=payload,
                                            headers={**headers, "Content-Type": "application/json"}) as resp:
                        await resp.read()
                        sent += 1
    assert sent > 300
    assert [list(d.crashes) for d in auth] == [[], [], []]
    assert "Traceback" not in capfd.readouterr().err


def test_broken_http_and_clients_leaving_mid_body_are_no_crash(
    emulators: EmulatorThread, capfd: pytest.CaptureFixture[str]
) -> None:
    phone = add(emulators, EmulatedPolyUC)
    with socket.create_connection(("127.0.0.1", phone.port), timeout=10) as sock:
        sock.sendall((post_head("/api/v1/mgmt/config/set", 1000, basic(phone)) + "\n").replace("\n", "\r\n").encode()
                     + b'{"data": ')
        # wait until the phone is reading the body, then leave
        while not phone.requests:
            sock.settimeout(0.05)
            with contextlib.suppress(TimeoutError):
                sock.recv(1)
    bad_chunk = "POST /api/v1/mgmt/config/set HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n" + basic(phone) + "\n"
    status, _, _ = raw(phone.port, bad_chunk, b"zz\r\nabc\r\n")
    assert status == 400
    status, _, _ = raw(phone.port, "GET /api/v2/mgmt/device/info HTTP/1.1\nHost: a\nX-Big: " + "a" * 70_000 + "\n")
    assert status in (400, 431)
    raw(phone.port, f"GET /api/v2/mgmt/device/info HTTP/1.1\nHost: a\n{basic(phone)}\nConnection: close\n")
    assert not phone.crashes
    assert "Traceback" not in capfd.readouterr().err


async def test_solstice_v1_password_in_a_malformed_body_is_just_no_password(emulators: EmulatorThread) -> None:
    pod = add(emulators, EmulatedSolstice)
    multipart = b'--b\r\nContent-Disposition: form-data; name="password"\r\n\r\n\xff\xfe\r\n--b--\r\n'
    for payload, content_type in [(b"[" * 100_000, "application/json"), (b'{"password": "\xff"}', "application/json"),
                                  (multipart, "multipart/form-data; boundary=b")]:
        status, _, body = raw(pod.v1_http_port, post_head("/api/config", len(payload), content_type=content_type),
                              payload)
        assert status == 200 and body == b""  # ignored, as the pod ignores a wrong password
    assert pod.v1_ignored == 3 and not pod.crashes


def test_a_crashing_handler_answers_500_in_the_familys_shape(
    emulators: EmulatorThread, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    phone = add(emulators, EmulatedPolyUC)

    async def broken(ctx: Any) -> Any:
        raise OverflowError("emulator bug")

    monkeypatch.setattr(phone, "on_device_info", broken, raising=False)
    status, _, body = raw(phone.port, f"GET /api/v2/mgmt/device/info HTTP/1.1\nHost: a\n{basic(phone)}\n")
    assert status == 500 and json.loads(body) == {"Status": "5500"}
    assert "OverflowError" in phone.crashes[-1]
    assert "Traceback" not in capfd.readouterr().err


# -- 4. lockout ----------------------------------------------------------------------------------------


def client(dev: EmulatedDevice, tls: TLSPolicy, password: str) -> Device:
    user = None if dev.family == "polyuc" else "admin"
    return Device(builtin_spec(dev.family), f"127.0.0.1:{dev.port}", credentials=Credentials(user, password),
                  tls=tls)


QUERY = {"polyuc": "device_info", "solstice": "metadata_get"}


def login_requests(dev: EmulatedDevice) -> int:
    path = "/v2/token" if dev.family == "solstice" else "/api/v2/mgmt/device/info"
    return sum(1 for r in dev.requests if r.path.lower() == path.lower())


@pytest.mark.parametrize("cls", [EmulatedPolyUC, EmulatedSolstice], ids=["polyuc", "solstice"])
async def test_lockout_refuses_even_the_right_password_until_the_clock_moves(
    emulators: EmulatorThread, tls: TLSPolicy, cls: type[EmulatedDevice]
) -> None:
    dev = emulators.add(cls("dut", password=PASSWORD, lockout_after=3, lockout_window=60, lockout_seconds=300))
    clock = Clock()
    dev.clock = clock
    query = QUERY[dev.family]
    for _ in range(3):
        async with client(dev, tls, "wrong") as d:
            with pytest.raises(AuthenticationError):
                await d.call(query)
    assert dev.lockout.locked(clock.now)
    before = login_requests(dev)
    async with client(dev, tls, PASSWORD) as d:
        with pytest.raises(AuthenticationError) as exc:
            await d.call(query)
        with pytest.raises(AuthenticationError):
            await d.call(query)  # remembered: nothing more is sent
    assert login_requests(dev) == before + 1  # one try, never retried
    if dev.family == "solstice":
        assert exc.value.reason == "account_locked" and "account_locked" in str(exc.value)
        assert isinstance(exc.value, AccountLockedError)
    else:
        assert isinstance(exc.value, AccountLockedError) and "locked" in str(exc.value)
        assert "HTTP 401" in str(exc.value) and dev.locked_refusals == 1
    clock.now += 299
    async with client(dev, tls, PASSWORD) as d:
        with pytest.raises(AuthenticationError):
            await d.call(query)
    clock.now += 2  # the lockout is over: the right password works again
    async with client(dev, tls, PASSWORD) as d:
        await d.call(query)


@pytest.mark.parametrize("cls", [EmulatedPolyUC, EmulatedSolstice], ids=["polyuc", "solstice"])
async def test_failures_outside_the_window_do_not_lock(
    emulators: EmulatorThread, tls: TLSPolicy, cls: type[EmulatedDevice]
) -> None:
    dev = emulators.add(cls("dut", password=PASSWORD, lockout_after=3, lockout_window=60))
    clock = Clock()
    dev.clock = clock
    for _ in range(2):
        for _ in range(2):
            async with client(dev, tls, "wrong") as d:
                with pytest.raises(AuthenticationError):
                    await d.call(QUERY[dev.family])
        clock.now += 61
    async with client(dev, tls, PASSWORD) as d:
        await d.call(QUERY[dev.family])


async def test_videoos_lockout_ends_on_the_injected_clock(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = emulators.add(EmulatedVideoOS("dut", password=PASSWORD, lockout_after=2, lockout_seconds=60))
    clock = Clock()
    dev.clock = clock
    for _ in range(2):
        async with client(dev, tls, "wrong") as d:
            with pytest.raises(AuthenticationError):
                await d.call("system_get")
    async with client(dev, tls, PASSWORD) as d:
        with pytest.raises(AccountLockedError):
            await d.call("system_get")
    clock.now += 61
    async with client(dev, tls, PASSWORD) as d:
        await d.call("system_get")


def test_polyuc_locked_answer_says_why(emulators: EmulatorThread) -> None:
    phone = add(emulators, EmulatedPolyUC, lockout_after=1)
    phone.clock = Clock()
    wrong = "Authorization: Basic " + base64.b64encode(b"Polycom:nope").decode()
    status, _, body = raw(phone.port, f"GET /api/v2/mgmt/device/info HTTP/1.1\nHost: a\n{wrong}\n")
    assert status == 401 and b"locked for 60 seconds" in body
    status, headers, body = raw(phone.port, f"GET /api/v2/mgmt/device/info HTTP/1.1\nHost: a\n{basic(phone)}\n")
    assert status == 401 and b"locked" in body and "www-authenticate" in headers


# -- 5. loopback only, unless asked --------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com"])
def test_emulate_beyond_loopback_is_refused_before_binding(
    host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_bind(*_: object) -> None:
        raise AssertionError("bound a socket")

    monkeypatch.setattr("avctl.emulator.core._bind", no_bind)
    result = CliRunner().invoke(cli, ["emulate", "videoos", "--host", host])
    assert result.exit_code == 2
    assert "not a loopback address" in result.output and "--allow-remote" in result.output
    assert "Traceback" not in result.output
    fleet = CliRunner().invoke(cli, ["emulate", "fleet", "--videoos", "1", "--host", host])
    assert fleet.exit_code == 2 and "--allow-remote" in fleet.output


@pytest.mark.parametrize("setting", ["lockout_after=abc", "request_log=abc", "request_log=0", "no_such=1"])
def test_emulate_bad_settings_are_one_line_errors(setting: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("avctl.emulator.core._bind", lambda *_: pytest.fail("bound a socket"))
    result = CliRunner().invoke(cli, ["emulate", "polyuc", "--set", setting])
    assert result.exit_code == 2 and "avctl: error:" in result.output and "Traceback" not in result.output


def test_fleet_library_refuses_remote_hosts_unless_allowed() -> None:
    with pytest.raises(UsageError):
        EmulatedFleet({"videoos": 1}, host="0.0.0.0")
    allowed = EmulatedFleet({"videoos": 1}, host="0.0.0.0", allow_remote=True)  # not started
    assert allowed.warning is not None and "network" in allowed.warning
    assert EmulatedFleet({"videoos": 1}).warning is None


@pytest.mark.parametrize("host,loop", [("127.0.0.1", True), ("127.3.2.1", True), ("::1", True),
                                       ("[::1]", True), ("localhost", True), ("0.0.0.0", False),
                                       ("::", False), ("128.0.0.1", False), ("my-host", False)])
def test_is_loopback(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop
