"""One device's poller: keeps one `Device` (and so its session) alive and turns a poll into an
`Observation`.

Like Home Assistant's update coordinator: the coordinator owns the connection state of its device
between polls. A session that expires costs one re-login (the device's auth flow does it); a
rejected login ends polling of this device (``auth_failed``) until the engine replaces the
coordinator because the inventory entry or the secret behind it changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from avctl.auth import Credentials
from avctl.capabilities import read_status
from avctl.device import Device
from avctl.errors import AuthenticationError, AvctlError, DeviceError, TLSError
from avctl.fleet.inventory import DeviceEntry
from avctl.fleet.results import classify
from avctl.redact import shown
from avctl.retry import RetryPolicy
from avctl.server.model import Observation
from avctl.server.poll.health import CertificateExpiry, readings_of, tiers
from avctl.server.poll.schedule import PollSettings
from avctl.spec import Spec
from avctl.transport.http import Transport

#: the longest error text an observation carries
MAX_ERROR_CHARS = 300
#: one request per query, shared by every device: the next poll is the retry (a device's own retry
#: policy would multiply the load of a struggling device)
ONE_TRY = RetryPolicy()


def one_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """An error as one redacted line of at most `limit` characters (a device's text is hostile)."""
    flat = " ".join(shown(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def secret_digest(secret: str | None) -> str | None:
    """What the engine compares to see a changed secret (never the secret itself)."""
    return None if secret is None else hashlib.sha256(secret.encode()).hexdigest()


class PollTransport(Transport, Protocol):
    """What polling needs of a transport: requests, and the certificate each endpoint presented."""

    def peer_certificate(self, host: str, port: int) -> bytes | None: ...


class Coordinator:
    """Polls one device. Not thread-safe; one poll at a time (the engine sees to it)."""

    def __init__(self, entry: DeviceEntry, spec: Spec, credentials: Credentials, *,
                 transport: PollTransport, settings: PollSettings, clock: Callable[[], float],
                 sleep: Callable[[float], Awaitable[None]]) -> None:
        self.entry = entry
        self.spec = spec
        self.settings = settings
        self._credentials = credentials
        self._transport = transport
        self._clock = clock
        self._sleep = sleep
        self._device: Device | None = None
        self._cert = CertificateExpiry()
        #: the spec's queries by how often they run (`Feedback.poll`); none slow when every poll would
        #: read the slow ones anyway
        self._tiers = tiers(spec) if settings.slow_interval > settings.interval_for(entry.family) else None
        #: what the slow queries read last, reported by the polls between
        self._slow: dict[str, Any] = {}
        #: when the slow queries run again (the engine's clock; None: on the next poll)
        self._slow_at: float | None = None
        #: the uptime the last poll read (a lower one is a reboot: everything is read again)
        self._uptime: float | None = None
        #: when the next poll is due (the engine's clock); None: not scheduled (auth_failed)
        self.due: float | None = None
        #: when the last poll started (a replacement coordinator keeps the family's floor from it)
        self.last_start: float | None = None
        #: unreachable polls in a row (the backoff)
        self.failures = 0
        self.auth_failed = False
        self.polling = False

    @property
    def secret(self) -> str | None:
        return secret_digest(self._credentials.password)

    def _make_device(self) -> Device:
        return Device(self.spec, self.entry.host, port=self.entry.port, scheme=self.entry.scheme,
                      credentials=self._credentials, transport=self._transport,
                      timeout=min(self.settings.request_timeout, self.settings.poll_timeout),
                      name=self.entry.name, ports=self.entry.ports, schemes=self.entry.schemes,
                      allow_cleartext=self.entry.allow_cleartext, retry=ONE_TRY, sleep=self._sleep)

    async def poll(self) -> Observation:
        """One poll. Never raises (except cancellation): every failure is an observation."""
        started = self._clock()
        t0 = time.monotonic()
        self.last_start = started
        try:
            async with asyncio.timeout(self.settings.poll_timeout):
                readings = await self._read()
        except AuthenticationError as exc:
            self.auth_failed = True
            await self.close()  # nothing more will be sent to this device until its entry changes
            return self._observation("auth_failed", started, t0, error=str(exc))
        except TimeoutError:
            return self._observation("offline", started, t0,
                                     error=f"no answer within the poll timeout of {self.settings.poll_timeout:g} s")
        except AvctlError as exc:
            status, _kind = classify(exc)
            state = "offline" if status == "unreachable" or isinstance(exc, TLSError) else "error"
            return self._observation(state, started, t0, error=str(exc) or type(exc).__name__)
        except Exception as exc:  # a device's odd answer must never end the engine
            return self._observation("error", started, t0, error=f"internal error: {type(exc).__name__}: {exc}")
        return self._observation("online", started, t0, readings=readings)

    async def _read(self) -> dict[str, Any]:
        if self._device is None:
            self._device = self._make_device()
        dev = self._device
        queries = 0

        async def query(action_id: str) -> Any:
            nonlocal queries
            queries += 1
            return (await dev.call(action_id)).data

        now, sent = self._clock(), dev.sent
        fast = self._tiers.fast if self._tiers is not None else None
        if fast is None or self._slow_at is None or now >= self._slow_at:
            readings = readings_of(await read_status(self.spec, query))
            self._slow_read(readings, now)
        else:
            readings = readings_of(await read_status(fast, query))
            # more requests than queries: it logged in again (a session that expired, a device
            # that restarted and forgot it); or its uptime went back: it rebooted. Either way a slow
            # reading may have changed meanwhile
            if dev.sent - sent > queries or self._rebooted(readings):
                readings.update(await self._read_slow(query))
                self._slow_read(readings, now)
            else:
                readings = {**self._slow, **readings}
        uptime = readings.get("uptime")
        self._uptime = float(uptime) if isinstance(uptime, int | float) and not isinstance(uptime, bool) else None
        if dev.endpoint.scheme == "https":
            der = self._transport.peer_certificate(dev.endpoint.host, dev.endpoint.port)
            readings.update(self._cert.readings(der, self._clock()))
        return readings

    def _rebooted(self, readings: dict[str, Any]) -> bool:
        uptime = readings.get("uptime")
        return (self._uptime is not None and isinstance(uptime, int | float) and not isinstance(uptime, bool)
                and uptime < self._uptime)

    async def _read_slow(self, query: Callable[[str], Awaitable[Any]]) -> dict[str, Any]:
        """The slow queries' readings; {} when the device refuses them (as a full read leaves them out)."""
        assert self._tiers is not None and self._tiers.slow is not None
        try:
            return readings_of(await read_status(self._tiers.slow, query))
        except DeviceError as exc:
            if exc.transient:
                raise
            return {}

    def _slow_read(self, readings: dict[str, Any], now: float) -> None:
        """Every reading was read now: keep the slow ones for the polls until the next slow read."""
        if self._tiers is not None:
            self._slow = {k: readings[k] for k in self._tiers.carried if k in readings}
            self._slow_at = now + self.settings.slow_interval

    def _observation(self, state: Any, started: float, t0: float, *, readings: dict[str, Any] | None = None,
                     error: str | None = None) -> Observation:
        self.failures = self.failures + 1 if state == "offline" else 0
        if state != "online":
            self._slow_at = None  # back after a failure: it may have rebooted, read everything
        return Observation(self.entry.name, started, state, readings or {},
                           error=None if error is None else one_line(error),
                           poll_seconds=round(time.monotonic() - t0, 4))

    async def close(self) -> None:
        """Log out (VideoOS sessions left open use up the device's session slots) and let go."""
        dev, self._device = self._device, None
        if dev is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(dev.close(), min(self.settings.request_timeout, 5.0))
