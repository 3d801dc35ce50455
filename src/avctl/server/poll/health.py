"""The readings a poll reports: the spec's Feedbacks, plus the health readings derived from them and
from the device's TLS certificate.

- ``sip_registered`` (boolean) from the ``sip_status`` Feedback (Poly UC: the first line's
  RegistrationStatus ``registered``; VideoOS: the first SIP server's state ``UP``); families
  without it (Solstice) do not report it.
- ``peripherals`` (count of attached peripherals that are connected or paired) from the
  ``peripheral_list`` Feedback (VideoOS); the list itself is not kept (it would be an event per poll).
- ``cert_days_left`` (days, with a fraction) and ``cert_expires`` (ISO date) of the certificate the
  device presented on its last HTTPS answer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from avctl.capabilities import Status, status_plan
from avctl.redact import printable
from avctl.server.poll.validity import not_after
from avctl.spec import Spec

#: sip_status values that mean registered (compared case-insensitively)
_REGISTERED = frozenset({"registered", "up"})
#: peripheral states that count as attached
_ATTACHED = frozenset({"CONNECTED", "PAIRED"})
#: readings derived here and not kept in their raw form
_RAW = frozenset({"peripheral_list"})
#: the readings derived from a Feedback (besides the Feedback's own, unless raw)
_DERIVED = {"sip_status": ("sip_registered",), "peripheral_list": ("peripherals",)}


#: a text reading longer than this is cut (a hostile device could send megabytes of "firmware"
#: that the server would otherwise store on every poll and serve to every client)
MAX_READING_CHARS = 256


def _kept(value: Any) -> Any:
    """A reading as the server keeps it: text made printable and capped; other scalars as they are."""
    if not isinstance(value, str):
        return value
    text = printable(value)
    return text if len(text) <= MAX_READING_CHARS else text[: MAX_READING_CHARS - 1] + "…"


def readings_of(status: Status) -> dict[str, Any]:
    """Every reading the device reported (None left out), with the derived health readings."""
    out: dict[str, Any] = {}
    for name in status.declared:
        value = status.get(name)
        if value is not None and name not in _RAW and name != "reachable":
            out[name] = _kept(value)
    sip = status.get("sip_status")
    if isinstance(sip, str):
        out["sip_registered"] = sip.strip().lower() in _REGISTERED
    peripherals = status.get("peripheral_list")
    if isinstance(peripherals, list):
        out["peripherals"] = sum(
            1 for p in peripherals
            if isinstance(p, Mapping) and p.get("deviceState") in _ATTACHED and p.get("deviceCategory") != "SYSTEM"
        )
    return out


@dataclass(frozen=True)
class Tiers:
    """A spec's status queries split by how often a poll sends them (`Feedback.poll`).

    A query runs on every poll if any of its Feedbacks is read every poll (its slow Feedbacks are then
    read with it, for free); a query whose Feedbacks are all ``poll: slow`` runs only on slow polls.
    """

    #: the spec with only the every-poll queries (None: every query is; or none is, and a poll must
    #: ask the device something, so everything is read every poll)
    fast: Spec | None
    #: the spec with only the slow queries (None when `fast` is)
    slow: Spec | None
    #: the readings only the slow queries give: carried over from the last slow poll between them
    carried: frozenset[str]


#: per spec object: its tiers (a fleet has thousands of devices and a few specs)
_TIERS: dict[int, tuple[Spec, Tiers]] = {}


def tiers(spec: Spec) -> Tiers:
    """The spec's tiers, made once per spec (the entry keeps the spec alive, so its id stays its own)."""
    known = _TIERS.get(id(spec))
    if known is not None and known[0] is spec:
        return known[1]
    made = _tiers(spec)
    if len(_TIERS) >= 64:  # specs made on the fly (tests, plugins): never a growing cache
        _TIERS.clear()
    _TIERS[id(spec)] = (spec, made)
    return made


def _tiers(spec: Spec) -> Tiers:
    plan = status_plan(spec)
    slow = {action for action, feedbacks in plan.items() if all(fb.poll == "slow" for fb in feedbacks)}
    if not slow or len(slow) == len(plan):
        return Tiers(None, None, frozenset())
    carried: set[str] = set()
    for fb in spec.feedbacks:
        if fb.action in slow:
            carried.update(_DERIVED.get(fb.id, ()))
            if fb.id not in _RAW:
                carried.add(fb.id)
    return Tiers(fast=replace(spec, feedbacks=tuple(fb for fb in spec.feedbacks if fb.action not in slow)),
                 slow=replace(spec, feedbacks=tuple(fb for fb in spec.feedbacks if fb.action in slow)),
                 carried=frozenset(carried))


class CertificateExpiry:
    """The expiry of one device's certificate, parsed once per certificate seen."""

    def __init__(self) -> None:
        self._der: bytes | None = None
        self._not_after: dt.datetime | None = None

    def readings(self, der: bytes | None, now: float) -> dict[str, Any]:
        if der is None:
            return {}
        if der != self._der:
            self._der, self._not_after = der, not_after(der)  # None: no expiry we could report
        if self._not_after is None:
            return {}
        left = (self._not_after.timestamp() - now) / 86400.0
        return {"cert_days_left": round(left, 2), "cert_expires": self._not_after.date().isoformat()}


