"""Checked durations: a timeout of 0, -1, nan or inf would switch the timeout off, so none is accepted.

Used by `Device`, `RunOptions` (library users get the error at construction) and the CLI options.
"""

from __future__ import annotations

import math
import re

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


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_duration(text: str | float, what: str = "duration") -> float:
    """``90``, ``90s``, ``5m``, ``4h``, ``7d``, ``2w`` -> seconds (more than 0)."""
    if isinstance(text, bool):
        raise UsageError(f"{what}: {text!r} is not a duration", hint="e.g. 30s, 5m, 4h, 7d")
    if isinstance(text, int | float):
        value = float(text)
    else:
        m = _DURATION_RE.match(text)
        if not m:
            raise UsageError(f"{what}: {text!r} is not a duration", hint="e.g. 30s, 5m, 4h, 7d")
        value = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    if not value > 0:
        raise UsageError(f"{what}: {text!r} must be more than 0", hint="e.g. 30s, 5m, 4h, 7d")
    return value


def describe_duration(seconds: float) -> str:
    """``600`` -> ``10 min``, ``5400`` -> ``1.5 h``, ``45`` -> ``45 s``: for messages."""
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def human_duration(seconds: float | None) -> str:
    """``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``: an uptime or an age for a table ("-": none)."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"
