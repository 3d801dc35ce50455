"""/api/v1/audit: every state-changing call, by whom (the filters of ``avctl audit``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from avctl.server import service
from avctl.server.api.deps import Ctx, Reader, when
from avctl.server.api.schemas import AuditOut, AuditPage, Problem

router = APIRouter(prefix="/audit", tags=["audit"], responses={401: {"model": Problem}, 403: {"model": Problem}})


@router.get("", response_model=AuditPage, summary="The audit log, newest first")
def query_audit(
    ctx: Ctx, principal: Reader,
    device: Annotated[str | None, Query(description="a device name or glob (room-*)")] = None,
    action: Annotated[str | None, Query(description="an action id or glob (alert_*)")] = None,
    user: Annotated[str | None, Query(description="web:alice, token:ci, or an OS user")] = None,
    outcome: Annotated[str | None, Query(description="ok, failed or unreachable")] = None,
    job: int | None = None,
    since: Annotated[str | None, Query(description="epoch seconds, ISO time or age (2h)")] = None,
    until: Annotated[str | None, Query(description="epoch seconds, ISO time or age")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AuditPage:
    page = service.query_audit(ctx, principal, device=device, action=action, user=user, outcome=outcome,
                               job_id=job, since=when(ctx, since), until=when(ctx, until), limit=limit,
                               offset=offset)
    return AuditPage(items=[AuditOut.of(e) for e in page.items], total=page.total, limit=page.limit,
                     offset=page.offset)
