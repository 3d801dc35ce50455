"""Audio, camera and video handlers of the emulated VideoOS system."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from avctl.emulator.core import Ctx, HTTPError, reply, reply_bytes
from avctl.emulator.videoos.common import HandlerBase, body_object, fail, path_int
from avctl.emulator.videoos.files import camera_picture
from avctl.emulator.videoos.state import MAX_PRESET, Camera

SNAPSHOTS = ("near_image_1.jpg", "far_image_1.jpg", "content_image_1.jpg")


class AudioVideoHandlers(HandlerBase):
    # -- audio --

    async def on_audio_get(self, ctx: Ctx) -> web.StreamResponse:
        s = self.state
        return reply(
            {"muteLocked": s.mute_locked, "muted": s.muted, "numOfMicsConnected": 2, "volume": s.volume}
        )

    def _audio_action(self, ctx: Ctx, events: list[dict[str, Any]]) -> dict[str, Any]:
        body = body_object(ctx)
        if body["action"] == "playDTMF":
            if not body.get("dtmfChar"):
                raise HTTPError(400, fail("playDTMF needs dtmfChar"))
            for conn in self.state.calls.connections():
                conn.dtmf += str(body["dtmfChar"])
        events.append(body)
        return body

    async def on_audio_action(self, ctx: Ctx) -> web.StreamResponse:
        body = self._audio_action(ctx, self.state.audio_events)
        if body["action"] == "playTestTone":
            self.state.test_tone = True
        elif body["action"] == "stopPlayingTestTone":
            self.state.test_tone = False
        return reply()

    async def on_audio_acousticfence_action(self, ctx: Ctx) -> web.StreamResponse:
        body = self._audio_action(ctx, self.state.fence_events)
        if body["action"] == "start":
            self.state.acoustic_fence = True
        return reply()

    async def on_audio_audiometers_get(self, ctx: Ctx) -> web.StreamResponse:
        ports = [
            ("IN", 0, "FAR_IN"),
            ("IN", 1, "CAMERA_MIC"),
            ("IN", 2, "IP_TABLE_MIC"),
            ("IN", 3, "POLYCOM_MIC"),
            ("IN", 9, "THREE_POINT_FIVE"),
            ("IN", 10, "HDMI"),
            ("OUT", 0, "LINE_OUT"),
        ]
        in_call = bool(self.state.calls.conferences)
        meters = []
        for n, (direction, instance, name) in enumerate(ports):
            live = not (self.state.muted and name.endswith("MIC")) and (name != "FAR_IN" or in_call)
            level = -20 - self.state.rng.randint(0, 10) if live else -96
            meters.append(
                {
                    "isValid": live,
                    "levelBack": level,
                    "levelCenter": level,
                    "levelLeft": level,
                    "levelRight": level,
                    "meterIndex": n,
                    "nameInstance": n,
                    "portDirection": direction,
                    "portInstance": instance,
                    "portName": name,
                    "validChanMode": "left_and_right",
                }
            )
        return reply(meters)

    async def on_audio_microphones_get(self, ctx: Ctx) -> web.StreamResponse:
        # array with mute as 0/1, as captured from a live system (the reference shows one object)
        mute = int(self.state.muted)
        return reply(
            [
                {
                    "number": 0,
                    "mute": mute,
                    "type": 0,
                    "typeInString": "Studio X50 built-in microphone",
                    # a built-in microphone reports no versions: "NA" (AVI: a Studio X30's)
                    "hwVersion": "NA",
                    "swVersion": "NA",
                    "parentID": 0,
                    "state": "MIC_STATE_GREEN",
                },
                {
                    "number": 1,
                    "mute": mute,
                    "type": 3,
                    "typeInString": "Polycom IP Table Microphone",
                    "hwVersion": "2",
                    "swVersion": "1.2.0",
                    "parentID": 0,
                    "state": "MIC_STATE_RED" if mute else "MIC_STATE_GREEN",
                },
            ]
        )

    async def on_audio_muted_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self.state.muted)

    async def on_audio_muted_set(self, ctx: Ctx) -> web.StreamResponse:
        value = ctx.json()
        if not isinstance(value, bool):
            raise HTTPError(400, fail("expected true or false"))
        if self.state.mute_locked:
            raise HTTPError(400, fail("mute is locked by the far end"))
        self.state.muted = value
        return reply()

    async def on_audio_volume_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self.state.volume)

    async def on_audio_volume_set(self, ctx: Ctx) -> web.StreamResponse:
        value = ctx.json()
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            raise HTTPError(400, fail("volume must be an integer 0..100"))
        self.state.volume = value
        return reply()

    # -- cameras --

    async def on_cameras_sourceselectable_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(not self.state.device_mode)

    async def on_cameras_contentstatus_get(self, ctx: Ctx) -> web.StreamResponse:
        # the bare word, not a JSON string, though labelled JSON: a Studio X30 answers
        # `CONTENT_IDLE` (AVI multi.json) and AVI's client keeps the body as it comes
        return web.Response(text=self.state.content_status, content_type="application/json")

    async def on_cameras_near_all_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply([c.as_json() for c in self.state.near.values()])

    async def on_cameras_near_people_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply([c.as_json() for c in self.state.near.values() if not c.content])

    async def on_cameras_near_content_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply([c.as_json() for c in self.state.near.values() if c.content])

    def _near(self, ctx: Ctx) -> Camera:
        camera = self.state.near.get(path_int(ctx, "sourceID"))
        if camera is None:
            raise HTTPError(404, fail("no such camera source"))
        return camera

    def _far(self, ctx: Ctx) -> Camera:
        far = self.state.far_cameras()
        if not far:
            raise HTTPError(404, fail("no far end: not in a call"))
        try:
            camera = far.get(int(ctx.path_params["sourceID"])) if "sourceID" in ctx.path_params else far[1]
        except ValueError:
            camera = None
        if camera is None:
            raise HTTPError(400, fail("no such far camera"))
        return camera

    def _move(self, ctx: Ctx, camera: Camera) -> web.StreamResponse:
        body = body_object(ctx)
        action = body["action"]
        if body.get("message"):
            camera.last_message = body["message"]
        if action == "moveStart":
            if "direction" not in body:
                raise HTTPError(400, fail("moveStart needs a direction"))
            if not camera.ptz:
                raise HTTPError(400, fail("this source cannot move"))
            camera.move(body["direction"])
        elif action == "moveStop":
            camera.moving = None
        # store/activate/clear without a preset index: the reference names no preset; accepted as is
        return reply()

    async def on_cameras_near_source_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self._near(ctx).as_json())

    async def on_cameras_near_source_move(self, ctx: Ctx) -> web.StreamResponse:
        return self._move(ctx, self._near(ctx))

    async def on_cameras_near_selectedpeople_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self.state.selected_people().as_json())

    async def on_cameras_near_selectedpeople_move(self, ctx: Ctx) -> web.StreamResponse:
        return self._move(ctx, self.state.selected_people())

    async def on_cameras_near_selectedcontent_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self.state.selected_content().as_json())

    async def on_cameras_near_selectedcontent_move(self, ctx: Ctx) -> web.StreamResponse:
        return self._move(ctx, self.state.selected_content())

    async def on_cameras_near_presets_all_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply([p.as_json() for _, p in sorted(self.state.presets.items())])

    def _preset_index(self, ctx: Ctx) -> int:
        try:
            index = int(ctx.path_params["index"])
        except ValueError:
            index = -1
        if not 0 <= index <= MAX_PRESET:
            raise HTTPError(400, fail(f"preset index must be 0..{MAX_PRESET}"))
        return index

    async def on_cameras_near_presets_index_get(self, ctx: Ctx) -> web.StreamResponse:
        index = self._preset_index(ctx)
        preset = self.state.presets.get(index)
        if preset is None:
            return reply({"imageLocation": "", "index": index, "sessionId": 0, "near": True, "stored": False})
        return reply(preset.as_json())

    async def on_cameras_near_presets_index_update(self, ctx: Ctx) -> web.StreamResponse:
        index = self._preset_index(ctx)
        body = body_object(ctx)
        camera = self.state.selected_people()
        if not self.state.preset(camera, body["action"], index, body.get("withImage") == "Yes"):
            raise HTTPError(400, fail(f"preset {index} is not stored"))
        return reply()

    async def on_cameras_near_position_move(self, ctx: Ctx) -> web.StreamResponse:
        if ctx.path_params["sourceID"] != "SELECTED_PEOPLE":
            raise HTTPError(400, fail("only SELECTED_PEOPLE is available"))
        body = body_object(ctx)
        camera = self.state.selected_people()
        position = body["camPosition"]
        # as the reference states it: relative=true sets the coordinates, false offsets them
        absolute = bool(body.get("relative", True))
        for axis in ("pan", "tilt", "zoom"):
            value = int(position[axis]) if absolute else getattr(camera, axis) + int(position[axis])
            setattr(camera, axis, max(-50000, min(50000, value)))
        return reply()

    async def on_cameras_far_all_get(self, ctx: Ctx) -> web.StreamResponse:
        far = self.state.far_cameras()
        if not far:
            raise HTTPError(404, fail("no far end: not in a call"))
        return reply([c.as_json() for c in far.values()])

    async def on_cameras_far_selectedpeople_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self._far(ctx).as_json())

    async def on_cameras_far_selectedpeople_move(self, ctx: Ctx) -> web.StreamResponse:
        return self._move(ctx, self._far(ctx))

    async def on_cameras_far_source_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self._far(ctx).as_json())

    async def on_cameras_far_source_move(self, ctx: Ctx) -> web.StreamResponse:
        return self._move(ctx, self._far(ctx))

    async def on_cameras_snapshot_get(self, ctx: Ctx) -> web.StreamResponse:
        name = ctx.path_params["snapshotID"]
        if name not in SNAPSHOTS:
            raise HTTPError(400, fail(f"snapshot must be one of {', '.join(SNAPSHOTS)}"))
        if name.startswith("near"):
            cam = self.state.selected_people()
            data = camera_picture(cam.pan, cam.tilt, cam.zoom)
        elif name.startswith("far"):
            far = self.state.far_cameras()
            if not far:
                raise HTTPError(400, fail("no far end: not in a call"))
            data = camera_picture(far[1].pan, far[1].tilt, far[1].zoom, base=120)
        else:
            data = camera_picture(0, 0, -50000, base=180)
        return reply_bytes(data, "image/jpeg", filename=name)

    # -- video --

    async def on_video_local_mute_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply({"result": self.state.video_muted})

    async def on_video_local_mute_set(self, ctx: Ctx) -> web.StreamResponse:
        self.state.video_muted = bool(body_object(ctx)["mute"])
        return reply({"success": True, "reason": ""})

    def _conference(self, ctx: Ctx) -> Any:
        conf = self.state.calls.conferences.get(path_int(ctx, "confID"))
        if conf is None:
            raise HTTPError(404, fail("no such conference"))
        return conf

    async def on_video_remote_conf_mute_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply({"result": self._conference(ctx).far_video_muted})

    async def on_video_remote_conf_mutelock_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply({"result": self._conference(ctx).far_video_mutelock})

    async def on_mediastats_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply({"vars": list(self.state.content_streams)})
