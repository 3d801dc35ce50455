"""Per-action handlers of the emulated VideoOS system: one `on_<action_id>` method per spec action."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from avctl.emulator.core import Ctx, HTTPError, reply

if TYPE_CHECKING:
    from avctl.emulator.videoos.state import VideoOSState


class VideoOSHandlers:
    """Mixed into `EmulatedVideoOS` (which provides `reboot()` and the rest of `EmulatedDevice`)."""

    state: VideoOSState

    if TYPE_CHECKING:

        def reboot(self, seconds: float | None = None) -> None: ...

    # -- audio --

    async def on_audio_get(self, ctx: Ctx) -> web.StreamResponse:
        s = self.state
        return reply(
            {"muteLocked": s.mute_locked, "muted": s.muted, "numOfMicsConnected": 1, "volume": s.volume}
        )

    async def on_audio_muted_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self.state.muted)

    async def on_audio_muted_set(self, ctx: Ctx) -> web.StreamResponse:
        value = ctx.json()
        if not isinstance(value, bool):
            raise HTTPError(400, {"success": False, "reason": "expected true or false"})
        self.state.muted = value
        return reply()

    async def on_audio_volume_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self.state.volume)

    async def on_audio_volume_set(self, ctx: Ctx) -> web.StreamResponse:
        value = ctx.json()
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            raise HTTPError(400, {"success": False, "reason": "volume must be an integer 0..100"})
        self.state.volume = value
        return reply()

    # -- system --

    async def on_system_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self.state.system())

    async def on_system_reboot(self, ctx: Ctx) -> web.StreamResponse:
        body: Any = ctx.json() or {}
        if not isinstance(body, dict):
            raise HTTPError(400, {"success": False, "reason": "expected a JSON object"})
        self.state.reboots += 1
        self.state.booted_at = time.time()
        self.reboot()
        return reply()

    async def on_config_get(self, ctx: Ctx) -> web.StreamResponse:
        body = ctx.json()
        names = body.get("names") if isinstance(body, dict) else None
        if not isinstance(names, list):
            raise HTTPError(400, {"success": False, "reason": 'expected {"names": [...]}'})
        out = []
        for name in names:
            var = self.state.config.get(str(name))
            if var is None:
                out.append({"name": name, "result": "NOTFOUND", "value": ""})
            else:
                out.append({"name": name, "result": "NOERROR", **var})
        return reply({"vars": out})
