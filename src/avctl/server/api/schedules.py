"""/api/v1/schedules: the schedules (``avctl schedule``) and their runs, read-only.

A schedule's command may reach any site's devices, so only users of every site see them (a user
limited to some sites gets 403, as for user management).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from avctl.errors import UsageError
from avctl.schedule.store import Run, Schedule, ScheduleStore
from avctl.server.api.deps import Ctx, Reader
from avctl.server.api.schemas import Problem
from avctl.server.model import Principal
from avctl.server.service import Forbidden, NotFound

router = APIRouter(prefix="/schedules", tags=["schedules"],
                   responses={401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}})


class ScheduleRun(BaseModel):
    id: int
    zone: str
    due: float
    trigger: str = Field(description="cron | manual")
    sites: list[str | None] | None = Field(description="the sites this run was limited to (null: no limit)")
    state: str = Field(description="running | ok | failed | skipped | missed")
    reason: str | None
    started: float | None
    finished: float | None
    job: int | None
    exit_code: int | None

    @classmethod
    def of(cls, r: Run) -> ScheduleRun:
        doc: dict[str, Any] = r.to_json()
        return cls(**{k: doc[k] for k in cls.model_fields})


class ScheduleSummary(BaseModel):
    name: str
    cron: str
    timezone: str
    grace: float
    command: list[str]
    disruptive: bool
    paused: bool
    created: float
    user: str
    last_run: ScheduleRun | None

    @classmethod
    def of(cls, s: Schedule, last: Run | None) -> ScheduleSummary:
        doc = s.to_json()
        return cls(**{k: doc[k] for k in cls.model_fields if k != "last_run"},
                   last_run=None if last is None else ScheduleRun.of(last))


class ScheduleList(BaseModel):
    items: list[ScheduleSummary]


class ScheduleDetail(ScheduleSummary):
    runs: list[ScheduleRun] = Field(description="newest due instant first")


def _store(ctx: Ctx, principal: Principal) -> ScheduleStore:
    if principal.sites:
        raise Forbidden("schedules may run on every site's devices: only users of every site see them "
                        f"(yours are limited to {', '.join(sorted(principal.sites))})")
    return ScheduleStore(ctx.db)


@router.get("", response_model=ScheduleList, summary="The schedules, each with its last run")
def list_schedules(ctx: Ctx, principal: Reader) -> ScheduleList:
    store = _store(ctx, principal)
    items = []
    for s in store.schedules():
        last = store.runs(s.id, limit=1)
        items.append(ScheduleSummary.of(s, last[0] if last else None))
    return ScheduleList(items=items)


@router.get("/{name}", response_model=ScheduleDetail, summary="A schedule and its runs")
def get_schedule(ctx: Ctx, principal: Reader, name: str,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> ScheduleDetail:
    store = _store(ctx, principal)
    try:
        schedule = store.get(name)
    except UsageError:
        raise NotFound(f"no schedule named {name!r}") from None
    runs = store.runs(schedule.id, limit=limit)
    summary = ScheduleSummary.of(schedule, runs[0] if runs else None)
    return ScheduleDetail(**summary.model_dump(exclude={"last_run"}), last_run=summary.last_run,
                          runs=[ScheduleRun.of(r) for r in runs])
