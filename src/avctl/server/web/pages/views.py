"""Saved views of the device table (``/views``): save the table's current view under a name, open
one (``/views/ID``: to the table with its filter and sort), remove one. Each user has their own."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from avctl.server.model import Principal
from avctl.server.service import views
from avctl.server.web.deps import Ctx, Reader
from avctl.server.web.pages.devices import TableQuery, view_url
from avctl.server.web.posted import Posted
from avctl.server.web.render import render

router = APIRouter(include_in_schema=False)


def _views_part(request: Request, ctx: Ctx, user: Principal, q: TableQuery) -> HTMLResponse:
    return render(request, "devices_views.html", user,
                  {"views": views.list_views(ctx, user), "q": q, "view_url": view_url})


@router.post("/views", response_class=HTMLResponse)
def save_view(request: Request, ctx: Ctx, user: Reader, form: Posted) -> HTMLResponse:
    q = TableQuery(select=form.get("select", ""), state=form.get("state") or None, sort=form.get("sort") or "name")
    views.save_view(ctx, user, form.get("name", ""), selection=q.select, state=q.state, sort=q.sort)
    return _views_part(request, ctx, user, q)


@router.get("/views/{view_id}")
def open_view(ctx: Ctx, user: Reader, view_id: int) -> RedirectResponse:
    return RedirectResponse(view_url(views.get_view(ctx, user, view_id)), status_code=303)


@router.delete("/views/{view_id}", response_class=HTMLResponse)
def delete_view(request: Request, ctx: Ctx, user: Reader, view_id: int, select: str = "", state: str = "",
                sort: str = "name") -> HTMLResponse:
    """Removes the view; the answer is the list again, its save form still on the table's view (the
    button sends the form's fields along)."""
    views.delete_view(ctx, user, view_id)
    return _views_part(request, ctx, user, TableQuery(select=select, state=state or None, sort=sort or "name"))
