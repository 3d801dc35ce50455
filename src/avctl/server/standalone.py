"""A `ServerContext` without the poller and the web app: the service functions for another front end.

``avctl serve`` wires the context to its poll process, state store, alert engine and API
(``avctl.server.runtime``). A front end that only needs the service functions (the agent
interface, ``avctl mcp``) builds this one instead: jobs run in the calling process with the CLI's
runner and journal, device state is read from the database (``state=None``), so when a server
polls the same database, what it polled last is what the front end sees.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from avctl.db import Database
from avctl.db.journal import SqlAuditLog, SqlJobStore, open_journal_database
from avctl.fleet.credentials import CredentialResolver
from avctl.fleet.inventory import Inventory
from avctl.paths import avctl_home
from avctl.server.context import ServerContext
from avctl.server.jobs import JobProgress, LocalJobExecutor
from avctl.server.metrics import ServerMetrics
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
    jobs = SqlJobStore(database)
    progress = JobProgress()
    device_tls = TLSPolicy.pinned()

    def audit() -> SqlAuditLog:
        return SqlAuditLog(database)

    def current() -> Inventory:
        assert watcher.inventory is not None
        return watcher.inventory

    executor = LocalJobExecutor(store=jobs, audit=audit, progress=progress, tls=device_tls,
                                resolver=CredentialResolver(base_dir=path.parent))
    ctx = ServerContext(db=database, inventory=current, executor=executor, jobs=jobs, audit=audit,
                        rules=list, metrics=ServerMetrics(), progress=progress, clock=clock,
                        device_tls=device_tls, downloads=avctl_home() / "downloads")
    return Standalone(ctx, watcher, executor)
