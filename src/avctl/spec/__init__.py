"""Device specs: the single source of truth for actions, validation, emulator routes and CLI help."""

from __future__ import annotations

from avctl.spec.loader import Issue, LoadResult, load_spec, read_spec
from avctl.spec.model import Action, Feedback, Macro, Param, Spec, Transport, Variable
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
    "Variable",
    "coerce_text",
    "load_spec",
    "read_spec",
    "validate",
]
