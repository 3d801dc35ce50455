"""Due instants of cron expressions in a time zone (DST nights in two zones), missed and grace."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from avctl.errors import UsageError
from avctl.schedule.timing import MISSED_CAP, check_cron, decide, due_instants, host_zone, next_due

BERLIN = ZoneInfo("Europe/Berlin")  # 2026: forward Mar 29 02:00->03:00, back Oct 25 03:00->02:00
NEW_YORK = ZoneInfo("America/New_York")  # 2026: forward Mar 8 02:00->03:00, back Nov 1 02:00->01:00


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def shown(instants: list[float]) -> list[str]:
    return [datetime.fromtimestamp(i, UTC).strftime("%m-%d %H:%M") for i in instants]


def test_spring_forward_a_skipped_time_runs_once_when_the_clocks_jump() -> None:
    # 02:30 does not exist that night: it runs once, at 03:00 local, then at 02:30 again
    berlin = due_instants("30 2 * * *", BERLIN, utc(2026, 3, 27, 12), utc(2026, 3, 30, 12))
    assert shown(berlin) == ["03-28 01:30", "03-29 01:00", "03-30 00:30"]
    new_york = due_instants("30 2 * * *", NEW_YORK, utc(2026, 3, 6, 12), utc(2026, 3, 9, 12))
    assert shown(new_york) == ["03-07 07:30", "03-08 07:00", "03-09 06:30"]
    # each zone's other date is an ordinary night
    assert shown(due_instants("30 2 * * *", NEW_YORK, utc(2026, 3, 28, 12), utc(2026, 3, 29, 12))) == ["03-29 06:30"]


def test_fall_back_a_repeated_time_runs_once_at_its_first_occurrence() -> None:
    # New York repeats 01:00-02:00 on Nov 1: a 01:30 job runs at 01:30 EDT only
    new_york = due_instants("30 1 * * *", NEW_YORK, utc(2026, 10, 31, 12), utc(2026, 11, 2, 12))
    assert shown(new_york) == ["11-01 05:30", "11-02 06:30"]
    # Berlin repeats 02:00-03:00 on Oct 25: a 02:30 job runs at 02:30 CEST only; 01:30 is plain
    berlin = due_instants("30 2 * * *", BERLIN, utc(2026, 10, 24, 12), utc(2026, 10, 26, 12))
    assert shown(berlin) == ["10-25 00:30", "10-26 01:30"]
    assert shown(due_instants("30 1 * * *", BERLIN, utc(2026, 10, 24, 12), utc(2026, 10, 26, 12))) \
        == ["10-24 23:30", "10-26 00:30"]


def test_an_hourly_job_runs_in_both_repeated_hours_as_debian_cron_does() -> None:
    hourly = due_instants("0 * * * *", BERLIN, utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 2, 30))
    assert shown(hourly) == ["10-25 00:00", "10-25 01:00", "10-25 02:00"][-(MISSED_CAP + 1):]
    assert [datetime.fromtimestamp(i, BERLIN).strftime("%H:%M%z") for i in hourly] == \
        ["02:00+0200", "02:00+0100", "03:00+0100"]


def test_weekly_and_monthly_expressions_keep_local_time_across_the_change() -> None:
    mondays = due_instants("0 3 * * 1", NEW_YORK, utc(2026, 2, 28), utc(2026, 3, 17))
    assert [datetime.fromtimestamp(i, NEW_YORK).strftime("%a %d %H:%M") for i in mondays] == \
        ["Mon 02 03:00", "Mon 09 03:00", "Mon 16 03:00"]
    assert shown(mondays) == ["03-02 08:00", "03-09 07:00", "03-16 07:00"]
    assert shown(due_instants("0 4 1 * *", BERLIN, utc(2026, 2, 15), utc(2026, 3, 15))) == ["03-01 03:00"]
    assert shown(due_instants("0 4 1 * *", BERLIN, utc(2026, 3, 15), utc(2026, 4, 15))) == ["04-01 02:00"]
    # a scheduler down for months looks back HORIZON (35 days) only
    assert shown(due_instants("0 4 1 * *", BERLIN, utc(2026, 2, 15), utc(2026, 5, 15))) == ["05-01 02:00"]
    assert next_due("0 4 1 * *", BERLIN, utc(2026, 5, 1, 2)) == utc(2026, 6, 1, 2)


def test_instants_are_after_the_start_up_to_the_end_and_capped() -> None:
    start = utc(2026, 6, 1, 10)
    assert due_instants("0 * * * *", BERLIN, start, start) == []
    assert shown(due_instants("0 * * * *", BERLIN, start, start + 3600)) == ["06-01 11:00"]
    every_minute = due_instants("* * * * *", BERLIN, start, start + 86400)
    assert len(every_minute) == MISSED_CAP + 1 and every_minute[-1] == start + 86400


def test_only_the_newest_due_instant_within_the_grace_runs() -> None:
    assert decide([], 100.0, 60.0).run is None
    due = decide([10.0, 20.0, 30.0], 50.0, 60.0)
    assert due.run == 30.0 and due.missed == (10.0, 20.0)
    late = decide([10.0, 20.0, 30.0], 100.0, 60.0)
    assert late.run is None and late.missed == (10.0, 20.0, 30.0)
    assert decide([30.0], 90.0, 60.0).run == 30.0  # exactly at the end of the grace still runs


@pytest.mark.parametrize(("expr", "why"), [("0 2 * *", "five fields"), ("0 25 * * *", "Bad hour"),
                                           ("61 * * * *", "Bad minute"), ("x y z a b", "--cron")])
def test_bad_cron_expressions_are_one_clear_error(expr: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        check_cron(expr)
    assert check_cron("  0  2 * *   1-5 ") == "0 2 * * 1-5"


def test_host_zone_from_tz_else_a_known_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    assert host_zone() == "America/New_York"
    monkeypatch.setenv("TZ", "Not/AZone")
    ZoneInfo(host_zone())  # the /etc/localtime link or UTC: always a usable zone
