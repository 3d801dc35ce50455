"""State of an emulated VideoOS system (plain data plus the rules that change it).

Handlers (`handlers*.py`) parse requests and call into this state; tests read it to check that an
action did what it says. Shapes follow the reference (seed 003) and live captures (apiref/videoos.md).

A fresh system has: volume 50, microphones unmuted; near cameras 1 (EagleEye Cube USB, selected
people camera, PTZ), 2 (Aux content input) and 3 (built-in camera); no presets; no call (a far
camera exists only during a call); local directory entries 1 (Alice Meyer, favorite) and 2
(Helpdesk), a read-only global server with g-1, g-2 and the group g-all; three calendar meetings
(in 1 h, 3 h and 30 h); an active collaboration session with two pages and a random 4-digit room
PIN (`state.room_pin`); the Poly provider app; the configuration variables of the spec's catalogue.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from avctl.emulator.videoos.calls import Calls
from avctl.emulator.videoos.directory import Directory
from avctl.families import builtin_spec
from avctl.spec.variables import to_wire


def _default_config() -> dict[str, dict[str, Any]]:
    """The configuration variables: exactly the spec's catalogue. Read-only entries answer
    isEditable false (as S000's captures of cast.*), secret ones are isSecure and hidden."""
    return {
        v.id: {
            "value": str(to_wire(v, v.default)) if v.has_default else "",
            "isEditable": v.settable,
            "isHidden": v.secret,
            "isSecure": v.secret,
        }
        for v in builtin_spec("videoos").variables
        if not v.is_pattern
    }


PAN_TILT_ZOOM_LIMIT = 50000
#: how far one moveStart goes on the emulated camera (the real one moves until moveStop)
MOVE_STEP = 5000
MAX_PRESET = 99

MOVES = {
    "MOVE_LEFT": ("pan", -MOVE_STEP),
    "MOVE_RIGHT": ("pan", MOVE_STEP),
    "MOVE_UP": ("tilt", MOVE_STEP),
    "MOVE_DOWN": ("tilt", -MOVE_STEP),
    "MOVE_ZOOMIN": ("zoom", MOVE_STEP),
    "MOVE_ZOOMOUT": ("zoom", -MOVE_STEP),
    "MOVE_FOCUSNEAR": ("focus", -MOVE_STEP),
    "MOVE_FOCUSFAR": ("focus", MOVE_STEP),
}


def _clamp(value: int) -> int:
    return max(-PAN_TILT_ZOOM_LIMIT, min(PAN_TILT_ZOOM_LIMIT, value))


@dataclass
class Camera:
    index: int
    name: str
    model: str
    content: bool = False
    near: bool = True
    connected: bool = True
    ptz: bool = True
    selected: bool = False
    pan: int = 0
    tilt: int = 0
    zoom: int = 0
    focus: int = 0
    moving: str | None = None
    last_message: str | None = None

    def move(self, direction: str) -> None:
        axis, step = MOVES[direction]
        setattr(self, axis, _clamp(getattr(self, axis) + step))
        self.moving = direction

    def as_json(self) -> dict[str, Any]:
        return {
            "cameraIndex": self.index,
            "iconName": None,
            "model": self.model,
            "name": self.name,
            "sessionID": 0,
            "sourceType": "SRC_CONTENT" if self.content else "SRC_PEOPLE",
            "stateAutoFocus": "off",
            "stateFreeze": "off",
            "stateMarker": "off",
            "connected": self.connected,
            "hasAutoFocus": False,
            "hasFocus": self.ptz,
            "hasFreeze": False,
            "hasMarker": False,
            "hasPan": self.ptz,
            "hasTilt": self.ptz,
            "hasZoom": self.ptz,
            "nearCamera": self.near,
            "ptzcapable": self.ptz,
            "selected": self.selected,
            "trackable": self.ptz,
        }


@dataclass
class Preset:
    index: int
    camera: int
    pan: int
    tilt: int
    zoom: int
    with_image: bool = False

    def as_json(self) -> dict[str, Any]:
        image = f"/rest/cameras/snapshot/near_image_1.jpg?preset={self.index}" if self.with_image else ""
        return {"imageLocation": image, "index": self.index, "sessionId": 0, "near": True, "stored": True}


def _default_near() -> dict[int, Camera]:
    return {
        1: Camera(1, "EagleEye Cube USB", "EAGLEEYE_CUBE_USB", selected=True),
        2: Camera(2, "Aux", "", content=True, ptz=False, selected=True),
        3: Camera(3, "Studio X50 Camera", "STUDIO_X50", connected=True),
    }


@dataclass
class Meeting:
    id: str
    subject: str
    start: int  # epoch seconds
    duration: int  # seconds
    dial: str
    organizer: str = "facilities@example.com"

    def as_json(self, in_call: bool) -> dict[str, Any]:
        return {
            "actions": [self.dial, ""],
            "body": "",
            "canDial": True,
            "canceled": False,
            "duration": self.duration,
            "id": self.id,
            "inCall": in_call,
            "location": "Emulated room",
            "optionalAttendees": [],
            "organizer": self.organizer,
            "privateMeeting": False,
            "recurring": False,
            "requiredAttendees": [self.organizer],
            "startTime": self.start,
            "subject": self.subject,
            "lastSyncTime": int(time.time()),
        }


def _default_meetings() -> dict[str, Meeting]:
    now = int(time.time())
    items = [
        Meeting("mtg-1", "Weekly sync", now + 3600, 1800, "sip:weekly@meet.example.com"),
        Meeting("mtg-2", "Design review", now + 3 * 3600, 3600, "sip:design@meet.example.com"),
        Meeting("mtg-3", "All hands", now + 30 * 3600, 3600, "h323:4711@gw.example.com"),
    ]
    return {m.id: m for m in items}


PROVIDER_APPS = [
    # the Poly app as a Studio X30 names it (AVISPL capture); the partner apps' names are not captured
    {"appName": "Poly", "personaName": "Poly", "packageName": "com.poly.polylauncher"},
    {"appName": "ZoomRooms", "personaName": "Zoom Rooms", "packageName": "us.zoom.zpcontroller"},
    {
        "appName": "MicrosoftTeams",
        "personaName": "Microsoft Teams Rooms",
        "packageName": "com.microsoft.skype.teams.ipphone",
    },
]


@dataclass
class VideoOSState:
    name: str
    firmware: str
    rng: random.Random
    model: str = "StudioX50"
    serial: str = ""
    # audio
    muted: bool = False
    mute_locked: bool = False
    volume: int = 50
    test_tone: bool = False
    acoustic_fence: bool = False
    audio_events: list[dict[str, Any]] = field(default_factory=list)
    fence_events: list[dict[str, Any]] = field(default_factory=list)
    # video and cameras
    video_muted: bool = False
    near: dict[int, Camera] = field(default_factory=_default_near)
    presets: dict[int, Preset] = field(default_factory=dict)
    content_status: str = "CONTENT_IDLE"
    content_streams: list[dict[str, Any]] = field(default_factory=list)
    # calls, directory, calendar
    calls: Calls = field(default_factory=Calls)
    directory: Directory = field(default_factory=Directory)
    calendar_status: str = "ONLINE"
    meetings: dict[str, Meeting] = field(default_factory=_default_meetings)
    discovered: dict[str, Any] | None = None
    # collaboration (whiteboard / content session)
    room_pin: str = ""
    collaboration_active: bool = True
    collaboration_pages: int = 2
    content_save_enabled: bool = True
    saved_content: dict[str, bytes] = field(default_factory=dict)
    # system
    booted_at: float = field(default_factory=time.time)
    reboots: int = 0
    peripheral_restarts: int = 0
    #: device types (CAMERA, TOUCHCONTROL, REMOTE) unplugged: left out of the peripherals list
    detached: set[str] = field(default_factory=set)
    resets: list[dict[str, bool]] = field(default_factory=list)
    config: dict[str, dict[str, Any]] = field(default_factory=_default_config)
    time_offset_ms: int = 0
    tz_offset: int = 0
    device_mode: bool = False
    signage_mode: bool = False
    environment_app: bool = False
    provider: str = "Poly"
    log_lines: list[str] = field(default_factory=list)
    pings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.serial:
            self.serial = "8L19" + "".join(self.rng.choice("0123456789ABCDEF") for _ in range(10))
        if not self.room_pin:
            self.room_pin = "".join(self.rng.choice("0123456789") for _ in range(4))
        self.config["device.local.devicename"]["value"] = self.name
        self.log("system started")

    # -- general --

    def log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.now_ms() / 1000))
        self.log_lines.append(f"{stamp} {message}")

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.time_offset_ms

    @property
    def uptime(self) -> float:
        return round(max(0.0, time.time() - self.booted_at), 2)

    @property
    def system_name(self) -> str:
        return str(self.config["device.local.devicename"]["value"] or self.name)

    def system(self) -> dict[str, Any]:
        return {
            "systemName": self.system_name,
            "serialNumber": self.serial,
            "model": self.model,
            "hardwareVersion": "1",
            "softwareVersion": self.firmware,
            "buildType": "Release",  # capitalised, as a Studio X30 sends it (AVI multi.json)
            "build": "460046",
            "systemTime": self.now_ms(),
            "timeOffset": self.tz_offset,
            "uptime": self.uptime,
            "state": "READY",
            # a StudioX50 on 4.6.2 sends canStartUpdate (seed 000), a Studio X30 on 3.12.0 does not
            # (AVI multi.json): the member is there from VideoOS 4 on
            **({"canStartUpdate": True} if _major(self.firmware) >= 4 else {}),
            "rebootNeeded": False,
            "lanStatus": {"state": "LAN_UP", "speedMbps": 1000, "duplex": "FULL"},
            "timeServerState": "TIMESERVER_UP",
        }

    # -- cameras --

    def selected_people(self) -> Camera:
        return next(c for c in self.near.values() if c.selected and not c.content)

    def selected_content(self) -> Camera:
        return next(c for c in self.near.values() if c.selected and c.content)

    def far_cameras(self) -> dict[int, Camera]:
        """The far end's camera exists only while a call is up."""
        if not self.calls.conferences:
            return {}
        return {1: self.calls.far_camera}

    def preset(self, camera: Camera, action: str, index: int, with_image: bool) -> bool:
        """store / activate / clear preset `index`; False when activating an empty preset."""
        if action == "store":
            self.presets[index] = Preset(
                index, camera.index, camera.pan, camera.tilt, camera.zoom, with_image
            )
        elif action == "clear":
            self.presets.pop(index, None)
        else:
            preset = self.presets.get(index)
            if preset is None:
                return False
            target = self.near.get(preset.camera, camera)
            target.pan, target.tilt, target.zoom = preset.pan, preset.tilt, preset.zoom
        return True

    # -- system --

    def reboot(self, downtime: float, restart_all: bool = False) -> None:
        self.reboots += 1
        self.peripheral_restarts += int(restart_all)
        self.calls.hang_up_all(self.now_ms())
        for cam in self.near.values():
            cam.moving = None
        self.test_tone = False
        self.booted_at = time.time() + downtime
        self.log(f"reboot requested (restartAll={restart_all})")

    def reset_settings(self, keep: dict[str, bool]) -> None:
        """Factory-reset what `keep` does not keep (keys: certificates, cdr, directory, logs)."""
        self.resets.append(dict(keep))
        self.config = _default_config()
        self.config["device.local.devicename"]["value"] = self.name
        self.volume, self.muted, self.video_muted = 50, False, False
        self.presets.clear()
        self.device_mode = self.signage_mode = self.environment_app = False
        self.provider = "Poly"
        self.time_offset_ms, self.tz_offset = 0, 0
        if not keep.get("directory"):
            self.directory = Directory()
        if not keep.get("cdr"):
            self.calls.cdr.clear()
        if not keep.get("logs"):
            self.log_lines.clear()
        self.log(f"settings reset (keep={keep})")

    def status(self) -> list[dict[str, Any]]:
        """The indicators with the names and langtags a Studio X30 sends (tests/fidelity cites it)."""

        def item(langtag: str, name: str, state: str) -> dict[str, Any]:
            return {"langtag": langtag, "name": f"system.status.{name}", "stateList": [state]}

        def up(flag: bool, on: str = "up") -> str:
            return on if flag else "off"

        cameras = [c.connected for c in self.near.values()]
        remote = "REMOTE" not in self.detached and self.config["system.network.wireless.bt.enabled"]["value"] == "True"
        return [
            item("LAN_NETWORK_HEADING", "ipnetwork", "up"),
            item("CAMERA_MODEL_BUILT_IN_1.0", "trackablecamera", up(any(cameras))),
            item("AUTO_ANSWER_P2P_HEADING", "autoanswerp2p", "up"),
            item("SIP_SERVER_HEADING", "sipserver", up(bool(self.config["comm.nics.sipnic.sipusername"]["value"]))),
            item("GATEKEEPER_HEADING", "gatekeeper", up(bool(self.config["comm.nics.h323nic.h323name"]["value"]))),
            item("CAMERAS_HEADING", "mr.camera", up(bool(cameras) and all(cameras), "all_up")),
            item("PROVISIONING_SERVICE_HEADING", "provisioning", "off"),
            item("MICROPHONES_HEADING", "mr.audio", "all_up"),
            item("REMOTE_CONTROL_HEADING", "remotecontrol", up(remote)),
            item("LOG_THRESHOLD_HEADING", "logthreshold", "off"),
            item("SYSTEM_STATUS_GLOBALDIRECTORY_SERVER", "globaldirectory", "off"),
            item("CALENDAR_SERVICE_HEADING", "calendar", up(self.calendar_status == "ONLINE")),
        ]

    def provider_apps(self) -> list[dict[str, Any]]:
        return [
            {
                **app,
                "appSize": 104857600,
                "ecoMode": False,
                "lastUpdatedOn": 1700000000000,
                "polyCallFeaturesEnabled": app["appName"] == "Poly",
                "versionInfo": self.firmware if app["appName"] == "Poly" else "1.0.0",
            }
            for app in PROVIDER_APPS
        ]

    def mode(self) -> dict[str, Any]:
        persona = next(a["personaName"] for a in PROVIDER_APPS if a["appName"] == self.provider)
        return {
            "activePersona": persona,
            "app": self.provider,
            "appLocked": False,
            "appPersona": persona,
            "ecoMode": False,
            "mode": "DEVICE" if self.device_mode else ("SIGNAGE" if self.signage_mode else "NORMAL"),
            "polyCallControl": self.provider == "Poly",
        }


def _major(version: str) -> int:
    """The major number of a firmware version ("4.6.2" -> 4; 0 when it does not start with one)."""
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0
