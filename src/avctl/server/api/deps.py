"""What every route depends on: the server's context, and who asks with which permission."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from avctl.fleet.audit import parse_when
from avctl.server.access.deps import current_principal, require
from avctl.server.context import ServerContext
from avctl.server.model import Principal


def server_context(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ServerContext, Depends(server_context)]
#: any authenticated user
Anyone = Annotated[Principal, Depends(current_principal)]
Reader = Annotated[Principal, Depends(require("read"))]
Actor = Annotated[Principal, Depends(require("act"))]
AlertHandler = Annotated[Principal, Depends(require("alerts"))]


async def authenticate_again(request: Request) -> Principal:
    """Who the request authenticates as now, outside FastAPI's resolution of a route's dependencies
    (which it replaces for a body that cannot be parsed and a stream that outlives its request's
    check); honours the app's dependency overrides as that resolution does. HTTPException if no one."""
    authenticate = request.app.dependency_overrides.get(current_principal, current_principal)
    principal: Principal = await run_in_threadpool(authenticate, request)
    return principal


def when(ctx: ServerContext, text: str | None) -> float | None:
    """A time parameter: epoch seconds, an ISO date/time (UTC if no zone), or an age (30m, 2h, 7d)."""
    if text is None or not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        return parse_when(text, now=ctx.clock())
