"""When a schedule is due: cron expressions in a time zone, missed instants, the overlap rule.

Pure functions over UTC epoch seconds; nothing here reads a clock or a database.

Daylight-saving changes follow Debian cron (cronsim): a time the clocks skip runs once, at the
instant they jump (02:30 on the spring-forward night runs at 03:00); a time that happens twice runs
once, at its first occurrence (01:30 on the fall-back night), unless the hour is a wildcard
(``0 * * * *`` runs in both 02:00 hours, like Debian cron).
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from avctl.errors import UsageError
from avctl.fleet.windows import WindowError, zone

#: due instants older than this are not looked for (a scheduler down for weeks records a few
#: `missed` runs, not one per minute)
HORIZON = 35 * 86400.0
#: at most this many `missed` records per schedule, zone and pass
MISSED_CAP = 5


def check_cron(expr: str) -> str:
    """The expression, or UsageError naming what is wrong with it (five fields, Debian syntax)."""
    text = " ".join(expr.split())
    if len(text.split(" ")) != 5:
        raise UsageError(f"--cron {expr!r}: expected five fields (minute hour day-of-month month day-of-week)",
                         hint='e.g. --cron "0 2 * * *" (every day at 02:00)')
    try:
        CronSim(text, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise UsageError(f"--cron {expr!r}: {exc}", hint='e.g. --cron "0 2 * * *" (every day at 02:00)') from None
    return text


def check_zone(name: str) -> ZoneInfo:
    try:
        return zone(name)
    except WindowError as exc:
        raise UsageError(f"--timezone: {exc}") from None


def host_zone() -> str:
    """The host's IANA zone: ``TZ``, else the ``/etc/localtime`` link, else UTC."""
    tz = os.environ.get("TZ", "").strip().lstrip(":")
    candidates = [tz] if tz else []
    try:
        target = Path("/etc/localtime").resolve(strict=True)
    except OSError:
        target = None
    if target is not None and "zoneinfo/" in target.as_posix():
        candidates.append(target.as_posix().split("zoneinfo/", 1)[1])
    for name in candidates:
        try:
            zone(name)
        except WindowError:
            continue
        return name
    return "UTC"


def due_instants(cron: str, tz: ZoneInfo, after: float, until: float) -> list[float]:
    """The instants (UTC epoch seconds) in ``(after, until]`` at which ``cron`` fires in ``tz``; at
    most the newest ``MISSED_CAP + 1``, none older than `HORIZON` before ``until``."""
    start = max(after, until - HORIZON)
    found: deque[float] = deque(maxlen=MISSED_CAP + 1)
    for when in CronSim(cron, datetime.fromtimestamp(start, tz)):
        instant = when.timestamp()
        if instant > until:
            break
        if instant > after:
            found.append(instant)
    return list(found)


def next_due(cron: str, tz: ZoneInfo, after: float) -> float:
    """The first instant after ``after`` at which ``cron`` fires in ``tz``."""
    return next(iter(CronSim(cron, datetime.fromtimestamp(after, tz)))).timestamp()


@dataclass(frozen=True)
class Due:
    """What one pass does for one schedule in one zone."""

    #: the instant to run now (None: nothing due within the grace)
    run: float | None
    #: older instants, and a newest one past its grace: recorded `missed`
    missed: tuple[float, ...]


def decide(instants: list[float], now: float, grace: float) -> Due:
    """Only the newest due instant runs, and only if it is at most ``grace`` seconds old."""
    if not instants:
        return Due(None, ())
    newest = instants[-1]
    if now - newest <= grace:
        return Due(newest, tuple(instants[:-1]))
    return Due(None, tuple(instants))


def local_text(instant: float, tz: str) -> str:
    """An instant as the zone's wall-clock time with its offset (2026-03-29 03:00 +0200)."""
    return datetime.fromtimestamp(instant, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %z")
