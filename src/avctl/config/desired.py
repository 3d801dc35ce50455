"""Each device's desired configuration: its inventory ``config:`` blocks merged, ``${field}``
references filled in from its inventory entry, every key and value checked against its family's
catalogue (the spec's Variables), all before any device is contacted.

Errors name the ``file:line`` of the value and the device it was checked for; every problem of the
inventory is reported at once (up to `MAX_PROBLEMS`), so one run shows what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from avctl.errors import AvctlError, UsageError
from avctl.families import family_names
from avctl.fleet.config_blocks import DesiredValue
from avctl.fleet.inventory import DeviceEntry
from avctl.redact import SENSITIVE_KEY_RE
from avctl.spec import Spec
from avctl.spec.variables import check_value, lookup, to_wire

SpecProvider = Callable[[str], Spec]

#: problems listed in one error (the rest are counted)
MAX_PROBLEMS = 20
#: ``${room}``, ``${data.floor}``; ``$$`` is a literal ``$``
_REF_RE = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_.-]*)\})")
FIELDS = ("name", "family", "site", "room", "host")
#: checks avctl makes itself, beside the device's keys: key -> the values a desired state may ask
CHECKS: Mapping[str, tuple[str, ...]] = {"avctl.admin_password": ("not_default",)}


class ConfigError(UsageError):
    """The desired configuration cannot be used; the message lists each problem as file:line."""

    kind = "config"


@dataclass(frozen=True)
class Desired:
    """One desired key of one device, checked: its value in the form the device's API uses."""

    key: str
    value: Any
    #: "file:line" of the value in the inventory or template
    where: str
    #: what it takes for a change to take effect: "live", "restart" or "reboot"
    applies: str = "live"
    #: the action that writes it (the catalogue's write_via)
    write_via: str | None = None
    #: False: the API cannot set it (read-only); plan reports it, apply leaves it
    settable: bool = True


def fill_refs(value: Any, entry: DeviceEntry) -> Any:
    """`value` with ``${field}`` references replaced from the device's inventory entry."""
    if isinstance(value, str):
        return _REF_RE.sub(lambda m: _field(m, entry), value)
    if isinstance(value, list):
        return [fill_refs(v, entry) for v in value]
    if isinstance(value, dict):
        return {k: fill_refs(v, entry) for k, v in value.items()}
    return value


def _field(match: re.Match[str], entry: DeviceEntry) -> str:
    if match.group(1) == "$":
        return "$"
    name = match.group(2)
    if name.startswith("data."):
        found: Any = entry.data
        for part in name[5:].split("."):
            found = found.get(part) if isinstance(found, Mapping) else None
    elif name in FIELDS:
        found = getattr(entry, name)
    else:
        raise UsageError(f"${{{name}}} is not a device field",
                         hint=f"use one of: {', '.join('${' + f + '}' for f in FIELDS)}, ${{data.KEY}}")
    if found is None or isinstance(found, Mapping | list):
        raise UsageError(f"${{{name}}}: device {entry.name} has no {name.replace('data.', 'data value ')}",
                         hint="set it in the device's inventory entry, or give this device its own value")
    return str(found)


def merged(entry: DeviceEntry) -> dict[str, DesiredValue]:
    """The device's desired values as written, the highest-precedence block winning per key."""
    out: dict[str, DesiredValue] = {}
    for block in entry.config:
        out.update(block.for_family(entry.family))
    return out


def desired_for(entry: DeviceEntry, spec: Spec, problems: list[str] | None = None) -> dict[str, Desired]:
    """The checked desired configuration of one device. Problems are appended to `problems`
    (file:line each); without a list, the first one is raised as a `ConfigError`."""
    out: dict[str, Desired] = {}
    for key, written in merged(entry).items():
        try:
            out[key] = _checked(entry, spec, key, written)
        except AvctlError as exc:
            text = f"{written.where}: {entry.family} (device {entry.name}): {exc.message}"
            if problems is None:
                raise ConfigError(text, hint=exc.hint) from None
            problems.append(text)
    return out


def _checked(entry: DeviceEntry, spec: Spec, key: str, written: DesiredValue) -> Desired:
    if key in CHECKS or key.startswith("avctl."):
        allowed = CHECKS.get(key)
        if allowed is None:
            raise UsageError(f"unknown check {key!r}", hint=f"avctl checks: {', '.join(CHECKS)}")
        if written.value not in allowed:
            raise UsageError(f"{key}: expected {' or '.join(allowed)}, got {written.value!r}")
        return Desired(key, written.value, written.where, settable=False)
    var = lookup(spec, key)
    if var is None:
        check_value(spec, key, written.value)  # raises the catalogue's message (with a suggestion)
        raise UsageError(f"unknown configuration key {key!r}")
    if var.secret or SENSITIVE_KEY_RE.search(key.rsplit(".", 1)[-1]):
        raise UsageError(f"{key}: a secret: avctl does not keep secrets in desired state, nor compare them",
                         hint="set it once with 'avctl call' or the device's own tools")
    # a read-only key is checked like any other, then shown by plan as one the API cannot set
    value = to_wire(var, fill_refs(written.value, entry), key)
    return Desired(key, value, written.where, applies=var.applies, write_via=var.write_via,
                   settable=var.settable)


def desired_fleet(devices: Iterable[DeviceEntry], specs: SpecProvider) -> dict[str, dict[str, Desired]]:
    """Device name -> its checked desired configuration, for every device that has one. Every
    problem of every device is collected; any problem raises one `ConfigError` listing them."""
    problems: list[str] = []
    out: dict[str, dict[str, Desired]] = {}
    devices = list(devices)
    problems += _unknown_families(devices)
    for entry in devices:
        if entry.disabled or not merged(entry):
            continue
        try:
            spec = specs(entry.family)
        except AvctlError as exc:
            problems.append(f"{entry.source}: device {entry.name}: {exc.message}")
            continue
        wanted = desired_for(entry, spec, problems)
        if wanted:
            out[entry.name] = wanted
    if problems:
        raise ConfigError(problem_text(problems), hint="nothing was sent; correct the inventory and run again")
    return out


def _unknown_families(devices: Sequence[DeviceEntry]) -> list[str]:
    """A family section no family has (a typo such as ``videoso:``) would otherwise be ignored."""
    known = set(family_names())
    seen: dict[str, str] = {}
    for entry in devices:
        for block in entry.config:
            for fam in block.families:
                if fam not in known:
                    seen.setdefault(f"{block.where}:{fam}", f"{block.where}: {block.level}: no device family "
                                    f"{fam!r} (known: {', '.join(sorted(known))})")
    return list(seen.values())


def problem_text(problems: Sequence[str]) -> str:
    # one problem per line, deduplicated (a defaults value checked for 200 devices is one mistake
    # when it fails for the same reason each time; the device name differs, so compare without it)
    seen: dict[str, str] = {}
    for p in problems:
        seen.setdefault(re.sub(r" \(device [^)]*\)", "", p), p)
    shown = list(seen.values())[:MAX_PROBLEMS]
    more = len(seen) - len(shown)
    head = f"invalid desired configuration ({len(seen)} problem{'s' if len(seen) != 1 else ''}):"
    return "\n".join([head, *(f"  {p}" for p in shown), *([f"  ... and {more} more"] if more else [])])
