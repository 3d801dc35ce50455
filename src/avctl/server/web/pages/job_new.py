"""Run a job: action -> parameters -> selection -> preview -> run now.

``GET /jobs/new`` is the wizard (``?action=`` preselects a verb or action, ``?select=`` fills the
selection, ``?p.NAME=`` a parameter); ``POST /jobs/new`` answers its preview (planned by the fleet
runner: what runs, what is skipped and why); ``POST /jobs`` starts the job. A disruptive job is
started only with ``confirm`` equal to the number of devices it will run on, checked here on the
server against a fresh plan (whatever the page showed), and only for roles that may run it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from avctl.errors import AvctlError, UsageError
from avctl.server import service
from avctl.server.model import Principal
from avctl.server.service.devices import in_scope
from avctl.server.service.job_preview import JobPreview, preview_job
from avctl.server.web.cli_text import cli_command
from avctl.server.web.deps import Actor, Ctx
from avctl.server.web.forms import PREFIX
from avctl.server.web.job_choices import Catalogue, Choice, catalogue
from avctl.server.web.posted import read_form
from avctl.server.web.render import render

router = APIRouter(include_in_schema=False)

#: a job form has a few fields; a body larger than this is not a form of ours
MAX_FORM_BYTES = 256 * 1024


#: run options the wizard offers (the service's tunable ones), each read from its field as this type
OPTIONS: dict[str, type] = {"concurrency": int, "per_site": int, "timeout": float, "retries": int, "wait": bool,
                            "wait_timeout": float, "if_idle": bool, "wait_idle": float, "in_window": bool}
OPTION_PREFIX = "o."


def option_values(form: dict[str, str]) -> dict[str, Any]:
    """The run options filled in (empty: the server's default)."""
    found: dict[str, Any] = {}
    for name, kind in OPTIONS.items():
        text = form.get(OPTION_PREFIX + name, "").strip()
        if not text:
            continue
        if kind is bool:
            found[name] = text in ("on", "true")
            continue
        try:
            found[name] = kind(text)
        except ValueError:
            raise UsageError(f"run option {name}: {text!r} is not a number") from None
    return found


def option_flags(options: dict[str, Any]) -> list[tuple[str, Any]]:
    """The run options as the CLI's flags (``--per-site 5``, ``--wait``)."""
    return [("--" + name.replace("_", "-"), f"{value:g}" if isinstance(value, float) else value)
            for name, value in options.items()]


def param_texts(form: dict[str, str]) -> dict[str, str]:
    """The filled-in parameter fields, as the command line's ``key=value`` texts (each family's
    spec converts and checks them when the job is planned, as for ``avctl fleet``)."""
    return {k[len(PREFIX):]: v for k, v in form.items() if k.startswith(PREFIX) and v != ""}


def job_cli(choice: Choice, selection: str, params: dict[str, Any], secret: frozenset[str] = frozenset(),
            options: dict[str, Any] | None = None) -> str:
    hidden = secret | {f.name for f in choice.fields if f.widget == "password"}
    return cli_command(*choice.cli_words, options=[("--select", selection), *option_flags(options or {})],
                       params=params, secret=hidden)


def refusal(principal: Principal, name: str) -> str:
    return f"{name} is disruptive; your role ({principal.role}) may run non-disruptive jobs only"


def may_run(principal: Principal, choice: Choice) -> bool:
    return principal.can("act_disruptive") or not choice.disruptive


def offered(principal: Principal, found: Catalogue) -> Catalogue:
    """What the role may start: no disruptive choice for a role that may not run one."""
    return Catalogue([c for c in found.verbs if may_run(principal, c)],
                     {f: [c for c in cs if may_run(principal, c)] for f, cs in found.actions.items()})


@router.get("/jobs/new", response_class=HTMLResponse)
def new_job(request: Request, ctx: Ctx, user: Actor, action: str = "", select: str = "", mode: str | None = None,
            rerun_of: int | None = None) -> HTMLResponse:
    every = catalogue(ctx, in_scope(ctx, user))
    values = {k[len(PREFIX):]: v for k, v in request.query_params.items() if k.startswith(PREFIX)}
    choice, problem = None, None
    if action:
        try:
            choice = every.find(action, mode)
        except UsageError as exc:
            problem = exc.message
        if choice is not None and not may_run(user, choice):
            choice, problem = None, refusal(user, action)
    cli = job_cli(choice, select, values) if choice else cli_command("fleet", "ACTION", options=[("--select", select)])
    context = {"catalogue": offered(user, every), "choice": choice, "problem": problem, "select": select,
               "values": values, "rerun_of": rerun_of, "cli": cli}
    return render(request, "jobs_new.html", user, context)


@dataclass(frozen=True)
class Planned:
    choice: Choice
    params: dict[str, str]
    options: dict[str, Any]
    preview: JobPreview

    @property
    def cli(self) -> str:
        return job_cli(self.choice, self.preview.selection, self.params, self.preview.secret_params, self.options)


async def _plan(ctx: Ctx, user: Principal, form: dict[str, str]) -> Planned:
    def plan() -> Planned:
        choice = catalogue(ctx, in_scope(ctx, user)).find(form.get("action", ""), form.get("mode") or None)
        params, options = param_texts(form), option_values(form)
        return Planned(choice, params, options, preview_job(
            ctx, user, name=choice.name, mode=choice.mode, params=params, selection=form.get("select", ""),
            options=options))

    return await asyncio.to_thread(plan)


@router.post("/jobs/new", response_class=HTMLResponse)
async def preview(request: Request, ctx: Ctx, user: Actor) -> HTMLResponse:
    """The preview of the wizard's form, or why it cannot run (in the preview's place)."""
    form = await read_form(request, max_bytes=MAX_FORM_BYTES)
    try:
        planned = await _plan(ctx, user, form)
    except (AvctlError, service.ServiceError) as exc:
        return render(request, "jobs_preview.html", user, {"problem": exc.message, "hint": exc.hint})
    return render(request, "jobs_preview.html", user, {
        "choice": planned.choice, "preview": planned.preview, "by_family": planned.preview.counts_by("family"),
        "by_site": planned.preview.counts_by("site"), "cli": planned.cli})


@router.post("/jobs")
async def run_job(request: Request, ctx: Ctx, user: Actor) -> Response:
    form = await read_form(request, max_bytes=MAX_FORM_BYTES)
    planned = await _plan(ctx, user, form)
    choice, runs = planned.choice, len(planned.preview.run)
    if not planned.preview.allowed:
        raise service.Forbidden(refusal(user, choice.name))
    if planned.preview.disruptive and form.get("confirm", "").strip() != str(runs):
        raise UsageError(f"{choice.name} is disruptive: type the number of devices it will run on ({runs}) to confirm",
                         hint="preview the job again: the selection may have changed")
    job_id = await service.start_job(ctx, user, name=choice.name, mode=choice.mode, params=planned.params,
                                     selection=planned.preview.selection, options=planned.options)
    return Response(status_code=200, headers={"HX-Redirect": f"/jobs/{job_id}"})
