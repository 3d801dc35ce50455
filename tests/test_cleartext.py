"""No secret over plain HTTP without the user's opt-in; Solstice v1 over HTTPS with its password proved.

Every test runs the client against the emulators over real sockets on loopback and reads the
emulator's request log to show what reached the device (and that a refused secret never did).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from avctl import Credentials, Device
from avctl.cli.main import cli as main
from avctl.emulator.core import EmulatedDevice, EmulatorThread
from avctl.emulator.polyuc import EmulatedPolyUC
from avctl.emulator.solstice import EmulatedSolstice
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.errors import AuthenticationError, CleartextRefused, UsageError
from avctl.families import builtin_spec
from avctl.fleet.inventory import InventoryError, parse_inventory
from avctl.transport.tls import TLSPolicy
from tests.test_solstice_actions import CASES

SOLSTICE = builtin_spec("solstice")
POLYUC = builtin_spec("polyuc")
PW = "s3cret-pw-77"
V1_COMMANDS = sorted(a.id for a in SOLSTICE.actions.values() if a.auth == "solstice_v1_password"
                     and a.kind == "action")


def wire_text(dev: EmulatedDevice) -> str:
    """Everything the device received (targets, headers, bodies), to look for a secret."""
    return "\n".join(f"{r.method} {r.path}?{r.query} {r.headers} {r.body!r}" for r in dev.requests)


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def pod(emulators: EmulatorThread) -> EmulatedSolstice:
    dev = emulators.add(EmulatedSolstice("pod-ct", "127.0.0.1", 0, password=PW))
    assert isinstance(dev, EmulatedSolstice)
    dev.faults.reboot_seconds = 0.5
    return dev


def on_http(pod: EmulatedSolstice, password: str = PW, **kwargs: Any) -> Device:
    """Solstice v1 mapped onto the pod's plain-HTTP socket."""
    return Device(SOLSTICE, f"127.0.0.1:{pod.port}", credentials=Credentials("admin", password),
                  ports={"http": pod.v1_http_port}, schemes={"https": "http"}, **kwargs)


# --- 1. one rule for every family -------------------------------------------------------------------


async def test_videoos_login_on_http_is_refused_before_anything_is_sent(
    emulators: EmulatorThread, tls: TLSPolicy
) -> None:
    codec = emulators.add(EmulatedVideoOS("codec", scheme="http", password=PW))
    async with Device("videoos", f"127.0.0.1:{codec.port}", scheme="http", name="room-1",
                      credentials=Credentials("admin", PW)) as dev:
        with pytest.raises(CleartextRefused) as err:
            await dev.call("system_get")
    assert len(codec.requests) == 0  # nothing at all reached the device
    assert isinstance(err.value, UsageError) and not err.value.transient
    message = str(err.value)
    assert "room-1" in message and "the login password" in message and PW not in message
    for how in ("--allow-cleartext", "allow_cleartext: true", "Device(..., allow_cleartext=True)"):
        assert how in (err.value.hint or "")
    async with Device("videoos", f"127.0.0.1:{codec.port}", scheme="http", allow_cleartext=True,
                      credentials=Credentials("admin", PW)) as dev:
        assert (await dev.call("system_get")).status == 200  # opted in by name: login, cookie, call


async def test_secret_action_parameter_is_refused_on_http_even_with_digest(
    emulators: EmulatorThread, tls: TLSPolicy
) -> None:
    phone = emulators.add(EmulatedPolyUC("vvx-ct", scheme="http", password=PW, auth_modes=("digest",)))
    async with Device(POLYUC, f"127.0.0.1:{phone.port}", scheme="http", credentials=Credentials(None, PW)) as dev:
        with pytest.raises(CleartextRefused, match="secret parameter 'Password'"):
            await dev.call("skype_sign_in", Domain="corp", Address="a@corp", User="a", Password="sfb-pass-9")
    assert len(phone.requests) == 0 and "sfb-pass-9" not in wire_text(phone)


async def test_solstice_v1_password_is_refused_on_http_without_opt_in(pod: EmulatedSolstice) -> None:
    async with on_http(pod) as dev:
        with pytest.raises(CleartextRefused, match="the admin password"):
            await dev.call("v1_stats_get")
        with pytest.raises(CleartextRefused):
            await dev.call("v1_control_suspend")
    assert len(pod.requests) == 0 and pod.state.display_suspended is False
    async with on_http(pod, allow_cleartext=True) as dev:
        await dev.call("v1_control_suspend")
    assert pod.state.display_suspended is True and pod.v1_ignored == 0


async def test_a_pod_without_admin_password_takes_v1_on_http_without_opt_in(emulators: EmulatorThread) -> None:
    open_pod = emulators.add(EmulatedSolstice("pod-open", "127.0.0.1", 0, password=""))
    assert isinstance(open_pod, EmulatedSolstice)
    async with on_http(open_pod, password="") as dev:  # nothing secret is sent
        await dev.call("v1_control_suspend")
    assert open_pod.state.display_suspended is True
    assert all("password" not in r.query for r in open_pod.requests)


def test_cli_call_refuses_and_says_how_to_opt_in(pod: EmulatedSolstice) -> None:
    args = ("call", "-f", "solstice", f"127.0.0.1:{pod.port}", "v1_control_wake", "--password-env", "PODPW",
            "--scheme-map", "https=http", "--port", f"http={pod.v1_http_port}")
    code, out, err = cli(*args, env={"PODPW": PW})
    assert code == 2 and "avctl: error:" in err and "refusing to send the admin password" in err
    assert "avctl: hint:" in err and "--allow-cleartext" in err and "Traceback" not in err
    assert len(pod.requests) == 0 and PW not in out + err
    code, _, err = cli(*args, "--allow-cleartext", env={"PODPW": PW})
    assert code == 0, err
    code, _, err = cli("call", "-f", "solstice", "127.0.0.1", "v1_stats_get", "--scheme-map", "http=ftp",
                       env={"PODPW": PW})
    assert code == 2 and "'ftp' is not a scheme" in err


def test_cli_port_http_alone_is_reported_unused(pod: EmulatedSolstice) -> None:
    """The old way (`--port http=N` moved v1) now moves nothing: said so, with the new way."""
    code, _, err = cli("call", "-f", "solstice", f"127.0.0.1:{pod.port}", "v1_stats_get", "--password-env",
                       "PODPW", "--port", f"http={pod.v1_http_port}", "--port", f"https={pod.v1_https_port}",
                       env={"PODPW": PW})
    assert code == 0, err
    assert f"avctl: warning: --port http={pod.v1_http_port} is not used" in err and "--port https=N" in err
    assert [r.path for r in pod.requests] == ["/api/stats"]


# --- 2. Poly UC on plain HTTP: the phone's challenge first, then remembered -------------------------


def auths(phone: EmulatedPolyUC) -> list[str]:
    return [r.headers.get("Authorization", "").split(" ")[0] for r in phone.requests]


async def test_polyuc_http_digest_only_asks_once_then_answers_the_remembered_challenge(
    emulators: EmulatorThread,
) -> None:
    phone = emulators.add(EmulatedPolyUC("vvx-d", scheme="http", password=PW, auth_modes=("digest",)))
    async with Device(POLYUC, f"127.0.0.1:{phone.port}", scheme="http", credentials=Credentials(None, PW)) as dev:
        await dev.call("device_info")
        await dev.call("device_info")
        await dev.call("callctrl_mute", state="1")
    # no credentials before the phone asked; then Digest only, and no second 401 round trip
    assert auths(phone) == ["", "Digest", "Digest", "Digest"]
    assert phone.auth_failures == 0 and PW not in wire_text(phone)


async def test_polyuc_http_prefers_digest_when_both_are_offered(emulators: EmulatorThread) -> None:
    phone = emulators.add(EmulatedPolyUC("vvx-b2", scheme="http", password=PW))
    async with Device(POLYUC, f"127.0.0.1:{phone.port}", scheme="http", credentials=Credentials(None, PW)) as dev:
        await dev.call("device_info")
    assert auths(phone) == ["", "Digest"] and PW not in wire_text(phone)


async def test_polyuc_http_basic_only_needs_opt_in(emulators: EmulatorThread) -> None:
    phone = emulators.add(EmulatedPolyUC("vvx-b", scheme="http", password=PW, auth_modes=("basic",)))
    async with Device(POLYUC, f"127.0.0.1:{phone.port}", scheme="http", credentials=Credentials(None, PW)) as dev:
        with pytest.raises(CleartextRefused, match="HTTP Basic"):
            await dev.call("device_info")
        with pytest.raises(CleartextRefused):
            await dev.call("device_info")  # the challenge is remembered: not even the bare request again
    assert auths(phone) == [""] and PW not in wire_text(phone)
    seen = len(phone.requests)
    async with Device(POLYUC, f"127.0.0.1:{phone.port}", scheme="http", credentials=Credentials(None, PW),
                      allow_cleartext=True) as dev:
        await dev.call("device_info")
        await dev.call("device_info")
    assert auths(phone)[seen:] == ["", "Basic", "Basic"]


async def test_polyuc_https_keeps_basic_up_front(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    phone = emulators.add(EmulatedPolyUC("vvx-s", password=PW, auth_modes=("basic",)))
    async with Device(POLYUC, f"127.0.0.1:{phone.port}", credentials=Credentials(None, PW), tls=tls) as dev:
        await dev.call("device_info")
    assert auths(phone) == ["Basic"]


# --- 3. Solstice v1 over HTTPS by default -------------------------------------------------------------


async def test_solstice_v1_goes_over_https_when_port_80_is_closed(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    closed = emulators.add(EmulatedSolstice("pod-443", "127.0.0.1", 0, password=PW, v1_http_port="off"))
    assert isinstance(closed, EmulatedSolstice) and closed.v1_http_port == 0 and closed.info()["v1_http"] == "off"
    async with Device(SOLSTICE, f"127.0.0.1:{closed.port}", credentials=Credentials("admin", PW), tls=tls,
                      ports={"https": closed.v1_https_port}) as dev:
        config = (await dev.call("v1_config_get")).data
        await dev.call("v1_control_suspend")
    assert config["m_displayInformation"]["m_displayName"] and closed.state.display_suspended is True
    assert tls.pinned_fingerprint("127.0.0.1", closed.v1_https_port) is not None  # it went over TLS


def test_spec_sends_every_v1_action_over_https() -> None:
    v1 = [a for a in SOLSTICE.actions.values() if a.auth == "solstice_v1_password"]
    assert len(v1) == 25 and {(a.scheme, a.port) for a in v1} == {("https", 443)}


# --- 5. a wrong v1 password ends failed [auth], not ok -------------------------------------------------


def snapshot(pod: EmulatedSolstice) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in vars(pod.state).items() if k != "rng"} | {"password": pod.password}


def test_nineteen_v1_commands() -> None:
    assert len(V1_COMMANDS) == 19


@pytest.mark.parametrize("action_id", V1_COMMANDS)
async def test_wrong_v1_password_fails_every_command_and_changes_nothing(
    action_id: str, pod: EmulatedSolstice, tls: TLSPolicy, tmp_path: Path
) -> None:
    case = CASES[action_id]
    case.setup(pod)
    params = case.params(pod, tmp_path)
    before = snapshot(pod)
    async with Device(SOLSTICE, f"127.0.0.1:{pod.port}", credentials=Credentials("admin", "wrong-pw"), tls=tls,
                      ports={"https": pod.v1_https_port}) as dev:
        with pytest.raises(AuthenticationError) as err:
            await dev.call(action_id, **params)
        with pytest.raises(AuthenticationError):
            await dev.call(action_id, **params)  # remembered: the rejected password is not sent again
    assert err.value.reason == "ignored" and "admin password" in str(err.value)
    assert [r.path for r in pod.requests] == ["/api/config"]  # only the check; the command never went
    assert snapshot(pod) == before


async def test_right_password_is_checked_once_per_device(pod: EmulatedSolstice, tls: TLSPolicy) -> None:
    async with Device(SOLSTICE, f"127.0.0.1:{pod.port}", credentials=Credentials("admin", PW), tls=tls,
                      ports={"https": pod.v1_https_port}) as dev:
        await dev.call("v1_control_suspend")
        await dev.call("v1_control_wake")
    assert [r.path for r in pod.requests] == ["/api/config", "/api/control/suspend", "/api/control/wake"]


async def test_a_v1_read_proves_the_password_too(pod: EmulatedSolstice, tls: TLSPolicy) -> None:
    async with Device(SOLSTICE, f"127.0.0.1:{pod.port}", credentials=Credentials("admin", PW), tls=tls,
                      ports={"https": pod.v1_https_port}) as dev:
        await dev.call("v1_stats_get")
        await dev.call("v1_control_suspend")
    assert [r.path for r in pod.requests] == ["/api/stats", "/api/control/suspend"]


# --- 4. fleet commands: per-scheme mapping, inventory keys, opt-in ------------------------------------


def inventory(tmp_path: Path, pod: EmulatedSolstice, extra: str = "") -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "defaults: {family: solstice, password: 'env:PODPW'}\n"
        f"devices:\n  pod-1: {{address: '127.0.0.1:{pod.port}'{extra}}}\n"
    )
    return path


def fleet(*args: str) -> tuple[int, Any, str]:
    code, out, err = cli(*args, "--json", env={"PODPW": PW})
    return code, json.loads(out) if out.strip().startswith("{") else out, err


def outcome(report: Any) -> dict[str, Any]:
    assert len(report["devices"]) == 1, report
    return dict(report["devices"][0])


def test_fleet_status_on_a_pod_with_port_80_closed(emulators: EmulatorThread, tmp_path: Path) -> None:
    closed = emulators.add(EmulatedSolstice("pod-f", "127.0.0.1", 0, password=PW, v1_http_port="off"))
    assert isinstance(closed, EmulatedSolstice)
    closed.state.connected_users = 2
    inv = inventory(tmp_path, closed)
    code, report, err = fleet("fleet", "status", "-i", str(inv), "--port", f"https={closed.v1_https_port}")
    assert code == 0, err
    row = outcome(report)
    assert row["status"] == "ok" and row["data"]["reachable"] is True and row["data"]["connected_users"] == 2
    assert all(r.path.startswith("/v2/") or "password" in r.query for r in closed.requests)


def test_fleet_refuses_cleartext_unless_the_inventory_or_the_run_opts_in(
    pod: EmulatedSolstice, tmp_path: Path
) -> None:
    plain = ("--scheme-map", "https=http", "--port", f"http={pod.v1_http_port}")
    code, report, err = fleet("fleet", "status", "-i", str(inventory(tmp_path, pod)), *plain)
    row = outcome(report)
    assert code == 1 and (row["status"], row["reason"]) == ("failed", "cleartext"), err
    assert "--allow-cleartext" in row["message"]
    assert not [r for r in pod.requests if r.path.startswith("/api/")] and PW not in wire_text(pod)
    code, report, err = fleet("fleet", "status", "-i", str(inventory(tmp_path, pod)), *plain, "--allow-cleartext")
    assert code == 0 and outcome(report)["status"] == "ok", err
    opted = inventory(tmp_path, pod, ", allow_cleartext: true, schemes: {https: http}, "
                                     f"ports: {{http: {pod.v1_http_port}}}")
    code, report, err = fleet("fleet", "status", "-i", str(opted))
    assert code == 0 and outcome(report)["status"] == "ok", err


def test_fleet_wrong_v1_password_ends_failed_auth_and_the_audit_says_failed(
    pod: EmulatedSolstice, tmp_path: Path
) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("defaults: {family: solstice, password: 'plain:wrong-pw'}\n"
                   f"devices:\n  pod-1: {{address: '127.0.0.1:{pod.port}', ports: {{https: {pod.v1_https_port}}}}}\n")
    code, report, err = fleet("fleet", "run", "v1_control_suspend", "-i", str(inv), "--yes")
    row = outcome(report)
    assert code == 1 and (row["status"], row["reason"]) == ("failed", "auth"), err
    assert pod.state.display_suspended is False and pod.v1_ignored == 1
    code, out, err = cli("audit", "--json")
    rows = json.loads(out)
    assert code == 0 and [(r["action"], r["outcome"]) for r in rows] == [("v1_control_suspend", "failed")]


# --- inventory keys -------------------------------------------------------------------------------------


def test_inventory_schemes_and_allow_cleartext_inherit(tmp_path: Path) -> None:
    inv = parse_inventory(
        "defaults: {family: solstice, schemes: {https: http}}\n"
        "sites: {lab: {allow_cleartext: true}}\n"
        "groups: {g: {schemes: {http: https}}}\n"
        "devices:\n"
        "  a: {address: 10.0.0.1, site: lab}\n"
        "  b: {address: 10.0.0.2, groups: [g]}\n"
        "  c: {address: 10.0.0.3, site: lab, allow_cleartext: false}\n",
    )
    a, b, c = inv.get("a"), inv.get("b"), inv.get("c")
    assert (dict(a.schemes), a.allow_cleartext) == ({"https": "http"}, True)
    assert (dict(b.schemes), b.allow_cleartext) == ({"https": "http", "http": "https"}, False)
    assert c.allow_cleartext is False and a.summary()["allow_cleartext"] is True
    with pytest.raises(InventoryError, match=r":2: devices.a.schemes.https: 'ftp' is not http or https"):
        parse_inventory("devices:\n  a: {family: solstice, address: 10.0.0.1, schemes: {https: ftp}}\n")
    with pytest.raises(InventoryError, match=r"allow_cleartext: must be true or false"):
        parse_inventory("devices:\n  a: {family: solstice, address: 10.0.0.1, allow_cleartext: 'yes'}\n")


def test_run_wide_mapping_survives_a_resume() -> None:
    """`jobs resume` rebuilds the run's options from the job record: the mapping and opt-in stay."""
    from avctl.fleet.jobs import options_from
    from avctl.fleet.runner import RunOptions

    options = RunOptions(ports={"https": 8443}, schemes={"https": "http"}, allow_cleartext=True)
    stored = json.loads(json.dumps(options.as_dict()))
    assert options_from(stored) == options
