"""The heap of the server's long-running processes: freed pages go back to the system, and the
garbage collector leaves alone what lives as long as the process.

Polls and observation batches allocate and free the same sizes all day: glibc keeps the freed
pages (a process stays at its peak) and gives each thread that allocates an arena of its own
(`asyncio.to_thread` runs the state writes and the alert rules on several). `malloc_trim` every
5 s returns the free pages: 0.3 ms each time in a poller of 10,000 devices (scripts/bench_poll.py
``--live``, ``trim_ms``), and a peak such as the first sweep's (10,000 logins in a minute) is given
back within seconds instead of being held up to a minute (every 60 s, the benchmark's peak was 26 MB
above what the same processes held once trimmed). Two arenas are enough for a process whose threads
take turns. Elsewhere than glibc: nothing happens.

What exists once a process has started (modules, routes, the inventory, the poller's devices and
connections) is frozen out of the collector's reach, and the collector runs less often: with
CPython's default thresholds (700, 10, 10) a page over 10,000 devices (~60,000 objects) ran it ~85
times and went over the whole heap every few pages (an overview's summary: 262 ms at the median,
133 ms with `GC_THRESHOLD`; scripts/bench_dashboard.py), and the poller spent 2.3 % of its CPU
collecting at 2,000 devices (the whole heap, growing with the fleet; scripts/bench_poll.py's ``gc``
variant: 5 % less CPU per poll).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
from collections.abc import Callable

#: seconds between two returns of free heap memory to the system
TRIM_SECONDS = 5.0
#: the collector's thresholds in the server's processes (see above)
GC_THRESHOLD = (50_000, 20, 20)
#: glibc's `mallopt` parameter for the number of arenas, and the number kept
_M_ARENA_MAX = -8
ARENAS = 2


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def limit_arenas(arenas: int = ARENAS) -> None:
    """At most `arenas` malloc arenas for the threads of this process (call before they start)."""
    libc = _libc()
    mallopt: Callable[[int, int], int] | None = getattr(libc, "mallopt", None)
    if mallopt is not None:
        mallopt(_M_ARENA_MAX, arenas)


async def trim_every(seconds: float = TRIM_SECONDS) -> None:
    """Return the heap's free pages to the system every `seconds`, until cancelled."""
    trim: Callable[[int], int] | None = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return
    while True:
        await asyncio.sleep(seconds)
        trim(0)


def settle() -> None:
    """Start-up is over: freeze what exists now out of the collector's reach, and collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
