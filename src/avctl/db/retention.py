"""Retention and downsampling of what the server keeps, and the history query over both.

Raw numeric readings are kept for `Retention.raw_seconds`; before they go, every complete time
bucket of each rollup resolution (5 minutes, 1 hour by default) is aggregated into
``reading_rollups`` (count, min, max, total: the average is total / count), each kept for its own
retention. Events, failed-login records and expired browser sessions are pruned too.

Idempotent: each resolution has a watermark, the end of its newest stored bucket; a run aggregates
only the complete buckets after it (a bucket is complete once it ended `settle_seconds` ago, so a
reading written a moment late still lands in it), so running twice never counts a reading twice,
and a run that died half-way is one transaction that left nothing. Buckets are written with an
upsert (INSERT ... ON CONFLICT on both SQLite and PostgreSQL), so two servers running it at once
write the same rows. Raw readings are deleted only after the buckets that hold them are written,
which `Retention` guarantees by keeping raw readings longer than the coarsest bucket.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, Delete, Float, Integer, Select, cast, delete, func, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from avctl.db import models as m
from avctl.db.engine import Database

DAY = 86400.0
READINGS = m.Base.metadata.tables["readings"]
ROLLUPS = m.Base.metadata.tables["reading_rollups"]


@dataclass(frozen=True)
class Retention:
    raw_seconds: float = 7 * DAY
    #: (resolution in seconds, how long its buckets are kept), finest first
    rollups: tuple[tuple[int, float], ...] = ((300, 30 * DAY), (3600, 365 * DAY))
    events_seconds: float = 90 * DAY
    login_attempts_seconds: float = DAY
    settle_seconds: float = 60.0

    def __post_init__(self) -> None:
        resolutions = [r for r, _keep in self.rollups]
        if resolutions != sorted(resolutions) or any(r <= 0 for r in resolutions):
            raise ValueError("rollup resolutions must be positive and finest first")
        if resolutions and self.raw_seconds < resolutions[-1] + self.settle_seconds:
            raise ValueError("raw readings must be kept longer than the coarsest rollup bucket")


@dataclass
class Pruned:
    """What one `rollup_and_prune` run did (row counts), for the log and the metrics."""

    buckets: dict[int, int] = field(default_factory=dict)
    readings: int = 0
    rollups: int = 0
    events: int = 0
    login_attempts: int = 0
    web_sessions: int = 0


def _bucket(db: Database, ts: ColumnElement[float], resolution: float) -> ColumnElement[float]:
    """The start of the bucket of `ts` (timestamps are positive: truncation is the floor)."""
    if db.dialect == "sqlite":
        return cast(cast(ts / resolution, Integer) * resolution, Float)
    return func.floor(ts / resolution) * resolution


def _aggregate(db: Database, resolution: float, start: float, end: float,
               device: str | None = None, metric: str | None = None) -> Select[Any]:
    """Readings in [start, end) grouped into buckets: the columns of ``reading_rollups``, in order."""
    r = READINGS.c
    bucket = _bucket(db, r.ts, resolution).label("bucket")
    stmt = select(r.device, r.metric, literal(int(resolution)).label("resolution"), bucket,
                  func.count().label("count"), func.min(r.value).label("minimum"),
                  func.max(r.value).label("maximum"), func.sum(r.value).label("total")
                  ).where(r.ts >= start, r.ts < end)
    if device is not None:
        stmt = stmt.where(r.device == device)
    if metric is not None:
        stmt = stmt.where(r.metric == metric)
    return stmt.group_by(r.device, r.metric, bucket).order_by(bucket)


def _watermark(conn: Connection, resolution: int) -> float | None:
    """The end of the newest stored bucket of this resolution (None before the first)."""
    newest = conn.execute(select(func.max(ROLLUPS.c.bucket)).where(ROLLUPS.c.resolution == resolution)).scalar()
    return None if newest is None else float(newest) + resolution


def rollup_and_prune(db: Database, now: float, retention: Retention | None = None) -> Pruned:
    """Aggregate complete buckets, then delete what is past its retention. One transaction."""
    ret = retention or Retention()
    out = Pruned()
    insert = pg_insert if db.dialect == "postgresql" else sqlite_insert
    with db.session() as session:
        conn = session.connection()
        oldest = conn.execute(select(func.min(READINGS.c.ts))).scalar()
        for resolution, _keep in ret.rollups:
            end = math.floor((now - ret.settle_seconds) / resolution) * resolution
            start = _watermark(conn, resolution)
            if start is None:
                if oldest is None:
                    continue
                start = math.floor(float(oldest) / resolution) * resolution
            if start >= end:
                continue
            stmt = insert(ROLLUPS).from_select(
                ["device", "metric", "resolution", "bucket", "count", "minimum", "maximum", "total"],
                _aggregate(db, resolution, start, end))
            stmt = stmt.on_conflict_do_update(
                index_elements=["device", "metric", "resolution", "bucket"],
                set_={c: stmt.excluded[c] for c in ("count", "minimum", "maximum", "total")})
            # rows counted through RETURNING: psycopg reports no rowcount for INSERT ... SELECT
            out.buckets[resolution] = len(conn.execute(stmt.returning(ROLLUPS.c.bucket)).all())
        out.readings = _delete(conn, READINGS.delete().where(READINGS.c.ts < now - ret.raw_seconds))
        for resolution, keep in ret.rollups:
            out.rollups += _delete(conn, delete(ROLLUPS).where(ROLLUPS.c.resolution == resolution,
                                                                ROLLUPS.c.bucket < now - keep))
        out.events = _delete(conn, delete(m.Event).where(m.Event.ts < now - ret.events_seconds))
        out.login_attempts = _delete(conn, delete(m.LoginAttempt).where(
            m.LoginAttempt.ts < now - ret.login_attempts_seconds))
        out.web_sessions = _delete(conn, delete(m.WebSession).where(m.WebSession.expires < now))
    return out


def _delete(conn: Connection, stmt: Delete) -> int:
    return int(conn.execute(stmt).rowcount or 0)


@dataclass(frozen=True)
class Point:
    """One point of a history: a raw reading (count 1) or a bucket starting at `ts`."""

    ts: float
    value: float  # the reading, or the bucket's average
    minimum: float
    maximum: float
    count: int


def history(db: Database, device: str, metric: str, since: float, until: float, *, now: float,
            max_points: int = 500, retention: Retention | None = None) -> tuple[int, list[Point]]:
    """The readings of one device's metric in [since, until), at most about `max_points` points.

    Returns (resolution, points): resolution 0 = raw readings, else the bucket width in seconds.
    Within the raw retention, raw readings (aggregated on the fly into buckets when there are more
    than `max_points`); beyond it, the finest rollup resolution that still covers `since` and fits
    `max_points` (else the coarsest that covers it), with the part after the rollups' watermark
    aggregated from the raw readings so the newest data is not missing.
    """
    ret = retention or Retention()
    span = max(until - since, 1.0)
    r = READINGS.c
    with db.session() as session:
        conn = session.connection()
        if since >= now - ret.raw_seconds or not ret.rollups:
            n = conn.execute(select(func.count()).where(
                r.device == device, r.metric == metric, r.ts >= since, r.ts < until)).scalar_one()
            if n <= max_points:
                rows = conn.execute(select(r.ts, r.value).where(
                    r.device == device, r.metric == metric, r.ts >= since, r.ts < until).order_by(r.ts)).all()
                return 0, [Point(ts, value, value, value, 1) for ts, value in rows]
            fitting = [res for res, _keep in ret.rollups if span / res <= max_points]
            width = fitting[0] if fitting else math.ceil(span / max_points)
            return width, _raw_buckets(conn, db, device, metric, width, since, until)
        covering = [res for res, keep in ret.rollups if since >= now - keep] or [ret.rollups[-1][0]]
        fitting = [res for res in covering if span / res <= max_points]
        width = fitting[0] if fitting else covering[-1]
        watermark = _watermark(conn, width) or since
        c = ROLLUPS.c
        buckets = conn.execute(select(c.bucket, c.total, c.minimum, c.maximum, c.count).where(
            c.device == device, c.metric == metric, c.resolution == width, c.bucket >= since,
            c.bucket < min(until, watermark)).order_by(c.bucket)).all()
        points = [Point(b, total / count, lo, hi, count) for b, total, lo, hi, count in buckets]
        if until > watermark:
            points += _raw_buckets(conn, db, device, metric, width, max(since, watermark), until)
        return width, points


def _raw_buckets(conn: Connection, db: Database, device: str, metric: str, width: float, start: float,
                 end: float) -> list[Point]:
    rows = conn.execute(_aggregate(db, width, start, end, device, metric)).all()
    return [Point(float(bucket), total / count, lo, hi, count)
            for _device, _metric, _width, bucket, count, lo, hi, total in rows]

