"""The scheduled configuration drift check (``config_drift: {every: 6h}``, ``--drift-every``).

The first check starts once the server runs, then one every ``every`` seconds; a check still
running when the next is due is left to finish (no second one over the same devices). A check
that cannot start (invalid desired state, a database that cannot be written) is logged and
shown on the page; the next one is tried on time all the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from avctl.errors import AvctlError
from avctl.server.context import ServerContext
from avctl.server.service.config import drift_running, start_drift

log = logging.getLogger("avctl.server")


class DriftSchedule:
    def __init__(self, ctx: ServerContext, every: float,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.ctx = ctx
        self.every = every
        self._sleep = sleep

    async def tick(self) -> int | None:
        """One due check: its job id, or None if none started."""
        running = await asyncio.to_thread(drift_running, self.ctx)
        if running is not None:
            log.info("avctl serve: drift check %s still running: the next one waits its turn", running)
            return None
        try:
            return await start_drift(self.ctx)
        except AvctlError as exc:  # invalid desired state, a database that cannot be written: on the page
            self.ctx.drift.error, self.ctx.drift.error_at = exc.message, self.ctx.clock()
            log.error("avctl serve: drift check not started: %s", exc.message)
            return None

    async def run(self) -> None:
        while True:
            await self.tick()
            await self._sleep(self.every)
