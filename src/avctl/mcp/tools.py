"""The tools: each a service function (``avctl.server.service``) called for the MCP client's principal.

The service enforces the principal's role and sites; the tools add the agent interface's own
rules on top: read-only unless ``--allow-actions`` (``--allow-disruptive`` for disruptive actions),
a confirmation token for a disruptive call and for every fleet run, a rate limit on changes, and
parameters validated against the spec before anything is sent. Every result is JSON data with
secrets masked (the process's redactor knows the inventory's passwords and each secret parameter
given) and device text cut to a size.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from avctl.capabilities import READING_UNITS
from avctl.errors import AvctlError
from avctl.fleet.jobs import spec_provider
from avctl.fleet.results import Outcome
from avctl.fleet.verbs import make_task
from avctl.mcp.guard import ConfirmStore, Plan, RateLimit, Refused
from avctl.mcp.schemas import MAX_LIMIT, Catalogue, describe
from avctl.mcp.settings import McpSettings
from avctl.redact import MASK, REDACTOR, printable
from avctl.server import service
from avctl.server.context import ServerContext
from avctl.server.model import DeviceView, Principal
from avctl.server.service.config import drift_report, run_drift_now
from avctl.server.service.job_preview import JobPreview, preview_job
from avctl.spec import Spec, validate
from avctl.spec.model import Action

log = logging.getLogger("avctl.mcp")

#: a result's JSON is cut to about this many characters (device answers can be large)
MAX_RESULT_CHARS = 60_000
#: how long fleet_run and device_status wait for their job before answering with the job to follow
JOB_WAIT = 60.0
#: devices a plan lists by name (the counts cover all of them)
PLAN_NAMES = 20


class ToolError(Exception):
    """A refusal or failure the agent reads as the tool's error: one line."""


def shown_data(value: Any) -> Any:
    """JSON-ready, secrets masked (known values and sensitive keys)."""
    return REDACTOR.redact(json.loads(json.dumps(value, default=str)))


def capped(result: dict[str, Any]) -> dict[str, Any]:
    """The result, with its largest device answers cut when the whole would be too long to hand an agent."""
    text = json.dumps(result, ensure_ascii=True, default=str)
    if len(text) <= MAX_RESULT_CHARS:
        return result
    out = dict(result)
    for key in ("outcomes", "devices", "entries", "rows", "readings", "data", "outcome"):
        if key in out:
            cut = json.dumps(out[key], ensure_ascii=True, default=str)
            out[key] = cut[:MAX_RESULT_CHARS // 2] + " ... (cut)"
            out["cut"] = f"{key} was cut to {MAX_RESULT_CHARS // 2} characters; ask for fewer items"
            break
    return out


def _outcome(o: Outcome) -> dict[str, Any]:
    shown: dict[str, Any] = shown_data(o.as_dict())
    return shown


def _view(v: DeviceView) -> dict[str, Any]:
    return {"name": v.name, "family": v.family, "site": v.site, "room": v.room, "tags": sorted(v.tags),
            "state": v.state, "since": v.since or None, "last_poll": v.last_poll, "last_ok": v.last_ok,
            "error": v.error, "readings": shown_data(dict(v.readings))}


def with_units(readings: Mapping[str, Any]) -> dict[str, Any]:
    """Status readings, a numeric one as {value, unit}."""
    return {k: ({"value": v, "unit": READING_UNITS[k]} if k in READING_UNITS and v is not None else v)
            for k, v in readings.items()}


class Tools:
    """The tool implementations over one server context; shared by every session of the process."""

    def __init__(self, ctx: ServerContext, settings: McpSettings, catalogue: Catalogue) -> None:
        self.ctx = ctx
        self.settings = settings
        self.catalogue = catalogue
        self.spec_of: Callable[[str], Spec] = spec_provider(ctx.spec_overrides)
        self.confirm = ConfirmStore(settings.confirm_ttl, settings.clock)
        self.rate = RateLimit(settings.max_changes, settings.clock)
        self.handlers: dict[str, Callable[[Principal, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
            "find_devices": self.find_devices, "device_status": self.device_status,
            "describe_action": self.describe_action, "call_action": self.call_action,
            "fleet_plan": self.fleet_plan, "fleet_run": self.fleet_run, "job_status": self.job_status,
            "audit_search": self.audit_search, "config_drift": self.config_drift}

    # -- the rules of this interface ------------------------------------------------------------------

    def _may_change(self, what: str, *, disruptive: bool) -> None:
        """Refused unless the server was started to allow this kind of change."""
        if disruptive and not self.settings.allow_disruptive:
            flag = "--allow-disruptive" if self.settings.allow_actions else "--allow-disruptive (or --allow-actions " \
                                                                            "for non-disruptive changes)"
            raise Refused(f"{what} is disruptive and this agent interface does not allow disruptive actions: "
                          f"nothing was sent (the operator can start avctl mcp with {flag})")
        if not self.settings.allow_actions:
            raise Refused(f"{what} changes the device and this agent interface is read-only: nothing was sent "
                          "(the operator can start avctl mcp with --allow-actions)")

    def _action(self, spec: Spec, action_id: str) -> Action:
        if not spec.has_action(action_id):
            close = difflib.get_close_matches(action_id, list(spec.actions), n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise ToolError(f"family {spec.family} has no action {action_id!r}{hint} "
                            f"(describe_action or the avctl://actions/{spec.family} resource lists them)")
        return spec.action(action_id)

    @staticmethod
    def _secret_values(names: Iterable[str], params: Mapping[str, Any]) -> None:
        """Secret parameter values are masked everywhere from now on (results, errors, logs)."""
        for name in names:
            value = params.get(name)
            if isinstance(value, str):
                REDACTOR.add(value)

    @staticmethod
    def _shown_params(params: Mapping[str, Any], secret: Iterable[str]) -> dict[str, Any]:
        secret = set(secret)
        return {k: (MASK if k in secret and v not in (None, "") else v) for k, v in params.items()}

    async def _wait(self, job_id: int, within: float) -> str:
        """The job's state once it ends, or "running" after `within` seconds."""
        with self.ctx.progress.subscribe(job_id) as events:
            state = (await asyncio.to_thread(self.ctx.jobs.get_job, job_id)).effective_state
            if state != "running":
                return state
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    while True:
                        event = await events.get()
                        if event["event"] == "done":
                            return str(event["state"])
        return "running"

    # -- reads ----------------------------------------------------------------------------------------

    async def find_devices(self, who: Principal, args: dict[str, Any]) -> dict[str, Any]:
        page = await asyncio.to_thread(service.list_devices, self.ctx, who, selection=args.get("selection", ""),
                                       state=args.get("state"), limit=args.get("limit", 50),
                                       offset=args.get("offset", 0))
        return {"total": page.total, "offset": page.offset, "limit": page.limit,
                "devices": [_view(v) for v in page.items]}

    async def device_status(self, who: Principal, args: dict[str, Any]) -> dict[str, Any]:
        view = await asyncio.to_thread(service.device, self.ctx, who, args["device"])
        out: dict[str, Any] = {"device": view.name, "family": view.family, "polled": {
            "state": view.state, "since": view.since or None, "last_poll": view.last_poll, "error": view.error,
            "readings": with_units(shown_data(dict(view.readings)))}}
        if not who.can("act"):
            out["live"] = None
            out["live_error"] = f"a live read runs a status job, which your role ({who.role}) may not start"
            return out
        job_id = await service.start_job(self.ctx, who, name="status", mode="verb", params={},
                                         selection=f"name={view.name}")
        state = await self._wait(job_id, JOB_WAIT)
        outcomes = await asyncio.to_thread(self.ctx.jobs.outcomes, job_id)
        found = next((o for o in outcomes if o.device == view.name), None)
        out["job_id"] = job_id
        if found is None:
            out["live"] = None
            out["live_error"] = f"the status job is {state}; follow it with job_status"
        else:
            live = _outcome(found)
            if isinstance(live.get("data"), dict):
                live["readings"] = with_units(live.pop("data"))
            out["live"] = live
        return out

    async def describe_action(self, who: Principal, args: dict[str, Any]) -> dict[str, Any]:
        family = args["family"]
        if family not in self.catalogue.specs:
            raise ToolError(f"unknown family {family!r} (families: {', '.join(self.catalogue.families)})")
        spec = self.catalogue.specs[family]
        return describe(spec, self._action(spec, args["action"]))

    async def job_status(self, who: Principal, args: dict[str, Any]) -> dict[str, Any]:
        detail = await asyncio.to_thread(service.job, self.ctx, who, args["job_id"])
        limit = args.get("limit", 100)
        return {"job_id": detail.job.id, "action": detail.job.action, "user": detail.job.user,
                "selection": detail.job.selection, "params": shown_data(detail.job.params), "state": detail.state,
                "created": detail.job.created, "finished": detail.job.finished, "counts": detail.counts,
                "outcomes": [_outcome(o) for o in detail.outcomes[:limit]],
                "pending": detail.pending[:limit], "in_doubt": detail.in_doubt[:limit]}

    async def audit_search(self, who: Principal, args: dict[str, Any]) -> dict[str, Any]:
        page = await asyncio.to_thread(service.query_audit, self.ctx, who, device=args.get("device"),
                                       action=args.get("action"), user=args.get("user"),
                                       outcome=args.get("outcome"), job_id=args.get("job_id"),
                                       since=args.get("since"), limit=min(args.get("limit", 50), MAX_LIMIT))
        return {"total": page.total, "entries": [shown_data(e.as_dict()) for e in page.items]}

    async def config_drift(self, who: Principal, args: dict[str, Any]) -> dict[str, Any]:
        started = None
        if args.get("check"):
            if not self.settings.allow_actions:
                raise Refused("starting a drift check needs --allow-actions (it reads every device with desired "
                              "configuration); without check, the newest report is shown")
            started = await run_drift_now(self.ctx, who)
        report = await asyncio.to_thread(drift_report, self.ctx, who, device=args.get("device"))
        return {"started_job": started, "job_id": report.job_id, "finished": report.finished,
                "running": report.running, "checked": report.checked, "drifted": report.drifted,
                "failed": report.failed, "skipped": report.skipped, "counts": report.counts,
                "rows": [shown_data(r.as_dict()) for r in report.rows[:MAX_LIMIT]],
                "failures": shown_data(report.failures), "error": report.error}

    # -- changes --------------------------------------------------------------------------------------

    async def call_action(self, who: Principal, args: dict[str, Any]) -> dict[str, Any]:
        params = dict(args.get("params") or {})
        entry = await asyncio.to_thread(service.find_device, self.ctx, who, args["device"])
        action = self._action(self.spec_of(entry.family), args["action"])
        self._secret_values((p.name for p in action.params if p.secret), params)
        validate(action, params)  # the parameter and what is wrong, before anything else
        shown = self._shown_params(params, (p.name for p in action.params if p.secret))
        if action.kind != "query":
            self._may_change(f"{action.id} on {entry.name}", disruptive=action.disruptive)
            if not who.can("act_disruptive" if action.disruptive else "act"):
                raise service.Forbidden(f"{action.id} is {'disruptive' if action.disruptive else 'a change'}; "
                                        f"your role ({who.role}) may not run it")
            if action.disruptive:
                plan = Plan("call_action", action.id, params, [entry.name], who.audit_name)
                token = args.get("confirm")
                if not token:
                    return self._ask(plan, {"device": entry.name, "family": entry.family, "action": action.id,
                                            "params": shown, "disruptive": True,
                                            "safety_note": action.safety_note or None})
                self.confirm.redeem(token, plan)
            self.rate.take(who.audit_name)
        result = await service.run_action(self.ctx, who, entry.name, action.id, params)
        if result.outcome is not None and result.outcome.status != "ok":
            o = result.outcome
            raise ToolError(f"{action.id} on {entry.name}: {o.status}" + (f" [{o.reason}]" if o.reason else "")
                            + (f": {o.message}" if o.message else "") + f" (job {result.job_id})")
        return {"device": entry.name, "action": action.id, "params": shown, "job_id": result.job_id,
                "outcome": None if result.outcome is None else _outcome(result.outcome),
                **({} if result.outcome else {"note": "not finished yet: follow it with job_status"})}

    def _ask(self, plan: Plan, shown: dict[str, Any]) -> dict[str, Any]:
        token = self.confirm.issue(plan)
        return {"status": "confirmation_required", "plan": shown, "confirm": token,
                "expires_in": self.settings.confirm_ttl,
                "next": f"nothing was sent. To run exactly this plan, call {plan.tool} again with the same "
                        f"arguments and confirm={token!r} (one use, within {self.settings.confirm_ttl:g}s)"}

    def _task(self, args: dict[str, Any]) -> tuple[str, str]:
        action, verb = args.get("action"), args.get("verb")
        if bool(action) == bool(verb):
            raise ToolError("give exactly one of action (a spec action) and verb (e.g. status, reboot)")
        return (str(action), "action") if action else (str(verb), "verb")

    async def _preview(self, who: Principal, args: dict[str, Any]) -> tuple[JobPreview, dict[str, Any]]:
        name, mode = self._task(args)
        params = dict(args.get("params") or {})
        task = make_task(name, params, mode=mode)
        for family in {d.family for d in self.ctx.inventory()}:  # before validation quotes a value
            spec = self.spec_of(family)
            if task.skip_reason(spec) is None:
                self._secret_values(task.secret_names(spec), params)
        preview = await asyncio.to_thread(preview_job, self.ctx, who, name=name, mode=mode, params=params,
                                          selection=args.get("selection", ""))
        changes = any(preview.task.changes_state(self.spec_of(f)) for f in {d.entry.family for d in preview.run})
        return preview, {
            "task": name, "mode": mode, "selection": preview.selection,
            "params": self._shown_params(params, preview.secret_params),
            "changes_state": changes, "disruptive": preview.disruptive, "allowed_by_role": preview.allowed,
            "devices": {"selected": len(preview.devices), "run": len(preview.run), "skipped": len(preview.skipped)},
            "by_family": preview.counts_by("family"), "by_site": preview.counts_by("site"),
            "first_devices": [d.entry.name for d in preview.run[:PLAN_NAMES]],
            "skipped": [{"device": d.entry.name, "status": d.decided.status, "reason": d.decided.reason,
                         "message": d.decided.message} for d in preview.skipped[:MAX_LIMIT] if d.decided]}

    async def fleet_plan(self, who: Principal, args: dict[str, Any]) -> dict[str, Any]:
        _preview, plan = await self._preview(who, args)
        return plan

    async def fleet_run(self, who: Principal, args: dict[str, Any]) -> dict[str, Any]:
        preview, shown = await self._preview(who, args)
        if shown["changes_state"]:
            self._may_change(f"{shown['task']} on {shown['devices']['run']} device(s)", disruptive=preview.disruptive)
        if not preview.allowed:
            raise service.Forbidden(f"{shown['task']} is disruptive; your role ({who.role}) may not run it")
        if not preview.run:
            raise ToolError(f"{shown['task']}: no selected device can run it (see skipped in fleet_plan)")
        plan = Plan("fleet_run", f"{shown['mode']}:{shown['task']}", dict(args.get("params") or {}),
                    [d.entry.name for d in preview.devices], who.audit_name)
        token = args.get("confirm")
        if not token:
            return self._ask(plan, shown)
        self.confirm.redeem(token, plan)
        if shown["changes_state"]:
            self.rate.take(who.audit_name)
        job_id = await service.start_job(self.ctx, who, name=shown["task"], mode=shown["mode"],
                                         params=dict(args.get("params") or {}), selection=args.get("selection", ""))
        state = await self._wait(job_id, JOB_WAIT)
        counts = await asyncio.to_thread(self.ctx.jobs.counts, job_id)
        return {"job_id": job_id, "state": state, "counts": counts,
                "next": "job_status shows every device's outcome"}

    # -- dispatch -------------------------------------------------------------------------------------

    async def call(self, who: Principal, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run tool `name`; ToolError (one line, secrets masked) for anything the agent should read."""
        handler = self.handlers.get(name)
        if handler is None:
            raise ToolError(f"no tool {name!r} (tools: {', '.join(self.handlers)})")
        try:
            return capped(await handler(who, args))
        except ToolError as exc:
            raise ToolError(_line(str(exc))) from None
        except Refused as exc:
            raise ToolError(_line(f"refused: {exc}")) from None
        except service.ServiceError as exc:
            raise ToolError(_line(f"{exc.message}" + (f" ({exc.hint})" if exc.hint else ""))) from None
        except AvctlError as exc:
            prefix = "invalid parameters: " if exc.kind == "validation" else ""
            raise ToolError(_line(prefix + str(exc))) from None
        except (KeyError, TypeError, ValueError) as exc:
            log.debug("tool %s: bad arguments", name, exc_info=True)
            raise ToolError(_line(f"bad arguments for {name}: {type(exc).__name__}: {exc}")) from None


def _line(text: str) -> str:
    """One line, secrets masked, control characters shown as escapes, at most 2,000 characters."""
    shown = printable(REDACTOR.text(" ".join(text.split())))
    return shown if len(shown) <= 2000 else shown[:2000] + " ..."

