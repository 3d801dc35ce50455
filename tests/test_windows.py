"""Maintenance windows: the grammar, wall-clock times across daylight-saving changes, and the
inventory keys (``timezone:``, ``window:``, ``firmware:``) with file:line errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from avctl.fleet.inventory import InventoryError, parse_inventory
from avctl.fleet.windows import WindowError, local_instant, parse_window, zone

BERLIN = zone("Europe/Berlin")
NEW_YORK = zone("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_spans_days_and_midnight() -> None:
    w = parse_window("Mon-Fri 01:00-04:00, Sat,Sun 00:00-06:00")
    assert [str(s) for s in w.spans] == ["Mon,Tue,Wed,Thu,Fri 01:00-04:00", "Sat,Sun 00:00-06:00"]
    # Wednesday 2027-03-03 01:30 UTC = 02:30 CET: open until 04:00 CET
    assert w.closes_at(utc(2027, 3, 3, 1, 30), BERLIN) == utc(2027, 3, 3, 3, 0)
    # Wednesday 12:00: closed; the next opens Thursday 01:00 CET
    assert w.closes_at(utc(2027, 3, 3, 11, 0), BERLIN) is None
    assert w.next_open(utc(2027, 3, 3, 11, 0), BERLIN) == (utc(2027, 3, 4, 0, 0), utc(2027, 3, 4, 3, 0))
    night = parse_window("Fri 22:00-02:00")  # belongs to Friday, ends Saturday
    assert night.next_open(utc(2027, 3, 1, 12, 0), BERLIN) == (utc(2027, 3, 5, 21, 0), utc(2027, 3, 6, 1, 0))
    wraps = parse_window("Fri-Mon 03:00-04:00")
    assert {d for s in wraps.spans for d in s.days} == {4, 5, 6, 0}
    assert parse_window(["Mon 01:00-02:00", "Tue 01:00-02:00"]).text == "Mon 01:00-02:00, Tue 01:00-02:00"


def test_windows_keep_wall_clock_time_across_daylight_saving() -> None:
    w = parse_window("daily 01:00-04:00")
    # Berlin springs forward on Sunday 2027-03-28 at 02:00: the window lasts two hours that night
    assert w.next_open(utc(2027, 3, 27, 12, 0), BERLIN) == (utc(2027, 3, 28, 0, 0), utc(2027, 3, 28, 2, 0))
    # ... and four on the night it falls back (Sunday 2027-10-31)
    assert w.next_open(utc(2027, 10, 30, 12, 0), BERLIN) == (utc(2027, 10, 30, 23, 0), utc(2027, 10, 31, 3, 0))
    # New York changes two weeks earlier (2027-03-14): the same text, its own zone's clock
    assert w.next_open(utc(2027, 3, 13, 12, 0), NEW_YORK) == (utc(2027, 3, 14, 6, 0), utc(2027, 3, 14, 8, 0))


def test_a_time_the_clocks_skip_is_the_instant_they_jump() -> None:
    assert local_instant(date(2027, 3, 28), time(2, 30), BERLIN) == utc(2027, 3, 28, 1, 0)  # 03:00 CEST
    assert local_instant(date(2027, 3, 14), time(2, 30), NEW_YORK) == utc(2027, 3, 14, 7, 0)  # 03:00 EDT
    # a time that happens twice is its first occurrence (02:30 CEST, not 02:30 CET)
    assert local_instant(date(2027, 10, 31), time(2, 30), BERLIN) == utc(2027, 10, 31, 0, 30)


@pytest.mark.parametrize(("text", "message"), [
    ("Funday 01:00-02:00", "'Funday' is not a day"),
    ("Mon 25:00-26:00", "'25:00' is not a time of day"),
    ("Mon 01:00-01:00", "starts and ends at the same time"),
    ("Mon", "days Mon without a time"),
    ("01:00 to 02:00", "is not a window span"),
    ("", "the window is empty"),
])
def test_bad_windows_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(WindowError, match=message):
        parse_window(text)


def test_a_whole_day_is_allowed() -> None:
    w = parse_window("Sat 00:00-24:00")
    assert w.next_open(utc(2027, 3, 5, 12, 0), BERLIN) == (utc(2027, 3, 5, 23, 0), utc(2027, 3, 6, 23, 0))


def test_the_inventory_keys() -> None:
    inv = parse_inventory(
        'firmware:\n  videoos: {"Studio X30": "4.6.2", "*": "4.5.0"}\n'
        "defaults: {family: videoos}\n"
        "sites:\n"
        "  hq:\n    timezone: Europe/Berlin\n    window: Mon-Fri 01:00-04:00\n"
        '    firmware: {videoos: {"G7500": "4.6.1", "*": "4.6.0"}}\n'
        "devices:\n  a: {address: 10.0.0.1, site: hq}\n  b: {address: 10.0.0.2}\n")
    a, b = inv.devices
    assert (a.timezone, str(a.window)) == ("Europe/Berlin", "Mon-Fri 01:00-04:00")
    assert dict(a.firmware) == {"Studio X30": "4.6.2", "*": "4.6.0", "G7500": "4.6.1"}  # the site wins per model
    assert (b.timezone, b.window, dict(b.firmware)) == (None, None, {"Studio X30": "4.6.2", "*": "4.5.0"})
    assert a.summary()["window"] == "Mon-Fri 01:00-04:00"


@pytest.mark.parametrize(("site", "line", "message"), [
    ("timezone: Mars/Olympus", 4, "unknown time zone 'Mars/Olympus'"),
    ("timezone: Europe/Berlin\n    window: Mon 9-5", 5, "is not a window span"),
    ("window: Mon 01:00-02:00", 6, "its site has a maintenance window but no timezone"),
    ("firmware: {VideoOS: {x: '1'}}", 4, "'VideoOS' is not a family name"),
    ("firmware: {videoos: {x: true}}", 4, "must be a version"),
])
def test_bad_site_keys_name_file_and_line(site: str, line: int, message: str) -> None:
    text = f"defaults: {{family: videoos}}\nsites:\n  hq:\n    {site}\ndevices:\n  a: {{address: 10.0.0.1, site: hq}}\n"
    with pytest.raises(InventoryError, match=message) as info:
        parse_inventory(text, file="inv.yaml")
    assert str(info.value).startswith(f"inv.yaml:{line}:")
