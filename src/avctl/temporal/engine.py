"""The Temporal engine: connect, build a job's workflow input, run it, run workers.

``--engine temporal`` (CLI), ``avctl serve --engine temporal`` and ``avctl worker`` all come
through here. The control plane resolves the selection and records the job as ``--engine local``
does; then ``run_job`` starts the job's workflow and serves the store's control queue until the
workflow ends, so outcomes are written as each batch of each site finishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import os
import signal
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.runtime import LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError, TLSConfig
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from avctl.config.model import SnapshotStore
from avctl.errors import AvctlError, UsageError
from avctl.fleet.audit import AuditSink
from avctl.fleet.inventory import DeviceEntry
from avctl.fleet.results import JobReport
from avctl.fleet.runner import RunOptions, ring_of
from avctl.fleet.store import Job, JobStore
from avctl.fleet.verbs import Task
from avctl.schedule.store import ScheduleStore
from avctl.temporal.codec import data_converter
from avctl.temporal.config_jobs import wire
from avctl.temporal.control import ControlActivities, FinishListener, OutcomeListener, control_queue
from avctl.temporal.model import (
    DeviceData,
    JobInput,
    JobRef,
    JobSummary,
    Limits,
    Ring,
    Rollout,
    ScheduleRef,
    SiteDevices,
    WindowData,
    pack,
    site_queue,
)
from avctl.temporal.site import SiteActivities
from avctl.temporal.workflows import FallbackReportWorkflow, FleetJobWorkflow, ScheduledRunWorkflow, SiteJobWorkflow

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "127.0.0.1:7233"
DEFAULT_NAMESPACE = "default"
#: the site of devices the inventory gives none: served by ``avctl worker --site default``
NO_SITE = "default"
#: run options the workflow itself carries out (durable timers); the sites get the rest
_WORKFLOW_ONLY = ("in_window", "rings", "gate", "soak")


class EngineError(AvctlError):
    """Temporal cannot be reached or refused the job."""

    kind = "engine"


@dataclass(frozen=True)
class TemporalTarget:
    address: str = DEFAULT_ADDRESS
    namespace: str = DEFAULT_NAMESPACE


def store_identity(location: str) -> str:
    """The store's location without a password (a URL's), for naming its control queue."""
    if "://" not in location:
        return str(Path(location).expanduser().resolve())
    parts = urlsplit(location)
    host = parts.hostname or ""
    netloc = (f"{parts.username}@" if parts.username else "") + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


#: a stopped worker (SIGTERM) lets the batches in hand finish this long before they are cancelled (and
#: given to another worker of the site, which skips what the journal says finished)
GRACEFUL = timedelta(seconds=60)
#: a client was made in this process (the CLI then ends it without interpreter teardown: avctl.cli.main)
CONNECTED = False


#: TLS to Temporal (production): a CA file (PEM) turns it on; a client certificate and key add mTLS
TLS_CA_ENV, TLS_CERT_ENV, TLS_KEY_ENV = "AVCTL_TEMPORAL_CA", "AVCTL_TEMPORAL_CERT", "AVCTL_TEMPORAL_KEY"
#: "1": TLS with the system's CAs; PLAINTEXT_ENV "1": plain gRPC to a non-loopback address, by name
TLS_ENV, PLAINTEXT_ENV = "AVCTL_TEMPORAL_TLS", "AVCTL_TEMPORAL_PLAINTEXT"


def tls_config(address: str, environ: Mapping[str, str] | None = None) -> TLSConfig | bool:
    """How to reach Temporal: TLS from the environment, plain gRPC on loopback; plain gRPC to another
    host only when asked for by name (device addresses, outcomes and audit rows cross that link)."""
    env = os.environ if environ is None else environ

    def read(name: str) -> bytes | None:
        path = env.get(name)
        if not path:
            return None
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise UsageError(f"{name}={path}: cannot read it: {exc.strerror or exc}") from None

    ca, cert, key = read(TLS_CA_ENV), read(TLS_CERT_ENV), read(TLS_KEY_ENV)
    if (cert is None) != (key is None):
        raise UsageError(f"{TLS_CERT_ENV} and {TLS_KEY_ENV} go together (mTLS)", hint="give both, or neither")
    if ca is not None or cert is not None or env.get(TLS_ENV) == "1":
        return TLSConfig(server_root_ca_cert=ca, client_cert=cert, client_private_key=key)
    host = address.rpartition(":")[0].strip("[]") or address
    if _loopback(host) or env.get(PLAINTEXT_ENV) == "1":
        return False
    raise UsageError(f"Temporal at {address} would be reached over plain gRPC (device addresses, outcomes and "
                     "audit rows would cross the network in clear)",
                     hint=f"set {TLS_CA_ENV}=ca.pem (and {TLS_CERT_ENV}/{TLS_KEY_ENV} for mTLS) or {TLS_ENV}=1; "
                          f"{PLAINTEXT_ENV}=1 accepts plain gRPC")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_RUNTIME: Runtime | None = None


def runtime() -> Runtime:
    """The SDK's runtime with its Rust core's log lines sent to Python's logging (stderr): by
    default they go to stdout, in front of a command's ``--json`` report."""
    global _RUNTIME
    if _RUNTIME is None:
        forward = LogForwardingConfig(logger=logging.getLogger("temporalio.core"))
        _RUNTIME = Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(
            filter=TelemetryFilter(core_level="WARN", other_level="ERROR"), forwarding=forward)))
    return _RUNTIME


async def connect(target: TemporalTarget) -> Client:
    global CONNECTED
    tls = tls_config(target.address)
    CONNECTED = True
    try:
        return await Client.connect(target.address, namespace=target.namespace, data_converter=data_converter(),
                                    tls=tls, runtime=runtime())
    except (RuntimeError, RPCError) as exc:
        raise EngineError(f"cannot reach Temporal at {target.address}: {exc}",
                          hint="start it (temporal server start-dev, or your deployment) or give "
                               "--temporal HOST:PORT") from None


async def check_reachable(target: TemporalTarget) -> None:
    """EngineError unless Temporal answers (a health check of its frontend)."""
    client = await connect(target)
    try:
        await client.service_client.check_health()
    except (RuntimeError, RPCError) as exc:
        raise EngineError(f"Temporal at {target.address} does not answer: {exc}") from None


def device_data(devices: Sequence[DeviceEntry]) -> list[DeviceData]:
    """The devices as a site gets them. A plain-text password would travel through Temporal's
    history to the site: refused, naming the devices (use a reference the site resolves)."""
    plain = [d.name for d in devices if d.password_ref is not None and d.password_ref.is_plaintext]
    unset = [d.name for d in devices if d.password is None and not d.disabled]
    if unset:
        named = ", ".join(unset[:5]) + (f" and {len(unset) - 5} more" if len(unset) > 5 else "")
        raise UsageError(f"device(s) {named} have no password reference in the inventory",
                         hint="give password: env:NAME, file:PATH or secret:NAME (resolved at the site)")
    if plain:
        named = ", ".join(plain[:5]) + (f" and {len(plain) - 5} more" if len(plain) > 5 else "")
        raise UsageError(f"--engine temporal: device(s) {named} have a plain-text password in the inventory, "
                         "which would travel to the site worker",
                         hint="give a reference the site worker resolves: env:NAME, file:PATH, secret:NAME")
    return [DeviceData(name=d.name, family=d.family, host=d.address.host, port=d.address.port,
                       address_scheme=d.address.scheme, site=d.site, room=d.room, user=d.user,
                       password=d.password, scheme=d.scheme, disabled=d.disabled, ports=dict(d.ports),
                       schemes=dict(d.schemes), allow_cleartext=d.allow_cleartext, timezone=d.timezone)
            for d in devices]


def _by_site(devices: Sequence[DeviceData], size: int) -> list[SiteDevices]:
    """The devices by site, each site's in packed batches of ``size`` (made here, once: the
    workflows only pass them on)."""
    by_site: dict[str, list[DeviceData]] = {}
    for d in devices:
        by_site.setdefault(d.site or NO_SITE, []).append(d)
    size = max(1, size)
    return [SiteDevices(site, [pack(ds[i:i + size]) for i in range(0, len(ds), size)], len(ds))
            for site, ds in by_site.items()]


def spec_texts(overrides: Mapping[str, str]) -> dict[str, str]:
    """``--spec FAMILY=FILE`` as the sites get it: each file's text (read here, loaded there)."""
    out = {}
    for family, path in overrides.items():
        try:
            out[family] = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--spec {family}={path}: cannot read it: {exc}") from None
    return out


def job_input(job: Job, task: Task, devices: Sequence[DeviceEntry], options: RunOptions, *, queue: str,
              limits: Limits, schedule: ScheduleRef | None = None,
              spec_overrides: Mapping[str, str] | None = None) -> JobInput:
    """The workflow's input: the selection resolved here, by ring and site; the rings, gate, soak and
    windows for the workflow; the rest of the options for the sites."""
    task_data, parts = wire(task)
    data = {d.name: dataclasses.replace(d, config=parts[d.name]) if d.name in parts else d
            for d in device_data(devices)}
    size = limits.batch_size
    if options.rings:
        by_ring = ring_of(devices, options.rings)
        rings = [Ring(name, _by_site([data[d.name] for d in ring], size)) for name, ring in by_ring.items()]
        ringed = {d.name for ring in by_ring.values() for d in ring}
        outside = [data[d.name] for d in devices if d.name not in ringed]
    else:
        rings, outside = [Ring("", _by_site(list(data.values()), size))], []
    windows = ({d.site or NO_SITE: WindowData(d.timezone, str(d.window)) for d in devices
                if d.window is not None and d.timezone is not None} if options.in_window else {})
    run = {k: v for k, v in options.as_dict().items() if k not in _WORKFLOW_ONLY}
    run["ports"], run["schemes"] = dict(options.ports), dict(options.schemes)
    return JobInput(job=JobRef(job.id, queue, job.user, job.created),
                    task=task_data, options=run,
                    rollout=Rollout(rings, options.gate, options.soak, pack(outside)), limits=limits, windows=windows,
                    schedule=schedule, specs=spec_texts(spec_overrides or {}))


def workflow_id(queue: str, job_id: int) -> str:
    return f"{queue}.job-{job_id}"


def workflow_runner() -> SandboxedWorkflowRunner:
    # the workflows import only avctl.temporal.model (dataclasses): passed through, not re-imported
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules("avctl"))


def control_worker(client: Client, queue: str, store: JobStore, audit: AuditSink, *,
                   on_outcome: OutcomeListener | None = None, on_finish: FinishListener | None = None,
                   snapshots: SnapshotStore | None = None) -> Worker:
    """The worker of a store's control queue: the job workflows and the activities that write the
    store (and the snapshot store, for configuration jobs)."""
    control = ControlActivities(store, audit, on_outcome=on_outcome, on_finish=on_finish, snapshots=snapshots)
    return Worker(client, task_queue=queue, workflows=[FleetJobWorkflow, SiteJobWorkflow],
                  activities=[control.record_batch, control.finish_job, control.window_times],
                  workflow_runner=workflow_runner())


def schedule_worker(client: Client, queue: str, store: JobStore, audit: AuditSink, schedules: ScheduleStore,
                    store_arg: str | None) -> Worker:
    """The worker of a store's scheduled runs (long-lived control planes only): each due time of a
    Temporal Schedule runs its command here, recorded in ``schedules``."""
    from avctl.temporal.schedules import schedule_queue

    control = ControlActivities(store, audit, schedules=schedules, store_arg=store_arg)
    return Worker(client, task_queue=schedule_queue(queue), workflows=[ScheduledRunWorkflow, FallbackReportWorkflow],
                  activities=[control.run_scheduled, control.record_fallback], workflow_runner=workflow_runner())


def site_worker(client: Client, activities: SiteActivities, *, max_batches: int = 4) -> Worker:
    """A site's worker: only the device activities, on the site's queue (``site.NAME``)."""
    return Worker(client, task_queue=site_queue(activities.site), activities=[activities.run_devices],
                  max_concurrent_activities=max_batches, graceful_shutdown_timeout=GRACEFUL)


async def start_job(client: Client, job: Job, task: Task, devices: Sequence[DeviceEntry], options: RunOptions,
                    *, queue: str, limits: Limits, schedule: ScheduleRef | None = None,
                    spec_overrides: Mapping[str, str] | None = None) -> WorkflowHandle[Any, JobSummary]:
    inp = job_input(job, task, devices, options, queue=queue, limits=limits, schedule=schedule,
                    spec_overrides=spec_overrides)
    try:
        return await client.start_workflow(FleetJobWorkflow.run, inp, id=workflow_id(queue, job.id),
                                           task_queue=queue)
    except RPCError as exc:
        raise EngineError(f"Temporal refused job {job.id}: {exc}") from None


async def run_job(target: TemporalTarget, store: JobStore, audit: AuditSink, store_location: str, job: Job,
                  task: Task, devices: Sequence[DeviceEntry], options: RunOptions, *, limits: Limits | None = None,
                  on_outcome: OutcomeListener | None = None,
                  on_started: Callable[[str], None] | None = None, schedule: ScheduleRef | None = None,
                  snapshots: SnapshotStore | None = None, spec_overrides: Mapping[str, str] | None = None) -> JobReport:
    """Run a recorded job on Temporal and wait for it; the report from the store. ``schedule``: the
    schedule run it was started for (a site-critical one is kept by the sites for a WAN outage)."""
    queue = control_queue(store_identity(store_location))
    client = await connect(target)
    async with control_worker(client, queue, store, audit, on_outcome=on_outcome, snapshots=snapshots):
        handle = await start_job(client, job, task, devices, options, queue=queue, limits=limits or Limits(),
                                 schedule=schedule, spec_overrides=spec_overrides)
        if on_started is not None:
            on_started(handle.id)
        try:
            await handle.result()
        except WorkflowFailureError as exc:
            raise EngineError(f"job {job.id}: its workflow {handle.id} failed: {exc.cause or exc}") from None
    return JobReport.of(job.id, task.name, store.outcomes(job.id))


async def serve_workers(workers: Sequence[Worker]) -> None:
    """Run workers until cancelled or one of them stops."""
    await asyncio.gather(*(w.run() for w in workers))


async def serve(workers: Sequence[Worker], *, also: Sequence[Coroutine[Any, Any, None]] = ()) -> None:
    """Run workers (and ``also``: a site's fallback loop) until SIGINT or SIGTERM; then let the
    activities in hand finish (graceful)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    runs = [asyncio.create_task(w.run()) for w in workers]
    extra = [asyncio.create_task(c) for c in also]
    waiting = asyncio.create_task(stop.wait())
    await asyncio.wait([*runs, *extra, waiting], return_when=asyncio.FIRST_COMPLETED)
    for task in extra:
        task.cancel()
    for w in workers:
        await w.shutdown()
    for task in runs:
        if task.done() and task.exception() is not None:
            raise EngineError(f"a worker stopped: {task.exception()}")
    waiting.cancel()


def schedule_ref(store_arg: str | None, run_id: int | None) -> ScheduleRef | None:
    """The Temporal schedule run a command runs for (``AVCTL_SCHEDULE_RUN``), or None."""
    if run_id is None:
        return None
    from avctl.schedule.store import open_schedule_store

    with contextlib.closing(open_schedule_store(store_arg)) as schedules:
        run = schedules.get_run(run_id)
        schedule = schedules.by_id(run.schedule_id) if run is not None else None
    if run is None or schedule is None or schedule.engine != "temporal":
        return None
    return ScheduleRef(schedule.name, run.zone, schedule.cron, run.due, schedule.site_critical)
