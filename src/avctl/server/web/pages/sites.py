"""Sites and rooms: one card per site (``/sites``), a site's rooms with their codec, phone and pod side
by side (``/sites/{site}``), and room quick actions run as fleet jobs on the room's devices.

A site's rooms are paged by the server (`ROOMS_PAGE` at a time), those that need attention first,
filtered by name and health; the view lives in the URL (``?room=&health=&page=``) so that the live
refresh keeps it. The site's counts are over all its rooms, whatever the page.

A quick action is a verb (each family's Macro of that name): families without it are skipped by
the job with the reason (a pod has no ``mute``). ``reboot`` and ``end_call`` are disruptive in the
specs: the page offers them to roles that may run disruptive actions, behind a typed confirmation
(the number of devices), and the service refuses them to anyone else.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from avctl.errors import UsageError
from avctl.server import service
from avctl.server.context import ServerContext
from avctl.server.model import Principal
from avctl.server.web.cli_text import cli_command
from avctl.server.web.deps import Actor, Ctx, Reader
from avctl.server.web.posted import read_form
from avctl.server.web.render import is_htmx, render
from avctl.server.web.rollup import (
    HEALTHS,
    NO_SITE,
    ROOM_COLUMNS,
    Fleet,
    Room,
    Site,
    fleet_health,
    key_readings,
    site_of,
)

router = APIRouter(include_in_schema=False)

#: quick actions: verb -> (label, whether the page asks for a typed confirmation)
ROOM_VERBS = {
    "mute": ("Mute", False),
    "unmute": ("Unmute", False),
    "volume": ("Set volume", False),
    "end_call": ("End call", True),
    "reboot": ("Reboot room", True),
}
#: a quick action's form is a few short fields
MAX_FORM_BYTES = 8192
#: rooms a site page shows at a time
ROOMS_PAGE = 50
#: rooms are listed the most in need of attention first (as a room's health is its worst device's)
ATTENTION_ORDER = ("offline", "fault", "warning", "unknown", "ok")
_RANK = {h: i for i, h in enumerate(ATTENTION_ORDER)}


def _fleet(ctx: ServerContext, user: Principal, site: str | None = None) -> Fleet:
    """The devices in scope (of `site` only, if given: NotFound if it has none) with their health."""
    views = service.fleet_snapshot(ctx, user)
    if site is not None:
        views = [v for v in views if site_of(v) == site]
        if not views:
            raise service.NotFound(f"no site named {site!r}")
    alerts = service.list_alerts(ctx, user, state="open", limit=100_000).items
    return fleet_health(views, alerts)


def room_id(site: str, room: str) -> str:
    """A stable HTML id for a room (its name is free text)."""
    return "room-" + hashlib.sha256(f"{site}\0{room}".encode()).hexdigest()[:12]


@router.get("/sites", response_class=HTMLResponse)
def sites(request: Request, ctx: Ctx, user: Reader) -> HTMLResponse:
    fleet = _fleet(ctx, user)
    template = "sites_live.html" if is_htmx(request) else "sites.html"
    return render(request, template, user, {"fleet": fleet, "healths": HEALTHS})


@router.post("/sites/room-action", response_class=HTMLResponse)
async def room_action(request: Request, ctx: Ctx, user: Actor) -> HTMLResponse:
    form = await read_form(request, max_bytes=MAX_FORM_BYTES)
    site, room, verb = form.get("site", ""), form.get("room", ""), form.get("verb", "")
    if verb not in ROOM_VERBS:
        raise HTTPException(400, f"unknown room action {verb!r}")
    params: dict[str, str] = {}
    if verb == "volume":
        params["volume"] = form.get("volume", "")
    fleet = await asyncio.to_thread(_fleet, ctx, user, site)
    found = fleet.sites[site].rooms.get(room)
    if found is None:
        raise service.NotFound(f"no room named {room!r} in {site}")
    names = found.names
    if ROOM_VERBS[verb][1] and form.get("confirm", "").strip() != str(len(names)):
        raise HTTPException(400, f"type the number of devices ({len(names)}) to confirm")
    selection = "name=" + "|".join(names)
    job_id = await service.start_job(ctx, user, name=verb, mode="verb", params=params, selection=selection)
    return render(request, "sites_result.html", user, {
        "job_id": job_id, "verb": verb, "label": ROOM_VERBS[verb][0], "count": len(names),
        "cli": cli_command("fleet", verb, params=params, options=[("--select", selection)]),
        "cli_id": f"cli-{room_id(site, room)}",
    })


@dataclass(frozen=True)
class RoomQuery:
    """A site page's view as the URL gives it: rooms whose name contains `room` (any case), of
    health `health` (all if empty), page `page`."""

    site: str
    room: str = ""
    health: str = ""
    page: int = 1

    def url(self, **changes: Any) -> str:
        """This view's URL (with `changes`), leaving out what is the default."""
        values = {"room": self.room, "health": self.health, "page": self.page, **changes}
        kept = {k: v for k, v in values.items() if v not in ("", 1)}
        return f"/sites/{quote(self.site)}" + ("?" + urlencode(kept) if kept else "")


def rooms_in_view(site: Site, q: RoomQuery) -> list[Room]:
    """The site's rooms that match `q`, those needing attention first, then by name."""
    needle = q.room.casefold()
    healths = {r.name: r.health for r in site.rooms.values()}
    chosen = [r for r in site.rooms.values()
              if needle in r.name.casefold() and (not q.health or healths[r.name] == q.health)]
    return sorted(chosen, key=lambda r: (_RANK[healths[r.name]], r.name))


RoomName = Annotated[str, Query(max_length=200)]
Health = Annotated[str, Query(max_length=32)]


@router.get("/sites/{site:path}", response_class=HTMLResponse)
def site_page(request: Request, ctx: Ctx, user: Reader, site: str, room: RoomName = "", health: Health = "",
              page: Annotated[int, Query(ge=1, le=1_000_000)] = 1) -> HTMLResponse:
    if health and health not in HEALTHS:
        raise UsageError(f"unknown health {health!r}", hint=", ".join(HEALTHS))
    chosen = _fleet(ctx, user, site).sites[site]
    q = RoomQuery(site, room.strip(), health, page)
    matching = rooms_in_view(chosen, q)
    pages = max(1, math.ceil(len(matching) / ROOMS_PAGE))
    current = min(q.page, pages)  # past the end (the site shrank): its last page
    first = (current - 1) * ROOMS_PAGE
    rooms = matching[first:first + ROOMS_PAGE]
    template = "sites_site_live.html" if is_htmx(request) else "sites_site.html"
    return render(request, template, user, {
        "site": chosen, "rooms": rooms, "matching": len(matching), "first": first, "q": q,
        "page": current, "pages": pages, "page_link": lambda n: q.url(page=n), "here": q.url(page=current),
        "room_healths": Counter(r.health for r in chosen.rooms.values()),
        "others": any(r.others for r in rooms), "columns": ROOM_COLUMNS, "healths": ATTENTION_ORDER,
        "room_id": room_id, "readings": key_readings, "verbs": ROOM_VERBS, "no_site": NO_SITE,
    })
