"""Fleet health as the overview and the site pages show it, from one pass over what the service
returns (the devices in scope with their readings, and the open alerts): no query per device.

A device's health is the first that applies:

- **offline**: its state is ``offline`` (it does not answer);
- **fault**: its state is ``auth_failed`` or ``error``, or it has an open *critical* alert;
- **warning**: it has an open *warning* alert, or its certificate expires within `CERT_SOON_DAYS`;
- **unknown**: not polled yet, or disabled in the inventory;
- **ok**: everything else (online, nothing open above *info*).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from avctl.server.alerts.engine import AlertInfo
from avctl.server.model import DeviceView

#: a certificate that expires within this many days is "expiring soon"
CERT_SOON_DAYS = 30.0
HEALTHS = ("ok", "warning", "fault", "offline", "unknown")
#: severities from the least to the most serious
_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
#: the families' roles in a room, in the order a room shows them
ROOM_COLUMNS = (("videoos", "Codec"), ("polyuc", "Phone"), ("solstice", "Pod"))
NO_SITE = "(no site)"
NO_ROOM = "(no room)"


def worst_alerts(alerts: Iterable[AlertInfo]) -> dict[str, str]:
    """Device name -> the most serious severity among its open alerts."""
    worst: dict[str, str] = {}
    for a in alerts:
        known = worst.get(a.device)
        if known is None or _SEVERITY_RANK.get(a.severity, 0) > _SEVERITY_RANK.get(known, 0):
            worst[a.device] = a.severity
    return worst


def cert_days_left(view: DeviceView) -> float | None:
    left = view.readings.get("cert_days_left")
    return float(left) if isinstance(left, (int, float)) and not isinstance(left, bool) else None


@dataclass(frozen=True)
class DeviceHealth:
    view: DeviceView
    health: str
    #: why it is not ok, for people ("offline", "open critical alert", "certificate expires in 3 days")
    reasons: tuple[str, ...]


def device_health(view: DeviceView, alert: str | None) -> DeviceHealth:
    """`view`'s health given the most serious severity of its open alerts (None: no open alert)."""
    reasons: list[str] = []
    if view.state in ("offline", "auth_failed", "error"):
        reasons.append(view.state.replace("_", " "))
    if alert in ("critical", "warning"):
        reasons.append(f"open {alert} alert")
    left = cert_days_left(view)
    if left is not None and left <= CERT_SOON_DAYS:
        reasons.append("certificate expired" if left < 0 else f"certificate expires in {left:.0f} days")
    if view.state == "offline":
        health = "offline"
    elif view.state in ("auth_failed", "error") or alert == "critical":
        health = "fault"
    elif reasons:
        health = "warning"
    elif view.state in ("unknown", "disabled"):
        health = "unknown"
    else:
        health = "ok"
    return DeviceHealth(view, health, tuple(reasons))


def worst(healths: Iterable[str]) -> str:
    """The health of a group: its worst member's (a room with one offline device is offline)."""
    order = ("offline", "fault", "warning", "unknown", "ok")
    seen = set(healths)
    return next((h for h in order if h in seen), "unknown")


@dataclass
class Tally:
    """Devices counted per health."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, health: str) -> None:
        self.counts[health] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __getitem__(self, health: str) -> int:
        return self.counts[health]


@dataclass(frozen=True)
class FirmwareGroup:
    """Devices of one family and model: the newest firmware seen among them, and who runs older."""

    family: str
    model: str
    newest: str
    total: int
    behind: tuple[DeviceView, ...]

    @property
    def current(self) -> int:
        return self.total - len(self.behind)

    @property
    def percent(self) -> int:
        return round(100 * self.current / self.total) if self.total else 100


def version_key(text: str) -> tuple[int, ...]:
    """``6.2.1.3-450012`` -> (6, 2, 1, 3, 450012): versions compared number by number."""
    return tuple(int(n) for n in re.findall(r"\d+", text)[:8])


def firmware_compliance(views: Iterable[DeviceView]) -> list[FirmwareGroup]:
    """Per family and model (as the devices report them), the share on the newest firmware seen;
    devices that report no firmware (never polled, offline since start) are not counted."""
    groups: dict[tuple[str, str], list[tuple[DeviceView, str]]] = {}
    for v in views:
        firmware = v.readings.get("firmware")
        if isinstance(firmware, str) and firmware:
            model = v.readings.get("model")
            groups.setdefault((v.family, model if isinstance(model, str) else "?"), []).append((v, firmware))
    out = []
    for (family, model), members in sorted(groups.items()):
        newest = max({fw for _, fw in members}, key=lambda fw: (version_key(fw), fw))
        behind = tuple(v for v, fw in sorted(members, key=lambda m: m[0].name) if fw != newest)
        out.append(FirmwareGroup(family, model, newest, len(members), behind))
    return out


@dataclass
class Room:
    site: str
    name: str
    devices: list[DeviceHealth] = field(default_factory=list)

    @property
    def health(self) -> str:
        return worst(d.health for d in self.devices)

    def column(self, family: str) -> list[DeviceHealth]:
        return [d for d in self.devices if d.view.family == family]

    @property
    def others(self) -> list[DeviceHealth]:
        """Devices of families that have no column of their own."""
        known = {f for f, _ in ROOM_COLUMNS}
        return [d for d in self.devices if d.view.family not in known]

    @property
    def names(self) -> list[str]:
        return sorted(d.view.name for d in self.devices)


@dataclass
class Site:
    name: str
    tally: Tally = field(default_factory=Tally)
    rooms: dict[str, Room] = field(default_factory=dict)

    def add(self, h: DeviceHealth) -> None:
        self.tally.add(h.health)
        name = h.view.room or NO_ROOM
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = Room(self.name, name)
        room.devices.append(h)

    @property
    def health(self) -> str:
        return worst(h for h, n in self.tally.counts.items() if n)


def site_of(view: DeviceView) -> str:
    return view.site if view.site else NO_SITE


@dataclass
class Fleet:
    """The devices in scope, each with its health, grouped by site and room."""

    devices: list[DeviceHealth]
    tally: Tally
    sites: dict[str, Site]

    def attention(self) -> list[DeviceHealth]:
        """Devices that are not ok nor merely unknown, the most serious first."""
        rank = {"offline": 0, "fault": 1, "warning": 2}
        return sorted((d for d in self.devices if d.health in rank), key=lambda d: (rank[d.health], d.view.name))

    def certs_expiring(self) -> list[tuple[DeviceView, float]]:
        """Devices whose certificate expires within CERT_SOON_DAYS, the soonest first."""
        soon = [(d.view, left) for d in self.devices
                if (left := cert_days_left(d.view)) is not None and left <= CERT_SOON_DAYS]
        return sorted(soon, key=lambda x: (x[1], x[0].name))


def fleet_health(views: Sequence[DeviceView], alerts: Iterable[AlertInfo]) -> Fleet:
    by_device = worst_alerts(alerts)
    devices = [device_health(v, by_device.get(v.name)) for v in views]
    tally = Tally()
    sites: dict[str, Site] = {}
    for h in devices:
        tally.add(h.health)
        name = site_of(h.view)
        site = sites.get(name)
        if site is None:
            site = sites[name] = Site(name)
        site.add(h)
    return Fleet(devices, tally, dict(sorted(sites.items())))


def key_readings(view: DeviceView) -> list[tuple[str, Any]]:
    """The readings a room shows for a device, those it reported."""
    shown = ("in_call", "mic_muted", "volume", "sip_registered", "firmware")
    return [(k, view.readings[k]) for k in shown if k in view.readings]
