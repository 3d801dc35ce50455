"""The server runs the schedules (``schedules: true`` in the server config, the default).

A loop wakes at the next due instant of any schedule (at least every `TICK` seconds, so a schedule
added or resumed from the CLI is seen), runs one pass (`avctl.schedule.runner.due_runs`: the
database's unique run key keeps a pass of ``avctl schedule run-due`` from starting the same run),
starts each due command as an asyncio subprocess and records its end. Runs left ``running`` by a
server that died are closed ``failed`` ("interrupted") at the first pass once their command is
gone too. On a clean stop the commands still running get SIGTERM (fleet jobs stop resumable) and
their ends are recorded.

``AVCTL_CLOCK_START=ISO`` (tests): the schedules' clock starts there and advances with real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from avctl.errors import AvctlError
from avctl.schedule.runner import Launch, child_command, due_runs, ended, next_wake, open_log
from avctl.schedule.store import ScheduleStore

log = logging.getLogger("avctl.server")

#: the longest wait between passes
TICK = 30.0
#: a command given SIGTERM at the server's stop has this long to end before SIGKILL
STOP_SECONDS = 10.0
CLOCK_ENV = "AVCTL_CLOCK_START"


def schedule_clock(environ: dict[str, str] | None = None) -> Callable[[], float]:
    """time.time, or (``AVCTL_CLOCK_START``) a clock that starts at the given instant."""
    raw = (os.environ if environ is None else environ).get(CLOCK_ENV, "").strip()
    if not raw:
        return time.time
    when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    start = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    origin = time.monotonic()
    return lambda: start + (time.monotonic() - origin)


class ScheduleLoop:
    def __init__(self, store: ScheduleStore, store_arg: str | None, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.store = store
        self.store_arg = store_arg
        self.clock = clock
        self._sleep = sleep
        self._running: dict[int, asyncio.Task[None]] = {}
        self._procs: dict[int, asyncio.subprocess.Process] = {}

    async def tick(self) -> list[int]:
        """One pass: the ids of the runs it started."""
        try:
            launches, skipped = await asyncio.to_thread(due_runs, self.store, self.clock())
        except AvctlError as exc:  # a database that cannot be read or written: the next pass tries again
            log.error("avctl serve: schedules: pass failed: %s", exc.message)
            return []
        except Exception:  # a bug must not end the schedules for the server's lifetime: logged, tried again
            log.exception("avctl serve: schedules: pass failed")
            return []
        for run in skipped:
            log.info("avctl serve: schedule run %s skipped: %s", run.id, run.reason)
        for launch in launches:
            task = asyncio.create_task(self._run(launch), name=f"avctl-schedule-{launch.run.id}")
            self._running[launch.run.id] = task
        return [launch.run.id for launch in launches]

    async def _run(self, launch: Launch) -> None:
        run_id = launch.run.id
        argv, env = child_command(launch, self.store_arg)
        try:
            try:
                with open_log(run_id) as out:
                    proc = await asyncio.create_subprocess_exec(
                        *argv, cwd=launch.schedule.cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                        stderr=subprocess.STDOUT)
            except OSError as exc:
                await asyncio.to_thread(ended, self.store, run_id, None, error=exc.strerror or str(exc))
                return
            self._procs[run_id] = proc
            log.info("avctl serve: schedule %s: run %s started (pid %s)", launch.schedule.name, run_id, proc.pid)
            await asyncio.to_thread(self.store.started, run_id, proc.pid)
            code = await proc.wait()
            state = await asyncio.to_thread(ended, self.store, run_id, code)
            log.info("avctl serve: schedule %s: run %s ended %s", launch.schedule.name, run_id, state)
        except AvctlError as exc:  # its end could not be written: the next start closes it as interrupted
            log.error("avctl serve: schedule run %s: %s", run_id, exc.message)
        finally:
            self._procs.pop(run_id, None)
            self._running.pop(run_id, None)

    async def _pause(self) -> float:
        now = self.clock()
        try:
            wake = await asyncio.to_thread(next_wake, self.store, now)
        except AvctlError:
            return TICK
        return TICK if wake is None else min(TICK, max(0.2, wake - now + 0.05))

    async def run(self) -> None:
        try:
            while True:
                await self.tick()
                await self._sleep(await self._pause())
        finally:
            await self._stop()

    async def _stop(self) -> None:
        """SIGTERM to the commands still running, SIGKILL after `STOP_SECONDS`; each run's task records its end."""
        for proc in list(self._procs.values()):
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        runs = list(self._running.values())
        if not runs:
            return
        _done, pending = await asyncio.wait(runs, timeout=STOP_SECONDS)
        if pending:
            for proc in list(self._procs.values()):
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await asyncio.wait(pending)
