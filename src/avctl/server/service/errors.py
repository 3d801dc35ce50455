"""The errors service functions raise; the API maps each to its HTTP status.

Errors of the toolkit (``avctl.errors``) pass through as they are: a `ValidationError` names the
parameter and why, a `UsageError` says what to do instead, a `StoreError` that the database
cannot be written.
"""

from __future__ import annotations

from avctl.server.model import Principal


class ServiceError(Exception):
    status = 400

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class NotFound(ServiceError):
    """No such thing, or not in the principal's sites (the same answer: scope hides existence)."""

    status = 404


class Forbidden(ServiceError):
    status = 403


class Conflict(ServiceError):
    status = 409


def check(principal: Principal, permission: str) -> None:
    """Forbidden unless the principal's role has `permission`."""
    if not principal.can(permission):
        raise Forbidden(f"your role ({principal.role}) may not {permission.replace('_', ' ')}")
