"""Jobs run by other processes, live on the server's pages.

The server's own jobs publish each outcome as it is stored (`avctl.server.jobs`). A job another
process runs on the same database (``avctl fleet ... --db``, ``avctl jobs resume``) only changes
the database, so `JobsWatch` reads a small change marker of the job tables every few seconds and
publishes what moved: "jobs" on the ChangeFeed (the jobs list), a progress event to the job's
subscribers (its page, the API's stream) when its outcome count moved, and ``done`` when it left
the running state.

The marker is one query over the jobs that are running (or were at the last look) and the newest
job: each job's outcomes are counted through the outcomes' primary key (job_id, device), never by
reading the outcomes table through. Jobs this server runs itself are left out (they publish
their own progress, and twice would mean two refreshes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, or_, select

from avctl.db.engine import Database
from avctl.db.journal import JOBS, OUTCOMES, SqlJobStore, db_errors
from avctl.server.jobs import JobProgress, done_event
from avctl.server.live import ChangeFeed

log = logging.getLogger(__name__)

#: how often the database is looked at: a CLI job's page lags its outcomes by at most this
WATCH_SECONDS = 2.0


@dataclass(frozen=True)
class JobMark:
    state: str
    outcomes: int


@dataclass(frozen=True)
class Marker:
    """The newest job's id, and each watched job's state and outcome count."""

    newest: int
    jobs: Mapping[int, JobMark]

    def running(self) -> set[int]:
        return {i for i, m in self.jobs.items() if m.state == "running"}


def marker_query(watched: Collection[int]) -> Select[Any]:
    """Id, state and outcome count of the running jobs, the `watched` ones (running at the last
    look) and the newest job."""
    j = JOBS.c
    newest = select(func.max(j.id)).scalar_subquery()
    count = select(func.count()).where(OUTCOMES.c.job_id == j.id).scalar_subquery()
    return select(j.id, j.state, count).where(or_(j.state == "running", j.id == newest, j.id.in_(list(watched))))


def read_marker(db: Database, watched: Collection[int]) -> Marker:
    with db_errors(db, "read"), db.engine.connect() as conn:
        rows = conn.execute(marker_query(watched)).all()
    jobs = {int(i): JobMark(str(state), int(n)) for i, state, n in rows}
    return Marker(max(jobs, default=0), jobs)


class JobsWatch:
    """Tells the pages of jobs other processes run. `step` looks once; `run` looks every `interval`."""

    def __init__(self, db: Database, progress: JobProgress, changes: ChangeFeed,
                 local: Callable[[], Collection[int]] = tuple, *, interval: float = WATCH_SECONDS,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        self.db = db
        self.store = SqlJobStore(db)
        self.progress = progress
        self.changes = changes
        self.local = local
        self.interval = interval
        self.sleep = sleep
        self.last: Marker | None = None
        #: jobs seen run by this server: still its own once it has finished (it said so itself)
        self.mine: set[int] = set()

    async def step(self) -> bool:
        """Look at the database once and publish what moved since the last look; whether anything did.
        The first look only takes the marker (the pages were rendered from the database)."""
        before = self.last
        watched = before.running() if before is not None else set()
        self.mine |= set(self.local())
        now = await asyncio.to_thread(read_marker, self.db, watched)
        self.last = now
        self.mine &= now.jobs.keys() | set(self.local())
        if before is None:
            return False
        moved = now.newest != before.newest
        for job_id in (now.running() | watched) - self.mine:
            old, new = before.jobs.get(job_id), now.jobs.get(job_id)
            if new is None or new == old:
                continue
            moved = True
            if new.state == "running":
                self.progress.publish(job_id, {"event": "progress", "job": job_id, "outcomes": new.outcomes})
            else:
                counts = await asyncio.to_thread(self.store.counts, job_id)
                self.progress.publish(job_id, done_event(job_id, new.state, counts))
        if moved:
            self.changes.publish("jobs")
        return moved

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except Exception as exc:  # the database may be busy or away: look again next time
                log.warning("avctl serve: watching other processes' jobs failed: %s: %s", type(exc).__name__, exc)
            await self.sleep(self.interval)
