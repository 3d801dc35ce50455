"""Overview: how the fleet is doing, at a glance, kept current by the live stream.

One pass over what the service returns (the devices in scope, the open alerts, the newest jobs):
no query per device, so it stays fast with 10,000 devices. An htmx refresh (``sse:state``,
``sse:alerts``, ``sse:jobs``) gets the live part only, and every open overview refreshes on the same
notice: the summary is computed once per change and scope (`_Memo`), not once per viewer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
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
log = logging.getLogger(__name__)

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


#: a summary that took this long to compute is a large fleet's: while the next one is computed in the
#: background, requests get the last one (a fleet of thousands changes every second, and no page
#: should wait for a pass over all of it)
SLOW_SUMMARY_SECONDS = 0.1
#: ... as long as it is no older than this; then a request waits for a fresh one
MAX_STALE_SECONDS = 10.0

Summary = dict[str, Any]


@dataclass(frozen=True)
class _Entry:
    ctx: ServerContext
    inventory: Inventory
    versions: dict[str, int]
    value: Summary
    #: when its inputs were read (the memo's clock), and how long it took to compute
    at: float
    took: float


class _Memo:
    """The last summary per site scope, reused while the server reports no change of state, alerts
    or jobs and the inventory is the same (what it shows depends on nothing else).

    A large fleet's summary (`SLOW_SUMMARY_SECONDS` or more) is served once more after a change,
    up to `MAX_STALE_SECONDS` old, while one thread per scope computes the next: the page is at most
    one summary behind, and the live stream, which reports every batch of polls, brings the next
    one. A small fleet's summary is always computed before the answer.
    """

    def __init__(self, compute: Callable[[ServerContext, Principal], Summary] = summary,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._compute = compute
        self._clock = clock
        self._last: dict[frozenset[str], _Entry] = {}
        self._refreshing: set[frozenset[str]] = set()
        self._lock = threading.Lock()

    def get(self, ctx: ServerContext, user: Principal) -> Summary:
        with self._lock:
            hit = self._last.get(user.sites)
        if hit is not None and hit.ctx is ctx and hit.inventory is ctx.inventory():
            if hit.versions == ctx.changes.versions():
                return hit.value
            if hit.took >= SLOW_SUMMARY_SECONDS and self._clock() - hit.at < MAX_STALE_SECONDS:
                self._refresh_later(ctx, user)
                return hit.value
        return self._fresh(ctx, user)

    def _fresh(self, ctx: ServerContext, user: Principal) -> Summary:
        # inputs read before the summary: a change while it is computed makes the next request compute again
        at, versions, inventory = self._clock(), ctx.changes.versions(), ctx.inventory()
        value = self._compute(ctx, user)
        with self._lock:
            self._last[user.sites] = _Entry(ctx, inventory, versions, value, at, self._clock() - at)
        return value

    def _refresh_later(self, ctx: ServerContext, user: Principal) -> None:
        with self._lock:
            if user.sites in self._refreshing:
                return
            self._refreshing.add(user.sites)

        def refresh() -> None:
            try:
                self._fresh(ctx, user)
            except Exception as exc:  # the next request after MAX_STALE_SECONDS computes (and reports) it
                log.warning("avctl: the overview could not be computed: %s: %s", type(exc).__name__, exc)
            finally:
                with self._lock:
                    self._refreshing.discard(user.sites)

        threading.Thread(target=refresh, name="avctl-overview", daemon=True).start()


_memo = _Memo()


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, ctx: Ctx, user: Reader) -> HTMLResponse:
    template = "overview_live.html" if is_htmx(request) else "overview.html"
    return render(request, template, user, _memo.get(ctx, user))
