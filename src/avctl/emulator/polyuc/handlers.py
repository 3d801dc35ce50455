"""Per-action handlers of the emulated Poly UC phone: one `on_<action_id>` per spec action.

Handlers read `{"data": ...}` from the request, change `UcPhone` state and answer through `ok()`;
a rule violation raises `UcStatus(code)`, which the device turns into `{"Status": code}`.
Values inside `data` may be strings or numbers (seed 002 dials `"Dest": 123, "Line": 1`).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from avctl.emulator.core import Ctx, Faults
from avctl.emulator.polyuc.state import KEY_NAMES, Call, UcPhone, UcStatus, uc_duration, uc_time

HANDLE_CHARS = set("0123456789abcdefABCDEF")
#: device.prov.serverType values as runningConfig names them (MIV shows "FTP"; the numbers are the
#: admin guide's, see the parameter's notes in the spec)
PROV_SERVER_TYPES = {"0": "FTP", "1": "TFTP", "2": "HTTP", "7": "HTTPS", "8": "FTPS"}


def _text(value: Any, *, required: bool = True) -> str | None:
    """A scalar inside `data` as the phone's string form; anything else is invalid input."""
    if value is None:
        if required:
            raise UcStatus("4000")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise UcStatus("4000")
    return str(value)


def _handle(value: Any) -> str:
    """A call handle as hex digits: "0x2341880", "2341880" and 2341880 all name the same call."""
    text = _text(value)
    assert text is not None
    digits = text[2:] if text[:2].lower() == "0x" else text
    if not digits or len(digits) > 16 or any(ch not in HANDLE_CHARS for ch in digits):
        raise UcStatus("4000")
    return digits.lower()


def _number(value: Any, field: str) -> int:
    text = _text(value)
    assert text is not None
    try:
        return int(text)
    except ValueError:
        raise UcStatus("4000", {"InvalidField": field}) from None


class UcHandlers:
    phone: UcPhone
    faults: Faults
    status_as_number: bool
    host: str

    if TYPE_CHECKING:  # provided by EmulatedDevice (a real method here would shadow it in the MRO)

        def reboot(self, seconds: float | None = None) -> None: ...

    # -- envelope helpers --

    def ok(self, data: Any = None, *, with_data: bool = True) -> web.Response:
        body: dict[str, Any] = {"data": data} if with_data and data is not None else {}
        body["Status"] = 2000 if self.status_as_number else "2000"
        return web.Response(body=json.dumps(body).encode(), content_type="application/json")

    @staticmethod
    def data(ctx: Ctx) -> Any:
        """The `data` member of the request body (None for an empty body)."""
        body = ctx.json()  # a body that is not JSON: BadBody, answered Status 4000
        if body is None or body == {}:
            return None  # a bare `{}` is no data, as an empty body is (call control without Ref)
        if not isinstance(body, dict) or "data" not in body:
            raise UcStatus("4000")
        return body["data"]

    def fields(self, ctx: Ctx) -> dict[str, Any]:
        data = self.data(ctx)
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise UcStatus("4000")
        return data

    def _restart(self, reboot: bool) -> web.Response:
        if self.phone.calls:
            # "safe": the phone waits until no call is active
            self.phone.pending_restart = "reboot" if reboot else "restart"
            return self.ok()
        self._go_down(reboot)
        return self.ok()

    def _go_down(self, reboot: bool) -> None:
        downtime = self.faults.reboot_seconds
        self.phone.restarted(reboot, downtime)
        self.on_restart()
        self.reboot(downtime)

    def on_restart(self) -> None:
        """Hook for the device (forget Digest nonces)."""

    def _call_ended(self) -> None:
        if not self.phone.calls and self.phone.pending_restart:
            self._go_down(self.phone.pending_restart == "reboot")

    # -- management: restart, reset, provisioning --

    async def on_safe_restart(self, ctx: Ctx) -> web.StreamResponse:
        return self._restart(reboot=False)

    async def on_safe_reboot(self, ctx: Ctx) -> web.StreamResponse:
        return self._restart(reboot=True)

    async def on_factory_reset(self, ctx: Ctx) -> web.StreamResponse:
        self.phone.factory_reset()
        self.on_factory_reset_done()
        self._go_down(reboot=True)
        return self.ok()

    def on_factory_reset_done(self) -> None:
        """Hook for the device (admin password back to the factory default)."""

    async def on_update_configuration(self, ctx: Ctx) -> web.StreamResponse:
        if not self.phone.config["device.prov.serverName"].current:
            raise UcStatus("4006")
        self.phone.provisioning_checks += 1
        offered = self.phone.provisioned_firmware
        if offered and offered != self.phone.firmware:
            # the phone answers, downloads the build its provisioning server names and reboots into it
            self.phone.firmware = offered
            self._go_down(reboot=True)
        return self.ok()

    async def on_config_reset(self, ctx: Ctx) -> web.StreamResponse:
        self.phone.config_reset(None)
        return self.ok()

    async def on_config_reset_source(self, ctx: Ctx) -> web.StreamResponse:
        source = ctx.path_params["source"].lower()
        if source not in ("cloud", "local", "web", "device"):
            raise UcStatus("4000")
        self.phone.config_reset(source)
        return self.ok()

    # -- configuration parameters --

    async def on_config_get(self, ctx: Ctx) -> web.StreamResponse:
        names = self.data(ctx)
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise UcStatus("4000")
        return self.ok(self.phone.config_get(names))

    async def on_config_set(self, ctx: Ctx) -> web.StreamResponse:
        values = self.fields(ctx)
        if not values:
            raise UcStatus("4000")
        self.phone.config_set({str(k): _text(v) or "" for k, v in values.items()})
        return self.ok()

    # -- information and statistics --

    async def on_device_info(self, ctx: Ctx) -> web.StreamResponse:
        p = self.phone
        days, hours, minutes, seconds = p.uptime_parts()
        in_call = bool(p.calls)
        return self.ok(
            {
                "DeviceType": "HardwareEndpoint",
                "DeviceVendor": "Polycom",
                "ModelNumber": p.model,
                "MACAddress": p.mac,
                "IPAddress": self.host,
                "IPStack": "IPv4 Only",
                "PreferredNetwork": "IPv4",
                "IPv6Address": "::",
                "IPv6LinkAddress": "::",
                "IPv6ULAAddress": "::",
                "Firmware": {"Application": p.firmware, "Updater": "6.0.0.4128", "BootBlock": "3.0.6.0210"},
                "UpTime": {"Days": str(days), "Hours": str(hours), "Minutes": str(minutes),
                           "Seconds": str(seconds)},
                "AppState": "AppStateCall" if in_call else "AppStateIdle",
                # a Trio has no expansion-module port: it sends {} (MIV's Trio 8800 recording)
                "AttachedHardware": {} if p.model.startswith("Trio") else {"EM": [], "Camera": ""},
                "CanApplyShutdownRequest": "False" if in_call else "True",
                "ReadyToUse": "True",
                "IntendToShutdown": "True" if p.pending_restart else "False",
            }
        )

    async def on_device_info_v1(self, ctx: Ctx) -> web.StreamResponse:
        p = self.phone
        days, hours, minutes, seconds = p.uptime_parts()
        return self.ok(
            {
                "ModelNumber": p.model,
                "FirmwareRelease": p.firmware,
                "DeviceType": "hardwareEndpoint",
                "DeviceVendor": "Polycom",
                "MACAddress": p.mac,
                "IPV4Address": self.host,
                "IPV6Address": "::",
                # "0 Day 22:02:09", "20 Days 16:11:42", "0 Day 6:16:10": the word plural past one
                # day, the hour not padded (AVI-SPL PolycomTrio.java, a Trio on 5.7.1; a Trio
                # simulator's README, 5.5.4; a Rust client's comment, a VVX 411 on 5.5.0)
                "UpTimeSinceLastReboot": f"{days} {'Days' if days > 1 else 'Day'} "
                                         f"{hours}:{minutes:02d}:{seconds:02d}",
                "AttachedHardware": {},
            }
        )

    async def on_device_stats(self, ctx: Ctx) -> web.StreamResponse:
        p = self.phone
        busy = 10 * len(p.calls)
        current = min(100, 3 + busy + p.rng.randrange(0, 8))
        # Memory and RAMDiskSize count bytes, CPU has one decimal, and the heap of each of the
        # phone's processes is its own member (MIV: Trio 8800 device/stats, "Total": "519995392")
        used = 274_051_072 + p.rng.randrange(0, 4096) * 1024
        heap = {"arena": "12677120", "uordblks": "34790512", "fordblks": "455568", "hblkhd": "22568960"}
        return self.ok(
            {
                "CPU": {"Current": f"{current:.1f}", "Average": f"{3 + busy / 2:.1f}"},
                "Memory": {"Total": "519995392", "Used": str(used), "Free": str(519_995_392 - used),
                           "Cached": "240484352", "SReclaim": "0", "ComAS": "0",
                           "polyapp": heap, "pgui": dict(heap, arena="19066016")},
                "RAMDiskSize": "67108864",
            }
        )

    async def on_running_config(self, ctx: Ctx) -> web.StreamResponse:
        # The groups and keys of a captured Trio 8800 (MIV: runningConfig); values are display
        # words ("Enabled", "IPv4 Only", "FTP"), not the configuration parameters' wire values.
        c = self.phone.config
        server_type = c["device.prov.serverType"].current
        return self.ok(
            {
                "Network": {"IPAddress": self.host, "SubnetMask": "255.0.0.0", "IPGateway": "127.0.0.1",
                            "VLAN": "", "VLANFiltering": "Disabled", "StormFiltering": "Enabled",
                            "StormFilterPPS": "38", "IPStack": "IPv4 Only", "PreferredNetwork": "IPv4",
                            "IPv6Address": "::", "IPv6LinkAddress": "::", "IPv6ULAAddress": "::",
                            "IPv6Gateway": "::", "IPv6AddressDiscovery": "DHCP", "CDP": "Enabled",
                            "LLDP": "Enabled"},
                "DHCP": {"Feature": "Enabled", "OfferTimeout": "1", "BootServerOption": "160",
                         "BootServerUseOption": "Custom then Default", "BootServerOptionType": "String",
                         "Option60Format": "ASCII String", "VLANDiscovery": "Default",
                         "VLANDiscoveryOption": "129"},
                "Provisioning": {"Server": c["device.prov.serverName"].current,
                                 "ServerType": PROV_SERVER_TYPES.get(server_type, server_type),
                                 "User": "PlcmSpIp", "MaxServers": "8", "FileTxTries": "3", "RetryWait": "1",
                                 "NetworkEnv": "Cable/DSL", "TagSerialNo": "Disabled"},
                "DNS": {"Feature": "Enabled", "PrimaryServer": "127.0.0.53", "SecondaryServer": "",
                        "Domain": "example.invalid"},
                "SNTP": {"Server": "pool.ntp.org", "GMTOffsetHours": "0", "GMTOffsetSeconds": "0"},
                "Syslog": {"Server": "", "Transport": "UDP", "Facility": "16", "RenderLevel": "4",
                           "PrependMAC": "Disabled"},
            }
        )

    async def on_network_info(self, ctx: Ctx) -> web.StreamResponse:
        prov = self.phone.config["device.prov.serverName"].current
        return self.ok(
            {
                "IPV4Address": self.host, "SubnetMask": "255.0.0.0", "DefaultGateway": "127.0.0.1",
                "DHCP": "enabled", "DHCPServer": "127.0.0.1", "DNSServer": "127.0.0.53",
                "AlternateDNSServer": "", "DNSDomain": "example.invalid", "IPV6Address": "::",
                "LANSpeed": "1000Mbps", "LANPortStatus": "active", "VLANID": "", "VLANDiscoveryMode": "Fixed",
                "VLANIDOption": "129", "LLDP": "enabled", "CDPCompatibility": "enabled",
                "ProvServerAddress": prov, "ProvServerType": "HTTP", "ProvServerUser": "",
                "DHCPBootServerUseOption": "Custom+Option66", "DHCPBootServerOption": "160",
                "DHCPBootServerOptionType": "String", "DHCPOption60Format": "RFC3925Binary",
                "SNTPAddress": "pool.ntp.org", "UpgradeServer": "", "ZTPStatus": "disabled",
            }
        )

    async def on_network_stats(self, ctx: Ctx) -> web.StreamResponse:
        p = self.phone
        up = p.uptime()
        days, hours, minutes, seconds = p.uptime_parts()
        # packets move with uptime (more during calls), so two reads differ
        rx = int(up * 12 + len(p.calls) * up * 50) + p.rng.randrange(1, 10)
        tx = int(up * 9 + len(p.calls) * up * 50) + p.rng.randrange(1, 10)
        return self.ok(
            {"RxPackets": str(rx), "TxPackets": str(tx),
             "UpTime": f"{days} day{'s' if days != 1 else ''} {hours}:{minutes:02d}:{seconds:02d}"}
        )

    @property
    def _trio(self) -> bool:
        """A Trio conference phone (some answers differ from a desk phone's, per recordings)."""
        return self.phone.model.startswith("Trio")

    async def on_line_info(self, ctx: Ctx) -> web.StreamResponse:
        return self.ok(
            [
                {
                    "LineNumber": str(line.number),
                    "Label": line.label,
                    "RegistrationStatus": "registered" if line.registered else "unregistered",
                    "Username": line.user,
                    "SIPAddress": line.sip_address,
                    "LineType": "private",
                    "Protocol": "SIP",
                    "CallServers": [{"Address": line.server, "Port": "5060", "Transport": "UDPOnly",
                                     "Expires": "3600"}],
                }
                for line in self.phone.lines
            ]
        )

    async def on_line_info_v1(self, ctx: Ctx) -> web.StreamResponse:
        return self.ok(
            [
                {
                    "LineNumber": str(line.number),
                    "RegistrationStatus": "registered" if line.registered else "unregistered",
                    "LineType": "private",
                    "SIPAddress": line.sip_address,
                    # a Trio's lines say "Auto" (SIP or H.323) and port "0" (MIV's Trio 8800)
                    "Protocol": "Auto" if self._trio else "SIP",
                    "Label": line.label,
                    "UserID": line.user,
                    "ProxyAddress": line.server,
                    "Port": "0" if self._trio else "5060",
                }
                for line in self.phone.lines
            ]
        )

    async def on_session_stats(self, ctx: Ctx) -> web.StreamResponse:
        now = time.monotonic()
        sessions = []
        for call in self.phone.active_calls():
            if call.state not in ("Connected", "Hold"):
                continue
            secs = max(1, call.duration(now))
            packets = secs * 50  # 20 ms frames
            ref = f"0x{call.hex}"
            # a voice stream as a real phone reports it (AVT: PolycomTrio.java, the recorded
            # sessionStats in populateInCallStats): the session's Ref is the call's handle, each
            # stream has a Ref of its own, codecs carry their RTP payload number ("9:G.722"),
            # payload sizes are given both ways
            sessions.append(
                {
                    "Ref": ref,
                    "Streams": [
                        {
                            "Ref": f"0x{(call.handle + 0x5F0) & 0xFFFFFFFF:x}", "Category": "0:Voice",
                            "TxCodec": "9:G.722", "RxCodec": "9:G.722",
                            "TxPayloadSize": "20", "RxPayloadSize": "20",
                            "PacketsSent": str(packets), "PacketsReceived": str(packets - 1),
                            "PacketsExpected": str(packets), "PacketsLost": "1",
                            "OctetsSent": str(packets * 160), "OctetsReceived": str((packets - 1) * 160),
                            "Jitter": str(self.phone.rng.randrange(1, 6)), "MaxJitter": "9", "Latency": "12",
                            "TxMOSLQ": "4.1", "RxMOSLQ": "4.1", "TxMOSCQ": "4.0", "RxMOSCQ": "4.0",
                        },
                        *self._video_streams(call, secs),
                    ],
                    # AVT's recorded session (a Trio): whether media is encrypted, per protocol
                    "SRTPCall": "False",
                    "H235Call": "False",
                }
            )
        return self.ok(sessions)

    def _video_streams(self, call: Call, secs: int) -> list[dict[str, str]]:
        """A Trio's video stream, in the fields of AVT's recorded one (PolycomTrio.java,
        populateInCallStats: "Category": "1:Video", "RxCodec": "24:H.264", frame sizes, rates and
        bit rates as strings, payload sizes "v"). It has its own Ref, as in the recording. VVX and
        CCX phones: no recording shows their streams, so they report voice only."""
        if not self.phone.model.startswith("Trio"):
            return []
        packets = secs * 90
        return [
            {
                "Ref": f"0x{(call.handle + 0xA38) & 0xFFFFFFFF:x}", "Category": "1:Video",
                "TxCodec": "24:H.264", "RxCodec": "24:H.264", "TxPayloadSize": "v", "RxPayloadSize": "v",
                "PacketsSent": str(packets), "PacketsReceived": str(packets), "PacketsExpected": str(packets),
                "PacketsLost": "0", "OctetsSent": str(packets * 1100), "OctetsReceived": str(packets * 1100),
                "Jitter": "0", "MaxJitter": "0", "Latency": "0",
                "VideoTxFrameWidth": "1280", "VideoTxFrameHeight": "720",
                "VideoRxFrameWidth": "1280", "VideoRxFrameHeight": "720",
                "VideoTxFramerate": "30", "VideoRxFramerate": "30",
                "VideoTxConfigBitrateKbps": "1024", "VideoTxActBitrateKbps": "790",
                "VideoRxActBitrateKbps": "790",
                "VideoTxFastUpdateReqCnt": "0", "VideoRxFastUpdateReqCnt": "0",
            }
        ]

    async def on_communication_info(self, ctx: Ctx) -> web.StreamResponse:
        calls = self.phone.active_calls()
        return self.ok(
            {
                "CommunicationType": [c.protocol.upper() for c in calls],
                "FarEndMuteState": ["False" for _ in calls],
                "PhoneMuteState": "True" if self.phone.muted else "False",
            }
        )

    async def on_call_logs(self, ctx: Ctx) -> web.StreamResponse:
        return self.ok({kind: [e.to_json() for e in entries] for kind, entries in self.phone.logs.items()})

    async def on_call_logs_by_kind(self, ctx: Ctx) -> web.StreamResponse:
        kind = ctx.path_params["kind"].capitalize()
        if kind not in self.phone.logs:
            raise UcStatus("4000")
        return self.ok([e.to_json() for e in self.phone.logs[kind]])

    async def on_poll_for_status(self, ctx: Ctx) -> web.StreamResponse:
        # State "Active" with "Active call duration <span>" or "Idle" with "Time of last call
        # <time>": the two shapes Posh-UCS parses (UcsRest.psm1, Get-UcsRestStatus)
        p = self.phone
        calls = p.active_calls()
        if calls:
            seconds = max(c.duration(time.monotonic()) for c in calls)
            return self.ok({"State": "Active", "StateData": f"Active call duration {uc_duration(seconds)}"})
        # a phone without a call since it booted: the boot time (what a real one says is unknown)
        last = p.last_call_at if p.last_call_at is not None else time.time() - p.uptime()
        return self.ok({"State": "Idle", "StateData": f"Time of last call {uc_time(last)}"})

    async def on_transfer_type_get(self, ctx: Ctx) -> web.StreamResponse:
        blind = self.phone.config["call.transfer.blindPreferred"].current == "1"
        return self.ok({"Type": "Blind" if blind else "Consultative"})

    async def on_presence_get(self, ctx: Ctx) -> web.StreamResponse:
        p = self.phone
        signed_in = p.skype_user is not None
        return self.ok(
            {
                "SignedIn": "True" if signed_in else "False",
                "Address": p.skype_address or "",
                "Presence": ("Busy" if p.calls else "Available") if signed_in else "Offline",
            }
        )

    async def on_location_info(self, ctx: Ctx) -> web.StreamResponse:
        return self.ok({"Location": "", "Country": "", "City": "", "Building": "", "Floor": "", "Room": ""})

    async def on_mrpair_info(self, ctx: Ctx) -> web.StreamResponse:
        return self.ok({"ConnectedDeviceList": []})

    async def on_upload_bg_capture(self, ctx: Ctx) -> web.StreamResponse:
        url = _text(self.fields(ctx).get("url"), required=False)
        if self.phone.config["diags.pcap.enabled"].current != "1":
            raise UcStatus("4003")
        self.phone.captures_uploaded.append(url or "")
        return self.ok()

    # -- simulated input --

    async def on_simulate_key_event(self, ctx: Ctx) -> web.StreamResponse:
        f = self.fields(ctx)
        kind = _text(f.get("Type"), required=False) or "Tap"
        key = _text(f.get("KeyName"))
        if kind != "Tap" or key not in KEY_NAMES:
            raise UcStatus("4000")
        assert key is not None
        self.phone.key_events.append({"Type": kind, "KeyName": key})
        if key == "MicMute":
            self.phone.muted = not self.phone.muted
        elif key in ("VolUp", "VolDown"):
            self.phone.volume = max(0, min(15, self.phone.volume + (1 if key == "VolUp" else -1)))
        return self.ok()

    async def on_simulate_text_input(self, ctx: Ctx) -> web.StreamResponse:
        f = self.fields(ctx)
        value = _text(f.get("Value"))
        replace_text = f.get("ReplaceText", "false")
        if isinstance(replace_text, bool):
            replace_text = "true" if replace_text else "false"
        if str(replace_text).lower() not in ("true", "false"):
            raise UcStatus("4000")
        self.phone.text_inputs.append({"Value": value or "", "ReplaceText": str(replace_text).lower()})
        return self.ok()

    async def on_simulate_touch(self, ctx: Ctx) -> web.StreamResponse:
        f = self.fields(ctx)
        kind = _text(f.get("Type"))
        positions = f.get("Positions")
        if kind not in ("Tap", "Swipe") or not isinstance(positions, list) or not positions:
            raise UcStatus("4000")
        if (kind == "Tap" and len(positions) != 1) or (kind == "Swipe" and len(positions) < 2):
            raise UcStatus("4000")
        width, height = self.phone.screen
        points = []
        for pos in positions:
            if not isinstance(pos, dict):
                raise UcStatus("4000")
            x, y = _number(pos.get("X"), "X"), _number(pos.get("Y"), "Y")
            if not (0 <= x < width and 0 <= y < height):
                raise UcStatus("4000", {"InvalidField": "Positions"})
            points.append((x, y))
        duration = f.get("Duration")
        event: dict[str, Any] = {"Type": kind, "Positions": points}
        if duration is not None:
            event["Duration"] = _number(duration, "Duration")
        self.phone.touch_events.append(event)
        return self.ok()

    # -- Skype for Business --

    async def on_skype_sign_in(self, ctx: Ctx) -> web.StreamResponse:
        f = self.fields(ctx)
        address = _text(f.get("Address"))
        password = _text(f.get("Password"))
        if not address or not password:
            raise UcStatus("4000")
        self.phone.skype_address = address
        self.phone.skype_user = _text(f.get("User"), required=False) or address
        return self.ok()

    async def on_skype_sign_out(self, ctx: Ctx) -> web.StreamResponse:
        self.phone.skype_user = self.phone.skype_address = None
        return self.ok()

    # -- web call control status --

    async def on_call_status(self, ctx: Ctx) -> web.StreamResponse:
        calls = self.phone.active_calls()
        q = ctx.query
        if "handle" in q:
            digits = _handle(q["handle"])
            calls = [c for c in calls if c.hex == digits.lstrip("0") or c.hex == digits]
        if "line" in q:
            line = _number(q["line"], "line")
            calls = [c for c in calls if c.line == line]
            if "sequence" in q:
                sequence = _number(q["sequence"], "sequence")
                calls = [c for c in calls if c.sequence == sequence]
        now = time.monotonic()
        return self.ok([self._call_v2(c, now) for c in calls])

    def _call_v2(self, c: Call, now: float) -> dict[str, Any]:
        return {
            "CallHandle": c.hex,
            "LineID": str(c.line),
            "CallSequence": str(c.sequence),
            "Type": c.direction,
            "Protocol": c.protocol.upper(),  # "SIP" in v2 (MIV callStatus), "Sip" in v1 (S002)
            "CallState": c.state,
            "Ringing": "1" if c.ringing else "0",
            "Muted": "1" if self.phone.muted else "0",
            "Media Direction": "sendonly" if c.state == "Hold" else "sendrecv",
            "RemotePartyName": c.remote_name,
            "RemotePartyNumber": c.remote_number,
            "Remote Connection IP": "127.0.0.1",
            "RTPPort": "2222",
            "RTCPPort": "2223",
            "UIAppearanceIndex": f"{c.line}*",
            "StartTime": uc_time(time.time() - (now - c.created)),
            "DurationSeconds": str(c.duration(now)),
        }

    async def on_call_status_v1(self, ctx: Ctx) -> web.StreamResponse:
        calls = self.phone.active_calls()
        if not calls:
            raise UcStatus("4007")
        c, now = calls[0], time.monotonic()
        return self.ok(
            {
                "CallHandle": f"0x{c.hex}",
                "LineId": str(c.line),
                "Type": c.direction,
                # a Trio answers "Auto" (AVT's recorded callStatus), a VVX "Sip" (seed 002)
                "Protocol": "Auto" if self._trio else c.protocol,
                "CallState": c.state,
                "RemotePartyName": c.remote_name,
                "DurationInSeconds": str(c.duration(now)),
                "RemotePartyNumber": c.remote_number,
            }
        )

    async def on_sip_status(self, ctx: Ctx) -> web.StreamResponse:
        users = []
        for line in self.phone.lines:
            calls = [c for c in self.phone.calls.values() if c.line == line.number]
            users.append(
                {
                    "Name": line.user,
                    "LineNumber": str(line.number),
                    "TotalCalls": str(len(calls)),
                    "TotalEvents": "1",
                    "Events": [{"Type": "Register",
                                "RegistrationState": "Registered" if line.registered else "Unregistered",
                                "CallID": f"{line.user}-reg@{self.host}", "Expires": "3600"}],
                }
            )
        return self.ok({"TotalUser": str(len(users)), "User": users})

    # -- call control --

    async def on_callctrl_dial(self, ctx: Ctx) -> web.StreamResponse:
        f = self.fields(ctx)
        dest = _text(f.get("Dest"))
        line = _number(f.get("Line"), "Line")
        call_type = (_text(f.get("Type"), required=False) or "TEL").upper()
        if not dest or call_type not in ("SIP", "TEL", "H323"):
            raise UcStatus("4000")
        self.phone.dial(dest, line, call_type)
        return self.ok()

    def _call(self, ctx: Ctx, *current: str) -> Call:
        """The call `Ref` names; without a `Ref` (no body, `{}`, `{"data": {}}`) and when `current`
        names states, the phone's current call in one of them: Posh-UCS (UcsRest.psm1,
        Start-UcsRestCallAnswer and the hold/resume cmdlet) posts an empty body when it has no
        handle and expects the ringing, connected or held call to be acted on."""
        ref = self.fields(ctx).get("Ref")
        if ref in (None, "") and current:
            return self.phone.current_call(*current)
        return self.phone.find(_handle(ref))

    async def on_callctrl_answer_call(self, ctx: Ctx) -> web.StreamResponse:
        self.phone.answer(self._call(ctx, "Offering"))
        return self.ok()

    async def on_callctrl_ignore_call(self, ctx: Ctx) -> web.StreamResponse:
        self.phone.ignore(self._call(ctx, "Offering"))
        return self.ok()

    async def on_callctrl_reject_call(self, ctx: Ctx) -> web.StreamResponse:
        self.phone.reject(self._call(ctx, "Offering"))
        self._call_ended()
        return self.ok()

    async def on_callctrl_end_call(self, ctx: Ctx) -> web.StreamResponse:
        self.phone.end(self._call(ctx))
        self._call_ended()
        return self.ok()

    async def on_callctrl_hold_call(self, ctx: Ctx) -> web.StreamResponse:
        self.phone.hold(self._call(ctx, "Connected"))
        return self.ok()

    async def on_callctrl_resume_call(self, ctx: Ctx) -> web.StreamResponse:
        self.phone.resume(self._call(ctx, "Hold"))
        return self.ok()

    async def on_callctrl_transfer_call(self, ctx: Ctx) -> web.StreamResponse:
        f = self.fields(ctx)
        dest = _text(f.get("TransferDest"))
        call = self.phone.find(_handle(f.get("Ref")))
        self.phone.transfer(call, dest or "")
        self._call_ended()
        return self.ok()

    async def on_callctrl_mute(self, ctx: Ctx) -> web.StreamResponse:
        state = _text(self.fields(ctx).get("state"))
        if state not in ("0", "1"):
            raise UcStatus("4000")
        self.phone.muted = state == "1"
        return self.ok()

    async def on_callctrl_send_dtmf(self, ctx: Ctx) -> web.StreamResponse:
        f = self.fields(ctx)
        digits = f.get("Digits", f.get("digits"))  # one public client sends lower-case "digits"
        self.phone.send_dtmf(_text(digits) or "")
        return self.ok()
