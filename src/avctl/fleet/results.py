"""The fleet's result model: one `Outcome` per device, summary counts, and a job's `JobReport`.

Every consumer reads the same objects: the job store writes outcomes as they come (a processor of
the runner, see `avctl.fleet.processors`), the CLI renders reports as a table, JSON or CSV, and
the server will serve them. ``classify`` is the one mapping from an error to an outcome status.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from avctl.errors import AvctlError, ConnectError, ConnectionDropped, DeviceTimeout, TLSError, TransportError

OutcomeStatus = Literal["ok", "failed", "unreachable", "skipped"]
STATUSES: tuple[OutcomeStatus, ...] = ("ok", "failed", "unreachable", "skipped")


@dataclass(frozen=True)
class Outcome:
    """The one final result of one device in one job."""

    device: str
    status: OutcomeStatus
    family: str | None = None
    #: error kind (avctl.errors ... .kind) for failed/unreachable, reason for skipped
    reason: str | None = None
    message: str | None = None
    data: Any = None
    attempts: int = 1
    started: float | None = None
    finished: float = field(default_factory=time.time)
    #: HTTP requests sent to the device for this outcome (logins and retries included); None: unknown
    requests: int | None = None

    @property
    def elapsed(self) -> float | None:
        return None if self.started is None else self.finished - self.started

    def as_dict(self) -> dict[str, Any]:
        return {"device": self.device, "family": self.family, "status": self.status, "reason": self.reason,
                "message": self.message, "data": self.data, "attempts": self.attempts,
                "requests": self.requests, "elapsed": None if self.elapsed is None else round(self.elapsed, 3)}


def summarize(outcomes: Iterable[Outcome]) -> dict[str, int]:
    """Counts per status, and ``total``: the ``summary`` of every report."""
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for o in outcomes:
        counts[o.status] += 1
    counts["total"] = sum(counts.values())
    return counts


@dataclass
class JobReport:
    """What a job run ends with: its outcomes in device order and their counts."""

    job_id: int
    task: str
    outcomes: list[Outcome]
    counts: dict[str, int]
    #: why outcomes or audit rows could not be recorded (the job then ended early); None: all kept
    store_error: str | None = None
    #: why a rollout stopped before its last ring (a failed gate); None: it did not stop
    stopped: str | None = None

    @classmethod
    def of(cls, job_id: int, task: str, outcomes: Iterable[Outcome], *,
           store_error: str | None = None, stopped: str | None = None) -> JobReport:
        kept = list(outcomes)
        return cls(job_id, task, kept, summarize(kept), store_error=store_error, stopped=stopped)

    @property
    def failed(self) -> bool:
        return bool(self.counts["failed"] or self.counts["unreachable"] or self.store_error or self.stopped)


def classify(error: BaseException) -> tuple[OutcomeStatus, str]:
    """(outcome status, reason kind) for an error that ended a device (or one call of it)."""
    if isinstance(error, (ConnectError, DeviceTimeout, ConnectionDropped)):
        return "unreachable", error.kind
    if isinstance(error, TransportError) and not isinstance(error, TLSError):
        return "unreachable", error.kind
    if isinstance(error, AvctlError):
        return "failed", error.kind
    if isinstance(error, TimeoutError):
        return "unreachable", "timeout"
    return "failed", type(error).__name__
