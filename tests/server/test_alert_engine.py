"""The alert engine against a real SQLite file with an injected clock: open on time, once; resolve;
ack and silence; the outbox written in the same transaction as the alert."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from avctl.db import Database, open_database
from avctl.db.models import Alert, AlertPending, Notification
from avctl.errors import UsageError
from avctl.server.alerts import engine as engine_module
from avctl.server.alerts.engine import AlertEngine
from avctl.server.alerts.rules import RuleSet, parse_rules
from avctl.server.live import ChangeFeed
from avctl.server.model import DeviceView, Principal
from avctl.server.service import NotFound, ack_alert, list_alerts, open_counts, silence_alert

RULES = """
channels:
  hook: {type: webhook, url: 'http://127.0.0.1:9/hook'}
  mail: {type: email, host: 127.0.0.1, from: avctl@example.org, to: [av@example.org]}
rules:
  - name: device-offline
    when: offline for 5m
    severity: critical
    notify: [hook, mail]
  - name: firmware-baseline
    when: firmware != "10.1.0"
    scope: {family: videoos}
    notify: [hook]
  - name: sip-down
    when: sip_registered == false for 2m
    notify: [hook]
"""


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def view(name: str = "hq-101", state: str = "online", since: float = 0.0, family: str = "videoos",
         site: str | None = "hq", **readings: Any) -> DeviceView:
    return DeviceView(name=name, family=family, site=site, room=None, tags=frozenset(), address="127.0.0.1",
                      state=state, since=since, readings=readings)  # type: ignore[arg-type]


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_database(str(tmp_path / "x.db"))


def rules(text: str = RULES) -> RuleSet:
    return parse_rules(text, known_readings={"firmware", "sip_registered"})


def alerts(db: Database) -> list[Alert]:
    with db.session() as s:
        return list(s.scalars(select(Alert).order_by(Alert.id)))


def notes(db: Database) -> list[tuple[int, str, str, str]]:
    with db.session() as s:
        return [(n.alert_id, n.event, n.channel, n.state)
                for n in s.scalars(select(Notification).order_by(Notification.id))]


def test_offline_for_5m_opens_exactly_at_5m_once_and_resolves_on_recovery(db: Database) -> None:
    clock = Clock()
    eng = AlertEngine(db, rules(), clock)
    went = clock.now
    assert not eng.evaluate([view(state="offline", since=went)])
    clock.now = went + 299.9
    assert not eng.evaluate([view(state="offline", since=went)])
    assert alerts(db) == []
    clock.now = went + 300
    changes = eng.evaluate([view(state="offline", since=went)])
    assert [(a.rule, a.device, a.severity, a.state) for a in changes.opened] == [
        ("device-offline", "hq-101", "critical", "open")]
    assert changes.queued == 2
    opened = changes.opened[0]
    assert opened.opened == went + 300 and "hq-101 is offline for 5m" in opened.message
    assert notes(db) == [(opened.id, "opened", "hook", "pending"), (opened.id, "opened", "mail", "pending")]
    # de-duplicated: still offline, polled again and again
    for dt in (330, 600, 3600):
        clock.now = went + dt
        assert not eng.evaluate([view(state="offline", since=went)])
    assert len(alerts(db)) == 1 and len(notes(db)) == 2
    clock.now = went + 4000
    changes = eng.evaluate([view(state="online", since=went + 4000)])
    assert [a.id for a in changes.resolved] == [opened.id] and not changes.opened
    [row] = alerts(db)
    assert row.state == "resolved" and row.resolved == went + 4000
    assert notes(db)[2:] == [(opened.id, "resolved", "hook", "pending"), (opened.id, "resolved", "mail", "pending")]
    with db.session() as s:
        assert s.scalars(select(AlertPending)).all() == []
    # offline again: a new alert, a new id
    clock.now = went + 5000
    eng.evaluate([view(state="offline", since=went + 5000)])
    clock.now = went + 5300
    assert [a.id for a in eng.evaluate([view(state="offline", since=went + 5000)]).opened] == [opened.id + 1]


def test_the_state_time_counts_from_when_the_device_went_offline(db: Database) -> None:
    """A device first seen by the engine long after it went offline fires at once (polls back off)."""
    clock = Clock()
    eng = AlertEngine(db, rules(), clock)
    down = DeviceView(**{**view(state="offline", since=clock.now - 301).__dict__,
                         "error": "connection refused\x1b[2J"})
    [opened] = eng.evaluate([down]).opened
    assert opened.message == ("hq-101 is offline for 5m: connection refused\\x1b[2J "
                              "(rule device-offline: offline for 5m)")


def test_a_reading_wait_survives_a_restart(db: Database) -> None:
    clock = Clock()
    AlertEngine(db, rules(), clock).evaluate([view(sip_registered=False, firmware="10.1.0")])
    clock.now += 119
    assert not AlertEngine(db, rules(), clock).evaluate([view(sip_registered=False, firmware="10.1.0")])
    clock.now += 1
    changes = AlertEngine(db, rules(), clock).evaluate([view(sip_registered=False, firmware="10.1.0")])
    assert [a.rule for a in changes.opened] == ["sip-down"]
    assert changes.opened[0].value is False


def test_a_wait_restarts_when_the_condition_stops_holding(db: Database) -> None:
    clock = Clock()
    eng = AlertEngine(db, rules(), clock)
    eng.evaluate([view(sip_registered=False)])
    clock.now += 100
    eng.evaluate([view(sip_registered=True)])
    clock.now += 100
    eng.evaluate([view(sip_registered=False)])
    clock.now += 119
    assert not eng.evaluate([view(sip_registered=False)])
    clock.now += 1
    assert eng.evaluate([view(sip_registered=False)]).opened


def test_reading_rules_respect_scope_and_an_offline_device_keeps_its_alert(db: Database) -> None:
    clock = Clock()
    eng = AlertEngine(db, rules(), clock)
    changes = eng.evaluate([view(firmware="9.0.1"), view("pod-1", family="solstice", firmware="9.0.1")])
    assert [(a.rule, a.device) for a in changes.opened] == [("firmware-baseline", "hq-101")]
    assert changes.opened[0].value == "9.0.1"
    clock.now += 60
    # offline: the firmware reading is stale, the condition unknown: nothing opens or resolves
    assert not eng.evaluate([view(state="offline", since=clock.now, firmware="9.0.1")])
    clock.now += 60
    assert [a.rule for a in eng.evaluate([view(firmware="10.1.0")]).resolved] == ["firmware-baseline"]


def test_hostile_reading_values_are_made_printable_and_capped(db: Database) -> None:
    eng = AlertEngine(db, rules(), Clock())
    [opened] = eng.evaluate([view(firmware="\x1b]0;pwned\x07" + "A" * 5000)]).opened
    assert "\x1b" not in opened.message and "\\x1b" in opened.message
    assert len(opened.value) <= engine_module.MAX_VALUE_CHARS and len(opened.message) < 400


def service_ctx(db: Database, clock: Clock) -> Any:
    """What the service's alert functions use of a server's context: its database and clock."""
    return SimpleNamespace(db=db, clock=lambda: clock.now, changes=ChangeFeed())


ALICE = Principal(1, "alice", "operator")
BOB = Principal(2, "bob", "operator")


def test_acknowledged_alerts_still_resolve_and_notify(db: Database) -> None:
    clock = Clock()
    eng = AlertEngine(db, rules(), clock)
    [opened] = eng.evaluate([view(state="offline", since=clock.now - 400)]).opened
    acked = ack_alert(service_ctx(db, clock), ALICE, opened.id)
    assert acked.acked_by == "web:alice" and acked.acked_at == clock.now
    with pytest.raises(NotFound):
        ack_alert(service_ctx(db, clock), ALICE, 9999)
    clock.now += 10
    assert eng.evaluate([view(state="online", since=clock.now)]).resolved
    assert [n[1:] for n in notes(db)][2:] == [("resolved", "hook", "pending"), ("resolved", "mail", "pending")]


def test_a_silenced_alert_records_but_sends_nothing_until_the_silence_ends(db: Database) -> None:
    clock = Clock()
    eng = AlertEngine(db, rules(), clock)
    [first] = eng.evaluate([view(state="offline", since=clock.now - 400)]).opened
    ctx = service_ctx(db, clock)
    with pytest.raises(UsageError):
        silence_alert(ctx, BOB, first.id, seconds=-1)
    with pytest.raises(UsageError):
        silence_alert(ctx, BOB, first.id, seconds=91 * 86400)
    silenced = silence_alert(ctx, BOB, first.id, seconds=3600)
    assert silenced.silenced_by == "web:bob" and silenced.silenced_until == clock.now + 3600
    clock.now += 60
    changes = eng.evaluate([view(state="online", since=clock.now)])
    assert changes.resolved and changes.queued == 0
    assert [n[1:] for n in notes(db)][2:] == [("resolved", "hook", "silenced"), ("resolved", "mail", "silenced")]
    # the silence was on that alert; the next one notifies
    clock.now += 3600
    [second] = eng.evaluate([view(state="offline", since=clock.now - 400)]).opened
    assert [n[3] for n in notes(db) if n[0] == second.id] == ["pending", "pending"]
    # an expired silence no longer holds back the resolution
    silence_alert(ctx, BOB, second.id, seconds=60)
    clock.now += 61
    eng.evaluate([view(state="online", since=clock.now)])
    assert [n[3] for n in notes(db) if n[0] == second.id] == ["pending"] * 4
    lifted = silence_alert(ctx, BOB, second.id, seconds=0)  # 0 ends a silence
    assert lifted.silenced_until is None


def test_the_outbox_rows_are_written_in_the_alerts_transaction(db: Database,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    eng = AlertEngine(db, rules(), clock)

    def crash(*_: Any) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(engine_module, "_queue", crash)
    with pytest.raises(OSError):
        eng.evaluate([view(state="offline", since=clock.now - 400)])
    assert alerts(db) == [] and notes(db) == []  # neither: the alert would otherwise never notify
    monkeypatch.undo()
    assert eng.evaluate([view(state="offline", since=clock.now - 400)]).opened
    assert len(alerts(db)) == 1 and len(notes(db)) == 2


def test_a_concurrent_writer_cannot_make_a_second_open_alert(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process opens the same alert between our read and our insert: the unique index
    refuses ours, the pass runs again and sees theirs."""
    clock = Clock()
    eng = AlertEngine(db, rules(), clock)
    other = open_database(db.url)
    real_apply = AlertEngine._apply
    raced: list[bool] = []

    def apply(self: AlertEngine, s: Any, rule: Any, v: DeviceView, *rest: Any) -> None:
        if rule.name == "device-offline" and not raced:
            raced.append(True)
            with other.session() as o:
                o.add(Alert(rule="device-offline", device=v.name, site=v.site, severity="critical", state="open",
                            opened=clock.now, message="theirs"))
        real_apply(self, s, rule, v, *rest)

    monkeypatch.setattr(AlertEngine, "_apply", apply)
    changes = eng.evaluate([view(state="offline", since=clock.now - 400)])
    assert raced and not changes.opened
    assert [(a.message, a.state) for a in alerts(db)] == [("theirs", "open")]
    other.close()


def test_leaving_the_inventory_or_a_removed_rule_resolves(db: Database) -> None:
    clock = Clock()
    eng = AlertEngine(db, rules(), clock)
    eng.evaluate([view(state="offline", since=clock.now - 400), view("b", state="offline", since=clock.now - 400)])
    assert len(eng.evaluate([view("b", state="offline", since=clock.now - 400)]).resolved) == 0  # a partial batch
    changes = eng.evaluate([view("b", state="offline", since=clock.now - 400)], every_device=True)
    assert [(a.device, a.state) for a in changes.resolved] == [("hq-101", "resolved")]
    assert "left the inventory" in changes.resolved[0].message
    eng.set_rules(rules(RULES.replace("device-offline", "renamed")))
    changes = eng.evaluate([])
    assert [(a.rule, a.device) for a in changes.resolved] == [("device-offline", "b")]
    # a removed rule's channels may be gone with it: nobody is told
    assert [n for n in notes(db) if n[0] == changes.resolved[0].id and n[1] == "resolved"] == []


def test_list_and_count(db: Database) -> None:
    clock = Clock()
    eng = AlertEngine(db, rules(), clock)
    eng.evaluate([view("a", state="offline", since=0, site="hq"), view("b", state="offline", since=0, site="lab"),
                  view("c", firmware="1.0", site=None)])
    ctx = service_ctx(db, clock)
    every, lab = ALICE, Principal(3, "lab-tech", "viewer", sites=frozenset({"lab"}))
    assert {a.device for a in list_alerts(ctx, every).items} == {"a", "b", "c"}
    assert [a.device for a in list_alerts(ctx, lab).items] == ["b"]  # an alert without a site: not in scope
    assert [a.device for a in list_alerts(ctx, every, severity="warning").items] == ["c"]
    assert len(list_alerts(ctx, every, limit=1).items) == 1
    assert list_alerts(ctx, every, limit=2, offset=2).total == 3
    assert open_counts(ctx, every) == {"critical": 2, "warning": 1}
    [first] = list_alerts(ctx, every, device="a").items
    assert first.as_dict()["device"] == "a" and first.state == "open"


def test_a_device_leaving_a_rules_scope_resolves_its_alert(db: Database) -> None:
    scoped = RULES.replace("    when: offline for 5m\n", "    when: offline for 5m\n    scope: {tag: lobby}\n")
    clock = Clock()
    eng = AlertEngine(db, rules(scoped), clock)
    lobby = view(state="offline", since=0)
    lobby = DeviceView(**{**lobby.__dict__, "tags": frozenset({"lobby"})})
    assert [a.rule for a in eng.evaluate([lobby, view("other", state="offline", since=0)]).opened] == [
        "device-offline"]
    clock.now += 30
    retagged = DeviceView(**{**lobby.__dict__, "tags": frozenset({"boardroom"})})  # inventory edited
    assert [a.device for a in eng.evaluate([retagged]).resolved] == ["hq-101"]


def test_a_flap_inside_one_batch_restarts_the_wait(db: Database) -> None:
    """offline, online, offline again between two evaluations: the wait counts from the last change."""
    clock = Clock()
    eng = AlertEngine(db, rules(), clock)
    eng.evaluate([view(state="offline", since=clock.now)])
    clock.now += 250
    assert not eng.evaluate([view(state="offline", since=clock.now - 10)])  # came back and went again
    clock.now += 60
    assert not eng.evaluate([view(state="offline", since=clock.now - 70)])
    clock.now += 230
    assert eng.evaluate([view(state="offline", since=clock.now - 300)]).opened


def test_not_online_counts_across_the_states_it_covers(db: Database) -> None:
    text = RULES.replace("when: offline for 5m", "when: not online for 5m")
    clock = Clock()
    eng = AlertEngine(db, rules(text), clock)
    eng.evaluate([view(state="offline", since=clock.now)])
    clock.now += 200
    assert not eng.evaluate([view(state="error", since=clock.now)])  # another non-online state
    clock.now += 100
    assert eng.evaluate([view(state="error", since=clock.now - 100)]).opened
