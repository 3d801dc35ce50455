"""What the service functions and the API work with: one `ServerContext` per server process."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avctl.db import Database
from avctl.db.retention import Retention
from avctl.fleet.audit import AuditSink
from avctl.fleet.inventory import Inventory
from avctl.fleet.runner import RunOptions
from avctl.fleet.store import JobStore
from avctl.server.executor import Executor
from avctl.server.jobs import JobProgress
from avctl.server.live import ChangeFeed
from avctl.server.metrics import ServerMetrics
from avctl.server.state import StateStore
from avctl.transport.tls import TLSPolicy


@dataclass
class DriftStatus:
    """What the server knows of its configuration drift checks beyond the journal (in memory)."""

    #: why the last check did not start: the desired state's problems (file:line each); None once
    #: a check started
    error: str | None = None
    error_at: float | None = None
    #: the last check this server started
    last_job: int | None = None
    #: tasks waiting for a check to end (kept: a running task is not collected)
    followers: set[Any] = field(default_factory=set)


@dataclass
class ServerContext:
    db: Database
    #: the current inventory (the lead's reloader swaps what it returns)
    inventory: Callable[[], Inventory]
    executor: Executor
    jobs: JobStore
    #: opens the audit log (the caller closes it)
    audit: Callable[[], AuditSink]
    #: the alert rules, as plain dicts (what the rules file says, secrets left out)
    rules: Callable[[], list[dict[str, Any]]]
    metrics: ServerMetrics
    #: where the executor publishes each job's outcomes and its end (`LocalJobExecutor` does):
    #: event streams and `run_action` wait on it
    progress: JobProgress
    clock: Callable[[], float] = time.time
    #: family -> spec file, over the builtin specs (as `avctl fleet --spec`)
    spec_overrides: Mapping[str, str] = field(default_factory=dict)
    #: run options of jobs started through the API (a request may lower or tune a few of them)
    run_options: RunOptions = field(default_factory=RunOptions)
    #: where downloads of API-started jobs go (one folder per device); never chosen by a request
    downloads: Path = field(default_factory=lambda: Path("downloads"))
    #: how long `run_action` waits for its device before answering 202 with the job to follow
    action_wait: float = 120.0
    #: how long readings are kept raw and as rollups (history answers from what is kept)
    retention: Retention = field(default_factory=Retention)
    #: what live pages listen to: published when device state, alerts or jobs change
    changes: ChangeFeed = field(default_factory=ChangeFeed)
    #: the certificate pins the poller and the jobs check devices against (re-pinning goes through
    #: it, so the running server checks the new pin at once)
    device_tls: TLSPolicy = field(default_factory=TLSPolicy.pinned)
    #: the rules file the server was started with (None: it runs without alert rules)
    rules_file: Path | None = None
    #: reads the rules file again and puts its rules in force (AvctlError, rules unchanged, if it has a
    #: mistake); runs on the server's event loop. None without a rules file
    reload_rules: Callable[[], Awaitable[None]] | None = None
    #: the server's state store: device state is read from its memory (None: from the database)
    state: StateStore | None = None
    #: the configuration drift checks' refusals and the last one started (``service.config``)
    drift: DriftStatus = field(default_factory=DriftStatus)
    #: told a drift check's job id once it ends (the runtime turns it into the config_drift reading)
    after_drift: Callable[[int], Awaitable[None]] | None = None
