"""/api/v1/rules: the alert rules in force."""

from __future__ import annotations

from fastapi import APIRouter

from avctl.server import service
from avctl.server.api.deps import Ctx, Reader
from avctl.server.api.schemas import Problem, Rules

router = APIRouter(prefix="/rules", tags=["rules"], responses={401: {"model": Problem}, 403: {"model": Problem}})


@router.get("", response_model=Rules, summary="The alert rules in force")
def list_rules(ctx: Ctx, principal: Reader) -> Rules:
    return Rules(items=service.list_rules(ctx, principal))
