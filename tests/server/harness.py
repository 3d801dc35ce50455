"""Real servers for the end-to-end tests: the avctl server as a process, a webhook receiver, an SMTP server.

Everything listens on 127.0.0.1 only. Waiting is always for a condition (checked often, with a
generous deadline), never for a guessed time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from aiohttp import web
from aiosmtpd.controller import Controller

from tests.ports import free_port


def wait_for(check: Callable[[], Any], *, within: float = 60.0, every: float = 0.1, what: str = "condition") -> Any:
    """Until `check()` returns something truthy (returned); AssertionError naming `what` after `within` s."""
    deadline = time.monotonic() + within
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except (requests.RequestException, AssertionError) as exc:
            last_error, value = exc, None
        if value:
            return value
        time.sleep(every)
    why = f" ({last_error})" if last_error else ""
    raise AssertionError(f"timed out after {within:g} s waiting for {what}{why}")


# --- webhook receiver ------------------------------------------------------------------------------


@dataclass
class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that keeps every JSON body POSTed to it; can fail the next N by count."""

    received: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0
    port: int = 0

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="webhook")
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return web.Response(status=503)
            self.received.append(body)
        return web.Response(status=204)

    def start(self) -> WebhookReceiver:
        self._thread.start()
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
        asyncio.run_coroutine_threadsafe(self._runner.setup(), self._loop).result(10)
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        asyncio.run_coroutine_threadsafe(site.start(), self._loop).result(10)
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.received)


# --- SMTP server -----------------------------------------------------------------------------------


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              envelope.content.decode("utf-8", "replace")))
        return "250 OK"


class SmtpServer:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message."""

    def __init__(self) -> None:
        self.mailbox = _Mailbox()
        self.port = free_port()
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)

    def start(self) -> SmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    @property
    def messages(self) -> list[tuple[str, list[str], str]]:
        return list(self.mailbox.messages)


# --- the avctl server as a process ----------------------------------------------------------------


class ServerProcess:
    """``avctl serve`` in its own process, with its own AVCTL_HOME; HTTPS with its self-signed cert,
    or plain HTTP on loopback with `http` (the browser tests)."""

    def __init__(self, home: Path, args: Sequence[str], *, env: dict[str, str] | None = None,
                 http: bool = False, session: bool = False) -> None:
        self.home = home
        #: in a process group of its own (`setsid`): a test may signal the whole group
        self.new_session = session
        self.port = free_port()
        self.http = http
        self.args = [*args, "--listen", f"127.0.0.1:{self.port}", *(["--http"] if http else [])]
        self.env = {**os.environ, "AVCTL_HOME": str(home), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / f"server-{self.port}.log"
        self.session = requests.Session()
        # no CA bundle or proxy from the environment: the server's own certificate, 127.0.0.1 only
        self.session.trust_env = False

    @property
    def base(self) -> str:
        return f"{'http' if self.http else 'https'}://127.0.0.1:{self.port}"

    @property
    def certfile(self) -> Path:
        return self.home / "server" / "tls-cert.pem"

    def start(self, *, within: float = 90.0) -> ServerProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        # a free port may be taken by another program before the server binds it (a loaded machine
        # runs benchmarks with thousands of sockets): then the server says so and exits, and another
        # port is tried; a server that did not exit is ours, so /healthz is never another's answer
        for _attempt in range(5):
            with open(self.log, "ab") as out:
                self.proc = subprocess.Popen([sys.executable, "-m", "avctl.cli.main", "serve", *self.args],
                                             env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                             start_new_session=self.new_session)
            try:
                wait_for(self._ready, within=within,
                         what=f"the server on port {self.port} (log: {self.log_text()[-2000:]})")
                break
            except RuntimeError:
                if "address already in use" not in self.log_text().lower():
                    raise
                self._move(free_port())
        else:
            raise RuntimeError(f"no free port for the server after 5 tries: {self.log_text()[-2000:]}")
        if not self.http:
            self.session.verify = str(self.certfile)
        return self

    def _move(self, port: int) -> None:
        listen = self.args.index("--listen")
        self.args[listen + 1] = f"127.0.0.1:{port}"
        self.port = port
        self.log = self.home / f"server-{port}.log"

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"avctl serve exited with {self.proc.returncode}: {self.log_text()[-3000:]}")
        if self.http:  # refused until it listens: wait_for tries again
            return requests.get(self.base + "/healthz", timeout=5).status_code == 200
        if not self.certfile.exists():
            return False
        r = requests.get(self.base + "/healthz", verify=str(self.certfile), timeout=5)
        return r.status_code == 200

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        # our kept-alive connections closed first: a client that holds one open costs the server its
        # graceful-shutdown wait (tested with the connections open elsewhere)
        self.session.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(30)

    # -- API -----------------------------------------------------------------------------------------

    def use_token(self, token: str) -> ServerProcess:
        self.session.headers["Authorization"] = f"Bearer {token}"
        return self

    def login(self, name: str, password: str) -> None:
        r = self.session.post(self.base + "/api/v1/auth/login", json={"name": name, "password": password}, timeout=10)
        r.raise_for_status()
        self.session.headers["X-CSRF-Token"] = r.json()["csrf_token"]

    def get(self, path: str, **params: Any) -> Any:
        r = self.session.get(self.base + path, params=params, timeout=30)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: Any = None) -> Any:
        r = self.session.post(self.base + path, json=body or {}, timeout=30)
        r.raise_for_status()
        return r.json() if r.content else None


def run_cli(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """One avctl command as a real process with `home` as AVCTL_HOME."""
    env = {**os.environ, "AVCTL_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "avctl.cli.main", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


def sse_events(response: requests.Response) -> Iterator[tuple[str, Any]]:
    """(event, data) pairs of a server-sent events stream."""
    event, data = "message", []
    for raw in response.iter_lines(decode_unicode=True):
        if raw == "":
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif raw.startswith("event:"):
            event = raw[6:].strip()
        elif raw.startswith("data:"):
            data.append(raw[5:].strip())


# --- an emulated fleet and its inventory, a server with a token --------------------------------------


def write_inventory(path: Path, devices: Sequence[Any], *, password_file: str = "fleet.password",
                    passwords: dict[str, str] | None = None) -> Path:
    """The inventory of emulated `devices` (their v1 sockets too): every device with the password in
    `password_file` beside it, unless `passwords` names another reference for it."""
    lines = [f"defaults: {{password: 'file:{password_file}'}}", "devices:"]
    for dev in devices:
        ports = {k: v for k, v in getattr(dev, "extra_ports", {}).items() if v}
        extra = f", ports: {json.dumps(ports)}" if ports else ""
        own = (passwords or {}).get(dev.name)
        pw = f", password: '{own}'" if own else ""
        lines.append(f"  {dev.name}: {{family: {dev.family}, address: '{dev.host}:{dev.port}', "
                     f"site: hq, room: {dev.name}{extra}{pw}}}")
    # written whole then renamed: the server's watcher never reads a half-written file
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return path


def add_admin(home: Path, db: str, name: str = "admin", password: str = "e2e-admin-pw-9Rt4") -> str:
    """An admin user and an API token for it (made with the CLI, before the server starts); the token."""
    made = run_cli(home, "users", "add", name, "--role", "admin", "--password-stdin", "--db", db,
                   stdin=password + "\n")
    assert made.returncode == 0, made.stderr
    token = run_cli(home, "tokens", "create", "e2e", "--user", name, "--db", db)
    assert token.returncode == 0, token.stderr
    return token.stdout.strip()


def db_rows(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Rows of the server's database, read as another program would."""
    from sqlalchemy import create_engine, text

    from avctl.db.engine import database_url

    engine = create_engine(database_url(url))
    try:
        with engine.begin() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()
