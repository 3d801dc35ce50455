"""A fleet job before it starts: which devices it will run on, which it will skip and why.

Planned by the fleet runner itself (`FleetRunner.plan` validates the parameters for every family,
`planned_outcome` is what each device ends with before anything is sent), over the same devices
`start_job` takes, so a preview says what the run will do. Nothing is recorded or sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from avctl.fleet.inventory import DeviceEntry
from avctl.fleet.jobs import spec_provider
from avctl.fleet.results import Outcome
from avctl.fleet.runner import FleetRunner, planned_outcome
from avctl.fleet.verbs import Task
from avctl.server.context import ServerContext
from avctl.server.model import Principal
from avctl.server.service.errors import check
from avctl.server.service.jobs import job_task, run_options, selected_devices


@dataclass(frozen=True)
class PlannedDevice:
    entry: DeviceEntry
    #: the outcome it gets without being run (skipped: no such action, disabled; failed: no spec);
    #: None: it runs
    decided: Outcome | None

    @property
    def runs(self) -> bool:
        return self.decided is None


@dataclass(frozen=True)
class JobPreview:
    task: Task
    #: the selection as the job records it
    selection: str
    devices: list[PlannedDevice]
    disruptive: bool
    #: whether the principal's role may start it (a disruptive job needs act_disruptive)
    allowed: bool
    #: parameters a spec marks secret (never stored with the job)
    secret_params: frozenset[str]

    @property
    def run(self) -> list[PlannedDevice]:
        return [d for d in self.devices if d.runs]

    @property
    def skipped(self) -> list[PlannedDevice]:
        return [d for d in self.devices if not d.runs]

    def counts_by(self, key: str) -> dict[str, dict[str, int]]:
        """{family or site: {"run": n, "skip": n}}, sorted by name (no site: "")."""
        counts: dict[str, dict[str, int]] = {}
        for d in self.devices:
            value = getattr(d.entry, key) or ""
            c = counts.setdefault(value, {"run": 0, "skip": 0})
            c["run" if d.runs else "skip"] += 1
        return dict(sorted(counts.items()))


def preview_job(ctx: ServerContext, principal: Principal, *, name: str, mode: str, params: Mapping[str, Any],
                selection: str, options: Mapping[str, Any] | None = None) -> JobPreview:
    """What `start_job` with these arguments would run. Raises what it would raise before any I/O
    (ValidationError for parameters, UsageError for a selection or task nothing can run), except
    the role's refusal of a disruptive job, which `allowed` tells."""
    check(principal, "act")
    task = job_task(name, mode, params)
    chosen, devices = selected_devices(ctx, principal, selection)
    specs = spec_provider(ctx.spec_overrides)
    runner = FleetRunner(specs=specs, options=run_options(ctx, options))
    counts = runner.plan(task, devices)
    disruptive = any(c["disruptive"] and c["run"] for c in counts.values())
    return JobPreview(task=task, selection=str(chosen),
                      devices=[PlannedDevice(d, planned_outcome(task, d, specs)) for d in devices],
                      disruptive=disruptive, allowed=not disruptive or principal.can("act_disruptive"),
                      secret_params=frozenset(runner.secret_params))
