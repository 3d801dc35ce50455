"""E-mail notifications to a real aiosmtpd server on 127.0.0.1 (plain SMTP with AUTH on loopback):
the message arrives with its subject; a rejected login fails at once and is tried exactly once;
the SMTP password never reaches the database, the errors or the logs."""

from __future__ import annotations

import email
import email.policy
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select

from avctl.db import Database, open_database
from avctl.db.models import Notification
from avctl.emulator.certs import make_certificate, server_context
from avctl.fleet.credentials import CredentialResolver
from avctl.server.alerts.engine import AlertEngine
from avctl.server.alerts.notify import Dispatcher
from avctl.server.alerts.rules import RuleSet, parse_rules
from avctl.server.model import DeviceView
from tests.ports import free_port as _free_port

PASSWORD = "smtp-sekrit-pw-7781"


@dataclass
class MailServer:
    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login.decode(), mechanism))
        ok = data.login == b"alerts" and data.password == PASSWORD.encode()
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself



@pytest.fixture
def smtp() -> Iterator[MailServer]:
    mail = MailServer(port=_free_port())
    controller = Controller(mail, hostname="127.0.0.1", port=mail.port, authenticator=mail.authenticate,
                            auth_require_tls=False)
    controller.start()
    yield mail
    controller.stop()


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_database(str(tmp_path / "x.db"))


class Clock:
    def __init__(self) -> None:
        self.now = 3_000_000.0

    def __call__(self) -> float:
        return self.now


def ruleset(port: int) -> RuleSet:
    return parse_rules(f"""
channels:
  mail:
    type: email
    host: 127.0.0.1
    port: {port}
    user: alerts
    password: env:SMTP_PASS
    from: avctl@example.org
    to: [av-team@example.org, oncall@example.org]
    timeout: 10s
rules:
  - name: device-offline
    when: offline for 5m
    severity: critical
    notify: [mail]
""")


def view(state: str) -> DeviceView:
    return DeviceView(name="hq-101", family="videoos", site="hq", room="101", tags=frozenset(),
                      address="127.0.0.1", state=state, since=0.0)


def rows(db: Database) -> list[Notification]:
    with db.session() as s:
        return list(s.scalars(select(Notification).order_by(Notification.id)))


async def test_the_alert_arrives_by_mail(db: Database, smtp: MailServer) -> None:
    clock = Clock()
    rules = ruleset(smtp.port)
    engine = AlertEngine(db, rules, clock)
    [alert] = engine.evaluate([view("offline")]).opened
    disp = Dispatcher(db, rules.channels, clock, resolver=CredentialResolver(environ={"SMTP_PASS": PASSWORD}))
    assert await disp.send_due() == 1
    [msg] = smtp.messages
    assert msg["Subject"] == "[avctl] [CRITICAL] device-offline on hq-101"
    assert msg["From"] == "avctl@example.org"
    assert smtp.envelopes == [("avctl@example.org", ["av-team@example.org", "oncall@example.org"])]
    body = msg.get_content()
    assert alert.message in body and "Severity: critical" in body and f"Alert: #{alert.id}" in body
    assert smtp.logins == [("alerts", "PLAIN")]
    assert [(r.state, r.attempts) for r in rows(db)] == [("sent", 1)]
    clock.now += 60
    engine.evaluate([view("online")])
    await disp.send_due()
    assert smtp.messages[1]["Subject"] == "[avctl] [RESOLVED] device-offline on hq-101"


async def test_a_rejected_login_is_tried_once_and_the_password_never_shows(
        db: Database, smtp: MailServer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    rules = ruleset(smtp.port)
    AlertEngine(db, rules, clock).evaluate([view("offline")])
    wrong = "wrong-" + PASSWORD
    disp = Dispatcher(db, rules.channels, clock, resolver=CredentialResolver(environ={"SMTP_PASS": wrong}))
    for _ in range(5):
        await disp.send_due()
        clock.now += 3600
    assert len(smtp.logins) == 1 and smtp.messages == []
    [row] = rows(db)
    assert (row.state, row.attempts, row.last_error) == ("failed", 1, "SMTP login rejected (535)")
    dump = "\n".join(sqlite3.connect(tmp_path / "x.db").iterdump())
    assert PASSWORD not in dump and PASSWORD not in caplog.text
    assert "failed for good" in caplog.text


async def test_a_missing_mail_server_is_retried(db: Database) -> None:
    clock = Clock()
    rules = ruleset(_free_port())
    AlertEngine(db, rules, clock).evaluate([view("offline")])
    disp = Dispatcher(db, rules.channels, clock, base_delay=30,
                      resolver=CredentialResolver(environ={"SMTP_PASS": PASSWORD}))
    await disp.send_due()
    [row] = rows(db)
    assert (row.state, row.attempts, row.next_attempt) == ("pending", 1, clock.now + 30)
    assert row.last_error and row.last_error.startswith("SMTP: ConnectionRefusedError")


async def test_an_unresolvable_password_is_an_error_on_the_row_not_a_crash(db: Database, smtp: MailServer) -> None:
    clock = Clock()
    rules = ruleset(smtp.port)
    AlertEngine(db, rules, clock).evaluate([view("offline")])
    disp = Dispatcher(db, rules.channels, clock, resolver=CredentialResolver(environ={}))
    await disp.send_due()
    [row] = rows(db)
    assert row.state == "pending" and row.last_error and "SMTP_PASS" in row.last_error and smtp.logins == []


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Any]:
    cert, key = make_certificate("127.0.0.1", "mail.test")
    (tmp_path / "ca.pem").write_bytes(cert)
    return tmp_path / "ca.pem", server_context(cert, key)


def tls_rules(port: int, security: str, ca_file: Path | None) -> RuleSet:
    return parse_rules(f"""
channels:
  mail: {{type: email, host: 127.0.0.1, port: {port}, {security}: true, user: alerts, password: env:SMTP_PASS,
          from: avctl@example.org, to: [av@example.org]{f", ca_file: {ca_file}" if ca_file else ""}}}
rules:
  - {{name: device-offline, when: offline, notify: [mail]}}
""")


@pytest.mark.parametrize("security", ["starttls", "ssl"])
async def test_mail_over_starttls_and_ssl_verifies_the_server(db: Database, tmp_path: Path, security: str,
                                                              certificate: tuple[Path, Any]) -> None:
    ca_file, server_tls = certificate
    mail = MailServer(port=_free_port())
    # aiosmtpd offers AUTH over implicit TLS only with auth_require_tls off (it checks STARTTLS only)
    tls = {"tls_context": server_tls, "require_starttls": True, "auth_require_tls": True} \
        if security == "starttls" else {"ssl_context": server_tls, "auth_require_tls": False}
    controller = Controller(mail, hostname="127.0.0.1", port=mail.port, authenticator=mail.authenticate, **tls)
    controller.start()
    try:
        clock = Clock()
        # the system's CAs do not know this certificate: nothing is sent, no password either
        untrusted = tls_rules(mail.port, security, None)
        AlertEngine(db, untrusted, clock).evaluate([view("offline")])
        disp = Dispatcher(db, untrusted.channels, clock, resolver=CredentialResolver(environ={"SMTP_PASS": PASSWORD}))
        await disp.send_due()
        [row] = rows(db)
        assert row.state == "pending" and row.last_error and "CERTIFICATE_VERIFY_FAILED" in row.last_error
        assert mail.logins == [] and mail.messages == []
        # trusting its CA: sent, logged in over TLS
        trusted = tls_rules(mail.port, security, ca_file)
        disp.set_channels(trusted.channels)
        clock.now += 3600
        await disp.send_due()
        assert [r.state for r in rows(db)] == ["sent"]
        assert mail.logins == [("alerts", "PLAIN")] and len(mail.messages) == 1
    finally:
        controller.stop()
