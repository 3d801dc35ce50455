"""The overview's and the site pages' roll-up rules (`avctl.server.web.rollup`): a device's health
from its state, open alerts and certificate; groups take their worst member's; firmware compliance
compares versions number by number."""

from __future__ import annotations

from typing import Any

import pytest

from avctl.server.alerts.engine import AlertInfo
from avctl.server.model import DeviceStateName, DeviceView
from avctl.server.web.rollup import (
    NO_ROOM,
    NO_SITE,
    device_health,
    firmware_compliance,
    fleet_health,
    version_key,
    worst_alerts,
)


def view(name: str, state: DeviceStateName = "online", *, site: str | None = "hq", room: str | None = "r1",
         family: str = "videoos", **readings: Any) -> DeviceView:
    return DeviceView(name=name, family=family, site=site, room=room, tags=frozenset(), address="127.0.0.1",
                      state=state, since=0.0, readings=readings)


def alert(device: str, severity: str) -> AlertInfo:
    return AlertInfo(id=1, rule="r", device=device, site="hq", severity=severity, state="open", opened=0.0,
                     resolved=None, message="m", value=None, acked_by=None, acked_at=None, silenced_until=None,
                     silenced_by=None)


@pytest.mark.parametrize(("state", "severity", "cert", "health"), [
    ("online", None, None, "ok"),
    ("online", "info", 400.0, "ok"),
    ("online", "warning", None, "warning"),
    ("online", None, 12.5, "warning"),
    ("online", None, -1.0, "warning"),
    ("online", "critical", None, "fault"),
    ("auth_failed", None, None, "fault"),
    ("error", "warning", None, "fault"),
    ("offline", "critical", 3.0, "offline"),
    ("unknown", None, None, "unknown"),
    ("disabled", None, None, "unknown"),
    ("unknown", "warning", None, "warning"),
])
def test_device_health(state: DeviceStateName, severity: str | None, cert: float | None, health: str) -> None:
    readings = {} if cert is None else {"cert_days_left": cert}
    assert device_health(view("d", state, **readings), severity).health == health


def test_reasons_name_what_is_wrong() -> None:
    reasons = device_health(view("d", "offline", cert_days_left=2.2), "critical").reasons
    assert reasons == ("offline", "open critical alert", "certificate expires in 2 days")


def test_worst_alert_per_device() -> None:
    got = worst_alerts([alert("a", "info"), alert("a", "critical"), alert("a", "warning"), alert("b", "warning")])
    assert got == {"a": "critical", "b": "warning"}


def test_sites_and_rooms_roll_up_to_their_worst_device() -> None:
    fleet = fleet_health([view("a"), view("b", "offline"), view("c", room="r2"), view("d", site=None, room=None),
                          view("e", "auth_failed", site="branch")], [alert("c", "warning")])
    assert list(fleet.sites) == ["(no site)", "branch", "hq"]
    hq = fleet.sites["hq"]
    assert (hq.tally["ok"], hq.tally["offline"], hq.tally["warning"], hq.health) == (1, 1, 1, "offline")
    assert hq.rooms["r1"].health == "offline" and hq.rooms["r2"].health == "warning"
    assert fleet.sites["branch"].health == "fault"
    assert fleet.sites[NO_SITE].rooms[NO_ROOM].names == ["d"]
    assert [d.view.name for d in fleet.attention()] == ["b", "e", "c"]
    assert fleet.tally.total == 5


def test_certificates_expiring_soonest_first() -> None:
    fleet = fleet_health([view("a", cert_days_left=20.0), view("b", cert_days_left=3.0),
                          view("c", cert_days_left=31.0), view("d")], [])
    assert [(v.name, left) for v, left in fleet.certs_expiring()] == [("b", 3.0), ("a", 20.0)]


def test_firmware_compliance_per_family_and_model() -> None:
    groups = firmware_compliance([
        view("a", firmware="4.6.10", model="X50"), view("b", firmware="4.6.9", model="X50"),
        view("c", firmware="4.6.10", model="X50"), view("d", firmware="4.7.0", model="G7500"),
        view("e", family="polyuc", firmware="6.4.3.5156", model="VVX 450"), view("f"),  # f: never reported
    ])
    by_model = {(g.family, g.model): g for g in groups}
    x50 = by_model[("videoos", "X50")]
    assert (x50.newest, x50.total, x50.current, x50.percent) == ("4.6.10", 3, 2, 67)
    assert [v.name for v in x50.behind] == ["b"]
    assert by_model[("videoos", "G7500")].percent == 100
    assert sum(g.total for g in groups) == 5


def test_version_key_compares_numbers() -> None:
    assert version_key("6.4.10") > version_key("6.4.9")
    assert version_key("UC 7.2.1-rc3") == (7, 2, 1, 3)
