"""How a command started by a schedule tells the schedule which job it created.

The scheduler starts a scheduled command as a child process with ``AVCTL_SCHEDULE_RUN`` set to the
id of its run record (and ``AVCTL_DB`` to the scheduler's database). Every command that creates a
job calls :func:`note_job` right after the job is recorded; outside a schedule it does nothing.
"""

from __future__ import annotations

import os

#: the environment variable naming the schedule run a child process works for
RUN_ENV = "AVCTL_SCHEDULE_RUN"
#: the sites a run covers when its schedule spans time zones (a JSON list; null: no site)
SITES_ENV = "AVCTL_SCHEDULE_SITES"


def scheduled_run() -> int | None:
    """The schedule run this process works for, or None when it was not started by a schedule."""
    raw = os.environ.get(RUN_ENV, "").strip()
    return int(raw) if raw.isdigit() else None


def note_job(store_url: str | None, job_id: int) -> None:
    """Record ``job_id`` on the schedule run this process works for (no-op outside a schedule)."""
    if scheduled_run() is None:
        return
    # TODO(schedules helper): write job_id on the run record in the database at store_url
