"""The agent interface's tests: `avctl mcp` as a real process, driven by the MCP SDK's own client.

`McpClient` holds one client session in a thread of its own (its own event loop), so that a test
module shares one `avctl mcp` process between its tests and calls tools synchronously.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import mcp_types as types
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from avctl.emulator.core import EmulatorThread
from avctl.emulator.polyuc import EmulatedPolyUC
from avctl.emulator.solstice import EmulatedSolstice
from avctl.emulator.videoos import EmulatedVideoOS

T = TypeVar("T")
PASSWORD = "mcp-device-pw-Zq81"
#: how long one tool call may take at most (a loaded machine; the calls themselves take < 1 s)
CALL_TIMEOUT = 120.0
Streams = Callable[[], contextlib.AbstractAsyncContextManager[Any]]


@dataclass
class Fleet:
    emulators: EmulatorThread
    codec1: EmulatedVideoOS
    codec2: EmulatedVideoOS
    phone: EmulatedPolyUC
    pod: EmulatedSolstice
    home: Path
    inventory: Path

    @property
    def db(self) -> Path:
        return self.home / "avctl.db"

    def env(self) -> dict[str, str]:
        return {"AVCTL_HOME": str(self.home), "XDG_CACHE_HOME": str(self.home / "cache"), "FLEET_PW": PASSWORD}

    def sent(self) -> int:
        """Requests every device of the fleet has seen so far."""
        return sum(d.requests.total for d in (self.codec1, self.codec2, self.phone, self.pod))


@contextlib.contextmanager
def emulated_fleet(tmp: Path) -> Iterator[Fleet]:
    """Two codecs (sites hq and branch), a phone (hq) and a pod (branch) on loopback, and their inventory."""
    with EmulatorThread() as emulators:
        codec1 = emulators.add(EmulatedVideoOS("codec-1", password=PASSWORD))
        codec2 = emulators.add(EmulatedVideoOS("codec-2", password=PASSWORD))
        phone = emulators.add(EmulatedPolyUC("phone-1", password=PASSWORD))
        pod = emulators.add(EmulatedSolstice("pod-1", password=PASSWORD, v1_http_port="off"))
        for dev in (codec1, codec2):
            dev.faults.reboot_seconds = 0.2
        inv = tmp / "fleet.yaml"
        inv.write_text(
            "defaults: {password: 'env:FLEET_PW'}\n"
            "devices:\n"
            f"  codec-1: {{family: videoos, address: '127.0.0.1:{codec1.port}', site: hq, room: r-101, "
            "tags: [boardroom], config: {videoos: {device.local.devicename: '${room}-codec'}}}\n"
            f"  codec-2: {{family: videoos, address: '127.0.0.1:{codec2.port}', site: branch, room: r-201}}\n"
            f"  phone-1: {{family: polyuc, address: '127.0.0.1:{phone.port}', site: hq, room: r-101}}\n"
            f"  pod-1: {{family: solstice, address: '127.0.0.1:{pod.port}', site: branch, room: r-202, "
            f"ports: {{https: {pod.extra_ports['https']}}}}}\n")
        home = tmp / "home"
        home.mkdir()
        yield Fleet(emulators, codec1, codec2, phone, pod, home, inv)


def mcp_command(fleet: Fleet, *args: str) -> list[str]:
    return [sys.executable, "-m", "avctl", "mcp", "-i", str(fleet.inventory), "--db", str(fleet.db), *args]


def stdio(fleet: Fleet, *args: str, errlog: Path) -> Streams:
    cmd = mcp_command(fleet, *args)
    params = StdioServerParameters(command=cmd[0], args=cmd[1:], env=fleet.env())

    @contextlib.asynccontextmanager
    async def streams() -> AsyncIterator[Any]:
        with open(errlog, "a") as err:
            async with stdio_client(params, errlog=err) as pair:
                yield pair

    return streams


def http(url: str, token: str | None, *, cafile: str | None = None) -> Streams:
    import httpx2

    @contextlib.asynccontextmanager
    async def streams() -> AsyncIterator[Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        verify = ssl.create_default_context(cafile=cafile) if cafile else True
        async with (httpx2.AsyncClient(headers=headers, timeout=CALL_TIMEOUT, trust_env=False, verify=verify) as client,
                    streamable_http_client(url, http_client=client) as pair):
            yield pair[0], pair[1]

    return streams


class McpClient:
    """One MCP client session (the SDK's `ClientSession`) in a background thread; synchronous calls."""

    def __init__(self, streams: Streams, *, name: str = "pytest-agent") -> None:
        self.streams = streams
        self.name = name
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="mcp-client", daemon=True)
        self._stop: asyncio.Event | None = None
        self._ready: Future[ClientSession] = Future()
        self._done: Future[None] = Future()

    def __enter__(self) -> McpClient:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._main(), self.loop)
        self.session = self._ready.result(CALL_TIMEOUT)
        return self

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            async with self.streams() as (read, write), ClientSession(
                    read, write, client_info=types.Implementation(name=self.name, version="1.0")) as session:
                await session.initialize()
                self._ready.set_result(session)
                await self._stop.wait()
        except BaseException as exc:  # the test sees why the session could not start
            if not self._ready.done():
                self._ready.set_exception(exc)
        finally:
            self._done.set_result(None)

    def run(self, fn: Callable[[ClientSession], Awaitable[T]]) -> T:
        async def call() -> T:
            return await fn(self.session)

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(CALL_TIMEOUT)

    def call(self, tool: str, **args: Any) -> types.CallToolResult:
        return self.run(lambda s: s.call_tool(tool, args))

    def ok(self, tool: str, **args: Any) -> dict[str, Any]:
        """The tool's JSON result; fails the test on a tool error."""
        result = self.call(tool, **args)
        assert not result.is_error, f"{tool}: {text(result)}"
        data: dict[str, Any] = json.loads(text(result))
        return data

    def error(self, tool: str, **args: Any) -> str:
        """The tool error's one line; fails the test if the tool succeeded."""
        result = self.call(tool, **args)
        assert result.is_error, f"{tool} should have been refused: {text(result)[:500]}"
        return text(result)

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        with contextlib.suppress(Exception):
            self._done.result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)


def text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text

