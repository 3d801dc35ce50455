"""Verbs from the specs: Macros with $placeholders, Feedbacks with pointers and transforms, skips."""

from __future__ import annotations

from typing import Any

import pytest

from avctl.capabilities import VerbStep, read_status, resolve_pointer, transform, verb_steps
from avctl.errors import DeviceError, ValidationError
from avctl.families import builtin_spec
from avctl.fleet.verbs import ActionTask, MacroTask, StatusTask, probe_action


def test_every_builtin_family_has_status_and_reboot() -> None:
    for family in ("videoos", "polyuc", "solstice"):
        spec = builtin_spec(family)
        assert StatusTask().skip_reason(spec) is None
        assert MacroTask("reboot", {}).skip_reason(spec) is None
        assert MacroTask("reboot", {}).disruptive(spec)
        assert probe_action(spec) is not None
    assert MacroTask("volume", {}).skip_reason(builtin_spec("polyuc")) == "family polyuc has no 'volume' verb"


def test_macro_placeholder_takes_the_callers_value_typed_per_family() -> None:
    spec = builtin_spec("videoos")
    task = MacroTask("volume", {"volume": "30"})
    task.validate(spec)
    assert verb_steps(spec, "volume", task.params) == [VerbStep("audio_volume_set", {"volume": 30})]
    with pytest.raises(ValidationError, match="needs volume"):
        MacroTask("volume", {}).validate(spec)
    with pytest.raises(ValidationError):
        MacroTask("volume", {"volume": "300"}).validate(spec)      # the spec's maximum still applies
    with pytest.raises(ValidationError, match="takes no parameter muted"):
        MacroTask("mute", {"muted": "false"}).validate(spec)       # a step's own constant is not overridable
    assert verb_steps(spec, "mute", {}) == [VerbStep("audio_muted_set", {"muted": True})]


def test_action_task_types_and_validates_per_spec() -> None:
    spec = builtin_spec("videoos")
    ActionTask("audio_volume_set", {"volume": "12"}).validate(spec)
    with pytest.raises(ValidationError):
        ActionTask("audio_volume_set", {"volume": "loud"}).validate(spec)
    assert ActionTask("audio_volume_set", {}).skip_reason(builtin_spec("polyuc")) is not None


@pytest.mark.parametrize(("doc", "pointer", "expected"), [
    ({"a": {"b": [1, {"c": 5}]}}, "/a/b/1/c", 5),
    ({"a/b": 1, "m~n": 2}, "/a~1b", 1),
    ({"a/b": 1, "m~n": 2}, "/m~0n", 2),
    ({"a": 1}, "/missing", None),
    ([1, 2], "/5", None),
    (42, "", 42),
])
def test_json_pointer(doc: Any, pointer: str, expected: Any) -> None:
    assert resolve_pointer(doc, pointer) == expected


@pytest.mark.parametrize(("value", "how", "expected"), [
    ([], "nonempty", False), ([{"id": 1}], "nonempty", True), (0, "nonempty", False), (3, "nonempty", True),
    ("True", "bool", True), ("False", "bool", False), ("7.9", "int", 7), ("x", "int", None),
    ({"Days": "1", "Hours": "2", "Minutes": "3", "Seconds": "4"}, "seconds", 93784.0),
    ("01:00:30", "seconds", 3630.0), (17250.284, "seconds", 17250.284), (None, "bool", None),
])
def test_transforms(value: Any, how: str, expected: Any) -> None:
    assert transform(value, how) == expected


async def test_status_keeps_what_it_read_and_fails_only_when_nothing_answers() -> None:
    spec = builtin_spec("videoos")
    calls: list[str] = []

    async def call(action_id: str) -> Any:
        calls.append(action_id)
        if action_id == "system_get":
            return {"model": "G7500", "softwareVersion": "4.6.2", "uptime": 12.5}
        if action_id == "audio_get":
            return {"muted": True}  # no volume in this answer: it is merely absent
        raise DeviceError(f"{action_id}: 404", status=404)

    out = (await read_status(spec, call)).as_dict()
    assert out["reachable"] is True and out["model"] == "G7500" and out["firmware"] == "4.6.2"
    assert out["mic_muted"] is True and out["volume"] is None
    assert "volume" not in out["unavailable"]
    assert "in_call" in out["unavailable"] and "video_muted" in out["unavailable"]
    assert calls.count("system_get") == 1 and calls.count("audio_get") == 1  # several feedbacks, one call

    async def broken(action_id: str) -> Any:
        raise DeviceError("nope", status=403)

    with pytest.raises(DeviceError):
        await read_status(spec, broken)

    async def overloaded(action_id: str) -> Any:
        raise DeviceError("busy", status=503)

    with pytest.raises(DeviceError):  # 5xx after the runner's retries: the device is in trouble
        await read_status(spec, overloaded)
