"""Jobs: the recent ones (``/jobs``), one job live (``/jobs/{id}``), resuming an interrupted job.

A job page of a running job listens to ``/jobs/{id}/events``: an event when the job's progress
moved (outcomes coalesced), one right after the stream starts (what happened between the page's
rendering and the stream's start is never missed), and ``done`` at its end; the page fetches its
own fragment again on each. "Re-run failed" is the wizard over the failed and unreachable devices
with the job's action and parameters (secret ones are not stored: the wizard asks again).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from avctl.fleet.credentials import MASK
from avctl.server import service
from avctl.server.api.deps import authenticate_again
from avctl.server.context import ServerContext
from avctl.server.service.jobs import list_jobs_counted
from avctl.server.web.cli_text import cli_command
from avctl.server.web.deps import Actor, Ctx, Reader
from avctl.server.web.forms import PREFIX
from avctl.server.web.pages.job_new import MAX_FORM_BYTES, param_texts
from avctl.server.web.posted import read_form
from avctl.server.web.render import render

router = APIRouter(include_in_schema=False)

#: a burst of outcomes is one refresh of the page at most this often
THROTTLE_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
RETRY_STATUSES = ("failed", "unreachable")


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, ctx: Ctx, user: Reader,
              limit: Annotated[int, Query(ge=1, le=500)] = 50) -> HTMLResponse:
    return render(request, "jobs.html", user, {"jobs": list_jobs_counted(ctx, user, limit=limit)})


def _rerun_link(detail: service.JobDetail) -> tuple[list[str], str | None]:
    """The failed and unreachable devices, and the wizard's address for running the job on them again."""
    failed = [o.device for o in detail.outcomes if o.status in RETRY_STATUSES]
    if not failed:
        return failed, None
    job = detail.job
    query: list[tuple[str, Any]] = [("action", job.action), ("mode", job.options.get("mode", "action")),
                                    ("select", ",".join(f"name={n}" for n in failed)), ("rerun_of", job.id)]
    # as a field shows it: a job started through the API keeps typed values (true, 35, {...})
    query += [(PREFIX + k, v if isinstance(v, str) else json.dumps(v)) for k, v in job.params.items() if v != MASK]
    return failed, "/jobs/new?" + urlencode(query)


def _job_cli(detail: service.JobDetail) -> str:
    job = detail.job
    secret = {k for k, v in job.params.items() if v == MASK}
    return cli_command("jobs", "resume", str(job.id), params=dict.fromkeys(sorted(secret), "..."), secret=secret)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, ctx: Ctx, user: Reader, job_id: int) -> HTMLResponse:
    detail = service.job(ctx, user, job_id)
    failed, rerun = _rerun_link(detail)
    job = detail.job
    secrets = sorted(k for k, v in job.params.items() if v == MASK)
    mode = job.options.get("mode", "action")
    words = ("fleet", "run", job.action) if mode == "action" else ("fleet", job.action)
    return render(request, "jobs_job.html", user, {
        "d": detail, "job": job, "failed": failed, "rerun": rerun, "secrets": secrets, "mode": mode,
        "by_device": {o.device: o for o in detail.outcomes}, "in_doubt": set(detail.in_doubt),
        "resumable": detail.state == "interrupted" and bool(detail.pending),
        "cli": cli_command(*words, options=[("--select", job.selection)], params=job.params, secret=secrets),
        "resume_cli": _job_cli(detail)})


async def _progress(ctx: ServerContext, request: Request, job_id: int) -> AsyncIterator[str]:
    with ctx.progress.subscribe(job_id) as queue:
        yield "retry: 3000\n\n"
        yield "event: progress\ndata: subscribed\n\n"  # whatever happened before now is in the store
        checked = time.monotonic()
        done = False
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                event = None
            if time.monotonic() - checked >= KEEPALIVE_SECONDS:
                try:
                    await authenticate_again(request)
                except HTTPException:
                    return  # signed out: the page's next request goes to the login
                checked = time.monotonic()
            if event is None or done:
                yield ": keep-alive\n\n"
                continue
            await asyncio.sleep(THROTTLE_SECONDS)  # let a burst of outcomes become one refresh
            events = [event]
            while not queue.empty():
                events.append(queue.get_nowait())
            done = any(e["event"] == "done" for e in events)
            # a finished job's page has no stream: the open one idles until the page goes
            yield f"event: {'done' if done else 'progress'}\ndata: {job_id}\n\n"


@router.get("/jobs/{job_id}/events")
async def job_events(ctx: Ctx, user: Reader, request: Request, job_id: int) -> StreamingResponse:
    await asyncio.to_thread(service.job, ctx, user, job_id)  # 404 before the stream starts
    return StreamingResponse(_progress(ctx, request, job_id), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.post("/jobs/{job_id}/resume")
async def resume(request: Request, ctx: Ctx, user: Actor, job_id: int) -> Response:
    form = await read_form(request, max_bytes=MAX_FORM_BYTES)
    await service.resume_job(ctx, user, job_id, param_texts(form), retry_in_doubt=form.get("retry_in_doubt") == "on")
    return Response(status_code=200, headers={"HX-Redirect": f"/jobs/{job_id}"})
