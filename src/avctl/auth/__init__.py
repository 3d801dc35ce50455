"""Auth flows, kept apart from the transport (the idea comes from httpx's `Auth.auth_flow`).

An auth flow is an async generator: it receives the request the caller wants sent, yields every
request that must go on the wire (a login first, the call, a retried call), and receives each
response. The device drives it; the flow never touches the network itself, so one transport serves
every login scheme and a flow can be tested with canned responses.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from avctl.errors import UsageError
from avctl.request import Request, Response

if TYPE_CHECKING:
    from avctl.spec.model import Spec

Flow = AsyncGenerator[Request, Response]


@dataclass(frozen=True)
class Credentials:
    """A user name and password. The password never shows in repr, logs or tracebacks."""

    user: str | None = None
    password: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password={'***' if self.password else None})"


class Auth:
    """Base auth flow: sends the request unchanged.

    A flow that adds a secret (a password, a token, a session cookie, a Basic header) records it
    with `Request.with_secret(what)`; `Device` refuses such a request on plain HTTP without the
    user's opt-in, so flows need not check the scheme themselves.
    """

    #: the scheme of requests that name none (the device's own); set by `Device`
    endpoint_scheme: str = "https"

    def over_http(self, request: Request) -> bool:
        """Whether `request` goes over plain HTTP."""
        return (request.scheme or self.endpoint_scheme) == "http"

    async def flow(self, request: Request) -> Flow:
        yield request

    def logout_request(self) -> Request | None:
        """A request that ends the session on close, if the scheme has sessions."""
        return None

    def closed(self) -> None:
        """The device sent the logout (or gave up on it): the session is over either way."""

    @property
    def logged_in(self) -> bool:
        return False


AuthFactory = Callable[["Spec", Credentials], Auth]
_AUTHS: dict[str, AuthFactory] = {"none": lambda spec, creds: Auth()}


def register_auth(name: str) -> Callable[[AuthFactory], AuthFactory]:
    """Register an auth flow under the name specs use (`auth: {type: NAME}`); a known name is an error."""

    def deco(factory: AuthFactory) -> AuthFactory:
        if name in _AUTHS:
            old = _AUTHS[name]
            raise UsageError(
                f"auth type {name!r} is registered twice: by {old.__module__}.{old.__qualname__} and by "
                f"{factory.__module__}.{factory.__qualname__}",
                hint="an auth type name must be unique; rename one",
            )
        _AUTHS[name] = factory
        return factory

    return deco


def make_auth(name: str, spec: Spec, credentials: Credentials) -> Auth:
    # the generic flows a spec can name without a family module (http_basic, http_digest)
    import avctl.auth.http  # noqa: F401

    try:
        factory = _AUTHS[name]
    except KeyError:
        raise UsageError(
            f"auth type {name!r} of spec {spec.id} is not supported",
            hint=f"supported: {', '.join(sorted(_AUTHS))}",
        ) from None
    return factory(spec, credentials)
