"""A transport that calls a Python function instead of the network (the idea of httpx.MockTransport).

For unit tests of auth flows and of your own code: the handler receives each `Request` and returns
a `Response` (or raises a transport error to simulate the network failing).

    def handler(endpoint, request):
        return Response(200, body=b"42")
    dev = Device("videoos", "10.0.0.5", transport=MockTransport(handler), credentials=...)
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from avctl.request import Request, Response
from avctl.transport.http import Endpoint

Handler = Callable[[Endpoint, Request], Response | Awaitable[Response]]


class MockTransport:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []

    async def send(self, endpoint: Endpoint, request: Request, *, timeout: float) -> Response:
        self.requests.append(request)
        result = self.handler(endpoint, request)
        response = await result if inspect.isawaitable(result) else result
        return Response(response.status, response.headers, response.body, response.file, response.elapsed, request)

    async def close(self) -> None:
        return None
