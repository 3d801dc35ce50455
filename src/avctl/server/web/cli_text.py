""""Copy as CLI": the `avctl` command that does what a page is about to do."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from typing import Any


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, separators=(",", ":"))
    return str(value)


def cli_command(*words: str, params: Mapping[str, Any] | None = None, options: Iterable[tuple[str, Any]] = (),
                secret: Iterable[str] = ()) -> str:
    """``avctl WORDS... [--OPTION VALUE]... [key=value]...``, quoted for a POSIX shell; secret
    parameters are shown as ``key=***`` (the user types their own)."""
    hidden = set(secret)
    parts = ["avctl", *words]
    for name, value in options:
        if value is True:
            parts.append(name)
        elif value not in (None, False, ""):
            parts += [name, _value(value)]
    for key, value in (params or {}).items():
        parts.append(f"{key}=***" if key in hidden and value not in (None, "") else f"{key}={_value(value)}")
    return " ".join(p if p.endswith("=***") else shlex.quote(p) for p in parts)
