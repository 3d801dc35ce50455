"""Every Solstice action of the spec, called through the client against the emulated pod.

The cases are a table keyed by action id and the test is parametrised from the spec itself: an
action added to the spec without a case here fails (`test_every_action_has_a_case` and the
KeyError in `test_action`). Each case checks the pod's state after the call, not just the status.
v2 goes over HTTPS to the pod's main socket, v1 over plain HTTP to its v1 socket.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest

from avctl import Credentials, Device
from avctl.device import Result
from avctl.emulator.core import EmulatorThread
from avctl.emulator.solstice import EmulatedSolstice
from avctl.families import builtin_spec
from avctl.families.solstice import with_v1_endpoint
from avctl.transport.tls import KnownHosts, TLSPolicy

DATA = Path(__file__).parent / "data"
SPEC = builtin_spec("solstice")
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
PASSWORD = "s3cret-pod"


@dataclass
class Case:
    params: Callable[[EmulatedSolstice, Path], dict[str, Any]] = lambda pod, tmp: {}
    setup: Callable[[EmulatedSolstice], None] = lambda pod: None
    check: Callable[[EmulatedSolstice, Result, Path], None] = lambda pod, r, tmp: None
    download: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def meeting(mid: str = "m1", **over: Any) -> dict[str, Any]:
    return {"id": mid, "title": "Standup", "organizer": "Ana", "description": "daily",
            "start_time": 1_800_000_000, "end_time": 1_800_000_900, **over}


def add_meeting(pod: EmulatedSolstice, mid: str = "m1") -> None:
    pod.state.meetings[mid] = meeting(mid)


def first_camera(pod: EmulatedSolstice) -> str:
    return next(iter(pod.state.cameras))


def last_request(pod: EmulatedSolstice, path_prefix: str) -> Any:
    return [r for r in pod.requests if r.path.startswith(path_prefix)][-1]


def _check_token(pod: EmulatedSolstice, r: Result, tmp: Path) -> None:
    assert r.data["token_type"] == "jwt"
    claims = jwt.decode(r.data["access_token"], pod.jwt_key, algorithms=["HS256"])
    assert claims["exp"] > time.time()
    assert pod.tokens_issued == 1


def _check_config_update(pod: EmulatedSolstice, r: Result, tmp: Path) -> None:
    signage = pod.state.config["display"]["digital_signage"]
    assert signage["enabled"] is True and signage["url"] == "https://signage.example" and signage["start_after"] == 30
    assert r.data["message"] == "success!" and r.data["device_id"] == pod.state.device_id
    assert r.info["reboot_required"] is False and r.info["restart_required"] is False
    assert pod.state.last_rollback_timeout == 30


def _check_network_update(pod: EmulatedSolstice, r: Result, tmp: Path) -> None:
    assert pod.state.config["connection"]["host_name"] == "room-12"
    assert pod.state.last_rollback_timeout == 60
    assert r.info["reboot_required"] is True and r.info["apply_with"] == "v1_control_reboot"


def _check_section(pod: EmulatedSolstice, r: Result, tmp: Path) -> None:
    assert r.data == pod.state.config["display"]["digital_signage"]
    # the key's slash travels as a path separator, as in seed 004's sample
    assert last_request(pod, "/v2/config/").path == "/v2/config/display/digital_signage"


def _check_v1_password_query(pod: EmulatedSolstice, r: Result, tmp: Path) -> None:
    assert r.data["m_displayInformation"]["m_displayName"] == pod.name
    assert f"password={PASSWORD}" in last_request(pod, "/api/config").query


def _check_v1_update(pod: EmulatedSolstice, r: Result, tmp: Path) -> None:
    assert pod.state.config["display"]["name"] == "Board Room"
    assert pod.state.config["locale"]["language"] == "de-DE"
    assert b'"password": "' + PASSWORD.encode() in last_request(pod, "/api/config").body


CASES: dict[str, Case] = {
    # -- v2 token and config --
    "token_request": Case(params=lambda pod, tmp: {"password": PASSWORD}, check=_check_token),
    "config_get": Case(check=lambda pod, r, tmp: _eq(r.data, pod.state.config)),
    "config_section_get": Case(params=lambda pod, tmp: {"key": "display/digital_signage"}, check=_check_section),
    "config_update": Case(
        params=lambda pod, tmp: {
            "config": {"display": {"digital_signage": {"enabled": True, "url": "https://signage.example",
                                                       "start_after": 30}}},
            "rollback_timeout_seconds": 30,
        },
        check=_check_config_update,
    ),
    "network_config_update": Case(
        params=lambda pod, tmp: {"config": {"connection": {"host_name": "room-12"}},
                                 "rollback_timeout_seconds": 60},
        check=_check_network_update,
    ),
    "legacy_config_get": Case(check=lambda pod, r, tmp: _eq(r.data["m_displayId"], pod.state.device_id)),
    "hdmi_input_set": Case(params=lambda pod, tmp: {"force_off": True},
                           check=lambda pod, r, tmp: _eq(pod.state.hdmi_forced_off, True)),
    # -- v2 splash images --
    "splash_image_get": Case(
        setup=lambda pod: pod.state.store_image(3, "32x9", JPEG),
        params=lambda pod, tmp: {"position": 3, "aspect": "32x9"},
        download=True,
        check=lambda pod, r, tmp: _eq(r.file.read_bytes() if r.file else None, JPEG),
    ),
    "splash_image_upload": Case(
        params=lambda pod, tmp: {"position": 4, "aspect": "16x9", "image": JPEG},
        check=lambda pod, r, tmp: (
            _eq(pod.state.images[(4, "16x9")], JPEG),
            _eq(pod.state.config["display"]["splash"]["images"]["4"]["enabled"], True),
        ),
    ),
    # -- v2 calendar --
    "calendar_list": Case(setup=add_meeting, check=lambda pod, r, tmp: _eq(r.data, {"meetings": [meeting()]})),
    "calendar_add": Case(
        params=lambda pod, tmp: {"title": "Review", "organizer": "Bo", "start_time": 1_800_000_000,
                                 "end_time": 1_800_003_600},
        check=lambda pod, r, tmp: _eq(
            {k: pod.state.meetings[r.data["id"]][k] for k in ("title", "organizer", "start_time", "end_time")},
            {"title": "Review", "organizer": "Bo", "start_time": 1_800_000_000, "end_time": 1_800_003_600},
        ),
    ),
    "calendar_set": Case(
        setup=add_meeting,
        params=lambda pod, tmp: {"meetings": [meeting("001"), meeting("002", title="Happy Hour")]},
        check=lambda pod, r, tmp: (
            _eq(sorted(pod.state.meetings), ["001", "002"]),
            _eq(pod.state.meetings["002"]["title"], "Happy Hour"),
            _eq(r.data["message"], "success!"),
        ),
    ),
    "calendar_clear": Case(setup=add_meeting, check=lambda pod, r, tmp: _eq(pod.state.meetings, {})),
    "calendar_meeting_get": Case(setup=add_meeting, params=lambda pod, tmp: {"id": "m1"},
                                 check=lambda pod, r, tmp: _eq(r.data, meeting())),
    "calendar_meeting_delete": Case(setup=add_meeting, params=lambda pod, tmp: {"id": "m1"},
                                    check=lambda pod, r, tmp: _eq("m1" in pod.state.meetings, False)),
    "calendar_meeting_update": Case(
        setup=add_meeting,
        params=lambda pod, tmp: {"id": "m1", "title": "Retro"},
        check=lambda pod, r, tmp: _eq(pod.state.meetings["m1"], meeting(title="Retro")),
    ),
    # -- v2 cameras --
    "camera_status_get": Case(check=lambda pod, r, tmp: _eq(r.data, {"updateStatus": "idle"})),
    "camera_get": Case(params=lambda pod, tmp: {"guid": first_camera(pod)},
                       check=lambda pod, r, tmp: _eq(r.data, pod.state.cameras[first_camera(pod)].versions)),
    "camera_firmware_update": Case(
        params=lambda pod, tmp: {"guid": first_camera(pod)},
        check=lambda pod, r, tmp: (
            _eq(pod.state.cameras[first_camera(pod)].versions["updateAvailable"], False),
            _eq(pod.state.camera_status(), "updating"),
            _eq(b'"forceUpdate": true' in last_request(pod, "/v2/control/cameras/").body, True),
        ),
    ),
    # -- v2 info, screen key, metadata --
    "info_get": Case(check=lambda pod, r, tmp: (
        _eq(r.data["connection"]["ethernet"]["ip_address"], pod.host),
        _eq(r.data["connection"]["ethernet"]["mac_address"], pod.mac),
    )),
    "screen_key_verify": Case(params=lambda pod, tmp: {"screen_key": pod.state.screen_key},
                              check=lambda pod, r, tmp: _eq(r.data, {"valid": True})),
    "metadata_get": Case(check=lambda pod, r, tmp: _eq(r.data, {"device_id": pod.state.device_id})),
    # -- v2 Active Routing --
    "activerouting_get": Case(
        setup=lambda pod: pod.state.routes.append({"sink": "127.0.0.9", "post": "normal"}),
        # the keys and shapes real pods send: tests/fidelity/test_solstice_evidence.py
        check=lambda pod, r, tmp: (_eq(r.data["connections"], 1), _eq(r.data["state"], "active")),
    ),
    "activerouting_configure": Case(
        params=lambda pod, tmp: {"presence": True, "message": "Hi", "background": "#112233"},
        check=lambda pod, r, tmp: _eq(
            {k: pod.state.routing[k] for k in ("presence", "message", "background")},
            {"presence": True, "message": "Hi", "background": "#112233"},
        ),
    ),
    "activerouting_licensing_get": Case(check=lambda pod, r, tmp: _eq(r.data["licensed"], True)),
    "activerouting_connections_get": Case(
        setup=lambda pod: pod.state.routes.append({"sink": "127.0.0.8"}),
        check=lambda pod, r, tmp: _eq(r.data, {"connections": {"127.0.0.8": {"name": "127.0.0.8",
                                                                             "ip": "127.0.0.8"}}}),
    ),
    "activerouting_connect": Case(
        params=lambda pod, tmp: {"sink": "127.0.0.9", "resolution": "1920x1080", "message": "Room B"},
        check=lambda pod, r, tmp: _eq(
            pod.state.routes,
            [{"sink": "127.0.0.9", "post": "fullscreen", "message": "Room B", "resolution": "1920x1080"}],
        ),
    ),
    "activerouting_disconnect": Case(
        setup=lambda pod: pod.state.routes.append({"sink": "127.0.0.9"}),
        check=lambda pod, r, tmp: _eq(pod.state.routes, []),
    ),
    # -- v1 --
    "v1_config_get": Case(check=_check_v1_password_query),
    "v1_config_update": Case(
        params=lambda pod, tmp: {"config": {"m_displayInformation": {"m_displayName": "Board Room"},
                                            "m_generalCuration": {"language": "de-DE"}}},
        check=_check_v1_update,
    ),
    "v1_network_config_update": Case(
        params=lambda pod, tmp: {"config": {"m_networkCuration": {"wifiMode": 2}}},
        check=lambda pod, r, tmp: (_eq(pod.state.v1_config()["m_networkCuration"]["wifiMode"], 2),
                                   _eq(pod.state.reboot_required, True)),
    ),
    "v1_splash_background_set": Case(params=lambda pod, tmp: {"image": JPEG},
                                     check=lambda pod, r, tmp: _eq(pod.state.v1_splash[None], JPEG)),
    "v1_splash_background_reset": Case(
        setup=lambda pod: pod.state.v1_splash.__setitem__(None, JPEG),
        check=lambda pod, r, tmp: _eq(pod.state.v1_splash[None], None),
    ),
    "v1_splash_slot_set": Case(params=lambda pod, tmp: {"slot": 5, "image": JPEG},
                               check=lambda pod, r, tmp: _eq(pod.state.v1_splash[5], JPEG)),
    "v1_splash_slot_reset": Case(
        setup=lambda pod: pod.state.v1_splash.__setitem__(5, JPEG),
        params=lambda pod, tmp: {"slot": 5},
        check=lambda pod, r, tmp: _eq(pod.state.v1_splash[5], None),
    ),
    "v1_stats_get": Case(
        setup=lambda pod: setattr(pod.state, "connected_users", 3),
        check=lambda pod, r, tmp: _eq(r.data["m_statistics"]["m_connectedUsers"], 3),
    ),
    "v1_control_clear": Case(setup=lambda pod: setattr(pod.state, "post_count", 2),
                             check=lambda pod, r, tmp: _eq(pod.state.post_count, 0)),
    "v1_control_boot": Case(setup=lambda pod: setattr(pod.state, "connected_users", 3),
                            check=lambda pod, r, tmp: _eq(pod.state.connected_users, 0)),
    "v1_control_restart": Case(
        setup=lambda pod: setattr(pod.state, "restart_required", True),
        check=lambda pod, r, tmp: (_eq(pod.state.restart_required, False), _eq(pod.state.restarts, 1)),
    ),
    "v1_control_reboot": Case(
        setup=lambda pod: setattr(pod.state, "reboot_required", True),
        check=lambda pod, r, tmp: (_eq(pod.state.reboot_required, False), _eq(pod.is_down, True)),
    ),
    "v1_control_resetkey": Case(
        setup=lambda pod: setattr(pod.state, "screen_key", "1234"),
        check=lambda pod, r, tmp: _eq(pod.state.screen_key != "1234" and len(pod.state.screen_key) == 4, True),
    ),
    "v1_control_suspend": Case(check=lambda pod, r, tmp: _eq(pod.state.display_suspended, True)),
    "v1_control_wake": Case(setup=lambda pod: setattr(pod.state, "display_suspended", True),
                            check=lambda pod, r, tmp: _eq(pod.state.display_suspended, False)),
    "v1_calendar_get": Case(
        setup=add_meeting,
        check=lambda pod, r, tmp: _eq(r.data, {"calendarItems": [
            {"id": "m1", "startTime": 1_800_000_000, "endTime": 1_800_000_900, "title": "Standup",
             "organizer": "Ana"}]}),
    ),
    "v1_calendar_set": Case(
        setup=add_meeting,
        params=lambda pod, tmp: {"calendar_items": [
            {"id": "a", "startTime": 1_800_000_000, "endTime": 1_800_001_000, "title": "Lab", "organizer": "Cy"}]},
        check=lambda pod, r, tmp: (_eq(sorted(pod.state.meetings), ["a"]),
                                   _eq(pod.state.meetings["a"]["title"], "Lab")),
    ),
    "v1_calendar_clear": Case(setup=add_meeting, check=lambda pod, r, tmp: _eq(pod.state.meetings, {})),
    "v1_calendar_add": Case(
        params=lambda pod, tmp: {"start_time": 1_800_000_000, "end_time": 1_800_000_600, "title": "1:1",
                                 "organizer": "Di"},
        check=lambda pod, r, tmp: _eq(
            [(m["title"], m["organizer"], m["start_time"]) for m in pod.state.meetings.values()],
            [("1:1", "Di", 1_800_000_000)],
        ),
    ),
    "v1_calendar_delete": Case(setup=add_meeting, params=lambda pod, tmp: {"id": "m1"},
                               check=lambda pod, r, tmp: _eq(pod.state.meetings, {})),
    "v1_version_get": Case(check=lambda pod, r, tmp: _eq(r.data, {"currentVersion": pod.state.firmware})),
    "v1_update_available_get": Case(check=lambda pod, r, tmp: _eq(
        r.data, {"isUpdateAvailable": True, "updateAvailableTo": pod.state.update_available_to})),
    "v1_update_start": Case(
        check=lambda pod, r, tmp: (_eq(pod.state.firmware, "5.5.4.2"), _eq(pod.state.update_available_to, None),
                                   _eq(pod.is_down, True)),
    ),
    "v1_discover": Case(check=lambda pod, r, tmp: (_eq(r.data["id"], pod.state.device_id),
                                                   _eq(r.data["ipv4"], pod.host))),
    "v1_serial_send": Case(params=lambda pod, tmp: {"data": "PWR ON\r"},
                           check=lambda pod, r, tmp: _eq(pod.state.serial_sent, ["PWR ON\r"])),
}


def _eq(actual: Any, expected: Any) -> None:
    assert actual == expected


def test_every_action_has_a_case() -> None:
    assert sorted(CASES) == sorted(SPEC.actions)


def test_every_operation_maps_onto_an_action() -> None:
    forms = {(a.method, a.path) for a in SPEC.actions.values()}
    forms |= {(alt.method, alt.path) for a in SPEC.actions.values() for alt in a.also_accepts}
    lines = [line.split() for line in (DATA / "solstice_operations.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert len(lines) == 21 + 6 + 22
    missing = [f"{m} {p}" for m, p in lines if (m, p) not in forms]
    assert missing == []


@pytest.fixture
def pod(emulators: EmulatorThread) -> EmulatedSolstice:
    dev = emulators.add(EmulatedSolstice("pod-a", "127.0.0.1", 0, password=PASSWORD))
    assert isinstance(dev, EmulatedSolstice)
    dev.faults.reboot_seconds = 0.5
    return dev


@pytest.mark.parametrize("action_id", sorted(SPEC.actions))
async def test_action(action_id: str, pod: EmulatedSolstice, tls: TLSPolicy, tmp_path: Path) -> None:
    case = CASES[action_id]
    case.setup(pod)
    params = case.params(pod, tmp_path)
    download = {"download_to": tmp_path / "download.bin"} if case.download else {}
    async with Device(SPEC, f"127.0.0.1:{pod.port}", credentials=Credentials("admin", PASSWORD), tls=tls,
                      ports={"https": pod.v1_https_port}) as dev:
        result = await dev.call(action_id, **download, **params)
    assert result.status in SPEC.action(action_id).success
    assert pod.v1_ignored == 0  # every v1 call carried the right password
    case.check(pod, result, tmp_path)


@pytest.mark.parametrize("action_id", ["v1_stats_get", "v1_calendar_add", "v1_splash_slot_set"])
async def test_v1_over_https(action_id: str, pod: EmulatedSolstice, tls: TLSPolicy, tmp_path: Path) -> None:
    """Pods with an admin password serve v1 on HTTPS too: same actions, other scheme and port."""
    case = CASES[action_id]
    case.setup(pod)
    spec = with_v1_endpoint(SPEC, "https")
    async with Device(spec, f"127.0.0.1:{pod.port}", credentials=Credentials("admin", PASSWORD), tls=tls,
                      ports={"https": pod.v1_https_port}) as dev:
        result = await dev.call(action_id, **case.params(pod, tmp_path))
    case.check(pod, result, tmp_path)
    assert pod.v1_ignored == 0
    # the certificate of the v1 HTTPS socket was pinned like the v2 one
    assert tls.pinned_fingerprint("127.0.0.1", pod.v1_https_port) is not None


# --- the CLI lists and calls Solstice actions like any other family -----------------------------


def cli(*args: str) -> tuple[int, str, str]:
    from click.testing import CliRunner

    from avctl.cli.main import cli as main

    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_lists_every_solstice_action() -> None:
    code, out, _ = cli("actions", "solstice", "--json")
    listed = {a["id"]: a for a in json.loads(out)}
    assert code == 0 and sorted(listed) == sorted(SPEC.actions)
    assert listed["v1_control_reboot"]["disruptive"] is True
    code, out, _ = cli("describe", "solstice", "splash_image_upload")
    assert code == 0 and "image" in out and "16x9" in out


@pytest.fixture
def real_port_pod(emulators: EmulatorThread, monkeypatch: pytest.MonkeyPatch) -> EmulatedSolstice:
    """A pod on its own loopback address at the real v2 port, so the CLI needs no port."""
    monkeypatch.setenv("POD_PW", PASSWORD)
    rng = random.Random()
    host = f"127.{rng.randrange(16, 250)}.{rng.randrange(1, 250)}.{rng.randrange(2, 250)}"
    dev = emulators.add(EmulatedSolstice("pod-cli", host, 5443, password=PASSWORD))
    assert isinstance(dev, EmulatedSolstice)
    return dev


def test_cli_calls_v2_actions(real_port_pod: EmulatedSolstice) -> None:
    host, pw = real_port_pod.host, ("--password-env", "POD_PW")
    code, out, err = cli("call", "-f", "solstice", host, "metadata_get", "--json", *pw)
    assert code == 0, err
    assert json.loads(out)["data"] == {"device_id": real_port_pod.state.device_id}
    code, out, err = cli("call", "-f", "solstice", host, "config_update", "--json", *pw,
                         'config={"display": {"digital_signage": {"enabled": true, "start_after": 5}}}')
    assert code == 0, err
    assert json.loads(out)["info"] == {"reboot_required": False, "restart_required": False,
                                       "device_id": real_port_pod.state.device_id}
    assert real_port_pod.state.config["display"]["digital_signage"]["start_after"] == 5
    code, _, err = cli("call", "-f", "solstice", host, "config_update", *pw, 'config={"display": {"nam": "x"}}')
    assert code == 2 and "nam" in err and "Traceback" not in err
    real_port_pod.state.meetings["m1"] = meeting()
    code, _, err = cli("call", "-f", "solstice", host, "calendar_clear", *pw)
    assert code == 1 and "needs confirmation" in err and real_port_pod.state.meetings
    code, _, err = cli("call", "-f", "solstice", host, "calendar_clear", "--yes", *pw)
    assert code == 0, err
    assert real_port_pod.state.meetings == {}
    assert PASSWORD not in out + err
    assert real_port_pod.tokens_issued == 3  # one per CLI run that reached the pod


def test_cli_calls_v1_actions_on_port_80(real_port_pod: EmulatedSolstice) -> None:
    if real_port_pod.v1_http_port != 80:
        pytest.skip("this process may not listen on port 80 (v1's real port); see the --port test below")
    real_port_pod.state.connected_users = 2
    code, out, err = cli("call", "-f", "solstice", real_port_pod.host, "v1_stats_get", "--json",
                         "--password-env", "POD_PW")
    assert code == 0, err
    assert json.loads(out)["data"]["m_statistics"]["m_connectedUsers"] == 2
    assert real_port_pod.v1_ignored == 0


def test_avctl_emulate_solstice_serves_pods(tmp_path: Path) -> None:
    """`avctl emulate solstice --count 2` in a subprocess; a client reaches both pods."""
    import asyncio
    import os
    import signal
    import subprocess
    import sys

    rng = random.Random()
    first = f"127.{rng.randrange(16, 250)}.{rng.randrange(1, 250)}.{rng.randrange(2, 200)}"
    avctl = Path(sys.executable).parent / "avctl"
    proc = subprocess.Popen(
        [str(avctl), "emulate", "solstice", "--count", "2", "--distinct-addresses", "--host", first,
         "--password", PASSWORD, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ},
    )
    try:
        assert proc.stdout is not None
        lines = []
        while not lines or lines[-1].rstrip() != "]":
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "emulator exited"
            lines.append(line)
        pods = json.loads("".join(lines))
        assert [p["address"].rsplit(":", 1)[1] for p in pods] == ["5443", "5443"]
        assert pods[0]["address"].split(":")[0] == first

        async def metadata(address: str) -> Any:
            tls = TLSPolicy.pinned(KnownHosts(tmp_path / "kh"))
            async with Device("solstice", address, credentials=Credentials("admin", PASSWORD), tls=tls) as dev:
                return (await dev.call("metadata_get")).data

        ids = {asyncio.run(metadata(p["address"]))["device_id"] for p in pods}
        assert len(ids) == 2
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)


# --- feedbacks and macros -----------------------------------------------------------------------


def test_disruptive_marks() -> None:
    disruptive = {a.id for a in SPEC.actions.values() if a.disruptive}
    assert disruptive == {
        "network_config_update", "calendar_set", "calendar_clear", "camera_firmware_update",
        "activerouting_disconnect", "v1_network_config_update", "v1_control_clear", "v1_control_boot",
        "v1_control_restart", "v1_control_reboot", "v1_control_resetkey", "v1_calendar_set",
        "v1_calendar_clear", "v1_update_start",
    }


def test_spec_lints_clean() -> None:
    from avctl.spec import read_spec

    assert read_spec(Path(SPEC.source)).issues == []


def test_cli_reaches_v1_on_any_port_and_over_https(pod: EmulatedSolstice, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--port https=N`; plain HTTP with `--scheme-map https=http` only with `--allow-cleartext`."""
    monkeypatch.setenv("POD_PW", PASSWORD)
    pod.state.connected_users = 3
    host = f"127.0.0.1:{pod.port}"
    code, out, err = cli("call", "-f", "solstice", host, "v1_stats_get", "--json", "--password-env", "POD_PW",
                         "--port", f"https={pod.v1_https_port}")
    assert code == 0, err
    assert json.loads(out)["data"]["m_statistics"]["m_connectedUsers"] == 3
    plain = ("--scheme-map", "https=http", "--port", f"http={pod.v1_http_port}")
    before = len(pod.requests)
    code, out, err = cli("call", "-f", "solstice", host, "v1_stats_get", "--password-env", "POD_PW", *plain)
    assert code == 2 and "refusing to send the admin password" in err and "--allow-cleartext" in err, err
    assert len(pod.requests) == before and PASSWORD not in err
    code, out, err = cli("call", "-f", "solstice", host, "v1_stats_get", "--json", "--password-env", "POD_PW",
                         *plain, "--allow-cleartext")
    assert code == 0, err
    assert pod.requests[-1].path == "/api/stats" and pod.v1_ignored == 0
    code, _, err = cli("call", "-f", "solstice", host, "v1_stats_get", "--port", "http=eighty", "--password-env",
                       "POD_PW")
    assert code == 2 and "--port 'http=eighty'" in err
