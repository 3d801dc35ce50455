"""The agent interface's brakes: one-time confirmation tokens bound to a plan, and a rate limit on changes.

A confirmation token is random (`secrets.token_urlsafe`), kept in memory only as its sha256, valid
for one use within a short time, and bound to exactly the plan it was issued with: the tool, the
action or verb, the canonical parameters, the resolved device set and the identity that asked.
Presented with anything else, it is refused naming what differs, and used up (a second guess needs a
new plan). Time comes from the clock given (tests inject one).
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class Refused(Exception):
    """A request the guard refuses; the message is one line for the agent."""


def canonical(value: Any) -> str:
    """One text per value: keys sorted, no spaces (a token binds parameters, not their spelling)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Plan:
    """What a confirmation token is bound to."""

    tool: str
    task: str
    params: Mapping[str, Any]
    devices: Sequence[str]
    identity: str

    def fields(self) -> dict[str, str]:
        """Each bound part as a digest (the parameters may hold secrets: never kept in clear)."""
        return {"tool": self.tool, "action": self.task, "parameters": _digest(canonical(self.params)),
                "devices": _digest(canonical(sorted(self.devices))), "identity": self.identity}


@dataclass
class _Issued:
    fields: dict[str, str]
    devices: tuple[str, ...]
    expires: float


class ConfirmStore:
    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self.clock = clock
        self._issued: dict[str, _Issued] = {}
        self._lock = threading.Lock()

    def issue(self, plan: Plan) -> str:
        token = secrets.token_urlsafe(24)
        now = self.clock()
        with self._lock:
            # expired tokens are dropped as new ones are issued: the store stays as small as the
            # plans of the last few minutes
            for key in [k for k, v in self._issued.items() if v.expires <= now]:
                del self._issued[key]
            self._issued[_digest(token)] = _Issued(plan.fields(), tuple(sorted(plan.devices)), now + self.ttl)
        return token

    def redeem(self, token: str, plan: Plan) -> None:
        """Use the token up; Refused unless it was issued for exactly this plan and has not expired."""
        with self._lock:
            issued = self._issued.pop(_digest(token), None)
        if issued is None:
            raise Refused("unknown or already used confirmation token: nothing was run; call again without "
                          "confirm for a new plan and token")
        if self.clock() >= issued.expires:
            raise Refused(f"the confirmation token expired (tokens are valid for {self.ttl:g}s): nothing was "
                          "run; call again without confirm for a new plan and token")
        wanted = plan.fields()
        differs = [k for k in ("tool", "action", "parameters", "devices", "identity") if issued.fields[k] != wanted[k]]
        if differs:
            detail = ""
            if "devices" in differs:
                now_set, then = set(plan.devices), set(issued.devices)
                extra, missing = sorted(now_set - then), sorted(then - now_set)
                detail = " (" + "; ".join(
                    part for part in (f"not in the plan: {', '.join(extra[:10])}" if extra else "",
                                      f"in the plan but not now: {', '.join(missing[:10])}" if missing else "")
                    if part) + ")"
            raise Refused(f"the confirmation token was issued for another {' and '.join(differs)}{detail}: "
                          "nothing was run and the token is used up; call again without confirm for a new plan")


class RateLimit:
    """At most `per_minute` changes per identity in any 60 seconds (a fleet run counts once)."""

    WINDOW = 60.0

    def __init__(self, per_minute: int, clock: Callable[[], float]) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._seen: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def take(self, identity: str) -> None:
        """Count one change for `identity`, or Refused saying when the next one is allowed."""
        now = self.clock()
        with self._lock:
            seen = self._seen.setdefault(identity, collections.deque())
            while seen and seen[0] <= now - self.WINDOW:
                seen.popleft()
            if len(seen) >= self.per_minute:
                wait = math.ceil(seen[0] + self.WINDOW - now)
                raise Refused(f"rate limit: at most {self.per_minute} changes per minute (--max-changes); "
                              f"retry in {max(wait, 1)}s")
            seen.append(now)
