"""Maintenance windows: when a site lets disruptive work start, in the site's own time zone.

Written in the inventory per site (or under ``defaults``)::

    sites:
      hq:
        timezone: Europe/Berlin
        window: "Mon-Fri 01:00-04:00, Sat-Sun 00:00-06:00"

A window is one or more spans ``[DAYS] HH:MM-HH:MM`` separated by commas (or a YAML list). DAYS is
a day (``Mon``), a range (``Mon-Fri``; ``Fri-Mon`` wraps), days joined by commas (``Mon,Wed``),
``daily`` or nothing (every day). A span whose end is not after its
start crosses midnight and belongs to the day it starts on (``Fri 22:00-02:00`` ends Saturday 02:00).

Times are wall-clock times of the zone: on the night the clocks go forward, ``01:00-04:00`` lasts two
hours; a start that does not exist (02:30 on that night) is the instant the clocks jump to. Every
instant here is an aware UTC ``datetime``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["Span", "Window", "WindowError", "local_instant", "parse_window", "zone"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN_RE = re.compile(r"^(?:(?P<days>[A-Za-z]+(?:\s*-\s*[A-Za-z]+)?)\s+)?"
                      r"(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})$")


class WindowError(ValueError):
    """A window or time zone that cannot be understood; the message says what to write instead."""


def zone(name: str) -> ZoneInfo:
    """An IANA time zone by name (``Europe/Berlin``), or WindowError naming the problem."""
    if not name or name != name.strip() or ".." in name or name.startswith("/"):
        raise WindowError(f"{name!r} is not an IANA time zone name (e.g. Europe/Berlin, America/New_York)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise WindowError(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin or "
                          "America/New_York)") from None


def local_instant(day: date, at: dtime, tz: ZoneInfo) -> datetime:
    """The UTC instant of wall-clock ``day at`` in ``tz``. A time the clocks skip (spring forward) is
    the instant they jump (02:30 on that night in Berlin: 03:00 CEST); a time that happens twice
    (fall back) is its first occurrence."""
    naive = datetime.combine(day, at)
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == naive:
        return first
    # in the gap: fold=1 is an instant before the jump, fold=0 one after; the jump is the first
    # instant whose wall time is not earlier than `naive` (found to the second)
    lo, hi = naive.replace(tzinfo=tz, fold=1).astimezone(UTC), first
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0)


@dataclass(frozen=True)
class Span:
    """One span: the weekdays it starts on (0 = Monday) and its wall-clock start and end."""

    days: frozenset[int]
    start: dtime
    end: dtime

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def instants(self, day: date, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
        """(start, end) in UTC of the span starting on local ``day``; None if it does not start then."""
        if day.weekday() not in self.days:
            return None
        end_day = day + timedelta(days=1) if self.crosses_midnight else day
        return local_instant(day, self.start, tz), local_instant(end_day, self.end, tz)

    def __str__(self) -> str:
        return f"{_days_text(self.days)} {self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True)
class Window:
    """A site's maintenance window: spans of wall-clock time in the site's zone."""

    spans: tuple[Span, ...]
    text: str

    def intervals(self, tz: ZoneInfo, around: datetime, *, days: int = 9) -> list[tuple[datetime, datetime]]:
        """The open intervals (start, end) from the day before ``around`` on, overlapping and touching
        spans merged, in order."""
        first = around.astimezone(tz).date() - timedelta(days=1)
        found = sorted(got for n in range(days) for span in self.spans
                       if (got := span.instants(first + timedelta(days=n), tz)) is not None and got[1] > got[0])
        merged: list[tuple[datetime, datetime]] = []
        for start, end in found:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged

    def closes_at(self, now: datetime, tz: ZoneInfo) -> datetime | None:
        """When the window open at ``now`` closes; None if it is closed at ``now``."""
        return next((end for start, end in self.intervals(tz, now) if start <= now < end), None)

    def next_open(self, now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """The window open at ``now`` (from ``now``) or the next one to open: (opens, closes), UTC."""
        for start, end in self.intervals(tz, now):
            if now < end:
                return max(start, now), end
        raise WindowError(f"window {self.text!r} never opens")  # pragma: no cover - parse refuses this

    def __str__(self) -> str:
        return self.text


def _days_text(days: frozenset[int]) -> str:
    if len(days) == 7:
        return "daily"
    return ",".join(DAYS[d].capitalize() for d in sorted(days))


def _day(text: str, where: str) -> int:
    word = text.strip().lower()
    key = word[:3]
    full = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    if key not in DAYS or not full[DAYS.index(key)].startswith(word):
        raise WindowError(f"{where}: {text!r} is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)")
    return DAYS.index(key)


def _days(text: str | None, where: str) -> frozenset[int]:
    if text is None or text.strip().lower() in ("daily", "every day"):
        return frozenset(range(7))
    first, sep, last = text.partition("-")
    a = _day(first, where)
    if not sep:
        return frozenset({a})
    b = _day(last, where)
    return frozenset((a + i) % 7 for i in range((b - a) % 7 + 1))


def _clock(text: str, where: str, *, end: bool) -> dtime:
    hours, minutes = (int(x) for x in text.split(":"))
    if end and (hours, minutes) == (24, 0):
        return dtime(0, 0)
    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
        raise WindowError(f"{where}: {text!r} is not a time of day (00:00 to 23:59{', or 24:00' if end else ''})")
    return dtime(hours, minutes)


def parse_window(value: str | Sequence[str]) -> Window:
    """``"Mon-Fri 01:00-04:00, Sat 00:00-06:00"`` (or a list of spans) -> Window; WindowError if not."""
    items = [value] if isinstance(value, str) else list(value)
    texts = [part.strip() for item in items for part in str(item).split(",")]
    # "Mon,Wed 01:00-02:00" splits into "Mon" and "Wed 01:00-02:00": join bare days to the next span
    spans: list[Span] = []
    pending_days: list[str] = []
    for text in texts:
        if not text:
            continue
        if re.fullmatch(r"[A-Za-z]+(?:\s*-\s*[A-Za-z]+)?", text):
            pending_days.append(text)
            continue
        m = _SPAN_RE.match(text)
        if m is None:
            raise WindowError(f"{text!r} is not a window span; write DAYS HH:MM-HH:MM, e.g. 'Mon-Fri 01:00-04:00'")
        where = f"window span {text!r}"
        days = _days(m["days"], where)
        for extra in pending_days:
            days |= _days(extra, where)
        pending_days = []
        start = _clock(m["start"], where, end=False)
        end = _clock(m["end"], where, end=True)
        if start == end and (m["start"], m["end"]) not in (("00:00", "24:00"), ("0:00", "24:00")):
            raise WindowError(f"{where}: starts and ends at the same time (a whole day is 00:00-24:00)")
        spans.append(Span(days, start, end))
    if pending_days:
        raise WindowError(f"days {', '.join(pending_days)} without a time; write e.g. 'Mon,Wed 01:00-04:00'")
    if not spans:
        raise WindowError("the window is empty; write e.g. 'Mon-Fri 01:00-04:00'")
    text = ", ".join(items) if not isinstance(value, str) else value
    return Window(tuple(spans), text.strip())
