"""The poll engine in a process of its own: the executor's polling half for ``avctl serve``.

At 10,000 devices polling is ~170 polls and ~600 TLS requests a second, about half a core even with
the lean transport. In the server's own process that work held the event loop and the interpreter
lock the API and the dashboard need: answers that take 20 ms on an idle server took
seconds (p99) while it polled. Here the engine runs in a child process with its own loop:

    server  --targets, forgotten pins, stop-->  poller process (PollEngine, its TLS connections)
    server  <--observations, poll lag (batched)--  poller process

The child resolves the devices' secrets itself (the same references, the same base directory) and
checks certificates against the same known-devices file. A child that dies is started again, its
targets handed over again (with growing delays while it keeps dying); the server logs each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from avctl.errors import AvctlError
from avctl.fleet.credentials import CredentialResolver
from avctl.fleet.inventory import DeviceEntry
from avctl.paths import child_environment
from avctl.server.executor import ObservationSink
from avctl.server.heap import settle, trim_every
from avctl.server.model import Observation
from avctl.server.poll.engine import PollEngine, PollRunner, Rejected
from avctl.server.poll.schedule import PollSettings
from avctl.server.wire import decode, encode
from avctl.transport.tls import KnownHosts, TLSPolicy

log = logging.getLogger("avctl.server")

#: how long the child may take to start (imports, its loop) before the server gives up
START_SECONDS = 60.0
#: how long the child may take to log out of every device when the server stops
STOP_SECONDS = 20.0
#: the child sends what it observed at most this long after it was observed
FLUSH_SECONDS = 0.05
#: delays before starting a child that died again (then the last one, again and again)
RESTART_DELAYS = (1.0, 5.0, 30.0, 120.0)
#: a child that ran this long before dying had not been dying in a loop: delays start over
STABLE_SECONDS = 600.0
#: the poller's CPU priority below the server's (nice): when the host is busy, a page or an API
#: answer goes first and a poll starts a little later (the poll lag metric shows how much)
POLLER_NICE = 5
#: the signals a terminal, `timeout` or systemd send to the whole process group: the poller ignores them
_GROUP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


@dataclass(frozen=True)
class ChildConfig:
    """What the child needs to build its engine (sent once, when it starts)."""

    settings: PollSettings
    #: where relative secret references (file:...) are resolved: the inventory's directory
    base_dir: Path
    known_hosts: Path
    log_level: int = logging.INFO


@dataclass
class _Batch:
    observations: list[Observation] = field(default_factory=list)
    lags: list[tuple[str, float]] = field(default_factory=list)
    #: the devices whose login was rejected, as the child's engine knows them now (None: unchanged)
    rejected: Rejected | None = None


# -- messages between the processes ------------------------------------------------------------------


def _send(conn: Connection, message: tuple[Any, ...]) -> None:
    conn.send_bytes(encode(message))


def _receive(conn: Connection) -> tuple[Any, ...]:
    message = decode(conn.recv_bytes())
    assert isinstance(message, tuple)
    return message


# -- the server's side ----------------------------------------------------------------------------------


class PollProcess:
    """Runs a `PollEngine` in a child process; same interface as `PollRunner`.

    ``sink`` gets every observation, in order, in the server's loop; ``on_lag(family, seconds)``
    every poll's lag. Targets given before `start` are handed over when the child starts.
    """

    def __init__(self, config: ChildConfig, *, sink: ObservationSink,
                 on_lag: Callable[[str, float], None] | None = None,
                 restart_delays: Sequence[float] = RESTART_DELAYS) -> None:
        self.config = config
        self.sink = sink
        self.on_lag = on_lag
        self.restart_delays = tuple(restart_delays)
        self._targets: list[DeviceEntry] | None = None
        #: rejected logins, kept from the child's reports so that a restarted child does not retry them
        self._rejected: Rejected = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._to_child: Connection | None = None
        self._send_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: asyncio.Queue[tuple[Any, ...] | None] = asyncio.Queue()
        self._consumer: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._reader: threading.Thread | None = None
        self._stopping = False
        self._spawned_at = 0.0
        #: deaths in a row, each within STABLE_SECONDS of its start (the next restart waits longer)
        self._failures = 0
        #: children started (1 while the first lives); for metrics and tests
        self.starts = 0
        self.pid: int | None = None

    # the executor's polling half

    def set_poll_targets(self, devices: Sequence[DeviceEntry]) -> None:
        self._targets = list(devices)
        self._tell(("targets", self._targets, None))

    def forget_pins(self, endpoints: Sequence[tuple[str, int]]) -> None:
        """The pins of these (host, port) were replaced: the child checks the new ones from now on."""
        self._tell(("forget_pins", list(endpoints)))

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._spawn()
        self._consumer = asyncio.create_task(self._consume(), name="avctl-poll-inbox")

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        await self._end_child()
        if self._reader is not None:
            # everything the child sent before it ended is in the inbox before the end marker
            await asyncio.to_thread(self._reader.join, STOP_SECONDS)
        if self._consumer is not None:
            await self._inbox.put(None)
            await self._consumer

    # the child

    async def _spawn(self) -> None:
        # a plain child process over two pipes, not multiprocessing's spawn: that also starts a
        # resource tracker process (12 MB) for semaphores and shared memory the poller never uses
        child_in, down = os.pipe()
        up, child_out = os.pipe()
        # the child is born with the group signals blocked (they wait, they do not kill it) until it
        # ignores them: a Ctrl-C or SIGTERM to the process group while it starts must not end it
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _GROUP_SIGNALS)
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(child_in), str(child_out)], pass_fds=(child_in, child_out),
                stdin=subprocess.DEVNULL, env=child_environment())
        except BaseException:
            for fd in (down, up):
                os.close(fd)
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            os.close(child_in)
            os.close(child_out)
        down_write, up_read = Connection(down, readable=False), Connection(up, writable=False)
        try:
            _send(down_write, ("config", self.config))
            await asyncio.wait_for(asyncio.to_thread(_receive, up_read), START_SECONDS)  # its "ready"
        except (EOFError, OSError, TimeoutError) as exc:
            process.kill()
            process.wait()
            down_write.close()
            up_read.close()
            reason = ("it did not answer in time" if isinstance(exc, TimeoutError)
                      else f"it ended with exit code {process.returncode}")
            raise AvctlError(f"avctl serve: the poller process did not start: {reason}",
                             hint="see the lines it wrote above") from None
        self._process, self._to_child, self.pid = process, down_write, process.pid
        self._spawned_at = time.monotonic()
        self.starts += 1
        if self._targets is not None:
            self._tell(("targets", self._targets, self._rejected))
        assert self._loop is not None
        self._reader = threading.Thread(target=self._read, args=(up_read, self._loop, process),
                                        name="avctl-poll-reader", daemon=True)
        self._reader.start()

    def _tell(self, message: tuple[Any, ...]) -> None:
        conn = self._to_child
        if conn is None:
            return  # not started yet, or being started again: it is told the targets when it starts
        try:
            with self._send_lock:
                _send(conn, message)
        except OSError:
            pass  # it died: the supervisor starts another, which is told the targets

    def _read(self, conn: Connection, loop: asyncio.AbstractEventLoop, process: subprocess.Popen[bytes]) -> None:
        """A thread: the child's messages into the loop's inbox until the child closes its end."""
        try:
            while True:
                message = _receive(conn)
                loop.call_soon_threadsafe(self._inbox.put_nowait, message)
        except (EOFError, OSError):
            pass
        finally:
            conn.close()
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server has ended
                loop.call_soon_threadsafe(self._child_ended, process)

    def _child_ended(self, process: subprocess.Popen[bytes]) -> None:
        if self._stopping or process is not self._process:
            return
        self._to_child = None
        self._supervisor = asyncio.create_task(self._restart(process), name="avctl-poll-restart")

    async def _restart(self, dead: subprocess.Popen[bytes]) -> None:
        await asyncio.to_thread(dead.wait)
        if time.monotonic() - self._spawned_at > STABLE_SECONDS:
            self._failures = 0
        why = f"ended (exit code {dead.returncode})"
        while not self._stopping:  # a child that died as the server was told to stop is not started again
            delay = self.restart_delays[min(self._failures, len(self.restart_delays) - 1)]
            self._failures += 1
            log.error("avctl serve: the poller process %s; starting it again in %.0f s", why, delay)
            await asyncio.sleep(delay)
            try:
                await self._spawn()
            except AvctlError as exc:
                why = f"did not start ({exc})"
                continue
            return

    async def _end_child(self) -> None:
        process, conn = self._process, self._to_child
        self._to_child = None
        if process is None:
            return
        if conn is not None:
            with contextlib.suppress(OSError), self._send_lock:
                _send(conn, ("stop",))
            conn.close()
        try:
            await asyncio.to_thread(process.wait, STOP_SECONDS)
        except subprocess.TimeoutExpired:
            log.error("avctl serve: the poller process did not stop within %.0f s; killing it", STOP_SECONDS)
            process.kill()
            await asyncio.to_thread(process.wait)

    async def _consume(self) -> None:
        while (message := await self._inbox.get()) is not None:
            if message[0] != "batch":
                continue
            batch: _Batch = message[1]
            if batch.rejected is not None:
                self._rejected = batch.rejected
            if self.on_lag is not None:
                for family, seconds in batch.lags:
                    self.on_lag(family, seconds)
            for observation in batch.observations:
                try:
                    await self.sink(observation)
                except Exception as exc:  # one bad observation must not stop the others
                    log.warning("avctl: the observation sink failed for %s: %s: %s", observation.device,
                                type(exc).__name__, exc)


# -- the child's side ---------------------------------------------------------------------------------


#: what the child runs: its two pipes' descriptors follow on its command line
_CHILD = ("import sys; from avctl.server.poll.process import child_entry; "
          "child_entry(int(sys.argv[1]), int(sys.argv[2]))")


def child_entry(inbox_fd: int, outbox_fd: int) -> None:
    """The child's start: its pipes from the server, then its configuration, the first message."""
    inbox, outbox = Connection(inbox_fd, writable=False), Connection(outbox_fd, readable=False)
    try:
        message = _receive(inbox)
    except (EOFError, OSError):
        return  # the server went away before it said anything
    if message[0] != "config" or not isinstance(message[1], ChildConfig):
        raise SystemExit("avctl poller: the server's first message was not its configuration")
    child_main(message[1], inbox, outbox)


def child_main(config: ChildConfig, inbox: Connection, outbox: Connection) -> None:
    """The poller process: polls until told to stop or until the server's end of the pipe closes."""
    # Ctrl-C in a terminal, `timeout` and systemd's KillMode=control-group signal the whole process
    # group: the server decides when polling stops (it says so through the pipe; a server that is gone
    # closes the pipe, which ends this process too)
    for number in (*_GROUP_SIGNALS, getattr(signal, "SIGHUP", None)):
        if number is not None:
            signal.signal(number, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _GROUP_SIGNALS)  # blocked by the server while it started this
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    with contextlib.suppress(AttributeError, OSError):  # no nice() on Windows
        os.nice(POLLER_NICE)
    asyncio.run(_Child(config, inbox, outbox).run())


class _Child:
    def __init__(self, config: ChildConfig, inbox: Connection, outbox: Connection) -> None:
        self.config = config
        self.inbox = inbox
        self.outbox = outbox
        self.batch = _Batch()
        self.flush_scheduled = False
        self.reported_rejected: set[str] = set()
        self.settled = False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.tls = TLSPolicy.pinned(KnownHosts(self.config.known_hosts))
        self.engine = PollEngine(sink=self._observed, tls=self.tls,
                                 resolver=CredentialResolver(base_dir=self.config.base_dir),
                                 settings=self.config.settings, on_lag=self._lag)
        runner = PollRunner(self.engine)
        stopped = asyncio.Event()
        threading.Thread(target=self._read, args=(loop, stopped), name="avctl-poller-inbox", daemon=True).start()
        _send(self.outbox, ("ready",))
        await runner.start()
        trimmer = asyncio.create_task(trim_every(), name="avctl-poller-trim")
        try:
            await stopped.wait()
        finally:
            trimmer.cancel()
            await runner.stop()  # logs out of every device
            self._flush()
            self.outbox.close()

    def _read(self, loop: asyncio.AbstractEventLoop, stopped: asyncio.Event) -> None:
        try:
            while True:
                message = _receive(self.inbox)
                if message[0] == "stop":
                    break
                loop.call_soon_threadsafe(self._handle, message)
        except (EOFError, OSError):
            pass  # the server is gone: stop too
        loop.call_soon_threadsafe(stopped.set)

    def _handle(self, message: tuple[Any, ...]) -> None:
        if message[0] == "targets":
            self.engine.set_targets(message[1], rejected=message[2])
            if not self.settled:
                # the engine, its devices and their coordinators live as long as the process: out of
                # the collector's reach once they exist (the targets come after the start)
                self.settled = True
                settle()
        elif message[0] == "forget_pins":
            for host, port in message[1]:
                self.tls.forget(host, port)

    async def _observed(self, observation: Observation) -> None:
        self.batch.observations.append(observation)
        if observation.state == "auth_failed" or observation.device in self.reported_rejected:
            # the server keeps the list: a poller started after this one dies must not try again
            self.batch.rejected = self.engine.rejected()
            self.reported_rejected = set(self.batch.rejected)
        self._later()

    def _lag(self, family: str, seconds: float) -> None:
        self.batch.lags.append((family, seconds))
        self._later()

    def _later(self) -> None:
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        batch, self.batch = self.batch, _Batch()
        if batch.observations or batch.lags:
            with contextlib.suppress(OSError):  # the server is gone; the reader thread stops this process
                _send(self.outbox, ("batch", batch))
