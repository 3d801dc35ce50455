"""The value objects of configuration management: snapshots and the store that keeps them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

SnapshotReason = Literal["backup", "pre-apply", "pre-restore", "drift"]

#: what a snapshot holds in place of a secret's value (the key is listed in `Snapshot.secrets`)
SECRET_MARKER = "<secret: not stored>"


@dataclass(frozen=True)
class Snapshot:
    """The full configuration of one device at one time, as flat ``key -> value``.

    Values are as the device reports them (VideoOS and Poly UC: strings; Solstice: JSON values at
    the leaves of the configuration tree). A secret's value is never stored: its key maps to
    `SECRET_MARKER` and is listed in ``secrets``.
    """

    id: int
    device: str
    family: str
    #: when this configuration was first read (epoch seconds)
    taken_at: float
    #: when a later read last found exactly this configuration (dedup: no new snapshot then)
    confirmed_at: float
    #: sha256 over the canonical JSON of ``values``
    digest: str
    values: Mapping[str, Any]
    secrets: tuple[str, ...] = ()
    reason: SnapshotReason = "backup"
    #: the job that read it (None: read outside a job)
    job_id: int | None = None
    #: "file:line"-free notes for the user, e.g. keys the device did not report
    notes: tuple[str, ...] = field(default_factory=tuple)


class SnapshotStore(Protocol):
    """Versioned snapshots per device, deduplicated: saving what the device's newest snapshot
    already holds updates its ``confirmed_at`` and returns it with ``created=False``."""

    def save(self, device: str, family: str, values: Mapping[str, Any], *, secrets: Sequence[str] = (),
             reason: SnapshotReason = "backup", job_id: int | None = None, notes: Sequence[str] = (),
             now: float | None = None) -> tuple[Snapshot, bool]: ...

    def history(self, device: str, *, limit: int = 50) -> list[Snapshot]:
        """Newest first."""

    def get(self, device: str, ref: str | int) -> Snapshot:
        """By id, or ``latest`` / ``latest~N`` (N snapshots before the newest); UsageError if none."""

    def latest(self, device: str) -> Snapshot | None: ...

    def close(self) -> None: ...
