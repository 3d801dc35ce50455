"""Configuration drift, ``/config``: the newest drift check (counts per key, the drifted devices and
keys with where their desired values are written), why a check did not start, and "check now".

The section fetches itself again when jobs change (``sse:jobs``): a check started here or by the
schedule shows once it finishes.
"""

from __future__ import annotations

import contextlib
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from avctl.config.desired import ConfigError
from avctl.server.model import Principal
from avctl.server.service import config as drift
from avctl.server.service.errors import Conflict
from avctl.server.web.deps import Ctx, Reader, page_require
from avctl.server.web.render import render

router = APIRouter(include_in_schema=False)

Checker = Annotated[Principal, Depends(page_require(drift.RUN_PERMISSION))]


@router.get("/config", response_class=HTMLResponse)
def config_page(request: Request, ctx: Ctx, user: Reader) -> HTMLResponse:
    return render(request, "config.html", user, {"report": drift.drift_report(ctx, user), "started": None})


@router.post("/config/check", response_class=HTMLResponse)
async def check_now(request: Request, ctx: Ctx, user: Checker) -> HTMLResponse:
    started: int | None = None
    # an invalid desired state is kept in ctx.drift.error, a running check in the report: the section shows both
    with contextlib.suppress(ConfigError, Conflict):
        started = await drift.run_drift_now(ctx, user)
    return render(request, "config_drift.html", user, {"report": drift.drift_report(ctx, user), "started": started})
