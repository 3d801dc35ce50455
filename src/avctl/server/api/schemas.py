"""The API's request and response bodies (Pydantic), so the OpenAPI document says what each holds."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from avctl.fleet.audit import AuditEntry
from avctl.fleet.results import Outcome
from avctl.fleet.store import Job
from avctl.server.model import DeviceView
from avctl.server.service import AlertInfo, EventItem, JobDetail


class Problem(BaseModel):
    """Every error: what went wrong, and what to do about it."""

    error: str = Field(description="what went wrong, one line")
    hint: str | None = Field(None, description="what to do instead")
    param: str | None = Field(None, description="the parameter that is wrong, when one is")


class Device(BaseModel):
    name: str
    family: str
    site: str | None
    room: str | None
    tags: list[str]
    address: str
    state: str = Field(description="unknown | online | offline | auth_failed | error | disabled")
    since: float | None = Field(description="when the state last changed (UTC epoch seconds)")
    last_poll: float | None
    last_ok: float | None
    error: str | None = Field(description="why the last poll failed")
    readings: dict[str, Any] = Field(description="reading id -> value, from the last good poll")

    @classmethod
    def of(cls, v: DeviceView) -> Device:
        return cls(name=v.name, family=v.family, site=v.site, room=v.room, tags=sorted(v.tags), address=v.address,
                   state=v.state, since=v.since or None, last_poll=v.last_poll, last_ok=v.last_ok, error=v.error,
                   readings=dict(v.readings))


class DevicePage(BaseModel):
    items: list[Device]
    total: int = Field(description="devices matching, over all pages")
    limit: int
    offset: int


class History(BaseModel):
    device: str
    metric: str
    resolution: int = Field(description="0: raw readings; else the seconds each point's bucket spans")
    points: list[tuple[float, float, float, float]] = Field(
        description="[time, average, minimum, maximum], oldest first (raw readings: all three the value)")


class DeviceEvent(BaseModel):
    id: int
    ts: float
    kind: str = Field(description="state | reading")
    field: str
    old: Any
    new: Any
    message: str | None

    @classmethod
    def of(cls, e: EventItem) -> DeviceEvent:
        return cls(id=e.id, ts=e.ts, kind=e.kind, field=e.field, old=e.old, new=e.new, message=e.message)


class ActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any] = Field(default_factory=dict, description="the action's parameters by name")


class JobOutcome(BaseModel):
    device: str
    family: str | None
    status: str = Field(description="ok | failed | unreachable | skipped")
    reason: str | None
    message: str | None
    data: Any
    attempts: int
    requests: int | None
    elapsed: float | None

    @classmethod
    def of(cls, o: Outcome) -> JobOutcome:
        return cls(**o.as_dict())


class ActionResponse(BaseModel):
    job: int
    finished: bool = Field(description="false: still running, follow GET /api/v1/jobs/{job}")
    outcome: JobOutcome | None


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str | None = Field(None, description="a spec action id (give action or verb)")
    verb: str | None = Field(None, description="a verb of the specs' Macros, or status")
    params: dict[str, Any] = Field(default_factory=dict)
    select: str = Field("", description="the CLI's selection syntax: site=hq,family=videoos; empty: all")
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="concurrency, per_site, timeout, device_timeout, retries, "
                                                "wait, wait_timeout, overwrite; if_idle, wait_idle (s), "
                                                "in_window, rings ([[name, selection], ...]), gate (0-1), "
                                                "soak (s)")


class ResumeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any] = Field(default_factory=dict, description="secret parameters, which are never stored")
    retry_in_doubt: bool = Field(False, description="also run devices in doubt: a process that died had sent "
                                                    "them the action, which they may have acted on")


class JobStarted(BaseModel):
    job: int
    url: str
    events: str


class JobSummary(BaseModel):
    id: int
    created: float
    user: str
    action: str
    selection: str
    params: dict[str, Any]
    state: str = Field(description="running | finished | interrupted")
    finished: float | None
    devices: int

    @classmethod
    def of(cls, j: Job) -> JobSummary:
        return cls(id=j.id, created=j.created, user=j.user, action=j.action, selection=j.selection,
                   params=j.params, state=j.effective_state, finished=j.finished, devices=len(j.devices))


class JobList(BaseModel):
    items: list[JobSummary]


class JobStatus(JobSummary):
    counts: dict[str, int] = Field(description="outcomes per status, and total")
    pending: list[str] = Field(description="devices without an outcome yet")
    in_doubt: list[str] = Field(description="pending devices a process that died had already sent the "
                                            "action to: resume runs them only with retry_in_doubt")
    outcomes: list[JobOutcome]

    @classmethod
    def detail(cls, d: JobDetail) -> JobStatus:
        base = JobSummary.of(d.job).model_dump()
        base["state"] = d.state
        return cls(**base, counts=d.counts, pending=d.pending, in_doubt=d.in_doubt,
                   outcomes=[JobOutcome.of(o) for o in d.outcomes])


class AlertOut(BaseModel):
    id: int
    rule: str
    device: str
    site: str | None
    severity: str
    state: str = Field(description="open | resolved")
    opened: float
    resolved: float | None
    message: str
    value: Any
    acked_by: str | None
    acked_at: float | None
    silenced_until: float | None
    silenced_by: str | None

    @classmethod
    def of(cls, a: AlertInfo) -> AlertOut:
        return cls(**a.__dict__)


class AlertPage(BaseModel):
    items: list[AlertOut]
    total: int
    limit: int
    offset: int


class SilenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(description="how long from now; 0 ends the silence", ge=0)


class AuditOut(BaseModel):
    id: int
    time: str
    ts: float
    user: str = Field(description="web:NAME / token:NAME (server), or the OS user (CLI)")
    device: str
    address: str | None
    family: str | None
    action: str
    params: dict[str, Any]
    outcome: str
    error_kind: str | None
    message: str | None
    job_id: int | None

    @classmethod
    def of(cls, e: AuditEntry) -> AuditOut:
        return cls(**e.as_dict(), ts=e.ts)


class AuditPage(BaseModel):
    items: list[AuditOut]
    total: int
    limit: int
    offset: int


class Rules(BaseModel):
    items: list[dict[str, Any]]


class Health(BaseModel):
    status: str
    database: str
