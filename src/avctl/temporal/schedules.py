"""avctl schedules fired by Temporal Schedules (``avctl schedule add --engine temporal``).

One Temporal Schedule per time zone of the schedule's devices (``avctl.schedule.runner.
schedule_zones``): the cron expression in that zone (``time_zone_name``: Temporal applies the zone's
daylight-saving rules), the overlap policy asked for, a catch-up window of the schedule's grace. Each
due time starts a ``ScheduledRun`` workflow on the store's schedule queue; a long-lived control
worker (``avctl serve --engine temporal`` or ``avctl worker --control``) runs the command and
records the run in the schedule store, so ``avctl schedule show`` lists Temporal's runs beside
the local scheduler's. Pause, resume, run-now, remove and backfill act on the Temporal Schedules.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio.client import (
    Client,
    ScheduleActionStartWorkflow,
    ScheduleBackfill,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.client import (
    Schedule as TemporalSchedule,
)
from temporalio.service import RPCError

from avctl.errors import UsageError
from avctl.schedule.runner import Zones
from avctl.schedule.store import Schedule
from avctl.temporal.engine import EngineError
from avctl.temporal.model import ScheduledRun
from avctl.temporal.workflows import ScheduledRunWorkflow

OVERLAPS = {
    "skip": ScheduleOverlapPolicy.SKIP,
    "buffer_one": ScheduleOverlapPolicy.BUFFER_ONE,
    "buffer_all": ScheduleOverlapPolicy.BUFFER_ALL,
    "cancel_other": ScheduleOverlapPolicy.CANCEL_OTHER,
    "terminate_other": ScheduleOverlapPolicy.TERMINATE_OTHER,
    "allow_all": ScheduleOverlapPolicy.ALLOW_ALL,
}


def schedule_queue(control_queue: str) -> str:
    """The queue of scheduled runs: served by long-lived control workers only (a CLI's temporary
    one serves its job and leaves)."""
    return f"{control_queue}.schedules"


def schedule_id(control_queue: str, name: str, zone: str) -> str:
    return f"{control_queue}.schedule.{name}.{zone}"


@dataclass(frozen=True)
class ZoneState:
    zone: str
    schedule_id: str
    paused: bool
    next_times: list[datetime]
    recent: list[datetime]


async def create(client: Client, schedule: Schedule, zones: Zones, control_queue: str, *, overlap: str) -> list[str]:
    """The Temporal Schedules of ``schedule``, one per zone; none is left if one cannot be made."""
    if overlap not in OVERLAPS:
        raise UsageError(f"--overlap {overlap!r} is not one of {', '.join(OVERLAPS)}")
    queue = schedule_queue(control_queue)
    made: list[str] = []
    try:
        for zone, sites in zones.items():
            sid = schedule_id(control_queue, schedule.name, zone)
            await client.create_schedule(sid, TemporalSchedule(
                action=ScheduleActionStartWorkflow(ScheduledRunWorkflow.run,
                                                   ScheduledRun(schedule.name, zone, sites, queue),
                                                   id=f"{sid}.run", task_queue=queue),
                spec=ScheduleSpec(cron_expressions=[schedule.cron], time_zone_name=zone),
                policy=SchedulePolicy(overlap=OVERLAPS[overlap],
                                      catchup_window=timedelta(seconds=max(60.0, schedule.grace))),
                state=ScheduleState(note=f"avctl schedule {schedule.name} ({zone})", paused=schedule.paused)))
            made.append(sid)
    except RPCError as exc:
        for sid in made:
            with contextlib.suppress(RPCError):
                await client.get_schedule_handle(sid).delete()
        raise EngineError(f"Temporal refused schedule {schedule.name}: {exc}") from None
    return made


async def describe(client: Client, schedule: Schedule, zones: Zones, control_queue: str) -> list[ZoneState]:
    out = []
    for zone in zones:
        sid = schedule_id(control_queue, schedule.name, zone)
        try:
            d = await client.get_schedule_handle(sid).describe()
        except RPCError as exc:
            raise EngineError(f"schedule {schedule.name} ({zone}) is not on Temporal: {exc}",
                              hint="remove it and add it again") from None
        out.append(ZoneState(zone, sid, d.schedule.state.paused, list(d.info.next_action_times),
                             [a.scheduled_at for a in d.info.recent_actions]))
    return out


async def each(client: Client, schedule: Schedule, zones: Zones, control_queue: str, what: str) -> None:
    """pause | unpause | trigger | delete, on every zone's Temporal Schedule."""
    for zone in zones:
        handle = client.get_schedule_handle(schedule_id(control_queue, schedule.name, zone))
        try:
            if what == "pause":
                await handle.pause(note="avctl schedule pause")
            elif what == "unpause":
                await handle.unpause(note="avctl schedule resume")
            elif what == "trigger":
                await handle.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)
            elif what == "delete":
                await handle.delete()
        except RPCError as exc:
            if what == "delete" and exc.status.name == "NOT_FOUND":
                continue
            raise EngineError(f"Temporal: {what} schedule {schedule.name} ({zone}): {exc}") from None


async def backfill(client: Client, schedule: Schedule, zones: Zones, control_queue: str, start: datetime,
                   end: datetime) -> None:
    """Every due time in [start, end) runs now, in each zone (overlapping runs allowed)."""
    for zone in zones:
        handle = client.get_schedule_handle(schedule_id(control_queue, schedule.name, zone))
        try:
            await handle.backfill(ScheduleBackfill(start_at=start, end_at=end,
                                                   overlap=ScheduleOverlapPolicy.ALLOW_ALL))
        except RPCError as exc:
            raise EngineError(f"Temporal: backfill schedule {schedule.name} ({zone}): {exc}") from None
