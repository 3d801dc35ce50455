"""One set of behaviour tests that every family's emulator and client pass (pyatv's idea: one
functional suite, one fake per protocol).

Each test is parametrised over `ADAPTERS` (tests/functional/families.py); what a test needs to know
about a family comes from its spec or its adapter, never from an `if family == ...`. Faults are
triggered by count (`expire_at_request`, `busy_next`), never by timers racing emulated latency, and
retry back-off sleeps are injected as no-ops, so the results do not depend on the machine's load.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest

from avctl.capabilities import read_feedback
from avctl.emulator.core import EmulatorThread
from avctl.errors import AvctlError, DeviceBusy, ValidationError
from avctl.spec import validate
from avctl.transport.tls import TLSPolicy

from .adapter import FamilyAdapter
from .families import ADAPTERS

CONCURRENT = 10
JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str, "boolean": bool, "integer": int, "number": (int, float)}


async def no_sleep(seconds: float) -> None:
    """Retry back-off without waiting: the count of attempts is what the tests check."""


#: product bugs this suite found, left for their owners to fix (src/ is not this suite's to change);
#: strict: once fixed, the xfail fails and the entry must go
KNOWN_BUGS: dict[tuple[str, str], str] = {}


def with_known_bugs(test: str) -> list[Any]:
    """The adapters as parameters, those with a known bug in `test` marked strict xfail."""
    return [pytest.param(a, id=a.family, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[test, a.family])]
                         if (test, a.family) in KNOWN_BUGS else []) for a in ADAPTERS]


@pytest.fixture(params=ADAPTERS, ids=repr)
def adapter(request: pytest.FixtureRequest) -> FamilyAdapter:
    return request.param  # type: ignore[no-any-return]


def _queries() -> list[Any]:
    return [pytest.param(a, action_id, id=f"{a.family}-{action_id}")
            for a in ADAPTERS for action_id, action in sorted(a.spec.actions.items())
            if action.kind == "query" and action.method]


def _required(adapter: FamilyAdapter, action_id: str) -> list[str]:
    action = adapter.spec.action(action_id)
    return [p.name for p in action.params if p.required and not p.has_default and p.settable]


# --- the adapter itself -------------------------------------------------------------------------------


def test_adapter_names_only_what_the_spec_has(adapter: FamilyAdapter) -> None:
    spec = adapter.spec
    named = {*adapter.needs_setup, *adapter.query_params, adapter.read.action, adapter.change.action,
             adapter.disruption.action, *(a for a, _ in adapter.invalid_calls)}
    assert sorted(named - set(spec.actions)) == [], "adapter names actions the spec does not have"
    assert not set(adapter.needs_setup) & set(adapter.query_params), "an action is both skipped and called"
    not_queries = [a for a in adapter.needs_setup if spec.action(a).kind != "query"]
    assert not_queries == [], "needs_setup lists actions that are not queries"
    assert sorted(set(adapter.macro_params) - set(spec.macros)) == []


# --- every query answers ------------------------------------------------------------------------------


@pytest.mark.parametrize(("adapter", "action_id"), _queries())
async def test_every_query_answers_with_its_declared_type(
    adapter: FamilyAdapter, action_id: str, emulators: EmulatorThread, tls: TLSPolicy, tmp_path: Path
) -> None:
    if action_id in adapter.needs_setup:
        pytest.skip(f"{adapter.family}.{action_id}: {adapter.needs_setup[action_id]}")
    action = adapter.spec.action(action_id)
    if _required(adapter, action_id) and action_id not in adapter.query_params:
        pytest.fail(f"{adapter.family}.{action_id} needs {_required(adapter, action_id)}: give them in the "
                    "adapter's query_params, or list the action in needs_setup with the reason")
    emu = adapter.spawn(emulators)
    params = adapter.query_params.get(action_id, lambda e: {})(emu)
    download = adapter.download_dir(tmp_path) if action.response == "file" else {}
    async with adapter.client(emu, tls) as dev:
        result = await dev.call(action_id, **download, **params)
    assert result.status in action.success and 200 <= result.status < 300
    assert list(emu.crashes) == []
    if result.status == 204:
        return  # "nothing to give": declared as a success, with no body of any type
    if action.response == "json":
        assert result.data is not None, "a JSON action answered nothing"
    elif action.response == "file":
        assert result.file is not None and result.file.is_file() and result.file.stat().st_size > 0
    elif action.response == "text":
        assert isinstance(result.data, str)
    # response: none has no body to check (a family may still make a result of the status, as
    # Solstice's screen_key_verify does with 200/404)


# --- reads and changes against the emulator's state ---------------------------------------------------


async def test_a_read_matches_the_emulators_state(
    adapter: FamilyAdapter, emulators: EmulatorThread, tls: TLSPolicy
) -> None:
    emu = adapter.spawn(emulators)
    probe = adapter.read
    async with adapter.client(emu, tls) as dev:
        result = await dev.call(probe.action, **probe.params(emu))
    probe.check(emu, result)


async def test_a_state_change_is_visible_in_the_emulator(
    adapter: FamilyAdapter, emulators: EmulatorThread, tls: TLSPolicy
) -> None:
    emu = adapter.spawn(emulators)
    change = adapter.change
    assert change.observe(emu) != change.expected, "the change would prove nothing: already in that state"
    async with adapter.client(emu, tls) as dev:
        result = await dev.call(change.action, **change.params)
    assert result.status in adapter.spec.action(change.action).success
    assert change.observe(emu) == change.expected


async def test_validation_errors_send_nothing(adapter: FamilyAdapter, emulators: EmulatorThread,
                                              tls: TLSPolicy) -> None:
    emu = adapter.spawn(emulators)
    refused = 0
    async with adapter.client(emu, tls) as dev:
        for action_id, action in adapter.spec.actions.items():
            if not action.method:
                continue
            with pytest.raises(ValidationError):
                await dev.call(action_id, no_such_parameter_xyz=1)
            refused += 1
            if _required(adapter, action_id):
                with pytest.raises(ValidationError):
                    await dev.call(action_id)
                refused += 1
        for action_id, params in adapter.invalid_calls:
            with pytest.raises(ValidationError):
                await dev.call(action_id, **params)
            refused += 1
    assert refused > len(adapter.spec.actions) // 2
    assert emu.requests.total == 0 and list(emu.requests) == []
    assert not tls.known_hosts.path.exists()  # not even a TLS handshake happened


# --- logins -------------------------------------------------------------------------------------------


async def test_a_wrong_password_costs_one_login_and_is_remembered(
    adapter: FamilyAdapter, emulators: EmulatorThread, tls: TLSPolicy
) -> None:
    emu = adapter.spawn(emulators)
    before = adapter.change.observe(emu)
    async with adapter.client(emu, tls, password=adapter.wrong_password) as dev:
        with pytest.raises(adapter.wrong_password_error) as first:
            await dev.call(adapter.read.action, **adapter.read.params(emu))
        assert type(first.value) is adapter.wrong_password_error, first.value
        sent = emu.requests.total
        assert sent == 1, "one login attempt, nothing else"
        # the verdict is remembered: no later call (nor many at once) sends anything
        with pytest.raises(adapter.wrong_password_error):
            await dev.call(adapter.change.action, **adapter.change.params)
        results = await asyncio.gather(*(dev.call(adapter.read.action, **adapter.read.params(emu))
                                         for _ in range(5)), return_exceptions=True)
        assert all(isinstance(r, adapter.wrong_password_error) for r in results)
        assert emu.requests.total == sent
    assert adapter.rejected_logins(emu) == 1
    assert adapter.logins(emu) == 0
    assert adapter.change.observe(emu) == before
    message = str(first.value)
    assert adapter.wrong_password_says in message
    assert adapter.wrong_password not in message and adapter.password not in message


@pytest.mark.parametrize("adapter", with_known_bugs("lockout"))
async def test_lockout_refuses_even_the_right_password(
    adapter: FamilyAdapter, emulators: EmulatorThread, tls: TLSPolicy
) -> None:
    emu = adapter.spawn(emulators, lockout_after=3)
    for attempt in range(3):
        async with adapter.client(emu, tls, password=adapter.wrong_password) as dev:
            expected = adapter.locked_error if attempt == 2 else adapter.wrong_password_error
            with pytest.raises(AvctlError) as refused:
                await dev.call(adapter.read.action, **adapter.read.params(emu))
            assert type(refused.value) is expected, (attempt, refused.value)
    async with adapter.client(emu, tls) as dev:
        with pytest.raises(AvctlError) as locked:
            await dev.call(adapter.read.action, **adapter.read.params(emu))
    assert type(locked.value) is adapter.locked_error, locked.value
    assert adapter.locked_says in str(locked.value)
    assert adapter.password not in str(locked.value)
    assert adapter.logins(emu) == 0


@pytest.mark.parametrize("how", ["expire_sessions", "expire_at_request"])
async def test_session_expiry_costs_exactly_one_relogin(
    adapter: FamilyAdapter, emulators: EmulatorThread, tls: TLSPolicy, how: str
) -> None:
    emu = adapter.spawn(emulators, sessions=True)
    probe = adapter.read
    async with adapter.client(emu, tls) as dev:
        probe.check(emu, await dev.call(probe.action, **probe.params(emu)))
        assert adapter.logins(emu) == 1
        if how == "expire_sessions":
            emu.expire_sessions()
        else:
            emu.faults.expire_at_request = emu.requests.total + 1  # the very next request
        probe.check(emu, await dev.call(probe.action, **probe.params(emu)))
        assert adapter.logins(emu) == 2
        probe.check(emu, await dev.call(probe.action, **probe.params(emu)))
    assert adapter.logins(emu) == 2 and adapter.rejected_logins(emu) == 0


async def test_concurrent_calls_share_one_login(adapter: FamilyAdapter, emulators: EmulatorThread,
                                                tls: TLSPolicy) -> None:
    emu = adapter.spawn(emulators, sessions=True)
    probe = adapter.read
    async with adapter.client(emu, tls) as dev:
        results = await asyncio.gather(*(dev.call(probe.action, **probe.params(emu)) for _ in range(CONCURRENT)))
        for result in results:
            probe.check(emu, result)
        assert adapter.logins(emu) == 1
        # refused together after the session expired: still one new login for all of them
        emu.expire_sessions()
        results = await asyncio.gather(*(dev.call(probe.action, **probe.params(emu)) for _ in range(CONCURRENT)))
        for result in results:
            probe.check(emu, result)
    assert adapter.logins(emu) == 2


async def test_close_logs_out_and_sends_nothing_else(
    adapter: FamilyAdapter, emulators: EmulatorThread, tls: TLSPolicy
) -> None:
    emu = adapter.spawn(emulators)
    dev = adapter.client(emu, tls)
    await dev.call(adapter.read.action, **adapter.read.params(emu))
    sessions = adapter.open_sessions(emu)
    before = emu.requests.total
    await dev.close()
    if sessions is None:
        assert emu.requests.total == before, "a family without sessions has nothing to log out of"
    else:
        assert sessions == 1 and adapter.open_sessions(emu) == 0
        assert emu.requests.total == before + 1


@pytest.mark.parametrize("adapter", with_known_bugs("closing_twice"))
async def test_closing_twice_sends_nothing_more(
    adapter: FamilyAdapter, emulators: EmulatorThread, tls: TLSPolicy
) -> None:
    emu = adapter.spawn(emulators)
    dev = adapter.client(emu, tls)
    await dev.call(adapter.read.action, **adapter.read.params(emu))
    await dev.close()
    after_first = emu.requests.total
    await dev.close()
    assert emu.requests.total == after_first


# --- disruptive actions, busy devices -----------------------------------------------------------------


async def test_a_disruptive_action_is_marked_and_takes_effect(
    adapter: FamilyAdapter, emulators: EmulatorThread, tls: TLSPolicy
) -> None:
    disruption = adapter.disruption
    assert adapter.spec.action(disruption.action).disruptive, f"{disruption.action} is not marked disruptive"
    emu = adapter.spawn(emulators)
    async with adapter.client(emu, tls) as dev:
        await dev.call(disruption.action, **disruption.params)
        assert disruption.happened(emu)


async def test_a_busy_device_is_retried_within_bounds(
    adapter: FamilyAdapter, emulators: EmulatorThread, tls: TLSPolicy
) -> None:
    emu = adapter.spawn(emulators)
    if not adapter.make_busy(emu, 1):
        pytest.skip(f"{adapter.family} has no busy state (it serves requests side by side)")
    probe = adapter.read
    async with adapter.client(emu, tls, sleep=no_sleep) as dev:
        probe.check(emu, await dev.call(probe.action, **probe.params(emu)))
        assert emu.requests.total == 2  # refused once, then answered
        attempts = dev.retry.attempts
        adapter.make_busy(emu, attempts)
        with pytest.raises(DeviceBusy):
            await dev.call(probe.action, **probe.params(emu))
    assert emu.requests.total == 2 + attempts  # bounded: the family's retry budget, no more


# --- Feedbacks and Macros -----------------------------------------------------------------------------


def _fits(value: Any, declared: str) -> bool:
    if declared in ("integer", "number") and isinstance(value, bool):
        return False
    if declared == "integer" and isinstance(value, float):
        return value.is_integer()  # JSON has one number type: 5.0 is an integer reading
    kind = JSON_TYPES.get(declared)
    return kind is None or isinstance(value, kind)


async def test_every_feedback_resolves_with_its_declared_type(
    adapter: FamilyAdapter, emulators: EmulatorThread, tls: TLSPolicy
) -> None:
    spec = adapter.spec
    emu = adapter.spawn(emulators)
    adapter.feedback_setup(emu)
    values: dict[str, Any] = {}
    async with adapter.client(emu, tls) as dev:
        for fb in spec.feedbacks:
            assert fb.action is not None and spec.has_action(fb.action), fb.id
            result = await dev.call(fb.action)
            value, problem = read_feedback(spec.action(fb.action), result.data, fb)
            assert problem is None, f"{fb.id}: {problem}"
            assert _fits(value, fb.type), f"{fb.id}: {value!r} is not {fb.type}"
            values[fb.id] = value
    expected = adapter.feedback_expected(emu)
    assert set(expected) == {fb.id for fb in spec.feedbacks}, "the adapter must expect every Feedback"
    for key, want in expected.items():
        if key in adapter.feedback_approx:
            assert math.isclose(values[key], want, abs_tol=3), (key, values[key], want)
        else:
            assert values[key] == want, (key, values[key], want)


def _macro_steps(adapter: FamilyAdapter, macro_id: str) -> list[tuple[str, dict[str, Any]]]:
    given = adapter.macro_params.get(macro_id, {})
    steps = []
    for step in adapter.spec.macros[macro_id].steps:
        values: dict[str, Any] = {}
        for key, value in step.params.items():
            if isinstance(value, str) and value.startswith("$"):
                assert value[1:] in given, f"macro {macro_id} needs {value[1:]}: add it to macro_params"
                value = given[value[1:]]
            values[key] = value
        steps.append((step.action, values))
    return steps


async def test_every_macro_validates_and_runs(adapter: FamilyAdapter, emulators: EmulatorThread,
                                              tls: TLSPolicy) -> None:
    spec = adapter.spec
    assert spec.macros, f"{adapter.family} has no Macros (the fleet's verbs come from them)"
    for macro_id in spec.macros:
        for action_id, values in _macro_steps(adapter, macro_id):
            assert spec.has_action(action_id), f"macro {macro_id}: no action {action_id}"
            validate(spec.action(action_id), values)
    for macro_id in spec.macros:
        emu = adapter.spawn(emulators)
        effect = adapter.macro_effect(emu, macro_id)
        if effect is None:
            continue
        async with adapter.client(emu, tls) as dev:
            for action_id, values in _macro_steps(adapter, macro_id):
                await dev.call(action_id, **values)
        assert effect(emu), f"macro {macro_id} left no trace in the emulator"



def test_every_builtin_spec_has_an_adapter() -> None:
    """A family shipped without an adapter would escape the suite."""
    from avctl.families import family_names

    assert set(family_names()) <= {a.family for a in ADAPTERS}
