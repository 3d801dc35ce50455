"""``/ui/live``: a server-sent events stream telling open pages which topics changed.

Pages listen with htmx (``hx-trigger="sse:state"``) and fetch their own fragment again, so there is
one renderer per fragment. Events are coalesced: at most one burst per `THROTTLE_SECONDS`, however
many devices were polled (a 10,000-device fleet changes state several times a second).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse

from avctl.server.api.deps import authenticate_again
from avctl.server.live import ChangeFeed
from avctl.server.web.deps import Ctx, Reader

router = APIRouter(include_in_schema=False)

THROTTLE_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
#: a stream outlives the check of the request that opened it: who asks is checked again this often
RECHECK_SECONDS = 60.0


async def _events(changes: ChangeFeed, request: Request) -> AsyncIterator[str]:
    seen = changes.versions()
    checked = time.monotonic()
    yield "retry: 3000\n\n"
    while True:
        moved = await changes.changed(seen, timeout=KEEPALIVE_SECONDS)
        if time.monotonic() - checked >= RECHECK_SECONDS:
            try:
                await authenticate_again(request)
            except HTTPException:
                return  # signed out, expired or disabled: the page's next request goes to the login
            checked = time.monotonic()
        if not moved:
            yield ": keep-alive\n\n"
            continue
        seen.update(moved)
        for topic, version in moved.items():
            yield f"event: {topic}\ndata: {version}\n\n"
        await asyncio.sleep(THROTTLE_SECONDS)


@router.get("/ui/live")
async def live(ctx: Ctx, _reader: Reader, request: Request) -> StreamingResponse:
    return StreamingResponse(_events(ctx.changes, request), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
