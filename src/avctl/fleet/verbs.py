"""What the fleet runner does on one device: a spec action, a verb from the spec's Macros, or status.

The tasks are thin adapters over the device's own capabilities (`avctl.capabilities`):
``StatusTask`` runs ``dev.status()``, ``MacroTask`` runs ``dev.run_verb()``, ``ActionTask`` runs
``dev.call()``. What they add is fleet planning: whether a family's spec has the verb (else the
device is *skipped*), validation per family before anything is sent, secret parameters to keep out
of the job record, and command-line text converted per family (``coerce_text``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from avctl.capabilities import check_status, describe_verb, status_plan, verb_steps
from avctl.device import Device, Result
from avctl.errors import UsageError
from avctl.spec import Spec, coerce_text, validate
from avctl.spec.model import Action


class Task(Protocol):
    """One unit of fleet work, planned per family spec and run per device."""

    @property
    def name(self) -> str: ...
    @property
    def mode(self) -> str: ...  # "action" | "verb"
    @property
    def params(self) -> Mapping[str, str]: ...

    def skip_reason(self, spec: Spec) -> str | None: ...
    def secret_names(self, spec: Spec) -> set[str]: ...
    def validate(self, spec: Spec) -> None: ...
    def disruptive(self, spec: Spec) -> bool: ...
    def changes_state(self, spec: Spec) -> bool: ...
    async def run(self, dev: Device, *, download_to: Path | None = None, overwrite: bool = False) -> Any:
        """The device's data for the outcome; `download_to` is the device's folder for downloads."""


def _typed(action: Action, raw: Mapping[str, Any]) -> dict[str, Any]:
    """CLI text -> typed values for one action; unknown names pass through for validate() to report."""
    return {k: coerce_text(action, k, v) if isinstance(v, str) and action.param(k) is not None else v
            for k, v in raw.items()}


def _data(result: Result) -> Any:
    """What an outcome keeps of a call: the answer's data, or where a download went."""
    return {"file": str(result.file)} if result.file is not None else result.data


def _folder_for(spec: Spec, action_ids: Iterable[str], folder: Path | None) -> Path | None:
    """The device's download folder, created only when one of the actions downloads a file."""
    if folder is not None and any(spec.action(a).response == "file" for a in action_ids):
        folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class ActionTask:
    """Run one spec action on every device whose family has it."""

    action_id: str
    params: Mapping[str, str]
    mode: str = "action"

    @property
    def name(self) -> str:
        return self.action_id

    def skip_reason(self, spec: Spec) -> str | None:
        if not spec.has_action(self.action_id):
            return f"family {spec.family} has no action {self.action_id}"
        return None

    def _values(self, spec: Spec) -> dict[str, Any]:
        return _typed(spec.action(self.action_id), self.params)

    def secret_names(self, spec: Spec) -> set[str]:
        return {p.name for p in spec.action(self.action_id).params if p.secret}

    def validate(self, spec: Spec) -> None:
        validate(spec.action(self.action_id), self._values(spec))

    def disruptive(self, spec: Spec) -> bool:
        return spec.action(self.action_id).disruptive

    def changes_state(self, spec: Spec) -> bool:
        return spec.action(self.action_id).kind == "action"

    async def run(self, dev: Device, *, download_to: Path | None = None, overwrite: bool = False) -> Any:
        folder = _folder_for(dev.spec, [self.action_id], download_to)
        return _data(await dev.call(self.action_id, download_to=folder, overwrite=overwrite,
                                    **self._values(dev.spec)))


@dataclass
class MacroTask:
    """A verb that spans families: each device runs its spec's Macro of that id (`Device.run_verb`)."""

    verb: str
    params: Mapping[str, str]
    mode: str = "verb"

    @property
    def name(self) -> str:
        return self.verb

    def skip_reason(self, spec: Spec) -> str | None:
        if self.verb not in spec.macros:
            return f"family {spec.family} has no '{self.verb}' verb"
        return None

    def secret_names(self, spec: Spec) -> set[str]:
        return set(describe_verb(spec, self.verb).secrets)

    def validate(self, spec: Spec) -> None:
        verb_steps(spec, self.verb, self.params)

    def disruptive(self, spec: Spec) -> bool:
        return describe_verb(spec, self.verb).disruptive

    def changes_state(self, spec: Spec) -> bool:
        return any(spec.action(step).kind == "action" for step in describe_verb(spec, self.verb).steps)

    async def run(self, dev: Device, *, download_to: Path | None = None, overwrite: bool = False) -> Any:
        folder = _folder_for(dev.spec, describe_verb(dev.spec, self.verb).steps, download_to)
        results = [_data(r) for r in await dev.run_verb(self.verb, download_to=folder, overwrite=overwrite,
                                                        **self.params)]
        return results[0] if len(results) == 1 else results


@dataclass
class StatusTask:
    """Normalised state from each spec's Feedbacks (`Device.status`), as a JSON object."""

    name: str = "status"
    mode: str = "verb"
    params: Mapping[str, str] = field(default_factory=dict)

    def skip_reason(self, spec: Spec) -> str | None:
        if not status_plan(spec):
            return f"family {spec.family} spec has no Feedbacks"
        return None

    def secret_names(self, spec: Spec) -> set[str]:
        return set()

    def validate(self, spec: Spec) -> None:
        check_status(spec)

    def disruptive(self, spec: Spec) -> bool:
        return False

    def changes_state(self, spec: Spec) -> bool:
        return False

    async def run(self, dev: Device, *, download_to: Path | None = None, overwrite: bool = False) -> Any:
        return (await dev.status()).as_dict()


def make_task(name: str, params: Mapping[str, str], *, mode: str) -> Task:
    """The task for a stored job (resume) or a CLI command."""
    if mode == "config":
        raise UsageError(f"{name} jobs are not resumed: run 'avctl {name.replace('-', ' ')}' again",
                         hint="it reads each device again and sends only what still differs")
    if mode == "action":
        return ActionTask(name, dict(params))
    if name == "status":
        return StatusTask()
    return MacroTask(name, dict(params))


def probe_action(spec: Spec) -> str | None:
    """A harmless query used to see whether a device answers (reboot --wait): a status action first."""
    plan = status_plan(spec)
    if plan:
        return next(iter(plan))
    for action in spec.actions.values():
        if action.kind == "query" and action.method == "GET" and not any(
                p.required and p.settable and not p.has_default for p in action.params):
            return action.id
    return None
