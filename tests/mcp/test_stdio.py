"""`avctl mcp` over stdio, changes allowed (--allow-disruptive), against emulated devices, driven by the
MCP SDK's client: tools generated from the specs, reads, validation before anything is sent,
confirmation tokens bound to their plan, secrets, the audit log's names, resources."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from avctl.families import builtin_spec
from avctl.families.registry import family_names
from avctl.spec.params import param_schema
from tests.mcp.harness import PASSWORD, Fleet, McpClient, stdio, text
from tests.server.harness import wait_for

TOOLS = {"find_devices", "device_status", "describe_action", "call_action", "fleet_plan", "fleet_run",
         "job_status", "audit_search", "config_drift"}
#: every tool result and resource text of the module, checked for secrets at the end
SEEN: list[str] = []


@pytest.fixture(scope="module")
def agent(fleet: Fleet, errlog: Path) -> Iterator[McpClient]:
    with McpClient(stdio(fleet, "--allow-disruptive", errlog=errlog), name="pytest-agent") as client:
        yield client


def ok(agent: McpClient, tool: str, **args: object) -> dict:
    result = agent.call(tool, **args)
    SEEN.append(text(result))
    assert not result.is_error, f"{tool}: {text(result)}"
    return json.loads(text(result))


def refused(agent: McpClient, tool: str, **args: object) -> str:
    line = agent.error(tool, **args)
    SEEN.append(line)
    return line


def test_tools_are_generated_from_the_specs_as_valid_json_schema(agent: McpClient) -> None:
    tools = {t.name: t for t in agent.run(lambda s: s.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        jsonschema.Draft202012Validator.check_schema(tool.input_schema)  # the metaschema
        assert tool.description
    actions = sorted({a for f in family_names() for a in builtin_spec(f).actions})
    assert tools["call_action"].input_schema["properties"]["action"]["enum"] == actions
    assert tools["describe_action"].input_schema["properties"]["action"]["enum"] == actions
    assert tools["describe_action"].input_schema["properties"]["family"]["enum"] == family_names()
    verbs = tools["fleet_run"].input_schema["properties"]["verb"]["enum"]
    assert "status" in verbs and set(builtin_spec("videoos").macros) <= set(verbs)
    assert tools["find_devices"].annotations.read_only_hint is True
    assert tools["fleet_run"].annotations.read_only_hint is False


@pytest.mark.parametrize(("family", "action"), [("videoos", "audio_volume_set"), ("polyuc", "skype_sign_in"),
                                                ("solstice", "token_request"), ("videoos", "system_reboot")])
def test_describe_action_gives_the_specs_schema(agent: McpClient, family: str, action: str) -> None:
    act = builtin_spec(family).action(action)
    got = ok(agent, "describe_action", family=family, action=action)
    assert (got["kind"], got["disruptive"]) == ("read" if act.kind == "query" else "act", act.disruptive)
    assert got["description"] == act.description and got["label"] == act.label
    assert got["secret_params"] == [p.name for p in act.settable_params if p.secret]
    schema = got["params_schema"]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert list(schema["properties"]) == [p.name for p in act.settable_params]
    for p in act.settable_params:  # each parameter exactly as the spec's own schema has it
        own = param_schema(p)
        assert {k: schema["properties"][p.name][k] for k in own} == own
    assert schema.get("required", []) == [p.name for p in act.settable_params if p.required and not p.has_default]
    assert schema["additionalProperties"] is False


def test_describe_action_refuses_an_action_of_another_family(agent: McpClient) -> None:
    line = refused(agent, "describe_action", family="polyuc", action="audio_volume_set")
    assert "family polyuc has no action 'audio_volume_set'" in line


def test_find_devices_takes_the_selection_syntax_and_pages(agent: McpClient) -> None:
    hq = ok(agent, "find_devices", selection="site=hq")
    assert [d["name"] for d in hq["devices"]] == ["codec-1", "phone-1"]
    first = hq["devices"][0]
    assert (first["family"], first["site"], first["room"], first["tags"]) == ("videoos", "hq", "r-101", ["boardroom"])
    assert first["state"] == "unknown"  # nothing polled it: no server on this database
    page = ok(agent, "find_devices", selection="family!=solstice", limit=1, offset=1)
    assert (page["total"], [d["name"] for d in page["devices"]]) == (3, ["codec-2"])


def test_device_status_reads_live_with_units(agent: McpClient, fleet: Fleet) -> None:
    fleet.codec1.state.volume = 42
    got = ok(agent, "device_status", device="codec-1")
    live = got["live"]
    assert live["status"] == "ok" and live["readings"]["reachable"] is True
    assert live["readings"]["volume"] == {"value": 42, "unit": "%"}
    assert live["readings"]["uptime"]["unit"] == "s"
    assert "polled" in got and got["family"] == "videoos"


def test_a_read_action_runs_in_any_mode(agent: McpClient, fleet: Fleet) -> None:
    fleet.codec1.state.volume = 37
    got = ok(agent, "call_action", device="codec-1", action="audio_volume_get")
    assert got["outcome"]["status"] == "ok" and got["outcome"]["data"] == 37


def test_an_invalid_parameter_is_refused_before_anything_is_sent(agent: McpClient, fleet: Fleet) -> None:
    before, volume = fleet.sent(), fleet.codec1.state.volume
    line = refused(agent, "call_action", device="codec-1", action="audio_volume_set", params={"volume": 500})
    assert "parameter 'volume'" in line and "500 is greater than the maximum of 100" in line
    line = refused(agent, "call_action", device="codec-1", action="audio_volume_set", params={"volum": 5})
    assert "unknown parameter" in line and "did you mean volume" in line
    line = refused(agent, "call_action", device="codec-1", action="audio_volume_set", params={})
    assert "'volume'" in line and "is required" in line
    assert (fleet.sent(), fleet.codec1.state.volume) == (before, volume)


def test_a_change_runs_and_the_audit_log_names_the_client(agent: McpClient, fleet: Fleet) -> None:
    got = ok(agent, "call_action", device="codec-1", action="audio_volume_set", params={"volume": 21})
    assert got["outcome"]["status"] == "ok" and fleet.codec1.state.volume == 21
    audit = ok(agent, "audit_search", device="codec-1", action="audio_volume_set")
    assert audit["entries"][0]["user"] == "mcp:pytest-agent"
    assert audit["entries"][0]["params"] == {"volume": 21}
    with sqlite3.connect(fleet.db) as db:  # as another program reads it
        rows = db.execute("SELECT user, device, action FROM audit WHERE action = 'audio_volume_set'").fetchall()
    assert ("mcp:pytest-agent", "codec-1", "audio_volume_set") in rows
    job = ok(agent, "job_status", job_id=got["job_id"])
    assert job["state"] == "finished" and job["user"] == "mcp:pytest-agent" and job["counts"]["ok"] == 1


def test_fleet_plan_counts_and_skips_without_sending(agent: McpClient, fleet: Fleet) -> None:
    before = fleet.sent()
    plan = ok(agent, "fleet_plan", action="audio_volume_set", params={"volume": 33})
    assert plan["devices"] == {"selected": 4, "run": 2, "skipped": 2}
    assert plan["by_site"] == {"branch": {"run": 1, "skip": 1}, "hq": {"run": 1, "skip": 1}}
    assert plan["by_family"]["polyuc"] == {"run": 0, "skip": 1}
    assert {s["device"] for s in plan["skipped"]} == {"phone-1", "pod-1"}
    assert all("has no action audio_volume_set" in s["message"] or s["reason"] for s in plan["skipped"])
    assert plan["changes_state"] is True and plan["disruptive"] is False
    assert plan["first_devices"] == ["codec-1", "codec-2"]
    assert fleet.sent() == before
    line = refused(agent, "fleet_plan", action="audio_volume_set", params={"volume": "loud"})
    assert "volume" in line and "is not of type 'integer'" in line


def test_fleet_run_needs_the_token_of_exactly_its_plan(agent: McpClient, fleet: Fleet) -> None:
    before = fleet.sent()
    first = ok(agent, "fleet_run", selection="family=videoos", action="audio_volume_set", params={"volume": 33})
    assert first["status"] == "confirmation_required" and first["plan"]["devices"]["run"] == 2
    assert fleet.sent() == before
    # the same token for another device set: refused, nothing sent, and the token is used up
    line = refused(agent, "fleet_run", selection="site=hq", action="audio_volume_set", params={"volume": 33},
                   confirm=first["confirm"])
    assert "another devices" in line and "in the plan but not now: codec-2" in line
    assert fleet.sent() == before
    line = refused(agent, "fleet_run", selection="family=videoos", action="audio_volume_set",
                   params={"volume": 33}, confirm=first["confirm"])
    assert "unknown or already used" in line
    # another parameter value: refused naming it
    second = ok(agent, "fleet_run", selection="family=videoos", action="audio_volume_set", params={"volume": 33})
    line = refused(agent, "fleet_run", selection="family=videoos", action="audio_volume_set",
                   params={"volume": 34}, confirm=second["confirm"])
    assert "another parameters" in line and fleet.sent() == before
    third = ok(agent, "fleet_run", selection="family=videoos", action="audio_volume_set", params={"volume": 33})
    done = ok(agent, "fleet_run", selection="family=videoos", action="audio_volume_set", params={"volume": 33},
              confirm=third["confirm"])
    assert done["state"] == "finished" and done["counts"]["ok"] == 2
    assert (fleet.codec1.state.volume, fleet.codec2.state.volume) == (33, 33)


def test_a_disruptive_call_returns_a_plan_then_runs_once_with_its_token(agent: McpClient, fleet: Fleet) -> None:
    before = fleet.sent()
    first = ok(agent, "call_action", device="codec-2", action="system_reboot")
    assert first["status"] == "confirmation_required" and first["plan"]["device"] == "codec-2"
    assert first["plan"]["disruptive"] is True and first["expires_in"] == 120
    assert fleet.sent() == before and fleet.codec2.state.reboots == 0
    # codec-2's token on codec-1: another device set
    line = refused(agent, "call_action", device="codec-1", action="system_reboot", confirm=first["confirm"])
    assert "another devices" in line
    assert fleet.sent() == before and fleet.codec1.state.reboots == 0
    plan = ok(agent, "call_action", device="codec-2", action="system_reboot")
    done = ok(agent, "call_action", device="codec-2", action="system_reboot", confirm=plan["confirm"])
    assert done["outcome"]["status"] == "ok" and fleet.codec2.state.reboots == 1
    line = refused(agent, "call_action", device="codec-2", action="system_reboot", confirm=plan["confirm"])
    assert "unknown or already used confirmation token" in line
    assert fleet.codec2.state.reboots == 1
    audit = ok(agent, "audit_search", device="codec-2", action="system_reboot")
    assert [e["user"] for e in audit["entries"]] == ["mcp:pytest-agent"]


def test_secrets_never_appear_in_results(agent: McpClient, fleet: Fleet) -> None:
    secret = "Skype-Secret-55x"
    got = ok(agent, "call_action", device="phone-1", action="skype_sign_in",
             params={"Address": "sip:a@example.com", "Password": secret, "LockCode": "9911-lock"})
    assert got["params"]["Password"] != secret
    # a query whose answer holds a token, called with the device's own password
    got = ok(agent, "call_action", device="pod-1", action="token_request", params={"password": PASSWORD})
    assert got["outcome"]["status"] == "ok"
    # a refused call quoting its secret value does not show it either
    refused(agent, "call_action", device="phone-1", action="skype_sign_in",
            params={"Address": 5, "Password": "Another-Secret-77"})
    ok(agent, "audit_search", device="phone-1")
    ok(agent, "job_status", job_id=got["job_id"])
    ok(agent, "device_status", device="pod-1")
    for uri in ("avctl://inventory", "avctl://actions/polyuc"):
        SEEN.append(agent.run(lambda s, u=uri: s.read_resource(u)).contents[0].text)
    shown = "\n".join(SEEN)
    for leaked in (secret, "9911-lock", PASSWORD, "Another-Secret-77", "FLEET_PW"):
        assert leaked not in shown, leaked
    with sqlite3.connect(fleet.db) as db:
        stored = json.dumps(db.execute("SELECT params FROM audit").fetchall() + db.execute(
            "SELECT params FROM jobs").fetchall())
    assert secret not in stored and PASSWORD not in stored


def test_resources_list_the_inventory_and_each_familys_actions(agent: McpClient) -> None:
    listed = {str(r.uri) for r in agent.run(lambda s: s.list_resources()).resources}
    assert listed == {"avctl://inventory"} | {f"avctl://actions/{f}" for f in family_names()}
    inventory = json.loads(agent.run(lambda s: s.read_resource("avctl://inventory")).contents[0].text)
    assert [d["name"] for d in inventory["devices"]] == ["codec-1", "codec-2", "phone-1", "pod-1"]
    assert inventory["devices"][0] == {"name": "codec-1", "family": "videoos", "site": "hq", "room": "r-101",
                                       "tags": ["boardroom"], "groups": [], "disabled": False}
    catalogue = json.loads(agent.run(lambda s: s.read_resource("avctl://actions/solstice")).contents[0].text)
    assert [a["action"] for a in catalogue["actions"]] == list(builtin_spec("solstice").actions)
    token = next(a for a in catalogue["actions"] if a["action"] == "token_request")
    assert token["secret_params"] == ["password"] and token["kind"] == "read"


def test_errors_are_tool_errors_and_the_session_goes_on(agent: McpClient) -> None:
    assert "no device named 'nope'" in refused(agent, "device_status", device="nope")
    assert "invalid arguments for find_devices: limit" in refused(agent, "find_devices", limit="many")
    assert "give exactly one of action" in refused(agent, "fleet_plan", action="audio_volume_get", verb="status")
    assert "no job 99999" in refused(agent, "job_status", job_id=99999)
    assert ok(agent, "find_devices")["total"] == 4


def test_config_drift_checks_and_reports(agent: McpClient) -> None:
    assert ok(agent, "config_drift")["job_id"] is None  # no check yet
    started = ok(agent, "config_drift", check=True)["started_job"]

    def finished() -> dict | None:
        report = ok(agent, "config_drift")
        return report if report["job_id"] == started else None

    report = wait_for(finished, within=60, what="the drift check")
    assert report["checked"] == 1 and report["drifted"] == 1
    row = report["rows"][0]
    assert (row["device"], row["key"], row["desired"]) == ("codec-1", "device.local.devicename", "r-101-codec")
    assert ok(agent, "config_drift", device="codec-2")["rows"] == []


def test_the_state_a_server_polled_into_the_database_is_what_find_devices_shows(agent: McpClient,
                                                                                  fleet: Fleet) -> None:
    """`avctl mcp` has no poller: it reads the device state a server on the same database wrote."""
    from avctl.db import open_database
    from avctl.fleet.inventory import load_inventory
    from avctl.server.model import Observation
    from avctl.server.state import StateStore

    db = open_database(str(fleet.db))
    try:
        store = StateStore(db, clock=lambda: 2_000_000_000.0)
        inventory = load_inventory(fleet.inventory)
        store.sync_inventory(inventory.devices)
        pod = inventory.get("pod-1")
        store.apply([(pod, Observation("pod-1", 2_000_000_000.0, "offline", error="connection refused"))])
    finally:
        db.close()
    got = ok(agent, "find_devices", state="offline")
    assert [(d["name"], d["error"]) for d in got["devices"]] == [("pod-1", "connection refused")]
    assert ok(agent, "device_status", device="pod-1")["polled"]["state"] == "offline"


def test_a_device_refusing_a_call_is_a_tool_error_naming_the_job(agent: McpClient) -> None:
    line = refused(agent, "call_action", device="codec-1", action="calendar_meetings_get_one",
                   params={"meeting_id": "no-such-meeting"})
    assert line.startswith("calendar_meetings_get_one on codec-1: failed") and "(job " in line
