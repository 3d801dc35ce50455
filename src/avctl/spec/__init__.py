"""Device specs: the single source of truth for actions, validation, emulator routes and CLI help."""

from __future__ import annotations

from functools import cache

from avctl.spec.loader import Issue, LoadResult, load_spec, read_spec
from avctl.spec.model import Action, Feedback, Macro, Param, Spec, Transport
from avctl.spec.params import coerce_text, validate

__all__ = [
    "Action",
    "Feedback",
    "Issue",
    "LoadResult",
    "Macro",
    "Param",
    "Spec",
    "Transport",
    "builtin_spec",
    "coerce_text",
    "load_spec",
    "read_spec",
    "validate",
]


@cache
def builtin_spec(family: str) -> Spec:
    """The spec shipped with avctl for a family (loaded once per process)."""
    from avctl.families import builtin_spec_path

    return load_spec(builtin_spec_path(family))
