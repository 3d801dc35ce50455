"""/api/v1/jobs: fleet jobs on a selection, their status, resume, and live progress (SSE)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from avctl.errors import UsageError
from avctl.server import service
from avctl.server.api.deps import Actor, Ctx, Reader, authenticate_again
from avctl.server.api.schemas import (
    JobList,
    JobOutcome,
    JobRequest,
    JobStarted,
    JobStatus,
    JobSummary,
    Problem,
    ResumeRequest,
)
from avctl.server.context import ServerContext
from avctl.server.jobs import done_event
from avctl.server.model import Principal
from avctl.server.service import ServiceError

router = APIRouter(prefix="/jobs", tags=["jobs"],
                   responses={401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}})

#: how often a stream re-reads the job store while no event comes (a job another process runs,
#: e.g. the CLI, publishes nothing here) and sends a keep-alive comment
REFRESH_SECONDS = 5.0


def _started(job_id: int) -> JobStarted:
    return JobStarted(job=job_id, url=f"/api/v1/jobs/{job_id}", events=f"/api/v1/jobs/{job_id}/events")


@router.get("", response_model=JobList, summary="The newest jobs")
def list_jobs(ctx: Ctx, principal: Reader, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> JobList:
    return JobList(items=[JobSummary.of(j) for j in service.list_jobs(ctx, principal, limit=limit)])


@router.post("", response_model=JobStarted, status_code=202, summary="Start a fleet job",
             responses={400: {"model": Problem}, 422: {"model": Problem}})
async def start_job(ctx: Ctx, principal: Actor, body: JobRequest) -> JobStarted:
    """An action or a verb on every device of the selection (among your sites). Validated for
    every family before anything is sent; disruptive ones need the operator or admin role."""
    if (body.action is None) == (body.verb is None):
        raise UsageError("give exactly one of action and verb")
    name, mode = (body.action, "action") if body.action is not None else (str(body.verb), "verb")
    job_id = await service.start_job(ctx, principal, name=name, mode=mode, params=body.params,
                                     selection=body.select, options=body.options)
    return _started(job_id)


@router.get("/{job_id}", response_model=JobStatus, summary="A job's state, counts and outcomes")
def get_job(ctx: Ctx, principal: Reader, job_id: int) -> JobStatus:
    return JobStatus.detail(service.job(ctx, principal, job_id))


@router.post("/{job_id}/resume", response_model=JobStarted, status_code=202, summary="Resume an interrupted job",
             responses={409: {"model": Problem}})
async def resume_job(ctx: Ctx, principal: Actor, job_id: int, body: ResumeRequest) -> JobStarted:
    return _started(await service.resume_job(ctx, principal, job_id, body.params,
                                             retry_in_doubt=body.retry_in_doubt))


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


async def _asker(request: Request) -> Principal | None:
    """Who the request authenticates as now; None once its session or token no longer works."""
    try:
        return await authenticate_again(request)
    except HTTPException:
        return None


async def _stream(ctx: ServerContext, request: Request, job_id: int) -> AsyncIterator[bytes]:
    """Every outcome, then done. Who asks is asked again before anything is sent: a stream ends with
    its session or token, and when its user may no longer see the job (role, sites, disabled)."""
    sent: set[str] = set()
    done: dict[str, Any] | None = None
    # subscribe before reading the store: an outcome is either in what we read or in the queue
    with ctx.progress.subscribe(job_id) as queue:
        while True:
            principal = await _asker(request)
            if principal is None:
                return
            try:
                detail = await asyncio.to_thread(service.job, ctx, principal, job_id)
            except ServiceError:
                return
            for o in detail.outcomes:  # stored before published: the store has what the queue said
                if o.device not in sent:
                    sent.add(o.device)
                    yield _sse("outcome", {"job": job_id, "outcome": JobOutcome.of(o).model_dump()})
            if detail.state != "running" or done is not None:
                yield _sse("done", done or done_event(job_id, detail.state, detail.counts))
                return
            try:
                event = await asyncio.wait_for(queue.get(), REFRESH_SECONDS)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            while True:
                if event["event"] == "done":
                    done = event
                if queue.empty():
                    break
                event = queue.get_nowait()


@router.get("/{job_id}/events", summary="Live progress (server-sent events)",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "an 'outcome' event per device as it is recorded, then 'done' "
                                            "with the counts; a finished job sends them all at once"}})
async def job_events(ctx: Ctx, principal: Reader, job_id: int, request: Request) -> StreamingResponse:
    await asyncio.to_thread(service.job, ctx, principal, job_id)  # 404 before the stream starts
    return StreamingResponse(_stream(ctx, request, job_id), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
