"""`avctl mcp --listen`: streamable HTTP on loopback, every request with a bearer token (the operator's,
or a server API token acting as its user, role and sites)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from avctl.server.tls import self_signed_tls
from tests.mcp.harness import Fleet, McpClient, http, mcp_command
from tests.ports import free_port
from tests.server.harness import run_cli, wait_for

OPERATOR_TOKEN = "operator-token-0123456789abcdef"
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "curl", "version": "0"}}}


@dataclass
class Served:
    url: str
    viewer: str
    helpdesk: str


def _user(fleet: Fleet, name: str, role: str, *extra: str) -> str:
    made = run_cli(fleet.home, "users", "add", name, "--role", role, "--password-stdin", "--db", str(fleet.db),
                   *extra, stdin="a-long-password-8Kq2\n")
    assert made.returncode == 0, made.stderr
    token = run_cli(fleet.home, "tokens", "create", "agent", "--user", name, "--db", str(fleet.db))
    assert token.returncode == 0, token.stderr
    return token.stdout.strip()


def _start(fleet: Fleet, port: int, args: tuple[str, ...]) -> tuple[subprocess.Popen[bytes], Path]:
    log = fleet.home / f"mcp-http-{port}.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [*mcp_command(fleet, "--listen", f"127.0.0.1:{port}", "--token-env", "MCP_OP", *args)],
            env={**fleet.env(), "MCP_OP": OPERATOR_TOKEN, "PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL,
            stdout=err, stderr=subprocess.STDOUT)
    return proc, log


@contextlib.contextmanager
def listening(fleet: Fleet, *args: str) -> Iterator[str]:
    """`avctl mcp --listen 127.0.0.1:PORT ARGS` until the block ends; its host:port. A free port can be
    taken by another program before the server binds it (a loaded machine): then another is tried."""
    for _attempt in range(5):
        port = free_port()
        proc, log = _start(fleet, port, args)

        def ready(proc: subprocess.Popen[bytes] = proc, log: Path = log) -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"avctl mcp exited: {log.read_text()[-3000:]}")
            return "avctl mcp: ready" in log.read_text()

        try:
            wait_for(ready, within=90, what="avctl mcp --listen")
            break
        except RuntimeError:
            if "address already in use" not in log.read_text().lower():
                raise
    else:
        raise RuntimeError("no free port for avctl mcp after 5 tries")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def served(fleet: Fleet) -> Iterator[Served]:
    viewer = _user(fleet, "vera", "viewer")
    helpdesk = _user(fleet, "hank", "helpdesk", "--sites", "hq")
    with listening(fleet, "--allow-disruptive") as where:
        yield Served(f"http://{where}/mcp", viewer, helpdesk)


def test_no_token_or_a_bad_one_is_refused_with_401(served: Served) -> None:
    session = requests.Session()
    session.trust_env = False
    headers = {"Accept": "application/json, text/event-stream"}
    for auth in (None, "Bearer avctl_" + "x" * 43, "Bearer " + OPERATOR_TOKEN[:-1] + "0", "Basic dXNlcjpwdw==",
                 "Bearer "):
        sent = {**headers, **({"Authorization": auth} if auth else {})}
        r = session.post(served.url, json=INITIALIZE, headers=sent, timeout=30)
        assert r.status_code == 401, (auth, r.text)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert OPERATOR_TOKEN not in r.text


def test_the_operators_token_works_like_stdio(served: Served, fleet: Fleet) -> None:
    with McpClient(http(served.url, OPERATOR_TOKEN), name="pytest-http") as agent:
        assert len(agent.run(lambda s: s.list_tools()).tools) == 9
        assert agent.ok("find_devices")["total"] == 4
        assert agent.ok("call_action", device="codec-1", action="audio_volume_set",
                        params={"volume": 71})["outcome"]["status"] == "ok"
        assert agent.ok("audit_search", action="audio_volume_set")["entries"][0]["user"] == "mcp:pytest-http"
        plan = agent.ok("call_action", device="codec-1", action="system_reboot")
        assert plan["status"] == "confirmation_required"
    assert fleet.codec1.state.volume == 71 and fleet.codec1.state.reboots == 0


def test_a_viewer_token_cannot_change_anything(served: Served, fleet: Fleet) -> None:
    before, volume = fleet.sent(), fleet.codec1.state.volume
    with McpClient(http(served.url, served.viewer), name="pytest-viewer") as agent:
        assert agent.ok("find_devices")["total"] == 4
        assert agent.ok("describe_action", family="videoos", action="system_reboot")["disruptive"] is True
        for tool, args in (("call_action", {"device": "codec-1", "action": "audio_volume_set",
                                            "params": {"volume": 1}}),
                           ("call_action", {"device": "codec-1", "action": "system_reboot"}),
                           ("fleet_run", {"action": "audio_volume_set", "params": {"volume": 1}}),
                           ("fleet_plan", {"verb": "reboot"})):
            assert "your role (viewer) may not" in agent.error(tool, **args)
        status = agent.ok("device_status", device="codec-1")
        assert status["live"] is None and "viewer" in status["live_error"]
    assert fleet.sent() == before and fleet.codec1.state.volume == volume


def test_a_helpdesk_token_acts_as_its_user_in_its_sites(served: Served, fleet: Fleet) -> None:
    before = fleet.sent()
    with McpClient(http(served.url, served.helpdesk), name="pytest-helpdesk") as agent:
        assert [d["name"] for d in agent.ok("find_devices")["devices"]] == ["codec-1", "phone-1"]
        assert "no device named 'codec-2'" in agent.error("device_status", device="codec-2")
        line = agent.error("call_action", device="codec-1", action="system_reboot")
        assert "your role (helpdesk) may not run it" in line
        assert fleet.sent() == before
        got = agent.ok("call_action", device="codec-1", action="audio_volume_set", params={"volume": 72})
        assert got["outcome"]["status"] == "ok"
        entry = agent.ok("audit_search", action="audio_volume_set")["entries"][0]
        assert entry["user"] == "mcp:hank/pytest-helpdesk"
    assert fleet.codec1.state.volume == 72 and fleet.codec1.state.reboots == 0


def test_listen_refuses_a_non_loopback_address_without_tls(fleet: Fleet) -> None:
    proc = subprocess.run(mcp_command(fleet, "--listen", "0.0.0.0:8443"), capture_output=True, text=True,
                          timeout=120, env={**fleet.env(), "PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert "plain HTTP beyond loopback would send bearer tokens in clear" in proc.stderr
    assert "--tls-cert and --tls-key" in proc.stderr


def test_https_with_the_operators_certificate(fleet: Fleet, tmp_path: Path) -> None:
    tls = self_signed_tls("127.0.0.1", tmp_path / "tls")
    with listening(fleet, "--tls-cert", str(tls.certfile), "--tls-key", str(tls.keyfile)) as where:
        plain = requests.Session()
        plain.trust_env = False
        with pytest.raises(requests.ConnectionError):  # no plain HTTP beside it
            plain.post(f"http://{where}/mcp", json=INITIALIZE, timeout=30)
        with McpClient(http(f"https://{where}/mcp", OPERATOR_TOKEN, cafile=str(tls.certfile)),
                       name="pytest-tls") as agent:
            assert agent.ok("find_devices", selection="family=polyuc")["total"] == 1
            assert "read-only" in agent.error("call_action", device="codec-1", action="audio_volume_set",
                                              params={"volume": 3})


def test_a_port_in_use_is_one_clear_error(fleet: Fleet) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(mcp_command(fleet, "--listen", f"127.0.0.1:{port}"), capture_output=True, text=True,
                              timeout=120, env={**fleet.env(), "PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr
    assert f"avctl: error: cannot listen on 127.0.0.1:{port}" in proc.stderr and "Traceback" not in proc.stderr
