"""`avctl capture`: read everything a device's spec can read without changing it, into a profile.

Which reads: every query of the spec that needs no parameter (or only parameters with defaults),
plus the family's configuration reads of the spec's catalogue (Poly UC and VideoOS read parameters
by name). A query that needs a value avctl cannot know (a conference id, a destination to ping) and
every download are listed in the profile's `skipped`, with the reason. Each read is sent once: a
rejected login stops the capture (never retried), a device that is busy or failing for one read
leaves that read out (it says so) rather than recording a refusal as the device's answer.

Everything identifying is replaced by placeholders before the profile exists (`avctl.profile.scrub`):
the unredacted answers are never written anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from avctl.capabilities import feedbacks_of, read_feedback
from avctl.device import Device
from avctl.errors import AuthenticationError, ConnectError, DeviceError, TLSError, TransportError
from avctl.families import get_family
from avctl.profile import Exchange, Profile, Scrubber, Skipped
from avctl.profile.model import MAX_PROFILE_BYTES
from avctl.request import Request, Response
from avctl.spec.model import Spec


@dataclass(frozen=True)
class PlannedRead:
    action: str
    params: dict[str, Any] = field(default_factory=dict)


def plan_reads(spec: Spec) -> tuple[list[PlannedRead], list[Skipped]]:
    """The reads a capture sends, and the queries it leaves out (with why), in spec order."""
    reads: list[PlannedRead] = []
    skipped: list[Skipped] = []
    for action in spec.actions.values():
        if action.kind != "query":
            continue
        if action.response == "file":
            skipped.append(Skipped(action.id, "a download: not kept in a profile"))
            continue
        needs = [p.name for p in action.settable_params if p.required and not p.has_default]
        if needs:
            skipped.append(Skipped(action.id, f"needs a value for {', '.join(needs)}"))
            continue
        reads.append(PlannedRead(action.id))
    # a family whose configuration read takes no names (Solstice) plans the same read twice
    reads.extend(r for r in _config_reads(spec) if r not in reads)
    return reads, skipped


def _config_reads(spec: Spec) -> list[PlannedRead]:
    """The catalogue's keys read by name (families that read configuration that way)."""
    keys = [v.id for v in spec.variables if not v.is_pattern and v.read_via == "config_get"]
    if not keys or not spec.family:
        return []
    calls = get_family(spec.family).config_reads(spec, keys)
    return [PlannedRead(c.action, dict(c.params)) for c in calls]


async def capture(device: Device, progress: Callable[[str, str], None] | None = None,
                  scrubber: Scrubber | None = None, *, max_bytes: int = MAX_PROFILE_BYTES) -> Profile:
    """Read `device` as `plan_reads` says and return the redacted profile. `progress` is told
    (action, what happened) after each read. A `scrubber` given goes on numbering its placeholders
    (a profile assembled from a capture and public recordings keeps one placeholder per value).
    Answers are kept up to `max_bytes` in all (each one is capped by the device's own response
    cap): a device cannot make a capture grow without end."""
    spec = device.spec
    family = get_family(spec.family)
    reads, skipped = plan_reads(spec)
    scrubber = scrubber or Scrubber.for_spec(spec)
    exchanges: list[Exchange] = []
    facts: dict[str, Any] = {}
    kept = 0
    for planned in reads:
        if kept > max_bytes:
            skipped.append(Skipped(planned.action, f"not read: the answers so far passed {max_bytes} bytes"))
            continue
        try:
            request, response = await device.fetch(planned.action, **planned.params)
        except (AuthenticationError, ConnectError, TLSError):
            raise  # the device refused us or cannot be reached: nothing more to read
        except (TransportError, DeviceError) as exc:
            skipped.append(Skipped(planned.action, f"not read: {exc.message}"))
            _tell(progress, planned.action, "not read")
            continue
        action = spec.action(planned.action)
        try:
            data = family.unwrap(action, response)
        except DeviceError as exc:
            if exc.transient:
                skipped.append(Skipped(planned.action, f"not read: the device was busy or failing ({exc.message})"))
                _tell(progress, planned.action, "busy")
                continue
            data = None  # a refusal (not found, not on this model) is the device's real answer
        _remember_facts(spec, planned.action, data, facts)
        kept += len(response.body)
        answer = _decode(response)
        if answer is None:
            skipped.append(Skipped(planned.action, "the answer is not text (not kept in a profile)"))
            continue
        exchanges.append(_exchange(planned, request, response, answer, scrubber))
        _tell(progress, planned.action, f"HTTP {response.status}")
    exchanges = [finish_exchange(e, scrubber) for e in exchanges]
    model, firmware = str(facts.get("model") or ""), str(facts.get("firmware") or "")
    return Profile(
        family=spec.family or spec.id,
        model=model,
        firmware=firmware,
        exchanges=exchanges,
        settings={k: v for k, v in (("model", model), ("firmware", firmware)) if v},
        redactions=scrubber.report(),
        skipped=skipped,
        source="captured by avctl capture",
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def _tell(progress: Callable[[str, str], None] | None, action: str, what: str) -> None:
    if progress is not None:
        progress(action, what)


def _remember_facts(spec: Spec, action_id: str, data: Any, facts: dict[str, Any]) -> None:
    """The model and firmware, from the spec's own readings (so the emulator can be that model)."""
    for name in ("model", "firmware"):
        fb = feedbacks_of(spec).get(name)
        if fb is None or fb.action != action_id or name in facts or data is None:
            continue
        value, problem = read_feedback(spec.action(action_id), data, fb)
        if problem is None and value not in (None, ""):
            facts[name] = value


def _decode(response: Response) -> tuple[Any, bool] | None:
    """(answer, is_json), or None for a binary answer."""
    try:
        text = response.body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text.strip():
        try:
            return json.loads(text), True
        except ValueError:
            return text, False
    return None, True


def _exchange(planned: PlannedRead, request: Request, response: Response, answer: tuple[Any, bool],
              scrubber: Scrubber) -> Exchange:
    where = f"{planned.action} "
    body: Any = None
    if request.body:
        try:
            body = json.loads(request.body)
        except ValueError:
            body = request.body.decode("utf-8", "replace")
    value, is_json = answer
    return Exchange(
        action=planned.action,
        method=request.method,
        path=request.path,
        status=response.status,
        answer=scrubber.scrub(value, where),
        is_json=is_json,
        content_type=response.header("Content-Type") or ("application/json" if is_json else "text/plain"),
        params=scrubber.scrub(planned.params, f"{where} (parameters)"),
        query=scrubber.scrub_query(request.query, where),
        body=scrubber.scrub(body, f"{where} (request)"),
        source="captured",
    )


def finish_exchange(exchange: Exchange, scrubber: Scrubber) -> Exchange:
    """`exchange` after the scrubber's second pass (values found elsewhere replaced inside text too)."""
    query = tuple((k, v) for k, v in scrubber.finish([[k, v] for k, v in exchange.query]))
    return replace(exchange, answer=scrubber.finish(exchange.answer, f"{exchange.action} "),
                   path=scrubber.finish(exchange.path), query=query,
                   body=scrubber.finish(exchange.body, f"{exchange.action} (request)"))
