"""The typed, immutable model of a device spec.

Everything downstream (validation, request building, the emulator's routes, the CLI's action list)
reads these objects, never the raw YAML, so a spec is checked once when it is loaded.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from avctl.errors import UnknownActionError

ParamLocation = Literal["path", "query", "body", "header"]
BodyKind = Literal["json", "value", "form", "binary", "multipart", "none"]
ResponseKind = Literal["json", "file", "text", "none"]
ActionKind = Literal["query", "action"]
Access = Literal["RW", "RO", "WO"]
#: what a change of a configuration variable takes before it is in effect
Applies = Literal["live", "restart", "reboot"]
#: how a variable's values travel: as JSON values, or as strings (booleans as wire_true/wire_false)
Wire = Literal["json", "string"]

#: what a device may make avctl read: a JSON or text answer in memory, a download on disk
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_DOWNLOAD_BYTES = 2 * 1024 * 1024 * 1024

SCALAR_TYPES = ("string", "integer", "number", "boolean")
PARAM_TYPES = (*SCALAR_TYPES, "enum", "array", "object", "binary")


@dataclass(frozen=True)
class Param:
    name: str
    location: ParamLocation
    types: tuple[str, ...]
    required: bool = False
    wire: str = ""
    values: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    items: Mapping[str, Any] | None = None
    schema: Mapping[str, Any] | None = None
    default: Any = None
    has_default: bool = False
    const: Any = None
    has_const: bool = False
    description: str = ""
    content_type: str | None = None
    #: a password, PIN or lock code: masked in audit logs, journals and output
    secret: bool = False

    @property
    def wire_name(self) -> str:
        return self.wire or self.name

    @property
    def settable(self) -> bool:
        """Constants are part of the action, not something a caller chooses."""
        return not self.has_const

    def type_label(self) -> str:
        if "enum" in self.types:
            return "|".join(str(v) for v in self.values)
        label = "|".join(self.types)
        if self.minimum is not None or self.maximum is not None:
            lo = "" if self.minimum is None else _num(self.minimum)
            hi = "" if self.maximum is None else _num(self.maximum)
            label += f" {lo}..{hi}"
        return label


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class AltRoute:
    method: str
    path: str


@dataclass(frozen=True)
class Action:
    id: str
    label: str
    kind: ActionKind
    method: str
    path: str
    params: tuple[Param, ...] = ()
    body: BodyKind = "none"
    response: ResponseKind = "json"
    success: frozenset[int] = frozenset({200})
    safety: str | None = None
    safety_note: str = ""
    description: str = ""
    also_accepts: tuple[AltRoute, ...] = ()
    #: per-action overrides of the transport (Solstice v1 and v2 differ in auth, scheme and port)
    auth: str | None = None
    scheme: str | None = None
    port: int | None = None
    line: int = 0

    @property
    def disruptive(self) -> bool:
        return self.safety == "disruptive"

    def param(self, name: str) -> Param | None:
        for p in self.params:
            if p.name == name:
                return p
        return None

    @property
    def settable_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.settable)

    def public_values(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """`values` with every secret parameter masked (for audit logs, journals and output)."""
        secret = {p.name for p in self.params if p.secret}
        return {k: ("***" if k in secret and v not in (None, "") else v) for k, v in values.items()}

    def signature(self) -> str:
        """One line for help output: `volume=<integer 0..100> [speaker=...]`."""
        parts = []
        for p in self.settable_params:
            text = f"{p.name}=<{p.type_label()}>"
            parts.append(text if p.required else f"[{text}]")
        return " ".join(parts)


@dataclass(frozen=True)
class Transport:
    protocols: tuple[str, ...] = ("https",)
    ports: Mapping[str, int] = field(default_factory=lambda: {"https": 443, "http": 80})
    auth_type: str = "none"
    default_user: str | None = None
    base_url: str = ""
    max_body_bytes: int | None = None
    serial_requests: bool = False
    #: caps on the (decompressed) answers avctl reads; the caller may change them per device
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES

    @property
    def default_scheme(self) -> str:
        return self.protocols[0] if self.protocols else "https"

    def port_for(self, scheme: str) -> int:
        return self.ports.get(scheme, 443 if scheme == "https" else 80)


@dataclass(frozen=True)
class Feedback:
    id: str
    type: str
    action: str | None = None
    pointer: str = ""
    transform: str | None = None
    #: how often the server's poller reads it: "every" poll, or "slow" (a reading that changes only
    #: with maintenance: model, firmware, serial, peripherals; read every few minutes)
    poll: str = "every"


@dataclass(frozen=True)
class ForEach:
    """A Macro step repeated for every item of a query's answer (a list): ``$each`` in the step's
    params is the item's value at `pointer` (``end_call``: hang up every conference ``conferences_get``
    lists, by its ``/id``)."""

    action: str
    pointer: str = ""


@dataclass(frozen=True)
class MacroStep:
    action: str
    params: Mapping[str, Any] = field(default_factory=dict)
    for_each: ForEach | None = None


@dataclass(frozen=True)
class Macro:
    id: str
    label: str = ""
    steps: tuple[MacroStep, ...] = ()


VARIABLE_TYPES = (*SCALAR_TYPES, "enum", "object", "array", "any")
ACCESS_MODES: tuple[Access, ...] = ("RW", "RO", "WO")
APPLIES: tuple[Applies, ...] = ("live", "restart", "reboot")
#: how often the server's poller reads a Feedback (`Feedback.poll`)
FEEDBACK_POLL = ("every", "slow")
WIRES: tuple[Wire, ...] = ("json", "string")


@dataclass(frozen=True)
class Variable:
    """One entry of a spec's configuration catalogue (the ``## Variables`` section).

    `id` is a key (``cast.miracast.enabled``) or a glob pattern (``connection.*``, ``*``) that
    covers many keys; a pattern with a `schema_ref` covers exactly the schema's leaf paths.
    See avctl.spec.variables for lookups and value checks.
    """

    id: str
    type: str = "any"
    access: Access = "RW"
    #: a password, PIN or key: never stored or shown in clear
    secret: bool = False
    applies: Applies = "live"
    #: action ids of the same spec that read / write the variable
    read_via: str | None = None
    write_via: str | None = None
    values: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    wire: Wire = "json"
    wire_true: str | None = None
    wire_false: str | None = None
    default: Any = None
    has_default: bool = False
    #: a JSON Schema file beside the spec whose leaf paths are the keys under this entry
    schema_ref: str | None = None
    #: that file's content, read by the loader
    schema: Mapping[str, Any] | None = None
    notes: str = ""
    line: int = 0

    @property
    def is_pattern(self) -> bool:
        return any(c in self.id for c in "*?[")

    @property
    def settable(self) -> bool:
        return self.access != "RO"


@dataclass(frozen=True)
class Spec:
    """A loaded device spec: metadata plus everything a client and an emulator need."""

    id: str
    title: str
    family: str | None
    transport: Transport
    actions: Mapping[str, Action]
    feedbacks: tuple[Feedback, ...] = ()
    macros: Mapping[str, Macro] = field(default_factory=dict)
    traits: tuple[str, ...] = ()
    #: the configuration catalogue, in the spec's order
    variables: tuple[Variable, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""

    def action(self, action_id: str) -> Action:
        try:
            return self.actions[action_id]
        except KeyError:
            close = difflib.get_close_matches(action_id, list(self.actions), n=3)
            hint = (
                f"did you mean {', '.join(close)}?"
                if close
                else f"run 'avctl actions {self.family or self.id}' to list them"
            )
            raise UnknownActionError(
                f"unknown action {action_id!r} for {self.family or self.id}", hint=hint
            ) from None

    def has_action(self, action_id: str) -> bool:
        return action_id in self.actions
