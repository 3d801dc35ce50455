"""The shipped device profiles (src/avctl/profile/shipped), served over real HTTPS to the real client.

Each profile is built by scripts/build_profiles.py from an emulator configured as the model, with
every read that a public recording covers answered as recorded (scripts/profile_sources/, each with
its provenance). Evidence used here:

- AVI: AVISPL/dal-codecs-singlecodecs-polycom-videoos at 3889e5c3fb3224e7cd2daa68ea32771cd53aad89,
  `src/test/resources/mappings/multi.json` (a Studio X30 on VideoOS 3.12.0) and
  `src/main/java/com/avispl/dal/communicator/polycom/videoos/PolycomVideoOS.java` (re-login on 403;
  the config read of h323extension, h323name and sipusername).
- MIV: HL727/Meeting at 0e9d83aecabdaf90a6bd48361767d8f58d16eacb, `endpoint/tests/mock_data/poly_trio.py`
  (a Trio 8800 on UC Software 7.2.2.1094) and `endpoint/ext_api/poly_trio.py` (GET v1/mgmt/lineinfo,
  the config/get of three names).
- POSH: rdbahm/Posh-UCS `Posh-UCS/UcsRest.psm1`: call control with an empty body acts on the current call.
- S002: seed 002, a phone's v1 callStatus during a call and the endCall by `Ref` that follows it.
- ZL: zlynx/APIdemo `OpenControlGETdemo.py` (Mersive's demo) formats `connectionShowFlags` as binary.
- AVS: AVISPL/dal-avdevices-wireless-presentation-mersive-solsticepod `SolsticePodGen3Communicator.java`
  `getToken()`: an empty username with the admin password.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avctl import Credentials, Device
from avctl.capture import capture
from avctl.emulator.core import EmulatedDevice, EmulatorThread, emulator_class
from avctl.emulator.profiled import attach, profile_settings
from avctl.families import builtin_spec
from avctl.profile import Exchange, Profile, load_profile, shipped_profiles
from avctl.transport.tls import TLSPolicy

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "scripts" / "profile_sources"
AVCTL = str(Path(sys.executable).with_name("avctl"))
PASSWORD = "profile-pw-1"
NO_RECORDING = "emulator: no public recording"
#: name -> (family, model, firmware, uptime in seconds as the profile's answers give it)
EXPECTED = {
    "studio-x30": ("videoos", "StudioX30", "3.12.0", 693845.31),  # AVI /rest/system
    "g7500": ("videoos", "G7500", "4.6.2", 2 * 86400),
    "trio-8800": ("polyuc", "Trio 8800", "7.2.2.1094", 86400 + 3600 + 41 * 60 + 28),  # MIV v2 device/info
    "vvx-450": ("polyuc", "VVX 450", "6.4.3.5156", 3 * 86400),
    "solstice-pod-gen3": ("solstice", "Solstice Pod", "5.5.3.14", None),
}
#: identifying values of the recordings (AVI, MIV) that must never reach a shipped file
ORIGINALS = ["8L200353429AFC", "NH-StudioX30-53429a", "8L200150A267FD", "nh-studiox30", "vnoc1",
             "00e0db50a267", "00:e0:db:53:42:9a", "172.31.", "7771991048", "PSZSwXDnLHv82VnM0ygyHun8",
             "172.21.16", "135.181.112.5", "mividas", "mindspacecloud", "112233445566", "hdx9000",
             "0702275815", "Poly Trio8800", "trio8800", "polyx30"]
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![0-9A-Fa-f:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![0-9A-Fa-f:])")
_MAC = re.compile(r"(?<![0-9A-Fa-f:-])(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}(?![0-9A-Fa-f:-])")
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*")
#: keys whose values are versions ("5.5.3.14" reads like an IPv4 address) or netmasks
_NOT_AN_ADDRESS_KEY = re.compile(r"version|firmware|build|release|application|bootblock|updater|mask", re.I)
_DOC_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")]


def profile(name: str) -> Profile:
    return load_profile(name)


def serve(emulators: EmulatorThread, name: str, **settings: Any) -> EmulatedDevice:
    """An emulator of the profile's family, set up as its model and answering from it."""
    prof = profile(name)
    cls = emulator_class(prof.family)
    dev = cls(name, password=PASSWORD, **profile_settings(prof, settings))
    attach(dev, prof)
    return emulators.add(dev)


def client(dev: EmulatedDevice, tls: TLSPolicy) -> Device:
    user = None if dev.family == "polyuc" else "admin"
    ports = {"https": dev.v1_https_port} if dev.family == "solstice" else None  # type: ignore[attr-defined]
    return Device(builtin_spec(dev.family), f"127.0.0.1:{dev.port}", credentials=Credentials(user, PASSWORD),
                  tls=tls, ports=ports)


def recorded(name: str) -> dict[str, Any]:
    return json.loads((SOURCES / f"{name}.json").read_text("utf-8"))


def read_of(prof: Profile, method: str, path: str, body: Any = None) -> Exchange:
    [found] = [e for e in prof.exchanges if (e.method, e.path, e.body) == (method, path, body)]
    return found


def _strings(doc: Any, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _strings(k, key)
            named = str(doc["name"]) if isinstance(doc.get("name"), str) and k == "value" else str(k)
            yield from _strings(v, named)
    elif isinstance(doc, list):
        for v in doc:
            yield from _strings(v, key)
    elif isinstance(doc, str):
        yield key, doc


# --- the files ----------------------------------------------------------------------------------------


def test_the_five_models_are_shipped_and_small() -> None:
    shipped = shipped_profiles()
    assert set(shipped) == set(EXPECTED)
    for path in shipped.values():
        assert path.stat().st_size < 300 * 1024, path


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_profile_loads_and_names_its_sources(name: str) -> None:
    prof = profile(name)
    family, model, firmware, _ = EXPECTED[name]
    assert (prof.family, prof.model, prof.firmware) == (family, model, firmware)
    assert prof.settings == {"model": model, "firmware": firmware}
    assert prof.created == "2026-11-30T00:00:00Z" and prof.exchanges
    # each read once (capture planned Solstice's config read twice: once as a query, once as the
    # family's configuration read)
    assert len({e.key() for e in prof.exchanges}) == len(prof.exchanges)
    for exchange in prof.exchanges:
        assert exchange.source == NO_RECORDING or (
            exchange.source.startswith("recorded: ") and exchange.source in prof.source), exchange
    # each recorded source is one of the saved evidence files, which cites a repository at a commit
    cited = {json.loads(p.read_text("utf-8"))["source"] for p in SOURCES.glob("*.json")}
    for exchange in prof.exchanges:
        if exchange.source != NO_RECORDING:
            assert exchange.source.removeprefix("recorded: ") in cited
            assert re.fullmatch(r"recorded: [\w.-]+/[\w.-]+ \S+@[0-9a-f]{40}", exchange.source)
    assert "emulator: avctl" in prof.source


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_nothing_identifying_survives(name: str) -> None:
    path = shipped_profiles()[name]
    text = path.read_text("utf-8")
    for original in ORIGINALS:
        assert original.lower() not in text.lower(), original
    reads = [[r["request"], r["response"]] for r in json.loads(text)["reads"]]  # not the provenance
    for key, value in _strings(reads):
        if not _NOT_AN_ADDRESS_KEY.search(key):
            for found in _IPV4.findall(value):
                addr = ipaddress.ip_address(found)
                documentation = any(addr in n for n in _DOC_NETS)
                assert addr.is_unspecified or found.startswith("255.") or documentation, (key, value)
        for found in _IPV6.findall(value):
            try:
                addr6 = ipaddress.ip_address(found)
            except ValueError:
                continue  # a time such as 10:30:00 matches the pattern
            assert addr6.is_unspecified or addr6.is_loopback or any(addr6 in n for n in _DOC_NETS), (key, value)
        for found in _MAC.findall(value):
            assert found.lower().replace("-", ":").startswith("00:00:5e:00:53:"), (key, value)
        if re.search(r"mac", key, re.I) and re.fullmatch(r"[0-9A-Fa-f]{12}", value):
            assert value.lower().startswith("00005e0053"), (key, value)
        for found in _ADDRESS.findall(value):
            assert found.lower().endswith("@example.invalid"), (key, value)


def test_recorded_answers_are_the_recordings_redacted() -> None:
    """A recorded read differs from its source only where an identifying value was replaced."""
    prof = profile("studio-x30")
    source = {(r["method"], r["path"]): r for r in recorded("studio-x30")["reads"]}
    apps = read_of(prof, "GET", "/rest/system/apps")
    assert apps.answer == source[("GET", "/rest/system/apps")]["json"]  # nothing in it identifies anyone
    system = read_of(prof, "GET", "/rest/system")
    real = source[("GET", "/rest/system")]["json"]
    changed = {k for k in real if system.answer[k] != real[k]}
    assert changed == {"serialNumber", "systemName"}
    assert re.fullmatch(r"X0+\d+", system.answer["serialNumber"])
    assert re.fullmatch(r"name-\d+", system.answer["systemName"])


_PLACEHOLDER = re.compile(r"X0*\d+|(?:REDACTED-)?[a-z]+-\d+|host-\d+\.example\.invalid|"
                          r"(?:sip:)?user-\d+@example\.invalid|(?:192\.0\.2|198\.51\.100|203\.0\.113)\.\d+|00[:-]?00[:-]?5[eE][:-]?00[:-]?53[:-]?[0-9a-fA-F]{2}")


def _same_but_redacted(served: Any, real: Any, at: str = "") -> list[str]:
    """Where `served` differs from `real` other than by a placeholder standing for a value."""
    if isinstance(real, dict) and isinstance(served, dict):
        if set(real) != set(served):
            return [f"{at}: keys {sorted(set(real) ^ set(served))}"]
        return [d for k in real for d in _same_but_redacted(served[k], real[k], f"{at}/{k}")]
    if isinstance(real, list) and isinstance(served, list):
        if len(real) != len(served):
            return [f"{at}: {len(served)} items, recorded {len(real)}"]
        pairs = enumerate(zip(served, real, strict=True))
        return [d for i, (a, b) in pairs for d in _same_but_redacted(a, b, f"{at}/{i}")]
    if served == real or (isinstance(served, str) and _PLACEHOLDER.fullmatch(served) and served != real):
        return []
    return [f"{at}: {served!r}, recorded {real!r}"]


@pytest.mark.parametrize("name", ["studio-x30", "trio-8800"])
def test_every_recorded_read_is_in_its_profile_as_recorded(name: str) -> None:
    """Each saved recording is a read of the profile, whose answer is the recording with only
    identifying values replaced (AVI, MIV)."""
    prof = profile(name)
    source = recorded(name)
    for read in source["reads"]:
        exchange = read_of(prof, read["method"], read["path"], read.get("body"))
        assert exchange.source == f"recorded: {source['source']}"
        assert (exchange.status, exchange.content_type, exchange.is_json) == (
            read["status"], read["content_type"], "json" in read)
        assert _same_but_redacted(exchange.answer, read.get("json", read.get("text"))) == [], read["path"]
    assert sum(e.source != NO_RECORDING for e in prof.exchanges) == len(source["reads"])


def test_build_script_reproduces_the_shipped_files() -> None:
    """Running scripts/build_profiles.py again gives the same bytes (fixed clock, seed and date)."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_profiles.py"), "--check"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


# --- served: the round trip and the client's readings ---------------------------------------------------


def _comparable(e: Exchange) -> tuple[Any, ...]:
    return (e.action, e.method, e.path, e.query, e.body, e.status, e.is_json, e.content_type,
            json.dumps(e.answer, sort_keys=True))


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_a_fresh_capture_of_the_served_profile_equals_it(emulators: EmulatorThread, tls: TLSPolicy,
                                                               name: str) -> None:
    prof = profile(name)
    dev = serve(emulators, name)
    async with client(dev, tls) as d:
        fresh = await capture(d)
        # the recorded requests of public clients that capture does not send come last: asked
        # directly, each gets its recorded answer
        extra = prof.exchanges[len(fresh.exchanges):]
        for exchange in extra:
            request, response = await d.fetch(exchange.action, **exchange.params)
            assert (request.path, json.loads(request.body)) == (exchange.path, exchange.body)
            assert (response.status, json.loads(response.body)) == (exchange.status, exchange.answer)
    assert [_comparable(e) for e in fresh.exchanges] == [_comparable(e) for e in prof.exchanges[:len(fresh.exchanges)]]
    assert all(e.source.startswith("recorded: ") for e in extra)
    assert fresh.model == prof.model
    # a real Trio's v2 Firmware/Application carries the build date after the version (MIV): the
    # firmware reading keeps the version (the spec's `version` transform)
    assert fresh.firmware == prof.firmware
    assert fresh.redactions == []  # every value served is a placeholder already


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_status_readings_come_from_the_profile(emulators: EmulatorThread, tls: TLSPolicy, name: str) -> None:
    _, model, firmware, uptime = EXPECTED[name]
    dev = serve(emulators, name)
    async with client(dev, tls) as d:
        status = await d.status()
    assert status.reachable and not status.unavailable, status
    assert (status.model, status.firmware) == (model, firmware)
    if uptime is not None:
        assert status.uptime == pytest.approx(uptime)
    assert status.in_call is False


def test_avctl_emulate_profile_and_fleet_status(tmp_path: Path) -> None:
    """`avctl emulate polyuc --profile trio-8800` in its own process, read by `avctl fleet status`."""
    env = {"AVCTL_HOME": str(tmp_path / "home"), "PHONE_PW": PASSWORD, "PATH": str(Path(sys.executable).parent)}
    proc = subprocess.Popen([AVCTL, "emulate", "polyuc", "--profile", "trio-8800", "--password", PASSWORD],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"https://(127\.0\.0\.1:\d+)", line)
        assert match and "Trio 8800 7.2.2.1094 (22 reads)" in line, line
        inventory = tmp_path / "fleet.yaml"
        inventory.write_text("defaults: {family: polyuc, password: env:PHONE_PW}\n"
                             f"devices:\n  trio: {{address: '{match.group(1)}'}}\n")
        done = subprocess.run([AVCTL, "fleet", "status", "-i", str(inventory), "--json"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        doc = json.loads(done.stdout[done.stdout.index("{"):])
        [row] = doc["devices"] if "devices" in doc else doc["results"]
        text = json.dumps(row)
        assert "Trio 8800" in text and "7.2.2.1094" in text, row
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


# --- Studio X30: AVI's client against its own recordings --------------------------------------------------


async def test_x30_avi_relogin_on_403_meets_the_recorded_answers(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = serve(emulators, "studio-x30")
    prof = profile("studio-x30")
    async with client(dev, tls) as d:
        assert (await d.call("system_get")).data == read_of(prof, "GET", "/rest/system").answer
        dev.expire_sessions()  # AVI's interceptor logs in again on the 403 that follows
        assert (await d.call("collaboration_get")).data == {"id": "Local Session", "state": "INACTIVE"}
    assert sum(1 for r in dev.requests if r.method == "POST" and r.path.endswith("/session")) == 2


async def test_x30_avi_config_read_gets_the_recorded_vars(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = serve(emulators, "studio-x30")
    names = recorded("studio-x30")["reads"][15]["params"]["names"]
    async with client(dev, tls) as d:
        values = (await d.call("config_get", names=names)).data
    found = {v["name"]: v for v in values["vars"]} if isinstance(values, dict) else values
    assert list(found) == names
    # AVI's recording: h323name is the system's name, sipusername a SIP address, all NOERROR
    assert found["comm.nics.h323nic.h323name"]["value"] == read_of(profile("studio-x30"), "GET", "/rest/system").answer[
        "systemName"]
    assert found["comm.nics.sipnic.sipusername"]["value"].endswith("@example.invalid")
    assert {v["result"] for v in found.values()} == {"NOERROR"}


async def test_x30_mute_and_volume_show_while_the_rest_stays_recorded(emulators: EmulatorThread,
                                                                       tls: TLSPolicy) -> None:
    dev = serve(emulators, "studio-x30")
    async with client(dev, tls) as d:
        # AVI: {"muteLocked":false,"muted":true,"numOfMicsConnected":1,"volume":39}
        assert (await d.call("audio_get")).data == {"muteLocked": False, "muted": True, "numOfMicsConnected": 1,
                                                    "volume": 39}
        # muted first: the emulator starts unmuted, so only a change of its own state is seen
        await d.call("audio_muted_set", muted=True)
        await d.call("audio_muted_set", muted=False)
        await d.call("audio_volume_set", volume=55)
        audio = (await d.call("audio_get")).data
        muted = (await d.call("audio_muted_get")).data
        volume = (await d.call("audio_volume_get")).data
        system = (await d.call("system_get")).data
    assert audio == {"muteLocked": False, "muted": False, "numOfMicsConnected": 1, "volume": 55}
    assert (muted, volume) == (False, 55)
    # (the uptime is not compared: it changes between the overlay's before and after, so a write
    # makes it the emulator's own)
    recorded_system = read_of(profile("studio-x30"), "GET", "/rest/system").answer
    assert {k: system[k] for k in ("model", "softwareVersion", "serialNumber", "systemName", "lanStatus")} == {
        k: recorded_system[k] for k in ("model", "softwareVersion", "serialNumber", "systemName", "lanStatus")}


async def test_x30_first_unmute_shows(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = serve(emulators, "studio-x30")
    async with client(dev, tls) as d:
        await d.call("audio_muted_set", muted=False)
        assert (await d.call("audio_muted_get")).data is False


# --- Trio 8800: Mividas' integration and Posh-UCS against MIV's recordings ----------------------------------


def _basic_get(dev: EmulatedDevice, path: str, body: Any = None) -> Any:
    """The request as the Mividas integration sends it (`requests` with Basic auth), over HTTPS."""
    import ssl

    context = ssl.create_default_context(cadata=dev.cert_pem.decode())
    context.check_hostname = False  # the emulator's certificate names the device, not 127.0.0.1
    auth = base64.b64encode(f"Polycom:{PASSWORD}".encode()).decode()
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"https://127.0.0.1:{dev.port}{path}", data=data,
                                     method="GET" if body is None else "POST",
                                     headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=20, context=context) as answer:
        return json.loads(answer.read())


async def test_trio_mividas_requests_get_the_recorded_answers(emulators: EmulatorThread) -> None:
    import asyncio

    dev = serve(emulators, "trio-8800")
    prof = profile("trio-8800")
    # poly_trio.py asks v1/mgmt/lineinfo in lower case; a phone matches paths without case
    line_info = await asyncio.to_thread(_basic_get, dev, "/api/v1/mgmt/lineinfo")
    assert line_info == read_of(prof, "GET", "/api/v1/mgmt/lineInfo").answer
    assert line_info["data"][0]["RegistrationStatus"] == "registered" and line_info["data"][0]["Protocol"] == "Auto"
    body = {"data": ["device.local.deviceName", "ptt.volume", "reg.1.server.H323.1.address"]}
    config = await asyncio.to_thread(_basic_get, dev, "/api/v1/mgmt/config/get", body)
    assert config["data"]["ptt.volume"] == {"Value": "-20", "Source": "default"}  # MIV, verbatim
    assert config["data"]["reg.1.server.H323.1.address"]["Value"].endswith(".example.invalid")
    running = await asyncio.to_thread(_basic_get, dev, "/api/v1/mgmt/device/runningConfig")
    assert running["data"]["Provisioning"]["ServerType"] == "FTP" and running["data"]["Syslog"]["Transport"] == "UDP"


async def test_trio_call_control_without_ref_shows_in_the_next_reads(emulators: EmulatorThread,
                                                                     tls: TLSPolicy) -> None:
    dev = serve(emulators, "trio-8800")
    prof = profile("trio-8800")
    recorded_info = read_of(prof, "GET", "/api/v2/mgmt/device/info").answer
    async with client(dev, tls) as d:
        assert (await d.call("call_status")).data == []  # MIV: the idle phone
        dev.inject_incoming_call("5551000", "Caller one")  # type: ignore[attr-defined]
        await d.call("callctrl_answer_call")  # POSH: no Ref, the current call
        connected = (await d.call("call_status")).data
        await d.call("callctrl_mute", state="1")
        info = (await d.call("device_info")).data
        status = await d.status()
        await d.call("callctrl_hold_call")
        held = (await d.call("call_status")).data
    assert [c["CallState"] for c in connected] == ["Connected"]
    assert [c["CallState"] for c in held] == ["Hold"]
    # the keys of MIV's recorded in-call answer, every one present in the live answer
    in_call = recorded("trio-8800")["reads"][7]["other_states"]["in_call"]["data"][0]
    assert set(in_call) <= set(connected[0]), set(in_call) - set(connected[0])
    assert status.in_call is True and status.mic_muted is True
    assert info == recorded_info["data"]  # the call changed nothing the device info recorded


async def test_trio_an_arriving_call_shows(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = serve(emulators, "trio-8800")
    async with client(dev, tls) as d:
        dev.inject_incoming_call("5551000", "Caller one")  # type: ignore[attr-defined]
        assert [c["CallState"] for c in (await d.call("call_status")).data] == ["Offering"]


# --- VVX 450: seed 002's call transcript --------------------------------------------------------------


async def test_vvx_seed_002_call_status_and_end_call_by_ref(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = serve(emulators, "vvx-450")
    async with client(dev, tls) as d:
        await d.call("callctrl_dial", Dest="123")
        v1 = (await d.call("call_status_v1")).data
        # S002: {"CallHandle": "0x2341880", "LineId": "1", "Type": "Outgoing", "Protocol": "Sip",
        # "CallState": "Connected", "RemotePartyName": "123", "DurationInSeconds": "2", "RemotePartyNumber": "123"}
        assert {"CallHandle", "LineId", "Type", "Protocol", "CallState", "RemotePartyName", "DurationInSeconds",
                "RemotePartyNumber"} <= set(v1)
        assert (v1["Type"], v1["Protocol"], v1["RemotePartyNumber"]) == ("Outgoing", "Sip", "123")
        await d.call("callctrl_end_call", Ref=v1["CallHandle"].removeprefix("0x"))  # "without the 0x" (S002)
        assert (await d.call("call_status")).data == []
        assert (await d.status()).model == "VVX 450"


# --- Solstice Pod Gen3: Mersive's sample and AVI-SPL's adapter ----------------------------------------------


def _solstice_get(dev: EmulatedDevice, url: str, headers: dict[str, str] | None = None,
                  form: dict[str, str] | None = None) -> Any:
    import ssl
    import urllib.parse

    context = ssl.create_default_context(cadata=dev.cert_pem.decode())
    context.check_hostname = False
    data = None if form is None else urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=20, context=context) as answer:
        return json.loads(answer.read())


async def test_solstice_mersive_sample_and_avi_adapter_on_the_profile(emulators: EmulatorThread) -> None:
    import asyncio

    dev = serve(emulators, "solstice-pod-gen3")
    prof = profile("solstice-pod-gen3")
    v1 = f"https://127.0.0.1:{dev.v1_https_port}"  # type: ignore[attr-defined]
    config = await asyncio.to_thread(_solstice_get, dev, f"{v1}/api/config?password={PASSWORD}")
    assert config == read_of(prof, "GET", "/api/config").answer
    assert format(config["m_networkCuration"]["connectionShowFlags"], "b")  # ZL: raised on a missing key
    stats = await asyncio.to_thread(_solstice_get, dev, f"{v1}/api/stats?password={PASSWORD}")
    assert set(stats["m_statistics"]) >= {"m_currentPostCount", "m_connectedUsers", "m_currentBandwidth"}
    v2 = f"https://127.0.0.1:{dev.port}/v2"
    token = await asyncio.to_thread(_solstice_get, dev, f"{v2}/token",
                                    form={"grant_type": "password", "username": "", "password": PASSWORD})
    routing = await asyncio.to_thread(_solstice_get, dev, f"{v2}/content/activerouting",
                                      {"Authorization": f"Bearer {token['access_token']}"})
    assert routing == read_of(prof, "GET", "/v2/content/activerouting").answer
    assert {"state", "connections", "framesPerSecond", "bytesPerSecond"} <= set(routing)  # AVS


async def test_solstice_rename_shows_while_the_rest_stays_recorded(emulators: EmulatorThread,
                                                                   tls: TLSPolicy) -> None:
    dev = serve(emulators, "solstice-pod-gen3")
    before = read_of(profile("solstice-pod-gen3"), "GET", "/api/config").answer
    async with client(dev, tls) as d:
        await d.call("v1_config_update", config={"m_displayInformation": {"m_displayName": "Pikes Peak"}})
        after = (await d.call("v1_config_get")).data
    assert after["m_displayInformation"]["m_displayName"] == "Pikes Peak"
    assert after["m_networkCuration"] == before["m_networkCuration"]
    assert after["m_displayId"] == before["m_displayId"]
