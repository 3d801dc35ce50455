"""Overview: how the fleet is doing, at a glance, kept current by the live stream.

One pass over what the service returns (the devices in scope, the open alerts, the newest jobs):
no query per device, so it stays fast with 10,000 devices. An htmx refresh (``sse:state``,
``sse:alerts``, ``sse:jobs``) gets the live part only.
"""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from avctl.server import service
from avctl.server.web.deps import Ctx, Reader
from avctl.server.web.render import is_htmx, render
from avctl.server.web.rollup import CERT_SOON_DAYS, HEALTHS, firmware_compliance, fleet_health

router = APIRouter(include_in_schema=False)

#: rows a list of the overview shows at most (the devices table has them all)
LIST_LIMIT = 50
#: open alerts read for the roll-up at most (more are counted by severity all the same)
ALERT_LIMIT = 100_000


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, ctx: Ctx, user: Reader) -> HTMLResponse:
    views = service.fleet_snapshot(ctx, user)
    alerts = service.list_alerts(ctx, user, state="open", limit=ALERT_LIMIT).items
    fleet = fleet_health(views, alerts)
    states = Counter(v.state for v in views)
    attention = fleet.attention()
    certs = fleet.certs_expiring()
    firmware = firmware_compliance(views)
    running = [j for j in service.list_jobs(ctx, user, limit=50) if j.effective_state == "running"]
    context = {
        "total": len(views), "states": states,
        "online": round(100 * states["online"] / len(views)) if views else 0,
        "alerts": service.open_counts(ctx, user), "running": running, "fleet": fleet, "healths": HEALTHS,
        "attention": attention[:LIST_LIMIT], "attention_more": max(0, len(attention) - LIST_LIMIT),
        "certs": certs[:LIST_LIMIT], "certs_more": max(0, len(certs) - LIST_LIMIT), "cert_days": CERT_SOON_DAYS,
        "firmware": firmware, "list_limit": LIST_LIMIT,
    }
    template = "overview_live.html" if is_htmx(request) else "overview.html"
    return render(request, template, user, context)
