"""Family plug-ins: what a spec cannot say, one small module per family, found through a registry.

A family supplies (a) its auth flows (registered by name in `avctl.auth`), (b) how a request body is
wrapped and a response unwrapped (Poly UC's `{"data": ...}` envelope and `Status` codes), (c) how
device errors read. The spec names its family in the front matter (`family: videoos`); the family
is found in the registry of family plugins (`avctl.families.registry`, the `avctl.families`
entry-point group), which also knows the family's built-in spec and emulator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar

from avctl.errors import DeviceError, UsageError
from avctl.families.registry import FamilyPlugin, family_names, get_plugin, register_plugin
from avctl.request import Request, Response
from avctl.retry import RetryPolicy
from avctl.spec.model import Action, Spec


@dataclass(frozen=True)
class ConfigCall:
    """One request of a configuration read or write: a spec action, its parameters, and the
    configuration keys it reads or writes (a write's keys are what the read-back verifies)."""

    action: str
    params: Mapping[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] = ()
    #: a read whose failure is a note in the snapshot, not a failed device (an older API's extras)
    optional: bool = False


@dataclass
class ConfigRead:
    """What a family made of one read: flat ``key -> value`` and the keys whose value is a secret
    by its shape (Solstice's salted hashes), whatever the catalogue says."""

    values: dict[str, Any] = field(default_factory=dict)
    secrets: set[str] = field(default_factory=set)


def by_action(changes: Mapping[str, Any], via: Mapping[str, str]) -> dict[str, list[str]]:
    """The changed keys per writing action, actions in name order, keys in the given order."""
    out: dict[str, list[str]] = {}
    for key in changes:
        out.setdefault(via[key], []).append(key)
    return dict(sorted(out.items()))


class Family:
    """Default behaviour: JSON in, JSON out, any non-success status is a `DeviceError`."""

    name: ClassVar[str] = "generic"
    #: factory-default admin passwords the vendor documents ("": none set); `avctl.admin_password:
    #: not_default` in a desired configuration checks the inventory's password against these
    default_passwords: ClassVar[tuple[str, ...]] = ("",)
    #: the retry policy of a `Device` created without one (see `avctl.retry`): no retries
    retry: ClassVar[RetryPolicy] = RetryPolicy()

    def wrap(self, action: Action, request: Request) -> Request:
        """Rewrap the body built from the spec (envelopes)."""
        return request

    def unwrap(self, action: Action, response: Response) -> Any:
        """Response -> result data; raise `DeviceError` (or a subclass) for device-reported failures."""
        if response.status not in action.success:
            raise self.error(action, response)
        if response.file is not None:
            return None
        if action.response == "text":
            return response.body.decode("utf-8", "replace")
        if action.response == "none":
            return response.try_json() if response.body.strip() else None
        try:
            return response.json()
        except ValueError:
            return response.body.decode("utf-8", "replace")

    def error(self, action: Action, response: Response) -> DeviceError:
        body = response.try_json()
        detail = ""
        if isinstance(body, dict):
            detail = str(body.get("reason") or body.get("message") or body.get("error") or "")
        elif isinstance(body, str):
            detail = body[:200]
        text = f"{action.id}: device answered HTTP {response.status}" + (f": {detail}" if detail else "")
        return DeviceError(text, status=response.status, body=body)

    def result_info(self, action: Action, data: Any) -> dict[str, Any]:
        """Facts worth surfacing beside the data (e.g. Solstice's reboot_required)."""
        return {}

    # -- configuration (issue 12): how the family's API reads and writes configuration keys.
    # Pure: requests out, answers in; `avctl.config` sends them through the device. Which keys
    # exist, their types and how a value travels come from the spec's Variables (the catalogue).

    def config_reads(self, spec: Spec, keys: Sequence[str], *, full: bool = False) -> list[ConfigCall]:
        """The requests that read `keys` (``full``: everything the device's configuration holds,
        for a backup)."""
        raise UsageError(f"family {self.name} has no configuration support in avctl")

    def config_parse(self, call: ConfigCall, data: Any, into: ConfigRead) -> None:
        """Add what one read answered to `into`."""
        raise UsageError(f"family {self.name} has no configuration support in avctl")

    def config_writes(self, spec: Spec, changes: Mapping[str, Any], via: Mapping[str, str]) -> list[ConfigCall]:
        """The requests that write `changes` (key -> value in wire form), grouped the way the API
        takes them; ``via``: key -> the action that writes it (the catalogue's ``write_via``)."""
        raise UsageError(f"family {self.name} has no configuration support in avctl")

    def config_refused(self, call: ConfigCall, data: Any) -> dict[str, str]:
        """Keys a write's answer says were not taken (key -> the device's word), for APIs that
        answer per key (VideoOS); a whole request refused is a `DeviceError` instead."""
        return {}


#: one instance per plugin (a plugin registered again from code gets its own)
_FAMILIES: dict[FamilyPlugin, Family] = {}


def register_family(cls: type[Family]) -> type[Family]:
    """Register a family from code, without a package (scripts, tests); a known name is an error.

    A family in a package registers through the `avctl.families` entry-point group instead.
    """
    register_plugin(FamilyPlugin(cls.name, cls), source=f"register_family({cls.__module__}.{cls.__qualname__})")
    return cls


def get_family(name: str | None) -> Family:
    """The client behaviour of family `name` (the generic one for a spec that names none)."""
    if not name:
        return _GENERIC
    plugin = get_plugin(name)
    if plugin not in _FAMILIES:
        _FAMILIES[plugin] = plugin.family()
    return _FAMILIES[plugin]


@cache
def builtin_spec(family: str) -> Spec:
    """The spec a family ships (loaded once per process)."""
    return get_plugin(family).load_spec()


_GENERIC = Family()

__all__ = [
    "ConfigCall",
    "ConfigRead",
    "Family",
    "FamilyPlugin",
    "builtin_spec",
    "family_names",
    "get_family",
    "register_family",
]
