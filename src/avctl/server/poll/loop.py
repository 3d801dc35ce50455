"""The poller's event loop: it looks at its sockets at most once every `GRAIN` seconds.

At 10,000 devices the answers to a poll's requests arrive one by one, hundreds a second, and
asyncio's loop wakes for each: an epoll call, a loop iteration, a task step. Waiting out the rest of
`GRAIN` since the last look before the next one lets one iteration take every answer that arrived
meanwhile. Only a wait is stretched: callbacks already due run at once, and timers are kept (the
wait never outlasts the next timer). A request's answer is read at most `GRAIN` later.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from typing import Any

#: the shortest time between two looks at the sockets
GRAIN = 0.005


class CoalescingSelector(selectors.DefaultSelector):
    """The platform's selector (epoll on Linux) with at most one look per `grain` seconds."""

    def __init__(self, grain: float = GRAIN) -> None:
        super().__init__()
        self._grain = grain
        self._last = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        if timeout is None or timeout > 0:
            rest = self._last + self._grain - time.monotonic()
            if rest > 0:
                nap = rest if timeout is None else min(rest, timeout)
                time.sleep(nap)
                if timeout is not None:
                    timeout = max(0.0, timeout - nap)
        ready: list[tuple[Any, int]] = super().select(timeout)
        self._last = time.monotonic()
        return ready


def new_event_loop(grain: float = GRAIN) -> asyncio.AbstractEventLoop:
    """An event loop on a `CoalescingSelector` (for `asyncio.Runner(loop_factory=...)`)."""
    return asyncio.SelectorEventLoop(CoalescingSelector(grain))
