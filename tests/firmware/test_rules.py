"""The firmware rules without devices: version comparison, baseline lookup, classification, counts."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from avctl.fleet.firmware import (
    NO_UPDATE_ACTION,
    assess,
    baseline_for,
    compare_versions,
    counts,
    parse_version,
)
from avctl.fleet.inventory import Address, DeviceEntry
from avctl.fleet.results import Outcome


@pytest.mark.parametrize(("text", "parts"), [
    ("5.5.2.12", (5, 5, 2, 12)),
    ("4.6.2-520058", (4, 6, 2, 520058)),  # VideoOS build after a dash is one more part
    ("6.4.3.5156", (6, 4, 3, 5156)),
    ("UC Software 7.2.2.1094", (7, 2, 2, 1094)),  # vendor prefix skipped
    ("v5.5 (beta)", (5, 5)),  # suffix ignored
    ("8.0.2.1234 rev A", (8, 0, 2, 1234)),
    ("10", (10,)),
    ("", None),
    ("unknown", None),
    ("9" * 13, None),  # no real version part is this long (and int() of huge text is refused)
    (".".join(["1"] * 9), None),  # nor has this many parts
])
def test_parse_version(text: str, parts: tuple[int, ...] | None) -> None:
    assert parse_version(text) == parts


@pytest.mark.parametrize(("device", "baseline", "order"), [
    ("8.0.2.1234", "8.0.2", 0),  # a build under the baseline meets it
    ("8.0.2", "8.0.2.1234", -1),  # a missing part counts as 0
    ("8.0.1.9999", "8.0.2", -1),
    ("8.0.10", "8.0.9", 1),  # numbers, not text
    ("4.6.2", "4.6.2.0", 0),
    ("4.6.2-520058", "4.6.2-510000", 1),
    ("5.5.4.2", "5.5.4", 0),
    ("4.5.0", "4.6.2", -1),
    ("5.0", "4.6.2", 1),
])
def test_compare_versions(device: str, baseline: str, order: int) -> None:
    have, want = parse_version(device), parse_version(baseline)
    assert have is not None and want is not None
    assert compare_versions(have, want) == order


BASELINE = {"VVX*": "6.0", "Studio X30": "4.6.2", "Studio X*": "4.5.0", "*": "1.0", "VVX 4*": "7.0"}


@pytest.mark.parametrize(("model", "found"), [
    ("Studio X30", ("Studio X30", "4.6.2")),
    ("StudioX30", ("Studio X30", "4.6.2")),  # what a codec reports: case, spaces, - and _ ignored
    ("studio_x30", ("Studio X30", "4.6.2")),
    ("StudioX50", ("Studio X*", "4.5.0")),  # the first glob that matches, in the inventory's order
    ("VVX 450", ("VVX*", "6.0")),  # "VVX*" comes before "VVX 4*"
    ("Trio 8800", ("*", "1.0")),
    (None, ("*", "1.0")),  # "*" means every model, also one not reported
])
def test_baseline_lookup(model: str | None, found: tuple[str, str]) -> None:
    assert baseline_for(model, BASELINE) == found


def test_exact_name_wins_over_an_earlier_glob() -> None:
    assert baseline_for("Studio X30", {"Studio*": "1", "Studio X30": "2"}) == ("Studio X30", "2")
    assert baseline_for("Trio 8800", {"VVX*": "1"}) is None
    assert baseline_for(None, {"VVX*": "1"}) is None


def entry(family: str = "videoos", firmware: dict[str, str] | None = None, site: str | None = "hq") -> DeviceEntry:
    return DeviceEntry(name="dev", family=family, address=Address("127.0.0.1"), site=site,
                       firmware=MappingProxyType(firmware or {}))


def ok(**data: Any) -> Outcome:
    return Outcome("dev", "ok", family="videoos", data={"reachable": True, **data})


UPDATE = {"firmware_update": "Install the update"}


@pytest.mark.parametrize(("outcome", "firmware", "compliance", "detail"), [
    (ok(model="StudioX30", firmware="4.6.2"), {"Studio X30": "4.6.2"}, "compliant", "same as the baseline 4.6.2"),
    (ok(model="StudioX30", firmware="4.7.0"), {"*": "4.6.2"}, "compliant", "newer than the baseline 4.6.2"),
    (ok(model="StudioX30", firmware="4.5.0-100"), {"*": "4.6.2"}, "outdated", "older than the baseline 4.6.2"),
    (Outcome("dev", "unreachable", reason="connect", message="connection refused"), {"*": "1"}, "unknown",
     "unreachable: [connect] connection refused"),
    (Outcome("dev", "unreachable", reason="unreachable", message="no route"), {"*": "1"}, "unknown",
     "unreachable: no route"),
    (Outcome("dev", "failed", reason="auth", message="login refused"), {"*": "1"}, "unknown",
     "failed: [auth] login refused"),
    (Outcome("dev", "skipped", reason="no_spec", message="no spec"), {"*": "1"}, "unknown",
     "skipped: [no_spec] no spec"),
    (None, {"*": "1"}, "unknown", "status not read"),
    (ok(model="StudioX30", firmware="4.6.2"), {}, "unknown", "no firmware baseline for videoos in the inventory"),
    (ok(model="Trio 8800", firmware="7.0"), {"VVX*": "6.0"}, "unknown", "no baseline for model Trio 8800"),
    (ok(firmware="7.0"), {"VVX*": "6.0"}, "unknown", "model not reported"),
    (ok(model="VVX 450", firmware=None), {"VVX*": "6.0"}, "unknown", "firmware not reported"),
    (ok(model="VVX 450", firmware="  "), {"VVX*": "6.0"}, "unknown", "firmware not reported"),
    (ok(model="VVX 450", unavailable={"firmware": "[http] 500"}), {"VVX*": "6.0"}, "unknown",
     "firmware not reported ([http] 500)"),
    (ok(unavailable={"model": "[timeout] no answer"}), {"VVX*": "6.0"}, "unknown",
     "model not reported ([timeout] no answer)"),
    (ok(model="VVX 450", firmware="beta"), {"VVX*": "6.0"}, "unknown", "firmware version not parseable"),
    (ok(model="VVX 450", firmware="6.1"), {"VVX*": "latest"}, "unknown",
     "baseline 'latest' for 'VVX*' is not a version"),
])
def test_assess(outcome: Outcome | None, firmware: dict[str, str], compliance: str, detail: str) -> None:
    row = assess(entry(firmware=firmware), outcome, UPDATE)
    assert (row.compliance, row.detail) == (compliance, detail)


def test_assess_keeps_what_the_device_reported_and_the_baseline_used() -> None:
    row = assess(entry(firmware={"Studio X*": "4.6.2"}), ok(model="StudioX30", firmware="4.5.0"), UPDATE)
    assert row.as_dict() == {
        "device": "dev", "family": "videoos", "site": "hq", "model": "StudioX30", "firmware": "4.5.0",
        "baseline": "4.6.2", "baseline_model": "Studio X*", "compliance": "outdated",
        "detail": "older than the baseline 4.6.2", "update": "firmware_update: Install the update", "updatable": True}


def test_update_path_per_family() -> None:
    videoos = assess(entry("videoos", {"*": "1"}), ok(model="m", firmware="0.9"), {"reboot": "Reboot"})
    assert (videoos.update, videoos.updatable) == (NO_UPDATE_ACTION["videoos"], False)
    assert "Poly Lens" in videoos.update
    other = assess(entry("acme", {"*": "1"}), ok(model="m", firmware="0.9"), None)
    assert (other.update, other.updatable) == ("no 'firmware_update' verb in the acme spec", False)


def test_counts_per_model_site_and_total() -> None:
    base = {"*": "2.0"}
    rows = [assess(entry(site="hq", firmware=base), ok(model="A", firmware="2.0"), UPDATE),
            assess(entry(site="hq", firmware=base), ok(model="A", firmware="1.0"), UPDATE),
            assess(entry(site="lab", firmware=base), ok(model="B", firmware="1.0"), UPDATE),
            assess(entry(site=None, firmware=base), None, UPDATE)]
    c = counts(rows)
    assert c["total"] == {"compliant": 1, "outdated": 2, "unknown": 1, "total": 4}
    assert c["models"] == [
        {"family": "videoos", "model": None, "compliant": 0, "outdated": 0, "unknown": 1, "total": 1},
        {"family": "videoos", "model": "A", "compliant": 1, "outdated": 1, "unknown": 0, "total": 2},
        {"family": "videoos", "model": "B", "compliant": 0, "outdated": 1, "unknown": 0, "total": 1}]
    assert c["sites"] == [
        {"site": None, "compliant": 0, "outdated": 0, "unknown": 1, "total": 1},
        {"site": "hq", "compliant": 1, "outdated": 1, "unknown": 0, "total": 2},
        {"site": "lab", "compliant": 0, "outdated": 1, "unknown": 0, "total": 1}]
