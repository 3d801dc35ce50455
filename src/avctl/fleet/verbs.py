"""What the fleet runner does on one device: a spec action, a verb from the spec's Macros, or status.

Nothing here names a family. ``status`` reads each spec's Feedbacks (which action, which JSON
pointer, which transform); every other verb (``reboot``, ...) is a Macro of the spec; a family whose
spec lacks the action or macro is *skipped* for it. Parameters arrive as command-line text and are
converted per family (``coerce_text``) and validated before anything is sent.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from avctl.errors import BadAnswer, DeviceError, UsageError, ValidationError
from avctl.spec import Spec, coerce_text, validate
from avctl.spec.model import Action, Feedback

#: the runner's call: (action id, typed params) -> result data, with retries and audit
CallFn = Callable[[str, Mapping[str, Any]], Awaitable[Any]]

NOT_IMPLEMENTED = 501
STATUS_FIELDS = ("reachable", "model", "firmware", "uptime", "in_call", "mic_muted", "volume")


class Task(Protocol):
    """One unit of fleet work, planned per family spec and run per device."""

    @property
    def name(self) -> str: ...
    @property
    def mode(self) -> str: ...  # "action" | "verb"
    @property
    def params(self) -> Mapping[str, str]: ...

    def skip_reason(self, spec: Spec) -> str | None: ...
    def secret_names(self, spec: Spec) -> set[str]: ...
    def validate(self, spec: Spec) -> None: ...
    def disruptive(self, spec: Spec) -> bool: ...
    async def run(self, spec: Spec, call: CallFn) -> Any: ...


def _typed(action: Action, raw: Mapping[str, Any]) -> dict[str, Any]:
    """CLI text -> typed values for one action; unknown names pass through for validate() to report."""
    return {k: coerce_text(action, k, v) if isinstance(v, str) and action.param(k) is not None else v
            for k, v in raw.items()}


@dataclass
class ActionTask:
    """Run one spec action on every device whose family has it."""

    action_id: str
    params: Mapping[str, str]
    mode: str = "action"

    @property
    def name(self) -> str:
        return self.action_id

    def skip_reason(self, spec: Spec) -> str | None:
        if not spec.has_action(self.action_id):
            return f"family {spec.family} has no action {self.action_id}"
        return None

    def _values(self, spec: Spec) -> dict[str, Any]:
        return _typed(spec.action(self.action_id), self.params)

    def secret_names(self, spec: Spec) -> set[str]:
        return {p.name for p in spec.action(self.action_id).params if p.secret}

    def validate(self, spec: Spec) -> None:
        validate(spec.action(self.action_id), self._values(spec))

    def disruptive(self, spec: Spec) -> bool:
        return spec.action(self.action_id).disruptive

    async def run(self, spec: Spec, call: CallFn) -> Any:
        return await call(self.action_id, self._values(spec))


@dataclass
class MacroTask:
    """A verb that spans families: the spec's Macro of that id, its steps in order.

    User parameters go to every step whose action declares a parameter of that name; a parameter no
    step of a family accepts is an error for that family (caught before anything is sent).
    """

    verb: str
    params: Mapping[str, str]
    mode: str = "verb"

    @property
    def name(self) -> str:
        return self.verb

    def skip_reason(self, spec: Spec) -> str | None:
        if self.verb not in spec.macros:
            return f"family {spec.family} has no '{self.verb}' verb"
        return None

    def _steps(self, spec: Spec) -> list[tuple[str, dict[str, Any]]]:
        macro = spec.macros[self.verb]
        used: set[str] = set()
        steps = []
        for step in macro.steps:
            action = spec.action(step.action)
            values: dict[str, Any] = {}
            for key, value in step.params.items():
                if isinstance(value, str) and value.startswith("$"):
                    # `{volume: $volume}`: the caller supplies it (`avctl fleet volume volume=30`)
                    wanted = value[1:]
                    if wanted not in self.params:
                        raise ValidationError(f"verb {self.verb} needs {wanted}=...", action=step.action)
                    raw = self.params[wanted]
                    values[key] = coerce_text(action, key, raw) if isinstance(raw, str) else raw
                    used.add(wanted)
                else:
                    values[key] = value
            for key, text in self.params.items():
                # a parameter the step does not fix itself goes to every step that declares it
                if key not in values and action.param(key) is not None and key not in step.params:
                    values[key] = coerce_text(action, key, text) if isinstance(text, str) else text
                    used.add(key)
            steps.append((step.action, values))
        unknown = sorted(set(self.params) - used)
        if unknown:
            raise ValidationError(f"verb {self.verb} of family {spec.family} takes no parameter "
                                  f"{', '.join(unknown)}")
        return steps

    def secret_names(self, spec: Spec) -> set[str]:
        names: set[str] = set()
        for step in spec.macros[self.verb].steps:
            action = spec.action(step.action)
            for p in action.params:
                if p.secret:
                    names.add(p.name)
                    ref = step.params.get(p.name)
                    if isinstance(ref, str) and ref.startswith("$"):
                        names.add(ref[1:])
        return names

    def validate(self, spec: Spec) -> None:
        for action_id, values in self._steps(spec):
            validate(spec.action(action_id), values)

    def disruptive(self, spec: Spec) -> bool:
        return any(spec.action(s.action).disruptive for s in spec.macros[self.verb].steps)

    async def run(self, spec: Spec, call: CallFn) -> Any:
        results = []
        for action_id, values in self._steps(spec):
            results.append(await call(action_id, values))
        return results[0] if len(results) == 1 else results


@dataclass
class StatusTask:
    """Normalised state from each spec's Feedbacks: one call per distinct action, then pointers."""

    name: str = "status"
    mode: str = "verb"
    params: Mapping[str, str] = field(default_factory=dict)

    def skip_reason(self, spec: Spec) -> str | None:
        if not _plan(spec):
            return f"family {spec.family} spec has no Feedbacks"
        return None

    def secret_names(self, spec: Spec) -> set[str]:
        return set()

    def validate(self, spec: Spec) -> None:
        for action_id in _plan(spec):
            validate(spec.action(action_id), {})

    def disruptive(self, spec: Spec) -> bool:
        return False

    async def run(self, spec: Spec, call: CallFn) -> Any:
        out: dict[str, Any] = {"reachable": False}
        errors: dict[str, str] = {}
        first_error: DeviceError | None = None
        fits = misfits = 0
        for action_id, feedbacks in _plan(spec).items():
            try:
                data = await call(action_id, {})
            except DeviceError as exc:
                if exc.transient and exc.status != NOT_IMPLEMENTED:
                    raise  # 5xx or busy even after retries: the device is in trouble, not just lacking
                # the device answered: it is reachable, this reading is not available on it (older
                # firmware, a feature switched off, not implemented); the other readings still count
                first_error = first_error or exc
                for fb in feedbacks:
                    out.setdefault(fb.id, None)
                    errors[fb.id] = f"{action_id}: {exc.kind} (HTTP {exc.status})"
                continue
            out["reachable"] = True
            action = spec.action(action_id)
            for fb in feedbacks:
                value, problem = read_feedback(action, data, fb)
                out[fb.id] = value
                if problem is not None:
                    errors[fb.id] = f"{action_id}: {problem}"
                    misfits += 1
                elif value is not None:
                    fits += 1
        if first_error is not None and not out["reachable"]:
            raise first_error  # nothing could be read at all: that is a failure, not a status
        if misfits and not fits:
            # every answer was something else than the API documents: not a status to report as ok
            shown = "; ".join(f"{k}: {v}" for k, v in list(errors.items())[:3])
            raise BadAnswer(f"no status reading fits its declared type ({shown})", status=200,
                            hint="is this the right device family and port?")
        if errors:
            out["unavailable"] = errors
        return out


def _plan(spec: Spec) -> dict[str, list[Feedback]]:
    """Feedbacks grouped by the query action that supplies them (each action is called once)."""
    plan: dict[str, list[Feedback]] = {}
    for fb in spec.feedbacks:
        if fb.action is None or fb.id == "reachable" or not spec.has_action(fb.action):
            continue
        action = spec.action(fb.action)
        if not action.method or any(p.required and not p.has_default and p.settable for p in action.params):
            continue  # a status sweep cannot invent parameters
        plan.setdefault(fb.action, []).append(fb)
    return plan


def resolve_pointer(doc: Any, pointer: str) -> Any:
    """RFC 6901 JSON Pointer; a missing member (or a member of something that is not a container)
    gives None (devices differ in what they report)."""
    return _strict_pointer(doc, pointer)[0]


def _json_type(value: Any) -> str:
    """A value's JSON type name, for messages (never the value itself: it is the device's text)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _strict_pointer(doc: Any, pointer: str) -> tuple[Any, str | None]:
    """RFC 6901 JSON Pointer: (value, None); a member that is merely absent is (None, None); an
    answer of the wrong shape for the pointer (a list or text where an object is expected) is
    (None, what is wrong)."""
    if pointer == "":
        return doc, None
    if not pointer.startswith("/"):
        raise UsageError(f"bad JSON pointer {pointer!r}")
    cur: Any = doc
    walked = ""
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(cur, Mapping):
            if token not in cur:
                return None, None
            cur = cur[token]
        elif isinstance(cur, list) and token.isdigit():
            if int(token) >= len(cur):
                return None, None
            cur = cur[int(token)]
        elif cur is None:
            return None, None
        else:
            return None, f"{walked or 'the answer'} is {_json_type(cur)}, not an object with {pointer}"
        walked += "/" + raw
    return cur, None


_BOOL_WORDS = {"true", "false", "1", "0", "yes", "no", "on", "off"}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _transform_accepts(value: Any, how: str) -> bool:
    """Whether `transform(value, how)` reads something real from `value` rather than guessing."""
    if how == "nonempty":
        return isinstance(value, (Mapping, list, bool)) or _is_number(value)
    if how == "bool":
        return isinstance(value, bool) or value in (0, 1) or (
            isinstance(value, str) and value.strip().lower() in _BOOL_WORDS)
    if how == "int":
        return _is_number(value) or (isinstance(value, str) and transform(value, "int") is not None)
    if how == "seconds":
        if isinstance(value, Mapping) and not any(str(k).lower() in _UNITS for k in value):
            return False
        return not isinstance(value, bool) and _seconds(value) is not None
    return True


def _type_accepts(value: Any, declared: str) -> bool:
    if declared == "string":
        return isinstance(value, str)
    if declared == "boolean":
        return isinstance(value, bool)
    if declared == "integer":
        return _is_number(value) and float(value).is_integer()
    if declared == "number":
        return _is_number(value)
    if declared == "object":
        return isinstance(value, Mapping)
    if declared == "array":
        return isinstance(value, list)
    return True  # a type this check does not know: taken as it comes


def read_feedback(action: Action, data: Any, fb: Feedback) -> tuple[Any, str | None]:
    """One Feedback's value from its action's result, checked against the declared type:
    (value, None), or (None, what does not fit). Never a value made up from a wrong answer."""
    if action.response == "json" and isinstance(data, str):
        return None, "answer is not JSON"
    raw, problem = _strict_pointer(data, fb.pointer)
    if problem is not None or raw is None:
        return None, problem
    where = fb.pointer or "the answer"
    if fb.transform is not None and not _transform_accepts(raw, fb.transform):
        return None, f"{where} is {_json_type(raw)}, which does not read as {fb.type} ({fb.transform})"
    value = transform(raw, fb.transform)
    if fb.transform is None and not _type_accepts(value, fb.type):
        return None, f"{where} is {_json_type(raw)}, not {fb.type}"
    return value, None


def transform(value: Any, how: str | None) -> Any:
    if value is None or how is None:
        return value
    if how == "nonempty":
        return bool(value)
    if how == "bool":
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1", "yes", "on")
        return bool(value)
    if how == "int":
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return None
    if how == "seconds":
        return _seconds(value)
    return value


_UNITS = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}


def _seconds(value: Any) -> float | None:
    """A duration as seconds: a number, "HH:MM:SS", or {"Days","Hours","Minutes","Seconds"} (Poly UC)."""
    try:
        if isinstance(value, Mapping):
            total = sum(float(value[k]) * _UNITS[k.lower()] for k in value if k.lower() in _UNITS)
            return round(total, 3)
        if isinstance(value, str) and ":" in value:
            total = 0.0
            for part in value.split(":"):
                total = total * 60 + float(part)
            return round(total, 3)
        return round(float(value), 3)
    except (TypeError, ValueError):
        return None


def make_task(name: str, params: Mapping[str, str], *, mode: str) -> Task:
    """The task for a stored job (resume) or a CLI command."""
    if mode == "action":
        return ActionTask(name, dict(params))
    if name == "status":
        return StatusTask()
    return MacroTask(name, dict(params))


def probe_action(spec: Spec) -> str | None:
    """A harmless query used to see whether a device answers (reboot --wait): a status action first."""
    plan = _plan(spec)
    if plan:
        return next(iter(plan))
    for action in spec.actions.values():
        if action.kind == "query" and action.method == "GET" and not any(
                p.required and p.settable and not p.has_default for p in action.params):
            return action.id
    return None
