"""The device table (``/devices``): one page of the fleet, filtered with the CLI's selection syntax,
sorted and paged by the server (only the page's rows are read whole and rendered), and its CSV
export (``/devices.csv``, every matching device, streamed).

The view lives in the URL (``?select=&state=&sort=&page=&size=``) so that it can be linked, saved
(`avctl.server.web.pages.views`) and refreshed by htmx on ``sse:state`` without losing the page.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from avctl.durations import human_duration
from avctl.errors import UsageError
from avctl.server import service
from avctl.server.context import ServerContext
from avctl.server.model import DEVICE_STATES, DeviceView, Principal
from avctl.server.service.views import MAX_SELECTION, ViewInfo, list_views
from avctl.server.web.deps import Ctx, Reader
from avctl.server.web.render import is_htmx, render

router = APIRouter(include_in_schema=False)

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_SIZE = 50
#: the CSV export reads this many devices at a time (memory stays flat however large the fleet)
EXPORT_CHUNK = 1000


@dataclass(frozen=True)
class Column:
    """A reading shown as a column: its id (a spec Feedback or a health reading), its heading and
    how its value reads (``text``, ``duration`` in seconds, ``flag`` with the words for true/false,
    ``days``)."""

    reading: str
    label: str
    kind: str = "text"
    yes: str = "yes"
    no: str = "no"


#: readings the poller keeps for every family (a family without one shows "-": Solstice reports no
#: uptime, mute or SIP; Poly UC and VideoOS no connected users)
COLUMNS = (
    Column("model", "Model"),
    Column("firmware", "Firmware"),
    Column("uptime", "Uptime", "duration"),
    Column("in_call", "Call", "flag", "in call", "idle"),
    Column("mic_muted", "Mic", "flag", "muted", "live"),
    Column("connected_users", "Users", "count"),
    Column("sip_registered", "SIP", "flag", "registered", "not registered"),
    Column("cert_days_left", "Certificate", "days"),
)


def reading_text(column: Column, readings: Mapping[str, Any]) -> str:
    """A reading as people read it; a value of an unexpected type (a hostile or odd device) as text."""
    value = readings.get(column.reading)
    if value is None:
        return "-"
    if column.kind == "flag" and isinstance(value, bool):
        return column.yes if value else column.no
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if column.kind == "duration" and numeric:
        return human_duration(float(value))
    if column.kind == "days" and numeric:
        return f"{value:.0f} d"
    return str(value)


@dataclass(frozen=True)
class TableQuery:
    """The table's view as the URL gives it."""

    select: str = ""
    state: str | None = None
    sort: str = "name"
    page: int = 1
    size: int = DEFAULT_SIZE

    def url(self, path: str = "/devices", **changes: Any) -> str:
        """This view's URL (with `changes`), leaving out what is the default."""
        values = {"select": self.select, "state": self.state or "", "sort": self.sort, "page": self.page,
                  "size": self.size, **changes}
        defaults = {"select": "", "state": "", "sort": "name", "page": 1, "size": DEFAULT_SIZE}
        kept = {k: v for k, v in values.items() if v != defaults[k]}
        return path + ("?" + urlencode(kept) if kept else "")

    def sort_url(self, key: str) -> str:
        """The header's link: ascending first, descending when already ascending; back to page 1."""
        return self.url(sort=f"-{key}" if self.sort == key else key, page=1)

    def aria_sort(self, key: str) -> str | None:
        if self.sort == key:
            return "ascending"
        if self.sort == f"-{key}":
            return "descending"
        return None


def view_url(view: ViewInfo) -> str:
    """Where a saved view opens: the device table with its selection, state and sort."""
    return TableQuery(select=view.selection, state=view.state, sort=view.sort).url()


def _query(select: str, state: str, sort: str, page: int, size: int) -> TableQuery:
    return TableQuery(select=select.strip(), state=state or None, sort=sort or "name", page=page,
                      size=size if size in PAGE_SIZES else DEFAULT_SIZE)


Select = Annotated[str, Query(max_length=MAX_SELECTION)]
State = Annotated[str, Query(max_length=32)]
Sort = Annotated[str, Query(max_length=32)]


def _page(ctx: ServerContext, user: Principal, q: TableQuery) -> service.Page[DeviceView]:
    page = service.list_devices(ctx, user, selection=q.select, state=q.state, sort=q.sort, limit=q.size,
                                offset=(q.page - 1) * q.size)
    if not page.items and page.total and q.page > 1:  # past the end (the fleet shrank): the last page
        last = math.ceil(page.total / q.size)
        page = service.list_devices(ctx, user, selection=q.select, state=q.state, sort=q.sort, limit=q.size,
                                    offset=(last - 1) * q.size)
    return page


@router.get("/devices", response_class=HTMLResponse)
def devices(request: Request, ctx: Ctx, user: Reader, select: Select = "", state: State = "",
            sort: Sort = "name", page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
            size: int = DEFAULT_SIZE) -> HTMLResponse:
    q = _query(select, state, sort, page, size)
    error: UsageError | None = None
    try:
        found = _page(ctx, user, q)
    except UsageError as exc:
        error, found = exc, service.Page([], 0, q.size, 0)
    current = found.offset // q.size + 1
    here = q.url(page=current)
    context = {
        "q": q, "page": found, "current": current, "pages": max(1, math.ceil(found.total / q.size)),
        "columns": COLUMNS, "reading_text": reading_text, "states": DEVICE_STATES,
        "sizes": PAGE_SIZES, "error": error, "views": list_views(ctx, user), "view_url": view_url,
        "here": here, "now": ctx.clock(),
    }
    # a bad selection is shown next to its box: a whole page says 400; an htmx swap must be a 200,
    # or app.js would show it in the message area instead
    status = 400 if error is not None and not is_htmx(request) else 200
    # a boosted link or form: the address bar shows the view's own URL (no empty or default fields)
    headers = {"HX-Push-Url": here} if request.headers.get("hx-boosted") == "true" else None
    return render(request, "devices.html", user, context, status=status, headers=headers)


# --- CSV export ------------------------------------------------------------------------------------

#: a spreadsheet runs a cell that starts with one of these as a formula
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CSV_FIELDS = ("name", "family", "site", "room", "tags", "address", "state", "since", "last_poll", "last_ok",
              "error", *(c.reading for c in COLUMNS))


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell: text that a spreadsheet would run as a formula gets a leading ``'``
    (device-supplied text is hostile until shown otherwise); numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_row(view: DeviceView) -> list[Any]:
    facts = {"name": view.name, "family": view.family, "site": view.site, "room": view.room,
             "tags": " ".join(sorted(view.tags)), "address": view.address, "state": view.state,
             "since": view.since or None, "last_poll": view.last_poll, "last_ok": view.last_ok, "error": view.error}
    return [csv_cell(facts[f] if f in facts else view.readings.get(f)) for f in CSV_FIELDS]


def csv_lines(ctx: ServerContext, user: Principal, q: TableQuery) -> Iterator[str]:
    """The header, then every matching device, `EXPORT_CHUNK` at a time.

    The chunks are read in name order without the state filter (applied here), so a device that
    changes state between two chunks is neither skipped nor written twice.
    """
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    offset = 0
    while True:
        chunk = service.list_devices(ctx, user, selection=q.select, sort="name", limit=EXPORT_CHUNK, offset=offset)
        for view in chunk.items:
            if q.state is None or view.state == q.state:
                writer.writerow(csv_row(view))
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        offset += EXPORT_CHUNK
        if offset >= chunk.total or not chunk.items:
            return


@router.get("/devices.csv")
def devices_csv(ctx: Ctx, user: Reader, select: Select = "", state: State = "") -> StreamingResponse:
    q = _query(select, state, "name", 1, DEFAULT_SIZE)
    # a bad selection or state is an error page before anything is streamed
    service.list_devices(ctx, user, selection=q.select, state=q.state, limit=1)
    return StreamingResponse(csv_lines(ctx, user, q), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="devices.csv"',
                                      "Cache-Control": "no-store"})
