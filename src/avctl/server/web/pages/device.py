"""The device page, ``/devices/{name}``: live status, history charts, every action of the device's
spec as a form with a preview of its request, downloads, certificate pins, its configuration drift
and snapshots, the audit trail."""

from __future__ import annotations

import asyncio
import json
from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse

from avctl.config.model import Snapshot
from avctl.errors import UnknownActionError, UsageError, ValidationError
from avctl.server import service
from avctl.server.context import ServerContext
from avctl.server.model import Principal
from avctl.server.service import config as configuration
from avctl.server.service import downloads as files
from avctl.server.service import pins as pinning
from avctl.server.service.errors import NotFound, check
from avctl.server.service.preview import device_action, device_spec, preview_action
from avctl.server.web.charts import DEFAULT_RANGE, RANGES, Chart, chart
from avctl.server.web.cli_text import cli_command
from avctl.server.web.deps import Actor, Admin, Ctx, Reader
from avctl.server.web.forms import form_fields, parse_form
from avctl.server.web.posted import read_form
from avctl.server.web.render import render
from avctl.spec.model import Action

router = APIRouter(include_in_schema=False)

#: a submitted form larger than this is refused (no action's parameters come near it)
MAX_FORM_BYTES = 256 * 1024
#: an outcome's data is shown up to this many characters
MAX_DATA_CHARS = 20_000
#: rows of the device's audit trail on its page (the audit page has the rest)
AUDIT_ROWS = 20
#: configuration snapshots listed on the page (the API has the rest)
SNAPSHOT_ROWS = 10


def _action(ctx: ServerContext, user: Principal, name: str, action_id: str) -> Action:
    try:
        return device_action(ctx, user, name, action_id)[1]
    except UnknownActionError as exc:
        raise NotFound(exc.message, hint=exc.hint) from None


def may_run(user: Principal, action: Action) -> bool:
    """Whether the page offers the action's form (the service decides again when it runs)."""
    return user.can("act") and (not action.disruptive or user.can("act_disruptive"))


def cli_of(name: str, action: Action, params: dict[str, Any]) -> str:
    return cli_command("fleet", "run", action.id, params=params, options=[("--select", f"name={name}")],
                       secret=[p.name for p in action.params if p.secret])


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _charts(ctx: ServerContext, user: Principal, name: str, readings: dict[str, Any], span: float) -> list[Chart]:
    until = ctx.clock()
    since = until - span
    made = []
    for metric in sorted(k for k, v in readings.items() if _numeric(v)):
        resolution, points = service.history(ctx, user, name, metric, since=since, until=until)
        made.append(chart(metric, resolution, points, since, until))
    return made


@router.get("/devices/{name}", response_class=HTMLResponse)
def device_page(request: Request, ctx: Ctx, user: Reader, name: str,
                span: Annotated[str, Query(alias="range")] = DEFAULT_RANGE) -> HTMLResponse:
    if span not in RANGES:
        span = DEFAULT_RANGE
    view = service.device(ctx, user, name)
    entry = service.find_device(ctx, user, name)
    actions = sorted(device_spec(ctx, entry).actions.values(), key=lambda a: a.id)
    audit = service.query_audit(ctx, user, device=name, limit=AUDIT_ROWS)
    return render(request, "device.html", user, {
        "device": view, "actions": actions, "may_run": may_run, "range": span, "ranges": list(RANGES),
        "charts": _charts(ctx, user, name, dict(view.readings), RANGES[span]),
        "files": files.downloads(ctx, user, name), "pins": pinning.pins(ctx, user, name),
        "audit": audit, "numeric": _numeric, "drift": configuration.drift_report(ctx, user, device=name),
        "snapshots": _with_changes(configuration.snapshots(ctx, user, name, limit=SNAPSHOT_ROWS + 1)),
    })


def _with_changes(snapshots: list[Snapshot]) -> list[tuple[Snapshot, list[str] | None]]:
    """Newest first, each with the keys changed since the one before it (None: the oldest shown)."""
    return [(s, configuration.changed_keys(s, snapshots[i + 1]) if i + 1 < len(snapshots) else None)
            for i, s in enumerate(snapshots[:SNAPSHOT_ROWS])]


@router.get("/devices/{name}/status", response_class=HTMLResponse)
def device_status(request: Request, ctx: Ctx, user: Reader, name: str) -> HTMLResponse:
    """The live status alone (the page fetches it again on each state change)."""
    return render(request, "device_status.html", user, {"device": service.device(ctx, user, name),
                                                        "numeric": _numeric})


@router.get("/devices/{name}/downloads", response_class=HTMLResponse)
def device_downloads(request: Request, ctx: Ctx, user: Reader, name: str) -> HTMLResponse:
    """The downloads list alone (the page fetches it again when a job ends)."""
    return render(request, "device_downloads.html", user, {"device": service.device(ctx, user, name),
                                                           "files": files.downloads(ctx, user, name)})


@router.get("/devices/{name}/downloads/{filename}")
def device_download(ctx: Ctx, user: Reader, name: str, filename: str) -> FileResponse:
    """One downloaded file, as an attachment: never shown inline (it is the device's content)."""
    path = files.download_path(ctx, user, name, filename)
    return FileResponse(path, media_type="application/octet-stream", filename=path.name,
                        content_disposition_type="attachment")


@router.get("/devices/{name}/actions/{action_id}", response_class=HTMLResponse)
def action_page(request: Request, ctx: Ctx, user: Reader, name: str, action_id: str) -> HTMLResponse:
    action = _action(ctx, user, name, action_id)
    view = service.device(ctx, user, name)
    return render(request, "device_action.html", user, {
        "device": view, "action": action, "fields": form_fields(action), "may_run": may_run(user, action),
        "cli": cli_of(name, action, {}),
        "binary": [p.name for p in action.settable_params if "binary" in p.types and p.required],
    })


@router.post("/devices/{name}/actions/{action_id}/preview", response_class=HTMLResponse)
async def action_preview(request: Request, ctx: Ctx, user: Actor, name: str, action_id: str) -> HTMLResponse:
    """The request the form's values would send (an invalid value: why, instead)."""
    action = await asyncio.to_thread(_action, ctx, user, name, action_id)
    form = await read_form(request, max_bytes=MAX_FORM_BYTES)
    try:
        params = parse_form(action, form)
        preview = await asyncio.to_thread(preview_action, ctx, user, name, action_id, params)
    except (ValidationError, UsageError) as exc:
        return render(request, "device_preview.html", user, {"error": exc.message, "hint": exc.hint})
    return render(request, "device_preview.html", user, {
        "preview": preview, "cli": cli_of(name, action, params), "action": action})


@router.post("/devices/{name}/actions/{action_id}/run", response_class=HTMLResponse)
async def action_run(request: Request, ctx: Ctx, user: Actor, name: str, action_id: str) -> HTMLResponse:
    """Runs the action (a one-device job; a download's file lands in the device's downloads).
    A disruptive action needs the device's name typed as confirmation."""
    action = await asyncio.to_thread(_action, ctx, user, name, action_id)
    form = await read_form(request, max_bytes=MAX_FORM_BYTES)
    if action.disruptive:
        check(user, "act_disruptive")  # the service refuses too; this keeps the answer a plain 403
        if form.get("confirm", "").strip() != name:
            raise UsageError(f"{action.id} is disruptive: type the device name ({name}) to confirm")
    params = parse_form(action, form)
    options = {"overwrite": form.get("replace") == "on"} if action.response == "file" else None
    result = await service.run_action(ctx, user, name, action.id, params, options)
    data = result.outcome.data if result.outcome is not None else None
    saved = None
    if action.response == "file" and isinstance(data, dict) and isinstance(data.get("file"), str):
        saved, data = PurePath(data["file"]).name, None  # a link to it, not the server's path
    text = "" if data is None else data if isinstance(data, str) else json.dumps(data, indent=2, ensure_ascii=False)
    if len(text) > MAX_DATA_CHARS:
        text = text[:MAX_DATA_CHARS] + "\n… (cut)"
    return render(request, "device_outcome.html", user, {
        "job_id": result.job_id, "outcome": result.outcome, "data": text, "saved": saved, "name": name})


@router.post("/devices/{name}/pin", response_class=HTMLResponse)
async def repin(request: Request, ctx: Ctx, user: Admin, name: str) -> HTMLResponse:
    """Re-pin the device's certificates (admin only; audited with the reason)."""
    form = await read_form(request, max_bytes=MAX_FORM_BYTES)
    done = await pinning.repin(ctx, user, name, form.get("reason", ""))
    view = await asyncio.to_thread(service.device, ctx, user, name)
    current = await asyncio.to_thread(pinning.pins, ctx, user, name)
    return render(request, "device_pins.html", user, {"device": view, "pins": current, "repinned": done})
