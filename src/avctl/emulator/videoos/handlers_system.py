"""System, configuration, session, provider-app and log handlers of the emulated VideoOS system."""

from __future__ import annotations

import datetime as dt
import ipaddress
import zlib
from typing import Any

from aiohttp import web

from avctl.emulator.core import Ctx, HTTPError, reply, reply_bytes
from avctl.emulator.videoos.common import HandlerBase, body_object, fail
from avctl.emulator.videoos.files import tar_archive

KEEP_FLAGS = {
    "keepCertificates": "certificates",
    "keepCdr": "cdr",
    "keepDirectory": "directory",
    "keepLogs": "logs",
}


def _flag(value: Any) -> bool | None:
    """restartAll arrives as a boolean or as the string "True" (FAQ scripts)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


class SystemHandlers(HandlerBase):
    # -- information --

    async def on_system_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self.state.system())

    async def on_system_status_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self.state.status())

    async def on_system_h323gatekeepers_get(self, ctx: Ctx) -> web.StreamResponse:
        if not self.state.config["comm.nics.h323nic.h323name"]["value"]:
            return reply([])
        return reply([{"state": "UP", "address": "gk.example.com", "version": "", "model": ""}])

    async def on_system_sipservers_get(self, ctx: Ctx) -> web.StreamResponse:
        up = bool(self.state.config["comm.nics.sipnic.sipusername"]["value"])
        # a Studio X30 names its SIP server's model "Unknown", its gatekeeper's "" (AVI multi.json)
        return reply(
            [{"state": "UP" if up else "DOWN", "address": "sip.example.com", "version": "", "model": "Unknown"}]
        )

    async def on_system_bluetooth_get(self, ctx: Ctx) -> web.StreamResponse:
        if self.state.config["system.network.wireless.bt.enabled"]["value"] != "True":
            return reply([])
        return reply(
            [
                {
                    "batteryLevel": 100,
                    "firmwareRevision": "97",
                    "id": "80:6F:B0:45:BF:81",
                    "name": "Polycom Remote",
                    "connected": True,
                }
            ]
        )

    async def on_devicemanagement_devices_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self.peripherals())

    def peripherals(self) -> list[dict[str, Any]]:
        """The attached peripherals (a `deviceType` in `state.detached` is unplugged).

        Shapes as a Studio X30 sends them (AVI multi.json; tests/fidelity cites it): the codec
        itself is `local-system` with its own address, a TC8 on the LAN names itself and carries a
        bare lower-case MAC, a paired remote is `local-remote` with its address in `macAddress` and
        no product name or serial."""
        s = self.state

        def device(category: str, kind: str, name: str, uid: str, **extra: Any) -> dict[str, Any]:
            return {
                "connectionType": extra.get("connection", "USB"),
                "deviceCategory": category,
                "deviceState": extra.get("state", "CONNECTED"),
                "deviceType": kind,
                "ip": extra.get("ip", ""),
                "macAddress": extra.get("mac", ""),
                "networkInterface": extra.get("interface", ""),
                "productName": name,
                "serialNumber": extra.get("serial", ""),
                "softwareVersion": extra.get("version", "1.0.0"),
                "systemName": extra.get("system_name", s.system_name),
                "uid": uid,
            }

        tc8_serial = "TC8" + s.serial[4:]
        attached = [
            # the capture's codec entry has an empty serialNumber; the emulator keeps the serial,
            # which avctl's action table reads (spec Notes)
            device("SYSTEM", "CODEC", s.model, "local-system", connection="Unknown", version=s.firmware,
                   ip=self.host, serial=s.serial),
            device("MODULE", "TOUCHCONTROL", "Poly TC8", str(zlib.crc32(tc8_serial.encode())), connection="Corp",
                   interface="eth0", mac="00e0db112233", serial=tc8_serial, version=f"{s.firmware}-210716",
                   system_name="Poly TC8"),
            # no public capture shows a USB camera: its entry keeps the emulator's shape (spec Notes)
            device("CAMERA", "CAMERA", "EagleEye Cube USB", "camera-EC" + s.serial[4:], serial="EC" + s.serial[4:]),
            # the capture's remote has deviceType UNKNOWN; REMOTE is kept, as avctl's users and
            # tests tell peripherals apart by it (spec Notes)
            device("REMOTE", "REMOTE", "", "local-remote", connection="Unknown", state="PAIRED",
                   mac="80:6F:B0:45:BF:81", version="", system_name=""),
        ]
        return [p for p in attached if p["deviceType"] not in s.detached]

    # -- configuration --

    async def on_config_get(self, ctx: Ctx) -> web.StreamResponse:
        raw = ctx.json()
        if isinstance(raw, dict) and "vars" in raw and "names" not in raw:
            return self._config_write(raw)  # same endpoint, write form (inferred; see the spec)
        names = body_object(ctx)["names"]
        out = []
        for name in names:
            var = self.state.config.get(str(name))
            if var is None:
                out.append({"name": name, "result": "NOTFOUND", "value": ""})
            else:
                # a secure variable's value never leaves the device
                shown = {**var, "value": ""} if var["isSecure"] else var
                out.append({"name": name, "result": "NOERROR", **shown})
        return reply({"vars": out})

    async def on_config_set(self, ctx: Ctx) -> web.StreamResponse:
        return self._config_write(body_object(ctx))

    def _config_write(self, body: dict[str, Any]) -> web.StreamResponse:
        items = body.get("vars")
        if not isinstance(items, list) or not items:
            raise HTTPError(400, fail('expected {"vars": [{"name": ..., "value": ...}]}'))
        out = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str) or "value" not in item:
                raise HTTPError(400, fail("each var needs a name and a value"))
            var = self.state.config.get(item["name"])
            value = item["value"]
            if var is None:
                result = "NOTFOUND"
            elif not var["isEditable"]:
                result = "NOTEDITABLE"
            else:
                var["value"] = ("True" if value else "False") if isinstance(value, bool) else str(value)
                result = "NOERROR"
            out.append({"name": item["name"], "result": result})
        return reply({"vars": out})

    # -- time --

    async def on_system_time_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply({"time": self.state.now_ms(), "tzOffset": self.state.tz_offset})

    async def on_system_time_set(self, ctx: Ctx) -> web.StreamResponse:
        body = body_object(ctx)
        self.state.time_offset_ms = int(body["time"]) - int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        if "tzOffset" in body:
            self.state.tz_offset = int(body["tzOffset"])
        self.state.log("system time set")
        return reply()

    async def on_system_time_local_get(self, ctx: Ctx) -> web.StreamResponse:
        zone = dt.timezone(dt.timedelta(minutes=self.state.tz_offset))
        local = dt.datetime.fromtimestamp(self.state.now_ms() / 1000, zone)
        return reply(
            {
                "time": local.strftime("%Y-%m-%dT%H:%M:%S.")
                + f"{local.microsecond // 1000:03d}"
                + local.strftime("%z")
            }
        )

    # -- network diagnostics (no packet leaves the emulator: answers are made up from the address) --

    def _destination(self, ctx: Ctx) -> str:
        destination = str(body_object(ctx)["destination"]).strip()
        self.state.pings.append(destination)
        return destination

    @staticmethod
    def _valid(destination: str) -> bool:
        try:
            return not ipaddress.ip_address(destination).is_unspecified
        except ValueError:
            return False

    async def on_system_network_ping(self, ctx: Ctx) -> web.StreamResponse:
        destination = self._destination(ctx)
        valid = self._valid(destination)
        return reply(
            {
                "icmpReachable": valid,
                "responseTime": 1 + zlib.crc32(destination.encode()) % 40 if valid else -1,
                "h323Reachable": False,
                "sipReachable": False,
            }
        )

    async def on_system_network_traceroute(self, ctx: Ctx) -> web.StreamResponse:
        destination = self._destination(ctx)
        if not self._valid(destination):
            return reply({"success": False, "totalHops": 0, "hops": []})
        route = (
            [destination]
            if ipaddress.ip_address(destination).is_loopback
            else ["192.0.2.1", "198.51.100.1", destination]
        )
        hops = [
            {"hopNumber": n + 1, "address": a, "dnsName": "", "responseTimes": [n + 1, n + 1, n + 2]}
            for n, a in enumerate(route)
        ]
        return reply({"success": True, "totalHops": len(hops), "hops": hops})

    # -- reboot, reset, logs --

    async def on_system_reboot(self, ctx: Ctx) -> web.StreamResponse:
        body = ctx.json()
        if not isinstance(body, dict) or body.get("action", "reboot") != "reboot":
            raise HTTPError(400, fail('expected {"action": "reboot"}'))
        restart_all = _flag(body.get("restartAll", False))
        if restart_all is None:
            raise HTTPError(400, fail("restartAll must be true or false"))
        self._restart(restart_all)
        return reply()

    def _restart(self, restart_all: bool = False) -> None:
        self.state.reboot(self.faults.reboot_seconds, restart_all)
        self.sessions.clear()
        self.reboot()

    async def on_system_resetsettings(self, ctx: Ctx) -> web.StreamResponse:
        body = body_object(ctx)
        keep = {name: bool(body[wire]) for wire, name in KEEP_FLAGS.items()}
        self.state.reset_settings(keep)
        if not keep["certificates"]:
            self.reset_certificate()  # served from the restart on (the listener reopens with it)
        self._restart()
        return reply()

    def _logs(self) -> web.StreamResponse:
        s = self.state
        calls = [f"{c['start']} {c['end']} {c['dialType']} {c['rate']} {c['address']}" for c in s.calls.cdr]
        config = [f"{k}={'' if v['isSecure'] else v['value']}" for k, v in sorted(s.config.items())]
        data = tar_archive(
            {
                "logs/system.log": "\n".join(s.log_lines) + "\n",
                "logs/calls.log": "\n".join(calls) + ("\n" if calls else ""),
                "logs/config.txt": "\n".join(config) + "\n",
            }
        )
        return reply_bytes(data, "application/octet-stream", filename=f"logs_{s.serial}.tar")

    async def on_system_logs_get(self, ctx: Ctx) -> web.StreamResponse:
        return self._logs()

    async def on_devicemanagement_logs_get(self, ctx: Ctx) -> web.StreamResponse:
        return self._logs()

    # -- sessions (login and logout are answered in EmulatedVideoOS.authenticate, before routing) --

    async def on_session_sessions_get(self, ctx: Ctx) -> web.StreamResponse:
        # real systems list each session with its id (the AVISPL capture of a Studio X30)
        return reply(
            {
                "sessionList": [
                    {
                        "sessionId": sid,
                        "role": "ADMIN",
                        "clientType": "WEB",
                        "location": s.get("location", ""),
                        "userId": "admin",
                        # seconds since the system booted, as the login answer says (AVI: a Studio
                        # X30's newest session 693843 beside its uptime 693845.31)
                        "creationTime": s.get("uptime_at_login", 0),
                        "isAuthenticated": True,
                        "isStale": False,
                        "isNew": True,
                        "isConnected": False,
                    }
                    for sid, s in self.sessions.items()
                ]
            }
        )

    # -- apps and modes --

    async def on_system_apps_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self.state.provider_apps())

    async def on_system_apps_all_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(
            [{"appName": a["appName"], "personaName": a["personaName"]} for a in self.state.provider_apps()]
        )

    async def on_system_mode_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self.state.mode())

    async def on_system_mode_set(self, ctx: Ctx) -> web.StreamResponse:
        apps = body_object(ctx)["enabledapps"]
        known = {a["appName"] for a in self.state.provider_apps()}
        if apps[0] not in known:
            return reply({"error": "INVALID_APP"}, 400)
        if apps[0] != self.state.provider:
            self.state.calls.hang_up_all(self.state.now_ms())
            self.state.provider = apps[0]
            self.state.log(f"provider switched to {apps[0]}")
        return reply({"error": "NOERROR"})

    def _toggle(self, attribute: str, on: bool) -> web.StreamResponse:
        if getattr(self.state, attribute) == on:
            return reply({"success": False, "reason": "ALREADY_ACTIVE" if on else "NOT_ACTIVE"})
        setattr(self.state, attribute, on)
        if on:
            self.state.calls.hang_up_all(self.state.now_ms())
        self.state.log(f"{attribute} {'started' if on else 'stopped'}")
        return reply({"success": True, "reason": ""})

    async def on_system_mode_device_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply({"result": self.state.device_mode})

    async def on_system_mode_device_start(self, ctx: Ctx) -> web.StreamResponse:
        return self._toggle("device_mode", True)

    async def on_system_mode_device_stop(self, ctx: Ctx) -> web.StreamResponse:
        return self._toggle("device_mode", False)

    async def on_system_mode_signage_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply({"result": self.state.signage_mode})

    async def on_system_mode_signage_start(self, ctx: Ctx) -> web.StreamResponse:
        return self._toggle("signage_mode", True)

    async def on_system_mode_signage_stop(self, ctx: Ctx) -> web.StreamResponse:
        return self._toggle("signage_mode", False)

    async def on_system_apps_environment_show(self, ctx: Ctx) -> web.StreamResponse:
        self.state.environment_app = True
        return reply({"result": True})

    async def on_system_apps_environment_hide(self, ctx: Ctx) -> web.StreamResponse:
        self.state.environment_app = False
        return reply({"result": True})

    async def on_system_apps_environment_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(
            [{"macAddress": "00:E0:DB:11:22:33", "environmentControlAppActive": self.state.environment_app}]
        )
