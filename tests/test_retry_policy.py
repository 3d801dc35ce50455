"""One retry policy (avctl.retry), owned by Device and configured by the runner and `avctl call`.

Against the Poly UC emulator over real HTTPS on loopback, with count-based faults only (a phone busy
for its next N requests, an answer lost after the phone acted): the request logs show exactly what
each device received, and the outcome says the same. Backoff sleeps are injected as no-ops.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from avctl import Credentials, Device, TLSPolicy
from avctl.cli.main import cli
from avctl.emulator.core import EmulatorThread
from avctl.emulator.polyuc import EmulatedPolyUC
from avctl.errors import (
    AccountLockedError,
    AuthenticationError,
    ConnectError,
    ConnectionDropped,
    DeviceBusy,
    DeviceError,
    DeviceTimeout,
    TLSError,
    TransportError,
    UsageError,
)
from avctl.families import builtin_spec
from avctl.fleet.credentials import CredentialResolver
from avctl.fleet.inventory import parse_inventory
from avctl.fleet.runner import FleetRunner, RunOptions
from avctl.fleet.store import Outcome
from avctl.fleet.verbs import ActionTask
from avctl.retry import RetryPolicy
from avctl.transport.tls import KnownHosts

from .test_fleet_runner import PASSWORD as FLEET_PW
from .test_fleet_runner import SPEC_PATH, runner, spawn

SPEC = builtin_spec("polyuc")
QUERY = SPEC.action("device_info")
ACTION = SPEC.action("callctrl_dial")
PASSWORD = "uc-retry-pw-41"


async def no_sleep(_seconds: float) -> None:
    """Backoff is injected: tests never wait out (or race) a real delay."""


def phone(emulators: EmulatorThread, name: str = "vvx") -> EmulatedPolyUC:
    dev = EmulatedPolyUC(name, password=PASSWORD)
    emulators.add(dev)
    return dev


async def fleet_call(tmp_path: Path, dev: EmulatedPolyUC, action: str, params: dict[str, Any],
                     retries: int = 2) -> Outcome:
    inv = parse_inventory("defaults: {family: polyuc, password: env:UC_PW}\ndevices:\n"
                          f"  {dev.name}: {{address: '127.0.0.1:{dev.port}'}}\n")
    runner = FleetRunner(tls=TLSPolicy.pinned(KnownHosts(tmp_path / "known_devices")),
                         resolver=CredentialResolver(base_dir=tmp_path),
                         options=RunOptions(retries=retries, backoff=5.0, timeout=5), sleep=no_sleep)
    [outcome] = await runner.run(ActionTask(action, params), list(inv))
    return outcome


@pytest.fixture(autouse=True)
def uc_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UC_PW", PASSWORD)
    monkeypatch.setenv("FLEET_PW", FLEET_PW)


# --- the rule, per error class ---------------------------------------------------------------------


RULES: list[tuple[BaseException, bool, bool]] = [
    # error, may retry a query, may retry a state-changing action
    (DeviceBusy("busy", status=403), True, True),
    (ConnectError("refused"), True, True),
    (DeviceError("unavailable", status=503), True, True),
    (DeviceError("server error", status=500), True, False),
    (DeviceError("bad gateway", status=502), True, False),
    (DeviceError("gateway timeout", status=504), True, False),
    (DeviceTimeout("no answer"), True, False),
    (ConnectionDropped("reset"), True, False),
    (TransportError("odd"), True, False),
    (DeviceError("not implemented", status=501), False, False),
    (DeviceError("bad request", status=400), False, False),
    (AuthenticationError("wrong password"), False, False),
    (AccountLockedError("locked"), False, False),
    (TLSError("bad certificate"), False, False),
    (ValueError("not ours"), False, False),
]


@pytest.mark.parametrize(("error", "query", "action"), RULES, ids=[type(e).__name__ + str(getattr(e, "status", ""))
                                                                    for e, _, _ in RULES])
def test_may_retry_per_error_class(error: BaseException, query: bool, action: bool) -> None:
    policy = RetryPolicy(attempts=3)
    assert policy.may_retry(error, QUERY) is query
    assert policy.may_retry(error, ACTION) is action
    assert not ACTION.disruptive  # state-changing is enough: dialling twice places two calls


def test_a_failed_login_before_the_action_was_sent_is_retried_even_for_an_action() -> None:
    policy = RetryPolicy(attempts=3)
    assert policy.may_retry(ConnectionDropped("reset"), ACTION, reached=False)
    assert policy.may_retry(DeviceTimeout("slow"), ACTION, reached=False)
    assert not policy.may_retry(AuthenticationError("wrong password"), ACTION, reached=False)


def test_busy_only_policy_retries_nothing_else() -> None:
    policy = RetryPolicy(attempts=5, busy_only=True)
    assert policy.may_retry(DeviceBusy("busy", status=403), ACTION)
    assert not policy.may_retry(ConnectError("refused"), QUERY)
    assert not policy.may_retry(DeviceError("x", status=500), QUERY)


@pytest.mark.parametrize("bad", [{"attempts": 0}, {"attempts": 12}, {"attempts": True}, {"backoff": -1},
                                 {"backoff": math.nan}, {"backoff_max": math.inf}, {"jitter": 2}])
def test_policy_refuses_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        RetryPolicy(**bad)


def test_backoff_doubles_is_capped_and_jittered() -> None:
    policy = RetryPolicy(attempts=6, backoff=1.0, backoff_max=3.0, jitter=0.5)
    rng = random.Random(7)
    delays = [policy.delay(n, rng) for n in (1, 2, 3, 4)]
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0
    assert all(1.5 <= d <= 3.0 for d in delays[2:])
    assert RetryPolicy(backoff=1.0, jitter=0).delay(3, rng) == 4.0


def test_run_options_give_the_device_its_policy() -> None:
    assert RunOptions(retries=2, backoff=0.1, backoff_max=1.0).retry_policy == RetryPolicy(3, 0.1, 1.0)


# --- what devices receive ---------------------------------------------------------------------------


async def test_busy_phone_gets_exactly_the_policy_s_requests_in_a_fleet(emulators: EmulatorThread,
                                                                        tmp_path: Path) -> None:
    dev = phone(emulators)
    dev.busy_next = 2  # answers busy twice, then works
    ok = await fleet_call(tmp_path, dev, "device_info", {})
    assert ok.status == "ok"
    assert ok.attempts == 3 and ok.requests == 3 == len(dev.requests)
    assert dev.busy_refusals == 2

    dev.requests.clear()
    dev.busy_next = 100  # busy for longer than the policy waits: 3 requests, not 3 x 5
    busy = await fleet_call(tmp_path, dev, "device_info", {})
    assert busy.status == "failed" and busy.reason == "busy"
    assert busy.attempts == 3 and busy.requests == 3 == len(dev.requests)


async def test_dial_whose_answer_is_lost_is_sent_once(emulators: EmulatorThread, tmp_path: Path) -> None:
    dev = phone(emulators)
    dev.faults.lose_answer_next = 1  # the phone dials, then the connection drops before the answer
    outcome = await fleet_call(tmp_path, dev, "callctrl_dial", {"Dest": "1234", "Line": 1}, retries=4)
    assert outcome.status == "unreachable" and outcome.reason == "connection_dropped"
    dials = [r for r in dev.requests if r.path.lower() == "/api/v1/callctrl/dial"]
    assert len(dials) == 1 and outcome.requests == 1 and outcome.attempts == 1
    assert len(dev.phone.calls) == 1  # one call placed: a retry would have placed a second


async def test_action_whose_login_is_dropped_is_retried_and_sent_once(emulators: EmulatorThread,
                                                                      tmp_path: Path) -> None:
    [dev] = spawn(emulators, 1)
    dev.faults.drop_next = 1  # the login's connection drops: the volume request was never sent
    inv = parse_inventory("defaults: {family: videoos, password: env:FLEET_PW}\ndevices:\n"
                          f"  {dev.name}: {{address: '127.0.0.1:{dev.port}'}}\n")
    r = runner(tmp_path, specs={"videoos": str(SPEC_PATH)}, retries=2, sleep=no_sleep)
    [outcome] = await r.run(ActionTask("audio_volume_set", {"volume": "44"}), list(inv))
    assert outcome.status == "ok" and outcome.attempts == 2
    assert [(q.method, q.path) for q in dev.requests][:3] == [
        ("POST", "/rest/session"), ("POST", "/rest/session"), ("POST", "/rest/audio/volume")]
    assert dev.state.volume == 44


async def test_query_whose_answer_is_lost_is_retried(emulators: EmulatorThread, tmp_path: Path) -> None:
    dev = phone(emulators)
    dev.faults.lose_answer_next = 1
    outcome = await fleet_call(tmp_path, dev, "device_info", {})
    assert outcome.status == "ok" and len(dev.requests) == 2


async def test_no_hidden_resend_below_the_policy(emulators: EmulatorThread, tmp_path: Path) -> None:
    dev = phone(emulators)
    dev.faults.lose_answer_next = 1
    outcome = await fleet_call(tmp_path, dev, "device_info", {})
    assert outcome.attempts == 2 and outcome.requests == 2 == len(dev.requests)


async def test_busy_dial_is_retried_because_the_phone_did_nothing(emulators: EmulatorThread,
                                                                 tmp_path: Path) -> None:
    dev = phone(emulators)
    dev.busy_next = 1
    outcome = await fleet_call(tmp_path, dev, "callctrl_dial", {"Dest": "1234", "Line": 1})
    assert outcome.status == "ok" and outcome.attempts == 2 and len(dev.requests) == 2
    assert len(dev.phone.calls) == 1


async def test_dial_that_times_out_is_not_repeated(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = phone(emulators)
    # the phone dials, then holds its answer until the test releases it: the client's timeout
    # fires after the whole request arrived and was acted on, however loaded the machine is
    acted, release = threading.Event(), threading.Event()
    dial = dev.on_callctrl_dial

    async def dial_then_hold(ctx: Any) -> Any:
        answer = await dial(ctx)
        acted.set()
        while not release.is_set():  # waits for the test's signal, not for a time
            await asyncio.sleep(0.005)
        return answer

    dev.on_callctrl_dial = dial_then_hold  # type: ignore[method-assign]
    try:
        async with Device(SPEC, f"127.0.0.1:{dev.port}", credentials=Credentials(None, PASSWORD), tls=tls,
                          timeout=2.0, retry=RetryPolicy(attempts=3), sleep=no_sleep) as d:
            with pytest.raises(DeviceTimeout):
                await d.call("callctrl_dial", Dest="1234", Line=1)
            assert d.sent == 1 and d.retries == 0
    finally:
        release.set()
    assert acted.is_set() and len(dev.requests) == 1 and len(dev.phone.calls) == 1


async def test_device_default_policy_comes_from_the_family(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = phone(emulators)
    dev.busy_next = 2
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async with Device(SPEC, f"127.0.0.1:{dev.port}", credentials=Credentials(None, PASSWORD), tls=tls,
                      sleep=record) as d:
        assert d.retry.busy_only and d.retry.attempts == 5
        assert (await d.call("device_info")).status == 200
    assert len(waits) == 2 and len(dev.requests) == 3


# --- avctl call ------------------------------------------------------------------------------------


def test_call_uses_the_same_policy_with_its_retries_option(emulators: EmulatorThread, tmp_path: Path) -> None:
    # real (short) backoff sleeps here: the faults are counted, so nothing races them
    dev = phone(emulators)
    base = ["call", "-f", "polyuc", f"127.0.0.1:{dev.port}", "device_info", "--password-env", "UC_PW",
            "--known-hosts", str(tmp_path / "known")]
    dev.busy_next = 100
    result = CliRunner().invoke(cli, base)
    assert result.exit_code == 1 and "busy" in result.stderr
    assert len(dev.requests) == 3  # default --retries 2, as in the fleet
    dev.requests.clear()
    result = CliRunner().invoke(cli, [*base, "--retries", "0"])
    assert result.exit_code == 1 and len(dev.requests) == 1
    dev.requests.clear()
    dev.busy_next = 0
    dev.faults.lose_answer_next = 1
    result = CliRunner().invoke(cli, ["call", "-f", "polyuc", f"127.0.0.1:{dev.port}", "callctrl_dial",
                                      "Dest=99", "Line=1", "--password-env", "UC_PW", "--known-hosts",
                                      str(tmp_path / "known"), "--retries", "5"])
    assert result.exit_code == 1 and "connection dropped" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(dev.requests) == 1 and len(dev.phone.calls) == 1
