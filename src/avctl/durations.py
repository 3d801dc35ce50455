"""Checked durations: a timeout of 0, -1, nan or inf would switch the timeout off, so none is accepted.

Used by `Device`, `RunOptions` (library users get the error at construction) and the CLI options.
"""

from __future__ import annotations

import math

from avctl.errors import UsageError

#: per-request timeouts: longer than an hour is a typo, and a hung device would hold a slot for it
MAX_REQUEST_TIMEOUT = 3600.0
#: whole-device deadlines and reboot waits
MAX_DEADLINE = 86400.0


def check_seconds(name: str, value: object, *, maximum: float, allow_zero: bool = False) -> float:
    """`value` as seconds, or UsageError naming `name` (an option such as ``--timeout``)."""
    low = "0" if allow_zero else "more than 0"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"{name} must be a number of seconds, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero) or seconds > maximum:
        raise UsageError(f"{name} {value!r} is not a usable duration",
                         hint=f"give seconds from {low} up to {maximum:g}")
    return seconds
