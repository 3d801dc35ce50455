"""The tools' input schemas (JSON Schema, draft 2020-12), generated from the loaded specs.

Nothing here is a hand-written list of families or actions: `family` is an enum of the registered
families, `action` of the specs' actions (the union; each tool checks the device's family has it), `verb` of the
specs' verbs (their Macros, and ``status``). An action's parameter schema is built from each
parameter's own schema (`avctl.spec.params.param_schema`, what validation and the dashboard's forms
use), so what an agent is told is what a call is checked against.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from avctl.server.model import DEVICE_STATES
from avctl.spec import Spec
from avctl.spec.model import Action
from avctl.spec.params import param_schema

DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: a page of devices, audit rows or outcomes holds at most this many
MAX_LIMIT = 500


def action_kind(action: Action) -> str:
    """``read`` (a query: changes nothing) or ``act`` (changes the device)."""
    return "read" if action.kind == "query" else "act"


def action_schema(action: Action) -> dict[str, Any]:
    """The JSON Schema of the action's parameters: the settable ones, each as the spec declares it."""
    properties: dict[str, Any] = {}
    for p in action.settable_params:
        schema = param_schema(p)
        if "binary" in p.types:  # a file's path on the machine running avctl
            schema = {"type": "string"}
        if p.description and "description" not in schema:
            schema = {**schema, "description": p.description}
        if p.has_default and "default" not in schema:
            schema = {**schema, "default": p.default}
        if p.secret:
            schema = {**schema, "writeOnly": True}
        properties[p.name] = schema
    required = [p.name for p in action.settable_params if p.required and not p.has_default]
    out: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


@dataclass(frozen=True)
class Catalogue:
    """The loaded specs of every registered family."""

    specs: Mapping[str, Spec]

    @classmethod
    def load(cls, families: Sequence[str], spec_of: Callable[[str], Spec]) -> Catalogue:
        return cls({f: spec_of(f) for f in sorted(families)})

    @property
    def families(self) -> list[str]:
        return list(self.specs)

    def actions(self, family: str | None = None) -> list[str]:
        """Action ids of one family, or of every family (the union), sorted."""
        chosen = [self.specs[family]] if family else list(self.specs.values())
        return sorted({a for spec in chosen for a in spec.actions})

    def verbs(self) -> list[str]:
        return sorted({"status"} | {m for spec in self.specs.values() for m in spec.macros})

    def family_actions(self, family: str) -> list[dict[str, Any]]:
        """One family's catalogue: each action's kind, disruptive and secret marks, parameter schema."""
        return [describe(self.specs[family], a) for a in self.specs[family].actions.values()]


def describe(spec: Spec, action: Action) -> dict[str, Any]:
    """An action as an agent needs it: what it does, whether it changes or disrupts, its parameters."""
    return {"family": spec.family, "action": action.id, "label": action.label,
            "description": action.description, "kind": action_kind(action), "disruptive": action.disruptive,
            "safety_note": action.safety_note or None,
            "secret_params": [p.name for p in action.settable_params if p.secret],
            "params_schema": action_schema(action), "response": action.response}


def _object(properties: dict[str, Any], required: Sequence[str] = (), **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"$schema": DIALECT, "type": "object", "properties": properties,
                           "additionalProperties": False, **extra}
    if required:
        out["required"] = list(required)
    return out


SELECTION = {"type": "string", "default": "",
             "description": "Which devices, in avctl's selection syntax: 'site=hq,family=videoos', 'room=4*', "
                            "'tag=lobby', 'name=codec-1', 'family!=solstice'. Different keys AND, the same key "
                            "ORs, != excludes. Empty: every device."}
CONFIRM = {"type": "string", "minLength": 1, "maxLength": 200,
           "description": "The one-time confirmation token a previous call returned with its plan. Give it, "
                          "with exactly the same other arguments, to run that plan."}
PARAMS = {"type": "object", "default": {},
          "description": "The action's parameters (describe_action shows their schema)."}


def _limit(default: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": default}


def tool_schemas(cat: Catalogue) -> dict[str, dict[str, Any]]:
    """Tool name -> input schema. No combinator (allOf, oneOf, anyOf, if) at the top: several MCP
    clients refuse a tool whose input schema has one, so "exactly one of action and verb" and "an
    action of this family" are checked by the tools, with a message naming the choices."""
    families = {"type": "string", "enum": cat.families, "description": "A device family."}
    all_actions = {"type": "string", "enum": cat.actions(),
                   "description": "An action id of the device's family (describe_action explains one)."}
    task = {"action": all_actions,
            "verb": {"type": "string", "enum": cat.verbs(),
                     "description": "A verb of the families' specs (status reads every device's readings)."},
            "params": PARAMS}
    device = {"type": "string", "minLength": 1, "description": "The device's name in the inventory."}
    return {
        "find_devices": _object({
            "selection": SELECTION,
            "state": {"type": "string", "enum": list(DEVICE_STATES), "description": "Only devices in this state."},
            "limit": _limit(50), "offset": {"type": "integer", "minimum": 0, "default": 0}}),
        "device_status": _object({"device": device}, ["device"]),
        "describe_action": _object({"family": families, "action": all_actions}, ["family", "action"]),
        "call_action": _object({"device": device, "action": all_actions, "params": PARAMS, "confirm": CONFIRM},
                               ["device", "action"]),
        "fleet_plan": _object({"selection": SELECTION, **task}),
        "fleet_run": _object({"selection": SELECTION, **task, "confirm": CONFIRM}),
        "job_status": _object({"job_id": {"type": "integer", "minimum": 1}, "limit": _limit(100)}, ["job_id"]),
        "audit_search": _object({
            "device": {"type": "string", "description": "A device name or shell glob (room-*)."},
            "action": {"type": "string", "description": "An action id or shell glob."},
            "user": {"type": "string", "description": "Who: web:alice, token:bob, mcp:claude-code ..."},
            "outcome": {"type": "string", "enum": ["ok", "failed", "unreachable", "skipped"]},
            "job_id": {"type": "integer", "minimum": 1},
            "since": {"type": "number", "description": "Only entries at or after this time (Unix seconds)."},
            "limit": _limit(50)}),
        "config_drift": _object({
            "device": {"type": "string", "description": "Only this device's drift."},
            "check": {"type": "boolean", "default": False,
                      "description": "Start a new drift check of the fleet (reads every device with desired "
                                     "configuration; changes nothing; needs --allow-actions)."}}),
    }
