"""/healthz (open: load balancers and probes) and /metrics (Prometheus; any user or token)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import text

from avctl.server import service
from avctl.server.api.deps import Ctx, Reader
from avctl.server.api.schemas import Health, Problem
from avctl.server.metrics import CONTENT_TYPE

router = APIRouter(tags=["system"])
log = logging.getLogger(__name__)


@router.get("/healthz", response_model=Health, summary="Liveness and database check (no authentication)",
            responses={503: {"model": Health}})
def healthz(ctx: Ctx) -> Response:
    try:
        with ctx.db.session() as s:
            s.execute(text("SELECT 1"))
    except Exception as exc:  # what failed goes to the server's log, not to anonymous callers
        log.warning("avctl: health check: database: %s: %s", type(exc).__name__, exc)
        return JSONResponse(Health(status="unavailable", database="unavailable").model_dump(), status_code=503)
    return JSONResponse(Health(status="ok", database="ok").model_dump())


@router.get("/metrics", summary="Prometheus metrics (any role; devices of your sites only)",
            response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}, 401: {"model": Problem}})
def metrics(ctx: Ctx, principal: Reader) -> Response:
    # streamed: 10,000 devices are ~9 MB of text, made and sent a few hundred devices at a time
    chunks = ctx.metrics.exposition_chunks(principal, alerts_open=service.open_counts(ctx, principal),
                                           jobs_running=service.jobs_running(ctx))
    # plain text, never sniffed as HTML: label values come from inventories and devices
    return StreamingResponse(chunks, media_type=CONTENT_TYPE, headers={"X-Content-Type-Options": "nosniff"})
