"""Where device work runs: the executor interface between the service and the devices.

The API, the rules and the store never reach a device themselves: polling and jobs go through an
`Executor`. `LocalExecutor` (``avctl.server.runtime``) polls in a child process
(``avctl.server.poll.process``) and runs jobs in the server's own process with the existing runner
(`LocalJobExecutor`) or, with ``--engine temporal``, on site workers (`TemporalJobExecutor`: sites
behind firewalls, workers connecting out), without any change above this interface.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from avctl.fleet.inventory import DeviceEntry
from avctl.fleet.runner import RunOptions
from avctl.fleet.verbs import Task
from avctl.server.model import Observation

#: where observations go (the state store, then alerts and metrics)
ObservationSink = Callable[[Observation], Awaitable[None]]


@dataclass(frozen=True)
class JobSubmission:
    """A fleet job already recorded in the job store, to run on its devices."""

    job_id: int
    task: Task
    devices: Sequence[DeviceEntry]
    options: RunOptions
    #: who started it, as the audit log names them (``web:alice``)
    user: str
    spec_overrides: dict[str, str] = field(default_factory=dict)


class Executor(Protocol):
    #: where jobs run: "local" or "temporal" (recorded with each job)
    engine: str

    def set_poll_targets(self, devices: Sequence[DeviceEntry]) -> None:
        """The devices to poll from now on (after an inventory reload: the new list)."""

    def forget_pins(self, endpoints: Sequence[tuple[str, int]]) -> None:
        """The pins of these (host, port) endpoints were replaced: check the new ones from now on."""

    def check(self, devices: Sequence[DeviceEntry], options: RunOptions) -> None:
        """Refuse (UsageError) a job this executor cannot run, before it is recorded."""

    def submit_job(self, job: JobSubmission) -> None:
        """Start running a recorded job in the background; outcomes go to the job store."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
