"""Alert rules: the rules in force, for everyone; the rules file edited in the browser, for admins of
every site (the file covers every site).

A save is checked by the server's rules loader (a mistake is shown with its line, nothing is
written), written atomically, put in force in the running server, and audited with the digests of
the old and new file. The file is shown as written, but for its secrets: a reference (env:, file:,
secret:) is shown, never resolved; a secret written in the file itself is shown as a placeholder,
put back by a save that leaves it (`avctl.server.alerts.hidden`). A file that is not YAML is not
shown (its secrets cannot be told apart). Other roles see the rules in force, never the file.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from avctl.server import service
from avctl.server.access import audit
from avctl.server.alerts.edit import RulesChanged, read_for_editor, replace_rules_file
from avctl.server.model import Principal
from avctl.server.service import Conflict, Forbidden
from avctl.server.web.deps import Admin, Ctx, Reader
from avctl.server.web.posted import Posted
from avctl.server.web.render import render

router = APIRouter(include_in_schema=False)


def may_edit(principal: Principal) -> bool:
    return principal.can("admin") and not principal.sites


def _page(request: Request, ctx: Ctx, user: Principal, template: str = "alerts_rules.html",
          **extra: object) -> HTMLResponse:
    shown = read_for_editor(ctx.rules_file) if may_edit(user) and ctx.rules_file is not None else None
    return render(request, template, user, {
        "rules": service.list_rules(ctx, user), "rules_file": ctx.rules_file, "editable": may_edit(user),
        "shown": shown, **extra})


@router.get("/alerts/rules", response_class=HTMLResponse)
def rules_page(request: Request, ctx: Ctx, user: Reader) -> HTMLResponse:
    return _page(request, ctx, user)


@router.post("/alerts/rules", response_class=HTMLResponse)
async def save_rules(request: Request, ctx: Ctx, admin: Admin, form: Posted) -> HTMLResponse:
    if not may_edit(admin):
        raise Forbidden("only an admin of every site edits the rules file (its rules cover every site)")
    if ctx.rules_file is None or ctx.reload_rules is None:
        raise Conflict("this server runs without a rules file", hint="start it with 'avctl serve --rules FILE'")
    path = ctx.rules_file
    try:
        done = await asyncio.to_thread(replace_rules_file, path, form.get("text", ""), form.get("digest", ""))
    except RulesChanged as exc:
        raise Conflict(exc.message, hint=exc.hint) from None
    await asyncio.to_thread(audit.record, ctx.db, admin.audit_name, "rules.edit",
                            {"file": str(path), "old": done.old_digest, "new": done.new_digest,
                             "rules": len(done.rules.rules)}, clock=ctx.clock)
    await ctx.reload_rules()  # the file was checked: a mistake now is a race with an edit on disk
    saved = f"Saved and in force: {len(done.rules.rules)} rules."
    return await asyncio.to_thread(_page, request, ctx, admin, "alerts_rules_body.html", saved=saved,
                                   warnings=done.rules.warnings)
