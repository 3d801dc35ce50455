"""Conformance checks: what a real device of a family is known to do, asked of any target.

A check looks at a target's captured reads (its `Profile`) or sends a harmless probe (a request with
no or a made-up session: never a login, never a change). It answers `Outcome.ok` True or False, or
None when it does not apply (the model lacks that read). Each check names the public evidence its
expectation comes from, so a failure on a real device is a finding about the evidence, not a guess.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from avctl.capabilities import feedbacks_of, read_feedback
from avctl.device import Device
from avctl.errors import DeviceError
from avctl.families import get_family
from avctl.profile import Exchange, Profile
from avctl.request import Request, Response


@dataclass(frozen=True)
class Outcome:
    ok: bool | None
    detail: str = ""

    @property
    def word(self) -> str:
        return {True: "ok", False: "fails", None: "n/a"}[self.ok]


PASS = Outcome(True)


def fail(detail: str) -> Outcome:
    return Outcome(False, detail)


def not_applicable(detail: str) -> Outcome:
    return Outcome(None, detail)


@dataclass
class Target:
    """One side of a comparison: the device or the emulator, its client and its captured reads."""

    label: str
    client: Device
    profile: Profile

    def exchanges(self, action: str) -> Iterator[Exchange]:
        return (e for e in self.profile.exchanges if e.action == action)

    def answer(self, action: str) -> Any:
        """The (JSON) answer of the first read of `action`, None if it was not read or failed."""
        for exchange in self.exchanges(action):
            if exchange.status < 300 and exchange.is_json:
                return exchange.answer
        return None

    async def probe(self, method: str, path: str, headers: tuple[tuple[str, str], ...] = (),
                    body: bytes | None = None) -> Response:
        """A request sent as given (no session, no credentials): see `Device.probe`."""
        return await self.client.probe(Request(method, path, headers=headers, body=body))


CheckFn = Callable[[Target], Awaitable[Outcome]]


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    #: where the expectation comes from (a public recording, client code, a guide)
    evidence: str
    run: CheckFn


def check(checks: list[Check], id: str, title: str, evidence: str) -> Callable[[CheckFn], CheckFn]:
    """Decorator: add the function to `checks` (a family module's list)."""

    def add(fn: CheckFn) -> CheckFn:
        checks.append(Check(id, title, evidence, fn))
        return fn

    return add


async def _answers_in_form(target: Target) -> Outcome:
    spec = target.client.spec
    bad = [e.action for e in target.profile.exchanges
           if e.status < 300 and spec.action(e.action).response == "json" and not e.is_json and e.answer]
    return fail(f"not JSON: {', '.join(sorted(set(bad)))}") if bad else PASS


async def _no_server_errors(target: Target) -> Outcome:
    errors = sorted({f"{e.action} (HTTP {e.status})" for e in target.profile.exchanges if e.status >= 500})
    return fail(", ".join(errors)) if errors else PASS


async def _readings_fit(target: Target) -> Outcome:
    """The spec's Feedbacks (what `fleet status` and the server read) fit their declared types."""
    spec = target.client.spec
    family = get_family(spec.family)
    problems = []
    for fb in feedbacks_of(spec).values():
        exchange = next((e for e in target.exchanges(fb.action or "") if not e.params), None)
        if exchange is None or exchange.status >= 300:
            continue
        action = spec.action(exchange.action)
        body = (json.dumps(exchange.answer) if exchange.is_json else str(exchange.answer)).encode()
        try:
            data = family.unwrap(action, Response(exchange.status, (("Content-Type", exchange.content_type),), body))
        except DeviceError:
            continue  # the device refused this read: its readings are unavailable, not wrong
        _, problem = read_feedback(action, data, fb)
        if problem is not None:
            problems.append(f"{fb.id}: {problem}")
    return fail("; ".join(problems)) if problems else PASS


#: checks every family gets
COMMON: list[Check] = [
    Check("reads_answer", "every read answers without a server error", "HTTP semantics", _no_server_errors),
    Check("answers_are_json", "reads the spec declares JSON answer in JSON", "the family's spec",
          _answers_in_form),
    Check("readings_fit", "the spec's readings (model, firmware, uptime, in call...) fit their types",
          "the family's spec (Feedbacks)", _readings_fit),
]


def checks_for(family: str) -> list[Check]:
    """The common checks, then the family's own (module `avctl.conformance.<family>`, if any)."""
    name = f"avctl.conformance.{family}"
    if importlib.util.find_spec(name) is None:
        return list(COMMON)
    module = importlib.import_module(name)
    return [*COMMON, *getattr(module, "CHECKS", [])]
