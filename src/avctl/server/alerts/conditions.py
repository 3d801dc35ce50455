"""Alert conditions: a tiny hand-written parser (no eval) and their evaluation against a device.

Grammar (docs/server.md, "Alerts and notifications")::

    condition := state-test [for DURATION] | reading-test [for DURATION]
    state-test := STATE | not STATE                 STATE: offline auth_failed error unknown online
    reading-test := READING OP VALUE | READING      (a bare reading means READING == true)
    OP := == | != | < | <= | > | >=
    VALUE := true | false | NUMBER | "text" | 'text'

Ordering (``<`` ...) compares numbers, or dotted versions (``firmware < "10.1.0"`` compares
10.1.0 as a version, not as text). ``for 5m`` (also ``for > 5m``) makes the condition fire only once
it has held that long.

A reading test is *unknown* (neither true nor false) while the device is not online or has not
reported the reading, or reports a value of another type: an unknown condition opens nothing and
resolves nothing, so a device that drops offline does not flap its firmware alert.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from avctl.durations import check_seconds
from avctl.errors import UsageError
from avctl.server.model import DeviceView

#: a `for` longer than this is a typo (and would keep a pending row for a month)
MAX_FOR_SECONDS = 30 * 86400.0
MAX_CONDITION_CHARS = 200
#: states a condition may name; "disabled" is not one: a disabled device raises no alerts
STATE_NAMES = ("offline", "auth_failed", "error", "unknown", "online")
OPERATORS = ("==", "!=", "<=", ">=", "<", ">")

_TOKEN_RE = re.compile(r"""\s*(?:(?P<op>==|!=|<=|>=|<|>)|(?P<num>-?\d+(?:\.\d+)?(?![\w.]))"""
                       r"""|(?P<str>"[^"]*"|'[^']*')|(?P<word>[A-Za-z_][A-Za-z0-9_]*))""")
_UNIT_SECONDS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "mins": 60,
                 "minute": 60, "minutes": 60, "h": 3600, "hour": 3600, "hours": 3600, "d": 86400,
                 "day": 86400, "days": 86400}
_DURATION_PART_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)")
_VERSION_RE = re.compile(r"\d+(?:\.\d+)*")
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: bool(a == b), "!=": lambda a, b: bool(a != b), "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b), ">": lambda a, b: bool(a > b), ">=": lambda a, b: bool(a >= b)}
HELP = ('write a state (offline, auth_failed, error, not online) or a reading test such as '
        'firmware != "10.1.0", cert_days_left < 30, sip_registered == false; add "for 5m" to wait')


class ConditionError(UsageError):
    """A condition that does not parse; the rules loader adds the file and line."""


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds from ``90s``, ``5m``, ``4h``, ``1d``, ``1h30m`` (bounded by :data:`MAX_FOR_SECONDS`)."""
    s = text.strip().lower()
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION_PART_RE.match(s, pos)
        if not m or m.group(2) not in _UNIT_SECONDS:
            raise ConditionError(f"{what} {text.strip()!r} is not a duration",
                                 hint="write a number and a unit: 30s, 5m, 4h, 1d, 1h30m")
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos == 0:
        raise ConditionError(f"{what} is empty", hint="write a number and a unit: 30s, 5m, 4h, 1d")
    try:
        return check_seconds(what, total, maximum=MAX_FOR_SECONDS, allow_zero=True)
    except UsageError:
        raise ConditionError(f"{what} {text.strip()!r} is not a usable duration",
                             hint=f"at most {MAX_FOR_SECONDS / 86400:g} days") from None


def _version(text: str) -> tuple[int, ...] | None:
    return tuple(int(p) for p in text.split(".")) if _VERSION_RE.fullmatch(text) else None


@dataclass(frozen=True)
class Condition:
    """A parsed condition. ``reading`` is None for a state test."""

    text: str
    #: state test: the states that match (with `negate`, the states that do not)
    states: frozenset[str] = frozenset()
    negate: bool = False
    reading: str | None = None
    op: str = "=="
    operand: bool | float | str | None = None
    #: seconds the condition must hold before it fires (0: at once)
    hold: float = 0.0

    @property
    def is_state(self) -> bool:
        return self.reading is None

    def evaluate(self, view: DeviceView) -> tuple[bool | None, Any]:
        """(holds, the value tested): holds is None when it cannot be told (see the module doc)."""
        if view.state == "disabled":
            return False, view.state
        if self.reading is None:
            return (view.state in self.states) != self.negate, view.state
        if view.state != "online" or self.reading not in view.readings:
            return None, None
        value = view.readings[self.reading]
        left, right = _comparable(value, self.operand, self.op)
        if left is None or right is None:
            return None, value
        return _COMPARE[self.op](left, right), value


def _comparable(value: Any, operand: Any, op: str) -> tuple[Any, Any]:
    """The two sides in a comparable form, or Nones when the device's value is of another type."""
    if isinstance(operand, bool):
        return (value, operand) if isinstance(value, bool) else (None, None)
    if isinstance(operand, float):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return None, None
        return float(value), operand
    if not isinstance(value, str):
        return None, None
    if op in ("==", "!="):
        return value, operand
    return _version(value), _version(str(operand))


def parse_condition(text: str) -> Condition:
    """Parse a ``when:`` text; ConditionError says what is wrong."""
    if len(text) > MAX_CONDITION_CHARS:
        raise ConditionError(f"condition is longer than {MAX_CONDITION_CHARS} characters")
    tokens: list[tuple[str, str]] = []
    pos, hold = 0, 0.0
    while pos < len(text) and text[pos:].strip():
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise ConditionError(f"cannot read {text[pos:].strip()[:30]!r} in {text!r}", hint=HELP)
        kind = m.lastgroup or ""
        pos = m.end()
        if kind == "word" and m.group(kind) == "for" and tokens:
            rest = text[pos:].strip()
            rest = rest[2:] if rest.startswith(">=") else rest[1:] if rest.startswith(">") else rest
            hold = parse_duration(rest, "the time after 'for'")
            break
        tokens.append((kind, m.group(kind)))
    return _build(text, tokens, hold)


def _build(text: str, tokens: list[tuple[str, str]], hold: float) -> Condition:
    kinds = [k for k, _ in tokens]
    words = [v for _, v in tokens]
    if kinds == ["word"] and words[0] in STATE_NAMES:
        if words[0] == "online":
            raise ConditionError("'online' is the healthy state", hint="did you mean 'not online'?")
        return Condition(text, states=frozenset(words), hold=hold)
    if kinds == ["word", "word"] and words[0] == "not":
        if words[1] not in STATE_NAMES:
            raise ConditionError(f"{words[1]!r} is not a device state",
                                 hint=f"states: {', '.join(STATE_NAMES)}")
        return Condition(text, states=frozenset({words[1]}), negate=True, hold=hold)
    if kinds == ["word"]:
        return Condition(text, reading=words[0], op="==", operand=True, hold=hold)
    if len(tokens) == 3 and kinds[0] == "word" and kinds[1] == "op":
        if words[0] in STATE_NAMES or words[0] == "not":
            raise ConditionError(f"{words[0]!r} is a state, not a reading", hint=HELP)
        return Condition(text, reading=words[0], op=words[1], operand=_operand(tokens[2], words[1]), hold=hold)
    if not tokens:
        raise ConditionError("condition is empty", hint=HELP)
    raise ConditionError(f"cannot read the condition {text!r}", hint=HELP)


def _operand(token: tuple[str, str], op: str) -> bool | float | str:
    kind, raw = token
    ordering = op not in ("==", "!=")
    if kind == "num":
        return float(raw)
    if kind == "str":
        value = raw[1:-1]
        if ordering and _version(value) is None:
            raise ConditionError(f"{op} compares numbers or versions, not the text {raw}",
                                 hint='write a version such as "10.1.0", or use == / !=')
        return value
    if kind == "word" and raw in ("true", "false"):
        if ordering:
            raise ConditionError(f"{op} cannot compare with {raw}", hint="use == or != with true and false")
        return raw == "true"
    if kind == "word":
        raise ConditionError(f"{raw!r} is not a value", hint=f'quote text: "{raw}"; or write true, false, a number')
    raise ConditionError(f"expected a value after {op}, got {raw!r}", hint=HELP)
