"""What a fleet job can run, for the job wizard: the verbs and each family's spec actions among the
user's devices, and the parameters a choice asks for (fields from the specs' JSON Schemas).

A verb (a spec Macro such as ``reboot``, or ``status``) spans families; a spec action runs on
every family whose spec has an action of that id. One name space, as ``/jobs/new?action=NAME``:
a verb's name wins over an action of the same id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from avctl.capabilities import describe_verb, status_plan
from avctl.errors import AvctlError, UsageError
from avctl.fleet.inventory import DeviceEntry
from avctl.fleet.jobs import spec_provider
from avctl.server.context import ServerContext
from avctl.server.web.forms import FormField, field_of, form_fields
from avctl.spec import Spec

STATUS = "status"


@dataclass(frozen=True)
class Choice:
    name: str
    mode: str  # "action" | "verb"
    label: str
    disruptive: bool
    #: family -> that family's description of it
    families: dict[str, str]
    fields: tuple[FormField, ...]

    @property
    def cli_words(self) -> tuple[str, ...]:
        """``fleet run ACTION`` or ``fleet VERB``."""
        return ("fleet", "run", self.name) if self.mode == "action" else ("fleet", self.name)


def _specs(ctx: ServerContext, devices: Iterable[DeviceEntry]) -> dict[str, Spec]:
    get: Callable[[str], Spec] = spec_provider(ctx.spec_overrides)
    found = {}
    for family in sorted({d.family for d in devices}):
        try:
            found[family] = get(family)
        except AvctlError:
            continue  # a family without a spec offers nothing (its devices fail in a job, as in the CLI)
    return found


def _merged(fields: Iterable[FormField]) -> tuple[FormField, ...]:
    """One field per parameter name (the first family's), in order."""
    seen: dict[str, FormField] = {}
    for f in fields:
        seen.setdefault(f.name, f)
    return tuple(seen.values())


def _verb_fields(spec: Spec, verb: str) -> list[FormField]:
    """A verb's ``$placeholders``, each as the field of the step parameter it fills."""
    fields = []
    for step in spec.macros[verb].steps:
        action = spec.action(step.action)
        for key, value in step.params.items():
            param = action.param(key)
            if isinstance(value, str) and value.startswith("$") and param is not None:
                fields.append(replace(field_of(param), name=value[1:]))
    return fields


def verbs(specs: dict[str, Spec]) -> list[Choice]:
    names = sorted({v for s in specs.values() for v in s.macros})
    found = [Choice(STATUS, "verb", "status: reachable, model, firmware, readings", False,
                    {f: "status from the spec's feedbacks" for f, s in specs.items() if status_plan(s)}, ())]
    for name in names:
        have = {f: s for f, s in specs.items() if name in s.macros}
        described = {f: describe_verb(s, name) for f, s in have.items()}
        found.append(Choice(name, "verb", name, any(v.disruptive for v in described.values()),
                            {f: v.label or ", ".join(v.steps) for f, v in described.items()},
                            _merged(f for s in have.values() for f in _verb_fields(s, name))))
    return found


def actions(specs: dict[str, Spec]) -> dict[str, list[Choice]]:
    """family -> its spec's actions, as choices (an action of several families carries all of them)."""
    by_id: dict[str, Choice] = {}
    for family, spec in specs.items():
        for action in spec.actions.values():
            known = by_id.get(action.id)
            if known is None:
                by_id[action.id] = Choice(action.id, "action", action.label or action.id, action.disruptive,
                                          {family: action.description}, tuple(form_fields(action)))
            else:
                by_id[action.id] = replace(known, disruptive=known.disruptive or action.disruptive,
                                           families={**known.families, family: action.description},
                                           fields=_merged([*known.fields, *form_fields(action)]))
    return {family: sorted((c for c in by_id.values() if family in c.families), key=lambda c: c.name)
            for family in specs}


@dataclass(frozen=True)
class Catalogue:
    verbs: list[Choice]
    #: family -> actions
    actions: dict[str, list[Choice]]

    def find(self, name: str, mode: str | None = None) -> Choice:
        """The verb or action `name` (a verb first, unless `mode` says "action")."""
        candidates = [*self.verbs, *(c for choices in self.actions.values() for c in choices)]
        for choice in candidates:
            if choice.name == name and mode in (None, choice.mode):
                return choice
        raise UsageError(f"no verb or action named {name!r} among your devices' families",
                         hint="choose one from the list")


def catalogue(ctx: ServerContext, devices: Iterable[DeviceEntry]) -> Catalogue:
    """What the families of `devices` (the user's) can run."""
    specs = _specs(ctx, devices)
    return Catalogue(verbs(specs), actions(specs))
