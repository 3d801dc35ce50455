"""The server process: every part of ``avctl serve`` wired together on one event loop.

    inventory file --(InventoryWatcher: change or SIGHUP)--> state rows + poll targets + metrics
    PollProcess (a child process: PollEngine) --Observation--> StateWriter (batched writes, off the loop)
        --DeviceViews--> AlertEngine (alerts and their outbox rows, one transaction) + metrics
    Dispatcher: outbox -> webhook / Slack / Teams / e-mail, with retries
    LocalJobExecutor: fleet jobs started through the API, with the CLI's runner and journal
    uvicorn: the API (avctl.server.api), HTTPS by default
    every hour: readings rolled up, old rows pruned
    DriftSchedule (``--drift-every``): a configuration drift job through the executor, on a schedule
    ScheduleLoop (``schedules: true``): the schedules' commands as child processes, their runs recorded

Every part is built inside the running loop (`ServerRuntime.run`); a failure to start any of them
(the inventory, the rules file, the database, the TLS pair, the port) stops the start with one
clear error before a device is polled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from sqlalchemy.engine import make_url

from avctl.db.journal import SqlAuditLog, SqlJobStore, open_journal_database
from avctl.db.retention import Retention, rollup_and_prune
from avctl.errors import AvctlError, UsageError
from avctl.fleet.credentials import CredentialResolver
from avctl.fleet.inventory import DeviceEntry, Inventory
from avctl.schedule.store import ScheduleStore
from avctl.server.access import sessions
from avctl.server.access.settings import AccessSettings
from avctl.server.alerts import AlertEngine, Dispatcher, RuleSet, load_rules
from avctl.server.api.app import create_app
from avctl.server.config import ServerConfig
from avctl.server.drift import DriftSchedule
from avctl.server.executor import JobSubmission
from avctl.server.heap import limit_arenas, settle, trim_every
from avctl.server.inventory_load import load_inventory_apart
from avctl.server.jobs import JobProgress, LocalJobExecutor
from avctl.server.jobs_watch import JobsWatch
from avctl.server.listening import serve_until_stopped
from avctl.server.live import ChangeFeed
from avctl.server.metrics import ServerMetrics
from avctl.server.model import DRIFT_READING, DeviceView, Observation
from avctl.server.poll import PollSettings
from avctl.server.poll.process import ChildConfig, PollProcess
from avctl.server.schedules import ScheduleLoop, schedule_clock
from avctl.server.service import fleet_views
from avctl.server.service.config import drift_readings
from avctl.server.standalone import service_context
from avctl.server.state import StateStore, StateWriter
from avctl.server.tls import ServerTLS, check_plain_http, self_signed_tls, user_tls
from avctl.server.watch import InventoryWatcher
from avctl.server.web import mount_web
from avctl.transport.tls import TLSPolicy

if TYPE_CHECKING:  # temporalio is imported only when the server runs jobs on Temporal
    from avctl.fleet.runner import RunOptions
    from avctl.server.temporal_jobs import TemporalJobExecutor

log = logging.getLogger("avctl.server")

#: every device is checked against the rules this often, so "offline for 5m" fires on time even
#: while the polls of an unreachable device back off
ALERT_SWEEP_SECONDS = 30.0
RETENTION_SECONDS = 3600.0
#: on SIGTERM, how long open requests may take to finish: an event stream or a kept-alive connection
#: whose response never completes would otherwise hold the process (and the jobs' clean stop) forever
GRACEFUL_SECONDS = 3


class LocalExecutor:
    """Jobs in this process, polling in its child process: the executor of a single-host server."""

    def __init__(self, poll: PollProcess, jobs: LocalJobExecutor | TemporalJobExecutor) -> None:
        self.poll = poll
        self.jobs = jobs
        self.engine = jobs.engine

    def check(self, devices: Sequence[DeviceEntry], options: RunOptions) -> None:
        self.jobs.check(devices, options)

    def set_poll_targets(self, devices: Sequence[DeviceEntry]) -> None:
        self.poll.set_poll_targets(devices)

    def forget_pins(self, endpoints: Sequence[tuple[str, int]]) -> None:
        self.poll.forget_pins(endpoints)

    def submit_job(self, job: JobSubmission) -> None:
        self.jobs.submit_job(job)

    def running(self) -> list[int]:
        return self.jobs.running()

    async def start(self) -> None:
        await self.jobs.start()
        await self.poll.start()

    async def stop(self) -> None:
        # jobs first: each ends interrupted with its finished outcomes kept, resumable
        await self.jobs.stop()
        await self.poll.stop()


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the runtime stops jobs and polls before the process ends
    (uvicorn's handler would re-raise SIGTERM after the API stopped, ending the process mid-cleanup)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ServerRuntime:
    def __init__(self, config: ServerConfig, *, family_min_interval: Mapping[str, float] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if not config.inventory:
            raise UsageError("avctl serve needs an inventory", hint="give -i FILE (or inventory: in --config)")
        self.config = config
        self.clock = clock
        self.inventory_path = Path(config.inventory)
        self.rules: RuleSet = load_rules(config.rules) if config.rules else RuleSet()
        self.family_min_interval = dict(family_min_interval or {})
        # a database that cannot be opened (refused, no such file, no rights) is one clear line, its
        # password hidden, before anything else starts
        self.db = open_journal_database(config.db, migrate_apart=True)
        # the CLI's journal, on the same database: jobs from both show up in one place
        self.jobs = SqlJobStore(self.db)
        self._poll_seconds: dict[str, float | None] = {}
        self._rules_reload: asyncio.Task[None] | None = None  # kept: a running reload is not collected
        self.retention = Retention(raw_seconds=config.retention.raw, events_seconds=config.retention.events)

    # -- the parts ----------------------------------------------------------------------------------

    def _build(self) -> None:
        """Everything that needs the running loop."""
        cfg = self.config
        self.resolver = CredentialResolver(base_dir=self.inventory_path.parent)
        self.device_tls = TLSPolicy.pinned()
        self.state = StateStore(self.db, clock=self.clock)
        self.alerts = AlertEngine(self.db, self.rules, clock=self.clock)
        self.dispatcher = Dispatcher(self.db, self.rules.channels, clock=self.clock, resolver=self.resolver)
        self.metrics = ServerMetrics()
        self.changes = ChangeFeed()
        self.progress = JobProgress(self.changes)
        self.writer = StateWriter(self.state, on_views=self._on_views)
        settings = PollSettings(interval=cfg.poll.interval, concurrency=cfg.poll.concurrency,
                                per_site=cfg.poll.per_site, request_timeout=cfg.poll.timeout,
                                backoff_max=cfg.poll.backoff).with_family_minimums(self.family_min_interval)
        poller = ChildConfig(settings=settings, base_dir=self.inventory_path.parent,
                             known_hosts=self.device_tls.known_hosts.path,
                             log_level=logging.getLogger().getEffectiveLevel())
        jobs = self._job_executor()
        self.executor = LocalExecutor(PollProcess(poller, sink=self._observed, on_lag=self.metrics.observe_lag), jobs)
        self.watcher = InventoryWatcher(self.inventory_path, self._on_inventory, loader=load_inventory_apart)
        self.ctx = service_context(self.db, self._inventory, self.executor, jobs=self.jobs, progress=self.progress,
                                   device_tls=self.device_tls, clock=self.clock, rules=self._rules,
                                   metrics=self.metrics, retention=self.retention, changes=self.changes,
                                   rules_file=Path(cfg.rules) if cfg.rules else None,
                                   reload_rules=self.reload_rules if cfg.rules else None, state=self.state)
        self.ctx.after_drift = self._after_drift
        self.app = create_app(self.ctx)
        mount_web(self.app)
        self.app.state.access = self.access_settings()

    def _job_executor(self) -> LocalJobExecutor | TemporalJobExecutor:
        cfg = self.config
        if cfg.engine != "temporal":
            return LocalJobExecutor(store=self.jobs, audit=self._audit, progress=self.progress,
                                    tls=self.device_tls, resolver=self.resolver)
        from avctl.fleet.store import default_db_path
        from avctl.server.temporal_jobs import TemporalJobExecutor
        from avctl.temporal.engine import TemporalTarget

        return TemporalJobExecutor(store=self.jobs, audit=self._audit, progress=self.progress,
                                   target=TemporalTarget(cfg.temporal_address, cfg.temporal_namespace),
                                   store_location=cfg.db or str(default_db_path()),
                                   schedules=ScheduleStore(self.db), store_arg=cfg.db)

    def _audit(self) -> SqlAuditLog:
        return SqlAuditLog(self.db)

    def access_settings(self) -> AccessSettings:
        """Behind a TLS reverse proxy (``public_url``), its origin is ours and cookies are Secure."""
        url = self.config.public_url
        if url is None:
            return AccessSettings()
        return AccessSettings(trusted_origins=frozenset({url}), secure_cookies=url.startswith("https://") or None)

    def _inventory(self) -> Inventory:
        assert self.watcher.inventory is not None
        return self.watcher.inventory

    def _rules(self) -> list[dict[str, Any]]:
        """The rules as the API shows them: what the file says, without the channels' secrets."""
        return [{"name": r.name, "when": r.condition.text, "severity": r.severity, "scope": str(r.scope),
                 "notify": list(r.notify), "description": r.description, "source": r.source}
                for r in self.rules.rules]

    def _on_inventory(self, inventory: Inventory) -> None:
        self.state.sync_inventory(inventory.devices)
        self.executor.set_poll_targets(inventory.devices)
        self.metrics.seed(fleet_views(self.ctx))

    async def _observed(self, observation: Observation) -> None:
        self._poll_seconds[observation.device] = observation.poll_seconds
        await self.writer(observation)

    async def _on_views(self, views: list[DeviceView]) -> None:
        for view in views:
            self.metrics.observe(view, self._poll_seconds.pop(view.name, None))
        if views:
            self.changes.publish("state")
        changes = await asyncio.to_thread(self.alerts.evaluate, views)
        if changes:
            self.changes.publish("alerts")
            await self.dispatcher.send_due()

    async def _after_drift(self, job_id: int) -> None:
        """A drift check ended: its counts become each device's config_drift reading, checked
        against the rules at once."""
        values = await asyncio.to_thread(drift_readings, self.ctx, job_id)
        if values is not None:
            await self._on_views(await asyncio.to_thread(self.state.set_derived, DRIFT_READING, values))

    async def _sweep_alerts(self) -> None:
        while True:
            await asyncio.sleep(ALERT_SWEEP_SECONDS)
            try:
                views = await asyncio.to_thread(self.state.current_views)
                if await asyncio.to_thread(self.alerts.evaluate, views, every_device=True):
                    self.changes.publish("alerts")
                    await self.dispatcher.send_due()
            except Exception as exc:  # the database may be busy: try again next sweep
                log.error("avctl serve: alert sweep failed: %s: %s", type(exc).__name__, exc)

    def _reload(self) -> None:
        """SIGHUP: the inventory (and the secrets behind it) and the rules file, read again."""
        self.watcher.reload_now()
        if self.config.rules:
            self._rules_reload = asyncio.get_running_loop().create_task(self._reload_rules(),
                                                                        name="avctl-rules-reload")

    async def _reload_rules(self) -> None:
        """The rules file read again; one with a mistake keeps the rules in force, and says why."""
        try:
            await self.reload_rules()
        except AvctlError as exc:
            log.error("avctl serve: rules not reloaded, keeping the rules loaded before: %s", exc)

    async def reload_rules(self) -> None:
        """The rules file read again and put in force (SIGHUP, the dashboard's rule editor); a file
        with a mistake raises its RulesError and changes nothing."""
        assert self.config.rules
        rules = await asyncio.to_thread(load_rules, self.config.rules)
        self.rules = rules
        self.alerts.set_rules(rules)
        self.dispatcher.set_channels(rules.channels)
        self.changes.publish("alerts")
        log.info("avctl serve: rules reloaded: %d rules, %d channels", len(rules.rules), len(rules.channels))

    # -- running ------------------------------------------------------------------------------------

    def _server_tls(self) -> ServerTLS | None:
        cfg = self.config
        if cfg.tls_cert and cfg.tls_key:
            return user_tls(cfg.tls_cert, cfg.tls_key)
        if cfg.http or cfg.insecure_http:
            check_plain_http(cfg.host, cfg.insecure_http)
            return None
        return self_signed_tls(cfg.host)

    def _uvicorn(self, tls: ServerTLS | None) -> uvicorn.Server:
        cfg = self.config
        options: dict[str, Any] = {}
        if tls is not None:
            options = {"ssl_certfile": str(tls.certfile), "ssl_keyfile": str(tls.keyfile)}
        config = uvicorn.Config(self.app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False,
                                lifespan="off", server_header=False, proxy_headers=False,
                                timeout_graceful_shutdown=GRACEFUL_SECONDS, **options)
        return _Uvicorn(config)

    async def run(self, *, ready: Callable[[str], None] | None = None) -> None:
        """Serve until SIGTERM/SIGINT; then stop jobs (resumable), polling, and close the database."""
        limit_arenas()  # before the first worker thread (asyncio.to_thread) allocates
        tls = self._server_tls()
        self._build()
        inventory = self.watcher.load_first()
        # the newest drift check's readings, as before a restart (the rules see them at the next poll)
        latest = await asyncio.to_thread(drift_readings, self.ctx)
        if latest is not None:
            await asyncio.to_thread(self.state.set_derived, DRIFT_READING, latest)
        settle()  # what exists now (modules, routes, the inventory) lives as long as the process
        server = self._uvicorn(tls)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows' loop
            loop.add_signal_handler(signal.SIGHUP, self._reload)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, server.handle_exit, sig, None)
        await self.executor.start()
        tasks = [asyncio.create_task(coro, name=name) for name, coro in (
            ("avctl-state-writer", self.writer.run()), ("avctl-inventory-watch", self.watcher.run()),
            ("avctl-notify", self.dispatcher.run()), ("avctl-alert-sweep", self._sweep_alerts()),
            ("avctl-retention", self._retention()), ("avctl-heap-trim", trim_every()),
            ("avctl-jobs-watch", JobsWatch(self.db, self.progress, self.changes, self.executor.running).run()))]
        if self.config.drift_every is not None:
            tasks.append(asyncio.create_task(DriftSchedule(self.ctx, self.config.drift_every).run(),
                                             name="avctl-config-drift"))
        if self.config.schedules:
            loop_ = ScheduleLoop(ScheduleStore(self.db), self.config.db, clock=schedule_clock())
            tasks.append(asyncio.create_task(loop_.run(), name="avctl-schedules"))
        scheme = "https" if tls else "http"
        url = f"{scheme}://{self.config.listen}"
        try:
            serving = asyncio.create_task(serve_until_stopped(server, str(self.config.listen)), name="avctl-api")
            while not server.started and not serving.done():
                await asyncio.sleep(0.05)
            if serving.done():
                serving.result()  # the port was taken, ...: raise it
                raise UsageError(f"cannot listen on {self.config.listen}")
            if ready is not None:
                ready(f"avctl serve: ready: {len(inventory)} devices from {self.inventory_path}, "
                      f"{len(self.rules.rules)} alert rules, database {self._shown_db()}")
                ready(f"avctl serve: API at {url}/api/v1"
                      + (f" (certificate {tls.fingerprint})" if tls else " (plain HTTP)"))
            await serving
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.executor.stop()
            with contextlib.suppress(Exception):
                await self.writer.flush()  # what was observed is recorded before the process ends
            await self.dispatcher.close()
            self.db.close()

    def _shown_db(self) -> str:
        shown = make_url(self.db.url).render_as_string(hide_password=True)
        return shown.replace("postgresql+psycopg://", "postgresql://", 1)

    async def _retention(self) -> None:
        while True:
            await asyncio.sleep(RETENTION_SECONDS)
            try:
                await asyncio.to_thread(rollup_and_prune, self.db, self.clock(), self.retention)
                await asyncio.to_thread(sessions.purge, self.db, self.app.state.access)
            except Exception as exc:  # a busy or full database: next hour
                log.error("avctl serve: retention pass failed: %s: %s", type(exc).__name__, exc)
