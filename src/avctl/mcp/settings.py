"""What the operator allowed when starting ``avctl mcp``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: a confirmation token is good for this long by default (--confirm-ttl)
CONFIRM_TTL = 120.0
#: changes per minute per identity by default (--max-changes)
MAX_CHANGES = 10


@dataclass(frozen=True)
class McpSettings:
    #: non-disruptive changes allowed (--allow-actions); reads always are
    allow_actions: bool = False
    #: disruptive actions allowed too (--allow-disruptive, implies allow_actions)
    allow_disruptive: bool = False
    confirm_ttl: float = CONFIRM_TTL
    max_changes: int = MAX_CHANGES
    clock: Callable[[], float] = field(default=time.monotonic)

    def __post_init__(self) -> None:
        if self.allow_disruptive and not self.allow_actions:
            object.__setattr__(self, "allow_actions", True)

    @property
    def mode(self) -> str:
        """How the server's mode reads in its instructions and logs."""
        if self.allow_disruptive:
            return "changes allowed, disruptive ones included (each confirmed)"
        return "non-disruptive changes allowed" if self.allow_actions else "read-only"
