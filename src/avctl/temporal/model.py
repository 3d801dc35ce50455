"""What crosses Temporal: workflow and activity inputs and results, as plain dataclasses.

Temporal stores every one of these in its history, so they carry only what a site needs to run
its devices and what the control plane needs to record them: device names, addresses and
password *references* (``env:SITE_PW``, ``secret:room-12``), never a password; outcome and audit
rows already redacted by the runner. The workflow sandbox imports this module, so it imports
nothing of avctl.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

#: the task queue of a site's workers
SITE_QUEUE_PREFIX = "site."
#: activity and workflow names (the workflows name activities by string: no avctl import in the sandbox)
RUN_DEVICES = "avctl.run_devices"
RECORD_BATCH = "avctl.record_batch"
FINISH_JOB = "avctl.finish_job"
FLEET_JOB = "avctl.fleet_job"
SITE_JOB = "avctl.site_job"
SCHEDULED_RUN = "avctl.scheduled_run"
RUN_SCHEDULED = "avctl.run_scheduled"
WINDOW_TIMES = "avctl.window_times"
FALLBACK_REPORT = "avctl.fallback_report"
RECORD_FALLBACK = "avctl.record_fallback"
#: errors an activity raises that no retry can mend (a rejected login, a bad task, a missing secret)
NON_RETRYABLE = ["AuthenticationError", "UsageError", "ValidationError", "CredentialProblems", "SiteMismatch"]
#: the skip reason of devices whose site's worker did not take them before the site deadline
SITE_UNREACHABLE = "site_unreachable"


def site_queue(site: str) -> str:
    return SITE_QUEUE_PREFIX + site


@dataclass(frozen=True)
class TaskData:
    """A fleet task (``avctl.fleet.verbs.make_task``): action or verb name, parameters, mode."""

    name: str
    mode: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceData:
    """One inventory device as a site needs it (``avctl.fleet.inventory.DeviceEntry``)."""

    name: str
    family: str
    host: str
    port: int | None = None
    address_scheme: str | None = None
    site: str | None = None
    room: str | None = None
    user: str | None = None
    #: a reference resolved at the site; plain-text passwords are refused before the job starts
    password: str | None = None
    scheme: str | None = None
    disabled: bool = False
    ports: dict[str, int] = field(default_factory=dict)
    schemes: dict[str, str] = field(default_factory=dict)
    allow_cleartext: bool = False
    timezone: str | None = None
    #: a configuration job's part for this device: its desired keys (and the confirmed ones)
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobRef:
    """Which job of which control plane: the store's job id and where its records go."""

    job_id: int
    #: the task queue of the control plane that owns the job's store
    control_queue: str
    #: who started it, as the audit log names them (``web:alice``, the OS user)
    user: str
    #: when the job started (seconds since the epoch): a reboot is verified against it
    started: float


@dataclass(frozen=True)
class Limits:
    """How the workflow hands out work: batch sizes, deadlines, heartbeats (seconds)."""

    batch_size: int = 25
    #: batches of one site running at once (each batch runs its devices concurrently)
    parallel_batches: int = 4
    #: how long a site's devices wait for a worker of that site; None: as long as it takes
    site_deadline: float | None = None
    #: a batch that sends no heartbeat for this long is taken to have died and is run again
    heartbeat: float = 30.0
    #: the longest one batch may run, retries included
    batch_timeout: float = 6 * 3600.0


def pack(devices: Sequence[DeviceData]) -> str:
    """Devices as one compact JSON text (what is a default left out). Workflows carry devices only as
    such texts, never decoded:
    Temporal's converter turns a dataclass a field at a time (~0.2 ms a device), so a 10,000-device
    job as dataclasses kept its first workflow task past the SDK's 2 s deadlock limit."""
    out = []
    for d in devices:
        doc: dict[str, Any] = {"name": d.name, "family": d.family, "host": d.host}
        for f in fields(DeviceData):
            value = getattr(d, f.name)
            if f.name not in doc and value not in (None, False, {}, ""):
                doc[f.name] = value
        out.append(doc)
    return json.dumps(out, separators=(",", ":"), sort_keys=True)


def unpack(text: str) -> list[DeviceData]:
    return [DeviceData(**doc) for doc in json.loads(text)]


def members(text: str) -> list[tuple[str, str]]:
    """(name, family) of packed devices: what a workflow needs for an outcome it decides itself."""
    return [(str(doc["name"]), str(doc["family"])) for doc in json.loads(text)]


@dataclass(frozen=True)
class SiteDevices:
    site: str
    #: the site's devices in batches, each packed (`pack`)
    batches: list[str]
    count: int = 0


@dataclass(frozen=True)
class WindowData:
    """A site's maintenance window (``Mon-Fri 01:00-04:00``) in its IANA zone."""

    timezone: str
    window: str


@dataclass(frozen=True)
class Ring:
    """One rollout ring: its devices by site (a job without rings has one ring, named "")."""

    name: str
    sites: list[SiteDevices]


@dataclass(frozen=True)
class Rollout:
    """Rings in order, the gate each must pass (share of ok among those that ran) and the soak time
    after each (seconds, a durable timer); devices in no ring end skipped (``no_ring``)."""

    rings: list[Ring]
    gate: float | None = None
    soak: float = 0.0
    #: packed (`pack`)
    outside: str = "[]"


@dataclass(frozen=True)
class ScheduleRef:
    """The schedule run a job was started for (its command ran with ``AVCTL_SCHEDULE_RUN``)."""

    name: str
    zone: str
    cron: str
    #: the due instant (seconds since the epoch)
    due: float
    #: its sites' workers run it themselves while they cannot reach Temporal
    site_critical: bool = False


@dataclass(frozen=True)
class JobInput:
    job: JobRef
    task: TaskData
    #: ``avctl.fleet.runner.RunOptions.as_dict()`` without what the workflow itself does
    options: dict[str, Any]
    rollout: Rollout
    limits: Limits = field(default_factory=Limits)
    #: with ``--in-window``: each site's window; its devices start only while it is open
    windows: dict[str, WindowData] = field(default_factory=dict)
    schedule: ScheduleRef | None = None
    #: ``--spec FAMILY=FILE``: family -> the spec's text (the sites load it instead of their built-in one)
    specs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SiteInput:
    job: JobRef
    task: TaskData
    options: dict[str, Any]
    site: str
    #: packed batches (`pack`)
    batches: list[str]
    limits: Limits = field(default_factory=Limits)
    window: WindowData | None = None
    schedule: ScheduleRef | None = None
    specs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WindowQuery:
    window: WindowData
    #: seconds since the epoch
    now: float


@dataclass(frozen=True)
class WindowTimes:
    """The window open at ``now`` or the next one: when it opens and closes (seconds since the epoch)."""

    opens: float
    closes: float
    #: when it closes, in the site's local time (for the skip message)
    closes_local: str = ""


@dataclass(frozen=True)
class BatchInput:
    job: JobRef
    task: TaskData
    options: dict[str, Any]
    site: str
    #: packed (`pack`): decoded by the site's activity
    devices: str
    schedule: ScheduleRef | None = None
    specs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditData:
    """One state-changing call, as the audit log records it (parameters already masked)."""

    action: str
    params: dict[str, Any]
    outcome: str
    error_kind: str | None = None
    message: str | None = None
    address: str | None = None
    family: str | None = None
    ts: float | None = None


@dataclass(frozen=True)
class DeviceResult:
    """A device's one outcome (``avctl.fleet.results.Outcome`` fields) and its audit rows in order."""

    outcome: dict[str, Any]
    audit: list[AuditData] = field(default_factory=list)


@dataclass(frozen=True)
class BatchResult:
    site: str
    results: list[DeviceResult]
    #: the site worker that ran it, and how many times Temporal started the batch
    worker: str = ""
    attempt: int = 1


@dataclass(frozen=True)
class RecordInput:
    job: JobRef
    batch: BatchResult


@dataclass(frozen=True)
class JobSummary:
    job_id: int
    counts: dict[str, int]
    sites: dict[str, dict[str, int]]


@dataclass(frozen=True)
class ScheduledRun:
    """What a Temporal Schedule starts at each due time: one avctl schedule in one time zone."""

    schedule: str
    zone: str
    #: the sites of the zone (None: the schedule's selection spans one zone only)
    sites: list[str | None] | None
    control_queue: str


@dataclass(frozen=True)
class ScheduledRunInput:
    schedule: str
    zone: str
    sites: list[str | None] | None
    #: the due instant (seconds since the epoch) Temporal fired for
    due: float


@dataclass(frozen=True)
class FallbackReport:
    """What a site ran on its own for a site-critical schedule while it could not reach Temporal."""

    site: str
    schedule: str
    zone: str
    due: float
    task: TaskData
    results: list[DeviceResult]
    #: the schedule queue of the control plane whose schedule it is
    queue: str
