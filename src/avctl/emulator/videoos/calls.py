"""Calls on an emulated VideoOS system: conferences, their connections and terminals, media stats.

The system holds at most one conference (its internal bridge): a dial while a call is up adds a
connection to it, as the room UI does. Every connection has one far-end terminal. Hanging up the
last connection ends the conference. Ended calls go to the call detail record (CDR).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from avctl.emulator.videoos.state import Camera

AUDIO_ONLY = {
    "VOICE",
    "ISDN_VOICE",
    "POTS",
    "SIP_SPEAKERPHONE",
    "POTS_SPEAKERPHONE",
    "VOICE_H323",
    "VOICE_SIP",
    "VOICE_GATEWAY",
}


@dataclass
class Connection:
    id: int
    conf_id: int
    address: str
    rate: int
    dial_type: str
    terminal_id: int
    started_ms: int
    incoming: bool = False
    state: str = "CONNECTED"
    dtmf: str = ""

    @property
    def audio_only(self) -> bool:
        return self.dial_type in AUDIO_ONLY

    def as_json(self, now_ms: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "ENDPOINT",
            "state": self.state,
            "callType": "SIP" if self.dial_type in ("AUTO", "SIP", "VIDEO") else self.dial_type,
            "mediaType": "AUDIO" if self.audio_only else "AUDIOVIDEO",
            "callInfo": "",
            "causeCode": "",
            "rate": self.rate,
            "address": self.address,
            "percentConnected": 100,
            "incoming": self.incoming,
            "encrypted": True,
            "authState": "AUTHENTICATED",
            "mediaCount": 2 if self.audio_only else 4,
            "terminals": [
                {"rel": "terminal", "href": f"/rest/conferences/{self.conf_id}/terminals/{self.terminal_id}"}
            ],
            "startTime": self.started_ms,
            "duration": (now_ms - self.started_ms) // 1000,
            "parentConfId": self.conf_id,
            "answerable": False,
            "groupname": "",
            "grouptype": "",
            "canAddVideo": self.audio_only,
            "videoEscalationState": "NONE",
            "referredBy": "",
        }


@dataclass
class Terminal:
    id: int
    conf_id: int
    connection_id: int
    address: str
    muted: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.address.split("@")[0],
            "callerID": self.address,
            "address": self.address,
            "systemID": "",
            "muted": self.muted,
            "holdState": "NOTHELD",
            "termType": "REAL",
            "muteLocked": False,
            "canSupportMediaStatus": True,
            "parentConfId": self.conf_id,
            "parentConnectionId": self.connection_id,
            "fullDescription": self.address,
            "mediaServerType": "NONE",
            "streamsState": "AVC",
        }


@dataclass
class Conference:
    id: int
    started_ms: int
    connections: dict[int, Connection] = field(default_factory=dict)
    terminals: dict[int, Terminal] = field(default_factory=dict)
    far_video_muted: bool = False
    far_video_mutelock: bool = False

    def as_json(self, now_ms: int) -> dict[str, Any]:
        caps = dict.fromkeys(
            (
                "canGetRoster",
                "canMuteConference",
                "canMuteTerminal",
                "canPresent",
                "canAddTerminal",
                "canRemoveTerminal",
                "canHangupConference",
                "canLeaveConference",
                "canBlastDial",
                "canEscalateCall",
                "canHoldConf",
                "canAddVideo",
            ),
            True,
        )
        caps.update(
            dict.fromkeys(
                (
                    "canAcquireChair",
                    "canAcquireFloor",
                    "canShowCloseWide",
                    "canJoinChairControlConf",
                    "canJoinCCCP",
                    "canJoinMRC",
                    "canJoinInternalConf",
                    "cannotJoinConf",
                    "canSupportSecurityClassification",
                ),
                False,
            )
        )
        return {
            "id": self.id,
            "capabilities": caps,
            "connections": [c.as_json(now_ms) for c in self.connections.values()],
            "terminals": [t.as_json() for t in self.terminals.values()],
            "startTime": self.started_ms,
            "duration": (now_ms - self.started_ms) // 1000,
            "isSvcConference": False,
            "isActive": True,
            "isHolding": False,
            "isMute": False,
            "holdState": "NOTHELD",
            "holdStartTime": 0,
            "mediaServerType": "NONE",
            "mediaServerControlEvent": "NONE",
            "isWaitingInLobby": False,
        }


def _far_camera() -> Camera:
    from avctl.emulator.videoos.state import Camera

    return Camera(1, "Main", "", near=False, selected=True)


@dataclass
class Calls:
    conferences: dict[int, Conference] = field(default_factory=dict)
    cdr: list[dict[str, Any]] = field(default_factory=list)
    next_conf: int = 0
    next_id: int = 1
    far_camera: Camera = field(default_factory=_far_camera)

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def dial(
        self, now_ms: int, address: str, rate: int = 1920, dial_type: str = "AUTO", conf_id: int | None = None
    ) -> Connection:
        """Connect to `address`, in conference `conf_id` or the current one (a new one when idle)."""
        if conf_id is None:
            conf = next(iter(self.conferences.values()), None)
            if conf is None:
                conf = Conference(self.next_conf, now_ms)
                self.conferences[conf.id] = conf
                self.next_conf += 1
                self.far_camera = _far_camera()
        else:
            conf = self.conferences[conf_id]
        conn_id, term_id = self._new_id(), self._new_id()
        conn = Connection(conn_id, conf.id, address, rate, dial_type, term_id, now_ms)
        conf.connections[conn_id] = conn
        conf.terminals[term_id] = Terminal(term_id, conf.id, conn_id, address)
        return conn

    def hang_up_connection(self, conf: Conference, conn_id: int, now_ms: int) -> None:
        conn = conf.connections.pop(conn_id)
        conf.terminals.pop(conn.terminal_id, None)
        self.cdr.append(
            {
                "address": conn.address,
                "rate": conn.rate,
                "dialType": conn.dial_type,
                "start": conn.started_ms,
                "end": now_ms,
                "dtmf": conn.dtmf,
            }
        )
        if not conf.connections:
            del self.conferences[conf.id]

    def hang_up(self, conf: Conference, now_ms: int) -> None:
        for conn_id in list(conf.connections):
            self.hang_up_connection(conf, conn_id, now_ms)
        self.conferences.pop(conf.id, None)

    def hang_up_all(self, now_ms: int) -> None:
        for conf in list(self.conferences.values()):
            self.hang_up(conf, now_ms)

    def connections(self) -> list[Connection]:
        return [c for conf in self.conferences.values() for c in conf.connections.values()]

    @staticmethod
    def media_stats(conn: Connection) -> list[dict[str, Any]]:
        """One entry per stream of the connection (TX/RX audio, and video unless audio-only)."""
        streams = [("TX", "AUDIO", "audioTx"), ("RX", "AUDIO", "audioRx")]
        if not conn.audio_only:
            streams += [("TX", "VIDEO", "videoTx"), ("RX", "VIDEO", "videoRx")]
        out = []
        for index, (direction, media, stream) in enumerate(streams):
            video = media == "VIDEO"
            rate = max(64, conn.rate - 128) if video else 128
            out.append(
                {
                    "connectionID": conn.id,
                    "mediaDirection": direction,
                    "mediaType": media,
                    "index": index,
                    "mediaState": "OPENED",
                    "mediaStream": stream,
                    "mediaAlgorithm": "H.264" if video else "G.722.1C",
                    "mediaFormat": "720p" if video else "",
                    "encryptionType": "SRTP",
                    "encryptionAlgorithm": "AES_128",
                    "encryptionMode": "ON",
                    "errorConcealment": 0,
                    "numberOfErrors": 0,
                    "bitRate": rate,
                    "actualBitRate": rate,
                    "frameRate": 30 if video else 0,
                    "actualFrameRate": 30 if video else 0,
                    "totalPackets": (int(time.time() * 1000) - conn.started_ms) // 20,
                    "packetLoss": 0,
                    "percentPacketLoss": 0.0,
                    "jitter": 1,
                    "maxJitter": 3,
                    "latency": 20,
                    "address": conn.address,
                    "activeAnnexes": "",
                    "reservationProtocol": "NONE",
                    "reservationState": "NONE",
                    "reservationError": "",
                    "termId": conn.terminal_id,
                    "prevTermId": -1,
                    "quality": "GOOD",
                    "uniqueId": f"{conn.id}-{stream}",
                }
            )
        return out
