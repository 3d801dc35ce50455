"""A device a state-changing request may have reached, checked instead of sent again.

When a site worker dies after a device's ``sent`` mark and before its outcome, nobody knows
whether the request reached the device. Sending it again could reboot a room twice or undo a
change made since; so it is never sent again. Where the spec's readings can tell whether it took
effect, the device is read (a status read, a query) and the outcome says what was found:

- ``reboot``: the device's uptime is shorter than the job's age;
- ``volume``: the volume reading equals the requested level;
- ``mute`` / ``unmute``: the microphones' mute reading;
- a configuration apply: the desired keys read back (nothing left to change).

Anything else ends ``failed`` with reason ``in_doubt``: the job's report and ``avctl jobs show``
say so, and ``avctl jobs rerun --failed`` sends it again when a person decides to.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

from avctl.config.tasks import ApplyTask, PlanTask
from avctl.fleet.credentials import CredentialResolver
from avctl.fleet.inventory import DeviceEntry
from avctl.fleet.results import Outcome
from avctl.fleet.runner import FleetRunner, RunOptions, SpecProvider
from avctl.fleet.verbs import StatusTask, Task
from avctl.transport.tls import TLSPolicy

#: reason of a device whose request may have been sent and cannot be confirmed
IN_DOUBT = "in_doubt"

#: verb -> (reading, check(value, params, job age in seconds) -> taken effect?, what it expects)
Check = Callable[[Any, dict[str, str], float], bool]
VERIFIERS: dict[str, tuple[str, Check, Callable[[dict[str, str]], str]]] = {
    "reboot": ("uptime", lambda v, p, age: isinstance(v, (int, float)) and v < age,
               lambda p: "an uptime shorter than the job's age"),
    "volume": ("volume", lambda v, p, age: _number(p.get("volume")) == v,
               lambda p: f"volume {p.get('volume')}"),
    "mute": ("mic_muted", lambda v, p, age: v is True, lambda p: "microphones muted"),
    "unmute": ("mic_muted", lambda v, p, age: v is False, lambda p: "microphones not muted"),
}


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _plain(options: RunOptions) -> RunOptions:
    """Reads only: no guard, window, ring or wait."""
    return dataclasses.replace(options, wait=False, if_idle=False, wait_idle=None, in_window=False, rings=(),
                               gate=None, soak=0.0)


async def _verify_config(task: ApplyTask, devices: Sequence[DeviceEntry], lost: str, *, specs: SpecProvider | None,
                         tls: TLSPolicy | None, resolver: CredentialResolver, options: RunOptions) -> list[Outcome]:
    """A configuration apply: the desired keys read back; none left to change is verified."""
    runner = FleetRunner(specs=specs, tls=tls, resolver=resolver, options=_plain(options))
    read = {o.device: o for o in await runner.run(PlanTask(task.desired), devices)}
    out = []
    for d in devices:
        plan = read.get(d.name)
        if plan is None or plan.status != "ok" or not isinstance(plan.data, dict):
            why = plan.message if plan is not None else "no answer"
            out.append(_doubt(d, f"{task.name}: {lost}; reading the configuration to check it failed: {why}"))
            continue
        left = [c["key"] for c in plan.data.get("changes", []) if c.get("settable")]
        if left:
            out.append(_doubt(d, f"{task.name}: {lost}; still different: {', '.join(left)}: run it again if needed"))
        else:
            out.append(Outcome(d.name, "ok", family=d.family, reason="verified", attempts=plan.attempts,
                               requests=plan.requests, started=plan.started, data={"verified": {"desired": "met"}},
                               message=f"{task.name}: {lost}; verified instead: every desired key is set"))
    return out


def _doubt(entry: DeviceEntry, message: str) -> Outcome:
    return Outcome(entry.name, "failed", family=entry.family, reason=IN_DOUBT, attempts=0, requests=0,
                   message=message)


async def verify_in_doubt(task: Task, devices: Sequence[DeviceEntry], job_started: float, *,
                          specs: SpecProvider | None, tls: TLSPolicy | None, resolver: CredentialResolver,
                          options: RunOptions) -> list[Outcome]:
    """One outcome per device: verified ``ok``, or ``failed`` / ``in_doubt`` saying why not."""
    lost = "a worker died after sending it, so it may have been applied; it is not sent again"
    if isinstance(task, ApplyTask):
        return await _verify_config(task, devices, lost, specs=specs, tls=tls, resolver=resolver, options=options)
    verifier = VERIFIERS.get(task.name) if task.mode == "verb" else None
    if verifier is None:
        return [_doubt(d, f"{task.name}: {lost}, and no reading can confirm it; "
                          "run it again if needed (avctl jobs rerun --failed)") for d in devices]
    reading, check, expected = verifier
    runner = FleetRunner(specs=specs, tls=tls, resolver=resolver, options=_plain(options))
    read = {o.device: o for o in await runner.run(StatusTask(), devices)}
    age = time.time() - job_started
    out = []
    for d in devices:
        status = read.get(d.name)
        params = dict(task.params)
        if status is None or status.status != "ok" or not isinstance(status.data, dict):
            why = status.message if status is not None else "no answer"
            out.append(_doubt(d, f"{task.name}: {lost}; reading {reading} to check it failed: {why}"))
            continue
        value = status.data.get(reading)
        if check(value, params, age):
            out.append(Outcome(d.name, "ok", family=d.family, reason="verified", attempts=status.attempts,
                               requests=status.requests, started=status.started,
                               message=f"{task.name}: {lost}; verified instead: {reading} is {value!r}",
                               data={"verified": {reading: value}}))
        else:
            out.append(_doubt(d, f"{task.name}: {lost}; {reading} is {value!r}, not {expected(params)}: "
                                 "run it again if needed (avctl jobs rerun --failed)"))
    return out
