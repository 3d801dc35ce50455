"""What pages depend on: the server's context and who asks (remembered for the error pages)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from avctl.server.access.deps import current_principal, guard, require
from avctl.server.api.deps import Ctx
from avctl.server.model import Principal

__all__ = ["Actor", "Admin", "AlertHandler", "Ctx", "Reader", "page_require"]


def page_require(permission: str) -> Callable[..., Principal]:
    """`require(permission)`, and the principal kept on the request so an error page shows the menu."""
    check = require(permission)

    @guard
    def dependency(request: Request, principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        request.state.principal = principal
        return check(principal)

    return dependency


Reader = Annotated[Principal, Depends(page_require("read"))]
Actor = Annotated[Principal, Depends(page_require("act"))]
AlertHandler = Annotated[Principal, Depends(page_require("alerts"))]
Admin = Annotated[Principal, Depends(page_require("admin"))]
