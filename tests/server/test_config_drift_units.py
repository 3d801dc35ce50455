"""The pieces of the server's drift checks that need no device: the config file's and the command
line's schedule, the derived config_drift reading in the state store, and the schedule's loop
(its clock injected: no real waiting)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from avctl.cli.main import cli
from avctl.db.engine import Database
from avctl.db.models import DeviceState, Reading
from avctl.errors import UsageError
from avctl.fleet.inventory import DeviceEntry, parse_address
from avctl.server.alerts.rules import parse_rules
from avctl.server.config import ServerConfig, load_config
from avctl.server.context import DriftStatus
from avctl.server.drift import DriftSchedule
from avctl.server.model import DRIFT_READING, Observation
from avctl.server.state import StateStore


def entry(name: str) -> DeviceEntry:
    return DeviceEntry(name=name, family="videoos", address=parse_address("127.0.0.1:443"), site="hq")


def test_the_schedule_is_off_by_default_and_read_from_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "server.yaml"
    cfg.write_text("config_drift: {every: 6h}\n")
    assert ServerConfig().drift_every is None
    assert load_config(cfg).drift_every == 6 * 3600
    assert load_config(cfg).merged({"drift_every": 60.0}).drift_every == 60.0  # the command line wins
    for text, needle in (("config_drift: {every: often}\n", ":1: config_drift.every: 'often' is not a duration"),
                         ("config_drift: {evry: 6h}\n", ":1: unknown key 'evry' in config_drift"),
                         ("config_drift: 6h\n", ":1: config_drift must be a mapping")):
        cfg.write_text(text)
        with pytest.raises(UsageError, match=needle):
            load_config(cfg)


def test_serve_refuses_a_drift_every_that_is_not_a_duration() -> None:
    result = CliRunner().invoke(cli, ["serve", "-i", "fleet.yaml", "--drift-every", "soon"])
    assert result.exit_code == 2 and "--drift-every: 'soon' is not a duration" in result.output


def test_config_drift_is_a_reading_polls_keep(poll_db: Database) -> None:
    store = StateStore(poll_db)
    a, b = entry("a"), entry("b")
    store.sync_inventory([a, b])
    store.apply([(a, Observation("a", 10.0, "online", {"volume": 40})), (b, Observation("b", 10.0, "offline"))])
    changed = store.set_derived(DRIFT_READING, {"a": 2, "b": 0})
    assert {v.name: v.readings[DRIFT_READING] for v in changed} == {"a": 2, "b": 0}
    assert store.set_derived(DRIFT_READING, {"a": 2, "b": 0}) == []  # nothing changed: nothing to evaluate
    # the next poll keeps it beside the polled readings, and records it as history
    [view] = store.apply([(a, Observation("a", 70.0, "online", {"volume": 41}))])
    assert dict(view.readings) == {"volume": 41, DRIFT_READING: 2}
    with poll_db.session() as s:
        assert list(s.scalars(select(Reading.value).where(Reading.metric == DRIFT_READING))) == [2.0]
    # a later check without the device (it could not be read, or has no desired state): no reading
    changed = store.set_derived(DRIFT_READING, {"b": 1})
    assert {v.name: v.readings.get(DRIFT_READING) for v in changed} == {"a": None, "b": 1}
    assert DRIFT_READING not in store.current()["a"].readings and store.current()["b"].readings[DRIFT_READING] == 1
    with poll_db.session() as s:
        row = s.get(DeviceState, "a")
        assert row is not None and DRIFT_READING not in (row.readings or "")
    [again] = store.apply([(a, Observation("a", 130.0, "online", {"volume": 42}))])
    assert DRIFT_READING not in again.readings


def test_rules_know_the_reading() -> None:
    rules = parse_rules("rules:\n  - {name: drifted, when: config_drift > 0, severity: warning}\n")
    assert rules.warnings == ()
    assert rules.rules[0].condition.reading == DRIFT_READING


class _Ctx:
    """What the schedule reads of the server's context."""

    def __init__(self) -> None:
        self.drift = DriftStatus()

    @staticmethod
    def clock() -> float:
        return 1000.0


async def test_the_schedule_checks_every_interval_and_survives_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    import avctl.server.drift as drift

    ctx = _Ctx()
    started: list[int] = []
    running: list[int | None] = [None, None, 7, None]
    waits: list[float] = []

    async def start(_ctx: object) -> int:
        if len(started) == 1:
            started.append(-1)
            raise UsageError("invalid desired configuration (1 problem):\n  fleet.yaml:4: unknown key")
        started.append(len(started) + 1)
        return started[-1]

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 4:
            raise asyncio.CancelledError

    monkeypatch.setattr(drift, "start_drift", start)
    monkeypatch.setattr(drift, "drift_running", lambda _ctx: running.pop(0))
    with pytest.raises(asyncio.CancelledError):
        await DriftSchedule(ctx, 21600.0, sleep=sleep).run()  # type: ignore[arg-type]
    assert waits == [21600.0] * 4
    # first check, a refused one (shown), one skipped while job 7 still ran, then the next
    assert started == [1, -1, 3]
    assert ctx.drift.error is not None and "fleet.yaml:4" in ctx.drift.error
