"""One way to write a moment: local wall-clock time in tables, ISO 8601 with its zone in data.

Tables are read by people in the room's building (``2026-11-30 14:05:09``, the host's zone); JSON
and CSV are read by programs and other hosts (``2026-11-30T13:05:09Z``, UTC, never ambiguous). Every
command that prints a time goes through these two (jobs, audit, fleet results, schedules).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

#: how `table_time` writes a moment, for the tests and the docs
TABLE_FORMAT = "%Y-%m-%d %H:%M:%S"


def table_time(ts: float | None) -> str:
    """A Unix time as local wall-clock time for a table cell; "" for none."""
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts).astimezone().strftime(TABLE_FORMAT)


def iso_time(ts: float | None) -> str | None:
    """A Unix time as ISO 8601 in UTC with its zone (``...Z``) for JSON and CSV; None for none."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


#: the members of the CLI's JSON documents that hold a moment (Unix time in the stores)
TIME_KEYS = frozenset({"created", "due", "started", "finished", "taken_at", "confirmed_at", "expires",
                       "last_used", "revoked"})


def with_iso_times(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with every number under a `TIME_KEYS` member written as `iso_time` (the stores and the
    server's API keep Unix time; the command line's JSON speaks ISO 8601)."""
    return {k: iso_time(v) if k in TIME_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool) else v
            for k, v in doc.items()}
