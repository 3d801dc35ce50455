"""/api/v1/alerts: open and resolved alerts, acknowledge, silence."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from avctl.server import service
from avctl.server.api.deps import AlertHandler, Ctx, Reader
from avctl.server.api.schemas import AlertOut, AlertPage, Problem, SilenceRequest

router = APIRouter(prefix="/alerts", tags=["alerts"],
                   responses={401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}})


@router.get("", response_model=AlertPage, summary="Alerts of your sites, newest first")
def list_alerts(
    ctx: Ctx, principal: Reader,
    state: Annotated[str | None, Query(description="open (default) or resolved; 'all' for both")] = "open",
    severity: Annotated[str | None, Query(description="info, warning or critical")] = None,
    device: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AlertPage:
    page = service.list_alerts(ctx, principal, state=None if state == "all" else state, severity=severity,
                               device=device, limit=limit, offset=offset)
    return AlertPage(items=[AlertOut.of(a) for a in page.items], total=page.total, limit=page.limit,
                     offset=page.offset)


@router.post("/{alert_id}/ack", response_model=AlertOut, summary="Acknowledge an alert")
def ack_alert(ctx: Ctx, principal: AlertHandler, alert_id: int) -> AlertOut:
    return AlertOut.of(service.ack_alert(ctx, principal, alert_id))


@router.post("/{alert_id}/silence", response_model=AlertOut, summary="Silence an alert's notifications")
def silence_alert(ctx: Ctx, principal: AlertHandler, alert_id: int, body: SilenceRequest) -> AlertOut:
    return AlertOut.of(service.silence_alert(ctx, principal, alert_id, seconds=body.seconds))
