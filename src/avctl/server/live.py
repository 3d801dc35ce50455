"""Change notices for live pages: which kind of thing changed (device state, alerts, jobs), not what.

Pages that show live data listen to `/ui/live` (server-sent events) and fetch their fragment again
when a topic they show changes, so a page is always rendered by the same code that rendered it
first. Publishing is cheap and may come from any thread; waiting is for the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

#: the topics there are: device state (polling), alerts (opened, resolved, acknowledged, silenced), jobs
TOPICS = ("state", "alerts", "jobs")


class ChangeFeed:
    """A counter per topic, and waiters woken when any counter moves."""

    def __init__(self) -> None:
        self._versions = dict.fromkeys(TOPICS, 0)
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._lock = threading.Lock()

    def publish(self, topic: str) -> None:
        if topic not in self._versions:
            raise ValueError(f"unknown topic {topic!r} (one of {', '.join(TOPICS)})")
        with self._lock:
            self._versions[topic] += 1
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that loop has closed: its waiter is gone too
                loop.call_soon_threadsafe(event.set)

    def versions(self) -> dict[str, int]:
        with self._lock:
            return dict(self._versions)

    async def changed(self, seen: dict[str, int], *, timeout: float) -> dict[str, int]:
        """The versions of the topics that moved since `seen`, once any did; {} after `timeout`."""
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._lock:
            self._waiters.add(waiter)
        try:
            while True:
                moved = {t: v for t, v in self.versions().items() if v != seen.get(t)}
                if moved:
                    return moved
                event.clear()
                try:
                    await asyncio.wait_for(event.wait(), timeout)
                except TimeoutError:
                    return {}
        finally:
            with self._lock:
                self._waiters.discard(waiter)
