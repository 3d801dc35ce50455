"""Family plug-ins: what a spec cannot say, one small module per family, found through a registry.

A family supplies (a) its auth flows (registered by name in `avctl.auth`), (b) how a request body is
wrapped and a response unwrapped (Poly UC's `{"data": ...}` envelope and `Status` codes), (c) how
device errors read. The spec names its family in the front matter (`family: videoos`); the module
`avctl.families.<name>` is imported on first use and registers itself.
"""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path
from typing import Any, ClassVar

from avctl.errors import DeviceError, UsageError
from avctl.request import Request, Response
from avctl.retry import RetryPolicy
from avctl.spec.model import Action

SPEC_DIR = Path(__file__).resolve().parent.parent / "specs"
BUILTIN_FAMILIES = ("videoos", "polyuc", "solstice")


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


_FAMILIES: dict[str, Family] = {}


def register_family(cls: type[Family]) -> type[Family]:
    _FAMILIES[cls.name] = cls()
    return cls


def get_family(name: str | None) -> Family:
    if not name:
        return _GENERIC
    if name not in _FAMILIES:
        with contextlib.suppress(ModuleNotFoundError):
            importlib.import_module(f"avctl.families.{name}")
    try:
        return _FAMILIES[name]
    except KeyError:
        raise UsageError(
            f"unknown device family {name!r}", hint=f"known families: {', '.join(BUILTIN_FAMILIES)}"
        ) from None


def builtin_spec_path(family: str) -> Path:
    path = SPEC_DIR / f"{family}.md"
    if not path.is_file():
        raise UsageError(f"no spec for family {family!r}", hint=f"known families: {', '.join(available())}")
    return path


def available() -> list[str]:
    return [f for f in BUILTIN_FAMILIES if (SPEC_DIR / f"{f}.md").is_file()]


_GENERIC = Family()
