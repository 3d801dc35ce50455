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
from typing import Any

from avctl.auth import Credentials
from avctl.capabilities import read_status
from avctl.device import Device
from avctl.errors import AuthenticationError, AvctlError, TLSError
from avctl.fleet.inventory import DeviceEntry
from avctl.fleet.results import classify
from avctl.redact import shown
from avctl.retry import RetryPolicy
from avctl.server.model import Observation
from avctl.server.poll.health import SLOW_READINGS, CertificateExpiry, readings_of, without_slow_queries
from avctl.server.poll.schedule import PollSettings
from avctl.spec import Spec
from avctl.transport.http import HttpTransport

#: the longest error text an observation carries
MAX_ERROR_CHARS = 300


def one_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """An error as one redacted line of at most `limit` characters (a device's text is hostile)."""
    flat = " ".join(shown(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def secret_digest(secret: str | None) -> str | None:
    """What the engine compares to see a changed secret (never the secret itself)."""
    return None if secret is None else hashlib.sha256(secret.encode()).hexdigest()


class Coordinator:
    """Polls one device. Not thread-safe; one poll at a time (the engine sees to it)."""

    def __init__(self, entry: DeviceEntry, spec: Spec, credentials: Credentials, *,
                 transport: HttpTransport, settings: PollSettings, clock: Callable[[], float],
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
        #: the spec without its slow queries (None: it has none), and what they read last
        self._fast_spec = without_slow_queries(spec) if settings.health_every > 1 else None
        self._slow: dict[str, Any] = {}
        #: polls until the slow queries run again (0: on the next poll)
        self._slow_in = 0
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
        # one request per query: the next poll is the retry (a device's own retry policy would
        # multiply the load of a struggling device)
        return Device(self.spec, self.entry.host, port=self.entry.port, scheme=self.entry.scheme,
                      credentials=self._credentials, transport=self._transport,
                      timeout=min(self.settings.request_timeout, self.settings.poll_timeout),
                      name=self.entry.name, ports=dict(self.entry.ports), schemes=dict(self.entry.schemes),
                      allow_cleartext=self.entry.allow_cleartext, retry=RetryPolicy(), sleep=self._sleep)

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

        async def query(action_id: str) -> Any:
            return (await dev.call(action_id)).data

        if self._fast_spec is not None and self._slow_in > 0:
            readings = {**self._slow, **readings_of(await read_status(self._fast_spec, query))}
            self._slow_in -= 1
        else:
            readings = readings_of(await read_status(self.spec, query))
            self._slow = {k: v for k, v in readings.items() if k in SLOW_READINGS}
            self._slow_in = self.settings.health_every - 1
        if dev.endpoint.scheme == "https":
            der = self._transport.peer_certificate(dev.endpoint.host, dev.endpoint.port)
            readings.update(self._cert.readings(der, self._clock()))
        return readings

    def _observation(self, state: Any, started: float, t0: float, *, readings: dict[str, Any] | None = None,
                     error: str | None = None) -> Observation:
        self.failures = self.failures + 1 if state == "offline" else 0
        if state != "online":
            self._slow_in = 0  # back after a failure: it may have rebooted, read everything
        return Observation(self.entry.name, started, state, readings or {},
                           error=None if error is None else one_line(error),
                           poll_seconds=round(time.monotonic() - t0, 4))

    async def close(self) -> None:
        """Log out (VideoOS sessions left open use up the device's session slots) and let go."""
        dev, self._device = self._device, None
        if dev is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(dev.close(), min(self.settings.request_timeout, 5.0))
