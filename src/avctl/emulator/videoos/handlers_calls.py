"""Conference, calendar and collaboration handlers of the emulated VideoOS system."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from avctl.emulator.core import Ctx, HTTPError, reply, reply_bytes
from avctl.emulator.videoos.calls import Conference, Connection, Terminal
from avctl.emulator.videoos.common import HandlerBase, body_object, fail, path_int, query_bool
from avctl.emulator.videoos.files import camera_picture, zip_archive

CONNECTION_FILTERS: dict[str, Callable[[Connection], bool]] = {
    "ALL": lambda c: True,
    "ACTIVE": lambda c: c.state == "CONNECTED",
    "ANSWERABLE": lambda c: c.incoming and c.state == "RINGING",
    "INCOMING": lambda c: c.incoming,
    "PENDING": lambda c: c.state in ("CONNECTING", "RINGING"),
}


class CallHandlers(HandlerBase):
    # -- helpers --

    def _dial(
        self, address: str, rate: int | None, dial_type: str | None, conf_id: int | None = None
    ) -> Connection:
        if self.state.provider != "Poly":
            # partner providers (Teams, Zoom) own calling; Poly's API refuses (PLG observation)
            raise HTTPError(403, fail(f"blocked: the system is in {self.state.provider} provider mode"))
        conn = self.state.calls.dial(self.state.now_ms(), address, rate or 1920, dial_type or "AUTO", conf_id)
        self.state.log(f"call connected to {address} (connection {conn.id})")
        return conn

    def _conf(self, ctx: Ctx) -> Conference:
        conf = self.state.calls.conferences.get(path_int(ctx, "confID"))
        if conf is None:
            raise HTTPError(404, fail("no such conference"))
        return conf

    def _conn(self, ctx: Ctx, conf: Conference) -> Connection:
        conn = conf.connections.get(path_int(ctx, "connID"))
        if conn is None:
            raise HTTPError(404, fail("no such connection"))
        return conn

    def _term(self, ctx: Ctx, conf: Conference) -> Terminal:
        term = conf.terminals.get(path_int(ctx, "termID"))
        if term is None:
            raise HTTPError(404, fail("no such terminal"))
        return term

    @staticmethod
    def _link(conn: Connection) -> dict[str, str]:
        return {"rel": "self", "href": f"/rest/conferences/{conn.conf_id}/connections/{conn.id}"}

    # -- conferences --

    async def on_conferences_get(self, ctx: Ctx) -> web.StreamResponse:
        now = self.state.now_ms()
        return reply([c.as_json(now) for c in self.state.calls.conferences.values()])

    async def on_conferences_dial(self, ctx: Ctx) -> web.StreamResponse:
        body = body_object(ctx, missing=415)
        if not str(body["address"]).strip():
            raise HTTPError(415, fail("address is empty"))
        conn = self._dial(body["address"], body.get("rate"), body.get("dialType"))
        return reply([self._link(conn)])

    async def on_conferences_blast(self, ctx: Ctx) -> web.StreamResponse:
        body = body_object(ctx, missing=415)
        conf_id: int | None = None
        for endpoint in body["endPointList"]:
            first = endpoint["addresses"][0]
            conn = self._dial(first["address"], first.get("rate"), first.get("dialType"), conf_id)
            conf_id = conn.conf_id
        return reply({"rel": "self", "href": f"/rest/conferences/{conf_id}"})

    async def on_conferences_capabilities_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply({"canBlastDial": True, "canMakeAudioCall": True, "canMakeVideoCall": True})

    async def on_conferences_get_one(self, ctx: Ctx) -> web.StreamResponse:
        try:
            int(ctx.path_params["confID"])
        except ValueError:
            raise HTTPError(400, fail("conference id must be a number")) from None
        return reply(self._conf(ctx).as_json(self.state.now_ms()))

    async def on_conferences_hangup(self, ctx: Ctx) -> web.StreamResponse:
        conf = self._conf(ctx)
        self.state.calls.hang_up(conf, self.state.now_ms())
        self.state.log(f"conference {conf.id} hung up")
        return reply(0)

    async def on_conferences_connections_get(self, ctx: Ctx) -> web.StreamResponse:
        conf = self._conf(ctx)
        name = ctx.query.get("filter", "ALL")
        keep = CONNECTION_FILTERS.get(name)
        if keep is None:
            raise HTTPError(400, fail(f"filter must be one of {', '.join(CONNECTION_FILTERS)}"))
        now = self.state.now_ms()
        return reply([c.as_json(now) for c in conf.connections.values() if keep(c)])

    async def on_conferences_connections_add(self, ctx: Ctx) -> web.StreamResponse:
        conf = self._conf(ctx)
        body = body_object(ctx, missing=415)
        conn = self._dial(body["address"], body.get("rate"), body.get("dialType"), conf.id)
        return reply([self._link(conn)])

    async def on_conferences_connection_get(self, ctx: Ctx) -> web.StreamResponse:
        conf = self._conf(ctx)
        return reply(self._conn(ctx, conf).as_json(self.state.now_ms()))

    async def on_conferences_connection_hangup(self, ctx: Ctx) -> web.StreamResponse:
        conf = self._conf(ctx)
        conn = self._conn(ctx, conf)
        self.state.calls.hang_up_connection(conf, conn.id, self.state.now_ms())
        return reply(0)

    async def on_conferences_terminals_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply([t.as_json() for t in self._conf(ctx).terminals.values()])

    async def on_conferences_terminal_get(self, ctx: Ctx) -> web.StreamResponse:
        conf = self._conf(ctx)
        return reply(self._term(ctx, conf).as_json())

    async def on_conferences_terminal_hangup(self, ctx: Ctx) -> web.StreamResponse:
        conf = self._conf(ctx)
        term = self._term(ctx, conf)
        self.state.calls.hang_up_connection(conf, term.connection_id, self.state.now_ms())
        return reply(0)

    async def on_conferences_mediastats_get(self, ctx: Ctx) -> web.StreamResponse:
        conf = self._conf(ctx)
        return reply([s for c in conf.connections.values() for s in self.state.calls.media_stats(c)])

    async def on_conferences_connection_mediastat_get(self, ctx: Ctx) -> web.StreamResponse:
        conf = self._conf(ctx)
        return reply(self.state.calls.media_stats(self._conn(ctx, conf)))

    async def on_conferences_terminal_mediastats_get(self, ctx: Ctx) -> web.StreamResponse:
        conf = self._conf(ctx)
        term = self._term(ctx, conf)
        return reply(self.state.calls.media_stats(conf.connections[term.connection_id]))

    async def on_conferences_term_mediastats_get(self, ctx: Ctx) -> web.StreamResponse:
        conf = self._conf(ctx)
        return reply([{"id": t.id, "quality": "GOOD"} for t in conf.terminals.values()])

    # -- calendar --

    async def on_calendar_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply({"Status": self.state.calendar_status})

    async def on_calendar_meetings_get(self, ctx: Ctx) -> web.StreamResponse:
        q = ctx.query
        if "number" in q and ("start" in q or "end" in q):
            raise HTTPError(400, fail("number cannot be combined with start/end"))
        try:
            number = int(q["number"]) if "number" in q else None
            start = int(q.get("start", time.time()))
            end = int(q["end"]) if "end" in q else start + 24 * 3600
        except ValueError:
            raise HTTPError(400, fail("number, start and end must be integers")) from None
        meetings = sorted(self.state.meetings.values(), key=lambda m: m.start)
        if number is not None:
            now = int(time.time())
            chosen = [m for m in meetings if m.start + m.duration > now][:number]
        else:
            chosen = [m for m in meetings if m.start < end and m.start + m.duration > start]
        return reply([m.as_json(self._in_meeting(m.dial)) for m in chosen])

    def _in_meeting(self, dial: str) -> bool:
        address = dial.split(":", 1)[-1]
        return any(c.address == address for c in self.state.calls.connections())

    async def on_calendar_meetings_get_one(self, ctx: Ctx) -> web.StreamResponse:
        meeting = self.state.meetings.get(ctx.path_params["meetingId"])
        if meeting is None:
            # the reference lists only 200/500 here; 404 is its "unavailable" code for unknown ids
            raise HTTPError(404, fail("no such meeting"))
        return reply(meeting.as_json(self._in_meeting(meeting.dial)))

    async def on_calendar_meetings_dial(self, ctx: Ctx) -> web.StreamResponse:
        meeting = self.state.meetings.get(ctx.path_params["meetingId"])
        if meeting is None:
            raise HTTPError(404, fail("no such meeting"))
        conn = self._dial(meeting.dial.split(":", 1)[-1], None, "SIP")
        return reply({"connectionId": conn.id, "success": True})

    async def on_calendar_discover(self, ctx: Ctx) -> web.StreamResponse:
        body = body_object(ctx)
        if body["domain"] == "email":
            email = str(body.get("email") or "")
            if "@" not in email:
                raise HTTPError(400, fail("email discovery needs an e-mail address"))
            domain = email.split("@", 1)[1]
        else:
            sip = str(self.state.config["comm.nics.sipnic.sipusername"]["value"] or "")
            domain = sip.split("@", 1)[1] if "@" in sip else "example.com"
        answer = {"error": "NOERROR", "serverUrl": f"https://mail.{domain}/EWS/Exchange.asmx"}
        self.state.discovered = {**body, **answer}
        return reply(answer)

    # -- collaboration --

    def _check_pin(self, ctx: Ctx) -> None:
        if ctx.query.get("pin") != self.state.room_pin:
            raise HTTPError(403, fail("PIN invalid"))

    async def on_collaboration_get(self, ctx: Ctx) -> web.StreamResponse:
        # real systems name the fields `id` and `state` (the reference guide: sessionId/sessionState)
        state = "ACTIVE" if self.state.collaboration_active else "INACTIVE"
        return reply({"id": "Local Session", "state": state})

    async def on_collaboration_end(self, ctx: Ctx) -> web.StreamResponse:
        body_object(ctx)
        if not self.state.collaboration_active:
            return web.Response(status=204)
        self.state.collaboration_active = False
        self.state.log("collaboration session ended")
        return reply()

    def _pages(self) -> dict[str, bytes]:
        return {
            f"page_{n + 1}.jpg": camera_picture(-40000 + 20000 * n, 0, -50000, base=200)
            for n in range(self.state.collaboration_pages)
        }

    async def on_collaboration_content_start(self, ctx: Ctx) -> web.StreamResponse:
        self._check_pin(ctx)
        s = self.state
        if not s.collaboration_active or not s.content_save_enabled:
            return web.Response(status=204)
        context_id = uuid.UUID(int=s.rng.getrandbits(128)).hex
        s.saved_content[context_id] = zip_archive(self._pages())
        return reply({"context_id": context_id})

    async def on_collaboration_content_get(self, ctx: Ctx) -> web.StreamResponse:
        self._check_pin(ctx)
        data = self.state.saved_content.get(ctx.query.get("context-id", ""))
        if data is None:
            return web.Response(status=204)  # not ready / unknown context
        return reply_bytes(data, "application/zip", filename="content.zip")

    async def on_collaboration_contentsavestatus_get(self, ctx: Ctx) -> web.StreamResponse:
        self._check_pin(ctx)
        status = query_bool(ctx, "status")
        if status is not None:
            self.state.content_save_enabled = status
        return reply()

    async def on_collaboration_content_all_get(self, ctx: Ctx) -> web.StreamResponse:
        self._check_pin(ctx)
        if not self.state.saved_content:
            return web.Response(status=204)
        files: dict[str, Any] = {f"{cid}.zip": data for cid, data in self.state.saved_content.items()}
        return reply_bytes(zip_archive(files), "application/zip", filename="content_all.zip")
