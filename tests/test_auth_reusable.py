"""The reusable auth pieces (avctl.auth.http, avctl.auth.session) driven with canned responses.

The flows never touch the network, so each test plays the device: it answers every request the flow
yields and checks what went out. The same pieces run against real sockets in the family tests
(VideoOS, Solstice, Poly UC) and in the external-family test (tests/test_external_family.py).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable

import pytest

from avctl.auth import Credentials, make_auth
from avctl.auth.http import BasicAuth, DigestAuth, digest_response, parse_challenges
from avctl.auth.session import SessionAuth
from avctl.errors import AuthenticationError, DeviceError, UsageError
from avctl.request import Request, Response
from avctl.spec import load_spec

Answer = Callable[[Request], Awaitable[Response]]


async def drive(auth: SessionAuth | BasicAuth | DigestAuth, request: Request, answer: Answer) -> tuple[
        list[Request], Response]:
    """Run one call through `auth`'s flow as Device does; every yielded request gets `answer`."""
    sent: list[Request] = []
    flow = auth.flow(request)
    outgoing = await flow.__anext__()
    response = Response(0)
    try:
        while True:
            sent.append(outgoing)
            response = await answer(outgoing)
            outgoing = await flow.asend(response)
    except StopAsyncIteration:
        return sent, response
    finally:
        await flow.aclose()


def canned(*responses: Response) -> Answer:
    queue = list(responses)

    async def answer(request: Request) -> Response:
        return queue.pop(0)

    return answer


CALL = Request("GET", "/api/power", action_id="power_get")
CREDS = Credentials("admin", "s3cret")


# --- Basic ----------------------------------------------------------------------------------------


async def test_basic_sends_the_password_up_front_marked_secret() -> None:
    auth = BasicAuth(CREDS)
    sent, response = await drive(auth, CALL, canned(Response(200, body=b"{}")))
    assert response.status == 200 and len(sent) == 1
    header = sent[0].header("Authorization") or ""
    assert base64.b64decode(header.removeprefix("Basic ")) == b"admin:s3cret"
    assert sent[0].carries_secret  # Device refuses it on plain HTTP without the user's opt-in


async def test_basic_rejected_password_is_final() -> None:
    auth = BasicAuth(CREDS)
    with pytest.raises(AuthenticationError, match="rejected user 'admin'"):
        await drive(auth, CALL, canned(Response(401)))
    sent: list[Request] = []

    async def record(request: Request) -> Response:
        sent.append(request)
        return Response(200)

    with pytest.raises(AuthenticationError):
        await drive(auth, CALL, record)
    assert sent == []  # never sent again


async def test_basic_without_password_sends_nothing() -> None:
    with pytest.raises(UsageError, match="no password"):
        await drive(BasicAuth(Credentials("admin")), CALL, canned())


# --- Digest ---------------------------------------------------------------------------------------

CHALLENGE = 'Digest realm="acme", nonce="n1", qop="auth", algorithm=MD5, opaque="o"'


def check_digest(request: Request, password: str, nonce: str) -> bool:
    """What a device does with the Authorization header: recompute the response."""
    fields = parse_challenges([request.header("Authorization") or ""])["digest"].params
    expected = digest_response(user=fields["username"], password=password, realm=fields["realm"],
                               method=request.method, uri=fields["uri"], nonce=fields["nonce"],
                               nc=fields["nc"], cnonce=fields["cnonce"], qop=fields["qop"])
    return fields["nonce"] == nonce and fields["response"] == expected and fields["opaque"] == "o"


async def test_digest_asks_first_then_answers_the_remembered_challenge() -> None:
    auth = DigestAuth(CREDS)
    challenge = Response(401, headers=(("WWW-Authenticate", CHALLENGE),))
    sent, response = await drive(auth, CALL, canned(challenge, Response(200)))
    assert response.status == 200 and len(sent) == 2
    assert sent[0].header("Authorization") is None  # nothing before the device asks
    assert check_digest(sent[1], "s3cret", "n1")
    assert not sent[1].carries_secret  # a hash bound to a nonce, not the password
    sent, response = await drive(auth, CALL, canned(Response(200)))
    assert len(sent) == 1 and check_digest(sent[0], "s3cret", "n1")  # no new 401 round trip
    assert "nc=00000002" in (sent[0].header("Authorization") or "")


async def test_digest_stale_nonce_is_answered_once_then_a_401_is_final() -> None:
    auth = DigestAuth(CREDS)
    await drive(auth, CALL, canned(Response(401, headers=(("WWW-Authenticate", CHALLENGE),)), Response(200)))
    stale = Response(401, headers=(("WWW-Authenticate", CHALLENGE.replace("n1", "n2") + ", stale=true"),))
    sent, response = await drive(auth, CALL, canned(stale, Response(200)))
    assert response.status == 200 and check_digest(sent[1], "s3cret", "n2")
    with pytest.raises(AuthenticationError, match="Digest auth"):
        await drive(auth, CALL, canned(Response(401, headers=(("WWW-Authenticate", CHALLENGE),))))
    with pytest.raises(AuthenticationError):
        await drive(auth, CALL, canned())  # remembered: nothing goes out


async def test_digest_401_without_a_digest_challenge_is_a_device_error() -> None:
    with pytest.raises(DeviceError, match="without a Digest challenge"):
        await drive(DigestAuth(CREDS), CALL, canned(Response(401, headers=(("WWW-Authenticate", "Basic"),))))


def test_a_spec_names_the_generic_flows(tmp_path: pytest.TempPathFactory) -> None:
    from tests.test_external_family import ACME_SPEC

    path = tmp_path / "acme.md"  # type: ignore[operator]
    path.write_text(ACME_SPEC)
    spec = load_spec(path)
    assert isinstance(make_auth("http_basic", spec, CREDS), BasicAuth)
    assert isinstance(make_auth("http_digest", spec, CREDS), DigestAuth)


# --- the session flow -----------------------------------------------------------------------------


class TokenSession(SessionAuth):
    """A toy session: POST /login answers {"token": ...}; calls carry X-Token."""

    def __init__(self, credentials: Credentials) -> None:
        super().__init__(credentials)
        self.token: str | None = None

    @property
    def logged_in(self) -> bool:
        return self.token is not None

    def login_request(self) -> Request:
        return Request("POST", "/login", body=json.dumps({"pw": self.credentials.password}).encode(),
                       carries_secret="the password")

    def absorb_login(self, response: Response) -> None:
        if response.status == 401:
            raise AuthenticationError("login rejected")
        if response.status != 200:
            raise DeviceError(f"login answered HTTP {response.status}", status=response.status)
        self.token = response.json()["token"]

    def apply(self, request: Request) -> Request:
        return request.with_headers(X_Token=self.token or "").with_secret("the token")

    def is_expired(self, response: Response) -> bool:
        return response.status == 419

    def forget_session(self) -> None:
        self.token = None


class Server:
    """Issues tokens t1, t2, ...; accepts only the current one; counts logins."""

    def __init__(self) -> None:
        self.logins = 0
        self.valid: str | None = None
        self.reject_login = False
        self.login_status = 200

    async def answer(self, request: Request) -> Response:
        await asyncio.sleep(0)  # let other calls run, as the network would
        if request.path == "/login":
            self.logins += 1
            if self.reject_login:
                return Response(401)
            if self.login_status != 200:
                return Response(self.login_status)
            self.valid = f"t{self.logins}"
            return Response(200, body=json.dumps({"token": self.valid}).encode())
        return Response(200) if request.header("X-Token") == self.valid else Response(419)


async def test_session_logs_in_once_for_many_calls() -> None:
    auth, server = TokenSession(CREDS), Server()
    sent, _ = await drive(auth, CALL, server.answer)
    assert [r.path for r in sent] == ["/login", "/api/power"] and sent[0].carries_secret
    for _ in range(3):
        sent, response = await drive(auth, CALL, server.answer)
        assert response.status == 200 and len(sent) == 1
    assert server.logins == 1


async def test_session_expired_relogs_in_once_and_retries_once() -> None:
    auth, server = TokenSession(CREDS), Server()
    await drive(auth, CALL, server.answer)
    server.valid = None  # the device forgets the session
    sent, response = await drive(auth, CALL, server.answer)
    assert response.status == 200 and [r.path for r in sent] == ["/api/power", "/login", "/api/power"]
    assert server.logins == 2


async def test_session_second_expired_answer_is_reported_not_looped() -> None:
    auth = TokenSession(CREDS)
    token = Response(200, body=b'{"token": "x"}')
    sent, response = await drive(auth, CALL, canned(token, Response(419), token, Response(419)))
    assert response.status == 419 and len(sent) == 4  # login, call, re-login, call: no third login


async def test_session_concurrent_expired_calls_share_one_relogin() -> None:
    auth, server = TokenSession(CREDS), Server()
    await drive(auth, CALL, server.answer)
    server.valid = None
    results = await asyncio.gather(*(drive(auth, CALL, server.answer) for _ in range(5)))
    assert all(response.status == 200 for _, response in results)
    assert server.logins == 2  # one login, one shared re-login


async def test_session_rejected_login_is_remembered_a_5xx_is_not() -> None:
    auth, server = TokenSession(CREDS), Server()
    server.login_status = 503
    with pytest.raises(DeviceError, match="HTTP 503"):
        await drive(auth, CALL, server.answer)
    assert auth.failed is None  # not a verdict on the password
    server.login_status, server.reject_login = 200, True
    with pytest.raises(AuthenticationError):
        await drive(auth, CALL, server.answer)
    logins = server.logins
    with pytest.raises(AuthenticationError):
        await drive(auth, CALL, server.answer)
    assert server.logins == logins  # never sent again


async def test_session_explicit_login_request_goes_as_asked() -> None:
    class WithLoginAction(TokenSession):
        def is_login(self, request: Request) -> bool:
            return request.path == "/login"

    auth, server = WithLoginAction(CREDS), Server()
    sent, _ = await drive(auth, Request("POST", "/login", body=b"{}"), server.answer)
    assert len(sent) == 1 and sent[0].carries_secret == "the login password" and server.logins == 1
