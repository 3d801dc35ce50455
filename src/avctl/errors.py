"""One exception root for everything avctl raises.

The split follows httpx: *where* a failure happened (before any I/O, on the wire, at login, on
the device) decides its class, so callers and the fleet runner can tell a typo from a flaky
network from a locked account without parsing messages.

Each error knows whether it is *transient* (worth a retry with backoff) so retry policy lives in
one place; a rejected login is never transient: devices lock accounts out.
"""

from __future__ import annotations

from typing import Any


class AvctlError(Exception):
    """Root of every avctl error."""

    transient: bool = False
    #: short machine-readable class name used in results, JSON and CSV output
    kind: str = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # as it is, without calling __init__ again: subclasses take other arguments than `args`
        # (InventoryProblems takes its problems); the server's child processes send errors back
        return _restore, (type(self), self.args, self.__dict__)


def _restore(cls: type[AvctlError], args: tuple[Any, ...], state: dict[str, Any]) -> AvctlError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


# --- before any I/O -------------------------------------------------------------------------


class UsageError(AvctlError):
    """The caller asked for something that cannot be done as asked (bad option, missing credential)."""

    kind = "usage"


class CleartextRefused(UsageError):
    """A request carrying a secret would go over plain HTTP without the user's opt-in.

    Raised before that request is sent; never transient: the answer will not change on a retry.
    """

    kind = "cleartext"


class SpecError(AvctlError):
    """A spec file is malformed. Carries the file and line of the problem."""

    kind = "spec"

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None, hint: str | None = None
    ) -> None:
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        super().__init__(f"{where}{message}", hint=hint)
        self.file = file
        self.line = line


class ValidationError(AvctlError):
    """Parameters do not fit the action. Raised before anything is sent."""

    kind = "validation"

    def __init__(
        self, message: str, *, action: str | None = None, param: str | None = None, hint: str | None = None
    ) -> None:
        where = ""
        if action and param:
            where = f"{action}: parameter {param!r}: "
        elif action:
            where = f"{action}: "
        super().__init__(f"{where}{message}", hint=hint)
        self.action = action
        self.param = param


class UnknownActionError(ValidationError):
    """No such action in the device's spec."""


class ConfirmationRequired(AvctlError):
    """A disruptive action was not confirmed."""

    kind = "not_confirmed"


# --- on the wire ----------------------------------------------------------------------------


class TransportError(AvctlError):
    """The request could not be carried to the device and back."""

    kind = "transport"
    transient = True


class ConnectError(TransportError):
    """Could not open a connection (refused, unreachable, DNS)."""

    kind = "unreachable"


class ConnectionDropped(TransportError):
    """The connection was reset or closed before a full answer arrived."""

    kind = "connection_dropped"


class DeviceTimeout(TransportError):
    """The device did not answer in time."""

    kind = "timeout"


class TLSError(TransportError):
    """The TLS handshake failed or the certificate was not acceptable."""

    kind = "tls"
    transient = False


class CertificateChanged(TLSError):
    """The device presents a certificate other than the pinned one."""

    kind = "certificate_changed"

    def __init__(self, endpoint: str, pinned: str, presented: str, known_hosts: str) -> None:
        super().__init__(
            f"certificate of {endpoint} changed: pinned {pinned}, presented {presented}",
            hint=(
                f"if the device was reset or re-keyed, accept the new certificate with "
                f"'avctl trust {endpoint} --replace' (pins are kept per name as typed, in {known_hosts})"
            ),
        )
        self.endpoint = endpoint
        self.pinned = pinned
        self.presented = presented


# --- login ----------------------------------------------------------------------------------


class AuthenticationError(AvctlError):
    """The device rejected the credentials. Never retried: devices lock accounts out."""

    kind = "auth"

    def __init__(self, message: str, *, reason: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


class AccountLockedError(AuthenticationError):
    """Too many failed logins: the device locked the account."""

    kind = "locked_out"


# --- on the device --------------------------------------------------------------------------


class DeviceError(AvctlError):
    """The device answered, but with an error: HTTP status, body and any device code."""

    kind = "device"

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: Any = None,
        code: str | None = None,
        meaning: str | None = None,
        hint: str | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.body = body
        self.code = code
        self.meaning = meaning
        # 501 Not Implemented is a permanent answer; other 5xx may pass
        self.transient = transient or (status >= 500 and status != 501)


class DeviceBusy(DeviceError):
    """The device is busy with another request (Poly UC answers 403 or Status 4001)."""

    kind = "busy"

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message, **{**fields, "transient": True})


class ResponseTooLarge(DeviceError):
    """The device's answer (decompressed) exceeds the cap on what avctl reads.

    A DeviceError, not a TransportError: the answer did arrive, the device chose its size, and a
    retry gets the same answer. TransportErrors are transient and make a fleet device
    'unreachable'; this one is final and makes it 'failed'.
    """

    kind = "response_too_large"

    def __init__(self, message: str, *, status: int, cap: int, hint: str) -> None:
        super().__init__(message, status=status, hint=hint)
        self.cap = cap
        self.transient = False  # even with a 5xx status: the same answer would come again


class BadAnswer(DeviceError):
    """The device answered, but nothing in the shape its API documents (not JSON, wrong types)."""

    kind = "bad_answer"


class ApiDisabled(DeviceError):
    """The device's REST API is switched off."""

    kind = "api_disabled"


def is_transient(error: BaseException) -> bool:
    """Whether a retry with backoff may succeed."""
    return isinstance(error, AvctlError) and error.transient
