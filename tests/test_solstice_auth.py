"""Solstice auth and results: the v2 token flow, the v1 password, error mapping, safety guards.

Real HTTPS to the emulated pod on loopback; counts come from what the pod actually received.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from avctl import Credentials, Device
from avctl.emulator.core import EmulatorThread
from avctl.emulator.solstice import EmulatedSolstice
from avctl.emulator.solstice.state import schema_errors
from avctl.errors import AuthenticationError, DeviceError, ValidationError
from avctl.families import builtin_spec
from avctl.families.solstice import SolsticeToken, token_expiry, with_v1_endpoint
from avctl.transport.tls import TLSPolicy

from .conftest import wait_back

SPEC = builtin_spec("solstice")
SAMPLES = Path(__file__).parent / "data" / "solstice_samples"
PASSWORD = "pod-pass-1"


@pytest.fixture
def pod(emulators: EmulatorThread) -> EmulatedSolstice:
    dev = emulators.add(EmulatedSolstice("pod-auth", "127.0.0.1", 0, password=PASSWORD))
    assert isinstance(dev, EmulatedSolstice)
    return dev


def device(pod: EmulatedSolstice, tls: TLSPolicy, password: str = PASSWORD) -> Device:
    return Device(SPEC, f"127.0.0.1:{pod.port}", credentials=Credentials("admin", password), tls=tls,
                  ports={"https": pod.v1_https_port})


def token_requests(pod: EmulatedSolstice) -> list[Any]:
    return [r for r in pod.requests if r.path == "/v2/token"]


def calls(pod: EmulatedSolstice, path: str) -> list[Any]:
    return [r for r in pod.requests if r.path == path]


def token_auth(dev: Device) -> SolsticeToken:
    auth = dev.auth_for(SPEC.action("metadata_get"))
    assert isinstance(auth, SolsticeToken)
    return auth


# --- v2 token flow ------------------------------------------------------------------------------


async def test_first_call_fetches_a_token_later_calls_reuse_it(pod: EmulatedSolstice, tls: TLSPolicy) -> None:
    async with device(pod, tls) as dev:
        for _ in range(3):
            await dev.call("metadata_get")
    assert len(token_requests(pod)) == 1
    form = dict(p.split("=", 1) for p in token_requests(pod)[0].body.decode().split("&"))
    assert form == {"grant_type": "password", "username": "admin", "password": PASSWORD}
    assert token_requests(pod)[0].headers["Content-Type"] == "application/x-www-form-urlencoded"
    bearers = {r.headers["Authorization"] for r in calls(pod, "/v2/metadata")}
    assert len(bearers) == 1 and next(iter(bearers)).startswith("Bearer ")
    token = next(iter(bearers))[7:]
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    assert token_expiry(token) == pytest.approx(time.time() + pod.token_lifetime, abs=5)


async def test_token_past_its_exp_is_replaced_before_use(pod: EmulatedSolstice, tls: TLSPolicy) -> None:
    pod.token_lifetime = 6  # the client renews 5 s before exp: this token is stale after ~1 s
    async with device(pod, tls) as dev:
        await dev.call("metadata_get")
        await asyncio.sleep(1.2)
        await dev.call("metadata_get")
    assert len(token_requests(pod)) == 2
    # replaced before use: no call was refused, each went out exactly once
    assert len(calls(pod, "/v2/metadata")) == 2
    first, second = (r.headers["Authorization"] for r in calls(pod, "/v2/metadata"))
    assert first != second


async def test_a_token_refused_again_is_reported_not_looped(pod: EmulatedSolstice, tls: TLSPolicy) -> None:
    async with device(pod, tls) as dev:
        await dev.call("metadata_get")
        pod.refuse_tokens = True
        with pytest.raises(DeviceError) as err:
            await dev.call("metadata_get")
    assert err.value.status == 401 and err.value.code == "invalid_token"
    assert len(token_requests(pod)) == 2
    assert len(calls(pod, "/v2/metadata")) == 3


async def test_wrong_password_fails_once_with_the_pods_error(pod: EmulatedSolstice, tls: TLSPolicy) -> None:
    async with device(pod, tls, password="not-it") as dev:
        with pytest.raises(AuthenticationError) as err:
            await dev.call("metadata_get")
        assert err.value.reason == "invalid_grant"
        assert "invalid_grant" in str(err.value) and "HTTP 401" in str(err.value)
        assert "not-it" not in str(err.value)
        sent = len(pod.requests)
        with pytest.raises(AuthenticationError):
            await dev.call("config_get")
        assert len(pod.requests) == sent  # never retried: nothing more went out
    assert len(token_requests(pod)) == 1
    assert calls(pod, "/v2/metadata") == []


async def test_token_request_5xx_is_not_a_verdict_on_the_password(pod: EmulatedSolstice, tls: TLSPolicy) -> None:
    async with device(pod, tls) as dev:
        pod.faults.error_rate = 1.0
        with pytest.raises(DeviceError) as err:
            await dev.call("metadata_get")
        assert not isinstance(err.value, AuthenticationError) and err.value.status == 500
        pod.faults.error_rate = 0.0
        result = await dev.call("metadata_get")
    assert result.data["device_id"] == pod.state.device_id


async def test_screen_key_check_works_without_a_token_but_not_with_a_bad_one(
    pod: EmulatedSolstice, tls: TLSPolicy
) -> None:
    async with device(pod, tls) as dev:
        wrong = await dev.call("screen_key_verify", screen_key="0000" if pod.state.screen_key != "0000" else "1111")
        assert wrong.data == {"valid": False}
    base = f"https://127.0.0.1:{pod.port}/v2/info/screen_key"
    body = json.dumps({"screen_key": pod.state.screen_key})
    assert _curl(pod, "POST", base, body, content_type="application/json")[0] == 200
    assert _curl(pod, "POST", base, body, content_type="application/json",
                 headers=["Authorization: Bearer forged"])[0] == 401


# --- v1 password --------------------------------------------------------------------------------


async def test_v1_password_in_query_on_get_and_in_body_on_post(pod: EmulatedSolstice, tls: TLSPolicy) -> None:
    async with device(pod, tls) as dev:
        await dev.call("v1_control_suspend")
        await dev.call("v1_calendar_add", start_time=1, end_time=2, title="t", organizer="o")
        await dev.call("v1_splash_background_set", image=b"\xff\xd8\xff\x00")
    assert calls(pod, "/api/control/suspend")[0].query == f"password={PASSWORD}"
    add = calls(pod, "/api/calendar/add")[0]
    assert json.loads(add.body)["password"] == PASSWORD and add.query == ""
    assert calls(pod, "/api/config/splashbackground")[0].query == f"password={PASSWORD}"
    assert pod.v1_ignored == 0 and pod.state.display_suspended and len(pod.state.meetings) == 1


async def test_v1_sends_no_password_when_the_pod_has_none(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    open_pod = emulators.add(EmulatedSolstice("pod-open", "127.0.0.1", 0, password=""))
    assert isinstance(open_pod, EmulatedSolstice)
    async with device(open_pod, tls, password="") as dev:
        await dev.call("v1_control_suspend")
        await dev.call("v1_calendar_add", start_time=1, end_time=2, title="t", organizer="o")
        await dev.call("metadata_get")  # v2 with the empty password
    assert calls(open_pod, "/api/control/suspend")[0].query == ""
    assert "password" not in json.loads(calls(open_pod, "/api/calendar/add")[0].body)
    assert open_pod.state.display_suspended and len(open_pod.state.meetings) == 1


async def test_v1_wrong_password_is_ignored_by_the_pod(pod: EmulatedSolstice, tls: TLSPolicy) -> None:
    async with device(pod, tls, password="wrong") as dev:
        with pytest.raises(AuthenticationError) as err:
            await dev.call("v1_control_suspend")  # proved first: the command itself is never sent
        with pytest.raises(AuthenticationError):
            await dev.call("v1_stats_get")  # the rejected password is not sent again
    assert err.value.reason == "ignored"
    assert pod.state.display_suspended is False
    assert pod.v1_ignored == 1
    assert [r.path for r in pod.requests] == ["/api/config"]


async def test_v1_is_not_served_on_the_v2_port(pod: EmulatedSolstice, tls: TLSPolicy) -> None:
    # the unmodified spec sends v1 to port 80; point it at the v2 socket instead
    spec = with_v1_endpoint(SPEC, "https", pod.port)
    async with Device(spec, f"127.0.0.1:{pod.port}", credentials=Credentials("admin", PASSWORD), tls=tls) as dev:
        with pytest.raises(DeviceError) as err:
            await dev.call("v1_stats_get")
    assert err.value.status == 404


# --- errors and results -------------------------------------------------------------------------


async def test_errors_shape_becomes_a_device_error_with_code_and_description(
    pod: EmulatedSolstice, tls: TLSPolicy
) -> None:
    async with device(pod, tls) as dev:
        with pytest.raises(DeviceError) as missing:
            await dev.call("calendar_meeting_get", id="nope")
        with pytest.raises(DeviceError) as camera:
            await dev.call("camera_get", guid="00000000-0000-4000-8000-000000000000")
    assert (missing.value.status, missing.value.code, missing.value.meaning) == (
        500, "internal", "Failed to find meeting")
    assert (camera.value.status, camera.value.code, camera.value.meaning) == (
        404, "not_found", "unknown camera specified!")
    assert "unknown camera specified!" in str(camera.value)


async def test_third_party_calendar_accepts_only_set_all(pod: EmulatedSolstice, tls: TLSPolicy) -> None:
    async with device(pod, tls) as dev:
        await dev.call("config_update", config={"display": {"calendar": {"type": "3rd_party_only"}}})
        await dev.call("calendar_set", meetings=[
            {"id": "001", "title": "Review", "organizer": "Mersive", "start_time": 10, "end_time": 20}])
        refused = []
        for action, params in (
            ("calendar_add", {"title": "x", "start_time": 1, "end_time": 2}),
            ("calendar_meeting_update", {"id": "001", "title": "changed"}),
            ("calendar_meeting_delete", {"id": "001"}),
            ("v1_calendar_add", {"title": "x", "organizer": "o", "start_time": 1, "end_time": 2}),
        ):
            with pytest.raises(DeviceError) as err:
                await dev.call(action, **params)
            refused.append(err.value)
        listed = await dev.call("calendar_list")
    assert [m["title"] for m in listed.data["meetings"]] == ["Review"]
    assert all(e.status == 400 and e.code == "invalid_request" for e in refused)
    assert all("3rd Party Only" in (e.meaning or "") for e in refused)
    assert [e.hint for e in refused] == [
        "a '3rd Party Only' calendar accepts only the set-all write: use calendar_set"] * 3 + [
        "a '3rd Party Only' calendar accepts only the set-all write: use v1_calendar_set"]


async def test_reboot_required_stays_reported_until_the_reboot(pod: EmulatedSolstice, tls: TLSPolicy) -> None:
    pod.faults.reboot_seconds = 0.3
    async with device(pod, tls) as dev:
        network = await dev.call("network_config_update",
                                 config={"connection": {"ethernet": {"ip_configuration": {"dns1": "127.0.0.53"}}}})
        signage = await dev.call("config_update", config={"display": {"digital_signage": {"enabled": True}}})
        locale = await dev.call("config_update", config={"locale": {"language": "fr-FR"}})
        await dev.call("v1_control_reboot")
        await wait_back(pod)
        after = await dev.call("calendar_clear")
    assert network.info["reboot_required"] is True
    assert signage.info["reboot_required"] is True  # still pending: the pod has not rebooted
    assert locale.info["restart_required"] is True
    assert after.info == {"reboot_required": False, "restart_required": False}


# --- validation before sending ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "config", "fragment"),
    [
        ("config_update", {"display": {"digital_signage": {"enabled": True, "colour": "red"}}}, "colour"),
        ("config_update", {"sharing": {"airplay": {"enabled": "potato"}}}, "potato"),
        ("config_update", {"nonsense": {}}, "nonsense"),
        ("config_update", {"connection": {"host_name": "x"}}, "network_config_update"),
        ("network_config_update", {"connection": {"ethernet": {"ip_configuration": {"ip_type": "bootp"}}}}, "bootp"),
        ("v1_config_update", {"m_networkCuration": {"wifiMode": 1}}, "v1_network_config_update"),
        ("v1_config_update", {"m_unknown": {}}, "m_unknown"),
    ],
)
async def test_invalid_config_is_refused_before_anything_is_sent(
    pod: EmulatedSolstice, tls: TLSPolicy, action: str, config: dict[str, Any], fragment: str
) -> None:
    async with device(pod, tls) as dev:
        with pytest.raises(ValidationError) as err:
            await dev.call(action, config=config)
    assert fragment in str(err.value)
    assert pod.requests == []


def test_seed_config_examples_fit_the_schema(emulators: EmulatorThread) -> None:
    """GET and PATCH examples of seed 004 (arrays, both secret forms) and the emulator's own tree."""
    for name in ("config_get_example.json", "config_patch_example.json"):
        assert schema_errors(json.loads((SAMPLES / name).read_text())) == []
    pod = emulators.add(EmulatedSolstice("pod-x", "127.0.0.1", 0))
    assert isinstance(pod, EmulatedSolstice)
    assert schema_errors(pod.state.config) == []
    assert schema_errors({"display": {"splash": {"images": {"6": {}}}}}) != []  # slots are 0..5


async def test_pod_merges_seed_patch_example_and_hides_secrets(pod: EmulatedSolstice, tls: TLSPolicy) -> None:
    patch = json.loads((SAMPLES / "config_patch_example.json").read_text())
    patch["security"]["admin_password"] = {"secret": PASSWORD}  # keep the pod's password usable
    async with device(pod, tls) as dev:
        result = await dev.call("network_config_update", config=patch)
        kepler = await dev.call("config_section_get", key="kepler/secret_key")
        splash = await dev.call("config_section_get", key="display/splash/images/1")
    assert result.info["reboot_required"] is True
    assert set(kepler.data) == {"secret_salt", "secret_hash"} and "string" not in json.dumps(kepler.data)
    assert splash.data["enabled"] is True and splash.data["16x9"] == {"hash": "5GSUIS0EGIQLIG8H"}
    assert pod.state.config["connection"]["ethernet"]["vlans"]["1"]["ip_configuration"]["ip_type"] == "dhcp"


def _curl(pod: EmulatedSolstice, method: str, url: str, body: str | None = None, *,
          content_type: str | None = None, headers: list[str] | None = None) -> tuple[int, str]:
    """Real curl, trusting the pod's own certificate (no -k)."""
    with tempfile.TemporaryDirectory() as tmp:
        cert = Path(tmp) / "pod.pem"
        cert.write_bytes(pod.cert_pem)
        cmd = ["curl", "-sS", "--max-time", "10", "--cacert", str(cert), "-X", method,
               "-w", "\n%{http_code}", url]
        if content_type:
            cmd += ["-H", f"Content-Type: {content_type}"]
        for h in headers or []:
            cmd += ["-H", h]
        if body is not None:
            cmd += ["--data-binary", body]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=20).stdout
    text, _, status = out.rpartition("\n")
    return int(status), text


def test_pod_rejects_unknown_keys_and_bad_json_from_curl(pod: EmulatedSolstice) -> None:
    """What the emulator does when a client skips validation (seed 004's `"enabled": potato`)."""
    base = f"https://127.0.0.1:{pod.port}/v2"
    status, text = _curl(pod, "POST", f"{base}/token", f"grant_type=password&username=admin&password={PASSWORD}",
                         content_type="application/x-www-form-urlencoded")
    assert status == 200
    bearer = [f"Authorization: Bearer {json.loads(text)['access_token']}"]
    status, text = _curl(pod, "PATCH", f"{base}/config", '{"sharing": {"airplay": {"enabled": potato}}}',
                         content_type="application/json", headers=bearer)
    assert status == 400 and json.loads(text)["errors"][0]["error"] == "invalid_request"
    status, text = _curl(pod, "PATCH", f"{base}/config", '{"sharing": {"teleport": true}}',
                         content_type="application/json", headers=bearer)
    assert status == 400 and "teleport" in json.loads(text)["errors"][0]["description"]
    status, _ = _curl(pod, "GET", f"{base}/config", headers=["Authorization: Bearer nope"])
    assert status == 401
    assert pod.state.config["sharing"]["airplay"]["enabled"] is True


def test_v1_with_curl_multipart_password_field_and_discovery_alias(pod: EmulatedSolstice, tmp_path: Path) -> None:
    """v1 as scripts send it: the password as a multipart field; `/api/discovery` as some docs spell it."""
    image = tmp_path / "splash.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0 splash")
    base = f"http://127.0.0.1:{pod.v1_http_port}/api"

    def curl(*args: str) -> tuple[int, str]:
        out = subprocess.run(["curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", *args],
                             capture_output=True, text=True, check=True, timeout=20).stdout
        text, _, status = out.rpartition("\n")
        return int(status), text

    assert curl("-F", "file=@" + str(image), "-F", "password=wrong", f"{base}/config/splashbackground/2") == (200, "")
    assert pod.state.v1_splash == {} and pod.v1_ignored == 1
    assert curl("-F", "file=@" + str(image), "-F", f"password={PASSWORD}",
                f"{base}/config/splashbackground/2")[0] == 200
    assert pod.state.v1_splash == {2: image.read_bytes()}
    assert curl("-F", "file=reset default", "-F", f"password={PASSWORD}",
                f"{base}/config/splashbackground/2")[0] == 200
    assert pod.state.v1_splash == {2: None}
    status, text = curl(f"{base}/discovery?password={PASSWORD}")
    assert status == 200 and json.loads(text)["id"] == pod.state.device_id
    status, text = curl(f"{base}/stats")  # no password: ignored, nothing in the answer
    assert (status, text) == (200, "") and pod.v1_ignored == 2


def test_v1_socket_falls_back_to_a_free_port_when_the_real_one_is_taken() -> None:
    """Without privileges (or with 80 busy) a pod at 5443 still serves v1, on another port."""
    import socket

    from avctl.emulator.solstice import _v1_port

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        assert _v1_port("127.0.0.1", None, taken) == 0
    assert _v1_port("127.0.0.1", "8080", 80) == 8080  # `avctl emulate --set v1_http_port=8080`


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _pyjwt_claims(token: str) -> dict[str, Any] | None:
    try:
        claims = jwt.decode(token, options={"verify_signature": False, "verify_exp": False})
    except (jwt.PyJWTError, RecursionError):
        return None
    return claims if isinstance(claims, dict) else None


HEADER = _b64(b'{"alg":"HS256","typ":"JWT"}')
EXP17 = _b64(b'{"exp": 17}')
DEEP = _b64(b'{"a":' * 50_000 + b"1" + b"}" * 50_000)
DEEP_SHORT = _b64(b'{"a":' + b"[" * 1100 + b"]" * 1100 + b"}")


@pytest.mark.parametrize("token", [
    jwt.encode({"exp": 1893456000, "sub": "admin"}, "k" * 32, algorithm="HS256"),
    jwt.encode({"exp": 1893456000.5, "name": "pod \u00e9\u4e2d"}, "k" * 64, algorithm="HS512"),
    jwt.encode({}, "k" * 32, algorithm="HS256"),
    f"{HEADER}.{EXP17}.",                                   # no signature
    f"{HEADER}.{_b64(b'[1, 2]')}.sig",                      # claims not an object
    f"{_b64(b'[]')}.{EXP17}.sig",                           # header not an object
    f"{HEADER}.{_b64(b'{1: 17')}.sig",                      # not JSON
    f"{HEADER}.{_b64(bytes([0xff, 0xfe, 0x7b]))}.sig",      # not UTF-8
    f"{HEADER}.%%%%.sig",                                   # not base64
    f"{HEADER}.{EXP17}",                                    # two segments
    f"{HEADER}.{EXP17}.a.b",                                # five
    "", "...", "no-dots-at-all",
    f"{HEADER}.{DEEP}.sig",                                 # nested past the recursion limit (and too long)
    f"{HEADER}.{DEEP_SHORT}.sig",                           # nested past the limit, short enough
])
def test_unverified_claims_agree_with_pyjwt(token: str) -> None:
    """The family reads a token's claims without PyJWT (which would load cryptography into the
    poller); on valid and malformed tokens it reads what PyJWT's unverified decode reads."""
    from avctl.families.solstice import MAX_TOKEN_CHARS, unverified_claims

    expected = _pyjwt_claims(token) if len(token) <= MAX_TOKEN_CHARS else None
    assert unverified_claims(token) == expected
    if expected is not None and isinstance(expected.get("exp"), int):
        assert token_expiry(token) == float(expected["exp"])
