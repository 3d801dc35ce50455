"""Overview: how the fleet is doing, at a glance."""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from avctl.server import service
from avctl.server.web.deps import Ctx, Reader
from avctl.server.web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, ctx: Ctx, user: Reader) -> HTMLResponse:
    devices = service.list_devices(ctx, user, limit=100_000).items
    states = Counter(d.state for d in devices)
    online = round(100 * states["online"] / len(devices)) if devices else 0
    return render(request, "overview.html", user, {"total": len(devices), "states": states, "online": online})
