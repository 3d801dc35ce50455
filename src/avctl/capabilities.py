"""Capabilities every device has from its spec: ``status`` (the Feedbacks) and verbs (the Macros).

These are spec semantics, so they live beside `Device` (``await dev.status()``,
``await dev.run_verb("reboot")``); the fleet's status and verb tasks are thin adapters over them.
Nothing here names a family and nothing here sends anything itself: `Device` passes its own
``call``, so every request of a capability goes through the device's one call path (validation,
auth, retries, caps, cleartext refusal, and the device's ``on_call`` hook the fleet audits from).

- **Status**: each Feedback names a query action, a JSON pointer into its answer, an optional
  transform and a declared type. Each query action is called once; a reading whose answer does not
  fit the declared type (or the typed `Status` field) is *unavailable* with the reason, never a
  value made up from a wrong answer. A device none of whose answers fits raises `BadAnswer`.
- **Verbs**: a Macro's steps run in order. ``{volume: $volume}`` takes the caller's ``volume``; a
  caller's parameter that a step does not fix itself goes to every step that declares it; a
  parameter no step accepts is an error. Every step is validated before the first one is sent.
  A step with ``for_each`` runs once per item of a query's answer, ``$each`` being the item's value
  (``end_call``: every active call, by its id). Those queries are read first, then every request
  is validated, then sent: the device's answer is checked like a caller's parameters (and a list
  longer than `MAX_EACH` is refused, not followed).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from avctl.errors import BadAnswer, DeviceError, UsageError, ValidationError
from avctl.spec import Spec, coerce_text, validate
from avctl.spec.model import Action, Feedback, ForEach, Macro

#: the readings every family may report, typed on `Status`, in the order tables show them
STATUS_FIELDS = ("reachable", "model", "firmware", "uptime", "in_call", "mic_muted", "volume")

#: the unit of each numeric reading, the same for every family (a spec's Feedback converts to it:
#: Poly UC's {"Days","Hours",...} uptime by ``transform: seconds``); docs/fleet.md lists them
READING_UNITS = {"uptime": "s", "volume": "%", "connected_users": "users"}

NOT_IMPLEMENTED = 501

#: a query of the device: action id -> the answer's data (the device's `call`, with retries)
Query = Callable[[str], Awaitable[Any]]


# --- status ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    """What a device reports about itself, from its spec's Feedbacks.

    The common readings are typed attributes (None: not declared by the spec, not reported by the
    device, or unavailable); ``readings`` holds the family's other Feedbacks by id (``serial``,
    ``mac``, ...); ``unavailable`` says, per reading, why it could not be read. ``declared`` lists
    the readings the spec offers, in the spec's order (a None there is "not reported", not "not
    offered").
    """

    reachable: bool
    model: str | None = None
    firmware: str | None = None
    uptime: float | None = None
    in_call: bool | None = None
    mic_muted: bool | None = None
    volume: int | None = None
    readings: Mapping[str, Any] = field(default_factory=dict)
    unavailable: Mapping[str, str] = field(default_factory=dict)
    declared: tuple[str, ...] = ()

    def get(self, reading: str) -> Any:
        """Any reading by its Feedback id (a typed one or a family's own)."""
        if reading in STATUS_FIELDS:
            return getattr(self, reading)
        return self.readings.get(reading)

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``fleet status``: reachable, every declared reading, then unavailable."""
        out: dict[str, Any] = {"reachable": self.reachable}
        out.update((name, self.get(name)) for name in self.declared)
        if self.unavailable:
            out["unavailable"] = dict(self.unavailable)
        return out


def status_plan(spec: Spec) -> dict[str, list[Feedback]]:
    """Feedbacks grouped by the query action that supplies them (each action is called once).

    Left out: ``reachable`` (it is whether any query answered), Feedbacks of actions the spec lacks,
    and actions that need a parameter a status read cannot invent.
    """
    plan: dict[str, list[Feedback]] = {}
    for fb in spec.feedbacks:
        if fb.action is None or fb.id == "reachable" or not spec.has_action(fb.action):
            continue
        action = spec.action(fb.action)
        if not action.method or any(p.required and not p.has_default and p.settable for p in action.params):
            continue
        plan.setdefault(fb.action, []).append(fb)
    return plan


def check_status(spec: Spec) -> dict[str, list[Feedback]]:
    """The status plan, validated (nothing is sent on error); UsageError if the spec has none."""
    plan = status_plan(spec)
    if not plan:
        raise UsageError(f"family {spec.family or spec.id} spec has no Feedbacks that can be read",
                         hint="a spec declares status readings in its Feedbacks block")
    for action_id in plan:
        validate(spec.action(action_id), {})
    return plan


#: `check_status` per spec, kept with the spec itself (its id alone could be reused by another)
_PLANS: dict[int, tuple[Spec, Mapping[str, Sequence[Feedback]]]] = {}


def _checked_plan(spec: Spec) -> Mapping[str, Sequence[Feedback]]:
    """`check_status` once per spec: the server reads the status of every device every minute."""
    known = _PLANS.get(id(spec))
    if known is not None and known[0] is spec:
        return known[1]
    plan = MappingProxyType({action: tuple(feedbacks) for action, feedbacks in check_status(spec).items()})
    if len(_PLANS) >= 64:  # specs made on the fly (tests, plugins): never a growing cache
        _PLANS.clear()
    _PLANS[id(spec)] = (spec, plan)
    return plan


async def read_status(spec: Spec, query: Query) -> Status:
    """Every Feedback of `spec`, read through `query`.

    A device that answers a query with an error (not found, forbidden, not implemented) is
    reachable: that reading is unavailable. A transient failure (5xx, busy) even after the
    device's retries means the device is in trouble and is raised; so is an error for every query.
    """
    plan = _checked_plan(spec)
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    reachable = False
    first_error: DeviceError | None = None
    fits = misfits = 0
    for action_id, feedbacks in plan.items():
        try:
            data = await query(action_id)
        except DeviceError as exc:
            if exc.transient and exc.status != NOT_IMPLEMENTED:
                raise
            first_error = first_error or exc
            for fb in feedbacks:
                values.setdefault(fb.id, None)
                errors[fb.id] = f"{action_id}: {exc.kind} (HTTP {exc.status})"
            continue
        reachable = True
        action = spec.action(action_id)
        for fb in feedbacks:
            value, problem = read_feedback(action, data, fb)
            if problem is None:
                value, problem = _fit_field(fb.id, value)
            values[fb.id] = value
            if problem is not None:
                errors[fb.id] = f"{action_id}: {problem}"
                misfits += 1
            elif value is not None:
                fits += 1
    if first_error is not None and not reachable:
        raise first_error  # nothing could be read at all: a failure, not a status
    if misfits and not fits:
        shown = "; ".join(f"{k}: {v}" for k, v in list(errors.items())[:3])
        raise BadAnswer(f"no status reading fits its declared type ({shown})", status=200,
                        hint="is this the right device family and port?")
    common = {k: v for k, v in values.items() if k in STATUS_FIELDS}
    return Status(reachable=True, **common, readings={k: v for k, v in values.items() if k not in common},
                  unavailable=errors, declared=tuple(values))


#: the readings that say a room is in use, and how the in-call guard names them
BUSY_READINGS = {"in_call": "in a call", "sharing": "sharing content"}


@dataclass(frozen=True)
class Busy:
    """Whether a device is in use (a call, sharing), from the spec's busy readings only.

    ``busy`` is None when the device could not tell (a reading unavailable, or none declared):
    the in-call guard treats that as busy, since a room it cannot see may be in a meeting.
    """

    busy: bool | None
    detail: str


async def read_busy(spec: Spec, query: Query) -> Busy:
    """Read only the busy readings (`BUSY_READINGS`) the spec declares: one query per action."""
    declared = [fb for fb in spec.feedbacks if fb.id in BUSY_READINGS and fb.action and spec.has_action(fb.action)]
    if not declared:
        return Busy(None, f"family {spec.family} declares no in-call reading")
    answers: dict[str, Any] = {}
    for fb in declared:
        assert fb.action is not None
        if fb.action not in answers:
            try:
                answers[fb.action] = await query(fb.action)
            except DeviceError as exc:
                if exc.transient and exc.status != NOT_IMPLEMENTED:
                    raise
                return Busy(None, f"{fb.id} could not be read ({fb.action}: {exc.kind}, HTTP {exc.status})")
        value, problem = read_feedback(spec.action(fb.action), answers[fb.action], fb)
        if problem is not None or not isinstance(value, bool):
            return Busy(None, f"{fb.id} could not be read ({fb.action}: {problem or 'not reported'})")
        if value:
            return Busy(True, f"{BUSY_READINGS[fb.id]} ({fb.id} from {fb.action})")
    return Busy(False, "idle")


#: what each typed `Status` field holds (a spec may declare a common reading with another type)
_FIELD_TYPES: dict[str, str] = {"model": "string", "firmware": "string", "uptime": "number",
                                "in_call": "boolean", "mic_muted": "boolean", "volume": "integer"}


def _fit_field(name: str, value: Any) -> tuple[Any, str | None]:
    """A common reading as its `Status` field's type: (value, None) or (None, what does not fit)."""
    want = _FIELD_TYPES.get(name)
    if want is None or value is None:
        return value, None
    if not _type_accepts(value, want):
        return None, f"{name} reads as {_json_type(value)}, not {want} (Status.{name})"
    if want == "integer":
        return int(value), None  # 40.0 -> 40
    return value, None


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
    if how == "version":
        return isinstance(value, str) and bool(value.strip())
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
    if how == "version":
        # "7.2.2.1094 28-Feb-22 15:29" (a Trio's Firmware/Application: version, then build date)
        return str(value).split()[0] if str(value).strip() else None
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


# --- verbs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verb:
    """A Macro of the spec as a device offers it."""

    name: str
    label: str
    #: the actions it calls, in order
    steps: tuple[str, ...]
    #: parameters the caller must give (the steps' ``$placeholders``)
    needs: tuple[str, ...]
    #: parameters a step's action declares secret (masked in job records and audit rows)
    secrets: frozenset[str]
    #: whether any step is marked disruptive in the spec (reboot, hang-up): ask before running it
    disruptive: bool


def _macro(spec: Spec, verb: str) -> Macro:
    try:
        return spec.macros[verb]
    except KeyError:
        offered = ", ".join(sorted(spec.macros)) or "none"
        raise UsageError(f"family {spec.family or spec.id} has no '{verb}' verb",
                         hint=f"its verbs: {offered}") from None


def verbs_of(spec: Spec) -> dict[str, Verb]:
    """Every verb (Macro) the spec offers, by name."""
    return {name: describe_verb(spec, name) for name in spec.macros}


#: the placeholder of a ``for_each`` step's item
EACH = "$each"
#: the most items a ``for_each`` step follows (a device that lists more is refused, not obeyed)
MAX_EACH = 16


def _each_param(params: Mapping[str, Any]) -> str | None:
    return next((k for k, v in params.items() if v == EACH), None)


def describe_verb(spec: Spec, verb: str) -> Verb:
    macro = _macro(spec, verb)
    needs: list[str] = []
    secrets: set[str] = set()
    actions: list[str] = []
    for step in macro.steps:
        action = spec.action(step.action)
        refs = {k: v[1:] for k, v in step.params.items() if isinstance(v, str) and v.startswith("$") and v != EACH}
        needs.extend(n for n in refs.values() if n not in needs)
        for p in action.params:
            if p.secret:
                secrets.update({p.name, refs.get(p.name, p.name)})
        if step.for_each is not None:
            actions.append(step.for_each.action)
        actions.append(step.action)
    return Verb(name=macro.id, label=macro.label, steps=tuple(actions),
                needs=tuple(needs), secrets=frozenset(secrets),
                disruptive=any(spec.action(a).disruptive for a in actions))


class VerbStep(NamedTuple):
    """One step of a verb: its action and values; with `for_each`, sent once per item of that
    query's answer with `each` (the parameter that takes ``$each``) set (see `each_values`)."""

    action: str
    values: dict[str, Any]
    for_each: ForEach | None = None
    each: str | None = None


def verb_steps(spec: Spec, verb: str, params: Mapping[str, Any]) -> list[VerbStep]:
    """The verb's steps, every one validated: nothing is sent on error (a ``for_each`` step's
    ``$each`` is validated per item, once the device has listed them: `each_values`).

    A value given as text is read per the step's declared type, as on the command line
    (``volume="30"`` -> 30 for an integer parameter).
    """
    macro = _macro(spec, verb)
    used: set[str] = set()
    steps = []
    for step in macro.steps:
        action = spec.action(step.action)
        values: dict[str, Any] = {}
        each = _each_param(step.params) if step.for_each is not None else None
        for key, value in step.params.items():
            if key == each:
                continue
            if isinstance(value, str) and value.startswith("$"):
                wanted = value[1:]
                if wanted not in params:
                    raise ValidationError(f"verb {verb} needs {wanted}=...", action=step.action)
                values[key] = _typed(action, key, params[wanted])
                used.add(wanted)
            else:
                values[key] = value
        for key, value in params.items():
            # a parameter the step does not fix itself goes to every step that declares it
            if key not in step.params and action.param(key) is not None:
                values[key] = _typed(action, key, value)
                used.add(key)
        steps.append(VerbStep(step.action, values, step.for_each, each))
    unknown = sorted(set(params) - used)
    if unknown:
        raise ValidationError(f"verb {verb} of family {spec.family} takes no parameter {', '.join(unknown)}")
    for s in steps:
        validate(_optional(spec.action(s.action), s.each), s.values)
    return steps


def _optional(action: Action, name: str | None) -> Action:
    """`action` with parameter `name` not required (it is filled in per item, later)."""
    if name is None:
        return action
    return dataclasses.replace(action, params=tuple(
        dataclasses.replace(p, required=False) if p.name == name else p for p in action.params))


def each_values(spec: Spec, step: VerbStep, listing: Any) -> list[dict[str, Any]]:
    """A ``for_each`` step's values, one per item of its query's answer `listing`, each validated.

    The answer is the device's: anything but a list of at most `MAX_EACH` items that each have a
    scalar at the step's pointer is a `BadAnswer`, and nothing is sent.
    """
    if step.for_each is None or step.each is None:
        return [step.values]
    where = f"{step.for_each.action} for {step.action}"
    if not isinstance(listing, list):
        raise BadAnswer(f"{where}: the answer is {_json_type(listing)}, not a list", status=200)
    if len(listing) > MAX_EACH:
        raise BadAnswer(f"{where}: {len(listing)} items, more than the {MAX_EACH} avctl follows", status=200)
    out = []
    for item in listing:
        value, problem = _strict_pointer(item, step.for_each.pointer)
        if problem is not None or isinstance(value, bool) or not isinstance(value, (str, int)):
            raise BadAnswer(f"{where}: an item has no usable {step.for_each.pointer or 'value'}", status=200)
        values = {**step.values, step.each: value}
        try:
            validate(spec.action(step.action), values)
        except ValidationError as exc:
            # the device's text is not repeated: it is not ours to print
            raise BadAnswer(f"{where}: an item's {step.each} does not fit the parameter ({exc.kind})",
                            status=200) from None
        out.append(values)
    return out


def _typed(action: Action, name: str, value: Any) -> Any:
    return coerce_text(action, name, value) if isinstance(value, str) else value


def feedbacks_of(spec: Spec) -> dict[str, Feedback]:
    """The Feedbacks a status read reports (``reachable`` is always reported too), by id."""
    return {fb.id: fb for fbs in status_plan(spec).values() for fb in fbs}


# --- suggestions ----------------------------------------------------------------------------------


def unknown_task_hint(name: str, specs: Iterable[Spec], *, verb: bool) -> str:
    """The hint for a verb (or action) no selected family has: the close names those families offer,
    and where the full list is."""
    known = [n for spec in specs for n in (spec.macros if verb else spec.actions)]
    if verb:
        known.append("status")  # every family's status is a verb of its own
    close = difflib.get_close_matches(name, sorted(set(known)), n=3, cutoff=0.6)
    where = ("'avctl fleet --help' lists the verbs" if verb
             else "'avctl actions FAMILY' lists a family's actions")
    return (f"did you mean {' or '.join(repr(c) for c in close)}? " if close else "") + where
