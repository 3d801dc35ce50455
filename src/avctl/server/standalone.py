"""The service context for any front end, and one without the poller and the web app.

`service_context` is what every front end's service functions run on (the journal, the audit log,
where downloads go); ``avctl serve`` (``avctl.server.runtime``) adds its state store, alert rules
and change feed to it. `standalone_context` is for a front end that only needs the service
functions (the agent interface, ``avctl mcp``): jobs run in the calling process with the CLI's
runner and journal, device state is read from the database (``state=None``), so when a server
polls the same database, what it polled last is what the front end sees.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avctl.db import Database
from avctl.db.journal import SqlAuditLog, SqlJobStore, open_journal_database
from avctl.db.retention import Retention
from avctl.fleet.credentials import CredentialResolver
from avctl.fleet.inventory import Inventory
from avctl.fleet.store import JobStore
from avctl.paths import avctl_home
from avctl.server.context import ServerContext
from avctl.server.executor import Executor
from avctl.server.jobs import JobProgress, LocalJobExecutor
from avctl.server.live import ChangeFeed
from avctl.server.metrics import ServerMetrics
from avctl.server.state import StateStore
from avctl.server.watch import InventoryWatcher
from avctl.transport.tls import TLSPolicy


@dataclass
class Standalone:
    """The context and what keeps it current: run ``watcher.run()`` to follow inventory changes."""

    ctx: ServerContext
    watcher: InventoryWatcher
    executor: LocalJobExecutor

    def close(self) -> None:
        self.ctx.db.close()


def service_context(db: Database, inventory: Callable[[], Inventory], executor: Executor, *,
                    jobs: JobStore, progress: JobProgress, device_tls: TLSPolicy, clock: Callable[[], float],
                    rules: Callable[[], list[dict[str, Any]]] = list, metrics: ServerMetrics | None = None,
                    retention: Retention | None = None, changes: ChangeFeed | None = None,
                    rules_file: Path | None = None, reload_rules: Callable[[], Awaitable[None]] | None = None,
                    state: StateStore | None = None) -> ServerContext:
    """The context the service functions run on, for any front end: the journal and the audit log in
    `db`, downloads of jobs under ``$AVCTL_HOME/downloads``. ``avctl serve`` adds its state store,
    rules, retention and change feed."""

    def audit() -> SqlAuditLog:
        return SqlAuditLog(db)

    return ServerContext(db=db, inventory=inventory, executor=executor, jobs=jobs, audit=audit, rules=rules,
                         metrics=metrics or ServerMetrics(), progress=progress, clock=clock, device_tls=device_tls,
                         downloads=avctl_home() / "downloads", retention=retention or Retention(),
                         changes=changes or ChangeFeed(), rules_file=rules_file, reload_rules=reload_rules,
                         state=state)


def standalone_context(inventory: str | Path, db: str | None, *,
                       clock: Callable[[], float] = time.time) -> Standalone:
    """Open the database (migrated) and load the inventory: one clear error for either before
    anything else starts. Must be called inside the running event loop (the job executor's)."""
    path = Path(inventory)
    database: Database = open_journal_database(db)
    try:
        watcher = InventoryWatcher(path, lambda _inv: None)
        watcher.load_first()
    except BaseException:
        database.close()
        raise
    progress = JobProgress()
    device_tls = TLSPolicy.pinned()

    def current() -> Inventory:
        assert watcher.inventory is not None
        return watcher.inventory

    jobs = SqlJobStore(database)
    executor = LocalJobExecutor(store=jobs, audit=lambda: SqlAuditLog(database), progress=progress,
                                tls=device_tls, resolver=CredentialResolver(base_dir=path.parent))
    ctx = service_context(database, current, executor, jobs=jobs, progress=progress, device_tls=device_tls,
                          clock=clock)
    return Standalone(ctx, watcher, executor)
