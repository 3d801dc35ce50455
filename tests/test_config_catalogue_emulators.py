"""The emulators have exactly the keys of their family's configuration catalogue (the spec's
Variables), nothing invented on either side; read over real HTTPS with the client, secrets read
back empty, and the Solstice pod's restart/reboot answers follow the spec."""

from __future__ import annotations

from typing import Any

import pytest

from avctl import Credentials, Device, TLSPolicy
from avctl.emulator.core import EmulatorThread
from avctl.emulator.polyuc import EmulatedPolyUC
from avctl.emulator.solstice import EmulatedSolstice
from avctl.emulator.solstice.state import leaf_paths
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.families import ConfigRead, builtin_spec, get_family
from avctl.families.solstice import VOLATILE
from avctl.spec.model import Spec
from avctl.spec.variables import check_value, known_keys, lookup

PASSWORD = "emu-pw-9"
VIDEOOS = builtin_spec("videoos")
POLYUC = builtin_spec("polyuc")
SOLSTICE = builtin_spec("solstice")


def _secret_keys(spec: Spec) -> set[str]:
    return {k for k in known_keys(spec) if (var := lookup(spec, k)) is not None and var.secret}


def _stored_keys(config: dict[str, Any]) -> set[str]:
    """A pod's config as keys: a secret (salt + hash) is one key, as in the catalogue."""
    return {p.removesuffix(".secret_salt").removesuffix(".secret_hash") for p in leaf_paths(config)}


# --- VideoOS --------------------------------------------------------------------------------------


async def test_videoos_variables_are_the_catalogue(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    emu = emulators.add(EmulatedVideoOS("room-cat", password=PASSWORD))
    assert isinstance(emu, EmulatedVideoOS)
    keys = known_keys(VIDEOOS)
    assert sorted(emu.state.config) == keys
    emu.state.config["device.local.adminpassword"]["value"] = "on-the-device"
    async with Device(VIDEOOS, f"127.0.0.1:{emu.port}", credentials=Credentials("admin", PASSWORD),
                      tls=tls) as dev:
        answer = (await dev.call("config_get", names=keys)).data["vars"]
    assert [(v["name"], v["result"]) for v in answer] == [(k, "NOERROR") for k in keys]
    by_name = {v["name"]: v for v in answer}
    assert {k for k, v in by_name.items() if v["isSecure"]} == _secret_keys(VIDEOOS) == {
        "device.local.adminpassword"}
    assert by_name["device.local.adminpassword"]["value"] == ""
    assert {k for k, v in by_name.items() if not v["isEditable"]} == {
        k for k in keys if (var := lookup(VIDEOOS, k)) is not None and not var.settable} == {
        "cast.miracast.enabled", "cast.airplay.enabled"}
    assert by_name["device.local.devicename"]["value"] == "room-cat"
    # every editable default is a value the catalogue accepts, in its wire form
    for key, var in by_name.items():
        if var["isEditable"] and not var["isSecure"]:
            assert check_value(VIDEOOS, key, var["value"]) == var["value"], key


async def test_videoos_writes_what_the_catalogue_sends(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    emu = emulators.add(EmulatedVideoOS("room-w", password=PASSWORD))
    assert isinstance(emu, EmulatedVideoOS)
    wifi = "system.network.wireless.wifi.enabled"
    sent = [{"name": wifi, "value": check_value(VIDEOOS, wifi, False)},
            {"name": "device.local.adminpassword", "value": check_value(VIDEOOS, "device.local.adminpassword", "pw2")}]
    async with Device(VIDEOOS, f"127.0.0.1:{emu.port}", credentials=Credentials("admin", PASSWORD),
                      tls=tls) as dev:
        written = (await dev.call("config_set", vars=sent)).data["vars"]
        read = (await dev.call("config_get", names=[wifi, "device.local.adminpassword"])).data["vars"]
    assert [w["result"] for w in written] == ["NOERROR", "NOERROR"]
    assert [r["value"] for r in read] == ["False", ""]
    assert emu.state.config["device.local.adminpassword"]["value"] == "pw2"


# --- Poly UC --------------------------------------------------------------------------------------


@pytest.fixture
def phone(emulators: EmulatorThread) -> EmulatedPolyUC:
    dev = emulators.add(EmulatedPolyUC("vvx-cat", password=PASSWORD))
    assert isinstance(dev, EmulatedPolyUC)
    return dev


async def test_polyuc_parameters_are_the_catalogue(phone: EmulatedPolyUC, tls: TLSPolicy) -> None:
    keys = known_keys(POLYUC)
    assert sorted(phone.phone.config) == keys
    for key, param in phone.phone.config.items():
        var = lookup(POLYUC, key)
        assert var is not None and param.variable == var
        assert param.default == check_value(POLYUC, key, var.default), key  # the spec's default, on the wire
    async with Device(POLYUC, f"127.0.0.1:{phone.port}", credentials=Credentials(None, PASSWORD), tls=tls) as dev:
        data = {}
        for start in range(0, len(keys), 20):  # a phone reads at most 20 parameters per request
            data.update((await dev.call("config_get", names=keys[start:start + 20])).data)
    assert sorted(data) == keys
    assert {k: v["Value"] for k, v in data.items()} == {k: phone.phone.config[k].shown for k in keys}
    assert phone.phone.config["tone.dtmf.level"].current == "-15"


async def test_polyuc_password_parameters_are_kept_and_read_back_empty(phone: EmulatedPolyUC,
                                                                       tls: TLSPolicy) -> None:
    assert _secret_keys(POLYUC) == {"reg.1.auth.password", "device.prov.password"}
    values = {"reg.1.auth.password": check_value(POLYUC, "reg.1.auth.password", "sip-secret"),
              "device.set": check_value(POLYUC, "device.set", True),
              "device.prov.password.set": check_value(POLYUC, "device.prov.password.set", True),
              "device.prov.password": check_value(POLYUC, "device.prov.password", "prov-secret")}
    async with Device(POLYUC, f"127.0.0.1:{phone.port}", credentials=Credentials(None, PASSWORD), tls=tls) as dev:
        await dev.call("config_set", values=values)
        data = (await dev.call("config_get", names=sorted(values))).data
    assert phone.phone.config["reg.1.auth.password"].current == "sip-secret"
    assert phone.phone.config["device.prov.password"].current == "prov-secret"
    assert data["reg.1.auth.password"] == {"Value": "", "Source": "web"}
    assert data["device.prov.password"] == {"Value": "", "Source": "web"}


async def test_polyuc_refuses_what_the_catalogue_refuses(phone: EmulatedPolyUC, tls: TLSPolicy) -> None:
    """The phone's own check is the catalogue's: an out-of-range level is answered 4000."""
    async with Device(POLYUC, f"127.0.0.1:{phone.port}", credentials=Credentials(None, PASSWORD), tls=tls) as dev:
        with pytest.raises(Exception, match="4000"):
            await dev.call("config_set", values={"up.backlight.idleIntensity": "7"})
    assert phone.phone.config["up.backlight.idleIntensity"].current == "1"


# --- Solstice -------------------------------------------------------------------------------------


@pytest.fixture
def pod(emulators: EmulatorThread) -> EmulatedSolstice:
    dev = emulators.add(EmulatedSolstice("pod-cat", "127.0.0.1", 0, password=PASSWORD))
    assert isinstance(dev, EmulatedSolstice)
    return dev


def _pod_client(pod: EmulatedSolstice, tls: TLSPolicy) -> Device:
    return Device(SOLSTICE, f"127.0.0.1:{pod.port}", credentials=Credentials("admin", PASSWORD), tls=tls,
                  ports={"https": pod.v1_https_port})


async def test_solstice_config_keys_are_the_catalogue(pod: EmulatedSolstice, tls: TLSPolicy) -> None:
    keys = set(known_keys(SOLSTICE))
    assert _stored_keys(pod.state.config) == keys
    async with _pod_client(pod, tls) as dev:
        data = (await dev.call("config_get")).data
    assert _stored_keys(data) == keys
    assert set(data["security"]["admin_password"]) == {"secret_salt", "secret_hash"}  # a secret key's read form


@pytest.mark.parametrize(("key", "value", "effect"), [
    ("display.name", "room-9", "live"),
    ("sharing.airplay.enabled", False, "restart"),
    ("security.display_certificate.password", "k3y", "restart"),
    ("display.output_mode", "mirror", "restart"),
    ("connection.host_name", "pod-9", "reboot"),
])
async def test_solstice_restart_and_reboot_follow_the_spec(pod: EmulatedSolstice, tls: TLSPolicy, key: str,
                                                           value: Any, effect: str) -> None:
    var = lookup(SOLSTICE, key)
    assert var is not None and var.applies == effect
    patch: Any = check_value(SOLSTICE, key, value)
    for part in reversed(key.split(".")):
        patch = {part: patch}
    action = var.write_via
    assert action is not None
    async with _pod_client(pod, tls) as dev:
        result = await dev.call(action, config=patch)  # confirmation is the command line's, not the client's
    assert (result.info["restart_required"], result.info["reboot_required"]) == (
        effect == "restart", effect == "reboot")


# --- the family's reader and the catalogue agree ---------------------------------------------------


async def test_each_familys_config_reader_sees_exactly_the_catalogue(emulators: EmulatorThread,
                                                                     tls: TLSPolicy) -> None:
    """Over HTTPS, the family's config requests (avctl.families config_reads/config_parse) read
    every catalogue key from the emulator and nothing else; secrets by shape are the catalogue's."""
    devices = [
        (emulators.add(EmulatedVideoOS("room-r", password=PASSWORD)), VIDEOOS, "admin"),
        (emulators.add(EmulatedPolyUC("vvx-r", password=PASSWORD)), POLYUC, None),
        (emulators.add(EmulatedSolstice("pod-r", "127.0.0.1", 0, password=PASSWORD)), SOLSTICE, "admin"),
    ]
    for emu, spec, user in devices:
        family = get_family(spec.family or "")
        read = ConfigRead()
        ports = {"https": emu.v1_https_port} if isinstance(emu, EmulatedSolstice) else None
        async with Device(spec, f"127.0.0.1:{emu.port}", credentials=Credentials(user, PASSWORD), tls=tls,
                          ports=ports) as dev:
            for call in family.config_reads(spec, known_keys(spec)):
                family.config_parse(call, (await dev.call(call.action, **call.params)).data, read)
        # clocks are left out of what is read (they change on every read; see the Solstice codec)
        assert sorted(read.values) == [k for k in known_keys(spec) if k not in VOLATILE], spec.family
        # a phone's answer does not show which values are secrets: only the catalogue knows
        assert read.secrets == (set() if spec is POLYUC else _secret_keys(spec)), spec.family
