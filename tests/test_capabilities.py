"""Capabilities on the device: ``dev.status()``, ``dev.run_verb()``, ``dev.verbs``/``dev.feedbacks``,
the ``on_call`` hook, ``repr`` and `SyncDevice`, against the emulators of every family over real
HTTPS on loopback. Every check compares with the emulator's own state, not with fixed answers.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import avctl
from avctl import Credentials, Device, SyncDevice
from avctl.capabilities import STATUS_FIELDS, Status
from avctl.device import CallEvent
from avctl.emulator.core import EmulatedDevice, EmulatorThread
from avctl.emulator.polyuc import EmulatedPolyUC
from avctl.emulator.solstice import EmulatedSolstice
from avctl.emulator.videoos import EmulatedVideoOS
from avctl.errors import BadAnswer, DeviceError, UsageError, ValidationError
from avctl.spec import load_spec
from avctl.transport.tls import TLSPolicy

from .test_status_types import answer_garbage_always

PASSWORD = "capab-pw-R7t2"
SPECS = Path(avctl.__file__).parent / "specs"


def client(emu: EmulatedDevice, tls: TLSPolicy, spec: object = None, **kwargs: object) -> Device:
    """A Device for any family's emulator (Solstice's v1 API on the pod's own HTTPS socket)."""
    extra: dict[str, object] = {}
    if isinstance(emu, EmulatedSolstice):
        extra["ports"] = {"https": emu.v1_https_port}
    user = None if isinstance(emu, EmulatedPolyUC) else "admin"
    return Device(spec or emu.family, f"127.0.0.1:{emu.port}", credentials=Credentials(user, PASSWORD), tls=tls,
                  **extra, **kwargs)  # type: ignore[arg-type]


def spec_variant(tmp_path: Path, old: str, new: str) -> avctl.Spec:
    """The built-in VideoOS spec with one text change (the emulator keeps the built-in one)."""
    text = (SPECS / "videoos.md").read_text()
    assert text.count(old) == 1, old
    path = tmp_path / "videoos_variant.md"
    path.write_text(text.replace(old, new))
    return load_spec(path)


# --- status --------------------------------------------------------------------------------------------


async def test_videoos_status_is_typed_and_matches_the_emulator(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    emu = emulators.add(EmulatedVideoOS("room-v", password=PASSWORD))
    assert isinstance(emu, EmulatedVideoOS)
    emu.state.volume, emu.state.muted = 17, True
    async with client(emu, tls) as dev:
        st = await dev.status()
        assert isinstance(st, Status)
        assert (st.reachable, st.model, st.firmware, st.volume, st.mic_muted, st.in_call) == (
            True, emu.state.model, emu.firmware, 17, True, False)
        assert isinstance(st.uptime, float) and st.uptime >= 0
        assert st.readings["serial"] == emu.state.serial and st.readings["name"] == emu.state.system_name
        assert not set(st.readings) & set(STATUS_FIELDS)  # the common readings are attributes only
        assert st.unavailable == {}
        emu.state.volume, emu.state.muted = 64, False
        st = await dev.status()
        assert (st.volume, st.mic_muted) == (64, False)
    # the JSON shape of `fleet status`: reachable, every declared reading in spec order
    doc = st.as_dict()
    assert list(doc) == ["reachable", *st.declared] and doc["volume"] == 64 and "unavailable" not in doc


async def test_polyuc_status_is_typed_and_matches_the_emulator(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    emu = emulators.add(EmulatedPolyUC("vvx-s", password=PASSWORD))
    assert isinstance(emu, EmulatedPolyUC)
    emu.phone.muted = True
    async with client(emu, tls) as dev:
        st = await dev.status()
        assert (st.reachable, st.model, st.firmware, st.mic_muted, st.in_call) == (
            True, emu.phone.model, emu.phone.firmware, True, False)
        assert isinstance(st.uptime, float) and st.readings["mac"] == emu.phone.mac
        # the phone's spec has no volume reading: None, and not declared (not "not reported")
        assert st.volume is None and "volume" not in st.declared and "volume" not in st.unavailable
        emu.phone.dial("123", 1, "SIP")
        assert (await dev.status()).in_call is True


async def test_solstice_status_is_typed_and_matches_the_emulator(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    emu = emulators.add(EmulatedSolstice("pod-s", password=PASSWORD))
    assert isinstance(emu, EmulatedSolstice)
    async with client(emu, tls) as dev:
        st = await dev.status()
        assert (st.reachable, st.model, st.firmware, st.in_call) == (True, emu.state.model, emu.state.firmware, False)
        assert st.readings["serial"] == emu.state.device_id and st.readings["connected_users"] == 0
        emu.state.connected_users = 3
        st = await dev.status()
        assert st.in_call is True and st.readings["connected_users"] == 3 and st.get("connected_users") == 3


async def test_a_reading_that_does_not_fit_its_status_field_is_unavailable(
        emulators: EmulatorThread, tls: TLSPolicy, tmp_path: Path) -> None:
    # a spec that declares `volume` as a boolean: it fits its own declaration, but Status.volume is
    # an integer, so it is unavailable with the reason rather than a bool in an int field
    spec = spec_variant(tmp_path, '- id: volume\n  type: integer\n  from: {action: audio_get, pointer: /volume}',
                        '- id: volume\n  type: boolean\n  from: {action: audio_muted_get, pointer: ""}')
    emu = emulators.add(EmulatedVideoOS("room-t", password=PASSWORD))
    async with client(emu, tls, spec) as dev:
        st = await dev.status()
    assert st.volume is None
    assert st.unavailable == {"volume": "audio_muted_get: volume reads as a boolean, not integer (Status.volume)"}
    assert st.model == "StudioX50"  # the other readings still count


async def test_status_of_a_device_answering_garbage_is_bad_answer(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    emu = emulators.add(EmulatedVideoOS("room-g", password=PASSWORD))
    answer_garbage_always(emu)
    async with client(emu, tls) as dev:
        with pytest.raises(BadAnswer, match="no status reading fits its declared type"):
            await dev.status()


async def test_status_of_a_spec_without_feedbacks_is_a_usage_error(
        emulators: EmulatorThread, tls: TLSPolicy, tmp_path: Path) -> None:
    text = (Path(__file__).parent / "data" / "videoos_min.md").read_text().split("## Feedbacks")[0]
    path = tmp_path / "bare.md"
    path.write_text(text)
    emu = emulators.add(EmulatedVideoOS("room-b", password=PASSWORD))
    async with client(emu, tls, load_spec(path)) as dev:
        assert dev.feedbacks == {} and dev.verbs == {}
        with pytest.raises(UsageError, match="has no Feedbacks"):
            await dev.status()
    assert emu.requests.total == 0


# --- verbs ---------------------------------------------------------------------------------------------


async def test_videoos_verbs_change_the_emulator(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    emu = emulators.add(EmulatedVideoOS("room-w", password=PASSWORD))
    assert isinstance(emu, EmulatedVideoOS)
    emu.faults.reboot_seconds = 0.2
    async with client(emu, tls) as dev:
        assert set(dev.verbs) == {"reboot", "mute", "unmute", "volume", "end_call"}
        assert dev.verbs["volume"].needs == ("volume",) and not dev.verbs["volume"].disruptive
        assert dev.verbs["reboot"].disruptive and dev.verbs["reboot"].steps == ("system_reboot",)
        [result] = await dev.run_verb("volume", volume=33)
        assert result.action == "audio_volume_set" and emu.state.volume == 33
        await dev.run_verb("volume", volume="21")  # text is read per the step's declared type
        assert emu.state.volume == 21
        await dev.run_verb("mute")
        assert emu.state.muted is True and (await dev.status()).mic_muted is True
        await dev.run_verb("reboot")
    assert emu.state.reboots == 1


async def test_polyuc_and_solstice_reboot_verbs(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    phone = emulators.add(EmulatedPolyUC("vvx-r", password=PASSWORD))
    pod = emulators.add(EmulatedSolstice("pod-r", password=PASSWORD))
    assert isinstance(phone, EmulatedPolyUC) and isinstance(pod, EmulatedSolstice)
    phone.faults.reboot_seconds = pod.faults.reboot_seconds = 0.2
    async with client(phone, tls) as dev:
        assert set(dev.verbs) == {"reboot", "restart", "mute", "unmute", "end_call", "firmware_update"}
        await dev.run_verb("reboot")
    assert phone.phone.reboots == 1
    async with client(pod, tls) as dev:
        await dev.run_verb("restart")
        assert pod.state.restarts == 1
        await dev.run_verb("reboot")
    assert pod.is_down


async def test_verb_validation_errors_send_nothing(emulators: EmulatorThread, tls: TLSPolicy, tmp_path: Path) -> None:
    # a two-step verb whose second step is invalid: the first step must not be sent either
    spec = spec_variant(tmp_path, "- id: volume\n  label: Set the volume (caller gives volume)\n",
                        "- id: quiet\n  label: Mute, then set the volume\n  steps:\n"
                        "    - {action: audio_muted_set, params: {muted: true}}\n"
                        "    - {action: audio_volume_set, params: {volume: $volume}}\n"
                        "- id: volume\n  label: Set the volume (caller gives volume)\n")
    emu = emulators.add(EmulatedVideoOS("room-x", password=PASSWORD))
    assert isinstance(emu, EmulatedVideoOS)
    async with client(emu, tls, spec) as dev:
        with pytest.raises(ValidationError):
            await dev.run_verb("quiet", volume=300)  # the spec's maximum is 100
        with pytest.raises(ValidationError, match="needs volume"):
            await dev.run_verb("quiet")
        with pytest.raises(ValidationError, match="takes no parameter muted"):
            await dev.run_verb("mute", muted=False)  # a step's own constant is not the caller's
        with pytest.raises(UsageError, match="no 'rebot' verb") as info:
            await dev.run_verb("rebot")
        assert "reboot" in (info.value.hint or "")
        assert emu.requests.total == 0 and emu.state.muted is False  # not even a login
        await dev.run_verb("quiet", volume=5)
    assert (emu.state.muted, emu.state.volume) == (True, 5)


@pytest.mark.parametrize("cls", [EmulatedVideoOS, EmulatedPolyUC, EmulatedSolstice])
async def test_every_family_refuses_a_bad_verb_call_before_sending_and_reprs_no_secret(
        emulators: EmulatorThread, tls: TLSPolicy, cls: type[EmulatedDevice]) -> None:
    emu = emulators.add(cls(f"{cls.__name__}-v", password=PASSWORD))
    async with client(emu, tls) as dev:
        with pytest.raises(ValidationError, match="takes no parameter force"):
            await dev.run_verb("reboot", force=True)
        with pytest.raises(UsageError, match="no 'reboot_now' verb"):
            await dev.run_verb("reboot_now")
    assert emu.requests.total == 0 and not emu.is_down
    async with client(emu, tls) as dev:
        await dev.status()  # logged in (where the family has sessions), credentials in use
        assert PASSWORD not in repr(dev) and repr(dev).startswith(f"<Device {emu.family} ")


# --- the call hook, repr ----------------------------------------------------------------------------------


async def test_on_call_sees_every_call_of_every_capability(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    emu = emulators.add(EmulatedVideoOS("room-h", password=PASSWORD))
    events: list[CallEvent] = []
    async with client(emu, tls, on_call=events.append) as dev:
        await dev.status()
        assert [e.action.id for e in events] == list(dict.fromkeys(fb.action for fb in dev.feedbacks.values()))
        assert all(e.action.kind == "query" and e.error is None and e.result is not None for e in events)
        events.clear()
        await dev.run_verb("volume", volume=9)
        [event] = events
        assert (event.device, event.action.id, dict(event.params)) == (dev.name, "audio_volume_set", {"volume": 9})
        events.clear()
        emu.faults.fail_next = 1
        with pytest.raises(DeviceError):
            await dev.call("audio_volume_set", volume=10)
        [event] = events
        assert event.result is None and isinstance(event.error, DeviceError)


async def test_repr_names_the_device_and_never_a_secret(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    emu = emulators.add(EmulatedVideoOS("room-r", password=PASSWORD))
    dev = client(emu, tls, name="lobby\x1b[31m")
    try:
        before = repr(dev)
        assert before == f"<Device videoos 'lobby\\x1b[31m' https://127.0.0.1:{emu.port} not logged in>"
        await dev.call("system_get")
        after = repr(dev)
        assert after.endswith(" logged in>") and "not logged in" not in after
        session = next(iter(emu.sessions))  # what the device handed out
        for text in (before, after):
            assert PASSWORD not in text and session not in text and "admin" not in text
    finally:
        await dev.close()


# --- SyncDevice ------------------------------------------------------------------------------------------


def test_sync_device_takes_exactly_the_parameters_of_device() -> None:
    sync = inspect.signature(SyncDevice.__init__).parameters
    asynchronous = inspect.signature(Device.__init__).parameters
    assert [(p.name, p.kind, p.default, p.annotation) for p in sync.values()] == [
        (p.name, p.kind, p.default, p.annotation) for p in asynchronous.values()]
    for name in ("call", "prepare", "status", "run_verb", "close", "verbs", "feedbacks", "__enter__", "__exit__"):
        assert hasattr(SyncDevice, name), name


SCRIPT = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    from avctl import Credentials, KnownHosts, SyncDevice, TLSPolicy

    tls = TLSPolicy.pinned(KnownHosts(Path(sys.argv[2])))
    creds = Credentials("admin", os.environ["SCRIPT_PASSWORD"])
    with SyncDevice("videoos", sys.argv[1], credentials=creds, tls=tls, name="script-room") as dev:
        before = dev.status()
        [step] = dev.run_verb("volume", volume=12)
        print(json.dumps({
            "repr": repr(dev), "before": before.volume, "model": before.model, "step": step.action,
            "after": dev.status().volume, "call": dev.call("audio_volume_get").data,
            "verbs": sorted(dev.verbs), "prepared": dev.prepare("audio_volume_set", {"volume": 3})[0].id,
        }))
""")


def test_sync_device_in_a_plain_script(emulators: EmulatorThread, tmp_path: Path) -> None:
    emu = emulators.add(EmulatedVideoOS("room-s", password=PASSWORD))
    assert isinstance(emu, EmulatedVideoOS)
    emu.state.volume = 70
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "SCRIPT_PASSWORD": PASSWORD}
    proc = subprocess.run([sys.executable, str(script), f"127.0.0.1:{emu.port}", str(tmp_path / "known")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out == {"repr": f"<SyncDevice videoos 'script-room' https://127.0.0.1:{emu.port} logged in>",
                   "before": 70, "model": emu.state.model, "step": "audio_volume_set", "after": 12, "call": 12,
                   "verbs": ["end_call", "mute", "reboot", "unmute", "volume"], "prepared": "audio_volume_set"}
    assert emu.state.volume == 12 and PASSWORD not in proc.stdout + proc.stderr
    assert not emu.sessions  # the context manager logged out
