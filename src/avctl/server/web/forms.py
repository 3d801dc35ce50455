"""An action's parameters as an HTML form, and a submitted form back to checked parameters.

Fields are made from each parameter's JSON Schema (`avctl.spec.params.param_schema`), so the form
offers what the spec allows (a choice for enums and booleans, bounds for numbers, a password field
for secrets); the submitted text goes through the CLI's own conversion and the spec's validation,
so a form can send nothing the CLI would refuse.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from avctl.spec.model import Action, Param
from avctl.spec.params import coerce_text, param_schema, validate

#: form field names are the parameter's name behind this prefix (no clash with the page's own fields)
PREFIX = "p."


@dataclass(frozen=True)
class FormField:
    name: str
    #: the <input>/<select>/<textarea> to draw: text, number, password, select, json
    widget: str
    required: bool
    description: str
    type_label: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    #: the default as the field shows it ("" for none)
    default: str = ""
    step: str = "any"

    @property
    def input_name(self) -> str:
        return PREFIX + self.name


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def field_of(p: Param) -> FormField:
    schema = param_schema(p)
    types = schema.get("type")
    kinds = set(types) if isinstance(types, list) else {types}
    text = FormField(name=p.name, widget="text", required=p.required and not p.has_default,
                     description=p.description, type_label=p.type_label(),
                     default=_text(p.default) if p.has_default else "")
    if "enum" in schema:
        return replace(text, widget="select", choices=tuple(_text(v) for v in schema["enum"]))
    if p.secret:
        return replace(text, widget="password")
    if kinds == {"boolean"}:
        return replace(text, widget="select", choices=("true", "false"))
    if kinds and kinds <= {"integer", "number"}:
        return replace(text, widget="number", minimum=schema.get("minimum"), maximum=schema.get("maximum"),
                       step="1" if kinds == {"integer"} else "any")
    if kinds & {"array", "object"}:
        return replace(text, widget="json")
    return text


def form_fields(action: Action) -> list[FormField]:
    """The fields a user fills in (constants are part of the action, not asked for)."""
    return [field_of(p) for p in action.settable_params if "binary" not in p.types]


def parse_form(action: Action, form: Mapping[str, str]) -> dict[str, Any]:
    """The submitted fields as the action's parameters, converted and checked against the spec
    (ValidationError names the parameter). An empty field means "not given" (the spec's default
    applies); what is returned is what was given, as a caller passes it to a job."""
    given: dict[str, Any] = {}
    for key, text in form.items():
        if not key.startswith(PREFIX) or text == "":
            continue
        name = key[len(PREFIX):]
        given[name] = coerce_text(action, name, text)
    validate(action, given)
    return given
