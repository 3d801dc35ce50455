"""Sites and rooms: one card per site (``/sites``), a site's rooms with their codec, phone and pod side
by side (``/sites/{site}``), and room quick actions run as fleet jobs on the room's devices.

A quick action is a verb (each family's Macro of that name): families without it are skipped by
the job with the reason (a pod has no ``mute``). ``reboot`` and ``end_call`` are disruptive in the
specs: the page offers them to roles that may run disruptive actions, behind a typed confirmation
(the number of devices), and the service refuses them to anyone else.
"""

from __future__ import annotations

import asyncio
import hashlib

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from avctl.server import service
from avctl.server.context import ServerContext
from avctl.server.model import Principal
from avctl.server.web.cli_text import cli_command
from avctl.server.web.deps import Actor, Ctx, Reader
from avctl.server.web.posted import read_form
from avctl.server.web.render import is_htmx, render
from avctl.server.web.rollup import HEALTHS, NO_SITE, ROOM_COLUMNS, Fleet, fleet_health, key_readings, site_of

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


@router.get("/sites/{site:path}", response_class=HTMLResponse)
def site_page(request: Request, ctx: Ctx, user: Reader, site: str) -> HTMLResponse:
    chosen = _fleet(ctx, user, site).sites[site]
    rooms = sorted(chosen.rooms.values(), key=lambda r: r.name)
    others = any(r.others for r in rooms)
    template = "sites_site_live.html" if is_htmx(request) else "sites_site.html"
    return render(request, template, user, {
        "site": chosen, "rooms": rooms, "columns": ROOM_COLUMNS, "others": others, "healths": HEALTHS,
        "room_id": room_id, "readings": key_readings, "verbs": ROOM_VERBS, "no_site": NO_SITE,
    })
