"""/api/v1/config/drift and /api/v1/devices/{name}/config/snapshots: configuration drift and snapshots."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from avctl.config.model import Snapshot
from avctl.server.access.deps import require
from avctl.server.api.deps import Ctx, Reader
from avctl.server.api.schemas import JobStarted, Problem
from avctl.server.model import Principal
from avctl.server.service import config as drift
from avctl.server.service.config import DriftReport

router = APIRouter(tags=["configuration"],
                   responses={401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}})

Checker = Annotated[Principal, Depends(require(drift.RUN_PERMISSION))]


class DriftItem(BaseModel):
    device: str
    family: str | None
    key: str
    current: Any
    desired: Any
    where: str = Field(description="file:line of the desired value")
    applies: str = Field(description="live | restart | reboot")
    settable: bool = Field(description="false: the API cannot set it")
    reported: bool = Field(description="false: the device did not report the key")


class Drift(BaseModel):
    job: int | None = Field(description="the newest finished drift check (null: none yet)")
    finished: float | None = Field(description="when it finished (UTC epoch seconds)")
    checked: int = Field(description="devices read")
    drifted: int = Field(description="devices with at least one key that differs")
    failed: int
    skipped: int
    failures: dict[str, str] = Field(description="device -> why it could not be checked")
    counts: dict[str, int] = Field(description="key -> drifted devices, most first")
    items: list[DriftItem]
    running: int | None = Field(description="a check running now")
    error: str | None = Field(description="why the last check did not start: the desired state's problems")
    error_at: float | None

    @classmethod
    def of(cls, r: DriftReport) -> Drift:
        return cls(job=r.job_id, finished=r.finished, checked=r.checked, drifted=r.drifted, failed=r.failed,
                   skipped=r.skipped, failures=r.failures, counts=r.counts,
                   items=[DriftItem(**row.as_dict()) for row in r.rows], running=r.running, error=r.error,
                   error_at=r.error_at)


class SnapshotSummary(BaseModel):
    id: int
    device: str
    family: str
    taken_at: float
    confirmed_at: float
    digest: str
    reason: str
    job: int | None
    keys: int
    secrets: list[str] = Field(description="keys whose values are not stored")

    @classmethod
    def of(cls, s: Snapshot) -> SnapshotSummary:
        return cls(id=s.id, device=s.device, family=s.family, taken_at=s.taken_at, confirmed_at=s.confirmed_at,
                   digest=s.digest, reason=s.reason, job=s.job_id, keys=len(s.values), secrets=list(s.secrets))


class SnapshotList(BaseModel):
    items: list[SnapshotSummary]


class SnapshotDetail(SnapshotSummary):
    values: dict[str, Any] = Field(description="key -> value as stored (a secret's value is never stored)")
    notes: list[str]

    @classmethod
    def full(cls, s: Snapshot) -> SnapshotDetail:
        return cls(**SnapshotSummary.of(s).model_dump(), values=dict(s.values), notes=list(s.notes))


@router.get("/config/drift", response_model=Drift, summary="The newest configuration drift check")
def get_drift(ctx: Ctx, principal: Reader,
              device: Annotated[str | None, Query(description="only this device")] = None) -> Drift:
    """Each device of your sites whose configuration differs from its desired state: key, current,
    desired and where the desired value is written; counts per key."""
    return Drift.of(drift.drift_report(ctx, principal, device=device))


@router.post("/config/drift", response_model=JobStarted, status_code=202, summary="Check configuration drift now",
             responses={400: {"model": Problem}, 409: {"model": Problem}})
async def run_drift(ctx: Ctx, principal: Checker) -> JobStarted:
    """The server's drift check over every device with desired configuration (operator, admin).
    An invalid desired state is refused (400) with each problem's file:line; while a check runs,
    409 names it."""
    job_id = await drift.run_drift_now(ctx, principal)
    return JobStarted(job=job_id, url=f"/api/v1/jobs/{job_id}", events=f"/api/v1/jobs/{job_id}/events")


@router.get("/devices/{name}/config/snapshots", response_model=SnapshotList, summary="A device's snapshots")
def list_snapshots(ctx: Ctx, principal: Reader, name: str,
                   limit: Annotated[int, Query(ge=1, le=500)] = 50) -> SnapshotList:
    return SnapshotList(items=[SnapshotSummary.of(s) for s in drift.snapshots(ctx, principal, name, limit=limit)])


@router.get("/devices/{name}/config/snapshots/{snapshot_id}", response_model=SnapshotDetail,
            summary="One snapshot with its values")
def get_snapshot(ctx: Ctx, principal: Reader, name: str, snapshot_id: int) -> SnapshotDetail:
    return SnapshotDetail.full(drift.snapshot(ctx, principal, name, snapshot_id))
