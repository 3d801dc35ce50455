"""One retry policy for every call: which failures are retried, how often, and how long to wait.

A `Device` owns one `RetryPolicy` (its family's default unless given); the fleet runner and
`avctl call` configure it from their options. Nothing else loops: the runner makes one
`Device.call` per action, so the requests a device receives are bounded by ``attempts`` (plus the
login requests of each attempt).

What is retried (``may_retry``), per error class:

======================================  =======  ==================================================
error                                   query    state-changing action (``kind: action``)
======================================  =======  ==================================================
`AuthenticationError` (any)             never    never: devices lock accounts out
`DeviceError` 501, other non-transient  never    never: the answer will not change
`DeviceBusy` (Poly UC 403 / 4001)       yes      yes: the phone answers busy *instead* of acting
`ConnectError` (refused, unreachable)   yes      yes: nothing was sent
`DeviceError` 503 Service Unavailable   yes      yes: RFC 9110 15.6.4, the server was unable to
                                                 handle the request (booting, overloaded)
`DeviceError` 500, 502, 504             yes      no: the device (or a gateway) may have acted
`DeviceTimeout`, `ConnectionDropped`    yes      no: the request may have reached the device
other transient `TransportError`        yes      no
======================================  =======  ==================================================

A failure while logging in, before the action's own request was sent, is retried like a query
(``reached=False``): the action cannot have happened. A rejected login is never transient, so it is
never retried whatever the policy says.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from avctl.errors import ConnectError, DeviceBusy, DeviceError, UsageError, is_transient
from avctl.spec.model import Action

#: HTTP statuses that say the request was not processed, so even a state-changing call may repeat
NOT_PROCESSED_STATUSES = frozenset({503})
#: upper bounds that keep a typo (``--backoff 1e9``) from hanging a run
MAX_ATTEMPTS = 11
MAX_BACKOFF = 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` requests at most per call (1: no retry); backoff doubles per retry up to
    ``backoff_max``; ``jitter`` (0..1) is the share of each delay that is randomised away so a
    site coming back from a reboot is not hit in lockstep. ``busy_only`` retries busy answers and
    nothing else (a family default: a library caller decides itself about other failures)."""

    attempts: int = 1
    backoff: float = 0.5
    backoff_max: float = 8.0
    jitter: float = 0.5
    busy_only: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or not (
            1 <= self.attempts <= MAX_ATTEMPTS
        ):
            raise UsageError(f"retry attempts must be a whole number from 1 to {MAX_ATTEMPTS}, "
                             f"got {self.attempts!r}")
        for name in ("backoff", "backoff_max"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= MAX_BACKOFF):
                raise UsageError(f"retry {name} must be a number of seconds from 0 to {MAX_BACKOFF:g}, "
                                 f"got {value!r}")
        if not (isinstance(self.jitter, int | float) and 0 <= self.jitter <= 1):
            raise UsageError(f"retry jitter must be from 0 to 1, got {self.jitter!r}")

    @classmethod
    def from_retries(cls, retries: int, backoff: float = 0.5, backoff_max: float = 8.0) -> RetryPolicy:
        """The policy of ``--retries N`` (N retries after the first attempt)."""
        return cls(attempts=retries + 1, backoff=backoff, backoff_max=backoff_max)

    def may_retry(self, error: BaseException, action: Action, *, reached: bool = True) -> bool:
        """Whether `error` may be retried for `action` (see the module table).

        ``reached=False`` says the action's own request was never sent (the failure came during
        the login that precedes it): then nothing was done, whatever the error.
        """
        if not is_transient(error):
            return False  # includes rejected logins and 501
        if isinstance(error, DeviceBusy):
            return True
        if self.busy_only:
            return False
        if isinstance(error, ConnectError) or not reached:
            return True
        if action.kind == "query":
            return True
        return isinstance(error, DeviceError) and error.status in NOT_PROCESSED_STATUSES

    def delay(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        base = min(self.backoff * 2.0 ** (retry - 1), self.backoff_max)
        return base * (1.0 - self.jitter * rng.random())
