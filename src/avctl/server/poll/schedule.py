"""When a device is polled next: the interval, its per-family floor, jitter and backoff.

Pure arithmetic on an injected random generator, so tests can check the schedule without waiting.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from avctl.errors import UsageError

#: the shortest interval a family's devices tolerate: a Solstice pod's web server is single-threaded
#: and slows its screen sharing when polled more often than every 10 s
FAMILY_MIN_INTERVAL: Mapping[str, float] = MappingProxyType({"solstice": 10.0})
#: seconds an idle connection outlives the longest interval (a poll that waited for a slot)
KEEPALIVE_MARGIN = 15.0


@dataclass(frozen=True)
class PollSettings:
    #: seconds from the start of one poll of a device to the start of the next
    interval: float = 60.0
    #: per family name: the interval is never shorter than this (overrides merge with the defaults)
    family_min_interval: Mapping[str, float] = field(default_factory=lambda: dict(FAMILY_MIN_INTERVAL))
    #: the first poll of each device is spread over [0, jitter * interval]; every later interval is
    #: stretched or shrunk by up to this share (never below the family's floor)
    jitter: float = 0.1
    #: an unreachable device is polled every interval * 2^failures, up to this many seconds
    backoff_max: float = 600.0
    #: polls running at once, over all devices / per site (0: no per-site limit)
    concurrency: int = 200
    per_site: int = 0
    #: the deadline of one whole poll of one device (login and every query included)
    poll_timeout: float = 30.0
    #: the deadline of one request
    request_timeout: float = 10.0
    #: seconds between two reads of a device's slow readings (Feedbacks marked ``poll: slow``: model,
    #: firmware, serial, peripherals...), at the first poll whose start is at least this long after
    #: the last read; read as well on its first poll, after it was not online, after a (re-)login and
    #: when its uptime went backwards (a reboot). The polls between report their last values.
    #: At most `interval`: every poll
    slow_interval: float = 600.0
    #: new devices' first polls start at about this many a second at most: a large fleet's first
    #: sweep (a login and a TLS handshake each) is spread over up to one interval rather than
    #: `jitter` x interval, so it neither saturates the server nor leaves a burst that repeats every
    #: interval (10,000 devices in 6 s, polled again in the same 6 s a minute later)
    start_rate: float = 25.0

    def __post_init__(self) -> None:
        for name in ("interval", "poll_timeout", "request_timeout", "backoff_max", "slow_interval"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise UsageError(f"poll {name} must be a positive number of seconds, got {value!r}")
        if not 0 <= self.jitter < 1:
            raise UsageError(f"poll jitter must be from 0 to below 1, got {self.jitter!r}")
        if not (math.isfinite(self.start_rate) and self.start_rate > 0):
            raise UsageError(f"poll start_rate must be a positive number per second, got {self.start_rate!r}")
        if self.concurrency < 1 or self.per_site < 0:
            raise UsageError("poll concurrency must be at least 1 and per_site 0 (no limit) or more")
        for family, floor in self.family_min_interval.items():
            if not (math.isfinite(floor) and floor >= 0):
                raise UsageError(f"minimum poll interval of {family} must be 0 or more seconds, got {floor!r}")

    def with_family_minimums(self, overrides: Mapping[str, float]) -> PollSettings:
        """These settings with some families' floors replaced (the rest keep the defaults)."""
        return replace(self, family_min_interval={**self.family_min_interval, **overrides})

    def keepalive(self) -> float:
        """How long an idle device connection is kept: past the longest jittered interval, so a
        device answering every poll is reached over one connection (no TCP/TLS handshake per poll).
        A backed-off device's connection is long gone by its next poll, as it should be."""
        longest = max([self.interval, *self.family_min_interval.values()])
        return longest * (1.0 + self.jitter) + KEEPALIVE_MARGIN

    def floor(self, family: str) -> float:
        return self.family_min_interval.get(family, 0.0)

    def interval_for(self, family: str) -> float:
        """The interval of a family's devices: the setting, raised to the family's floor."""
        return max(self.interval, self.floor(family))

    def first_delay(self, family: str, rng: random.Random, starting: int = 1) -> float:
        """Seconds until a new device's first poll, `starting` devices starting together: spread over
        `jitter` x interval so a fleet does not start in lockstep, and wider (up to one interval)
        when that would start more than `start_rate` a second. No jitter: all at once (on purpose)."""
        if not self.jitter:
            return 0.0
        interval = self.interval_for(family)
        return rng.uniform(0.0, max(self.jitter * interval, min(interval, starting / self.start_rate)))

    def next_delay(self, family: str, failures: int, rng: random.Random) -> float:
        """Seconds from the start of a poll to the next one, after `failures` unreachable polls in a row."""
        base = self.interval_for(family)
        if failures > 0:
            base = min(base * 2.0 ** min(failures, 32), max(self.backoff_max, base))
        spread = base * (1.0 + rng.uniform(-self.jitter, self.jitter))
        return max(spread, self.floor(family))
