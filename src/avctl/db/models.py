"""The avctl database schema: SQLAlchemy 2 typed ORM models, one per table.

One schema for everything avctl records, in one database (SQLite in ``$AVCTL_HOME/avctl.db`` by
default, PostgreSQL by URL):

- the fleet's job journal and audit log (``jobs``, ``job_devices``, ``outcomes``, ``claims``,
  ``audit``): the same tables the CLI's embedded store writes (``avctl.fleet.store``,
  ``avctl.fleet.audit``), so jobs started from the CLI and from the server show up in one place;
- what the server watches: ``device_state`` (the current state of each device), ``events`` (every
  state change), ``readings`` (numeric readings as a time series) and ``reading_rollups`` (their
  downsampled aggregates);
- alerts and their notifications (an outbox: a notification is a row before it is sent, so none is
  lost when sending fails or the process dies);
- users, browser sessions, API tokens and login attempts;
- the dashboard's saved views (a user's named filter and sort of the device table);
- configuration snapshots (``config_snapshots``: each device's full configuration, versioned);
- schedules and a record of each of their runs (``schedules``, ``schedule_runs``).

Times are UTC epoch seconds (REAL), as in the CLI's tables. JSON documents are stored as text
(portable between SQLite and PostgreSQL; always written with `json.dumps`). The migrations in
``avctl/db/migrations`` create and change these tables; a test checks that they match the models.
"""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


# --- the fleet's journal (shared with the CLI's embedded store) -------------------------------------


class Job(Base):
    __tablename__ = "jobs"
    # the server looks for running jobs every few seconds (migration 0003)
    __table_args__ = (Index("jobs_state", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created: Mapped[float] = mapped_column(Float)
    user: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    selection: Mapped[str] = mapped_column(Text)
    params: Mapped[str] = mapped_column(Text)  # JSON, secrets masked
    inventory: Mapped[str | None] = mapped_column(Text)
    options: Mapped[str] = mapped_column(Text, server_default=text("'{}'"))  # JSON
    state: Mapped[str] = mapped_column(Text)  # running | finished | interrupted
    pid: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str | None] = mapped_column(Text)
    finished: Mapped[float | None] = mapped_column(Float)


class JobDevice(Base):
    __tablename__ = "job_devices"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(Text, primary_key=True)


class OutcomeRow(Base):
    __tablename__ = "outcomes"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    device: Mapped[str] = mapped_column(Text, primary_key=True)
    family: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)  # ok | failed | unreachable | skipped
    reason: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    data: Mapped[str | None] = mapped_column(Text)  # JSON
    attempts: Mapped[int] = mapped_column(Integer)
    started: Mapped[float | None] = mapped_column(Float)
    finished: Mapped[float] = mapped_column(Float)
    requests: Mapped[int | None] = mapped_column(Integer)


class Claim(Base):
    __tablename__ = "claims"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    device: Mapped[str] = mapped_column(Text, primary_key=True)
    pid: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(Text)
    claimed: Mapped[float] = mapped_column(Float)
    #: when the task's first state-changing request was about to go out (None: nothing sent yet).
    #: A device whose process died after this has an outcome nobody knows: it is not run again
    #: on resume unless asked for (the action may have reached it)
    sent: Mapped[float | None] = mapped_column(Float)


class AuditRow(Base):
    __tablename__ = "audit"
    __table_args__ = (Index("audit_ts", "ts"), Index("audit_device", "device"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[float] = mapped_column(Float)
    user: Mapped[str] = mapped_column(Text)  # OS user (CLI) or "web:NAME" / "token:NAME" (server)
    device: Mapped[str] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    family: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    params: Mapped[str] = mapped_column(Text)  # JSON, secrets masked
    outcome: Mapped[str] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[int | None] = mapped_column(Integer)


# --- what the server watches -------------------------------------------------------------------------


class DeviceState(Base):
    """The current state of one device of the inventory (one row per device name)."""

    __tablename__ = "device_state"

    device: Mapped[str] = mapped_column(String(128), primary_key=True)
    family: Mapped[str] = mapped_column(Text)
    site: Mapped[str | None] = mapped_column(Text)
    room: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    #: unknown (not polled yet) | online | offline | auth_failed | error | disabled
    state: Mapped[str] = mapped_column(String(16))
    #: when `state` last changed
    since: Mapped[float] = mapped_column(Float)
    last_poll: Mapped[float | None] = mapped_column(Float)
    last_ok: Mapped[float | None] = mapped_column(Float)
    #: why the last poll failed (redacted, escaped when shown), None after a good poll
    error: Mapped[str | None] = mapped_column(Text)
    #: the last readings (JSON object: reading id -> value), kept when the device goes offline
    readings: Mapped[str] = mapped_column(Text, server_default=text("'{}'"))
    poll_seconds: Mapped[float | None] = mapped_column(Float)
    consecutive_failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    #: the device left the inventory (kept for its history; not polled, not listed by default)
    removed: Mapped[float | None] = mapped_column(Float)


class Event(Base):
    """One change: the device's state, or one of its non-numeric readings (firmware, in_call...)."""

    __tablename__ = "events"
    __table_args__ = (Index("events_device_ts", "device", "ts"), Index("events_ts", "ts"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[float] = mapped_column(Float)
    device: Mapped[str] = mapped_column(String(128))
    #: "state" (field is "state") or "reading" (field is the reading id)
    kind: Mapped[str] = mapped_column(String(16))
    field: Mapped[str] = mapped_column(Text)
    old: Mapped[str | None] = mapped_column(Text)  # JSON
    new: Mapped[str | None] = mapped_column(Text)  # JSON
    message: Mapped[str | None] = mapped_column(Text)


class Reading(Base):
    """One numeric reading of one poll (raw samples; kept for the raw retention, then rolled up)."""

    __tablename__ = "readings"
    __table_args__ = (Index("readings_device_metric_ts", "device", "metric", "ts"), Index("readings_ts", "ts"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device: Mapped[str] = mapped_column(String(128))
    metric: Mapped[str] = mapped_column(String(64))
    ts: Mapped[float] = mapped_column(Float)
    value: Mapped[float] = mapped_column(Float)


class ReadingRollup(Base):
    """Downsampled readings: one row per device, metric, resolution (seconds) and bucket start."""

    __tablename__ = "reading_rollups"

    device: Mapped[str] = mapped_column(String(128), primary_key=True)
    metric: Mapped[str] = mapped_column(String(64), primary_key=True)
    resolution: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[float] = mapped_column(Float, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    minimum: Mapped[float] = mapped_column(Float)
    maximum: Mapped[float] = mapped_column(Float)
    total: Mapped[float] = mapped_column(Float)  # sum: the average is total / count


# --- alerts -----------------------------------------------------------------------------------------


class Alert(Base):
    """One alert: a rule firing for one device. At most one open alert per (rule, device)."""

    __tablename__ = "alerts"
    __table_args__ = (
        # de-duplication, kept by the database: a second open alert for the same rule and device fails
        Index("alerts_one_open", "rule", "device", unique=True,
              sqlite_where=text("state = 'open'"), postgresql_where=text("state = 'open'")),
        Index("alerts_state", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(128))
    device: Mapped[str] = mapped_column(String(128))
    site: Mapped[str | None] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16))  # info | warning | critical
    state: Mapped[str] = mapped_column(String(16))  # open | resolved
    opened: Mapped[float] = mapped_column(Float)
    resolved: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    #: the value that fired it (JSON), for the message and the API
    value: Mapped[str | None] = mapped_column(Text)
    acked_by: Mapped[str | None] = mapped_column(Text)
    acked_at: Mapped[float | None] = mapped_column(Float)
    silenced_until: Mapped[float | None] = mapped_column(Float)
    silenced_by: Mapped[str | None] = mapped_column(Text)


class Notification(Base):
    """The outbox: one row per alert event per channel, written before anything is sent."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("alert_id", "event", "channel", name="notifications_once"),
        Index("notifications_due", "state", "next_attempt"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"))
    event: Mapped[str] = mapped_column(String(16))  # opened | resolved
    channel: Mapped[str] = mapped_column(String(128))  # a channel's name in the rules file
    #: pending (to send, at next_attempt) | sent | failed (gave up after the last attempt)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created: Mapped[float] = mapped_column(Float)
    next_attempt: Mapped[float] = mapped_column(Float)
    sent_at: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(Text)


# --- alerts (part 3: the alert engine) --------------------------------------------------------------


class AlertPending(Base):
    """A rule's condition holding for a device but not yet for its ``for`` time: when it began to
    hold (kept in the database so that a restart does not reset "offline for 5m")."""

    __tablename__ = "alert_pending"

    rule: Mapped[str] = mapped_column(String(128), primary_key=True)
    device: Mapped[str] = mapped_column(String(128), primary_key=True)
    since: Mapped[float] = mapped_column(Float)


# --- users and access -------------------------------------------------------------------------------


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)  # argon2id
    role: Mapped[str] = mapped_column(String(16))  # admin | operator | helpdesk | viewer
    #: JSON list of site names the user is limited to; "[]" = every site
    sites: Mapped[str] = mapped_column(Text, server_default=text("'[]'"))
    created: Mapped[float] = mapped_column(Float)
    disabled: Mapped[bool] = mapped_column(server_default=text("false"))


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: sha256 of the token (tokens are 256 random bits: a slow hash adds nothing); shown once
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: the token's first characters, to tell tokens apart in lists
    prefix: Mapped[str] = mapped_column(String(16))
    created: Mapped[float] = mapped_column(Float)
    expires: Mapped[float | None] = mapped_column(Float)
    last_used: Mapped[float | None] = mapped_column(Float)
    revoked: Mapped[float | None] = mapped_column(Float)


class WebSession(Base):
    __tablename__ = "web_sessions"

    #: sha256 of the session cookie's value (a stolen database holds no usable session)
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created: Mapped[float] = mapped_column(Float)
    expires: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)


class LoginAttempt(Base):
    """Failed logins, for the rate limit (kept in the database: a restart does not reset it)."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("login_attempts_key_ts", "key", "ts"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: "user:NAME" or "ip:ADDRESS"
    key: Mapped[str] = mapped_column(String(200))
    ts: Mapped[float] = mapped_column(Float)


# --- the dashboard ----------------------------------------------------------------------------------


class SavedView(Base):
    """A user's named view of the device table: its selection, state filter and sort. Removed with
    the user (the database cascades: users.remove knows nothing of views)."""

    __tablename__ = "saved_views"
    __table_args__ = (UniqueConstraint("user_id", "name", name="saved_views_user_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    #: the CLI's selection syntax ("" = every device)
    selection: Mapped[str] = mapped_column(Text)
    #: a device state, or None for every state
    state: Mapped[str | None] = mapped_column(String(16))
    #: a sort key of the device list, "-" in front for descending
    sort: Mapped[str] = mapped_column(String(32))
    created: Mapped[float] = mapped_column(Float)


# --- configuration management (issue 12) -----------------------------------------------------------


class ConfigSnapshot(Base):
    """One device's full configuration at one time (`avctl.config.store`). A secret's value is never
    here: its key holds `avctl.config.model.SECRET_MARKER` and is listed in ``secrets``. Rows of one
    device are deduplicated: reading the configuration of the newest row again only moves its
    ``confirmed_at``."""

    __tablename__ = "config_snapshots"
    # a device's history and its newest snapshot (every save looks it up)
    __table_args__ = (Index("config_snapshots_device_id", "device", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device: Mapped[str] = mapped_column(String(128))
    family: Mapped[str] = mapped_column(String(64))
    taken_at: Mapped[float] = mapped_column(Float)
    confirmed_at: Mapped[float] = mapped_column(Float)
    #: sha256 (hex) of the canonical JSON of values and secrets
    digest: Mapped[str] = mapped_column(String(64))
    values: Mapped[str] = mapped_column(Text)  # JSON object: key -> value
    secrets: Mapped[str] = mapped_column(Text)  # JSON list of keys
    #: backup | pre-apply | pre-restore | drift
    reason: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[int | None] = mapped_column(Integer)
    notes: Mapped[str] = mapped_column(Text)  # JSON list of strings


# --- schedules (issue 13) ------------------------------------------------------------------------------


class Schedule(Base):
    """A command run on a cron expression (`avctl.schedule`). ``argv`` never holds a secret value
    (``avctl schedule add`` refuses one): secrets are references (``@env:``, ``@file:``, the secrets file)."""

    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    cron: Mapped[str] = mapped_column(String(128))
    #: the zone of devices without a site time zone (IANA name)
    timezone: Mapped[str] = mapped_column(String(64))
    grace: Mapped[float] = mapped_column(Float)
    argv: Mapped[str] = mapped_column(Text)  # JSON list: the avctl arguments
    cwd: Mapped[str] = mapped_column(Text)
    #: the command's inventory (absolute) and selection expressions (JSON list), for its time zones
    inventory: Mapped[str | None] = mapped_column(Text)
    selection: Mapped[str] = mapped_column(Text)
    disruptive: Mapped[int] = mapped_column(Integer)
    paused: Mapped[int] = mapped_column(Integer)
    created: Mapped[float] = mapped_column(Float)
    #: due instants after this one are evaluated (its creation, then each resume: no back-fill)
    evaluated_from: Mapped[float] = mapped_column(Float)
    user: Mapped[str] = mapped_column(Text)
    #: who fires it: "local" (run-due, the server's loop) or "temporal" (Temporal Schedules)
    engine: Mapped[str] = mapped_column(String(16), server_default="local")
    #: a Temporal schedule its site workers run themselves during a WAN outage (docs/temporal.md)
    site_critical: Mapped[int] = mapped_column(Integer, server_default="0")


class ScheduleRun(Base):
    """One due instant of a schedule in one time zone. The unique key makes a second start of one run
    (two scheduler passes at once) fail in the database."""

    __tablename__ = "schedule_runs"
    __table_args__ = (UniqueConstraint("schedule_id", "zone", "due", name="schedule_runs_once"),
                      Index("schedule_runs_state", "state"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id"))
    zone: Mapped[str] = mapped_column(String(64))
    due: Mapped[float] = mapped_column(Float)  # UTC epoch seconds
    #: cron | manual (run-now)
    trigger: Mapped[str] = mapped_column(String(16))
    #: JSON list of the site names this run is limited to (null: no limit)
    sites: Mapped[str | None] = mapped_column(Text)
    #: running | ok | failed | skipped | missed
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    started: Mapped[float | None] = mapped_column(Float)
    finished: Mapped[float | None] = mapped_column(Float)
    job_id: Mapped[int | None] = mapped_column(Integer)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    #: the command's process and the scheduler's (the run is live while either is)
    pid: Mapped[int | None] = mapped_column(Integer)
    scheduler_pid: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str | None] = mapped_column(Text)
    #: the last 64 KiB of its output, secrets masked
    output: Mapped[str | None] = mapped_column(Text)
