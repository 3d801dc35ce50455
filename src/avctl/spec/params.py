"""Parameter validation: every check happens here, before a request exists.

Types are checked with JSON Schema (each parameter's declaration is turned into a schema once);
unknown and missing parameters are checked by hand so the message can suggest the right name.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avctl.errors import ValidationError
from avctl.spec.model import Action, Param

if TYPE_CHECKING:
    import jsonschema

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_validators: dict[int, tuple[Param, jsonschema.protocols.Validator]] = {}


def param_schema(p: Param) -> dict[str, Any]:
    """The JSON Schema a value of `p` must satisfy."""
    if "enum" in p.types:
        return {"enum": list(p.values)}
    schema: dict[str, Any] = dict(p.schema) if p.schema else {}
    json_types = [t for t in p.types if t != "binary"]
    if json_types and "type" not in schema:
        schema["type"] = json_types[0] if len(json_types) == 1 else json_types
    if p.values:
        schema["enum"] = list(p.values)
    if p.minimum is not None:
        schema["minimum"] = p.minimum
    if p.maximum is not None:
        schema["maximum"] = p.maximum
    if p.pattern:
        schema["pattern"] = p.pattern
    if p.items is not None and "items" not in schema:
        schema["items"] = dict(p.items)
    return schema


def _validator(p: Param) -> jsonschema.protocols.Validator:
    cached = _validators.get(id(p))
    if cached is not None and cached[0] is p:
        return cached[1]
    import jsonschema  # on first validation only: it takes longer to import than avctl's start

    schema = param_schema(p)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    _validators[id(p)] = (p, validator)
    return validator


def _check_value(action: Action, p: Param, value: Any) -> None:
    if "binary" in p.types:
        if isinstance(value, (bytes, bytearray)):
            return
        if isinstance(value, (str, Path)):
            if not Path(value).is_file():
                raise ValidationError(
                    f"file {str(value)!r} does not exist",
                    action=action.id,
                    param=p.name,
                    hint="give the path of an existing file",
                )
            return
        raise ValidationError("expected a file path or bytes", action=action.id, param=p.name)
    validator = _validator(p)
    from jsonschema.exceptions import best_match

    error = best_match(validator.iter_errors(value))
    if error is None:
        return
    where = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in error.absolute_path)
    message = f"{p.name}{where}: {error.message}" if where else error.message
    raise ValidationError(message, action=action.id, param=p.name, hint=f"expected {p.type_label()}")


def validate(action: Action, values: Mapping[str, Any]) -> dict[str, Any]:
    """Check caller values against the action; return every value to send (defaults and constants added)."""
    settable = {p.name: p for p in action.params if p.settable}
    for name in values:
        if name in settable:
            continue
        constant = action.param(name)
        if constant is not None:
            raise ValidationError(
                f"is fixed to {constant.const!r} by the spec and cannot be set", action=action.id, param=name
            )
        close = difflib.get_close_matches(name, list(settable), n=2)
        hint = (
            f"did you mean {' or '.join(close)}?"
            if close
            else (f"parameters: {', '.join(settable)}" if settable else "this action takes no parameters")
        )
        raise ValidationError("unknown parameter", action=action.id, param=name, hint=hint)
    out: dict[str, Any] = {}
    for p in action.params:
        if p.has_const:
            out[p.name] = p.const
            continue
        if p.name in values and values[p.name] is not None:
            value = values[p.name]
            _check_value(action, p, value)
            out[p.name] = value
        elif p.has_default:
            out[p.name] = p.default
        elif p.required:
            raise ValidationError(
                "is required", action=action.id, param=p.name, hint=f"give {p.name}=<{p.type_label()}>"
            )
    return out


def coerce_text(action: Action, name: str, text: str) -> Any:
    """Turn a command-line `key=value` string into the parameter's declared type.

    Values that do not convert are returned unchanged so that validation reports them with the
    declared type in the message (one place for every type error).
    """
    p = action.param(name)
    if p is None:
        return text
    for t in p.types:
        if t == "integer":
            try:
                return (
                    int(text, 0) if text.lower().startswith("0x") and "string" not in p.types else int(text)
                )
            except ValueError:
                continue
        if t == "number":
            try:
                return float(text) if any(c in text for c in ".eE") else int(text)
            except ValueError:
                continue
        if t == "boolean":
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            continue
        if t in ("array", "object"):
            try:
                return json.loads(text)
            except ValueError:
                if t == "array":
                    return [s for s in text.split(",") if s]
                continue
        if t == "enum":
            for v in p.values:
                if str(v) == text:
                    return v
            continue
        if t in ("string", "binary"):
            return text
    return text
