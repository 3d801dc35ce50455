"""Sending the outbox: webhook (generic JSON, Slack, Teams) and SMTP senders, and the `Dispatcher`.

A notification is a ``notifications`` row before anything is sent (the engine writes it with the
alert change). The dispatcher sends the due rows and records each attempt on the row:

* sent (2xx, or the mail server accepted the message): state ``sent``;
* failed for a reason that may pass (connection, timeout, 5xx, 408, 429, SMTP 4xx, a secret that
  cannot be resolved yet): ``attempts`` + 1, ``last_error``, next attempt after an exponential
  backoff (``Retry-After`` honoured, both capped); after ``max_attempts``: state ``failed``;
* refused for good (a 4xx other than 408/429, a redirect, a rejected SMTP login or recipient, a
  channel no longer in the rules file): state ``failed`` at once: retrying cannot help, and a
  rejected login is never retried.

Rows are never deleted. A silenced alert's rows are set to ``silenced`` instead of being sent.
Errors are stored and logged redacted: never the webhook URL (it carries the token) nor the SMTP
password; channels are named instead. Redirects are never followed, every send has a timeout and
at most :data:`MAX_RESPONSE_BYTES` of an answer is read.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import smtplib
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy import select

from avctl.db import Database
from avctl.db.models import Alert, Notification
from avctl.errors import UsageError
from avctl.fleet.credentials import CredentialResolver
from avctl.redact import MASK, REDACTOR, Secret, printable
from avctl.server.alerts import payloads
from avctl.server.alerts.engine import AlertInfo
from avctl.server.alerts.rules import Channel, EmailChannel, WebhookChannel, check_url

log = logging.getLogger("avctl.server.alerts")

MAX_RESPONSE_BYTES = 64 * 1024
MAX_ERROR_CHARS = 300
#: rows sent per pass (the next pass takes the rest)
BATCH = 100


class SendError(Exception):
    """A send that did not succeed. ``permanent``: retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Due:
    id: int
    channel: str
    event: str
    attempts: int
    alert: AlertInfo


@dataclass(frozen=True)
class _Result:
    id: int
    error: SendError | None


def _scrub(text: str, secrets: list[str]) -> str:
    """An error text safe to store and log: known secrets masked (also the URL's path, which holds
    a Slack/Teams token, in case a library quotes only that), controls escaped, capped."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and len(secret) >= 3:
            text = text.replace(secret, MASK)
    text = printable(REDACTOR.text(text))
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _url_secrets(url: str) -> list[str]:
    parts = urlsplit(url)
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    return [url, tail] if len(tail) > 1 else [url]


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the backoff decides


@functools.lru_cache(maxsize=16)
def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """A verifying client context (the system's CAs, or `ca_file`'s); built once each: loading the
    system's CAs costs a tenth of a second."""
    return ssl.create_default_context(cafile=ca_file)


async def post_json(session: aiohttp.ClientSession, url: str, body: Any, timeout: float,
                    context: ssl.SSLContext) -> None:
    """POST a JSON body; SendError unless the answer is 2xx. Never follows a redirect."""
    try:
        async with session.post(url, json=body, allow_redirects=False, ssl=context,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            answer = await resp.content.read(MAX_RESPONSE_BYTES)
            if 200 <= resp.status < 300:
                return
            snippet = answer[:200].decode("utf-8", "replace").strip()
            detail = f"HTTP {resp.status}" + (f": {snippet}" if snippet else "")
            if 300 <= resp.status < 400:
                raise SendError(f"HTTP {resp.status}: the receiver redirects (not followed)", permanent=True)
            permanent = 400 <= resp.status < 500 and resp.status not in (408, 429)
            raise SendError(detail, permanent=permanent, retry_after=_retry_after(resp.headers.get("Retry-After")))
    except TimeoutError:
        raise SendError(f"no answer within {timeout:g}s") from None
    except aiohttp.ClientError as e:
        raise SendError(f"{type(e).__name__}: {e}") from None


def send_mail(channel: EmailChannel, password: Secret | None, msg: EmailMessage) -> None:
    """Send one message over SMTP (blocking: run it in a thread). SendError on failure."""
    context = tls_context(channel.ca_file)
    try:
        client = (smtplib.SMTP_SSL(channel.host, channel.port, timeout=channel.timeout, context=context)
                  if channel.security == "ssl" else smtplib.SMTP(channel.host, channel.port, timeout=channel.timeout))
        with client:
            client.ehlo()
            if channel.security == "starttls":
                client.starttls(context=context)
                client.ehlo()
            if channel.user is not None:
                _login(client, channel.user, password.reveal() if password is not None else "")
            client.send_message(msg)
    except smtplib.SMTPAuthenticationError as e:
        # a rejected login is never retried (mail servers lock accounts out too)
        raise SendError(f"SMTP login rejected ({e.smtp_code})", permanent=True) from None
    except smtplib.SMTPRecipientsRefused as e:
        codes = [code for code, _ in e.recipients.values()]
        raise SendError(f"SMTP recipients refused ({', '.join(map(str, codes))})",
                        permanent=all(c >= 500 for c in codes)) from None
    except smtplib.SMTPNotSupportedError as e:
        raise SendError(f"SMTP: {e}", permanent=True) from None
    except smtplib.SMTPResponseException as e:
        text = e.smtp_error.decode("utf-8", "replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
        raise SendError(f"SMTP {e.smtp_code}: {text}", permanent=e.smtp_code >= 500) from None
    except (smtplib.SMTPException, OSError) as e:
        raise SendError(f"SMTP: {type(e).__name__}: {e}") from None


def _login(client: smtplib.SMTP, user: str, password: str) -> None:
    """One login with one mechanism: `SMTP.login` would try every mechanism in turn, i.e. repeat a
    rejected password (and servers lock accounts out)."""
    if not client.has_extn("auth"):
        raise SendError("the mail server offers no login (AUTH); remove user and password", permanent=True)
    offered = client.esmtp_features["auth"].upper().split()
    mechanism = next((m for m in ("PLAIN", "LOGIN") if m in offered), None)
    if mechanism is None:
        raise SendError("the mail server offers neither PLAIN nor LOGIN authentication", permanent=True)
    client.user, client.password = user, password
    client.auth(mechanism, client.auth_plain if mechanism == "PLAIN" else client.auth_login)


class Dispatcher:
    """Sends the outbox. `run()` forever (every `interval`); `send_due()` is one pass (tests)."""

    def __init__(self, db: Database, channels: Mapping[str, Channel], clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep, *,
                 resolver: CredentialResolver | None = None, max_attempts: int = 10, base_delay: float = 30.0,
                 max_delay: float = 3600.0, interval: float = 5.0, concurrency: int = 8) -> None:
        self.db = db
        self.channels = dict(channels)
        self.clock = clock
        self.sleep = sleep
        self.resolver = resolver or CredentialResolver()
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.interval = interval
        self._limit = asyncio.Semaphore(concurrency)
        # run() and a caller's send_due() (right after an evaluation) must not take the same rows
        self._pass = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    def set_channels(self, channels: Mapping[str, Channel]) -> None:
        """Use a reloaded rules file's channels from the next pass on."""
        self.channels = dict(channels)

    async def run(self) -> None:
        """Send due rows every `interval` until cancelled; a failing pass is logged, not fatal."""
        try:
            while True:
                try:
                    await self.send_due()
                except Exception as e:  # the database may be busy or full: try again next pass
                    log.error("notification pass failed: %s", _scrub(f"{type(e).__name__}: {e}", []))
                await self.sleep(self.interval)
        finally:
            await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send_due(self) -> int:
        """Send every due row once (up to :data:`BATCH`); returns how many were attempted. Safe to
        call while `run()` runs (e.g. right after an evaluation queued rows): passes do not overlap."""
        async with self._pass:
            due = await asyncio.to_thread(self._take_due)
            results = await asyncio.gather(*(self._deliver(d) for d in due))
            await asyncio.to_thread(self._record, results)
            return len(results)

    def backoff(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds before the next attempt after `attempts` failed ones."""
        delay: float = min(self.max_delay, self.base_delay * 2.0 ** max(0, attempts - 1))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_delay))
        return delay

    def _take_due(self) -> list[_Due]:
        now = self.clock()
        due: list[_Due] = []
        with self.db.session() as s:
            rows = s.execute(select(Notification, Alert).join(Alert, Notification.alert_id == Alert.id)
                             .where(Notification.state == "pending", Notification.next_attempt <= now)
                             .order_by(Notification.next_attempt, Notification.id).limit(BATCH))
            for note, alert in rows:
                info = AlertInfo.of(alert)
                if info.silenced(now):
                    note.state = "silenced"
                elif note.channel not in self.channels:
                    note.state = "failed"
                    note.last_error = f"channel {note.channel} is not in the rules file (any more)"
                else:
                    due.append(_Due(note.id, note.channel, note.event, note.attempts, info))
        return due

    async def _deliver(self, due: _Due) -> _Result:
        channel = self.channels.get(due.channel)
        if channel is None:  # the rules were reloaded since the row was taken: next pass decides
            return _Result(due.id, SendError(f"channel {due.channel} is not in the rules file (any more)"))
        secrets: list[str] = []
        try:
            async with self._limit:
                if isinstance(channel, WebhookChannel):
                    url = self._secret(channel.url, url=True).reveal()
                    secrets = _url_secrets(url)
                    check_url(url, channel.name, allow_http=channel.allow_http)
                    await post_json(self._client(), url, _body(channel, due), channel.timeout,
                                    tls_context(channel.ca_file))
                else:
                    password = self._secret(channel.password, url=False) if channel.password else None
                    secrets = [password.reveal()] if password is not None else []
                    msg = payloads.email(due.alert, due.event, channel.sender, channel.to)
                    await asyncio.to_thread(send_mail, channel, password, msg)
        except SendError as e:
            return _Result(due.id, SendError(_scrub(str(e), secrets), permanent=e.permanent,
                                             retry_after=e.retry_after))
        except UsageError as e:  # a secret that cannot be resolved (yet), a URL refused
            return _Result(due.id, SendError(_scrub(str(e), secrets)))
        return _Result(due.id, None)

    def _secret(self, ref: str, *, url: bool) -> Secret:
        if url and "://" in ref:  # a literal URL in the rules file: a secret all the same
            REDACTOR.add(ref)
            return Secret(ref)
        return self.resolver.resolve(ref)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # no cookies kept between receivers, no proxy from the environment
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)
        return self._session

    def _record(self, results: list[_Result]) -> None:
        if not results:
            return
        now = self.clock()
        with self.db.session() as s:
            for result in results:
                note = s.get(Notification, result.id)
                if note is None:  # pragma: no cover - rows are never deleted
                    continue
                note.attempts += 1
                if result.error is None:
                    note.state = "sent"
                    note.sent_at = now
                    continue
                note.last_error = str(result.error)
                if result.error.permanent or note.attempts >= self.max_attempts:
                    note.state = "failed"
                    log.warning("notification %d (alert %d, channel %s) failed for good after %d attempt(s): %s",
                                note.id, note.alert_id, note.channel, note.attempts, note.last_error)
                else:
                    note.next_attempt = now + self.backoff(note.attempts, result.error.retry_after)
                    log.info("notification %d (alert %d, channel %s) attempt %d failed, next in %.0fs: %s",
                             note.id, note.alert_id, note.channel, note.attempts, note.next_attempt - now,
                             note.last_error)


def _body(channel: WebhookChannel, due: _Due) -> dict[str, Any]:
    build = {"slack": payloads.slack, "teams": payloads.teams}.get(channel.type, payloads.generic)
    return build(due.alert, due.event)


__all__ = ["Dispatcher", "SendError", "post_json", "send_mail", "tls_context"]
