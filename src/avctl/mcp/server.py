"""The MCP server: tools and resources over the SDK's low-level `Server`, on stdio or streamable HTTP.

One `Tools` (the service functions, confirmation tokens, rate limit) serves every session of the
process. Tool arguments are checked against each tool's input schema first; a failure of any kind
is a tool error (``isError``, one line), never a broken session.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import jsonschema
import mcp_types as types
from jsonschema.exceptions import best_match
from mcp.server import Server, ServerRequestContext

from avctl.mcp import identity
from avctl.mcp.schemas import Catalogue, tool_schemas
from avctl.mcp.tools import ToolError, Tools, shown_data
from avctl.server.model import Principal
from avctl.server.service.devices import in_scope
from avctl.version import __version__

log = logging.getLogger("avctl.mcp")

INVENTORY_URI = "avctl://inventory"
ACTIONS_URI = "avctl://actions/{family}"

DESCRIPTIONS = {
    "find_devices": "Find devices of the AV fleet (video codecs, phones, wireless presentation pods) by "
                    "avctl's selection syntax; returns each device's name, family, site, room, tags and the "
                    "state the fleet server last polled (paged).",
    "device_status": "Read one device's status live (model, firmware, uptime, in call, mute, volume and the "
                     "family's own readings, with units) and its last polled state. Changes nothing.",
    "describe_action": "What one action of a device family does: the spec's description, whether it only reads "
                       "(read) or changes the device (act), whether it is disruptive, which parameters are secret, "
                       "and the JSON Schema of its parameters.",
    "call_action": "Run one action of a device's spec on that device. Parameters are checked against the "
                   "action's schema before anything is sent. Reads always run; changes need the server started "
                   "with --allow-actions; a disruptive action first returns its plan and a one-time "
                   "confirmation token, and runs only when called again with confirm=TOKEN.",
    "fleet_plan": "What a fleet action or verb would do on the selected devices, without doing it: counts per "
                  "family and site, the devices that would be skipped and why, the first devices.",
    "fleet_run": "Run an action or verb on the selected devices as one fleet job. The first call returns the "
                 "plan and a one-time confirmation token; only a second call with the same arguments and "
                 "confirm=TOKEN runs it.",
    "job_status": "A fleet job's state, counts and per-device outcomes (every change made here is a job).",
    "audit_search": "Search the audit log of state-changing calls, newest first (who, device, action, outcome).",
    "config_drift": "The newest configuration drift report: which devices differ from their desired "
                    "configuration, key by key. check=true starts a new check (needs --allow-actions).",
}
READ_ONLY_TOOLS = frozenset({"find_devices", "device_status", "describe_action", "fleet_plan", "job_status",
                             "audit_search"})


def _json(value: Any) -> str:
    # ASCII-only: device text with control characters or bidi overrides leaves as \u escapes
    return json.dumps(value, ensure_ascii=True, indent=1, default=str)


class McpApp:
    """The tools and resources, and who each request acts as."""

    def __init__(self, tools: Tools, catalogue: Catalogue, *, instructions: str) -> None:
        self.tools = tools
        self.catalogue = catalogue
        self.schemas = tool_schemas(catalogue)
        self.validators = {n: jsonschema.Draft202012Validator(s) for n, s in self.schemas.items()}
        self.instructions = instructions

    def principal(self, ctx: ServerRequestContext[Any, Any]) -> Principal:
        params = ctx.session.client_params
        client = identity.client_name(params.client_info.name if params is not None else None)
        request = ctx.request
        user = request.scope.get(identity.SCOPE_KEY) if request is not None else None
        return identity.through(user, client) if isinstance(user, Principal) else identity.operator(client)

    def server(self) -> Server[Any]:
        return Server("avctl", version=__version__, instructions=self.instructions,
                      on_list_tools=self._list_tools, on_call_tool=self._call_tool,
                      on_list_resources=self._list_resources,
                      on_list_resource_templates=self._list_templates, on_read_resource=self._read_resource)

    # -- tools ----------------------------------------------------------------------------------------

    async def _list_tools(self, ctx: ServerRequestContext[Any, Any],
                          params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[
            types.Tool(name=name, description=DESCRIPTIONS[name], input_schema=schema,
                       annotations=types.ToolAnnotations(read_only_hint=name in READ_ONLY_TOOLS,
                                                         destructive_hint=name in ("call_action", "fleet_run")))
            for name, schema in self.schemas.items()])

    async def _call_tool(self, ctx: ServerRequestContext[Any, Any],
                         params: types.CallToolRequestParams) -> types.CallToolResult:
        args = dict(params.arguments or {})
        try:
            validator = self.validators.get(params.name)
            if validator is not None:
                error = best_match(validator.iter_errors(args))
                if error is not None:
                    where = ".".join(str(x) for x in error.absolute_path)
                    raise ToolError(f"invalid arguments for {params.name}: {where + ': ' if where else ''}"
                                    f"{error.message}")
            who = self.principal(ctx)
            result = await self.tools.call(who, params.name, args)
        except ToolError as exc:
            log.info("tool %s refused: %s", params.name, exc)
            return types.CallToolResult(content=[types.TextContent(text=str(exc))], is_error=True)
        except Exception as exc:  # a bug or a broken database: the session goes on, the log has it
            log.exception("tool %s failed", params.name)
            return types.CallToolResult(content=[types.TextContent(
                text=f"internal error in {params.name}: {type(exc).__name__} (avctl mcp --debug logs it)")],
                is_error=True)
        return types.CallToolResult(content=[types.TextContent(text=_json(result))], structured_content=result)

    # -- resources ------------------------------------------------------------------------------------

    async def _list_resources(self, ctx: ServerRequestContext[Any, Any],
                              params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        resources = [types.Resource(uri=INVENTORY_URI, name="inventory", mime_type="application/json",
                                    description="The fleet's devices: names, families, sites, rooms, tags "
                                                "(no addresses' credentials, no secrets).")]
        resources += [types.Resource(uri=ACTIONS_URI.format(family=f), name=f"actions-{f}",
                                     mime_type="application/json",
                                     description=f"Every action of the {f} family: kind, disruptive and secret "
                                                 "marks, parameter schemas.")
                      for f in self.catalogue.families]
        return types.ListResourcesResult(resources=resources)

    async def _list_templates(self, ctx: ServerRequestContext[Any, Any],
                              params: types.PaginatedRequestParams | None) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=[
            types.ResourceTemplate(uri_template=ACTIONS_URI, name="actions", mime_type="application/json",
                                   description="A device family's action catalogue.")])

    async def _read_resource(self, ctx: ServerRequestContext[Any, Any],
                             params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        uri = str(params.uri)
        body: Any
        if uri == INVENTORY_URI:
            body = {"devices": [self._entry(d) for d in in_scope(self.tools.ctx, self.principal(ctx))]}
        elif uri.startswith("avctl://actions/") and uri.removeprefix("avctl://actions/") in self.catalogue.specs:
            family = uri.removeprefix("avctl://actions/")
            body = {"family": family, "actions": self.catalogue.family_actions(family)}
        else:
            raise ValueError(f"no resource {uri!r}: {INVENTORY_URI} or avctl://actions/<family> "
                             f"({', '.join(self.catalogue.families)})")
        return types.ReadResourceResult(contents=[types.TextResourceContents(uri=uri, mime_type="application/json",
                                                                              text=_json(body))])

    @staticmethod
    def _entry(d: Any) -> dict[str, Any]:
        shown: dict[str, Any] = shown_data({"name": d.name, "family": d.family, "site": d.site, "room": d.room,
                                       "tags": sorted(d.tags), "groups": list(d.groups), "disabled": d.disabled})
        return shown


def instructions_for(mode: str, devices: int) -> str:
    return (f"avctl controls an AV fleet of {devices} devices (Poly codecs and phones, Mersive Solstice pods). "
            f"This server is {mode}. Start with find_devices; describe_action explains an action and its "
            "parameters; fleet_plan shows what a fleet action would do before fleet_run. Changes are audited "
            "under this client's name; a disruptive call or a fleet run returns a plan and a one-time "
            "confirmation token first: show the user that plan and confirm only what they agreed to.")

