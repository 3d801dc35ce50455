"""FastAPI dependencies that authenticate and authorise every request (deny by default).

Every router of the API depends on `current_principal` (who asks: a browser session cookie, with
its CSRF token on state-changing methods, or an API token) or on ``require(permission)`` (who asks,
and may they). No endpoint except ``/healthz`` and the login works without one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from avctl.server.model import Principal


def current_principal(request: Request) -> Principal:
    """The authenticated user of this request; 401 if none (implemented by the access module)."""
    raise HTTPException(status_code=401, detail="not authenticated")


def require(permission: str) -> Callable[..., Principal]:
    """A dependency: the principal, if their role has `permission`; 403 otherwise."""

    def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.can(permission):
            raise HTTPException(status_code=403, detail=f"your role ({principal.role}) may not {permission}")
        return principal

    return dependency
