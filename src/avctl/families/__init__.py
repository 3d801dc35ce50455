"""Family plug-ins: what a spec cannot say, one small module per family, found through a registry.

A family supplies (a) its auth flows (registered by name in `avctl.auth`), (b) how a request body is
wrapped and a response unwrapped (Poly UC's `{"data": ...}` envelope and `Status` codes), (c) how
device errors read. The spec names its family in the front matter (`family: videoos`); the family
is found in the registry of family plugins (`avctl.families.registry`, the `avctl.families`
entry-point group), which also knows the family's built-in spec and emulator.
"""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar

from avctl.errors import DeviceError
from avctl.families.registry import FamilyPlugin, family_names, get_plugin, register_plugin
from avctl.request import Request, Response
from avctl.retry import RetryPolicy
from avctl.spec.model import Action, Spec


class Family:
    """Default behaviour: JSON in, JSON out, any non-success status is a `DeviceError`."""

    name: ClassVar[str] = "generic"
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
    "Family",
    "FamilyPlugin",
    "builtin_spec",
    "family_names",
    "get_family",
    "register_family",
]
