"""Reading, comparing and writing one device's configuration through its family's config codec.

Everything here works on one `Device` (its session, retries and limits are the fleet runner's);
what to read and how answers look is the family's (`Family.config_*`), what keys exist and how
values travel is the catalogue's (`avctl.spec.variables`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from avctl.config.desired import CHECKS, Desired
from avctl.config.model import SECRET_MARKER
from avctl.device import Device
from avctl.errors import AuthenticationError, AvctlError, DeviceError
from avctl.families import ConfigRead, get_family
from avctl.redact import SENSITIVE_KEY_RE
from avctl.spec import Spec
from avctl.spec.variables import known_keys, lookup


class ConfigNotApplied(AvctlError):
    """Some desired keys did not take: the device refused them, or its read-back differs."""

    kind = "config_not_applied"


@dataclass
class CurrentConfig:
    """A device's configuration as read: secrets already replaced by `SECRET_MARKER`."""

    values: dict[str, Any]
    secrets: list[str]
    notes: list[str] = field(default_factory=list)


async def read_config(dev: Device, keys: Sequence[str] | None = None) -> CurrentConfig:
    """Read `keys` (None: the full configuration, for a snapshot). A read the family marks optional
    (Solstice's v1 record) that fails is a note, not a failure; a rejected login always raises."""
    spec = dev.spec
    family = get_family(spec.family)
    full = keys is None
    into = ConfigRead()
    notes: list[str] = []
    checks = [k for k in keys or () if k in CHECKS]
    for key in checks:
        into.values[key] = _check(dev, key)
    device_keys = known_keys(spec) if keys is None else [k for k in keys if k not in CHECKS]
    calls = family.config_reads(spec, device_keys, full=full) if full or device_keys else []
    for call in calls:
        try:
            result = await dev.call(call.action, **call.params)
        except AuthenticationError:
            raise
        except DeviceError as exc:
            if not call.optional:
                raise
            notes.append(f"{call.action} not read: {exc.message}")
            continue
        family.config_parse(call, result.data, into)
    if keys is not None:
        missing = [k for k in keys if k not in into.values]
        if missing:
            notes.append(f"not reported by the device: {', '.join(missing)}")
    return mask(spec, into, notes)


def _check(dev: Device, key: str) -> str:
    """An avctl check's finding on `dev` (never the secret it looks at)."""
    if key == "avctl.admin_password":
        # the inventory's password is the one the device accepted (or will): if it is a factory
        # default, so is the device's admin password
        password = dev.credentials.password or ""
        return "default" if password in get_family(dev.spec.family).default_passwords else "not_default"
    raise AssertionError(key)  # desired_fleet accepts only CHECKS


def is_secret(spec: Spec, key: str) -> bool:
    var = lookup(spec, key)
    return bool(var is not None and var.secret) or bool(SENSITIVE_KEY_RE.search(key.rsplit(".", 1)[-1]))


def mask(spec: Spec, read: ConfigRead, notes: list[str]) -> CurrentConfig:
    """Secrets out: by their shape (the codec), by the catalogue, or by their name."""
    # an avctl check reports a finding ("default"), never the secret it looked at
    secrets = sorted(k for k in read.values if k not in CHECKS and (k in read.secrets or is_secret(spec, k)))
    values = {k: (SECRET_MARKER if k in secrets else v) for k, v in sorted(read.values.items())}
    return CurrentConfig(values, secrets, notes)


@dataclass(frozen=True)
class Change:
    """One key whose current value differs from the desired one."""

    key: str
    current: Any
    desired: Any
    where: str
    applies: str = "live"
    settable: bool = True
    #: False: the device did not report the key at all
    reported: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "current": self.current, "desired": self.desired, "where": self.where,
                "applies": self.applies, "settable": self.settable, "reported": self.reported}


def same(current: Any, desired: Any) -> bool:
    """Equal as the device means it: strings compare as strings; JSON values by their canonical form."""
    if isinstance(current, str) or isinstance(desired, str):
        return str(current) == str(desired) if not isinstance(current, dict | list) else False
    return json.dumps(current, sort_keys=True) == json.dumps(desired, sort_keys=True)


def compare(desired: Mapping[str, Desired], current: Mapping[str, Any]) -> list[Change]:
    """The desired keys whose current value differs (a key the device did not report differs)."""
    changes = []
    for key, want in sorted(desired.items()):
        reported = key in current
        have = current.get(key)
        if reported and same(have, want.value):
            continue
        changes.append(Change(key, have, want.value, want.where, want.applies, want.settable, reported))
    return changes


@dataclass
class Applied:
    """What a write did: the keys sent, and the facts the answers gave (restart needed...)."""

    keys: list[str]
    restart_required: bool = False
    reboot_required: bool = False


async def write_changes(dev: Device, changes: Sequence[Change], desired: Mapping[str, Desired]) -> Applied:
    """Send `changes` grouped the way the family's API takes them, then read the keys back.

    Raises `ConfigNotApplied` naming every key the device refused (with its word) or reports
    differently afterwards; the keys that took are said too. Requests are not repeated here: the
    device's retry policy decides, and never re-sends a write that may have reached the device.
    """
    spec = dev.spec
    family = get_family(spec.family)
    values = {c.key: c.desired for c in changes}
    via = {c.key: desired[c.key].write_via or "" for c in changes}
    refused: dict[str, str] = {}
    applied = Applied(list(values))
    for call in family.config_writes(spec, values, via):
        try:
            result = await dev.call(call.action, **call.params)
        except AuthenticationError:
            raise
        except DeviceError as exc:
            refused.update(dict.fromkeys(call.keys, exc.message))
            continue
        refused.update(family.config_refused(call, result.data))
        applied.restart_required |= bool(result.info.get("restart_required"))
        applied.reboot_required |= bool(result.info.get("reboot_required"))
    check = [k for k in values if k not in refused]
    after = (await read_config(dev, check)).values if check else {}
    differ = {k: after.get(k) for k in check if not same(after.get(k), values[k])}
    if refused or differ:
        raise ConfigNotApplied(_not_applied(refused, differ, values))
    return applied


def _not_applied(refused: Mapping[str, str], differ: Mapping[str, Any], values: Mapping[str, Any]) -> str:
    parts = [f"{k} refused: {why}" for k, why in sorted(refused.items())]
    parts += [f"{k} did not take (sent {values[k]!r}, the device reports {v!r})" for k, v in sorted(differ.items())]
    took = sorted(set(values) - set(refused) - set(differ))
    text = "not applied: " + "; ".join(parts)
    return text + (f" (applied: {', '.join(took)})" if took else "")
