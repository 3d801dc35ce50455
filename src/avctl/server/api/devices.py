"""/api/v1/devices: the fleet, one device's state, history and events, and actions on it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from avctl.server import service
from avctl.server.api.deps import Actor, Ctx, Reader, when
from avctl.server.api.schemas import (
    ActionRequest,
    ActionResponse,
    Device,
    DeviceEvent,
    DevicePage,
    History,
    JobOutcome,
    Problem,
)

router = APIRouter(prefix="/devices", tags=["devices"],
                   responses={401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}})


@router.get("", response_model=DevicePage, summary="List devices")
def list_devices(
    ctx: Ctx, principal: Reader,
    select: Annotated[str, Query(description="the CLI's selection: 'site=hq,family=videoos', 'room-*', "
                                             "'tag!=spare'")] = "",
    state: Annotated[str | None, Query(description="only devices in this state")] = None,
    sort: Annotated[str, Query(description="name, site, room, family, state, since, last_poll, last_ok; "
                                           "'-' in front: descending")] = "name",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DevicePage:
    page = service.list_devices(ctx, principal, selection=select, state=state, sort=sort, limit=limit,
                                offset=offset)
    return DevicePage(items=[Device.of(v) for v in page.items], total=page.total, limit=page.limit,
                      offset=page.offset)


@router.get("/{name}", response_model=Device, summary="One device's current state")
def get_device(ctx: Ctx, principal: Reader, name: str) -> Device:
    return Device.of(service.device(ctx, principal, name))


@router.get("/{name}/history", response_model=History, summary="One numeric reading over time")
def get_history(
    ctx: Ctx, principal: Reader, name: str,
    metric: Annotated[str, Query(description="a reading id, e.g. cert_days_left")],
    since: Annotated[str | None, Query(description="epoch seconds, ISO time or age (2h); default 24h ago")] = None,
    until: Annotated[str | None, Query(description="epoch seconds, ISO time or age; default now")] = None,
) -> History:
    resolution, points = service.history(ctx, principal, name, metric, since=when(ctx, since),
                                         until=when(ctx, until))
    return History(device=name, metric=metric, resolution=resolution,
                   points=[(p.ts, p.value, p.minimum, p.maximum) for p in points])


@router.get("/{name}/events", response_model=list[DeviceEvent], summary="State changes, newest first")
def get_events(ctx: Ctx, principal: Reader, name: str,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[DeviceEvent]:
    return [DeviceEvent.of(e) for e in service.events(ctx, principal, name, limit=limit)]


@router.post("/{name}/actions/{action}", response_model=ActionResponse, summary="Run a spec action",
             responses={202: {"model": ActionResponse, "description": "still running: follow the job"},
                        422: {"model": Problem}})
async def run_action(ctx: Ctx, principal: Actor, name: str, action: str, body: ActionRequest,
                     response: Response) -> ActionResponse:
    """Runs as a one-device job (journal, audit log with your user). Disruptive actions (reboot,
    factory reset...) need the operator or admin role."""
    result = await service.run_action(ctx, principal, name, action, body.params)
    if result.outcome is None:
        response.status_code = 202
    return ActionResponse(job=result.job_id, finished=result.outcome is not None,
                          outcome=None if result.outcome is None else JobOutcome.of(result.outcome))
