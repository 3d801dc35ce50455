"""How a command started by a schedule tells the schedule which job it created.

The scheduler starts a scheduled command as a child process with ``AVCTL_SCHEDULE_RUN`` set to the
id of its run record (and ``AVCTL_DB`` to the scheduler's database). Every command that creates a
job calls :func:`note_job` right after the job is recorded; outside a schedule it does nothing.
"""

from __future__ import annotations

import os
import sys

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
    run_id = scheduled_run()
    if run_id is None:
        return
    from avctl.errors import AvctlError
    from avctl.schedule.store import open_schedule_store

    try:
        with open_schedule_store(store_url) as store:
            store.set_job(run_id, job_id)
    except AvctlError as exc:  # the job runs all the same; its run record shows no job
        sys.stderr.write(f"avctl: warning: schedule run {run_id}: job {job_id} not recorded on it: {exc.message}\n")
