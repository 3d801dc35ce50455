"""Per-action handlers of the emulated VideoOS system: one `on_<action_id>` method per spec action.

The handlers live in mixins by area (audio/cameras/video, calls/calendar/collaboration, directory,
system); this class puts them together for `EmulatedVideoOS`. The state they read and change is
`avctl.emulator.videoos.state.VideoOSState`.
"""

from __future__ import annotations

from aiohttp import web

from avctl.emulator.core import Ctx
from avctl.emulator.videoos.handlers_av import AudioVideoHandlers
from avctl.emulator.videoos.handlers_calls import CallHandlers
from avctl.emulator.videoos.handlers_directory import DirectoryHandlers
from avctl.emulator.videoos.handlers_system import SystemHandlers


class VideoOSHandlers(AudioVideoHandlers, CallHandlers, DirectoryHandlers, SystemHandlers):
    # Login and logout are answered by EmulatedVideoOS.authenticate before routing; these handlers
    # only make the routes complete should a request ever reach them.

    async def on_session_login(self, ctx: Ctx) -> web.StreamResponse:
        return self._login(ctx.request, ctx.body)

    async def on_session_logout(self, ctx: Ctx) -> web.StreamResponse:
        return self._logout(ctx.request)
