"""The built-in families as the shared functional suite sees them (see `adapter.py`).

A new family adds one `FamilyAdapter` subclass here (or in its own package's tests, appended to
`ADAPTERS`); every test in `test_behaviour.py` then runs against its emulator and client.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, ClassVar

from avctl import Device, Result
from avctl.fleet.inventory import DeviceEntry
from avctl.transport.tls import TLSPolicy

from .adapter import Change, Disruption, FamilyAdapter, Params, Probe

_NONCE = re.compile(r'nonce="([^"]+)"')


def _same(actual: Any, expected: Any) -> None:
    assert actual == expected, f"{actual!r} != {expected!r}"


# --- Poly VideoOS: session cookie + XSRF token ------------------------------------------------------


def _videoos_system(emu: Any, r: Result) -> None:
    _same((r.data["serialNumber"], r.data["systemName"]), (emu.state.serial, emu.name))


def _videoos_dial(emu: Any) -> None:
    emu.state.calls.dial(emu.state.now_ms(), "bob@example.com", 1024, "SIP")


class VideoOSAdapter(FamilyAdapter):
    family: ClassVar[str] = "videoos"
    user: ClassVar[str | None] = "admin"

    _CALL = "needs a call in progress (the family's action table dials first)"
    needs_setup: ClassVar[dict[str, str]] = {
        "cameras_near_presets_index_get": "needs a stored camera preset",
        "cameras_far_all_get": _CALL,
        "cameras_far_selectedpeople_get": _CALL,
        "cameras_far_source_get": _CALL,
        "collaboration_content_get": "needs saved collaboration content",
        "conferences_get_one": _CALL,
        "conferences_connections_get": _CALL,
        "conferences_connection_get": _CALL,
        "conferences_terminals_get": _CALL,
        "conferences_terminal_get": _CALL,
        "conferences_mediastats_get": _CALL,
        "conferences_connection_mediastat_get": _CALL,
        "conferences_terminal_mediastats_get": _CALL,
        "conferences_term_mediastats_get": _CALL,
        "directory_queries_get": "needs a directory query started first",
        "video_remote_conf_mute_get": _CALL,
        "video_remote_conf_mutelock_get": _CALL,
    }
    query_params: ClassVar[dict[str, Params]] = {
        "calendar_meetings_get_one": lambda e: {"meeting_id": "mtg-2"},
        "calendar_discover": lambda e: {"domain": "email", "email": "room@corp.example", "username": "room",
                                        "password": "x"},
        "cameras_near_source_get": lambda e: {"source_id": 3},
        "cameras_snapshot_get": lambda e: {"snapshot_id": "near_image_1.jpg"},
        "directory_local_entries_get": lambda e: {"entry_id": "2"},
        "directory_server_entry_get": lambda e: {"server_id": "global", "entry_id": "g-1"},
        "system_network_ping": lambda e: {"destination": "127.0.0.1"},
        "system_network_traceroute": lambda e: {"destination": "10.1.2.3"},
        "config_get": lambda e: {"names": ["cast.airplay.enabled"]},
        "collaboration_content_all_get": lambda e: {"pin": e.state.room_pin},
    }
    read: ClassVar[Probe] = Probe("system_get", _videoos_system)
    change: ClassVar[Change] = Change("audio_volume_set", {"volume": 73}, lambda e: e.state.volume, 73)
    disruption: ClassVar[Disruption] = Disruption("system_reboot", lambda e: e.state.reboots == 1 and e.is_down)
    invalid_calls: ClassVar[tuple[tuple[str, dict[str, Any]], ...]] = (
        ("audio_volume_set", {"volume": 101}),
        ("audio_volume_set", {}),
        ("conferences_dial", {"address": "a@b", "rate": "fast"}),
    )
    wrong_password_says: ClassVar[str] = "SessionRequestInvalid"
    locked_says: ClassVar[str] = "SessionPortLockout"
    feedback_approx: ClassVar[frozenset[str]] = frozenset({"uptime"})
    #: "each": an item a for_each step would take from the device (end_call's conference id)
    macro_params: ClassVar[dict[str, dict[str, Any]]] = {"volume": {"volume": 30}, "end_call": {"each": 7}}

    def logins(self, emu: Any) -> int:
        return int(emu.logins_accepted)

    def open_sessions(self, emu: Any) -> int | None:
        return len(emu.sessions)

    def feedback_setup(self, emu: Any) -> None:
        emu.state.muted, emu.state.volume = True, 64
        _videoos_dial(emu)
        emu.state.config["comm.nics.sipnic.sipusername"]["value"] = "room-101"
        emu.state.detached = {"REMOTE"}

    def feedback_expected(self, emu: Any) -> dict[str, Any]:
        s = emu.state
        return {"reachable": True, "model": s.model, "firmware": emu.firmware, "serial": s.serial,
                "name": emu.name, "system_state": "READY", "uptime": s.uptime, "in_call": True,
                "mic_muted": True, "volume": 64, "video_muted": False, "sip_status": "UP",
                "peripheral_list": emu.peripherals()}

    def start_call(self, emu: Any) -> None:
        _videoos_dial(emu)

    def end_call(self, emu: Any) -> None:
        emu.state.calls.hang_up_all(emu.state.now_ms())

    def macro_effect(self, emu: Any, macro: str) -> Any:
        effects = {"mute": lambda e: e.state.muted is True, "volume": lambda e: e.state.volume == 30,
                   "reboot": lambda e: e.state.reboots == 1 and e.is_down}
        return effects.get(macro)


# --- Poly UC: Basic up front, Digest when asked; one request at a time -------------------------------


def _uc_info(emu: Any, r: Result) -> None:
    _same((r.data["ModelNumber"], r.data["MACAddress"], r.data["Firmware"]["Application"]),
          (emu.phone.model, emu.phone.mac, emu.phone.firmware))


class PolyUCAdapter(FamilyAdapter):
    family: ClassVar[str] = "polyuc"
    session_options: ClassVar[dict[str, Any]] = {"auth_modes": ("digest",)}
    needs_setup: ClassVar[dict[str, str]] = {
        "call_status_v1": "v1 answers Status 4007 when there is no call (the v2 form answers idle)",
    }
    query_params: ClassVar[dict[str, Params]] = {
        "config_get": lambda e: {"names": ["apps.restapi.enabled"]},
        "call_logs_by_kind": lambda e: {"kind": "missed"},
    }
    read: ClassVar[Probe] = Probe("device_info", _uc_info)
    change: ClassVar[Change] = Change("callctrl_mute", {"state": "1"}, lambda e: e.phone.muted, True)
    macro_params: ClassVar[dict[str, dict[str, Any]]] = {"end_call": {"each": "2341880"}}
    disruption: ClassVar[Disruption] = Disruption("safe_reboot", lambda e: e.phone.reboots == 1 and e.is_down)
    invalid_calls: ClassVar[tuple[tuple[str, dict[str, Any]], ...]] = (
        ("callctrl_mute", {"state": "maybe"}),
        ("call_logs_by_kind", {"kind": "sideways"}),
    )
    # the phone cannot tell a wrong password from a REST API switched off: both causes are named
    wrong_password_says: ClassVar[str] = "apps.restapi.enabled"
    feedback_approx: ClassVar[frozenset[str]] = frozenset({"uptime"})

    def logins(self, emu: Any) -> int:
        """Digest "logins": each nonce the phone handed out and the client then used."""
        return len({m.group(1) for r in emu.requests
                    if (m := _NONCE.search(r.headers.get("Authorization", ""))) is not None})

    def make_busy(self, emu: Any, count: int) -> bool:
        emu.busy_next = count
        return True

    def feedback_setup(self, emu: Any) -> None:
        emu.phone.dial("123", 1, "SIP")
        emu.phone.muted = True
        emu.phone.lines[0].registered = False

    def feedback_expected(self, emu: Any) -> dict[str, Any]:
        days, hours, minutes, seconds = emu.phone.uptime_parts()
        return {"model": emu.phone.model, "firmware": emu.phone.firmware, "mac": emu.phone.mac,
                "uptime": ((days * 24 + hours) * 60 + minutes) * 60 + seconds, "in_call": True,
                "mic_muted": True, "sip_status": "unregistered"}

    def start_call(self, emu: Any) -> None:
        emu.phone.dial("123", 1, "SIP")

    def end_call(self, emu: Any) -> None:
        for call in list(emu.phone.calls.values()):
            emu.phone.end(call)

    def macro_effect(self, emu: Any, macro: str) -> Any:
        effects = {"restart": lambda e: e.phone.restarts == 1 and e.phone.reboots == 0,
                   "reboot": lambda e: e.phone.reboots == 1 and e.is_down,
                   "mute": lambda e: e.phone.muted is True}
        return effects.get(macro)


# --- Mersive Solstice: v2 OAuth token, v1 password on another socket --------------------------------


class SolsticeAdapter(FamilyAdapter):
    family: ClassVar[str] = "solstice"
    user: ClassVar[str | None] = "admin"
    password: ClassVar[str] = "functional-pod-1"
    needs_setup: ClassVar[dict[str, str]] = {
        "splash_image_get": "needs a stored splash image",
        "calendar_meeting_get": "needs a meeting on the pod's calendar",
    }
    query_params: ClassVar[dict[str, Params]] = {
        "token_request": lambda e: {"password": SolsticeAdapter.password},
        "config_section_get": lambda e: {"key": "display/digital_signage"},
        "camera_get": lambda e: {"guid": next(iter(e.state.cameras))},
        "screen_key_verify": lambda e: {"screen_key": e.state.screen_key},
    }
    read: ClassVar[Probe] = Probe("metadata_get", lambda e, r: _same(r.data, {"device_id": e.state.device_id}))
    change: ClassVar[Change] = Change("hdmi_input_set", {"force_off": True}, lambda e: e.state.hdmi_forced_off,
                                      True)
    disruption: ClassVar[Disruption] = Disruption("v1_control_reboot", lambda e: e.is_down)
    invalid_calls: ClassVar[tuple[tuple[str, dict[str, Any]], ...]] = (
        ("hdmi_input_set", {"force_off": "perhaps"}),
        ("config_update", {"config": {"no_such_section": {}}}),
    )
    wrong_password_says: ClassVar[str] = "invalid_grant"

    def client(self, emu: Any, tls: TLSPolicy, password: str | None = None, **options: Any) -> Device:
        # v1 actions go to the pod's v1 socket (HTTPS here: the password never crosses plain HTTP)
        return super().client(emu, tls, password, ports={"https": emu.v1_https_port}, **options)

    def logins(self, emu: Any) -> int:
        return int(emu.tokens_issued)

    def feedback_setup(self, emu: Any) -> None:
        emu.state.connected_users = 2

    def feedback_expected(self, emu: Any) -> dict[str, Any]:
        return {"name": emu.name, "model": "Solstice Pod", "firmware": emu.state.firmware,
                "serial": emu.state.device_id, "in_call": True, "connected_users": 2}

    def start_call(self, emu: Any) -> None:
        emu.state.connected_users = 2  # two people sharing to the pod

    def end_call(self, emu: Any) -> None:
        emu.state.connected_users = 0

    def entry(self, emu: Any, password_ref: str) -> DeviceEntry:
        return dataclasses.replace(super().entry(emu, password_ref), ports={"https": emu.v1_https_port})

    def macro_effect(self, emu: Any, macro: str) -> Any:
        effects = {"restart": lambda e: e.state.restarts == 1 and not e.is_down,
                   "reboot": lambda e: e.is_down}
        return effects.get(macro)


ADAPTERS: list[FamilyAdapter] = [VideoOSAdapter(), PolyUCAdapter(), SolsticeAdapter()]
