"""The job wizard's pieces without a browser: what can be run (verbs and actions per family), the
run options' fields, and the runner's planned outcomes that its preview shows."""

from __future__ import annotations

import asyncio

import pytest

from avctl.errors import UsageError
from avctl.families import builtin_spec
from avctl.fleet.inventory import Address, DeviceEntry
from avctl.fleet.runner import FleetRunner, planned_outcome
from avctl.fleet.verbs import ActionTask, MacroTask
from avctl.server.web.job_choices import Catalogue, actions, verbs
from avctl.server.web.pages.job_new import option_flags, option_values

SPECS = {f: builtin_spec(f) for f in ("polyuc", "solstice", "videoos")}


def test_verbs_span_families_and_carry_their_parameters() -> None:
    found = {c.name: c for c in verbs(SPECS)}
    assert {"status", "mute", "unmute", "volume", "reboot", "restart"} <= set(found)
    assert set(found["reboot"].families) == {"polyuc", "solstice", "videoos"} and found["reboot"].disruptive
    assert set(found["mute"].families) == {"polyuc", "videoos"} and not found["mute"].disruptive
    volume = {f.name: f for f in found["volume"].fields}["volume"]
    assert (volume.widget, volume.minimum, volume.maximum) == ("number", 0, 100)
    assert found["reboot"].cli_words == ("fleet", "reboot")


def test_actions_per_family_and_a_verb_wins_a_shared_name() -> None:
    by_family = actions(SPECS)
    codec = {c.name: c for c in by_family["videoos"]}
    assert codec["system_reboot"].disruptive and codec["system_reboot"].cli_words == ("fleet", "run", "system_reboot")
    having = [f for f, choices in by_family.items() if any(c.name == "config_get" for c in choices)]
    assert len(having) > 1  # one choice, offered under each of its families, naming them all
    assert set({c.name: c for c in by_family[having[0]]}["config_get"].families) == set(having)
    cat = Catalogue(verbs(SPECS), by_family)
    assert cat.find("reboot").mode == "verb"
    assert cat.find("system_reboot").mode == "action"
    with pytest.raises(UsageError):
        cat.find("reboot", "action")
    with pytest.raises(UsageError):
        cat.find("no_such_thing")


def test_run_options_from_the_form_and_as_cli_flags() -> None:
    form = {"o.timeout": "600", "o.per_site": "5", "o.wait": "on", "o.retries": "", "p.volume": "3"}
    options = option_values(form)
    assert options == {"timeout": 600.0, "per_site": 5, "wait": True}
    assert option_flags(options) == [("--per-site", 5), ("--timeout", "600"), ("--wait", True)]
    with pytest.raises(UsageError, match="timeout"):
        option_values({"o.timeout": "soon"})
    # the in-call guard and the maintenance window (issue 13), as the CLI writes them
    guard = option_values({"o.if_idle": "on", "o.in_window": "on", "o.wait_idle": "900"})
    assert guard == {"if_idle": True, "wait_idle": 900.0, "in_window": True}
    assert option_flags(guard) == [("--if-idle", True), ("--wait-idle", "900"), ("--in-window", True)]


def _entry(name: str, family: str, *, disabled: bool = False) -> DeviceEntry:
    return DeviceEntry(name, family, Address("127.0.0.1", 1), site="hq", disabled=disabled)


def test_planned_outcomes_are_what_the_run_records() -> None:
    """The preview's reasons are the runner's: the same outcomes without a single request."""
    devices = [_entry("c1", "videoos"), _entry("c2", "videoos", disabled=True), _entry("s1", "solstice")]
    task = MacroTask("mute", {})
    planned = {d.name: planned_outcome(task, d, builtin_spec) for d in devices}
    assert planned["c1"] is None
    assert (planned["c2"].status, planned["c2"].reason) == ("skipped", "excluded")  # type: ignore[union-attr]
    assert planned["s1"].message == "family solstice has no 'mute' verb"  # type: ignore[union-attr]
    runner = FleetRunner()
    assert runner.plan(task, devices) == {"videoos": {"run": 1, "skip": 1, "disruptive": 0},
                                          "solstice": {"run": 0, "skip": 1, "disruptive": 0}}

    async def run_skipped() -> list[tuple[str, str, str | None]]:
        outcomes = await FleetRunner().run(task, devices[1:])
        return [(o.device, o.status, o.message) for o in outcomes]

    assert asyncio.run(run_skipped()) == [("c2", "skipped", "disabled in the inventory"),
                                          ("s1", "skipped", "family solstice has no 'mute' verb")]
    assert planned_outcome(ActionTask("system_reboot", {}), devices[0], builtin_spec) is None
