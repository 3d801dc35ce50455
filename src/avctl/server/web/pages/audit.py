"""Audit: the audit log with the filters of ``avctl audit``, paged, and exported whole (CSV, JSON).

An export is everything that matches, streamed page by page; it ends at the moment it was asked for,
so rows written meanwhile neither shift its pages nor join it halfway. CSV cells never start a
spreadsheet formula.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from avctl.errors import UsageError
from avctl.fleet.audit import AuditEntry
from avctl.fleet.output import csv_cell
from avctl.redact import REDACTOR
from avctl.server import service
from avctl.server.api.deps import when
from avctl.server.context import ServerContext
from avctl.server.model import Principal
from avctl.server.web.cli_text import cli_command
from avctl.server.web.deps import Ctx, Reader
from avctl.server.web.render import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
EXPORT_BATCH = 1000
OUTCOMES = ("ok", "failed", "unreachable")
COLUMNS = ("id", "time", "user", "device", "address", "family", "action", "params", "outcome", "error_kind",
           "message", "job_id")


@dataclass(frozen=True)
class AuditFilters:
    """The filters as typed (every field is text: an empty one is no filter)."""

    device: str = ""
    action: str = ""
    user: str = ""
    outcome: str = ""
    job: str = ""
    since: str = ""
    until: str = ""

    def given(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v}

    def query(self, ctx: ServerContext) -> dict[str, Any]:
        """The filters as `service.query_audit` takes them."""
        if self.outcome and self.outcome not in OUTCOMES:
            raise UsageError(f"unknown outcome {self.outcome!r}", hint=", ".join(OUTCOMES))
        try:
            job = int(self.job) if self.job else None
        except ValueError:
            raise UsageError(f"job {self.job!r} is not a job number") from None
        return {"device": self.device or None, "action": self.action or None, "user": self.user or None,
                "outcome": self.outcome or None, "job_id": job, "since": when(ctx, self.since),
                "until": when(ctx, self.until)}

    def cli(self) -> str:
        return cli_command("audit", options=[(f"--{k}", v) for k, v in self.given().items()])


def audit_filters(device: Annotated[str, Query(max_length=200)] = "",
                  action: Annotated[str, Query(max_length=200)] = "",
                  user: Annotated[str, Query(max_length=200)] = "",
                  outcome: Annotated[str, Query(max_length=20)] = "",
                  job: Annotated[str, Query(max_length=20)] = "",
                  since: Annotated[str, Query(max_length=40)] = "",
                  until: Annotated[str, Query(max_length=40)] = "") -> AuditFilters:
    return AuditFilters(device.strip(), action.strip(), user.strip(), outcome.strip(), job.strip(), since.strip(),
                        until.strip())


Filters = Annotated[AuditFilters, Depends(audit_filters)]


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, ctx: Ctx, user: Reader, filters: Filters,
               page: Annotated[int, Query(ge=1, le=1_000_000)] = 1) -> HTMLResponse:
    found = service.query_audit(ctx, user, **filters.query(ctx), limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    given = filters.given()
    return render(request, "audit.html", user, {
        "entries": found.items, "total": found.total, "page": page, "pages": max(1, -(-found.total // PAGE_SIZE)),
        "filters": filters, "outcomes": OUTCOMES, "cli": filters.cli(), "params": params_text,
        "query": urlencode(given),
        "page_link": lambda n: "/audit?" + urlencode({**given, "page": n}),
    })


def params_text(entry: AuditEntry) -> str:
    """The parameters as JSON, with every secret this server knows masked (rows are written without
    secrets; this is the second line, as the CLI's output has)."""
    return REDACTOR.text(json.dumps(entry.params, sort_keys=True, default=str, ensure_ascii=False))


def _matching(ctx: ServerContext, principal: Principal, filters: AuditFilters) -> Iterator[AuditEntry]:
    query = filters.query(ctx)
    now = ctx.clock()
    query["until"] = min(query["until"], now) if query["until"] is not None else now
    offset = 0
    while True:
        found = service.query_audit(ctx, principal, **query, limit=EXPORT_BATCH, offset=offset)
        yield from found.items
        offset += len(found.items)
        if len(found.items) < EXPORT_BATCH:
            return


def _csv_lines(entries: Iterator[AuditEntry]) -> Iterator[str]:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    out.writerow(COLUMNS)
    for e in entries:
        row = {**e.as_dict(), "params": params_text(e)}
        out.writerow([csv_cell(REDACTOR.text(row[c]) if isinstance(row[c], str) else row[c])
                      if row[c] is not None else "" for c in COLUMNS])
        if buf.tell() > 64 * 1024:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def _json_lines(entries: Iterator[AuditEntry]) -> Iterator[str]:
    yield "["
    for i, e in enumerate(entries):
        # ensure_ascii: control characters and bidi overrides leave as \u escapes
        yield ("," if i else "") + "\n" + REDACTOR.text(json.dumps({**e.as_dict(), "ts": e.ts}, ensure_ascii=True,
                                                                   default=str))
    yield "\n]\n"


def _export(ctx: ServerContext, user: Principal, filters: AuditFilters, kind: str) -> StreamingResponse:
    entries = _matching(ctx, user, filters)
    first = next(entries, None)  # a mistake in the filters is an error page, not a broken download

    def everything() -> Iterator[AuditEntry]:
        if first is not None:
            yield first
            yield from entries

    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(ctx.clock()))
    body = _csv_lines(everything()) if kind == "csv" else _json_lines(everything())
    return StreamingResponse(body, media_type="text/csv; charset=utf-8" if kind == "csv" else "application/json",
                             headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.{kind}"',
                                      "Cache-Control": "no-store"})


@router.get("/audit/export.csv")
def export_csv(ctx: Ctx, user: Reader, filters: Filters) -> StreamingResponse:
    return _export(ctx, user, filters, "csv")


@router.get("/audit/export.json")
def export_json(ctx: Ctx, user: Reader, filters: Filters) -> StreamingResponse:
    return _export(ctx, user, filters, "json")
