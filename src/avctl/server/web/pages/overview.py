"""Overview: how the fleet is doing, at a glance, kept current by the live stream.

One pass over what the service returns (the devices in scope, the open alerts, the newest jobs):
no query per device, so it stays fast with 10,000 devices. An htmx refresh (``sse:state``,
``sse:alerts``, ``sse:jobs``) gets the live part only, and every open overview refreshes on the same
notice: the summary is computed once per change and scope (`_Memo`), not once per viewer.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from avctl.fleet.inventory import Inventory
from avctl.server import service
from avctl.server.context import ServerContext
from avctl.server.model import Principal
from avctl.server.web.deps import Ctx, Reader
from avctl.server.web.render import is_htmx, render
from avctl.server.web.rollup import CERT_SOON_DAYS, HEALTHS, firmware_compliance, fleet_health

router = APIRouter(include_in_schema=False)

#: rows a list of the overview shows at most (the devices table has them all)
LIST_LIMIT = 50
#: open alerts read for the roll-up at most (more are counted by severity all the same)
ALERT_LIMIT = 100_000


def summary(ctx: ServerContext, user: Principal) -> dict[str, Any]:
    views = service.fleet_snapshot(ctx, user)
    alerts = service.list_alerts(ctx, user, state="open", limit=ALERT_LIMIT).items
    fleet = fleet_health(views, alerts)
    states = Counter(v.state for v in views)
    attention = fleet.attention()
    certs = fleet.certs_expiring()
    return {
        "total": len(views), "states": states,
        "online": round(100 * states["online"] / len(views)) if views else 0,
        "alerts": service.open_counts(ctx, user), "fleet": fleet, "healths": HEALTHS,
        "running": [j for j in service.list_jobs(ctx, user, limit=50) if j.effective_state == "running"],
        "attention": attention[:LIST_LIMIT], "attention_more": max(0, len(attention) - LIST_LIMIT),
        "certs": certs[:LIST_LIMIT], "certs_more": max(0, len(certs) - LIST_LIMIT), "cert_days": CERT_SOON_DAYS,
        "firmware": firmware_compliance(views),
    }


@dataclass(frozen=True)
class _Entry:
    ctx: ServerContext
    inventory: Inventory
    versions: dict[str, int]
    value: dict[str, Any]


class _Memo:
    """The last summary per site scope, reused while the server reports no change of state, alerts
    or jobs and the inventory is the same (what it shows depends on nothing else)."""

    def __init__(self) -> None:
        self._last: dict[frozenset[str], _Entry] = {}
        self._lock = threading.Lock()

    def get(self, ctx: ServerContext, user: Principal) -> dict[str, Any]:
        # read before the summary: a change while it is computed makes the next request compute again
        versions, inventory = ctx.changes.versions(), ctx.inventory()
        with self._lock:
            hit = self._last.get(user.sites)
        if hit is not None and hit.ctx is ctx and hit.inventory is inventory and hit.versions == versions:
            return hit.value
        value = summary(ctx, user)
        with self._lock:
            self._last[user.sites] = _Entry(ctx, inventory, versions, value)
        return value


_memo = _Memo()


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, ctx: Ctx, user: Reader) -> HTMLResponse:
    template = "overview_live.html" if is_htmx(request) else "overview.html"
    return render(request, template, user, _memo.get(ctx, user))
