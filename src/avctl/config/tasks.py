"""Configuration work as fleet tasks: the fleet runner brings the limits, retries, journal, audit
log and one outcome per device; these tasks bring what is done on each device.

- `BackupTask`: read the full configuration, keep it as a snapshot (deduplicated).
- `PlanTask`: read the desired keys, return the differences (plan and drift).
- `ApplyTask`: read the full configuration (kept as a pre-apply snapshot), send only the
  differences, read them back; a device whose read-back differs fails, naming the keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avctl.config.desired import Desired
from avctl.config.device_config import ConfigNotApplied, CurrentConfig, compare, read_config, write_changes
from avctl.config.model import SnapshotReason, SnapshotStore
from avctl.device import Device
from avctl.families import Family, get_family
from avctl.spec import Spec


def config_support(spec: Spec) -> str | None:
    """Why a family's devices cannot take part (None: they can)."""
    family = get_family(spec.family)
    if type(family).config_reads is Family.config_reads or not spec.variables:
        return f"family {spec.family} has no configuration catalogue in its spec"
    return None


class _ConfigTask:
    """What every configuration task answers to the fleet runner."""

    mode = "config"
    params: Mapping[str, str] = {}
    name = "config"
    #: the job the task runs in (set once the job is recorded): snapshots name it
    job_id: int | None = None

    def skip_reason(self, spec: Spec) -> str | None:
        return config_support(spec)

    def secret_names(self, spec: Spec) -> set[str]:
        return set()

    def validate(self, spec: Spec) -> None:
        """Desired values were checked against the catalogue before the job (`desired_fleet`)."""

    def disruptive(self, spec: Spec) -> bool:
        return False  # `avctl config apply` asks itself, from the plan (only restart/reboot changes)

    def changes_state(self, spec: Spec) -> bool:
        return False

    async def run(self, dev: Device, *, download_to: Path | None = None, overwrite: bool = False) -> Any:
        raise NotImplementedError  # each task says what it does on a device


async def _save(store: SnapshotStore, dev: Device, current: CurrentConfig, reason: SnapshotReason,
                job_id: int | None) -> dict[str, Any]:
    # the database call blocks: off the event loop, so other devices' requests go on meanwhile
    snap, created = await asyncio.to_thread(
        store.save, dev.name, str(dev.spec.family), current.values, secrets=current.secrets, reason=reason,
        job_id=job_id, notes=current.notes)
    return {"snapshot": snap.id, "new": created, "keys": len(current.values), "secrets": len(current.secrets),
            **({"notes": current.notes} if current.notes else {})}


@dataclass
class BackupTask(_ConfigTask):
    store: SnapshotStore
    job_id: int | None = None
    name: str = "config-backup"

    async def run(self, dev: Device, *, download_to: Path | None = None, overwrite: bool = False) -> Any:
        return await _save(self.store, dev, await read_config(dev), "backup", self.job_id)


@dataclass
class PlanTask(_ConfigTask):
    """Differences between desired and current, per device (devices without desired keys are
    decided before the job: they never reach this task)."""

    desired: Mapping[str, Mapping[str, Desired]]
    name: str = "config-plan"

    async def run(self, dev: Device, *, download_to: Path | None = None, overwrite: bool = False) -> Any:
        wanted = self.desired[dev.name]
        current = await read_config(dev, list(wanted))
        return {"changes": [c.as_dict() for c in compare(wanted, current.values)],
                "checked": len(wanted), **({"notes": current.notes} if current.notes else {})}


@dataclass
class ApplyTask(_ConfigTask):
    desired: Mapping[str, Mapping[str, Desired]]
    store: SnapshotStore
    #: device -> the keys the user confirmed that need a restart or reboot; any other such key
    #: found now (the device changed since the plan) is not sent
    confirmed: Mapping[str, frozenset[str]] = field(default_factory=dict)
    job_id: int | None = None
    name: str = "config-apply"
    reason: SnapshotReason = "pre-apply"

    def changes_state(self, spec: Spec) -> bool:
        return True

    async def run(self, dev: Device, *, download_to: Path | None = None, overwrite: bool = False) -> Any:
        wanted = self.desired[dev.name]
        current = await read_config(dev)
        before = await _save(self.store, dev, current, self.reason, self.job_id)
        changes = [c for c in compare(wanted, current.values) if c.settable]
        unconfirmed = [c.key for c in changes
                       if c.applies != "live" and c.key not in self.confirmed.get(dev.name, frozenset())]
        if unconfirmed:
            raise ConfigNotApplied(f"not applied: {', '.join(unconfirmed)} would need a restart or reboot and "
                                   "changed after the plan was confirmed; nothing was sent",
                                   hint="run 'avctl config apply' again to see and confirm the new plan")
        if not changes:
            return {"applied": [], "snapshot": before["snapshot"]}
        applied = await write_changes(dev, changes, wanted)
        return {"applied": applied.keys, "snapshot": before["snapshot"],
                **({"restart_required": True} if applied.restart_required else {}),
                **({"reboot_required": True} if applied.reboot_required else {})}
