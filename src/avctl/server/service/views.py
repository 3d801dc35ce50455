"""Saved views of the device table: a user's named selection, state filter and sort.

Each user sees, saves and removes their own views only (another user's view does not exist for
them: NotFound). A view is checked when saved exactly as the device list checks a request, so a
saved view always opens.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from avctl.db.models import SavedView
from avctl.errors import UsageError
from avctl.fleet.inventory import Selection
from avctl.redact import printable
from avctl.server.context import ServerContext
from avctl.server.model import DEVICE_STATES, Principal
from avctl.server.service.devices import SORT_KEYS
from avctl.server.service.errors import Conflict, NotFound, check

#: views one user may keep (a form cannot fill the database)
MAX_VIEWS = 100
MAX_NAME = 64
#: the longest selection a view keeps (the CLI's syntax; a long list of names is still short)
MAX_SELECTION = 4000


@dataclass(frozen=True)
class ViewInfo:
    id: int
    name: str
    selection: str
    state: str | None
    sort: str


def _info(row: SavedView) -> ViewInfo:
    return ViewInfo(row.id, row.name, row.selection, row.state, row.sort)


def check_view(name: str, selection: str, state: str | None, sort: str) -> tuple[str, str, str | None, str]:
    """The view's fields, trimmed, or a UsageError saying which one is wrong and what to do."""
    name = name.strip()
    if not name or len(name) > MAX_NAME or printable(name) != name:
        raise UsageError("a view needs a name", hint=f"1 to {MAX_NAME} printable characters")
    selection = selection.strip()
    if len(selection) > MAX_SELECTION:
        raise UsageError(f"the selection is longer than {MAX_SELECTION} characters")
    Selection.parse(selection or None)
    if state is not None and state not in DEVICE_STATES:
        raise UsageError(f"unknown state {state!r}", hint=f"use one of: {', '.join(DEVICE_STATES)}")
    if sort.removeprefix("-") not in SORT_KEYS:
        raise UsageError(f"cannot sort on {sort!r}", hint=f"use one of: {', '.join(SORT_KEYS)} (- for descending)")
    return name, selection, state, sort


def list_views(ctx: ServerContext, principal: Principal) -> list[ViewInfo]:
    """The principal's own views, by name."""
    check(principal, "read")
    with ctx.db.session() as s:
        rows = s.scalars(select(SavedView).where(SavedView.user_id == principal.user_id)
                         .order_by(SavedView.name))
        return [_info(r) for r in rows]


def save_view(ctx: ServerContext, principal: Principal, name: str, *, selection: str = "",
              state: str | None = None, sort: str = "name") -> ViewInfo:
    """Saves the view under `name` (replacing the principal's view of that name)."""
    check(principal, "read")
    name, selection, state, sort = check_view(name, selection, state, sort)
    try:
        return _save(ctx, principal, name, selection, state, sort)
    except IntegrityError:  # the same name saved at the same moment by another tab of this user
        raise Conflict(f"a view named {name!r} was saved at the same time", hint="save it again") from None


def _save(ctx: ServerContext, principal: Principal, name: str, selection: str, state: str | None,
          sort: str) -> ViewInfo:
    with ctx.db.session() as s:
        row = s.scalars(select(SavedView).where(SavedView.user_id == principal.user_id,
                                                SavedView.name == name)).first()
        if row is None:
            count = s.scalar(select(func.count()).select_from(SavedView)
                             .where(SavedView.user_id == principal.user_id)) or 0
            if count >= MAX_VIEWS:
                raise UsageError(f"you have {MAX_VIEWS} saved views already", hint="remove one first")
            row = SavedView(user_id=principal.user_id, name=name, created=ctx.clock())
            s.add(row)
        row.selection, row.state, row.sort = selection, state, sort
        s.flush()
        return _info(row)


def get_view(ctx: ServerContext, principal: Principal, view_id: int) -> ViewInfo:
    check(principal, "read")
    with ctx.db.session() as s:
        row = s.scalars(select(SavedView).where(SavedView.id == view_id,
                                                SavedView.user_id == principal.user_id)).first()
        if row is None:
            raise NotFound(f"no saved view {view_id}")
        return _info(row)


def delete_view(ctx: ServerContext, principal: Principal, view_id: int) -> None:
    check(principal, "read")
    with ctx.db.session() as s:
        gone = s.execute(delete(SavedView).where(SavedView.id == view_id,
                                                 SavedView.user_id == principal.user_id))
        if not getattr(gone, "rowcount", 0):
            raise NotFound(f"no saved view {view_id}")
