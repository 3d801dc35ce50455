"""Confirmation tokens and the rate limit on an injected clock (expiry, binding, single use, windows);
the names the audit log gives MCP clients; results cut to a size."""

from __future__ import annotations

import json

import pytest

from avctl.mcp.guard import ConfirmStore, Plan, RateLimit, Refused
from avctl.mcp.identity import client_name, operator, through
from avctl.mcp.tools import MAX_RESULT_CHARS, capped
from avctl.server.model import Principal


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


PLAN = Plan("fleet_run", "action:audio_volume_set", {"volume": 5}, ["codec-2", "codec-1"], "mcp:agent")


def test_a_token_runs_its_plan_once_within_its_time() -> None:
    clock = Clock()
    store = ConfirmStore(120, clock)
    token = store.issue(PLAN)
    clock.now += 119.9
    store.redeem(token, Plan("fleet_run", "action:audio_volume_set", {"volume": 5}, ["codec-1", "codec-2"],
                             "mcp:agent"))  # the same device set in another order
    with pytest.raises(Refused, match="unknown or already used"):
        store.redeem(token, PLAN)


def test_a_token_expires_at_its_ttl() -> None:
    clock = Clock()
    store = ConfirmStore(120, clock)
    token = store.issue(PLAN)
    clock.now += 120
    with pytest.raises(Refused, match=r"expired \(tokens are valid for 120s\)"):
        store.redeem(token, PLAN)


@pytest.mark.parametrize(("other", "named"), [
    (Plan("call_action", PLAN.task, PLAN.params, PLAN.devices, PLAN.identity), "another tool"),
    (Plan(PLAN.tool, "action:system_reboot", PLAN.params, PLAN.devices, PLAN.identity), "another action"),
    (Plan(PLAN.tool, PLAN.task, {"volume": 6}, PLAN.devices, PLAN.identity), "another parameters"),
    (Plan(PLAN.tool, PLAN.task, PLAN.params, ["codec-1", "codec-3"], PLAN.identity),
     "another devices (not in the plan: codec-3; in the plan but not now: codec-2)"),
    (Plan(PLAN.tool, PLAN.task, PLAN.params, PLAN.devices, "mcp:someone-else"), "another identity"),
])
def test_a_token_for_another_plan_is_refused_naming_what_differs(other: Plan, named: str) -> None:
    store = ConfirmStore(120, Clock())
    token = store.issue(PLAN)
    with pytest.raises(Refused) as refused:
        store.redeem(token, other)
    assert named in str(refused.value)
    with pytest.raises(Refused, match="already used"):  # used up by the wrong try
        store.redeem(token, PLAN)


def test_tokens_are_random_and_kept_as_digests() -> None:
    store = ConfirmStore(120, Clock())
    store.issue(Plan("call_action", "skype_sign_in", {"Password": "hunter2-secret"}, ["phone-1"], "mcp:a"))
    tokens = {store.issue(PLAN) for _ in range(50)}
    assert len(tokens) == 50 and all(len(t) >= 32 for t in tokens)
    kept = repr(store._issued)
    assert not any(t in kept for t in tokens)
    assert "hunter2-secret" not in kept  # the parameters are a digest too


def test_the_rate_limit_counts_changes_per_identity_per_minute() -> None:
    clock = Clock()
    limit = RateLimit(2, clock)
    limit.take("mcp:a")
    clock.now += 10
    limit.take("mcp:a")
    limit.take("mcp:b")  # another identity has its own count
    with pytest.raises(Refused, match="retry in 50s"):
        limit.take("mcp:a")
    clock.now += 50
    limit.take("mcp:a")  # the first change left the window


@pytest.mark.parametrize(("raw", "name"), [
    ("claude-code", "claude-code"), ("Claude Desktop 1.2", "Claude-Desktop-1.2"),
    ("raw\u202eclient\x1b[2J", "raw-client-2J"), ("../../etc", "etc"), ("", "unknown"), (None, "unknown"),
    ("x" * 100, "x" * 40), ("\u00e9\u00e9\u00e9", "unknown"),
])
def test_the_client_name_is_safe_for_the_audit_log(raw: object, name: str) -> None:
    assert client_name(raw) == name


def test_the_audit_log_names_the_client_and_the_user() -> None:
    assert operator("claude-code").audit_name == "mcp:claude-code"
    alice = Principal(user_id=3, user="alice", role="helpdesk", sites=frozenset({"hq"}), via="token")
    assert through(alice, "vscode").audit_name == "mcp:alice/vscode"
    assert through(alice, "vscode").sites == frozenset({"hq"}) and through(alice, "vscode").role == "helpdesk"
    assert alice.audit_name == "token:alice"


def test_a_result_too_long_for_an_agent_is_cut_and_says_so() -> None:
    small = {"job_id": 1, "outcomes": [{"device": "a", "data": "x" * 100}]}
    assert capped(small) is small
    big = {"job_id": 1, "outcomes": [{"device": f"d{i}", "data": "\u202e" + "x" * 1000} for i in range(200)]}
    cut = capped(big)
    assert len(json.dumps(cut)) < MAX_RESULT_CHARS and cut["job_id"] == 1
    assert cut["outcomes"].endswith("... (cut)") and "outcomes was cut" in cut["cut"]
    assert "\u202e" not in cut["outcomes"]  # ASCII-only: device text stays escaped
