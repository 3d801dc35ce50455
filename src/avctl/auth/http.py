"""HTTP Basic and Digest (RFC 7617, RFC 7616): the pieces, and flows a spec can name.

The pieces (`parse_challenges`, `digest_response`, `basic_authorization`, `digest_authorization`)
are shared by the client flows here, by families with their own rules (Poly UC) and by the
emulators that check the answers. The flows:

- `http_basic` (`BasicAuth`): the password with every request, up front. On plain HTTP that is the
  password in clear: `Device` refuses it without the user's opt-in (`allow_cleartext`).
- `http_digest` (`DigestAuth`): nothing before the device asks; its challenge is remembered and every
  later request answers it directly. A stale nonce is answered once with the fresh one.

A 401 to credentials just sent is a verdict on the password: reported, remembered, never retried
(devices lock accounts out).
"""

from __future__ import annotations

import hashlib
import os
import re
from base64 import b64encode
from dataclasses import dataclass
from typing import TYPE_CHECKING

from avctl.auth import Auth, Credentials, Flow, register_auth
from avctl.errors import AuthenticationError, DeviceError, UsageError
from avctl.request import Request, Response

if TYPE_CHECKING:
    from avctl.spec.model import Spec

BASIC_SECRET = "the password (HTTP Basic)"


# --- challenges ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "basic", "digest"
    params: dict[str, str]

    @property
    def stale(self) -> bool:
        return self.params.get("stale", "").lower() == "true"


_TOKEN_RE = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*(=\s*("(?:[^"\\]|\\.)*"|[^\s,]*))?\s*,?')


def parse_challenges(values: list[str]) -> dict[str, Challenge]:
    """`WWW-Authenticate` values -> {scheme: Challenge}; handles several challenges in one header."""
    out: dict[str, Challenge] = {}
    for value in values:
        current: Challenge | None = None
        pos = 0
        while pos < len(value):
            m = _TOKEN_RE.match(value, pos)
            if m is None or m.end() == pos:
                break
            pos = m.end()
            name, assigned, raw = m.group(1), m.group(2), m.group(3)
            if assigned is None:  # a bare token starts a new challenge
                current = Challenge(name.lower(), {})
                out.setdefault(current.scheme, current)
                current = out[current.scheme]
                continue
            if current is None:
                continue
            if raw.startswith('"'):
                raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
            current.params[name.lower()] = raw
    return out


# --- answers -------------------------------------------------------------------------------------

_HASHES = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}


def _h(algorithm: str, text: str) -> str:
    return hashlib.new(_HASHES.get(algorithm, "md5"), text.encode()).hexdigest()


def digest_response(
    *,
    user: str,
    password: str,
    realm: str,
    method: str,
    uri: str,
    nonce: str,
    nc: str,
    cnonce: str,
    qop: str | None,
    algorithm: str = "MD5",
) -> str:
    """The `response` value of RFC 7616 Digest (shared by the client and the emulators)."""
    base = algorithm.upper().removesuffix("-SESS")
    ha1 = _h(base, f"{user}:{realm}:{password}")
    if algorithm.upper().endswith("-SESS"):
        ha1 = _h(base, f"{ha1}:{nonce}:{cnonce}")
    ha2 = _h(base, f"{method}:{uri}")
    if qop:
        return _h(base, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _h(base, f"{ha1}:{nonce}:{ha2}")


def basic_authorization(user: str, password: str) -> str:
    """The `Authorization` value of HTTP Basic."""
    return "Basic " + b64encode(f"{user}:{password}".encode()).decode()


def digest_authorization(request: Request, challenge: Challenge, user: str, password: str, nc: int) -> str:
    """The `Authorization` value answering `challenge` for `request` (`nc`: this nonce's use count)."""
    c = challenge.params
    algorithm = c.get("algorithm", "MD5")
    qops = [q.strip() for q in c.get("qop", "").split(",") if q.strip()]
    qop = "auth" if "auth" in qops else None
    count = f"{nc:08x}"
    cnonce = os.urandom(8).hex()
    uri = request.target
    answer = digest_response(
        user=user, password=password, realm=c.get("realm", ""), method=request.method, uri=uri,
        nonce=c.get("nonce", ""), nc=count, cnonce=cnonce, qop=qop, algorithm=algorithm,
    )
    fields = [
        f'username="{user}"',
        f'realm="{c.get("realm", "")}"',
        f'nonce="{c.get("nonce", "")}"',
        f'uri="{uri}"',
        f"algorithm={algorithm}",
        f'response="{answer}"',
    ]
    if qop:
        fields += [f"qop={qop}", f"nc={count}", f'cnonce="{cnonce}"']
    if "opaque" in c:
        fields.append(f'opaque="{c["opaque"]}"')
    return "Digest " + ", ".join(fields)


# --- flows ---------------------------------------------------------------------------------------


class _PasswordAuth(Auth):
    """A password sent per request; a 401 to it is final for the life of this object."""

    scheme_label = ""

    def __init__(self, credentials: Credentials, default_user: str = "admin") -> None:
        self.credentials = credentials
        self.user = credentials.user or default_user
        self.failed: AuthenticationError | None = None

    def password(self) -> str:
        if self.credentials.password is None:
            raise UsageError(
                f"no password for {self.scheme_label} auth",
                hint="give --password-env VAR or --password-file FILE, or set AVCTL_PASSWORD (a terminal is asked)",
            )
        return self.credentials.password

    def reject(self, response: Response) -> AuthenticationError:
        """Remember the verdict: this object never sends the rejected password again."""
        self.failed = AuthenticationError(
            f"the device rejected user {self.user!r} (HTTP {response.status}, {self.scheme_label} auth)",
            reason=str(response.status),
            hint="check the password; avctl does not retry a rejected login, as devices lock accounts out",
        )
        return self.failed


class BasicAuth(_PasswordAuth):
    scheme_label = "Basic"

    async def flow(self, request: Request) -> Flow:
        if self.failed is not None:
            raise self.failed
        header = basic_authorization(self.user, self.password())
        response = yield request.with_headers(Authorization=header).with_secret(BASIC_SECRET)
        if response.status == 401:
            raise self.reject(response)


class DigestAuth(_PasswordAuth):
    scheme_label = "Digest"

    def __init__(self, credentials: Credentials, default_user: str = "admin") -> None:
        super().__init__(credentials, default_user)
        self.challenge: Challenge | None = None
        self.nc = 0

    def take(self, response: Response) -> bool:
        """Keep the Digest challenge of a 401; False if it offers none."""
        challenge = parse_challenges(response.header_all("WWW-Authenticate")).get("digest")
        if challenge is None:
            return False
        self.challenge, self.nc = challenge, 0
        return True

    def authorize(self, request: Request) -> Request:
        assert self.challenge is not None
        self.nc += 1
        header = digest_authorization(request, self.challenge, self.user, self.password(), self.nc)
        return request.with_headers(Authorization=header)

    async def flow(self, request: Request) -> Flow:
        if self.failed is not None:
            raise self.failed
        self.password()  # no password: say so before anything goes out
        if self.challenge is None:
            response = yield request
            if response.status != 401:
                return
            if not self.take(response):
                raise DeviceError(
                    "the device answered 401 without a Digest challenge",
                    status=401,
                    hint="does the spec name the right auth type for this device?",
                )
        response = yield self.authorize(request)
        if response.status != 401:
            return
        fresh = parse_challenges(response.header_all("WWW-Authenticate")).get("digest")
        if fresh is not None and fresh.stale:
            # the nonce expired (or the device restarted): same password, fresh nonce, once
            self.challenge, self.nc = fresh, 0
            response = yield self.authorize(request)
        if response.status == 401:
            raise self.reject(response)


def _user(spec: Spec) -> str:
    return spec.transport.default_user or "admin"


@register_auth("http_basic")
def _basic(spec: Spec, credentials: Credentials) -> Auth:
    return BasicAuth(credentials, _user(spec))


@register_auth("http_digest")
def _digest(spec: Spec, credentials: Credentials) -> Auth:
    return DigestAuth(credentials, _user(spec))


__all__ = [
    "BasicAuth",
    "Challenge",
    "DigestAuth",
    "basic_authorization",
    "digest_authorization",
    "digest_response",
    "parse_challenges",
]
