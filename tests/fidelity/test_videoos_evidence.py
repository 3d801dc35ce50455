"""The VideoOS emulator answers as real systems do: each test cites the public evidence it follows.

Evidence (read, not copied; the values below are facts of a real device's answers):

- AVI: github.com/AVISPL/dal-codecs-singlecodecs-polycom-videoos at 3889e5c3fb3224e7cd2daa68ea32771cd53aad89,
  `src/test/resources/mappings/multi.json`: WireMock recordings of a Poly Studio X30 (VideoOS 3.12.0);
  `src/main/java/com/avispl/dal/communicator/polycom/videoos/PolycomVideoOS.java`: the client's
  `PolycomVideoOSInterceptor` logs in again only when a call (not the login) answers 403.
- S003: the Poly VideoOS REST API Reference Guide 4.0.0 (seed 003), for the shapes real systems
  replace (collaboration `sessionId`/`sessionState`). The spec's Notes record the disagreement.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web

from avctl import AuthenticationError, Credentials, Device, DeviceError
from avctl.emulator.core import EmulatorThread, reply
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.families import builtin_spec
from avctl.spec.model import Action
from avctl.transport.tls import TLSPolicy

SPEC = builtin_spec("videoos")
PASSWORD = "pw-fidelity"

#: AVI multi.json, GET /rest/system/status: (langtag, name) of every item a Studio X30 sends
X30_STATUS = [
    ("LAN_NETWORK_HEADING", "system.status.ipnetwork"),
    ("CAMERA_MODEL_BUILT_IN_1.0", "system.status.trackablecamera"),
    ("AUTO_ANSWER_P2P_HEADING", "system.status.autoanswerp2p"),
    ("SIP_SERVER_HEADING", "system.status.sipserver"),
    ("GATEKEEPER_HEADING", "system.status.gatekeeper"),
    ("CAMERAS_HEADING", "system.status.mr.camera"),
    ("PROVISIONING_SERVICE_HEADING", "system.status.provisioning"),
    ("MICROPHONES_HEADING", "system.status.mr.audio"),
    ("REMOTE_CONTROL_HEADING", "system.status.remotecontrol"),
    ("LOG_THRESHOLD_HEADING", "system.status.logthreshold"),
    ("SYSTEM_STATUS_GLOBALDIRECTORY_SERVER", "system.status.globaldirectory"),
    ("CALENDAR_SERVICE_HEADING", "system.status.calendar"),
]
#: AVI multi.json: the keys of one GET /rest/current/session/sessions entry
X30_SESSION_KEYS = {"clientType", "creationTime", "isAuthenticated", "isConnected", "isNew", "isStale",
                    "location", "role", "sessionId", "userId"}
#: AVI multi.json: the keys of one GET /rest/system/apps entry, and the Poly app as it is named
X30_APP_KEYS = {"appName", "appSize", "ecoMode", "lastUpdatedOn", "packageName", "personaName",
                "polyCallFeaturesEnabled", "versionInfo"}
X30_POLY_APP = {"appName": "Poly", "packageName": "com.poly.polylauncher", "personaName": "Poly"}


def studio(emulators: EmulatorThread, cls: type[EmulatedVideoOS] = EmulatedVideoOS, **kw: Any) -> Any:
    return emulators.add(cls("x30", password=PASSWORD, **kw))


def client(dev: EmulatedVideoOS, tls: TLSPolicy) -> Device:
    return Device(SPEC, f"127.0.0.1:{dev.port}", credentials=Credentials("admin", PASSWORD), tls=tls)


def logins(dev: EmulatedVideoOS) -> int:
    return sum(1 for r in dev.requests if r.method == "POST" and r.path.endswith("/session"))


# -- 1. an unknown or expired session answers 403 (AVI: the client re-logs in on 403 only) --


async def test_unknown_and_expired_sessions_answer_403(emulators: EmulatorThread) -> None:
    dev = studio(emulators, scheme="http")
    base = f"http://127.0.0.1:{dev.port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/rest/system", headers={"Cookie": "session_id=made-up"}) as resp:
            assert resp.status == 403
            assert await resp.json() == {"success": False, "reason": "SessionNoActiveSession"}
        async with http.post(f"{base}/rest/session", json={"user": "admin", "password": PASSWORD}) as resp:
            assert resp.status == 200
            # the cookies are Secure: sent by hand over this plain-HTTP test socket
            session = resp.cookies["session_id"].value
            auth = {"Cookie": f"session_id={session}", "X-XSRF-TOKEN": resp.cookies["XSRF-TOKEN"].value}
        async with http.get(f"{base}/rest/system", headers=auth) as resp:
            assert resp.status == 200
        dev.expire_sessions()
        async with http.get(f"{base}/rest/system", headers=auth) as resp:
            assert resp.status == 403


async def test_client_logs_in_again_once_on_403(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = studio(emulators)
    async with client(dev, tls) as d:
        await d.call("system_get")
        dev.expire_sessions()  # the next call meets a 403, as on a real system
        assert (await d.call("collaboration_get")).data["id"] == "Local Session"
        assert logins(dev) == 2


class _AlwaysForbidden(EmulatedVideoOS):
    """Accepts every login, then answers every call 403: a device that could drive a login loop."""

    async def authenticate(self, request: web.Request, action: Action | None, body: bytes) -> web.StreamResponse | None:
        answer = await super().authenticate(request, action, body)
        if answer is None:
            return reply({"success": False, "reason": "SessionNoActiveSession"}, 403)
        return answer


async def test_a_second_403_is_reported_not_looped(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = studio(emulators, _AlwaysForbidden)
    async with client(dev, tls) as d:
        with pytest.raises(DeviceError) as err:
            await d.call("system_get")
    assert getattr(err.value, "status", None) == 403
    assert logins(dev) == 2  # the first login and exactly one re-login


class _LoginForbidden(EmulatedVideoOS):
    """Answers the login itself 403, as the reference guide documents a failed login (S003)."""

    def _login(self, request: web.Request, body: bytes) -> web.StreamResponse:
        self.login_attempts += 1
        return reply({"success": False, "reason": "SessionRequestInvalid"}, 403)


async def test_403_to_the_login_is_a_rejection_never_retried(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = studio(emulators, _LoginForbidden)
    async with client(dev, tls) as d:
        for _ in range(2):
            with pytest.raises(AuthenticationError):
                await d.call("system_get")
    assert dev.login_attempts == 1


# -- 2. /rest/collaboration names its fields id and state (AVI; S003 says sessionId/sessionState) --


async def test_collaboration_answers_id_and_state(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = studio(emulators)
    async with client(dev, tls) as d:
        assert (await d.call("collaboration_get")).data == {"id": "Local Session", "state": "ACTIVE"}
        dev.state.collaboration_active = False
        # AVI's recording of an idle Studio X30, verbatim
        assert (await d.call("collaboration_get")).data == {"id": "Local Session", "state": "INACTIVE"}


# -- 3. sessions, status items, peripherals and apps as a Studio X30 sends them (AVI) --


async def test_session_list_entries_carry_their_session_id(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = studio(emulators)
    async with client(dev, tls) as d:
        entries = (await d.call("session_sessions_get")).data["sessionList"]
        assert [e["sessionId"] for e in entries] == list(dev.sessions)  # before the logout
    assert [set(e) for e in entries] == [X30_SESSION_KEYS]


async def test_status_items_have_the_real_names_and_langtags(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = studio(emulators)
    async with client(dev, tls) as d:
        items = (await d.call("system_status_get")).data
        assert [(i["langtag"], i["name"]) for i in items] == X30_STATUS
        assert all(set(i) == {"langtag", "name", "stateList"} for i in items)
        dev.state.config["comm.nics.sipnic.sipusername"]["value"] = "room@sip.example.com"
        dev.state.calendar_status = "OFFLINE"
        states = {i["name"]: i["stateList"] for i in (await d.call("system_status_get")).data}
    assert states["system.status.sipserver"] == ["up"] and states["system.status.calendar"] == ["off"]
    assert states["system.status.mr.audio"] == ["all_up"]


async def test_peripherals_use_the_real_connection_types(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = studio(emulators)
    async with client(dev, tls) as d:
        found = {p["deviceCategory"]: p for p in (await d.call("devicemanagement_devices_get")).data}
    # AVI: the codec itself "Unknown", a TC8 on the LAN "Corp" over eth0, a paired remote "Unknown"
    assert found["SYSTEM"]["connectionType"] == "Unknown"
    assert (found["MODULE"]["connectionType"], found["MODULE"]["networkInterface"]) == ("Corp", "eth0")
    assert (found["REMOTE"]["connectionType"], found["REMOTE"]["deviceState"]) == ("Unknown", "PAIRED")


async def test_apps_name_the_poly_app_as_real_systems_do(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = studio(emulators)
    async with client(dev, tls) as d:
        apps = (await d.call("system_apps_get")).data
        assert all(set(a) == X30_APP_KEYS for a in apps)
        assert {k: apps[0][k] for k in X30_POLY_APP} == X30_POLY_APP
        assert (await d.call("system_mode_get")).data["app"] == "Poly"


def test_other_sessions_ids_are_never_printed(emulators: EmulatorThread, avctl_home: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Real systems list every open session with its `sessionId` (AVI multi.json): a bearer credential
    of another user. `avctl call` shows the list with every id masked."""
    import json

    from click.testing import CliRunner

    from avctl.cli.main import cli
    from avctl.redact import MASK

    dev = studio(emulators)
    monkeypatch.setenv("X30_PW", PASSWORD)
    args = ["call", "-f", "videoos", f"127.0.0.1:{dev.port}", "--password-env", "X30_PW"]
    CliRunner().invoke(cli, [*args, "system_get"], catch_exceptions=False)  # a first session, left to list
    result = CliRunner().invoke(cli, [*args, "session_sessions_get", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout[result.stdout.index("{"):])
    ids = [s["sessionId"] for s in listed["data"]["sessionList"]] if "data" in listed else [
        s["sessionId"] for s in listed["sessionList"]]
    assert ids and set(ids) == {MASK}
    assert not any(sid in result.output for sid in dev.sessions)
