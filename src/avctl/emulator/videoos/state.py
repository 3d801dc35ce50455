"""State of an emulated VideoOS system (plain data; handlers in `handlers.py` read and change it)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any


def _default_config() -> dict[str, dict[str, Any]]:
    def var(value: str, editable: bool = True) -> dict[str, Any]:
        return {"value": value, "isEditable": editable, "isHidden": False, "isSecure": False}

    return {
        "system.network.wireless.wifi.enabled": var("True"),
        "system.network.wireless.bt.enabled": var("True"),
        "cast.miracast.enabled": var("True", editable=False),
        "cast.airplay.enabled": var("True", editable=False),
        "comm.nics.sipnic.sipusername": var(""),
        "comm.nics.h323nic.h323name": var(""),
        "comm.nics.h323nic.h323extension": var(""),
        "device.local.devicename": var(""),
    }


@dataclass
class VideoOSState:
    name: str
    firmware: str
    rng: random.Random
    model: str = "StudioX50"
    serial: str = ""
    muted: bool = False
    mute_locked: bool = False
    volume: int = 50
    booted_at: float = field(default_factory=time.time)
    reboots: int = 0
    config: dict[str, dict[str, Any]] = field(default_factory=_default_config)

    def __post_init__(self) -> None:
        if not self.serial:
            self.serial = "8L19" + "".join(self.rng.choice("0123456789ABCDEF") for _ in range(10))
        self.config["device.local.devicename"]["value"] = self.name

    @property
    def uptime(self) -> float:
        return round(time.time() - self.booted_at, 2)

    def system(self) -> dict[str, Any]:
        return {
            "systemName": self.config["device.local.devicename"]["value"] or self.name,
            "serialNumber": self.serial,
            "model": self.model,
            "hardwareVersion": "1",
            "softwareVersion": self.firmware,
            "buildType": "release",
            "build": "460046",
            "systemTime": int(time.time() * 1000),
            "timeOffset": 0,
            "uptime": self.uptime,
            "state": "READY",
            "canStartUpdate": True,
            "rebootNeeded": False,
            "lanStatus": {"state": "LAN_UP", "speedMbps": 1000, "duplex": "FULL"},
            "timeServerState": "TIMESERVER_UP",
        }
