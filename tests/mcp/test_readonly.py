"""`avctl mcp` read-only (the default), with a short confirmation expiry and a rate limit; stdout
carries the protocol only; usage errors of the command line."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mcp.harness import Fleet, McpClient, mcp_command, stdio

CHANGES = [
    ("call_action", {"device": "codec-1", "action": "audio_volume_set", "params": {"volume": 5}}),
    ("call_action", {"device": "codec-1", "action": "system_reboot"}),
    ("call_action", {"device": "phone-1", "action": "skype_sign_in",
                     "params": {"Address": "sip:a@example.com", "Password": "pw-123456"}}),
    ("fleet_run", {"action": "audio_volume_set", "params": {"volume": 5}}),
    ("fleet_run", {"verb": "reboot", "selection": "family=videoos"}),
    ("config_drift", {"check": True}),
]


@pytest.fixture(scope="module")
def readonly(fleet: Fleet, errlog: Path) -> Iterator[McpClient]:
    with McpClient(stdio(fleet, errlog=errlog), name="ro-agent") as client:
        yield client


@pytest.fixture(scope="module")
def hasty(fleet: Fleet, errlog: Path) -> Iterator[McpClient]:
    """Changes allowed, but not disruptive ones; every token expires at once; one change a minute."""
    with McpClient(stdio(fleet, "--allow-actions", "--confirm-ttl", "0s", "--max-changes", "1", errlog=errlog),
                   name="hasty-agent") as client:
        yield client


def test_read_only_mode_reads(readonly: McpClient, fleet: Fleet) -> None:
    assert readonly.ok("find_devices")["total"] == 4
    fleet.codec1.state.volume = 64
    assert readonly.ok("call_action", device="codec-1", action="audio_volume_get")["outcome"]["data"] == 64
    assert readonly.ok("device_status", device="phone-1")["live"]["status"] == "ok"
    plan = readonly.ok("fleet_plan", action="audio_volume_set", params={"volume": 5})
    assert plan["devices"]["run"] == 2  # a plan changes nothing: it is shown
    assert readonly.ok("config_drift")["job_id"] is None


@pytest.mark.parametrize(("tool", "args"), CHANGES)
def test_read_only_mode_refuses_every_change(readonly: McpClient, fleet: Fleet, tool: str, args: dict) -> None:
    before, volume = fleet.sent(), fleet.codec1.state.volume
    line = readonly.error(tool, **args)
    assert line.startswith("refused:") and "--allow-" in line
    if tool != "config_drift":  # a token does not get round it
        assert readonly.error(tool, **args, confirm="a-made-up-token").startswith("refused:")
    assert fleet.sent() == before
    assert (fleet.codec1.state.reboots, fleet.codec1.state.volume) == (0, volume)


def test_disruptive_needs_its_own_flag(hasty: McpClient, fleet: Fleet) -> None:
    before = fleet.sent()
    line = hasty.error("call_action", device="codec-1", action="system_reboot")
    assert "disruptive" in line and "--allow-disruptive" in line
    assert "--allow-disruptive" in hasty.error("fleet_run", verb="reboot", selection="name=codec-1")
    assert fleet.sent() == before and fleet.codec1.state.reboots == 0


def test_an_expired_token_is_refused(hasty: McpClient, fleet: Fleet) -> None:
    plan = hasty.ok("fleet_run", selection="name=codec-1", action="audio_volume_set", params={"volume": 9})
    before = fleet.sent()
    line = hasty.error("fleet_run", selection="name=codec-1", action="audio_volume_set", params={"volume": 9},
                       confirm=plan["confirm"])
    assert "confirmation token expired" in line
    assert fleet.sent() == before and fleet.codec1.state.volume != 9


def test_changes_are_rate_limited(hasty: McpClient, fleet: Fleet) -> None:
    assert hasty.ok("call_action", device="codec-2", action="audio_volume_set",
                    params={"volume": 11})["outcome"]["status"] == "ok"
    before = fleet.sent()
    line = hasty.error("call_action", device="codec-2", action="audio_volume_set", params={"volume": 12})
    assert "rate limit: at most 1 changes per minute" in line and "retry in" in line
    assert fleet.sent() == before and fleet.codec2.state.volume == 11
    # reads are not changes
    assert hasty.ok("call_action", device="codec-2", action="audio_volume_get")["outcome"]["data"] == 11


def test_stdout_carries_the_protocol_only(fleet: Fleet, tmp_path: Path) -> None:
    """With --debug, every line on stdout is a JSON-RPC message; the logs go to stderr."""
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw\u202eclient", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "find_devices", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "device_status",
                                                                        "arguments": {"device": "nope"}}},
    ]
    log = tmp_path / "stderr.log"
    with open(log, "w") as err:  # a file: debug logs can fill a pipe nobody reads while stdout is read
        proc = subprocess.Popen(mcp_command(fleet, "--debug"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=err, text=True, env={**fleet.env(), "PATH": "/usr/bin:/bin"})
    assert proc.stdin is not None and proc.stdout is not None
    replies = []
    for message in messages:  # one at a time: each request's answer read before the next is sent
        proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()
        while "id" in message and not any(r.get("id") == message["id"] for r in replies):
            replies.append(json.loads(proc.stdout.readline()))  # each line parses: nothing else is there
    rest, _ = proc.communicate(timeout=120)  # stdin closed: the session ends
    stderr = log.read_text()
    assert proc.returncode == 0, stderr[-2000:]
    assert rest == ""
    assert all(r["jsonrpc"] == "2.0" for r in replies)
    by_id = {r["id"]: r for r in replies if "id" in r}
    assert set(by_id) == {1, 2, 3, 4}
    assert json.loads(by_id[3]["result"]["content"][0]["text"])["total"] == 4
    assert by_id[4]["result"]["isError"] is True
    assert "avctl mcp: ready" in stderr and "DEBUG" in stderr


def _cli(fleet: Fleet, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(mcp_command(fleet, *args), capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, env={**fleet.env(), "PATH": "/usr/bin:/bin", "MCP_SHORT": "short"})


@pytest.mark.parametrize(("args", "message"), [
    (("--listen", "192.0.2.10:8800"), "plain HTTP beyond loopback would send bearer tokens in clear"),
    (("--token-env", "MCP_TOKEN"), "are for --listen (HTTP)"),
    (("--listen", "127.0.0.1:8800", "--token-env", "MCP_UNSET"), "--token-env MCP_UNSET: the variable is not set"),
    (("--listen", "127.0.0.1:8800", "--token-env", "MCP_SHORT"), "shorter than 16 characters"),
    (("--listen", "127.0.0.1:8800", "--tls-cert", "c.pem"), "--tls-cert and --tls-key go together"),
    (("--confirm-ttl", "soon"), "--confirm-ttl"),
])
def test_usage_errors_are_one_line_and_exit_2(fleet: Fleet, args: tuple[str, ...], message: str) -> None:
    proc = _cli(fleet, *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr and proc.stdout == ""
