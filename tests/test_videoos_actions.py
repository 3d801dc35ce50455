"""Every action of the VideoOS spec, called through the client against the emulator over real HTTPS.

The test is parametrised from the spec itself: a new action in `src/avctl/specs/videoos.md` gets a
test case automatically, and that case fails until CASES below says how to call it and what the
emulator's state must look like afterwards. Each case gets a fresh emulated system.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import inspect
import io
import json
import ssl
import struct
import subprocess
import tarfile
import time
import zipfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from avctl import CertificateChanged, Credentials, Device, Result
from avctl.emulator.core import EmulatorThread
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.emulator.videoos.calls import Connection
from avctl.emulator.videoos.files import directory_xml, parse_directory_xml, zip_archive
from avctl.errors import DeviceError, TransportError
from avctl.families import builtin_spec
from avctl.transport.tls import TLSPolicy

from .conftest import wait_back as wait_up

SPEC = builtin_spec("videoos")
PASSWORD = "emu-pw-1"

Emu = EmulatedVideoOS


@dataclass
class Case:
    params: Callable[[Emu], dict[str, Any]]  # may prepare the emulator's state first
    #: (emulator, result) or (emulator, result, device); raises (or returns an awaitable that raises)
    check: Callable[..., Any]


def no_params(e: Emu) -> dict[str, Any]:
    return {}


def dial(e: Emu, address: str = "bob@example.com", dial_type: str = "SIP", rate: int = 1024) -> Connection:
    """Put the emulated system in a call directly through its state."""
    return e.state.calls.dial(e.state.now_ms(), address, rate, dial_type)


def conf_of(e: Emu) -> int:
    return next(iter(e.state.calls.conferences))


def connections(e: Emu) -> list[Connection]:
    return e.state.calls.connections()


def jpeg_size(data: bytes) -> tuple[int, int]:
    """Walk the JPEG markers (SOI ... SOF0 ... EOI) and return (width, height)."""
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9", "not a JPEG (SOI/EOI)"
    pos = 2
    while pos < len(data):
        assert data[pos] == 0xFF, f"bad marker at {pos}"
        marker = data[pos + 1]
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker == 0xC0:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    raise AssertionError("no SOF0 segment")


def last_body(e: Emu, path: str) -> bytes:
    return next(r.body for r in reversed(e.requests) if r.path == path)


def wire_body(e: Emu, path: str) -> Any:
    return json.loads(last_body(e, path))


def tar_names(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def set_state(**values: Any) -> Callable[[Emu], None]:
    def apply(e: Emu) -> None:
        for key, value in values.items():
            setattr(e.state, key, value)

    return apply


def with_setup(
    setup: Callable[[Emu], Any], params: dict[str, Any] | Callable[[Emu], dict[str, Any]]
) -> Callable[[Emu], dict[str, Any]]:
    def run(e: Emu) -> dict[str, Any]:
        setup(e)
        return params(e) if callable(params) else dict(params)

    return run


def in_call(params: dict[str, Any] | Callable[[Emu], dict[str, Any]] = no_params) -> Callable[[Emu], dict[str, Any]]:
    return with_setup(lambda e: dial(e), params)


# --- checks with several steps ------------------------------------------------------------------


def check_audio_action(e: Emu, r: Result) -> None:
    assert e.state.test_tone is True
    assert e.state.audio_events[-1] == {"action": "playTestTone", "speaker": "SPEAKER_BOTH"}


def check_meetings(e: Emu, r: Result) -> None:
    upcoming = sorted(e.state.meetings.values(), key=lambda m: m.start)[:2]
    assert [m["id"] for m in r.data] == [m.id for m in upcoming]


def check_calendar_dial(e: Emu, r: Result) -> None:
    assert r.data["success"] is True
    conn = next(c for c in connections(e) if c.id == r.data["connectionId"])
    assert conn.address == "weekly@meet.example.com"


def check_snapshot(e: Emu, r: Result) -> None:
    assert r.file is not None and r.file.name == "near_image_1.jpg"
    assert jpeg_size(r.file.read_bytes()) == (160, 120)


def check_dial(e: Emu, r: Result) -> None:
    (conn,) = connections(e)
    assert (conn.address, conn.rate, conn.dial_type) == ("bob@example.com", 1024, "SIP")
    assert r.data == [{"rel": "self", "href": f"/rest/conferences/{conn.conf_id}/connections/{conn.id}"}]


def check_blast(e: Emu, r: Result) -> None:
    (conf,) = e.state.calls.conferences.values()
    assert sorted(c.address for c in conf.connections.values()) == ["a@example.com", "b@example.com"]
    assert {c.dial_type for c in conf.connections.values()} == {"AUTO", "H323"}
    assert r.data["href"] == f"/rest/conferences/{conf.id}"


def check_hangup(e: Emu, r: Result) -> None:
    assert e.state.calls.conferences == {}
    assert r.data == 0
    assert [c["address"] for c in e.state.calls.cdr] == ["bob@example.com"]


def two_calls(e: Emu) -> None:
    dial(e, "bob@example.com")
    dial(e, "carol@example.com")


def check_entry_added(e: Emu, r: Result) -> None:
    entry = next(x for x in e.state.directory.local.values() if x.fields.get("displayName") == "Zed Room")
    assert entry.devices[0]["addressList"][0]["number"] == "zed@example.com"
    assert ("local", entry.id) in e.state.directory.favorites


def add_group(e: Emu) -> None:
    e.state.directory.add({"type": "GROUP", "displayName": "Team"})


def check_members(e: Emu, r: Result) -> None:
    group = next(x for x in e.state.directory.local.values() if x.type == "GROUP")
    assert group.members == ["1"]


def start_query(e: Emu) -> dict[str, Any]:
    query = e.state.directory.search({"serverScope": "ALL"})
    return {"query_id": query.id, "start": 1, "limit": 2}


def check_query_page(e: Emu, r: Result) -> None:
    (query,) = e.state.directory.queries.values()
    assert [x["id"] for x in r.data["entries"]] == [x.id for x in query.results[:2]]
    assert r.data["next"]["href"] == f"/rest/directory/queries/{query.id}?start=3&limit=2"


IMPORT_XML = directory_xml(
    [
        {
            "id": "10",
            "type": "SINGLE",
            "favorite": True,
            "displayName": "Imported One",
            "devices": [{"name": "d", "addressList": [{"type": "SIP", "number": "one@example.com"}]}],
        },
        {"id": "11", "type": "GROUP", "favorite": False, "displayName": "Imported Group", "members": ["10"]},
    ]
)


def check_import(e: Emu, r: Result) -> None:
    local = e.state.directory.local
    assert sorted(local) == ["10", "11"]
    assert local["11"].members == ["10"]
    assert e.state.directory.favorites == [("local", "10")]


def check_export(e: Emu, r: Result) -> None:
    assert r.file is not None
    entries = parse_directory_xml(r.file.read_bytes())
    assert [x["id"] for x in entries] == list(e.state.directory.local)
    assert entries[0]["displayName"] == "Alice Meyer"


def check_logs(e: Emu, r: Result) -> None:
    assert r.file is not None
    files = tar_names(r.file.read_bytes())
    assert set(files) == {"logs/system.log", "logs/calls.log", "logs/config.txt"}
    assert b"system started" in files["logs/system.log"]
    assert b"bob@example.com" in files["logs/calls.log"]  # the CDR of the call hung up in setup


def hung_up_call(e: Emu) -> dict[str, Any]:
    conn = dial(e)
    e.state.calls.hang_up(e.state.calls.conferences[conn.conf_id], e.state.now_ms())
    return {}


async def wait_back(e: Emu, device: Device) -> None:
    await wait_up(e)


def check_reboot(e: Emu, r: Result, device: Device) -> Awaitable[None]:
    async def run() -> None:
        assert e.state.reboots == 1 and e.state.peripheral_restarts == 1
        assert e.state.calls.conferences == {}  # the call in setup dropped
        assert wire_body(e, "/rest/system/reboot") == {"action": "reboot", "restartAll": True}
        await wait_back(e, device)
        # sessions did not survive the restart: the client logs in again by itself
        assert (await device.call("system_get")).data["serialNumber"] == e.state.serial

    return run()


def check_reset(e: Emu, r: Result, device: Device) -> Awaitable[None]:
    async def run() -> None:
        s = e.state
        assert s.resets == [{"certificates": True, "cdr": True, "directory": False, "logs": True}]
        assert s.volume == 50 and s.presets == {}
        assert "Temp" not in [x.display_name for x in s.directory.local.values()]  # not kept
        await wait_back(e, device)
        assert (await device.call("audio_volume_get")).data == 50

    return run()


def before_reset(e: Emu) -> dict[str, Any]:
    e.state.volume = 10
    e.state.presets.clear()
    e.state.preset(e.state.selected_people(), "store", 4, False)
    e.state.directory.add({"displayName": "Temp"})
    return {"keep_certificates": True, "keep_cdr": True, "keep_directory": False, "keep_logs": True}


def check_time_set(e: Emu, r: Result) -> None:
    assert e.state.tz_offset == -420
    assert abs(e.state.now_ms() - 1_700_000_000_000) < 5_000


def check_login(e: Emu, r: Result) -> None:
    assert r.data["success"] is True and r.data["session"]["userId"] == "admin"
    assert r.data["session"]["sessionId"] in e.sessions


def check_config_set(e: Emu, r: Result) -> None:
    assert e.state.config["comm.nics.h323nic.h323name"]["value"] == "room-7"
    assert e.state.config["cast.miracast.enabled"]["value"] == "True"  # not editable: unchanged
    assert r.data == {
        "vars": [
            {"name": "comm.nics.h323nic.h323name", "result": "NOERROR"},
            {"name": "cast.miracast.enabled", "result": "NOTEDITABLE"},
        ]
    }
    assert wire_body(e, "/rest/config") == {
        "vars": [
            {"name": "comm.nics.h323nic.h323name", "value": "room-7"},
            {"name": "cast.miracast.enabled", "value": False},
        ]
    }


MOVE_UP = {"action": "moveStart", "direction": "MOVE_UP"}

CASES: dict[str, Case] = {
    # -- audio --
    "audio_get": Case(
        with_setup(set_state(volume=37, muted=True), {}),
        lambda e, r: (
            r.data == {"muteLocked": False, "muted": True, "numOfMicsConnected": 2, "volume": 37}
            or pytest.fail(str(r.data))
        ),
    ),
    "audio_action": Case(lambda e: {"action": "playTestTone", "speaker": "SPEAKER_BOTH"}, check_audio_action),
    "audio_acousticfence_action": Case(
        lambda e: {"action": "start"},
        lambda e, r: (e.state.acoustic_fence and e.state.fence_events == [{"action": "start"}]) or pytest.fail(),
    ),
    "audio_audiometers_get": Case(
        no_params,
        lambda e, r: (
            [m["portName"] for m in r.data][:3] == ["FAR_IN", "CAMERA_MIC", "IP_TABLE_MIC"] or pytest.fail(str(r.data))
        ),
    ),
    "audio_microphones_get": Case(
        with_setup(set_state(muted=True), {}),
        lambda e, r: {m["mute"] for m in r.data} == {1} or pytest.fail(str(r.data)),
    ),
    "audio_muted_get": Case(with_setup(set_state(muted=True), {}), lambda e, r: r.data is True or pytest.fail()),
    "audio_muted_set": Case(
        lambda e: {"muted": True},
        lambda e, r: (e.state.muted is True and last_body(e, "/rest/audio/muted") == b"true") or pytest.fail(),
    ),
    "audio_volume_get": Case(with_setup(set_state(volume=42), {}), lambda e, r: r.data == 42 or pytest.fail()),
    "audio_volume_set": Case(
        lambda e: {"volume": 73},
        lambda e, r: (e.state.volume == 73 and last_body(e, "/rest/audio/volume") == b"73") or pytest.fail(),
    ),
    # -- calendar --
    "calendar_get": Case(
        with_setup(set_state(calendar_status="CONNECTING"), {}),
        lambda e, r: r.data == {"Status": "CONNECTING"} or pytest.fail(str(r.data)),
    ),
    "calendar_meetings_get": Case(lambda e: {"number": 2}, check_meetings),
    "calendar_meetings_get_one": Case(
        lambda e: {"meeting_id": "mtg-2"},
        lambda e, r: r.data["subject"] == e.state.meetings["mtg-2"].subject or pytest.fail(),
    ),
    "calendar_meetings_dial": Case(lambda e: {"meeting_id": "mtg-1"}, check_calendar_dial),
    "calendar_discover": Case(
        lambda e: {"domain": "email", "email": "room@corp.example", "username": "room", "password": "x"},
        lambda e, r: (
            (
                r.data["serverUrl"] == "https://mail.corp.example/EWS/Exchange.asmx"
                and e.state.discovered is not None
                and e.state.discovered["username"] == "room"
            )
            or pytest.fail(str(r.data))
        ),
    ),
    # -- cameras --
    "cameras_sourceselectable_get": Case(no_params, lambda e, r: r.data is True or pytest.fail()),
    "cameras_contentstatus_get": Case(
        with_setup(set_state(content_status="CONTENT_SENDING"), {}),
        lambda e, r: r.data == "CONTENT_SENDING" or pytest.fail(),
    ),
    "cameras_near_all_get": Case(
        no_params, lambda e, r: [c["cameraIndex"] for c in r.data] == list(e.state.near) or pytest.fail()
    ),
    "cameras_near_people_get": Case(
        no_params, lambda e, r: [c["cameraIndex"] for c in r.data] == [1, 3] or pytest.fail(str(r.data))
    ),
    "cameras_near_content_get": Case(
        no_params, lambda e, r: [c["sourceType"] for c in r.data] == ["SRC_CONTENT"] or pytest.fail()
    ),
    "cameras_near_source_get": Case(
        lambda e: {"source_id": 3}, lambda e, r: r.data["name"] == e.state.near[3].name or pytest.fail()
    ),
    "cameras_near_source_move": Case(
        lambda e: {"source_id": 1, "action": "moveStart", "direction": "MOVE_LEFT"},
        lambda e, r: (e.state.near[1].pan, e.state.near[1].moving) == (-5000, "MOVE_LEFT") or pytest.fail(),
    ),
    "cameras_near_selectedpeople_get": Case(no_params, lambda e, r: r.data["cameraIndex"] == 1 or pytest.fail()),
    "cameras_near_selectedpeople_move": Case(
        lambda e: dict(MOVE_UP), lambda e, r: e.state.selected_people().tilt == 5000 or pytest.fail()
    ),
    "cameras_near_selectedcontent_get": Case(no_params, lambda e, r: r.data["cameraIndex"] == 2 or pytest.fail()),
    "cameras_near_selectedcontent_move": Case(
        lambda e: {"action": "moveStop", "message": "LeftCamera"},
        lambda e, r: e.state.near[2].last_message == "LeftCamera" or pytest.fail(),
    ),
    "cameras_near_presets_all_get": Case(
        with_setup(lambda e: e.state.preset(e.state.near[1], "store", 5, False), {}),
        lambda e, r: [p["index"] for p in r.data] == [5] or pytest.fail(str(r.data)),
    ),
    "cameras_near_presets_index_get": Case(
        with_setup(lambda e: e.state.preset(e.state.near[1], "store", 7, True), {"index": 7}),
        lambda e, r: (r.data["index"], r.data["stored"]) == (7, True) or pytest.fail(str(r.data)),
    ),
    "cameras_near_presets_index_update": Case(
        with_setup(
            lambda e: setattr(e.state.near[1], "pan", 1234), {"index": 3, "action": "store", "with_image": "Yes"}
        ),
        lambda e, r: (e.state.presets[3].pan, e.state.presets[3].with_image) == (1234, True) or pytest.fail(),
    ),
    "cameras_near_position_move": Case(
        lambda e: {
            "source_id": "SELECTED_PEOPLE",
            "cam_position": {"pan": 100, "tilt": -200, "zoom": 300},
            "relative": True,
        },
        lambda e, r: (
            (e.state.near[1].pan, e.state.near[1].tilt, e.state.near[1].zoom) == (100, -200, 300) or pytest.fail()
        ),
    ),
    "cameras_far_all_get": Case(in_call(), lambda e, r: [c["nearCamera"] for c in r.data] == [False] or pytest.fail()),
    "cameras_far_selectedpeople_get": Case(in_call(), lambda e, r: r.data["cameraIndex"] == 1 or pytest.fail()),
    "cameras_far_selectedpeople_move": Case(
        in_call({"action": "moveStart", "direction": "MOVE_ZOOMIN"}),
        lambda e, r: e.state.calls.far_camera.zoom == 5000 or pytest.fail(),
    ),
    "cameras_far_source_get": Case(in_call({"source_id": 1}), lambda e, r: r.data["name"] == "Main" or pytest.fail()),
    "cameras_far_source_move": Case(
        in_call({"source_id": 1, "action": "moveStart", "direction": "MOVE_RIGHT"}),
        lambda e, r: e.state.calls.far_camera.pan == 5000 or pytest.fail(),
    ),
    "cameras_snapshot_get": Case(lambda e: {"snapshot_id": "near_image_1.jpg"}, check_snapshot),
    # -- collaboration --
    "collaboration_get": Case(no_params, lambda e, r: r.data["state"] == "ACTIVE" or pytest.fail()),
    "collaboration_end": Case(
        lambda e: {},
        lambda e, r: (
            (e.state.collaboration_active is False and wire_body(e, "/rest/collaboration") == {"action": "END"})
            or pytest.fail()
        ),
    ),
    "collaboration_content_start": Case(
        lambda e: {"pin": e.state.room_pin},
        lambda e, r: list(e.state.saved_content) == [r.data["context_id"]] or pytest.fail(str(r.data)),
    ),
    "collaboration_content_get": Case(
        with_setup(
            lambda e: e.state.saved_content.update(ctx1=zip_archive({"page_1.jpg": b"x"})),
            lambda e: {"pin": e.state.room_pin, "context_id": "ctx1"},
        ),
        lambda e, r: (
            (
                r.file is not None
                and r.file.read_bytes() == e.state.saved_content["ctx1"]
                and "context-id=ctx1" in e.requests[-1].query
            )
            or pytest.fail()
        ),
    ),
    "collaboration_contentsavestatus_get": Case(
        lambda e: {"pin": e.state.room_pin, "status": False},
        lambda e, r: e.state.content_save_enabled is False or pytest.fail(),
    ),
    "collaboration_content_all_get": Case(
        with_setup(lambda e: e.state.saved_content.update(a=b"1", b=b"2"), lambda e: {"pin": e.state.room_pin}),
        lambda e, r: (
            (r.file is not None and sorted(zipfile.ZipFile(r.file).namelist()) == ["a.zip", "b.zip"]) or pytest.fail()
        ),
    ),
    # -- conferences --
    "conferences_get": Case(
        in_call(),
        lambda e, r: (
            [c["address"] for c in r.data[0]["connections"]] == ["bob@example.com"] or pytest.fail(str(r.data))
        ),
    ),
    "conferences_dial": Case(lambda e: {"address": "bob@example.com", "dial_type": "SIP", "rate": 1024}, check_dial),
    "conferences_blast": Case(
        lambda e: {
            "end_point_list": [
                {"addresses": [{"address": "a@example.com"}]},
                {"addresses": [{"address": "b@example.com", "rate": 512, "dialType": "H323"}]},
            ]
        },
        check_blast,
    ),
    "conferences_capabilities_get": Case(no_params, lambda e, r: r.data["canBlastDial"] is True or pytest.fail()),
    "conferences_get_one": Case(
        in_call(lambda e: {"conf_id": conf_of(e)}), lambda e, r: r.data["id"] == conf_of(e) or pytest.fail()
    ),
    "conferences_hangup": Case(in_call(lambda e: {"conf_id": conf_of(e)}), check_hangup),
    "conferences_connections_get": Case(
        with_setup(two_calls, lambda e: {"conf_id": conf_of(e), "filter": "ACTIVE"}),
        lambda e, r: [c["address"] for c in r.data] == ["bob@example.com", "carol@example.com"] or pytest.fail(),
    ),
    "conferences_connections_add": Case(
        in_call(lambda e: {"conf_id": conf_of(e), "address": "carol@example.com", "dial_type": "H323"}),
        lambda e, r: (
            sorted(c.address for c in connections(e)) == ["bob@example.com", "carol@example.com"] or pytest.fail()
        ),
    ),
    "conferences_connection_get": Case(
        in_call(lambda e: {"conf_id": conf_of(e), "conn_id": connections(e)[0].id}),
        lambda e, r: r.data["address"] == "bob@example.com" or pytest.fail(),
    ),
    "conferences_connection_hangup": Case(
        with_setup(two_calls, lambda e: {"conf_id": conf_of(e), "conn_id": connections(e)[0].id}),
        lambda e, r: [c.address for c in connections(e)] == ["carol@example.com"] or pytest.fail(),
    ),
    "conferences_terminals_get": Case(
        in_call(lambda e: {"conf_id": conf_of(e)}),
        lambda e, r: [t["address"] for t in r.data] == ["bob@example.com"] or pytest.fail(),
    ),
    "conferences_terminal_get": Case(
        in_call(lambda e: {"conf_id": conf_of(e), "term_id": connections(e)[0].terminal_id}),
        lambda e, r: r.data["parentConnectionId"] == connections(e)[0].id or pytest.fail(),
    ),
    "conferences_terminal_hangup": Case(
        in_call(lambda e: {"conf_id": conf_of(e), "term_id": connections(e)[0].terminal_id}),
        lambda e, r: e.state.calls.conferences == {} or pytest.fail(),
    ),
    "conferences_mediastats_get": Case(
        in_call(lambda e: {"conf_id": conf_of(e)}),
        lambda e, r: (
            [s["mediaStream"] for s in r.data] == ["audioTx", "audioRx", "videoTx", "videoRx"] or pytest.fail()
        ),
    ),
    "conferences_connection_mediastat_get": Case(
        with_setup(
            lambda e: dial(e, dial_type="VOICE"), lambda e: {"conf_id": conf_of(e), "conn_id": connections(e)[0].id}
        ),
        lambda e, r: [s["mediaType"] for s in r.data] == ["AUDIO", "AUDIO"] or pytest.fail(),
    ),
    "conferences_terminal_mediastats_get": Case(
        in_call(lambda e: {"conf_id": conf_of(e), "term_id": connections(e)[0].terminal_id}),
        lambda e, r: {s["termId"] for s in r.data} == {connections(e)[0].terminal_id} or pytest.fail(),
    ),
    "conferences_term_mediastats_get": Case(
        in_call(lambda e: {"conf_id": conf_of(e)}),
        lambda e, r: r.data == [{"id": connections(e)[0].terminal_id, "quality": "GOOD"}] or pytest.fail(),
    ),
    # -- directory --
    "directory_favorites_get": Case(
        lambda e: {"start": 1, "limit": 10},
        lambda e, r: (
            [x["id"] for x in r.data["entries"]] == [i for _, i in e.state.directory.favorites]
            or pytest.fail(str(r.data))
        ),
    ),
    "directory_global_server_get": Case(no_params, lambda e, r: r.data["protocol"] == "LDAP" or pytest.fail()),
    "directory_global_mtddefaultgroupentry_get": Case(no_params, lambda e, r: r.data["id"] == "g-all" or pytest.fail()),
    "directory_local_server_get": Case(no_params, lambda e, r: r.data["id"] == "local" or pytest.fail()),
    "directory_local_entries_add": Case(
        lambda e: {
            "type": "SINGLE",
            "display_name": "Zed Room",
            "favorite": True,
            "devices": [{"name": "Room", "addressList": [{"type": "SIP", "number": "zed@example.com"}]}],
        },
        check_entry_added,
    ),
    "directory_local_entries_get": Case(
        lambda e: {"entry_id": "2"}, lambda e, r: r.data["displayName"] == "Helpdesk" or pytest.fail()
    ),
    "directory_local_entries_delete": Case(
        lambda e: {"entry_id": "1"},
        lambda e, r: ("1" not in e.state.directory.local and e.state.directory.favorites == []) or pytest.fail(),
    ),
    "directory_local_entries_update": Case(
        lambda e: {"entry_id": "2", "work_phone": "+1 555 0100"},
        lambda e, r: e.state.directory.local["2"].fields["workPhone"] == "+1 555 0100" or pytest.fail(),
    ),
    "directory_local_entries_action": Case(
        lambda e: {"entry_id": "1"},
        lambda e, r: [c.address for c in connections(e)] == ["alice@example.com"] or pytest.fail(),
    ),
    "directory_local_entries_favorite_set": Case(
        lambda e: {"entry_id": "2", "favorite": True},
        lambda e, r: e.state.directory.favorites == [("local", "1"), ("local", "2")] or pytest.fail(),
    ),
    "directory_local_entries_favorite_reorder": Case(
        with_setup(
            lambda e: e.state.directory.set_favorite(e.state.directory.local["2"], True), {"entry_id": "2", "index": 0}
        ),
        lambda e, r: e.state.directory.favorites == [("local", "2"), ("local", "1")] or pytest.fail(),
    ),
    "directory_local_entries_members": Case(
        with_setup(
            add_group, lambda e: {"entry_id": str(e.state.directory.next_entry - 1), "action": "add", "member_id": "1"}
        ),
        check_members,
    ),
    "directory_queries_start": Case(
        lambda e: {"search_string": "alice", "server_scope": "LOCAL"},
        lambda e, r: [x.id for x in e.state.directory.queries[r.data["id"]].results] == ["1"] or pytest.fail(),
    ),
    "directory_queries_initial_get": Case(
        no_params, lambda e, r: len(e.state.directory.queries[r.data["id"]].results) == 5 or pytest.fail()
    ),
    "directory_queries_get": Case(start_query, check_query_page),
    "directory_queries_delete": Case(
        with_setup(lambda e: e.state.directory.search({}), {"query_id": 1}),
        lambda e, r: e.state.directory.queries == {} or pytest.fail(),
    ),
    "directory_server_entry_get": Case(
        lambda e: {"server_id": "global", "entry_id": "g-1"},
        lambda e, r: r.data["displayName"] == "Dana Lee" or pytest.fail(),
    ),
    "directory_server_entry_action": Case(
        lambda e: {"server_id": "global", "entry_id": "g-2"},
        lambda e, r: [c.address for c in connections(e)] == ["boardroom@example.com"] or pytest.fail(),
    ),
    "directory_server_entry_favorite_set": Case(
        lambda e: {"server_id": "global", "entry_id": "g-1", "favorite": True},
        lambda e, r: (r.data["success"] and ("global", "g-1") in e.state.directory.favorites) or pytest.fail(),
    ),
    "directory_server_entry_favorite_reorder": Case(
        with_setup(
            lambda e: e.state.directory.set_favorite(e.state.directory.global_["g-1"], True),
            {"server_id": "global", "entry_id": "g-1", "index": 0},
        ),
        lambda e, r: e.state.directory.favorites[0] == ("global", "g-1") or pytest.fail(),
    ),
    "directory_server_entry_members": Case(
        lambda e: {"server_id": "global", "entry_id": "g-all", "action": "query"},
        lambda e, r: [x.id for x in e.state.directory.queries[r.data["id"]].results] == ["g-2"] or pytest.fail(),
    ),
    "directory_import": Case(lambda e: {"file": IMPORT_XML}, check_import),
    "directory_export": Case(no_params, check_export),
    # -- session --
    "session_login": Case(lambda e: {"user": "admin", "password": PASSWORD}, check_login),
    "session_logout": Case(no_params, lambda e, r: e.sessions == {} or pytest.fail()),
    "session_sessions_get": Case(
        no_params, lambda e, r: len(r.data["sessionList"]) == len(e.sessions) == 1 or pytest.fail()
    ),
    # -- system --
    "system_h323gatekeepers_get": Case(
        with_setup(lambda e: e.state.config["comm.nics.h323nic.h323name"].update(value="room"), {}),
        lambda e, r: [g["state"] for g in r.data] == ["UP"] or pytest.fail(),
    ),
    "system_logs_get": Case(hung_up_call, check_logs),
    "system_apps_environment_show": Case(no_params, lambda e, r: e.state.environment_app is True or pytest.fail()),
    "system_apps_environment_hide": Case(
        with_setup(set_state(environment_app=True), {}), lambda e, r: e.state.environment_app is False or pytest.fail()
    ),
    "system_apps_environment_get": Case(
        with_setup(set_state(environment_app=True), {}),
        lambda e, r: r.data[0]["environmentControlAppActive"] is True or pytest.fail(),
    ),
    "system_mode_device_get": Case(
        with_setup(set_state(device_mode=True), {}), lambda e, r: r.data == {"result": True} or pytest.fail()
    ),
    "system_mode_device_start": Case(
        in_call(), lambda e, r: (e.state.device_mode and e.state.calls.conferences == {}) or pytest.fail()
    ),
    "system_mode_device_stop": Case(
        with_setup(set_state(device_mode=True), {}),
        lambda e, r: (e.state.device_mode is False and r.data == {"success": True, "reason": ""}) or pytest.fail(),
    ),
    "system_mode_signage_get": Case(no_params, lambda e, r: r.data == {"result": False} or pytest.fail()),
    "system_mode_signage_start": Case(no_params, lambda e, r: e.state.signage_mode is True or pytest.fail()),
    "system_mode_signage_stop": Case(
        with_setup(set_state(signage_mode=True), {}), lambda e, r: e.state.signage_mode is False or pytest.fail()
    ),
    "system_network_ping": Case(
        lambda e: {"destination": "127.0.0.1"},
        lambda e, r: (r.data["icmpReachable"] is True and e.state.pings == ["127.0.0.1"]) or pytest.fail(),
    ),
    "system_network_traceroute": Case(
        lambda e: {"destination": "10.1.2.3"},
        lambda e, r: (
            (
                r.data["hops"][-1]["address"] == "10.1.2.3"
                and e.requests[-1].method == "GET"
                and wire_body(e, "/rest/system/network/traceroute") == {"destination": "10.1.2.3"}
            )
            or pytest.fail()
        ),
    ),
    "system_reboot": Case(in_call({"restart_all": True}), check_reboot),
    "system_resetsettings": Case(before_reset, check_reset),
    "system_sipservers_get": Case(
        with_setup(lambda e: e.state.config["comm.nics.sipnic.sipusername"].update(value="room@sip.example.com"), {}),
        lambda e, r: [s["state"] for s in r.data] == ["UP"] or pytest.fail(),
    ),
    "system_status_get": Case(
        with_setup(set_state(calendar_status="OFFLINE"), {}),
        lambda e, r: {s["name"]: s["stateList"] for s in r.data}["system.status.calendar"] == ["off"] or pytest.fail(),
    ),
    "system_time_get": Case(
        with_setup(set_state(time_offset_ms=3_600_000, tz_offset=60), {}),
        lambda e, r: (
            (abs(r.data["time"] - (time.time() * 1000 + 3_600_000)) < 5_000 and r.data["tzOffset"] == 60)
            or pytest.fail()
        ),
    ),
    "system_time_set": Case(lambda e: {"time": 1_700_000_000_000, "tz_offset": -420}, check_time_set),
    "system_time_local_get": Case(
        with_setup(set_state(tz_offset=120), {}), lambda e, r: r.data["time"].endswith("+0200") or pytest.fail()
    ),
    # -- systracker, video --
    "mediastats_get": Case(
        with_setup(set_state(content_streams=[{"sourceType": "MIRACAST", "width": 1920}]), {}),
        lambda e, r: r.data == {"vars": [{"sourceType": "MIRACAST", "width": 1920}]} or pytest.fail(),
    ),
    "video_local_mute_get": Case(
        with_setup(set_state(video_muted=True), {}), lambda e, r: r.data == {"result": True} or pytest.fail()
    ),
    "video_local_mute_set": Case(lambda e: {"mute": True}, lambda e, r: e.state.video_muted is True or pytest.fail()),
    "video_remote_conf_mute_get": Case(
        in_call(
            lambda e: (
                setattr(e.state.calls.conferences[conf_of(e)], "far_video_muted", True),
                {"conf_id": conf_of(e)},
            )[1]
        ),
        lambda e, r: r.data == {"result": True} or pytest.fail(),
    ),
    "video_remote_conf_mutelock_get": Case(
        in_call(lambda e: {"conf_id": conf_of(e)}), lambda e, r: r.data == {"result": False} or pytest.fail()
    ),
    # -- outside the reference --
    "system_get": Case(
        no_params,
        lambda e, r: (r.data["serialNumber"], r.data["systemName"]) == (e.state.serial, "room-1") or pytest.fail(),
    ),
    "config_get": Case(
        lambda e: {"names": ["cast.airplay.enabled", "no.such.var"]},
        lambda e, r: (
            [(v["name"], v["result"]) for v in r.data["vars"]]
            == [("cast.airplay.enabled", "NOERROR"), ("no.such.var", "NOTFOUND")]
            or pytest.fail()
        ),
    ),
    "config_set": Case(
        lambda e: {
            "vars": [
                {"name": "comm.nics.h323nic.h323name", "value": "room-7"},
                {"name": "cast.miracast.enabled", "value": False},
            ]
        },
        check_config_set,
    ),
    "system_bluetooth_get": Case(no_params, lambda e, r: r.data[0]["name"] == "Polycom Remote" or pytest.fail()),
    "devicemanagement_logs_get": Case(
        hung_up_call,
        lambda e, r: (
            (check_logs(e, r), e.requests[-1].headers.get("Accept") == "application/octet-stream")[1] or pytest.fail()
        ),
    ),
    "devicemanagement_devices_get": Case(
        no_params,
        lambda e, r: (r.data[0]["deviceType"], r.data[0]["serialNumber"]) == ("CODEC", e.state.serial) or pytest.fail(),
    ),
    "system_apps_get": Case(
        no_params,
        lambda e, r: [a["appName"] for a in r.data] == ["Poly", "ZoomRooms", "MicrosoftTeams"] or pytest.fail(),
    ),
    "system_apps_all_get": Case(no_params, lambda e, r: len(r.data) == 3 or pytest.fail()),
    "system_mode_get": Case(
        with_setup(set_state(provider="ZoomRooms"), {}), lambda e, r: r.data["app"] == "ZoomRooms" or pytest.fail()
    ),
    "system_mode_set": Case(
        lambda e: {"enabled_apps": ["MicrosoftTeams"]},
        lambda e, r: (e.state.provider == "MicrosoftTeams" and r.data == {"error": "NOERROR"}) or pytest.fail(),
    ),
}


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorThread]:
    with EmulatorThread() as thread:
        yield thread


@pytest.fixture
def emu(server: EmulatorThread) -> Emu:
    device = EmulatedVideoOS("room-1", password=PASSWORD)
    device.faults.reboot_seconds = 0.3
    server.add(device)
    return device


def test_every_spec_action_has_a_case() -> None:
    assert sorted(set(SPEC.actions) - set(CASES)) == [], "spec actions without a test case"
    assert sorted(set(CASES) - set(SPEC.actions)) == [], "test cases for actions the spec does not have"


@pytest.mark.parametrize("action_id", sorted(SPEC.actions))
async def test_action(action_id: str, emu: Emu, tls: TLSPolicy, tmp_path: Path) -> None:
    case = CASES.get(action_id)
    assert case is not None, f"{action_id}: add an entry to CASES (params and the state to check)"
    params = case.params(emu)
    action = SPEC.action(action_id)
    device = Device(SPEC, f"127.0.0.1:{emu.port}", credentials=Credentials("admin", PASSWORD), tls=tls)
    try:
        result = await device.call(action_id, download_to=tmp_path, **params)
        assert result.status in action.success
        # the request went out as the spec says: method and path (the emulator routed it to this action)
        sent = [r for r in emu.requests if (r.method, r.path) != ("POST", "/rest/session")]
        last = emu.requests[-1] if action_id == "session_login" else sent[-1]
        assert last.method == action.method
        if action.response == "file":
            assert result.file is not None and result.file.parent == tmp_path and result.file.stat().st_size > 0
        checker: Any = case.check
        outcome = (
            checker(emu, result, device) if len(inspect.signature(checker).parameters) == 3 else checker(emu, result)
        )
        if inspect.isawaitable(outcome):
            await outcome
    finally:
        await device.close()


# --- error statuses, aliases and device behaviour --------------------------------------------------


async def raw(e: Emu, method: str, path: str, body: bytes | str | None = None) -> tuple[int, bytes]:
    """One logged-in request outside the client (to send what the client's validation would refuse).

    The device's certificate is pinned by fingerprint, as avctl's client does.
    """
    der = ssl.PEM_cert_to_DER_cert(e.cert_pem.decode())
    pin = aiohttp.Fingerprint(hashlib.sha256(der).digest())
    base = f"https://127.0.0.1:{e.port}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        login = {"user": "admin", "password": PASSWORD}
        async with session.post(f"{base}/rest/session", json=login, ssl=pin) as answer:
            assert answer.status == 200
            token = answer.cookies["XSRF-TOKEN"].value
        headers = {"X-XSRF-TOKEN": token, "Content-Type": "application/json"}
        data = body.encode() if isinstance(body, str) else body
        async with session.request(method, base + path, data=data, headers=headers, ssl=pin) as answer:
            return answer.status, await answer.read()


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/rest/audio/volume", "abc", 400),
        ("POST", "/rest/audio/volume", "101", 400),
        ("POST", "/rest/audio/muted", '"yes"', 400),
        ("POST", "/rest/audio", '{"action": "playDTMF"}', 400),
        ("POST", "/rest/conferences", "{}", 415),
        ("POST", "/rest/conferences", '{"address": ""}', 415),
        ("POST", "/rest/conferences/blast", '{"password": "x"}', 415),
        ("POST", "/rest/conferences/0/connections", '{"address": "x"}', 404),
        ("GET", "/rest/conferences/7", None, 404),
        ("GET", "/rest/conferences/seven", None, 400),
        ("DELETE", "/rest/conferences/7", None, 404),
        ("GET", "/rest/video/remote/7/mute", None, 404),
        ("POST", "/rest/cameras/near/1", '{"action": "spin"}', 400),
        ("POST", "/rest/cameras/near/9", '{"action": "moveStop"}', 404),
        ("GET", "/rest/cameras/near/9", None, 404),
        ("GET", "/rest/cameras/far/all", None, 404),
        ("GET", "/rest/cameras/near/presets/100", None, 400),
        ("POST", "/rest/cameras/near/presets/4", '{"action": "activate"}', 400),
        ("GET", "/rest/cameras/snapshot/far_image_1.jpg", None, 400),
        ("GET", "/rest/cameras/snapshot/other.png", None, 400),
        ("POST", "/rest/cameras/near/position/SELECTED_PEOPLE", '{"camPosition": {"pan": 1}}', 400),
        ("POST", "/rest/directory/local/entries", "{}", 400),
        ("GET", "/rest/directory/local/entries/77", None, 404),
        ("PUT", "/rest/directory/local/entries/77", "{}", 404),
        ("POST", "/rest/directory/local/entries/2/favorite", '{"index": 0}', 400),
        ("POST", "/rest/directory/local/entries/2/members", '{"action": "add", "entryId": "1"}', 400),
        ("GET", "/rest/directory/nowhere/entries/1", None, 404),
        ("GET", "/rest/directory/queries/42", None, 404),
        ("GET", "/rest/directory/favorites?start=0", None, 400),
        ("PUT", "/rest/directory/import", "not xml", 400),
        ("GET", "/rest/calendar/meetings?number=2&start=1", None, 400),
        ("POST", "/rest/calendar/meetings/nope", None, 404),
        ("POST", "/rest/collaboration/content?pin=wrong", None, 403),
        ("POST", "/rest/system/resetsettings", '{"action": "resetsettings"}', 400),
        ("POST", "/rest/system/reboot", '{"action": "reboot", "restartAll": "maybe"}', 400),
        ("POST", "/rest/config", '{"names": "cast.airplay.enabled"}', 400),
        ("POST", "/rest/config", '{"vars": [{"name": "x"}]}', 400),
        ("POST", "/rest/current/system/mode", '{"enabledapps": ["Skype"]}', 400),
        ("GET", "/rest/no/such/endpoint", None, 404),
    ],
)
async def test_error_statuses_follow_the_reference(
    emu: Emu, method: str, path: str, body: str | None, status: int
) -> None:
    got, answer = await raw(emu, method, path, body)
    assert got == status, answer
    assert emu.state.reboots == 0 and emu.state.resets == []  # a refused request changed nothing drastic


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/rest/system/network/traceroute", '{"destination": "10.0.0.1"}'),  # S001's method
        ("GET", "/rest/current/system/mode", None),  # older firmware (PLG)
        ("GET", "/rest/current/audio/volume", None),  # /rest/current/<path> for any /rest/<path>
    ],
)
async def test_alternate_forms_are_served(emu: Emu, method: str, path: str, body: str | None) -> None:
    status, answer = await raw(emu, method, path, body)
    assert status == 200, answer
    assert json.loads(answer)


async def test_contentsavestatus_single_s_spelling(emu: Emu) -> None:
    status, _ = await raw(emu, "GET", f"/rest/collaboration/contentsavestatus?pin={emu.state.room_pin}&status=false")
    assert status == 200 and emu.state.content_save_enabled is False


async def test_reboot_accepts_the_faq_string_flag(emu: Emu) -> None:
    status, _ = await raw(emu, "POST", "/rest/system/reboot", '{"action":"reboot","restartAll":"True"}')
    assert status == 200 and emu.state.peripheral_restarts == 1


def client(e: Emu, tls: TLSPolicy, timeout: float = 15.0) -> Device:
    return Device(SPEC, f"{e.host}:{e.port}", credentials=Credentials("admin", PASSWORD), tls=tls, timeout=timeout)


async def test_unknown_ids_are_device_errors_with_the_reference_meaning(emu: Emu, tls: TLSPolicy) -> None:
    async with client(emu, tls) as device:
        with pytest.raises(DeviceError) as caught:
            await device.call("conferences_get_one", conf_id=5)
        assert caught.value.status == 404 and "unavailable" in str(caught.value)
        with pytest.raises(DeviceError) as caught:
            await device.call("collaboration_content_start", pin="0000" if emu.state.room_pin != "0000" else "1")
        assert caught.value.status == 403


async def test_partner_provider_mode_blocks_dialing(emu: Emu, tls: TLSPolicy) -> None:
    async with client(emu, tls) as device:
        await device.call("system_mode_set", enabled_apps=["ZoomRooms"])
        with pytest.raises(DeviceError) as caught:
            await device.call("conferences_dial", address="bob@example.com")
        assert caught.value.status == 403
        assert emu.state.calls.conferences == {}


async def test_reboot_makes_the_device_unreachable_for_its_downtime(emu: Emu, tls: TLSPolicy) -> None:
    emu.faults.reboot_seconds = 1.0
    async with client(emu, tls, timeout=2.0) as device:
        await device.call("system_reboot")
        assert emu.is_down  # from the moment it answered the reboot, not after a guessed delay
        with pytest.raises(TransportError):
            await device.call("system_get")
        await wait_back(emu, device)
        assert (await device.call("system_get")).data["serialNumber"] == emu.state.serial
    assert emu.state.reboots == 1


async def reset_all(e: Emu, tls: TLSPolicy) -> bytes:
    before = e.cert_pem
    async with client(e, tls) as device:
        await device.call(
            "system_resetsettings", keep_certificates=False, keep_cdr=False, keep_directory=False, keep_logs=False
        )
        await wait_back(e, device)
    assert e.cert_pem != before
    return before


async def test_reset_without_keeping_certificates_changes_the_certificate(emu: Emu, tls: TLSPolicy) -> None:
    await reset_all(emu, tls)
    # the next client run (same known-devices file) sees a certificate other than the pinned one: refused
    async with client(emu, tls) as device:
        with pytest.raises(CertificateChanged):
            await device.call("system_get")


async def test_reset_drops_open_connections_too(emu: Emu, tls: TLSPolicy) -> None:
    async with client(emu, tls) as device:
        await device.call("system_get")  # a pooled keep-alive connection exists
        await device.call(
            "system_resetsettings", keep_certificates=False, keep_cdr=False, keep_directory=False, keep_logs=False
        )
        await wait_back(emu, device)
        with pytest.raises(CertificateChanged):
            await device.call("system_get")


async def test_directory_export_then_import_restores_entries(emu: Emu, tls: TLSPolicy, tmp_path: Path) -> None:
    async with client(emu, tls) as device:
        await device.call("directory_local_entries_add", display_name="Lab", type="SINGLE")
        exported = (await device.call("directory_export", download_to=tmp_path)).file
        assert exported is not None
        for entry_id in list(emu.state.directory.local):
            await device.call("directory_local_entries_delete", entry_id=entry_id)
        assert emu.state.directory.local == {}
        await device.call("directory_import", file=str(exported))
    names = sorted(e.display_name for e in emu.state.directory.local.values())
    assert names == ["Alice Meyer", "Helpdesk", "Lab"]
    assert ("local", "1") in emu.state.directory.favorites


async def test_directory_full_answers_507(emu: Emu, tls: TLSPolicy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("avctl.emulator.videoos.handlers_directory.LOCAL_CAPACITY", 2)
    async with client(emu, tls) as device:
        with pytest.raises(DeviceError) as caught:
            await device.call("directory_local_entries_add", display_name="One too many")
    assert caught.value.status == 507


async def test_query_paging_and_the_end_of_results(emu: Emu, tls: TLSPolicy) -> None:
    async with client(emu, tls) as device:
        query_id = (await device.call("directory_queries_initial_get")).data["id"]
        seen: list[str] = []
        start = 1
        while True:
            result = await device.call("directory_queries_get", query_id=query_id, start=start, limit=2)
            if result.status == 204:
                break
            seen += [x["id"] for x in result.data["entries"]]
            start += 2
    assert seen == [e.id for e in emu.state.directory.queries[query_id].results] and len(seen) == 5


async def test_collaboration_end_twice_and_secure_config(emu: Emu, tls: TLSPolicy) -> None:
    emu.state.config["device.local.adminpassword"]["value"] = "hunter2"
    async with client(emu, tls) as device:
        assert (await device.call("collaboration_end")).status == 200
        assert (await device.call("collaboration_end")).status == 204
        answer = await device.call("config_get", names=["device.local.adminpassword"])
    assert answer.data["vars"][0]["value"] == ""  # a secure variable's value never leaves the device


async def test_snapshot_follows_the_camera(emu: Emu, tls: TLSPolicy, tmp_path: Path) -> None:
    async with client(emu, tls) as device:
        first = await device.call("cameras_snapshot_get", snapshot_id="near_image_1.jpg", download_to=tmp_path / "a")
        await device.call(
            "cameras_near_position_move",
            source_id="SELECTED_PEOPLE",
            cam_position={"pan": -40000, "tilt": 30000, "zoom": 50000},
            relative=True,
        )
        second = await device.call("cameras_snapshot_get", snapshot_id="near_image_1.jpg", download_to=tmp_path / "b")
    assert first.file is not None and second.file is not None
    a, b = first.file.read_bytes(), second.file.read_bytes()
    assert jpeg_size(a) == jpeg_size(b) == (160, 120) and a != b


async def test_position_relative_false_is_an_offset(emu: Emu, tls: TLSPolicy) -> None:
    camera = emu.state.selected_people()
    camera.pan, camera.tilt, camera.zoom = 1000, 1000, 1000
    async with client(emu, tls) as device:
        await device.call(
            "cameras_near_position_move",
            source_id="SELECTED_PEOPLE",
            cam_position={"pan": 500, "tilt": -500, "zoom": 0},
            relative=False,
        )
    assert (camera.pan, camera.tilt, camera.zoom) == (1500, 500, 1000)


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True, check=True)


def spki_pin(cert_pem: bytes) -> str:
    """curl's --pinnedpubkey form of the device certificate's public key (pinning instead of trust-all)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = x509.load_pem_x509_certificate(cert_pem).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256//" + base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.mark.usefixtures("curl_present")
def test_faq_log_download_with_curl(emu: Emu, tmp_path: Path) -> None:
    """Seed 000's log download: login, then POST /rest/current/devicemanagement/logs -O -J."""
    jar = tmp_path / "cookies.txt"
    base = f"https://127.0.0.1:{emu.port}"
    tls = ["-k", "--pinnedpubkey", spki_pin(emu.cert_pem)]
    curl(
        *tls,
        "-b",
        str(jar),
        "-c",
        str(jar),
        "-H",
        "Content-Type: application/json",
        "-d",
        json.dumps({"user": "admin", "password": PASSWORD}),
        f"{base}/rest/session",
    )
    token = next(line.split()[6] for line in jar.read_text().splitlines() if "XSRF-TOKEN" in line)
    curl(
        *tls,
        "-b",
        str(jar),
        "-c",
        str(jar),
        "-X",
        "POST",
        "-H",
        "accept: application/octet-stream",
        "-H",
        f"X-XSRF-TOKEN: {token}",
        "-H",
        "X-Requested-With: XMLHttpRequest",
        f"{base}/rest/current/devicemanagement/logs",
        "-O",
        "-J",
        "--output-dir",
        str(tmp_path),
    )
    archive = tmp_path / f"logs_{emu.state.serial}.tar"
    assert archive.is_file()
    assert b"system started" in tar_names(archive.read_bytes())["logs/system.log"]


async def test_several_systems_keep_their_own_state(server: EmulatorThread, tls: TLSPolicy) -> None:
    """Three systems on their own loopback addresses, driven at once: no state leaks between them."""
    rooms = [EmulatedVideoOS(f"room-{n}", host=f"127.0.0.{n + 10}", password=PASSWORD) for n in range(3)]
    for room in rooms:
        server.add(room)

    async def drive(n: int, room: Emu) -> None:
        async with client(room, tls) as device:
            await device.call("audio_volume_set", volume=10 + n)
            await device.call("conferences_dial", address=f"far-{n}@example.com")
            assert (await device.call("system_get")).data["systemName"] == f"room-{n}"

    await asyncio.gather(*(drive(n, room) for n, room in enumerate(rooms)))
    assert [r.state.volume for r in rooms] == [10, 11, 12]
    assert [[c.address for c in connections(r)] for r in rooms] == [[f"far-{n}@example.com"] for n in range(3)]
    assert len({r.cert_pem for r in rooms}) == 3  # each system has its own certificate
