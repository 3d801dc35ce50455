"""Directory handlers of the emulated VideoOS system (local CRUD, favorites, groups, queries, XML)."""

from __future__ import annotations

from aiohttp import web

from avctl.emulator.core import Ctx, HTTPError, reply, reply_bytes
from avctl.emulator.videoos.common import HandlerBase, body_object, fail, page, path_int, query_int
from avctl.emulator.videoos.directory import LOCAL_CAPACITY, Entry
from avctl.emulator.videoos.files import TEXT_FIELDS, directory_xml, parse_directory_xml


class DirectoryHandlers(HandlerBase):
    def _entry(self, ctx: Ctx, server_id: str | None = None) -> Entry:
        server = server_id or ctx.path_params.get("serverId", "local")
        directory = self.state.directory
        if directory.server(server) is None:
            raise HTTPError(404, fail(f"no directory server {server!r}"))
        entry = directory.entry(server, ctx.path_params["entryId"])
        if entry is None:
            raise HTTPError(404, fail("no such entry"))
        return entry

    def _dial_entry(self, ctx: Ctx, entry: Entry) -> web.StreamResponse:
        body = body_object(ctx)
        address = entry.first_address(body.get("deviceId"))
        if address is None:
            raise HTTPError(404, fail("the entry has no dialable address"))
        self._dial(address, None, "AUTO")
        return web.Response(status=204)

    def _members(self, ctx: Ctx, entry: Entry) -> web.StreamResponse:
        body = body_object(ctx)
        if entry.type != "GROUP":
            raise HTTPError(400, fail("the entry is not a group"))
        action = body["action"]
        if action == "query":
            query = self.state.directory.member_query(entry)
            return reply({"id": query.id}, 201)
        if entry.read_only:
            raise HTTPError(400, fail("the entry is read-only"))
        member = str(body.get("entryId") or "")
        entries = self.state.directory.server(entry.server_id) or {}
        if member not in entries:
            raise HTTPError(404, fail(f"no entry {member!r} to {action}"))
        if action == "add" and member not in entry.members:
            entry.members.append(member)
        elif action == "remove" and member in entry.members:
            entry.members.remove(member)
        return web.Response(status=204)

    # -- servers and favorites --

    async def on_directory_favorites_get(self, ctx: Ctx) -> web.StreamResponse:
        start = query_int(ctx, "start", 1)
        limit = query_int(ctx, "limit", 1)
        items = [e.summary(n + 1) for n, e in enumerate(self.state.directory.favorite_entries())]
        return reply(page(items, start, limit, "/rest/directory/favorites"))

    async def on_directory_global_server_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self.state.directory.server_info("global"))

    async def on_directory_local_server_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self.state.directory.server_info("local"))

    async def on_directory_global_mtddefaultgroupentry_get(self, ctx: Ctx) -> web.StreamResponse:
        group = next((e for e in self.state.directory.global_.values() if e.type == "GROUP"), None)
        if group is None:
            raise HTTPError(404, fail("no default group"))
        return reply(group.summary(1))

    # -- local entries --

    async def on_directory_local_entries_add(self, ctx: Ctx) -> web.StreamResponse:
        body = body_object(ctx)
        if not any(body.get(name) for name in TEXT_FIELDS[:4]):
            raise HTTPError(400, fail("an entry needs displayName, firstName, lastName or fullName"))
        if len(self.state.directory.local) >= LOCAL_CAPACITY:
            raise HTTPError(507, fail("local directory is full"))
        entry = self.state.directory.add(body)
        return web.Response(status=201, headers={"Location": entry.href()})

    async def on_directory_local_entries_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self._entry(ctx, "local").as_json())

    async def on_directory_local_entries_delete(self, ctx: Ctx) -> web.StreamResponse:
        self.state.directory.delete(self._entry(ctx, "local"))
        return web.Response(status=204)

    async def on_directory_local_entries_update(self, ctx: Ctx) -> web.StreamResponse:
        entry = self._entry(ctx, "local")
        self.state.directory.update(entry, body_object(ctx))
        return web.Response(status=204)

    async def on_directory_local_entries_action(self, ctx: Ctx) -> web.StreamResponse:
        return self._dial_entry(ctx, self._entry(ctx, "local"))

    async def on_directory_local_entries_favorite_set(self, ctx: Ctx) -> web.StreamResponse:
        entry = self._entry(ctx, "local")
        self.state.directory.set_favorite(entry, bool(body_object(ctx)["favorite"]))
        return reply()

    async def on_directory_local_entries_favorite_reorder(self, ctx: Ctx) -> web.StreamResponse:
        entry = self._entry(ctx, "local")
        index = body_object(ctx)["index"]
        if not entry.favorite:
            raise HTTPError(400, fail("the entry is not a favorite"))
        self.state.directory.move_favorite(entry, int(index))
        return reply()

    async def on_directory_local_entries_members(self, ctx: Ctx) -> web.StreamResponse:
        return self._members(ctx, self._entry(ctx, "local"))

    # -- queries --

    async def on_directory_queries_start(self, ctx: Ctx) -> web.StreamResponse:
        query = self.state.directory.search(body_object(ctx))
        return reply({"id": query.id}, 201)

    async def on_directory_queries_initial_get(self, ctx: Ctx) -> web.StreamResponse:
        query = self.state.directory.search({"serverScope": "ALL"})
        return reply({"id": query.id}, 201)

    def _query(self, ctx: Ctx) -> int:
        query_id = path_int(ctx, "queryId")
        if query_id not in self.state.directory.queries:
            raise HTTPError(404, fail("no such query"))
        return query_id

    async def on_directory_queries_get(self, ctx: Ctx) -> web.StreamResponse:
        query = self.state.directory.queries[self._query(ctx)]
        start = query_int(ctx, "start", 1)
        limit = query_int(ctx, "limit", 1)
        if start > len(query.results):
            return web.Response(status=204)  # nothing (more) to return
        items = [e.summary(n + 1) for n, e in enumerate(query.results)]
        return reply(page(items, start, limit, f"/rest/directory/queries/{query.id}"))

    async def on_directory_queries_delete(self, ctx: Ctx) -> web.StreamResponse:
        del self.state.directory.queries[self._query(ctx)]
        return web.Response(status=204)

    # -- entries of any server --

    async def on_directory_server_entry_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self._entry(ctx).as_json())

    async def on_directory_server_entry_action(self, ctx: Ctx) -> web.StreamResponse:
        return self._dial_entry(ctx, self._entry(ctx))

    async def on_directory_server_entry_favorite_set(self, ctx: Ctx) -> web.StreamResponse:
        entry = self._entry(ctx)
        self.state.directory.set_favorite(entry, bool(body_object(ctx)["favorite"]))
        return reply({"success": True, "reason": ""})

    async def on_directory_server_entry_favorite_reorder(self, ctx: Ctx) -> web.StreamResponse:
        entry = self._entry(ctx)
        index = body_object(ctx)["index"]
        if not entry.favorite:
            return reply({"success": False, "reason": "NOT_A_FAVORITE"}, 400)
        self.state.directory.move_favorite(entry, int(index))
        return reply({"success": True, "reason": ""})

    async def on_directory_server_entry_members(self, ctx: Ctx) -> web.StreamResponse:
        return self._members(ctx, self._entry(ctx))

    # -- import / export --

    async def on_directory_import(self, ctx: Ctx) -> web.StreamResponse:
        try:
            entries = parse_directory_xml(ctx.body)
        except ValueError as exc:
            raise HTTPError(400, fail(str(exc))) from None
        self.state.directory.replace_local(entries)
        self.state.log(f"directory imported ({len(entries)} entries)")
        return web.Response(status=204)

    async def on_directory_export(self, ctx: Ctx) -> web.StreamResponse:
        entries = [e.export() for e in self.state.directory.local.values()]
        return reply_bytes(directory_xml(entries), "application/xml", filename="directory.xml")
