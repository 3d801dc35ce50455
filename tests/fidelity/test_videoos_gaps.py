"""VideoOS answers corrected in issue 14's second round, each beside the public evidence it follows.

Evidence (read, not copied; the values below are facts of real devices' answers):

- AVI: github.com/AVISPL/dal-codecs-singlecodecs-polycom-videoos at 3889e5c3fb3224e7cd2daa68ea32771cd53aad89,
  `src/test/resources/mappings/multi.json`: WireMock recordings of a Poly Studio X30 (VideoOS 3.12.0);
  `PolycomVideoOS.java` `retrieveContentStatus()` reads /rest/cameras/contentstatus as a plain string.
- FAQ: seed 000 (HP/Poly community FAQ "Rest API for G7500 and Studio X"), a captured GET /rest/system
  of a Studio X50 4.6.2 (`"buildType":"dev"`, `"uptime":17250.28`).

Every request goes over real HTTPS to an emulated system on loopback: raw, as the cited client sends
it (`requests`, the system's own certificate trusted), then through avctl's client, which must read
the corrected shapes.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from avctl import Credentials, Device
from avctl.emulator.core import Ctx, EmulatorThread, reply
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.families import builtin_spec
from avctl.transport.tls import TLSPolicy

requests = pytest.importorskip("requests", reason="raw client requests need 'requests' (dev extra)")

SPEC = builtin_spec("videoos")
PASSWORD = "pw-gaps"

#: AVI multi.json: the keys of every POST /rest/current/devicemanagement/devices entry
X30_DEVICE_KEYS = {"connectionType", "deviceCategory", "deviceState", "deviceType", "ip", "macAddress",
                   "networkInterface", "productName", "serialNumber", "softwareVersion", "systemName", "uid"}
#: AVI multi.json: the keys of GET /rest/system of a Studio X30 3.12.0 (the FAQ's X50 4.6.2 adds
#: `canStartUpdate`)
X30_SYSTEM_KEYS = {"build", "buildType", "hardwareVersion", "lanStatus", "model", "rebootNeeded", "serialNumber",
                   "softwareVersion", "state", "systemName", "systemTime", "timeOffset", "timeServerState", "uptime"}


class Raw:
    """A logged-in HTTPS session as a third-party client holds it (cookie and XSRF header by hand)."""

    def __init__(self, dev: EmulatedVideoOS, ca: str) -> None:
        self.base, self.ca = f"https://127.0.0.1:{dev.port}", ca
        login = requests.post(f"{self.base}/rest/session", json={"user": "admin", "password": PASSWORD},
                              verify=ca, timeout=10)
        assert login.status_code == 200
        self.login = login.json()
        self.headers = {"Cookie": f"session_id={login.cookies['session_id']}",
                        "X-XSRF-TOKEN": login.cookies["XSRF-TOKEN"]}

    def get(self, path: str) -> Any:
        return requests.get(self.base + path, headers=self.headers, verify=self.ca, timeout=10)

    def post(self, path: str) -> Any:
        return requests.post(self.base + path, headers=self.headers, verify=self.ca, timeout=10)


@pytest.fixture
def studio(emulators: EmulatorThread) -> EmulatedVideoOS:
    dev = EmulatedVideoOS("x30", password=PASSWORD)
    emulators.add(dev)
    return dev


@pytest.fixture
def raw(studio: EmulatedVideoOS, tmp_path: Path) -> Raw:
    (tmp_path / "x30.pem").write_bytes(studio.cert_pem)
    return Raw(studio, str(tmp_path / "x30.pem"))


def client(dev: EmulatedVideoOS, tls: TLSPolicy) -> Device:
    return Device(SPEC, f"127.0.0.1:{dev.port}", credentials=Credentials("admin", PASSWORD), tls=tls)


# -- 1. a session's creationTime counts seconds from boot, like uptime ---------------------------------
# AVI: eight sessions' creationTime values 251498..693843 beside /rest/system "uptime":693845.31 (s):
# the newest session (the recording client's own) was created 2 s before that uptime, so creationTime
# is the uptime at login in whole seconds, not an epoch in ms.


def test_session_creation_time_is_the_uptime_at_login(studio: EmulatedVideoOS, tmp_path: Path) -> None:
    studio.state.booted_at = time.time() - 693_840  # a system up for eight days, as recorded
    (tmp_path / "x30.pem").write_bytes(studio.cert_pem)
    raw = Raw(studio, str(tmp_path / "x30.pem"))
    uptime = raw.get("/rest/system").json()["uptime"]
    [entry] = raw.get("/rest/current/session/sessions").json()["sessionList"]
    assert isinstance(entry["creationTime"], int)
    assert 693_840 <= entry["creationTime"] <= uptime  # seconds since boot, never ms of the epoch
    assert entry["creationTime"] == raw.login["session"]["creationTime"]  # the login answer agrees


async def test_client_reads_creation_time_on_the_uptime_scale(studio: EmulatedVideoOS, tls: TLSPolicy) -> None:
    studio.state.booted_at = time.time() - 3600
    async with client(studio, tls) as d:
        uptime = (await d.call("system_get")).data["uptime"]
        [entry] = (await d.call("session_sessions_get")).data["sessionList"]
    assert 3600 <= entry["creationTime"] <= uptime


# -- 2. /rest/system ---------------------------------------------------------------------------------------
# AVI: a release build says "buildType":"Release" (capitalised); the FAQ's capture of a development
# build says "dev". The emulated system is a release build.


async def test_system_answers_the_recorded_keys_and_build_type(studio: EmulatedVideoOS, raw: Raw,
                                                               tls: TLSPolicy) -> None:
    system = raw.get("/rest/system").json()
    assert X30_SYSTEM_KEYS <= set(system) <= X30_SYSTEM_KEYS | {"canStartUpdate"}
    assert system["buildType"] == "Release"
    assert isinstance(system["uptime"], float) and system["lanStatus"]["state"] == "LAN_UP"
    async with client(studio, tls) as d:
        assert (await d.call("system_get")).data["buildType"] == "Release"


# -- 3. /rest/cameras/contentstatus answers the bare word ----------------------------------------------------
# AVI: the recorded body is `CONTENT_IDLE` (12 bytes, no quotes) under Content-Type application/json,
# and the AVI client keeps the body text as the status. S003 shows a quoted JSON string; the client
# accepts both (spec Notes).


async def test_content_status_is_the_bare_word(studio: EmulatedVideoOS, raw: Raw, tls: TLSPolicy) -> None:
    answer = raw.get("/rest/cameras/contentstatus")
    assert answer.status_code == 200 and answer.content == b"CONTENT_IDLE"
    assert answer.headers["Content-Type"].startswith("application/json")
    studio.state.content_status = "CONTENT_SENDING"
    async with client(studio, tls) as d:
        assert (await d.call("cameras_contentstatus_get")).data == "CONTENT_SENDING"


class _GuideContentStatus(EmulatedVideoOS):
    """Answers the content status as S003 shows it: a quoted JSON string."""

    async def on_cameras_contentstatus_get(self, ctx: Ctx) -> web.StreamResponse:
        return reply(self.state.content_status)


async def test_client_reads_the_guides_quoted_status_too(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = _GuideContentStatus("x30-guide", password=PASSWORD)
    emulators.add(dev)
    async with client(dev, tls) as d:
        assert (await d.call("cameras_contentstatus_get")).data == "CONTENT_IDLE"
    assert dev.requests[-2].path == "/rest/cameras/contentstatus"  # the call, then the logout


# -- 4. servers and microphones ---------------------------------------------------------------------------------
# AVI: /rest/system/sipservers [{"address":...,"model":"Unknown","state":"UP","version":""}],
# /rest/system/h323gatekeepers [{"address":...,"model":"","state":"UP","version":""}];
# /rest/audio/microphones: the built-in microphone's hwVersion and swVersion are "NA".


def test_sip_server_model_is_unknown_and_gatekeeper_model_empty(studio: EmulatedVideoOS, raw: Raw) -> None:
    studio.state.config["comm.nics.sipnic.sipusername"]["value"] = "room@sip.example.com"
    studio.state.config["comm.nics.h323nic.h323name"]["value"] = "Room"
    [sip] = raw.get("/rest/system/sipservers").json()
    [gatekeeper] = raw.get("/rest/system/h323gatekeepers").json()
    assert (set(sip), sip["model"], sip["state"]) == ({"address", "model", "state", "version"}, "Unknown", "UP")
    assert (set(gatekeeper), gatekeeper["model"]) == ({"address", "model", "state", "version"}, "")


async def test_built_in_microphone_reports_no_versions(studio: EmulatedVideoOS, tls: TLSPolicy) -> None:
    async with client(studio, tls) as d:
        mics = (await d.call("audio_microphones_get")).data
    built_in = mics[0]
    assert set(built_in) == {"hwVersion", "mute", "number", "parentID", "state", "swVersion", "type", "typeInString"}
    assert (built_in["number"], built_in["hwVersion"], built_in["swVersion"]) == (0, "NA", "NA")


# -- 5. peripherals: the codec, a TC8 and a paired remote as the Studio X30 lists them -----------------------
# AVI: {"uid":"local-system","deviceCategory":"SYSTEM","ip":"172.31.254.150",...} (the codec's own
# address); the TC8 {"deviceState":"CONNECTED","macAddress":"00e0db50a267","systemName":"Poly TC8",
# "softwareVersion":"3.12.0-210716","uid":"3679494759",...}; remotes {"uid":"local-remote",
# "deviceType":"UNKNOWN","productName":"","serialNumber":"","macAddress":"AA:BB:CC:DD:EE:FF",...}
# (deviceType stays REMOTE in the emulator: avctl's users tell peripherals apart by it; spec Notes).


def test_peripherals_carry_the_recorded_identities(studio: EmulatedVideoOS, raw: Raw) -> None:
    listed = raw.post("/rest/current/devicemanagement/devices").json()
    assert all(set(p) == X30_DEVICE_KEYS for p in listed)
    by = {p["deviceCategory"]: p for p in listed}
    codec, tc8, remote = by["SYSTEM"], by["MODULE"], by["REMOTE"]
    assert (codec["uid"], codec["ip"], codec["deviceType"]) == ("local-system", studio.host, "CODEC")
    assert (tc8["deviceState"], tc8["systemName"], tc8["deviceType"]) == ("CONNECTED", "Poly TC8", "TOUCHCONTROL")
    assert re.fullmatch(r"[0-9a-f]{12}", tc8["macAddress"]) and tc8["uid"].isdigit()
    assert tc8["softwareVersion"].startswith(studio.state.firmware + "-")
    assert (remote["uid"], remote["productName"], remote["serialNumber"]) == ("local-remote", "", "")
    assert re.fullmatch(r"([0-9A-F]{2}:){5}[0-9A-F]{2}", remote["macAddress"])


async def test_client_lists_peripherals_and_an_unplugged_remote_goes(studio: EmulatedVideoOS,
                                                                     tls: TLSPolicy) -> None:
    async with client(studio, tls) as d:
        before = (await d.call("devicemanagement_devices_get")).data
        studio.state.detached = {"REMOTE"}  # the remote, now listed by its address
        after = (await d.call("devicemanagement_devices_get")).data
    assert [p["deviceCategory"] for p in before] == ["SYSTEM", "MODULE", "CAMERA", "REMOTE"]
    assert [p["deviceCategory"] for p in after] == ["SYSTEM", "MODULE", "CAMERA"]
