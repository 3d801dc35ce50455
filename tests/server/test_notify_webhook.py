"""Webhook notifications to a real aiohttp receiver on 127.0.0.1: payload shapes (generic, Slack,
Teams), retries with backoff on an injected clock, giving up, never following redirects, and the
webhook URL's token kept out of the database, the errors and the logs."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from avctl.db import Database, open_database
from avctl.db.models import Alert, Notification
from avctl.emulator.certs import make_certificate, server_context
from avctl.fleet.credentials import CredentialResolver
from avctl.server.alerts.engine import AlertEngine
from avctl.server.alerts.notify import Dispatcher
from avctl.server.alerts.rules import RuleSet, WebhookChannel, parse_rules
from avctl.server.live import ChangeFeed
from avctl.server.model import DeviceView, Principal
from avctl.server.service import silence_alert
from tests.ports import free_port as _dead_port

TOKEN = "T0-B0-sekrit-token-4242"


class Clock:
    def __init__(self) -> None:
        self.now = 2_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Receiver:
    """Answers `statuses` in turn (then 200); records every request."""

    base: str = ""
    statuses: list[int] = field(default_factory=list)
    hits: list[dict[str, Any]] = field(default_factory=list)
    location: str | None = None
    hang: asyncio.Event | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append({"path": request.path_qs, "json": await request.json(),
                          "type": request.content_type})
        if self.hang is not None:
            await self.hang.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        if 300 <= status < 400:
            return web.Response(status=status, headers={"Location": self.location or "/"})
        # a receiver that echoes the request in its error (some do): the token must still not leak
        return web.Response(status=status, text=f"error at {request.path_qs}" if status >= 400 else "ok")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", rec.handle)
    runner = web.AppRunner(app, access_log=None)  # the test receiver logs nothing of its own
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rec.base = f"http://127.0.0.1:{port}"
    yield rec
    if rec.hang is not None:
        rec.hang.set()
    await runner.cleanup()


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_database(str(tmp_path / "x.db"))


def view(state: str = "offline", **readings: Any) -> DeviceView:
    return DeviceView(name="hq-101", family="videoos", site="hq", room="101", tags=frozenset(), address="127.0.0.1",
                      state=state, since=0.0, readings=readings)


def ruleset(notify: str, when: str = "offline") -> RuleSet:
    return parse_rules(f"""
channels:
  generic: {{type: webhook, url: env:GENERIC_HOOK}}
  slack: {{type: slack, url: env:SLACK_HOOK}}
  teams: {{type: teams, url: env:TEAMS_HOOK}}
rules:
  - name: device-offline
    when: '{when}'
    severity: critical
    notify: [{notify}]
""", known_readings={"firmware"})


def dispatcher(db: Database, rules: RuleSet, rec: Receiver, clock: Clock, **kw: Any) -> Dispatcher:
    env = {"GENERIC_HOOK": f"{rec.base}/generic/{TOKEN}", "SLACK_HOOK": f"{rec.base}/services/{TOKEN}",
           "TEAMS_HOOK": f"{rec.base}/teams/{TOKEN}?sig={TOKEN}"}
    return Dispatcher(db, rules.channels, clock, resolver=CredentialResolver(environ=env), **kw)


def rows(db: Database) -> list[Notification]:
    with db.session() as s:
        return list(s.scalars(select(Notification).order_by(Notification.id)))


async def test_generic_slack_and_teams_payloads_reach_a_real_receiver(db: Database, receiver: Receiver) -> None:
    clock = Clock()
    rules = ruleset("generic, slack, teams", when='firmware != "10.1.0"')
    engine = AlertEngine(db, rules, clock)
    hostile = "<!channel> *bold* [click](https://evil.example) \x1b[31m" + "x" * 3000
    [alert] = engine.evaluate([view("online", firmware=hostile)]).opened
    disp = dispatcher(db, rules, receiver, clock)
    assert await disp.send_due() == 3
    by_path = {h["path"].split("/")[1]: h for h in receiver.hits}
    assert all(h["type"] == "application/json" for h in receiver.hits)

    generic = by_path["generic"]["json"]
    assert generic["event"] == "opened" and generic["version"] == 1
    a = generic["alert"]
    assert (a["id"], a["rule"], a["device"], a["site"], a["severity"], a["state"]) == (
        alert.id, "device-offline", "hq-101", "hq", "critical", "open")
    assert a["opened"] == clock.now and a["opened_iso"].endswith("Z") and a["resolved"] is None
    assert a["value"].startswith("<!channel>") and "\x1b" not in a["value"] and len(a["value"]) <= 200

    slack = by_path["services"]["json"]
    assert isinstance(slack["text"], str) and "&lt;!channel&gt;" in slack["text"] and "<!channel>" not in slack["text"]
    assert [b["type"] for b in slack["blocks"]] == ["header", "section", "section"]
    assert slack["blocks"][0]["text"] == {"type": "plain_text", "text": "[CRITICAL] device-offline on hq-101"}
    assert all(f["type"] == "plain_text" for f in slack["blocks"][2]["fields"])
    assert "\x1b" not in json.dumps(slack, ensure_ascii=False)

    teams = by_path["teams"]["json"]
    assert teams["type"] == "message"
    [attachment] = teams["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["body"][0]["type"] == "TextBlock"
    assert card["body"][0]["color"] == "Attention"
    text = card["body"][1]["text"]
    assert r"\*bold\*" in text and r"\[click\]\(https://evil.example\)" in text
    facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
    assert facts["Device"] == "hq-101" and facts["Severity"] == "critical"

    assert [(r.state, r.attempts, r.sent_at) for r in rows(db)] == [("sent", 1, clock.now)] * 3
    assert await disp.send_due() == 0  # sent once
    clock.now += 60
    engine.evaluate([view("online", firmware="10.1.0")])
    assert await disp.send_due() == 3
    resolved = [h["json"] for h in receiver.hits[3:]]
    assert next(j for j in resolved if "version" in j)["alert"]["state"] == "resolved"
    assert next(j for j in resolved if "blocks" in j)["blocks"][0]["text"]["text"].startswith("[RESOLVED]")
    await disp.close()


async def test_a_failing_receiver_is_retried_with_backoff_until_it_succeeds(db: Database,
                                                                            receiver: Receiver) -> None:
    clock = Clock()
    rules = ruleset("generic")
    AlertEngine(db, rules, clock).evaluate([view()])
    receiver.statuses = [500, 503, 429]
    disp = dispatcher(db, rules, receiver, clock, base_delay=30, max_delay=3600)
    start = clock.now
    assert await disp.send_due() == 1
    [row] = rows(db)
    assert (row.state, row.attempts, row.next_attempt) == ("pending", 1, start + 30)
    assert row.last_error is not None and row.last_error.startswith("HTTP 500")
    assert await disp.send_due() == 0  # not due yet: nothing sent early
    clock.now = start + 30
    assert await disp.send_due() == 1
    [row] = rows(db)
    assert (row.attempts, row.next_attempt) == (2, start + 30 + 60)
    clock.now = start + 90
    await disp.send_due()
    [row] = rows(db)
    assert (row.attempts, row.next_attempt, row.last_error[:8]) == (3, start + 90 + 120, "HTTP 429")
    clock.now = start + 210
    await disp.send_due()
    [row] = rows(db)
    assert (row.state, row.attempts, row.sent_at) == ("sent", 4, start + 210)
    assert row.last_error is not None and "429" in row.last_error  # the history stays readable
    assert len(receiver.hits) == 4
    await disp.close()


async def test_retry_after_is_honoured_but_capped(db: Database, receiver: Receiver) -> None:
    disp = Dispatcher(db, {}, Clock(), base_delay=30, max_delay=600)
    assert [disp.backoff(n) for n in (1, 2, 3, 5, 9)] == [30, 60, 120, 480, 600]
    assert disp.backoff(1, retry_after=90) == 90 and disp.backoff(1, retry_after=10**9) == 600



async def test_a_dead_receiver_ends_failed_and_the_alert_is_untouched(db: Database, receiver: Receiver,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    rules = ruleset("generic")
    [alert] = AlertEngine(db, rules, clock).evaluate([view()]).opened
    disp = Dispatcher(db, rules.channels, clock, max_attempts=4, base_delay=30, resolver=CredentialResolver(
        environ={"GENERIC_HOOK": f"http://127.0.0.1:{_dead_port()}/generic/{TOKEN}"}))
    caplog.set_level(logging.DEBUG)
    for _ in range(10):
        await disp.send_due()
        clock.now += 3600
    [row] = rows(db)
    assert (row.state, row.attempts) == ("failed", 4)
    assert row.last_error and "ClientConnector" in row.last_error
    with db.session() as s:
        kept = s.get(Alert, alert.id)
        assert kept is not None and (kept.state, kept.message) == ("open", alert.message)
    assert "failed for good after 4 attempt(s)" in caplog.text
    assert TOKEN not in caplog.text
    await disp.close()


async def test_a_refusal_is_not_retried_and_redirects_are_not_followed(db: Database, receiver: Receiver) -> None:
    clock = Clock()
    rules = ruleset("generic, slack")
    AlertEngine(db, rules, clock).evaluate([view()])
    receiver.statuses = [404, 302]
    receiver.location = "http://127.0.0.2:1/elsewhere"
    disp = dispatcher(db, rules, receiver, clock)
    await disp.send_due()
    for _ in range(3):
        clock.now += 3600
        await disp.send_due()
    assert [(r.state, r.attempts) for r in rows(db)] == [("failed", 1), ("failed", 1)]
    errors = sorted(r.last_error or "" for r in rows(db))
    assert errors[0].startswith("HTTP 302: the receiver redirects (not followed)")
    assert errors[1].startswith("HTTP 404")
    assert len(receiver.hits) == 2
    await disp.close()


async def test_a_receiver_that_never_answers_times_out(db: Database, receiver: Receiver) -> None:
    clock = Clock()
    AlertEngine(db, ruleset("generic"), clock).evaluate([view()])
    receiver.hang = asyncio.Event()
    channel = WebhookChannel("generic", "webhook", f"{receiver.base}/generic/{TOKEN}", timeout=0.2)
    disp = Dispatcher(db, {"generic": channel}, clock)
    await disp.send_due()
    [row] = rows(db)
    assert (row.state, row.attempts, row.last_error) == ("pending", 1, "no answer within 0.2s")
    await disp.close()


async def test_silence_and_removed_channels_are_honoured_at_send_time(db: Database, receiver: Receiver) -> None:
    clock = Clock()
    rules = ruleset("generic, slack")
    [alert] = AlertEngine(db, rules, clock).evaluate([view()]).opened
    # what the service uses of a server's context
    ctx = SimpleNamespace(db=db, clock=lambda: clock.now, changes=ChangeFeed())
    silence_alert(ctx, Principal(2, "bob", "operator"), alert.id, seconds=600)
    disp = dispatcher(db, rules, receiver, clock)
    await disp.send_due()
    assert [r.state for r in rows(db)] == ["silenced", "silenced"] and receiver.hits == []

    clock.now += 3600
    [again] = AlertEngine(db, rules, clock).evaluate([view("online"), ]).resolved
    assert again.id == alert.id
    disp.set_channels({k: v for k, v in rules.channels.items() if k != "slack"})
    await disp.send_due()
    states = [(r.event, r.channel, r.state, r.last_error) for r in rows(db)][2:]
    assert states == [("resolved", "generic", "sent", None),
                      ("resolved", "slack", "failed", "channel slack is not in the rules file (any more)")]
    await disp.close()


async def test_run_sends_until_cancelled(db: Database, receiver: Receiver) -> None:
    clock = Clock()
    rules = ruleset("generic")
    AlertEngine(db, rules, clock).evaluate([view()])
    naps: list[float] = []

    async def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:
            raise asyncio.CancelledError

    disp = Dispatcher(db, rules.channels, clock, sleep, interval=5, resolver=CredentialResolver(
        environ={"GENERIC_HOOK": f"{receiver.base}/generic/{TOKEN}"}))
    with pytest.raises(asyncio.CancelledError):
        await disp.run()
    assert naps == [5, 5] and len(receiver.hits) == 1 and disp._session is None


async def test_the_webhook_token_never_reaches_the_database_errors_or_logs(
        db: Database, receiver: Receiver, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    rules = ruleset("generic, slack, teams")
    AlertEngine(db, rules, clock).evaluate([view()])
    receiver.statuses = [500, 500, 500]  # each echoes the path (with the token) in its body
    disp = dispatcher(db, rules, receiver, clock, max_attempts=1)
    await disp.send_due()
    assert {h["path"].split("/")[-1].split("?")[0] for h in receiver.hits} == {TOKEN}  # it was used
    assert [r.state for r in rows(db)] == ["failed"] * 3
    assert all(r.last_error and "error at" in r.last_error and "********" in r.last_error for r in rows(db))
    dump = "\n".join(sqlite3.connect(tmp_path / "x.db").iterdump())
    assert "error at" in dump and TOKEN not in dump and "127.0.0.1:" not in dump
    assert "failed for good" in caplog.text and TOKEN not in caplog.text
    await disp.close()


async def test_passes_do_not_overlap_so_nothing_is_sent_twice(db: Database, receiver: Receiver) -> None:
    clock = Clock()
    rules = ruleset("generic, slack, teams")
    AlertEngine(db, rules, clock).evaluate([view()])
    disp = dispatcher(db, rules, receiver, clock)
    assert sorted(await asyncio.gather(disp.send_due(), disp.send_due(), disp.send_due())) == [0, 0, 3]
    assert len(receiver.hits) == 3
    await disp.close()


async def test_https_receivers_are_verified_against_the_system_or_the_channels_ca(db: Database,
                                                                                  tmp_path: Path) -> None:
    cert, key = make_certificate("127.0.0.1", "hooks.test")
    (tmp_path / "ca.pem").write_bytes(cert)
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(cert, key)).start()
    url = f"https://127.0.0.1:{runner.addresses[0][1]}/hook/{TOKEN}"
    try:
        clock = Clock()
        rules = ruleset("generic")
        AlertEngine(db, rules, clock).evaluate([view()])
        disp = Dispatcher(db, rules.channels, clock, resolver=CredentialResolver(environ={"GENERIC_HOOK": url}))
        await disp.send_due()
        [row] = rows(db)
        assert row.state == "pending" and row.last_error and "CERTIFICATE_VERIFY_FAILED" in row.last_error
        assert rec.hits == [] and TOKEN not in row.last_error
        with_ca = parse_rules("channels:\n  generic: {type: webhook, url: env:GENERIC_HOOK, ca_file: ca.pem}\n",
                              path=tmp_path / "rules.yaml")
        disp.set_channels(with_ca.channels)
        clock.now += 3600
        await disp.send_due()
        assert [r.state for r in rows(db)] == ["sent"] and len(rec.hits) == 1
        await disp.close()
    finally:
        await runner.cleanup()
