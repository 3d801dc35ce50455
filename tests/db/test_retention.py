"""Retention and downsampling on SQLite and a real PostgreSQL, with an injected `now`: complete buckets
are rolled up once (a second run counts nothing twice), raw readings, rollups, events, failed logins and
expired sessions go at their retention, and `history` picks raw points or the fitting rollups."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, insert, select

from avctl.db import Database, open_database
from avctl.db import models as m
from avctl.db.retention import Retention, history, rollup_and_prune

T0 = 3600.0 * 300  # an hour boundary
HOUR = 3600.0
RET = Retention(raw_seconds=2 * HOUR, rollups=((300, 86400.0), (3600, 10 * 86400.0)), events_seconds=86400.0)


@pytest.fixture
def db(any_db_url: str) -> Iterator[Database]:
    database = open_database(any_db_url)
    with database.session() as s:  # one reading a minute for three hours, value = minute number
        s.execute(insert(m.Reading), [{"device": "room-1", "metric": "temp", "ts": T0 + 60 * i, "value": float(i)}
                                      for i in range(180)])
        s.execute(insert(m.Reading), [{"device": "room-2", "metric": "temp", "ts": T0 + 60 * i, "value": 1.0}
                                      for i in range(180)])
    yield database
    database.close()


def rollups(db: Database, resolution: int, device: str = "room-1") -> list[tuple[float, int, float, float, float]]:
    c = m.ReadingRollup
    with db.session() as s:
        rows = s.execute(select(c.bucket, c.count, c.minimum, c.maximum, c.total).where(
            c.resolution == resolution, c.device == device).order_by(c.bucket)).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def raw_count(db: Database) -> int:
    with db.session() as s:
        return int(s.execute(select(func.count()).select_from(m.Reading)).scalar_one())


def test_complete_buckets_rolled_up_once_and_old_raw_readings_deleted(db: Database) -> None:
    now = T0 + 3 * HOUR + 120
    done = rollup_and_prune(db, now, RET)
    five = rollups(db, 300)
    assert len(five) == 36 and all(count == 5 for _b, count, *_ in five)
    assert five[0] == (T0, 5, 0.0, 4.0, 10.0)
    assert sum(total for *_x, total in five) == sum(range(180))
    hour = rollups(db, 3600)
    assert [(b, count, lo, hi) for b, count, lo, hi, _t in hour] == [
        (T0, 60, 0.0, 59.0), (T0 + HOUR, 60, 60.0, 119.0), (T0 + 2 * HOUR, 60, 120.0, 179.0)]
    assert done.buckets == {300: 72, 3600: 6}  # two devices
    # raw readings older than two hours are gone (both devices), the rest stay
    assert done.readings == 2 * 62 and raw_count(db) == 2 * (180 - 62)

    # again, at the same time and a little later: nothing counted twice, nothing lost
    for later in (now, now + 300, now + 1800):
        rollup_and_prune(db, later, RET)
        assert rollups(db, 300) == five and rollups(db, 3600) == hour


def test_a_bucket_still_filling_waits_and_a_late_reading_lands(db: Database) -> None:
    now = T0 + 3 * HOUR + 30  # the bucket ending at 3 h ended only 30 s ago: not settled yet
    rollup_and_prune(db, now, RET)
    assert rollups(db, 300)[-1][0] == T0 + 3 * HOUR - 600
    with db.session() as s:  # written a moment late, for the bucket that had not settled
        s.execute(insert(m.Reading).values(device="room-1", metric="temp", ts=T0 + 3 * HOUR - 1, value=1000.0))
    rollup_and_prune(db, now + 60, RET)
    last = rollups(db, 300)[-1]
    assert last[0] == T0 + 3 * HOUR - 300 and last[1] == 6 and last[3] == 1000.0


def test_rollups_events_logins_and_sessions_pruned_at_their_retention(db: Database) -> None:
    rollup_and_prune(db, T0 + 3 * HOUR + 120, RET)
    now = T0 + 5 * 86400
    with db.session() as s:
        s.execute(insert(m.Event), [{"ts": ts, "device": "room-1", "kind": "state", "field": "state",
                                     "new": '"online"'} for ts in (now - 2 * 86400, now - 3600)])
        s.execute(insert(m.LoginAttempt), [{"key": "user:bob", "ts": ts} for ts in (now - 2 * 86400, now - 60)])
        user = s.execute(insert(m.User).values(name="bob", password_hash="x", role="viewer", created=0)
                         .returning(m.User.id)).scalar_one()
        s.execute(insert(m.WebSession), [{"id_hash": h, "user_id": user, "csrf_token": "c", "created": 0,
                                          "expires": exp, "last_seen": 0}
                                         for h, exp in (("old", now - 1), ("live", now + 600))])
    done = rollup_and_prune(db, now, RET)
    assert raw_count(db) == 0
    assert rollups(db, 300) == [] and len(rollups(db, 3600)) == 3  # 5-minute buckets kept 1 day, hourly 10
    assert (done.events, done.login_attempts, done.web_sessions) == (1, 1, 1)
    with db.session() as s:
        assert s.execute(select(m.Event.ts)).scalars().all() == [now - 3600]
        assert s.execute(select(m.LoginAttempt.ts)).scalars().all() == [now - 60]
        assert s.execute(select(m.WebSession.id_hash)).scalars().all() == ["live"]


def test_history_raw_within_raw_retention_else_the_fitting_rollups(db: Database) -> None:
    now = T0 + 3 * HOUR + 120
    rollup_and_prune(db, now, RET)
    width, points = history(db, "room-1", "temp", T0 + 2 * HOUR, now, now=now, retention=RET)
    assert width == 0 and [p.value for p in points] == [float(i) for i in range(120, 180)]
    # too many raw points for the caller: raw readings aggregated into the finest fitting width
    width, points = history(db, "room-1", "temp", T0 + 2 * HOUR, now, now=now, max_points=10, retention=RET)
    assert width == 3600 and [(p.ts, p.count, p.value) for p in points] == [(T0 + 2 * HOUR, 60, 149.5)]
    # beyond the raw retention: rollups, the finest resolution that fits
    width, points = history(db, "room-1", "temp", T0, now, now=now, retention=RET)
    assert width == 300 and len(points) == 36 and points[0].value == 2.0 and points[0].maximum == 4.0
    width, points = history(db, "room-1", "temp", T0, now, now=now, max_points=5, retention=RET)
    assert width == 3600 and [p.count for p in points] == [60, 60, 60]
    # readings newer than the rollups' watermark come from the raw table, aggregated alike
    with db.session() as s:
        s.execute(insert(m.Reading).values(device="room-1", metric="temp", ts=T0 + 3 * HOUR + 10, value=7.0))
    width, points = history(db, "room-1", "temp", T0, now + 60, now=now, retention=RET)
    assert width == 300 and len(points) == 37 and (points[-1].ts, points[-1].value) == (T0 + 3 * HOUR, 7.0)
